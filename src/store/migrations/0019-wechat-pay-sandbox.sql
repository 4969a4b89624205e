-- The WeChat Pay sandbox's own records (src/connectors/wechat-pay/sandbox): WeChat Pay's side of the wire in test
-- mode, kept apart from Coffer's state so that the sandbox answers from what it did, including after a crash of
-- either side. Amounts are integer fen, as on WeChat's wire.
CREATE TABLE sandbox_wechat_pay_transactions (
  transaction_id text PRIMARY KEY,
  mchid text NOT NULL,
  appid text NOT NULL,
  out_trade_no text NOT NULL,
  trade_type text NOT NULL CHECK (trade_type IN ('NATIVE', 'JSAPI', 'MWEB')),
  trade_state text NOT NULL
    CHECK (trade_state IN ('NOTPAY', 'USERPAYING', 'SUCCESS', 'CLOSED', 'REVOKED', 'PAYERROR', 'REFUND')),
  -- A digest of the order's parameters: the same out_trade_no with other parameters is OUT_TRADE_NO_USED.
  request_hash text NOT NULL,
  amount_total bigint NOT NULL CHECK (amount_total > 0),
  currency text NOT NULL,
  description text NOT NULL,
  notify_url text NOT NULL,
  attach text,
  payer_openid text,
  payer_client_ip text,
  prepay_id text UNIQUE,
  -- The key of the tester's payment page (code_url, h5_url), and the page's per-transaction token against CSRF.
  scan_token text NOT NULL UNIQUE,
  form_token text NOT NULL,
  time_expire timestamptz NOT NULL,
  success_time timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (mchid, out_trade_no),
  CHECK ((trade_state IN ('SUCCESS', 'REFUND')) = (success_time IS NOT NULL))
);

CREATE TABLE sandbox_wechat_pay_refunds (
  refund_id text PRIMARY KEY,
  mchid text NOT NULL,
  out_refund_no text NOT NULL,
  transaction_id text NOT NULL REFERENCES sandbox_wechat_pay_transactions (transaction_id),
  request_hash text NOT NULL,
  amount_refund bigint NOT NULL CHECK (amount_refund > 0),
  amount_total bigint NOT NULL CHECK (amount_total >= amount_refund),
  currency text NOT NULL,
  reason text,
  notify_url text,
  status text NOT NULL CHECK (status IN ('PROCESSING', 'SUCCESS', 'ABNORMAL', 'CLOSED')),
  -- What the refund becomes, and when, once it leaves PROCESSING (a test control chooses it at creation).
  settles_to text NOT NULL CHECK (settles_to IN ('SUCCESS', 'ABNORMAL', 'CLOSED')),
  settles_at timestamptz NOT NULL,
  success_time timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (mchid, out_refund_no)
);

CREATE INDEX sandbox_wechat_pay_refunds_transaction ON sandbox_wechat_pay_refunds (transaction_id);
CREATE INDEX sandbox_wechat_pay_refunds_processing ON sandbox_wechat_pay_refunds (settles_at) WHERE status = 'PROCESSING';

-- Callbacks to the merchant's notify_url, retried on WeChat's schedule until answered 200/204. A duplicated
-- callback is several rows with the same notification_id (the body's `id`). The body is kept as sent, except that
-- `tamper` names the part corrupted on the way out; the signature is made at each attempt over the untampered body.
CREATE TABLE sandbox_wechat_pay_callbacks (
  id text PRIMARY KEY,
  sequence bigint GENERATED ALWAYS AS IDENTITY,
  notification_id text NOT NULL,
  url text NOT NULL,
  body text NOT NULL,
  probe boolean NOT NULL DEFAULT false,
  tamper text CHECK (tamper IN ('ciphertext', 'tag', 'signature')),
  -- Held back until the next callback is queued, then sent right after it (an out-of-order pair).
  held boolean NOT NULL DEFAULT false,
  next_attempt_at timestamptz NOT NULL,
  -- Attempts made so far; after a failed one it is the position in the retry schedule of the next delay.
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_status integer,
  last_error text,
  delivered_at timestamptz,
  given_up_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sandbox_wechat_pay_callbacks_due ON sandbox_wechat_pay_callbacks (next_attempt_at, sequence)
  WHERE delivered_at IS NULL AND given_up_at IS NULL AND NOT held;
