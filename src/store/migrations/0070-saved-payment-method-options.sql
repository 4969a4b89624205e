-- Whether a saved payment method may be shown to its customer again for them to pay with (Stripe's `allow_redisplay`):
-- `always` when the shopper asked to save it on the hosted page (a Checkout Session's
-- `saved_payment_method_options[payment_method_save]`, decision 0063), `limited` or `always` when the merchant says
-- so, `unspecified` otherwise (every method saved before). A constant default: no table rewrite.
ALTER TABLE payment_methods ADD COLUMN allow_redisplay text NOT NULL DEFAULT 'unspecified';

-- What a session's page offers about saved payment methods: the shopper's own choice to save the card they pay with,
-- and which saved cards it shows them. Sessions made before offered neither (the parameter was refused): null.
ALTER TABLE checkout_sessions ADD COLUMN saved_payment_method_options jsonb;
