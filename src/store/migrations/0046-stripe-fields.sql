-- A charge shows where the order ships, as Stripe's does: the PaymentIntent's shipping as it was when the attempt
-- was made (a later change to the PaymentIntent does not rewrite a past charge). Charges made before this column
-- keep showing none, as they did: filling them in would rewrite the whole table under the lock this ALTER takes,
-- holding up every payment for as long.
ALTER TABLE charges ADD COLUMN shipping jsonb;

-- A SetupIntent's automatic_payment_methods, as asked for or given by the API version's default (null for those
-- made before this column, as they were shown).
ALTER TABLE setup_intents ADD COLUMN automatic_payment_methods jsonb;

-- A Checkout Session's client_reference_id: the merchant's own reference for the order (Stripe's field, which
-- fulfilment code reads back from checkout.session.completed).
ALTER TABLE checkout_sessions ADD COLUMN client_reference_id text;
