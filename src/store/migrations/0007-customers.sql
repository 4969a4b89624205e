-- Customers, their saved payment methods, and their credit balance (goodwill compensation).
CREATE TABLE customers (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  email text,
  name text,
  phone text,
  description text,
  address jsonb,
  shipping jsonb,
  metadata jsonb NOT NULL DEFAULT '{}',
  -- Stripe's customer balance: negative is credit the customer holds, in `balance_currency`.
  balance bigint NOT NULL DEFAULT 0,
  balance_currency text,
  default_payment_method_id text,
  deleted_at timestamptz
);
CREATE INDEX customers_merchant ON customers (merchant_id, livemode, seq) WHERE deleted_at IS NULL;
CREATE INDEX customers_email ON customers (merchant_id, livemode, lower(email)) WHERE deleted_at IS NULL;

CREATE TABLE customer_balance_transactions (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  customer_id text NOT NULL REFERENCES customers (id),
  amount bigint NOT NULL CHECK (amount <> 0),
  currency text NOT NULL,
  ending_balance bigint NOT NULL,
  description text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  type text NOT NULL CHECK (type IN ('adjustment'))
);
CREATE INDEX customer_balance_transactions_customer ON customer_balance_transactions (customer_id, seq);

ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_code_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_code_check
  CHECK (code IN ('provider_clearing', 'merchant_incoming', 'merchant_available', 'fees', 'customer_credit'));
