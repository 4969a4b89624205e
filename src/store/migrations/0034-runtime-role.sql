-- The runtime role: what Coffer needs to serve, and no more. In production Coffer runs as a login role that is a
-- member of coffer_app and of nothing else, apart from the role that migrates and owns the schema
-- (docs/operations.md, "Database roles"; docs/decisions/0021-runtime-role.md). That role:
--   - reads and writes the tables of the service, but changes the ledger only through ledger_apply(), which runs
--     as the owner: the balances and transfers themselves refuse it, whatever settings its session makes;
--   - may only append to the audit trail, and only read the record of migrations;
--   - cannot read the vault's tables (they belong to coffer_vault, which it is not a member of), change the schema,
--     disable a trigger or take the owner's role.
-- Creating the role needs a migrating user with CREATEROLE, as for coffer_vault; an operator whose user cannot
-- create roles creates coffer_app beforehand.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'coffer_app') THEN
    CREATE ROLE coffer_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL; -- another database of the same server made it at the same moment
END $$;

DO $$
DECLARE
  s text := current_schema();
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO coffer_app', s);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO coffer_app', s);
  EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO coffer_app', s);
  -- Tables and sequences that later migrations create (as the same owner) get the same grants.
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO coffer_app', s);
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO coffer_app', s);
  -- The ledger changes only inside ledger_apply(), which now runs as the ledger's owner, with a fixed search path.
  EXECUTE format('ALTER FUNCTION ledger_apply(text, boolean, text, jsonb, text, text) SECURITY DEFINER SET search_path = %I, pg_temp', s);
END $$;

REVOKE INSERT, UPDATE, DELETE ON ledger_accounts, ledger_transfers FROM coffer_app;
REVOKE UPDATE, DELETE ON audit_log, audit_seals, audit_checkpoints FROM coffer_app;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM coffer_app;
REVOKE EXECUTE ON FUNCTION ledger_account_id(text, boolean, text, text) FROM PUBLIC;
