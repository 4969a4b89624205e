import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { merchantScope, withoutMerchantScope } from '../../src/store/merchant-scope.ts';
import { openPostgres, type OpenDatabase } from '../../src/store/open-database.ts';
import { createTestDatabaseUrl, openExistingTestDatabase, testDatabaseKind, type TestDatabase } from '../support/database.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

const appRole = 'coffer_rls_app';

// Goal: on PostgreSQL, row-level security is a second wall between merchants. Coffer running as an ordinary role
// serves two merchants as usual (the policies refuse nothing legitimate, and the cross-merchant audit still finds
// the other merchant's object); while a merchant's request is being served, a query that forgot its merchant
// condition sees only that merchant's rows, cannot write another merchant's rows, and changes none of them.
describe('row-level security between merchants (PostgreSQL)', { concurrency: false, skip: testDatabaseKind() === 'pglite' ? 'row-level security binds roles that are not superusers; the embedded database has only its superuser' : false }, () => {
  let admin: TestDatabase;
  let app: OpenDatabase;
  let server: TestServer;

  before(async () => {
    // As in production (docs/operations.md, "Database roles"): an ordinary role that migrates, so it owns the
    // tables, and may hand the vault's objects to coffer_vault. Roles belong to the cluster: created once.
    const url = await createTestDatabaseUrl();
    assert.ok(url !== undefined);
    const superuser = await openPostgres(url, 2);
    try {
      await sql.raw(`DO $$ BEGIN CREATE ROLE ${appRole} LOGIN NOSUPERUSER NOBYPASSRLS; EXCEPTION WHEN duplicate_object THEN NULL; END $$`).execute(superuser.db);
      for (const role of ['coffer_vault', 'coffer_app']) {
        await sql.raw(`DO $$ BEGIN CREATE ROLE ${role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`).execute(superuser.db);
      }
      const database = new URL(url).pathname.slice(1);
      for (const statement of [`GRANT coffer_vault TO ${appRole}`, `GRANT CREATE ON DATABASE ${database} TO ${appRole}`, `GRANT ALL ON SCHEMA public TO ${appRole}`]) {
        await sql.raw(statement).execute(superuser.db);
      }
    } finally {
      await superuser.close();
    }
    const appUrl = new URL(url);
    appUrl.username = appRole;
    app = await openPostgres(appUrl.toString(), 10);
    server = await startTestServer({ database: { ...app, url: appUrl.toString(), dataDir: undefined, drop: async () => app.close() } });
    admin = await openExistingTestDatabase({ url });
    // A witness of what each merchant request sets: every new payment records the session's merchant setting.
    await sql.raw(`CREATE TABLE rls_witness (payment_intent text, merchant_id text, setting text)`).execute(admin.db);
    await sql.raw(`CREATE FUNCTION rls_witness() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN
      INSERT INTO rls_witness VALUES (NEW.id, NEW.merchant_id, current_setting('coffer.merchant_id', true)); RETURN NEW; END $$`).execute(admin.db);
    await sql.raw(`CREATE TRIGGER rls_witness AFTER INSERT ON payment_intents FOR EACH ROW EXECUTE FUNCTION rls_witness()`).execute(admin.db);
    const owner = await sql<{ owner: string }>`SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'payment_intents'`.execute(admin.db);
    assert.equal(owner.rows[0]?.owner, appRole, 'Coffer\'s role owns its tables: FORCE makes the policies bind it anyway');
  });
  after(async () => {
    await server.close();
    await app.close();
    await admin.drop();
  });

  test('every table that holds a merchant\'s rows has the forced policy (audit_log excepted: refusals are audited against the merchant)', async () => {
    const tables = await sql<{ name: string; enabled: boolean; forced: boolean; policies: string }>`
      SELECT c.relname AS name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
             (SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname AND p.policyname = 'merchant_scope')::text AS policies
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'merchant_id' AND NOT a.attisdropped
       WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1`.execute(admin.db);
    assert.ok(tables.rows.length > 30, `${tables.rows.length} merchant-owned tables found`);
    // rls_witness is this test's own table (made in before()).
    const unguarded = tables.rows.filter((table) => !['audit_log', 'rls_witness'].includes(table.name) && !(table.enabled && table.forced && table.policies === '1')).map((table) => table.name);
    assert.deepEqual(unguarded, []);
    assert.ok(tables.rows.some((table) => table.name === 'wallet_late_payments'));
  });

  test('Coffer as an ordinary role: two merchants pay, refund and list as usual; a cross-merchant read is the 404 of an unknown id, and audited', async () => {
    const other = stripeClient(server, server.otherSecretKey);
    const mine = await server.stripe.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    assert.equal(mine.status, 'succeeded');
    await server.stripe.refunds.create({ payment_intent: mine.id, amount: 500 });
    await server.stripe.customers.create({ email: 'ann@example.com' });
    const theirs = await other.paymentIntents.create({ amount: 2500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    assert.equal(theirs.status, 'succeeded');
    assert.deepEqual((await server.stripe.paymentIntents.list()).data.map((intent) => intent.id), [mine.id]);
    const witnessed = await sql<{ payment_intent: string; merchant_id: string; setting: string }>`SELECT * FROM rls_witness`.execute(admin.db);
    assert.deepEqual(witnessed.rows.map((row) => row.setting), witnessed.rows.map((row) => row.merchant_id), 'each request ran scoped to its own merchant');
    assert.equal(witnessed.rows.length, 2);

    const crossed = await rawRequest(server, 'GET', `/v1/payment_intents/${theirs.id}`, { key: server.secretKey });
    assert.equal(crossed.status, 404);
    const audited = await admin.db.selectFrom('audit_log').select(['merchant_id', 'details']).where('action', '=', 'api_request.cross_merchant_access').where('object_id', '=', theirs.id).execute();
    assert.equal(audited.length, 1, 'the audit found the owner outside the request scope');
    assert.equal(audited[0]?.merchant_id, server.merchantId);
  });

  test('inside a merchant scope, a query without its merchant condition sees, writes and changes only that merchant\'s rows', async () => {
    const everyone = await withoutMerchantScope(() => app.db.selectFrom('payment_intents').select('merchant_id').execute());
    const merchants = new Set(everyone.map((row) => row.merchant_id));
    assert.ok(merchants.size >= 2, 'outside a request, every merchant is visible (jobs, staff)');
    const otherMerchant = [...merchants].find((id) => id !== server.merchantId) ?? '';

    await merchantScope.run({ merchantId: server.merchantId }, async () => {
      const seen = await app.db.selectFrom('payment_intents').select('merchant_id').execute();
      assert.ok(seen.length > 0 && seen.every((row) => row.merchant_id === server.merchantId), 'only this merchant\'s payments');
      for (const table of ['charges', 'refunds', 'customers', 'ledger_accounts', 'ledger_transfers', 'events', 'api_keys'] as const) {
        const rows = await app.db.selectFrom(table).select('merchant_id').execute();
        assert.ok(rows.every((row) => row.merchant_id === server.merchantId), table);
      }
      const changed = await app.db.updateTable('payment_intents').set({ description: 'changed by the wrong merchant' }).where('merchant_id', '=', otherMerchant).executeTakeFirst();
      assert.equal(changed.numUpdatedRows, 0n, 'another merchant\'s rows cannot be changed');
      const deleted = await app.db.deleteFrom('customers').where('merchant_id', '=', otherMerchant).executeTakeFirst();
      assert.equal(deleted.numDeletedRows, 0n);
      await assert.rejects(
        app.db.insertInto('customers').values({ id: 'cus_planted', merchant_id: otherMerchant, livemode: false, created_at: new Date() } as never).execute(),
        /row-level security/,
      );
    });
    // The same statement, prepared once on one connection and run past the point where PostgreSQL keeps a generic
    // plan, alternately for each merchant: each run sees only its own merchant's rows (the scope is read when the
    // statement runs, not when it was planned).
    assert.ok(server.database.url !== undefined);
    const single = await openPostgres(server.database.url, 1);
    try {
      for (let run = 0; run < 10; run += 1) {
        const merchantId = run % 2 === 0 ? server.merchantId : otherMerchant;
        const seen = await merchantScope.run({ merchantId }, () => single.db.selectFrom('payment_intents').select('merchant_id').where('amount', '>', 0n).execute());
        assert.ok(seen.length > 0 && seen.every((row) => row.merchant_id === merchantId), `run ${run}: only ${merchantId}'s payments`);
      }
      const kept = await sql<{ n: string }>`SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%"amount" > $1%'`.execute(single.db);
      assert.equal(Number(kept.rows[0]?.n), 1, 'the statement was prepared and reused');
    } finally {
      await single.close();
    }
    const untouched = await admin.db.selectFrom('payment_intents').select('description').where('merchant_id', '=', otherMerchant).execute();
    assert.ok(untouched.every((row) => row.description !== 'changed by the wrong merchant'));
    assert.equal((await admin.db.selectFrom('customers').select('id').where('id', '=', 'cus_planted').execute()).length, 0);
  });
});
