-- Stripe's Shipping Rates: what a merchant charges to send an order, offered on Checkout Sessions
-- (`shipping_options`), one of which the shopper picks on the hosted page (decision 0052). A rate is a fixed amount
-- in one currency; its name, amount and currency never change once it exists, as at Stripe (a new amount is a new
-- rate), so a session can show what it offered long after. Rates are never removed, only archived (`active`).
CREATE TABLE shipping_rates (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL,
  active boolean NOT NULL,
  display_name text NOT NULL CHECK (display_name <> ''),
  currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  amount bigint NOT NULL CHECK (amount >= 0),
  delivery_estimate jsonb,
  tax_behavior text NOT NULL CHECK (tax_behavior IN ('unspecified', 'inclusive', 'exclusive')),
  metadata jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX shipping_rates_list ON shipping_rates (merchant_id, livemode, seq);

-- A merchant's rates are its own: each request sees only its merchant's rows (migration 0017).
ALTER TABLE shipping_rates ENABLE ROW LEVEL SECURITY;
ALTER TABLE shipping_rates FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON shipping_rates
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());

-- What a session offers (each rate's id, name, estimate and amount, as they were when it was made) and which one the
-- shopper has chosen; `amount_shipping` is its amount, part of `amount_total`. Sessions made before offered none
-- (the parameter was refused), so null, null and 0 are their truth.
ALTER TABLE checkout_sessions ADD COLUMN shipping_options jsonb;
ALTER TABLE checkout_sessions ADD COLUMN shipping_rate_id text;
ALTER TABLE checkout_sessions ADD COLUMN amount_shipping bigint NOT NULL DEFAULT 0;
ALTER TABLE checkout_sessions ADD CONSTRAINT checkout_sessions_amount_shipping CHECK (amount_shipping >= 0 AND amount_shipping <= amount_total);
