-- Velocity: every attempt's outcome, once per thing it can be counted by (card, customer, email, client address,
-- device, BIN), written in the statement that records the outcome. Counters over 1 hour, 24 hours and 7 days are
-- exact counts over this table at the moment asked (windows are (t - length, t]), so arrival order does not matter.
CREATE TABLE velocity_entries (
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  dimension text NOT NULL CHECK (dimension IN ('card', 'customer', 'email', 'client_address', 'device', 'bin')),
  key text NOT NULL,
  occurred_at timestamptz NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('succeeded', 'declined', 'blocked')),
  -- In the payment's currency's minor unit; counters add amounts of one currency only.
  amount bigint NOT NULL CHECK (amount >= 0),
  currency text NOT NULL,
  charge_id text NOT NULL
);
CREATE INDEX velocity_entries_lookup ON velocity_entries (merchant_id, livemode, dimension, key, occurred_at);
CREATE INDEX velocity_entries_age ON velocity_entries (occurred_at);

ALTER TABLE velocity_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE velocity_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON velocity_entries
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());

-- What the attempt was made with, for velocity and risk: client address, device, email (the card and customer are
-- on the payment method and the PaymentIntent).
ALTER TABLE charges ADD COLUMN risk_facts jsonb;
