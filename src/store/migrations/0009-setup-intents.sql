-- SetupIntents: saving a card for later (off-session) payments, verified with the acquirer without moving money.
CREATE TABLE setup_intents (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  status text NOT NULL CHECK (status IN ('requires_payment_method', 'requires_confirmation', 'requires_action', 'processing', 'succeeded', 'canceled')),
  customer_id text REFERENCES customers (id),
  payment_method_id text REFERENCES payment_methods (id),
  usage text NOT NULL CHECK (usage IN ('off_session', 'on_session')),
  client_secret text NOT NULL,
  description text,
  metadata jsonb NOT NULL DEFAULT '{}',
  last_setup_error jsonb,
  cancellation_reason text,
  -- Coffer's key for the verification in flight at the acquirer, if any.
  verification_key text
);
CREATE INDEX setup_intents_merchant ON setup_intents (merchant_id, livemode, seq);
