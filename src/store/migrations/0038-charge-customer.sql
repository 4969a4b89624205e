-- A charge shows who paid, as Stripe's does: the PaymentIntent's customer and the payment method's billing details
-- as they were when the attempt was made (a later change to the payment method does not rewrite a past charge).
ALTER TABLE charges ADD COLUMN customer_id text;
ALTER TABLE charges ADD COLUMN billing_details jsonb NOT NULL DEFAULT '{}';
