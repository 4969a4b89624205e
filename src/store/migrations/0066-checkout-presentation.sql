-- What a Checkout Session's page says besides the order (decision 0059): Stripe's `submit_type` (the pay button's
-- verb), `custom_text` (the merchant's messages, by place) and `consent_collection` (the terms the shopper must
-- accept, the offers they may opt into, whether the card's reuse agreement is shown). Null: not given.
ALTER TABLE checkout_sessions ADD COLUMN submit_type text CHECK (submit_type IN ('auto', 'book', 'donate', 'pay'));
ALTER TABLE checkout_sessions ADD COLUMN custom_text jsonb;
ALTER TABLE checkout_sessions ADD COLUMN consent_collection jsonb;
