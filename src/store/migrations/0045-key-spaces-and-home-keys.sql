-- Idempotency keys of publishable keys (held by shoppers' browsers) live apart from those of secret and restricted
-- keys (held by the merchant's servers): a shopper who reads the publishable key cannot take a key name the
-- merchant's server will use (an order id, say) and block its request for a day.
ALTER TABLE idempotency_keys ADD COLUMN publishable boolean NOT NULL DEFAULT false;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_merchant_id_livemode_key_key;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_key_space UNIQUE (merchant_id, livemode, publishable, key);

-- The API version the stored response was shaped for (the version of the request that produced it), sent back
-- with every replay: a retry under another Stripe-Version gets the first response as it was, labelled as it was.
-- NULL for responses stored before this column.
ALTER TABLE idempotency_keys ADD COLUMN api_version text;

-- Which audit chain this database holds, so that the copy of its signed checkpoints kept outside the database is
-- told apart from that of another database the same home directory has used.
ALTER TABLE audit_chain_head ADD COLUMN chain_id text NOT NULL DEFAULT ('chain_' || md5(random()::text || clock_timestamp()::text));
ALTER TABLE audit_chain_head ALTER COLUMN chain_id DROP DEFAULT;

-- What the database was made with, so that a start whose home directory lacks the keys (or holds another
-- installation's) is refused before it makes new ones: a check value of the instance key, from which nothing about
-- the key can be learnt, recorded by the first start. (The audit signing key is known by the checkpoints' key ids.)
CREATE TABLE installation (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  instance_key_check text
);
INSERT INTO installation (id) VALUES (true);

-- The serving role moves the chain's end, never its id (which names the chain's file outside the database).
REVOKE UPDATE ON audit_chain_head FROM coffer_app;
GRANT UPDATE (seq, hash) ON audit_chain_head TO coffer_app;
