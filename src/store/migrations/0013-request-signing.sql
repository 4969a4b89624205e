-- Request signing: a key may require every request to be signed with a secret of its own (sealed like webhook
-- secrets); the nonces of accepted signed requests are kept long enough to refuse any replay within the window.
ALTER TABLE api_keys ADD COLUMN signing_secret_ciphertext bytea;
CREATE TABLE request_nonces (
  key_id text NOT NULL,
  nonce text NOT NULL,
  seen_at timestamptz NOT NULL,
  PRIMARY KEY (key_id, nonce)
);
CREATE INDEX request_nonces_seen ON request_nonces (seen_at);
