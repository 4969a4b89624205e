-- A payment method that belongs to no customer is for one PaymentIntent only, as at Stripe: the shopper gave the
-- card for that payment, not for later ones. The first PaymentIntent that tries it is kept here; another is refused
-- (src/flows/confirm-payment-intent.ts), and the attempt's statement sets it only if it is still unset or the same,
-- so two PaymentIntents confirming one card at once cannot both have it. A card saved to a customer is not bound.
ALTER TABLE payment_methods ADD COLUMN first_payment_intent_id text;
