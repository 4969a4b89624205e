-- Hosted checkout: Stripe's Checkout Sessions (payment mode). A session owns one PaymentIntent, made with it;
-- it completes when that PaymentIntent is paid (or authorized) and expires at `expires_at` otherwise.
CREATE TABLE checkout_sessions (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  status text NOT NULL CHECK (status IN ('open', 'complete', 'expired')),
  payment_status text NOT NULL CHECK (payment_status IN ('unpaid', 'paid')),
  payment_intent_id text NOT NULL UNIQUE,
  amount_total bigint NOT NULL CHECK (amount_total > 0),
  currency text NOT NULL,
  line_items jsonb NOT NULL,
  success_url text NOT NULL,
  cancel_url text,
  customer_email text,
  payment_method_types jsonb NOT NULL,
  metadata jsonb NOT NULL,
  locale text,
  completed_at timestamptz
);
CREATE INDEX checkout_sessions_list ON checkout_sessions (merchant_id, livemode, seq);
CREATE INDEX checkout_sessions_open ON checkout_sessions (expires_at) WHERE status = 'open';

-- "A problem with this payment?" from the result page: a case for the merchant's support, attached to the payment.
CREATE TABLE support_cases (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial,
  created_at timestamptz NOT NULL,
  checkout_session_id text NOT NULL,
  payment_intent_id text NOT NULL,
  contact text,
  message text NOT NULL,
  status text NOT NULL CHECK (status IN ('open', 'closed'))
);
CREATE INDEX support_cases_list ON support_cases (merchant_id, livemode, seq);

-- Messages to shoppers (receipts, one-time codes). In test mode they are not sent: the sandbox outbox shows them.
CREATE TABLE shopper_messages (
  id text PRIMARY KEY,
  merchant_id text NOT NULL REFERENCES merchants (id),
  livemode boolean NOT NULL,
  seq bigserial,
  created_at timestamptz NOT NULL,
  channel text NOT NULL CHECK (channel IN ('email', 'sms')),
  recipient text NOT NULL,
  subject text NOT NULL,
  body text NOT NULL,
  reference text NOT NULL,
  UNIQUE (reference, channel, subject)
);

ALTER TABLE checkout_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkout_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON checkout_sessions
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
ALTER TABLE support_cases ENABLE ROW LEVEL SECURITY;
ALTER TABLE support_cases FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON support_cases
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());
ALTER TABLE shopper_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopper_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY merchant_scope ON shopper_messages
  USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())
  WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope());

-- Shoppers act on the hosted checkout (confirming a payment, opening a support case): the audit log names them by
-- their checkout session.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check CHECK (actor_type IN ('api_key', 'staff', 'system', 'shopper'));
