-- A PaymentIntent's options for card payments (Stripe's payment_method_options[card]): capture_method (only 'manual')
-- and setup_future_usage (with 'none', which withdraws the top-level setup_future_usage for a card). Each overrides
-- the top-level field of the same name when the payment is made with a card; null means no option was given.
-- PaymentIntents made before these columns were given none (the parameters were refused), so null is their truth.
ALTER TABLE payment_intents ADD COLUMN card_capture_method text CHECK (card_capture_method IN ('manual'));
ALTER TABLE payment_intents ADD COLUMN card_setup_future_usage text
  CHECK (card_setup_future_usage IN ('none', 'on_session', 'off_session'));
