-- Money a shopper paid at a wallet provider for an attempt Coffer had already recorded as failed. It happens when
-- a trade is closed before the shopper opened it: Alipay has no such trade yet (ACQ.TRADE_NOT_EXIST) and nothing
-- to close, and the shopper can still open and pay it until its time_expire. The money never reaches the merchant's
-- ledger; Coffer gives it back to the shopper at the provider (src/flows/wallet-late-payments.ts).
--   watching:      the close found no trade; the provider is asked again once the trade can no longer be opened
--   unpaid:        it was never paid (the watch ended)
--   refunding:     paid: a full refund at the provider is under way (retried with the same out_request_no)
--   refunded:      the shopper has the money back
--   refund_failed: the provider refused the refund for good; someone must settle it (doctor, /metrics)
CREATE TABLE wallet_late_payments (
  charge_id text PRIMARY KEY REFERENCES charges (id),
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  provider text NOT NULL CHECK (provider IN ('alipay', 'wechat_pay')),
  status text NOT NULL CHECK (status IN ('watching', 'unpaid', 'refunding', 'refunded', 'refund_failed')),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  -- The provider's id of the payment (Alipay trade_no, WeChat transaction_id), once it is known to be paid.
  provider_reference text,
  -- The provider's id of the refund, once made.
  refund_reference text,
  failure_reason text,
  tries integer NOT NULL DEFAULT 0 CHECK (tries >= 0),
  next_try_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  CHECK (status NOT IN ('refunding', 'refunded', 'refund_failed') OR provider_reference IS NOT NULL),
  CHECK (status <> 'refunded' OR refund_reference IS NOT NULL)
);
CREATE INDEX wallet_late_payments_due ON wallet_late_payments (next_try_at) WHERE status IN ('watching', 'refunding');

ALTER TABLE wallet_late_payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE wallet_late_payments FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON wallet_late_payments
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
