-- The card acquirer sandbox's own records: it is the provider's side of the wire in test mode, so it keeps its
-- state apart from Coffer's and answers from it, including after a crash of either side. No card numbers: the
-- sandbox keeps the last four digits it needs to answer.
CREATE TABLE sandbox_card_payments (
  id text PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,
  request_hash text NOT NULL,
  merchant_reference text NOT NULL,
  amount bigint NOT NULL,
  currency text NOT NULL,
  test_card text NOT NULL,
  status text NOT NULL CHECK (status IN ('authorized', 'captured', 'declined', 'voided', 'abandoned')),
  amount_captured bigint NOT NULL DEFAULT 0 CHECK (amount_captured >= 0 AND amount_captured <= amount),
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sandbox_card_operations (
  idempotency_key text PRIMARY KEY,
  payment_id text NOT NULL REFERENCES sandbox_card_payments (id),
  kind text NOT NULL CHECK (kind IN ('capture', 'void')),
  amount bigint NOT NULL,
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
