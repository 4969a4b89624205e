-- Stripe's `customer_creation` on a Checkout Session (decision 0058): `always` makes a Customer of the shopper when
-- the page confirms the payment, from what the page collected; null (Stripe's `if_required`) makes none.
ALTER TABLE checkout_sessions ADD COLUMN customer_creation text CHECK (customer_creation IN ('always', 'if_required'));
