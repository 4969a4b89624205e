-- Disputes (chargebacks): opened by the acquirer on a captured charge, answered with evidence or accepted, then
-- won or lost. The disputed amount and a fee are withdrawn from the merchant when the dispute opens and
-- reinstated if it is won.
ALTER TABLE charges ADD COLUMN disputed boolean NOT NULL DEFAULT false;

ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_code_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_code_check
  CHECK (code IN ('provider_clearing', 'merchant_incoming', 'merchant_available', 'fees'));

CREATE TABLE disputes (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  charge_id text NOT NULL REFERENCES charges (id),
  payment_intent_id text NOT NULL REFERENCES payment_intents (id),
  amount bigint NOT NULL CHECK (amount > 0),
  fee bigint NOT NULL CHECK (fee >= 0),
  currency text NOT NULL,
  status text NOT NULL CHECK (status IN ('warning_needs_response', 'warning_under_review', 'warning_closed',
    'needs_response', 'under_review', 'won', 'lost', 'prevented')),
  reason text NOT NULL,
  network_reason_code text,
  evidence jsonb NOT NULL DEFAULT '{}',
  evidence_due_by timestamptz NOT NULL,
  submission_count integer NOT NULL DEFAULT 0,
  metadata jsonb NOT NULL DEFAULT '{}',
  provider_reference text NOT NULL UNIQUE,
  -- The merchant account the funds were withdrawn from, to reinstate them there.
  debited_account text NOT NULL CHECK (debited_account IN ('merchant_incoming', 'merchant_available'))
);
CREATE INDEX disputes_merchant ON disputes (merchant_id, livemode, seq);
CREATE INDEX disputes_charge ON disputes (charge_id);

CREATE TABLE sandbox_card_disputes (
  id text PRIMARY KEY,
  payment_id text NOT NULL REFERENCES sandbox_card_payments (id),
  amount bigint NOT NULL,
  status text NOT NULL CHECK (status IN ('needs_response', 'under_review', 'won', 'lost')),
  reason text NOT NULL,
  evidence jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The sandbox remembers, from the card, that a capture of this payment is followed by a dispute.
ALTER TABLE sandbox_card_payments ADD COLUMN disputes_after_capture boolean NOT NULL DEFAULT false;
