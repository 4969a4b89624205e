-- The serving role: what Coffer needs to serve, and no more. In production Coffer serves as a login role that is a
-- member of coffer_app and of nothing else, apart from the role that migrates and owns the schema
-- (docs/operations.md, "Database roles"; docs/decisions/0021-runtime-role.md). That role:
--   - reads and writes the tables of the service, but changes the ledger only through ledger_apply(), which runs
--     as the owner: the balances and transfers themselves refuse it, whatever settings its session makes;
--   - may only append to the audit trail, only advance its head, and only read the record of migrations;
--   - cannot read the vault's tables (they belong to coffer_vault, which it is not a member of), change the schema,
--     disable a trigger or take the owner's role.
-- The functions that run as their owner (the ledger's and the vault's) are executable by coffer_app only, not by
-- every role that can connect. Creating coffer_app needs a migrating user with CREATEROLE, as for coffer_vault; an
-- operator whose user cannot create roles creates it beforehand.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'coffer_app') THEN
    CREATE ROLE coffer_app NOLOGIN;
  END IF;
EXCEPTION
  WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database of the same server made it at the same moment
  WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'the role coffer_app does not exist, and this user may not create roles: as a superuser, run CREATE ROLE coffer_app NOLOGIN; then migrate again (docs/operations.md, "Database roles")'
      USING ERRCODE = 'P0001';
END $$;

-- ledger_apply() becomes a wrapper that runs as the ledger's owner. Row-level security no longer binds what it
-- does when that owner is a superuser or BYPASSRLS, so the wrapper itself refuses a merchant other than the one
-- the session is scoped to, as the policies would have. The engine it calls keeps its name and checks.
ALTER FUNCTION ledger_apply(text, boolean, text, jsonb, text, text) RENAME TO ledger_apply_unscoped;
REVOKE EXECUTE ON FUNCTION ledger_apply_unscoped(text, boolean, text, jsonb, text, text) FROM PUBLIC;
CREATE FUNCTION ledger_apply(p_merchant text, p_livemode boolean, p_currency text, p_commands jsonb,
                             p_payment_intent text, p_charge text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  IF coffer_merchant_scope() IS NOT NULL AND coffer_merchant_scope() IS DISTINCT FROM p_merchant THEN
    RAISE EXCEPTION 'coffer: ledger_apply() for merchant % while serving merchant %', p_merchant, coffer_merchant_scope()
      USING ERRCODE = '42501';
  END IF;
  PERFORM ledger_apply_unscoped(p_merchant, p_livemode, p_currency, p_commands, p_payment_intent, p_charge);
END $$;
REVOKE EXECUTE ON FUNCTION ledger_apply(text, boolean, text, jsonb, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_apply(text, boolean, text, jsonb, text, text) TO coffer_app;
REVOKE EXECUTE ON FUNCTION ledger_account_id(text, boolean, text, text) FROM PUBLIC;

DO $$
DECLARE
  s text := current_schema();
  f regprocedure;
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO coffer_app', s);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO coffer_app', s);
  EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO coffer_app', s);
  -- Tables and sequences that later migrations create (as the same owner) get the same grants.
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO coffer_app', s);
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO coffer_app', s);
  -- The wrapper's own search path is fixed, so that no schema of the caller's can stand in for the ledger's tables.
  EXECUTE format('ALTER FUNCTION ledger_apply(text, boolean, text, jsonb, text, text) SET search_path = %I, pg_temp', s);
  -- The vault's functions (SECURITY DEFINER since 0008) hand out ciphertexts and wrapped keys: to Coffer only.
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'vault' LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO coffer_app', f);
  END LOOP;
END $$;

REVOKE INSERT, UPDATE, DELETE ON ledger_accounts, ledger_transfers FROM coffer_app;
REVOKE UPDATE, DELETE ON audit_log, audit_seals, audit_checkpoints FROM coffer_app;
REVOKE INSERT, DELETE ON audit_chain_head FROM coffer_app;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM coffer_app;
