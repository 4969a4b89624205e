-- Webhook endpoints and the deliveries of events to them. The events table is the outbox: an event exists only
-- if the change it describes committed; the relay fans each one out to the endpoints that want it, and the
-- deliverer sends each delivery at least once, with backoff, recording every attempt.
CREATE TABLE webhook_endpoints (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  url text NOT NULL,
  description text,
  enabled_events jsonb NOT NULL,
  api_version text,
  status text NOT NULL CHECK (status IN ('enabled', 'disabled')),
  metadata jsonb NOT NULL DEFAULT '{}',
  -- The signing secret, encrypted with a key derived from the instance secret (AES-256-GCM).
  secret_ciphertext bytea NOT NULL,
  -- While a secret is rolled, the previous one signs too, until it expires.
  previous_secret_ciphertext bytea,
  previous_secret_expires_at timestamptz,
  deleted_at timestamptz
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, livemode, seq) WHERE deleted_at IS NULL;

ALTER TABLE events ADD COLUMN relayed boolean NOT NULL DEFAULT false;
CREATE INDEX events_to_relay ON events (seq) WHERE NOT relayed;

CREATE TABLE webhook_deliveries (
  id bigserial PRIMARY KEY,
  event_id text NOT NULL REFERENCES events (id),
  endpoint_id text NOT NULL REFERENCES webhook_endpoints (id),
  merchant_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  last_attempt_at timestamptz,
  last_status_code integer,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_attempts (
  id bigserial PRIMARY KEY,
  delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id),
  attempted_at timestamptz NOT NULL,
  latency_ms integer NOT NULL,
  status_code integer,
  error text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);
