-- Stripe's Payment Links: a page address a merchant shares (a message, a QR code, a social post) that sells a fixed
-- order from the catalogue; each shopper who opens it gets a Checkout Session of their own (decision 0054). The link
-- keeps the session's parameters as given, checked when it was made; `completed_sessions` counts the sessions paid
-- through it, and the link is deactivated when it reaches `completed_sessions_limit`.
CREATE TABLE payment_links (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  active boolean NOT NULL,
  currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  url text NOT NULL,
  session_params jsonb NOT NULL,
  -- Each offered shipping rate's amount, in the order offered (a rate's amount never changes), as the link shows it.
  shipping_amounts jsonb NOT NULL DEFAULT '[]',
  after_completion jsonb NOT NULL,
  inactive_message text,
  completed_sessions_limit integer CHECK (completed_sessions_limit > 0),
  completed_sessions integer NOT NULL DEFAULT 0 CHECK (completed_sessions >= 0),
  metadata jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX payment_links_list ON payment_links (merchant_id, livemode, seq);

-- A merchant's links are its own: each request sees only its merchant's rows (migration 0017).
ALTER TABLE payment_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_links FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON payment_links
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());

-- The link a session was made from; sessions made before were made through the API (null).
ALTER TABLE checkout_sessions ADD COLUMN payment_link_id text;
CREATE INDEX checkout_sessions_payment_link ON checkout_sessions (merchant_id, livemode, payment_link_id, seq) WHERE payment_link_id IS NOT NULL;
