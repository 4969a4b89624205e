-- Row-level security: the second wall between merchants (the first is the merchant_id condition in every query).
-- When the session setting coffer.merchant_id names a merchant (Coffer sets it for each merchant API request,
-- src/store/merchant-scope.ts), merchant-owned tables show, accept and change only that merchant's rows; when it
-- is empty (background jobs, the staff API), every row. FORCE makes the policy bind the tables' owner too, which
-- is usually the role Coffer runs as; only superusers and BYPASSRLS roles pass it.
CREATE FUNCTION coffer_merchant_scope() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT nullif(current_setting('coffer.merchant_id', true), '') $$;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY[
    'api_keys', 'charges', 'customer_balance_transactions', 'customers', 'disputes', 'events', 'idempotency_keys',
    'ledger_accounts', 'ledger_transfers', 'payment_intents', 'payment_methods', 'refunds', 'setup_intents', 'tokens',
    'webhook_deliveries', 'webhook_endpoints'
  ] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY merchant_scope ON %I USING (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope()) '
      'WITH CHECK (coffer_merchant_scope() IS NULL OR merchant_id = coffer_merchant_scope())', t);
  END LOOP;
END
$$;
