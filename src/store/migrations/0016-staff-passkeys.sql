-- Staff passkeys (WebAuthn): a second factor, with user verification required. The public key is all Coffer
-- keeps; the private key never leaves the person's authenticator.
CREATE TABLE staff_passkeys (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES staff_users (id),
  -- The credential id, base64url, as the authenticator gave it.
  credential_id text NOT NULL UNIQUE,
  -- COSE-encoded public key.
  public_key bytea NOT NULL,
  -- The authenticator's signature counter: an assertion with a counter that does not grow (when the authenticator
  -- keeps one) is refused as coming from a cloned authenticator.
  counter bigint NOT NULL CHECK (counter >= 0),
  transports jsonb NOT NULL DEFAULT '[]',
  name text NOT NULL,
  created_at timestamptz NOT NULL,
  last_used_at timestamptz
);
CREATE INDEX staff_passkeys_user ON staff_passkeys (user_id);

-- The WebAuthn challenge a session was last given (registration or sign-in), single use, short-lived.
ALTER TABLE staff_sessions ADD COLUMN webauthn_challenge text;
ALTER TABLE staff_sessions ADD COLUMN webauthn_challenge_expires_at timestamptz;
