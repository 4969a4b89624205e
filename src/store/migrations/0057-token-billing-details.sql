-- What a card token was made with besides the card (Stripe's card[name] and card[address_*]), as a PaymentMethod's
-- billing_details: the PaymentMethod made from the token gets them. Null when none were given, as for every token
-- made before this column (the parameters were refused).
ALTER TABLE tokens ADD COLUMN billing_details jsonb CHECK (billing_details IS NULL OR jsonb_typeof(billing_details) = 'object');
