-- A Checkout Session made for an existing customer (Stripe's `customer`), and the card options it was made with
-- (Stripe's `payment_method_options`: a card's capture_method and setup_future_usage). The session's PaymentIntent
-- is made with both and is what acts on them; the session keeps them so that its object, in every read and event,
-- shows what it was made with. Sessions made before these columns could be given neither (the parameters were
-- refused), so null and {} are their truth.
ALTER TABLE checkout_sessions ADD COLUMN customer_id text;
ALTER TABLE checkout_sessions ADD COLUMN payment_method_options jsonb NOT NULL DEFAULT '{}'::jsonb;
