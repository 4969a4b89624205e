-- Stripe's `after_expiration[recovery]` (decision 0064): a session that expires unpaid gives an address (`url`, valid
-- 30 days) that makes a new session for the same order, which the merchant sends the shopper to win the sale back.
-- `recovery` keeps what the new session is made with (the parameters the session was made with, as given, and whether
-- it takes promotion codes); the address's token is given when the session expires, and a session made from it names
-- the session it recovers (`recovered_from`). Sessions made before offered none (the parameter was refused): null.
ALTER TABLE checkout_sessions ADD COLUMN recovery jsonb;
ALTER TABLE checkout_sessions ADD COLUMN recovery_token text;
ALTER TABLE checkout_sessions ADD COLUMN recovery_url text;
ALTER TABLE checkout_sessions ADD COLUMN recovery_expires_at timestamptz;
ALTER TABLE checkout_sessions ADD COLUMN recovered_from text;
CREATE UNIQUE INDEX checkout_sessions_recovery_token ON checkout_sessions (recovery_token) WHERE recovery_token IS NOT NULL;
-- Whether an order left was paid through its recovery address, which then makes no more sessions.
CREATE INDEX checkout_sessions_recovered_from ON checkout_sessions (recovered_from) WHERE recovered_from IS NOT NULL;
