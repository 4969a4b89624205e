-- Step-up by payment password and by passkey, and the hosted page for an existing PaymentIntent.
--
-- A shopper's credentials belong to one merchant and to one verified identity: a phone number or an email address
-- the shopper proved to hold with a one-time code. A payment password is six digits, kept as argon2id over an
-- HMAC under the instance's key (a copy of this table alone does not let anyone try the million passwords). A
-- passkey is a WebAuthn credential (public key, signature counter).
CREATE TABLE shopper_credentials (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  identity text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('payment_password', 'passkey')),
  password_hash text,
  credential_id text,
  public_key bytea,
  counter bigint,
  transports jsonb,
  created_at timestamptz NOT NULL,
  last_used_at timestamptz,
  CHECK ((kind = 'payment_password' AND password_hash IS NOT NULL AND credential_id IS NULL)
      OR (kind = 'passkey' AND password_hash IS NULL AND credential_id IS NOT NULL AND public_key IS NOT NULL AND counter IS NOT NULL))
);
CREATE UNIQUE INDEX shopper_credentials_password ON shopper_credentials (merchant_id, livemode, identity) WHERE kind = 'payment_password';
CREATE UNIQUE INDEX shopper_credentials_passkey ON shopper_credentials (merchant_id, credential_id) WHERE kind = 'passkey';
CREATE INDEX shopper_credentials_identity ON shopper_credentials (merchant_id, livemode, identity);

ALTER TABLE shopper_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopper_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON shopper_credentials
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());

-- Wrong payment password tries per identity, kept whether or not the identity has a password, so that the count
-- and the lock after five say nothing about which identities have one. A code that sets a new password clears it.
CREATE TABLE shopper_password_tries (
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  identity text NOT NULL,
  failed_attempts integer NOT NULL CHECK (failed_attempts >= 0),
  locked_at timestamptz,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (merchant_id, livemode, identity)
);
ALTER TABLE shopper_password_tries ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopper_password_tries FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON shopper_password_tries
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());

-- Every step-up ceremony is a row: a code sent (by SMS or email), the payment password tries of a session, a
-- passkey challenge (bound to the PaymentIntent, its amount, currency and payee, answered once) or a passkey
-- registration. `code_hash` holds the code's HMAC, or the challenge's random part.
ALTER TABLE shopper_step_ups DROP CONSTRAINT shopper_step_ups_method_check;
ALTER TABLE shopper_step_ups ADD CONSTRAINT shopper_step_ups_method_check
  CHECK (method IN ('sms_code', 'email_code', 'payment_password', 'passkey', 'passkey_registration'));
ALTER TABLE shopper_step_ups ADD COLUMN payment_intent_id text;
UPDATE shopper_step_ups SET payment_intent_id = checkout_sessions.payment_intent_id
  FROM checkout_sessions WHERE checkout_sessions.id = shopper_step_ups.checkout_session_id AND shopper_step_ups.payment_intent_id IS NULL;

-- A hosted page for a PaymentIntent the merchant made through the API, opened with its client secret: a page
-- session of kind `payment_intent`, which the Checkout Sessions API does not list and which sends no checkout
-- events. Its amount follows the PaymentIntent's.
ALTER TABLE checkout_sessions ADD COLUMN kind text NOT NULL DEFAULT 'checkout' CHECK (kind IN ('checkout', 'payment_intent'));

-- Messages to shoppers are an outbox: written with what makes them, sent afterwards by a job through a notifier
-- (the sandbox outbox in test mode, the operator's gateway in live mode), retried with a growing wait.
ALTER TABLE shopper_messages ADD COLUMN status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed'));
ALTER TABLE shopper_messages ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0);
ALTER TABLE shopper_messages ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE shopper_messages ADD COLUMN sent_at timestamptz;
ALTER TABLE shopper_messages ADD COLUMN last_error text;
-- A message useless after a time (a one-time code) is not sent after it.
ALTER TABLE shopper_messages ADD COLUMN expires_at timestamptz;
UPDATE shopper_messages SET status = 'sent', sent_at = created_at WHERE NOT livemode;
-- Live messages written before delivery existed: receipts still go out; one-time codes, long expired, do not.
UPDATE shopper_messages SET status = 'failed', last_error = 'a one-time code written before messages were delivered'
  WHERE livemode AND reference LIKE 'stepup%';
CREATE INDEX shopper_messages_due ON shopper_messages (seq) WHERE status = 'pending';

-- The shopper's openid for the merchant's WeChat app, from WeChat's web sign-in when the page is opened inside
-- WeChat: a JSAPI payment needs it.
ALTER TABLE checkout_sessions ADD COLUMN wechat_openid text;
