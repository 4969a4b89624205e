-- A Checkout Session's `custom_fields` (decision 0060): up to three fields of the merchant's own (text, digits, or a
-- choice from a list) that the page asks; what the shopper gives is kept with the session's collected details.
ALTER TABLE checkout_sessions ADD COLUMN custom_fields jsonb;
