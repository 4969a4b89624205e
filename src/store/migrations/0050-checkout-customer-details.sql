-- What a Checkout Session learned of its customer when it completed (Stripe's customer_details: the email, and the
-- name, phone and billing address the card was given with), kept with the session so that checkout.session.completed
-- and every later read show it. Sessions completed before this column show only the email they were made with.
ALTER TABLE checkout_sessions ADD COLUMN customer_details jsonb;
