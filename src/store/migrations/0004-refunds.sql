-- Refunds: each is one request to the acquirer, reserved against the charge before it is sent so that
-- concurrent refunds can never exceed what was captured.
ALTER TABLE charges ADD COLUMN amount_refunding bigint NOT NULL DEFAULT 0;
ALTER TABLE charges ADD CONSTRAINT charges_refunds_within_capture
  CHECK (amount_refunding >= 0 AND amount_refunded + amount_refunding <= amount_captured);

CREATE TABLE refunds (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  charge_id text NOT NULL REFERENCES charges (id),
  payment_intent_id text NOT NULL REFERENCES payment_intents (id),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'requires_action', 'succeeded', 'failed', 'canceled')),
  reason text CHECK (reason IN ('duplicate', 'fraudulent', 'requested_by_customer', 'expired_uncaptured_charge')),
  failure_reason text,
  metadata jsonb NOT NULL DEFAULT '{}',
  -- Coffer's idempotency key at the acquirer is the refund id; the acquirer's own id once it answers.
  provider_reference text,
  -- The idempotent request that created the refund, so that its retry can resume it after a crash.
  idempotency_key_id bigint,
  -- Which merchant account the refund was taken from (pending or available funds), to put it back on failure.
  debited_account text CHECK (debited_account IN ('merchant_incoming', 'merchant_available'))
);
CREATE INDEX refunds_merchant ON refunds (merchant_id, livemode, seq);
CREATE INDEX refunds_charge ON refunds (charge_id);
CREATE INDEX refunds_pending ON refunds (updated_at) WHERE status = 'pending';

-- The acquirer sandbox's refunds, and the notifications it sends (a refund that fails after it succeeded).
CREATE TABLE sandbox_card_refunds (
  id text PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,
  -- Null for a key closed by the caller before any refund was made ('abandoned').
  payment_id text REFERENCES sandbox_card_payments (id),
  reference text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  status text NOT NULL CHECK (status IN ('succeeded', 'failed', 'abandoned')),
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_card_refunds_payment ON sandbox_card_refunds (payment_id);

CREATE TABLE sandbox_card_notifications (
  id text PRIMARY KEY,
  due_at timestamptz NOT NULL,
  payload text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  delivered_at timestamptz
);
CREATE INDEX sandbox_card_notifications_due ON sandbox_card_notifications (due_at) WHERE delivered_at IS NULL;

-- The sandbox remembers, from the card it authorized, whether a refund of this payment will later fail
-- (Stripe's test card 4000000000005126).
ALTER TABLE sandbox_card_payments ADD COLUMN refund_fails boolean NOT NULL DEFAULT false;
