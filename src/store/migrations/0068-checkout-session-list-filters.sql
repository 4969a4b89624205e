-- The Checkout Sessions list's filters by customer and by the shopper's email (as `customer_details.email` shows it):
-- each an index within the merchant and mode, in the list's order, so that neither reads all of a merchant's sessions.
-- The expression is the one the list's query uses (flows/checkout-sessions.ts, listCheckoutSessions).
CREATE INDEX IF NOT EXISTS checkout_sessions_customer ON checkout_sessions (merchant_id, livemode, customer_id, seq) WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS checkout_sessions_email ON checkout_sessions (merchant_id, livemode, (lower(coalesce(customer_details->>'email', customer_email))), seq);
