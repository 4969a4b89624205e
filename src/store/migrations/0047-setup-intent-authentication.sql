-- 3-D Secure on SetupIntents: where the shopper goes back to after a challenge (the merchant's return_url, given
-- at creation or confirmation), and what the shopper must do next while the SetupIntent is requires_action (the
-- challenge page, as Stripe's next_action.redirect_to_url). Both are null for SetupIntents made before, as they
-- were shown.
ALTER TABLE setup_intents ADD COLUMN return_url text;
ALTER TABLE setup_intents ADD COLUMN next_action jsonb;
