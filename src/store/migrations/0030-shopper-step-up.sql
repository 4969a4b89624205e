-- Step-up confirmation on the hosted checkout: above the merchant's amount, the shopper proves it is them before
-- the payment is confirmed. One-time codes by SMS: six digits, five minutes, single use, five tries.
ALTER TABLE merchants ADD COLUMN step_up_above_usd numeric(14, 2) CHECK (step_up_above_usd >= 0);

CREATE TABLE shopper_step_ups (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  checkout_session_id text NOT NULL,
  method text NOT NULL CHECK (method IN ('sms_code')),
  -- Where the code went (a phone number), kept to rate-limit sends.
  destination text NOT NULL,
  -- HMAC of the code under a key derived from the instance secret; never the code itself.
  code_hash text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  verified_at timestamptz,
  -- The payment the proof is bound to: this session's amount and currency.
  amount bigint NOT NULL,
  currency text NOT NULL
);
CREATE INDEX shopper_step_ups_session ON shopper_step_ups (checkout_session_id, created_at);
CREATE INDEX shopper_step_ups_destination ON shopper_step_ups (destination, created_at);

ALTER TABLE shopper_step_ups ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopper_step_ups FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON shopper_step_ups
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
