-- The review a payment's charge was held for, on its PaymentIntent too (Stripe's `payment_intent.review`): set with
-- the charge's, when the review opens, and kept once it is closed.
ALTER TABLE payment_intents ADD COLUMN review_id text;

UPDATE payment_intents pi SET review_id = c.review_id
FROM charges c
WHERE c.payment_intent_id = pi.id AND c.review_id IS NOT NULL AND pi.review_id IS NULL;
