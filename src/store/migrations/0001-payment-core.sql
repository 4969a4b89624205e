-- Coffer's payment core: merchants and their keys, PaymentIntents and their attempts (charges), idempotency,
-- events, the audit trail and the double-entry ledger. Runs on PostgreSQL 15 and on PGlite.

CREATE TABLE merchants (
  id text PRIMARY KEY,
  name text NOT NULL,
  -- The API version a request gets when it sends no Stripe-Version header.
  default_api_version text NOT NULL,
  time_zone text NOT NULL DEFAULT 'UTC',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  kind text NOT NULL CHECK (kind IN ('secret', 'publishable')),
  livemode boolean NOT NULL,
  -- SHA-256 of the whole key: keys are 32 random bytes, so a fast hash is enough and nothing reversible is kept.
  key_hash bytea NOT NULL UNIQUE,
  -- The last four characters, to tell keys apart in lists and messages.
  key_last4 text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz
);

CREATE TABLE payment_methods (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  type text NOT NULL CHECK (type IN ('card')),
  -- Card facts only: brand, last4, expiry, country, funding, fingerprint. Never a card number or security code.
  card jsonb NOT NULL,
  -- Which of the provider sandbox's published test cards this is; null for cards held by the vault.
  test_card text,
  billing_details jsonb NOT NULL DEFAULT '{}',
  customer_id text,
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_methods_merchant ON payment_methods (merchant_id, livemode, seq);

CREATE TABLE payment_intents (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  status text NOT NULL CHECK (status IN ('requires_payment_method', 'requires_confirmation', 'requires_action',
    'processing', 'requires_capture', 'succeeded', 'canceled')),
  capture_method text NOT NULL CHECK (capture_method IN ('automatic', 'automatic_async', 'manual')),
  confirmation_method text NOT NULL CHECK (confirmation_method IN ('automatic', 'manual')),
  payment_method_id text REFERENCES payment_methods (id),
  payment_method_types jsonb NOT NULL,
  automatic_payment_methods jsonb,
  client_secret text NOT NULL,
  description text,
  metadata jsonb NOT NULL DEFAULT '{}',
  receipt_email text,
  customer_id text,
  statement_descriptor text,
  statement_descriptor_suffix text,
  setup_future_usage text,
  shipping jsonb,
  return_url text,
  amount_capturable bigint NOT NULL DEFAULT 0 CHECK (amount_capturable >= 0),
  amount_received bigint NOT NULL DEFAULT 0 CHECK (amount_received >= 0),
  canceled_at timestamptz,
  cancellation_reason text,
  last_payment_error jsonb,
  latest_charge_id text,
  next_action jsonb,
  -- A capture or cancellation sent to the provider and not yet recorded; it blocks other changes meanwhile.
  operation_in_flight text CHECK (operation_in_flight IN ('capture', 'cancel')),
  operation_started_at timestamptz,
  operation_amount bigint,
  operation_reason text,
  -- The idempotent request that started the operation, so that its retry can resume it after a crash.
  operation_idempotency_key_id bigint,
  -- Incremented by a trigger on every update: a write computed from a row read earlier applies only if the
  -- row is still that version (compare-and-set), without holding a lock in between.
  version bigint NOT NULL DEFAULT 0,
  CHECK (amount_received <= amount AND amount_capturable <= amount),
  CHECK ((operation_in_flight IS NULL) = (operation_started_at IS NULL))
) WITH (fillfactor = 80); -- room on each page for updates that touch no index (HOT): a PaymentIntent changes several times
CREATE INDEX payment_intents_merchant ON payment_intents (merchant_id, livemode, seq);

CREATE FUNCTION coffer_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.version := OLD.version + 1;
  RETURN NEW;
END $$;
CREATE TRIGGER payment_intents_version BEFORE UPDATE ON payment_intents
  FOR EACH ROW EXECUTE FUNCTION coffer_next_version();
CREATE INDEX payment_intents_created ON payment_intents (merchant_id, livemode, created_at);
CREATE INDEX payment_intents_in_flight ON payment_intents (operation_started_at) WHERE operation_in_flight IS NOT NULL;

-- One charge per attempt at the provider, as Stripe reports them.
CREATE TABLE charges (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  payment_intent_id text NOT NULL REFERENCES payment_intents (id),
  payment_method_id text NOT NULL REFERENCES payment_methods (id),
  provider text NOT NULL,
  -- Coffer's idempotency key for this attempt at the provider: a retry can never authorize twice.
  provider_idempotency_key text NOT NULL UNIQUE,
  provider_reference text,
  -- The idempotent request that started this attempt, so that its retry can resume it after a crash.
  idempotency_key_id bigint,
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  amount_authorized bigint NOT NULL DEFAULT 0,
  amount_captured bigint NOT NULL DEFAULT 0,
  -- The authorized part released without capture (partial capture, cancellation, expiry).
  amount_released bigint NOT NULL DEFAULT 0,
  amount_refunded bigint NOT NULL DEFAULT 0,
  captured boolean NOT NULL DEFAULT false,
  capture_before timestamptz,
  payment_method_details jsonb NOT NULL,
  outcome jsonb,
  failure_code text,
  failure_message text,
  decline_code text,
  description text,
  metadata jsonb NOT NULL DEFAULT '{}',
  receipt_email text,
  statement_descriptor text,
  statement_descriptor_suffix text,
  -- Captured funds become available for payout at this time; `settled` once they have been moved.
  available_on timestamptz,
  settled boolean NOT NULL DEFAULT false,
  -- Refunded never exceeds captured, and captured plus released never exceeds what was authorized.
  CHECK (amount_authorized <= amount),
  CHECK (amount_captured + amount_released <= amount_authorized),
  CHECK (amount_refunded <= amount_captured),
  CHECK (amount_captured >= 0 AND amount_released >= 0 AND amount_refunded >= 0)
) WITH (fillfactor = 80);
CREATE INDEX charges_payment_intent ON charges (payment_intent_id);
CREATE INDEX charges_pending ON charges (updated_at) WHERE status = 'pending';
CREATE INDEX charges_merchant ON charges (merchant_id, livemode, seq);
CREATE INDEX charges_to_settle ON charges (available_on) WHERE captured AND NOT settled;

CREATE TABLE idempotency_keys (
  id bigserial PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  key text NOT NULL,
  request_method text NOT NULL,
  request_path text NOT NULL,
  -- SHA-256 over method, path and the canonical parameters: the same key with other parameters is refused.
  request_hash text NOT NULL,
  original_request_id text NOT NULL,
  -- Set while a request holds the key; a lock older than the limit belongs to a crashed process.
  locked_at timestamptz,
  response_status integer,
  response_body text,
  -- The object a multi-step request already created (create-and-confirm), so that a retry continues with it.
  recovery_point text,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  UNIQUE (merchant_id, livemode, key),
  CHECK ((response_status IS NULL) = (finished_at IS NULL))
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE events (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  type text NOT NULL,
  object_id text NOT NULL,
  api_version text NOT NULL,
  request_id text,
  idempotency_key text,
  -- The whole event as delivered, kept as text so that its bytes (and signatures over them) never change.
  payload json NOT NULL
);
CREATE INDEX events_merchant ON events (merchant_id, livemode, seq);
CREATE INDEX events_object ON events (object_id);

-- What happened, who did it, from where. Append-only.
CREATE TABLE audit_log (
  seq bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  merchant_id text,
  livemode boolean,
  actor_type text NOT NULL CHECK (actor_type IN ('api_key', 'staff', 'system')),
  actor_id text NOT NULL,
  action text NOT NULL,
  object_type text,
  object_id text,
  outcome text NOT NULL CHECK (outcome IN ('success', 'failure')),
  request_id text,
  origin text,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_object ON audit_log (object_id);

-- Ends a single-statement write whose compare-and-set found the row changed: the whole statement is undone and
-- the caller sees a serialization failure (40001), re-reads and tries again.
CREATE FUNCTION coffer_expect_rows(p_actual bigint, p_expected bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF p_actual IS DISTINCT FROM p_expected THEN
    RAISE EXCEPTION 'coffer: concurrent change (% of % rows)', p_actual, p_expected USING ERRCODE = '40001';
  END IF;
  RETURN true;
END $$;

CREATE FUNCTION coffer_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'coffer: % is append-only (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'P0001';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION coffer_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION coffer_refuse_change();
