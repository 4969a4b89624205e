-- What a Checkout Session asks the shopper for beyond the payment (Stripe's billing_address_collection,
-- shipping_address_collection and phone_number_collection), and what the shopper gave (decision 0051). Sessions made
-- before these columns asked for none of it (the parameters were refused), so null, null, false and null are their
-- truth.
ALTER TABLE checkout_sessions ADD COLUMN billing_address_collection text;
ALTER TABLE checkout_sessions ADD COLUMN shipping_countries jsonb;
ALTER TABLE checkout_sessions ADD COLUMN phone_number_collection boolean NOT NULL DEFAULT false;
ALTER TABLE checkout_sessions ADD COLUMN collected jsonb;
