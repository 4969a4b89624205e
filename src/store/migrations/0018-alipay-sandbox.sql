-- The Alipay sandbox's own records (src/connectors/alipay/sandbox): Alipay's side of the wire in test mode, kept
-- apart from Coffer's state so that the sandbox answers from what it did, including after a crash of either side.
-- Amounts are kept as Alipay wrote them (a yuan string, "12.34") and in fen, the integer the sandbox computes with.
CREATE TABLE sandbox_alipay_trades (
  trade_no text PRIMARY KEY,
  app_id text NOT NULL,
  out_trade_no text NOT NULL,
  method text NOT NULL CHECK (method IN ('alipay.trade.precreate', 'alipay.trade.page.pay')),
  -- A digest of the order's parameters: a repeat with the same digest is answered as the first time, one with
  -- another digest is ACQ.CONTEXT_INCONSISTENT.
  request_hash text NOT NULL,
  product_code text NOT NULL,
  subject text NOT NULL,
  total_amount text NOT NULL,
  total_cents bigint NOT NULL CHECK (total_cents > 0),
  -- Refunded so far (Alipay's cumulative `refund_fee`).
  refund_fee_cents bigint NOT NULL DEFAULT 0 CHECK (refund_fee_cents >= 0 AND refund_fee_cents <= total_cents),
  notify_url text,
  return_url text,
  status text NOT NULL CHECK (status IN ('WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_CLOSED', 'TRADE_FINISHED')),
  -- A precreated trade exists for query and close only once its QR code is scanned; a page trade once its page opens.
  scanned boolean NOT NULL,
  qr_code text,
  -- The key of the tester's cashier page, and the page's per-trade token against CSRF.
  cashier_token text NOT NULL UNIQUE,
  form_token text NOT NULL,
  buyer_id text,
  time_expire timestamptz NOT NULL,
  gmt_create timestamptz NOT NULL,
  gmt_payment timestamptz,
  gmt_close timestamptz,
  updated_at timestamptz NOT NULL,
  UNIQUE (app_id, out_trade_no),
  CHECK (status NOT IN ('TRADE_SUCCESS', 'TRADE_FINISHED') OR gmt_payment IS NOT NULL),
  CHECK (refund_fee_cents = 0 OR gmt_payment IS NOT NULL)
);

-- One row per out_request_no of a trade: a repeat is answered from `response` and refunds nothing.
CREATE TABLE sandbox_alipay_refunds (
  trade_no text NOT NULL REFERENCES sandbox_alipay_trades (trade_no),
  out_request_no text NOT NULL,
  refund_amount text NOT NULL,
  refund_cents bigint NOT NULL CHECK (refund_cents > 0),
  -- The fields of the first answer (alipay_trade_refund_response) as JSON text.
  response text NOT NULL,
  gmt_refund timestamptz NOT NULL,
  PRIMARY KEY (trade_no, out_request_no)
);

-- Notifications (trade_status_sync) owed to merchants' notify_url, retried on Alipay's schedule until answered
-- `success`. The body is the form as sent, signed at queue time (and tampered after signing when a test asks).
-- A duplicated notification is several rows with the same notify_id.
CREATE TABLE sandbox_alipay_notifications (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  notify_id text NOT NULL,
  trade_no text NOT NULL REFERENCES sandbox_alipay_trades (trade_no),
  trade_status text NOT NULL,
  notify_url text NOT NULL,
  body text NOT NULL,
  -- Held back until the next notification is queued, then sent right after it (an out-of-order pair).
  held boolean NOT NULL DEFAULT false,
  -- Null once delivered or given up.
  next_attempt_at timestamptz,
  -- Attempts made so far, which is also the position in the retry schedule of the next delay.
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  delivered boolean NOT NULL DEFAULT false,
  last_answer text,
  created_at timestamptz NOT NULL,
  delivered_at timestamptz,
  given_up_at timestamptz,
  CHECK (NOT delivered OR delivered_at IS NOT NULL)
);

CREATE INDEX sandbox_alipay_notifications_due ON sandbox_alipay_notifications (next_attempt_at, id)
  WHERE NOT delivered AND next_attempt_at IS NOT NULL;
CREATE INDEX sandbox_alipay_notifications_held ON sandbox_alipay_notifications (id) WHERE held;

-- Unpaid trades past their time_expire are closed by the sandbox's own sweep, as Alipay closes them.
CREATE INDEX sandbox_alipay_trades_open ON sandbox_alipay_trades (time_expire) WHERE status = 'WAIT_BUYER_PAY';
