-- How many times the shopper's step-up on a hosted-checkout page named a phone number or email address that is not
-- the one the merchant gave for its payment (refused `not_on_file`, decision 0041). Counted under the session's row
-- lock; at the bound in limits.ts the page's step-up is closed, so that the holder of a page link cannot test
-- guesses of the address on file. One page session per PaymentIntent, so this counts per payment. Existing
-- sessions start at zero.
ALTER TABLE checkout_sessions ADD COLUMN step_up_identity_refusals integer NOT NULL DEFAULT 0;
