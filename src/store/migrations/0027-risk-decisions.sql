-- The risk engine's decisions: one per payment attempt, made before any provider is called, stored with
-- everything needed to replay it (the attributes the rules saw, the model's feature vector, the rule set and
-- model versions) and what it decided. Decisions are never changed.
CREATE TABLE risk_decisions (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  charge_id text NOT NULL UNIQUE,
  payment_intent_id text NOT NULL,
  created_at timestamptz NOT NULL,
  action text NOT NULL CHECK (action IN ('allow', 'request_step_up', 'review', 'block')),
  risk_score integer CHECK (risk_score BETWEEN 0 AND 100),
  risk_level text NOT NULL CHECK (risk_level IN ('normal', 'elevated', 'highest', 'not_assessed')),
  rule_id text,
  rule_set_id text,
  model_version text,
  degraded boolean NOT NULL,
  -- { attributes, features, forced_level, degraded_reasons } as the engine was given them.
  inputs jsonb NOT NULL,
  -- { matched, shadow_matches, reasons, probability, model_action, source }.
  result jsonb NOT NULL,
  -- Microseconds the whole decision took, gathering included.
  elapsed_us integer NOT NULL
);
CREATE INDEX risk_decisions_by_time ON risk_decisions (merchant_id, livemode, created_at);

-- Payments held for a person's decision (Stripe's Review object): opened when a `review` decision's payment is
-- authorized, closed by approving (capture) or rejecting (cancel, or refund when the money was already taken).
CREATE TABLE reviews (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial,
  charge_id text NOT NULL UNIQUE,
  payment_intent_id text NOT NULL,
  created_at timestamptz NOT NULL,
  open boolean NOT NULL,
  opened_reason text NOT NULL CHECK (opened_reason IN ('rule', 'model')),
  reasons jsonb NOT NULL,
  closed_reason text CHECK (closed_reason IN ('approved', 'canceled', 'refunded_as_fraud', 'disputed')),
  closed_at timestamptz,
  closed_by text,
  CHECK (open = (closed_reason IS NULL))
);
CREATE INDEX reviews_open ON reviews (merchant_id, livemode, open, seq);

-- What was learned about a payment afterwards, for the next training run: a review's outcome, a dispute.
CREATE TABLE risk_labels (
  charge_id text NOT NULL,
  source text NOT NULL CHECK (source IN ('review', 'dispute')),
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  fraud boolean NOT NULL,
  labeled_at timestamptz NOT NULL,
  PRIMARY KEY (charge_id, source)
);

-- The decision's summary on the attempt (what `outcome` shows), and its review.
ALTER TABLE charges ADD COLUMN risk jsonb;
ALTER TABLE charges ADD COLUMN review_id text;
-- The merchant's category code (ISO 18245), a model input.
ALTER TABLE merchants ADD COLUMN category text CHECK (category ~ '^[0-9]{4}$');

ALTER TABLE risk_decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE risk_decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON risk_decisions
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
ALTER TABLE reviews ENABLE ROW LEVEL SECURITY;
ALTER TABLE reviews FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON reviews
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
ALTER TABLE risk_labels ENABLE ROW LEVEL SECURITY;
ALTER TABLE risk_labels FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON risk_labels
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
