import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { adminUsage, commandAdmin } from '../../src/cli/admin-command.ts';
import { apiKeysUsage, commandApiKeys } from '../../src/cli/api-keys-command.ts';
import { auditUsage, commandAudit } from '../../src/cli/audit-command.ts';
import { UsageError } from '../../src/cli/parse-command-line.ts';
import { commandMerchants, merchantsUsage } from '../../src/cli/merchants-command.ts';
import { commandRisk, riskUsage } from '../../src/cli/risk-command.ts';
import { commandRiskExport, riskExportUsage } from '../../src/cli/risk-export-command.ts';
import type { Config } from '../../src/platform/config.ts';
import { openPGlite } from '../../src/store/open-database.ts';
import { openExistingTestDatabase, createMigratedTestDatabaseUrl, createTestDatabaseUrl, dropPostgresDatabase } from '../support/database.ts';
import { spawnCoffer } from '../support/process.ts';
import { createSoftHsmToken, softHsmMissing } from '../support/softhsm.ts';
import { rawRequest } from '../support/server.ts';
import { TestClock } from '../support/clock.ts';
import { enrollWithToken, StaffClient } from '../support/staff.ts';
import { copyTree, removeTree } from '../support/files.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-cli-'));

function coffer(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [path.join(root, 'bin/coffer.js'), ...args], {
    env: { PATH: process.env.PATH, COFFER_HOME: home, COFFER_LOG_LEVEL: 'warn', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `coffer` as coffer() runs it, without waiting: several of these run side by side. */
function cofferAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ args: string; status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(root, 'bin/coffer.js'), ...args], {
    env: { PATH: process.env.PATH, COFFER_HOME: home, COFFER_LOG_LEVEL: 'warn', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  // None of these should run for long: one that does (a server started by mistake) is stopped, and fails.
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => child.on('close', (status) => {
    clearTimeout(timer);
    resolve({ args: args.join(' '), status, stdout, stderr });
  }));
}

/** A TCP port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs `query` on a test database without migrating it, as the test helpers that open one do. */
async function readDatabase<T>(location: { url?: string | undefined; dataDir: string }, query: string): Promise<T[]> {
  if (location.url !== undefined) {
    const client = new pg.Client({ connectionString: location.url });
    await client.connect();
    try {
      return (await client.query(query)).rows as T[];
    } finally {
      await client.end();
    }
  }
  const database = await openPGlite(location.dataDir, 'os', undefined, 'command');
  try {
    return (await sql.raw(query).execute(database.db)).rows as T[];
  } finally {
    await database.close();
  }
}

// Goal: the `coffer` command does what the README says: migrate, and `ledger verify` exits 0 on a sound ledger
// and 1, naming the violation, on a tampered one; bad configuration and unknown commands are clear errors.
describe('the coffer command', { concurrency: false }, () => {
  after(() => removeTree(home));

  test('migrate, pay, verify, tamper, verify again', async () => {
    const url = await createTestDatabaseUrl();
    const env = url === undefined ? {} : { DATABASE_URL: url };
    if (url === undefined && process.env.COFFER_TEST_PGLITE_TEMPLATE !== undefined) {
      copyTree(process.env.COFFER_TEST_PGLITE_TEMPLATE, path.join(home, 'db'));
    }
    const migrated = coffer(['migrate'], env);
    assert.equal(migrated.status, 0, migrated.stderr);
    assert.match(migrated.stdout, /Applied: |up to date/);
    const again = coffer(['migrate'], env);
    assert.match(again.stdout, /The database is up to date\./);
    if (url !== undefined) {
      // A PostgreSQL database that is not there is refused naming where Coffer looked (3: cannot be opened).
      const absent = new URL(url);
      absent.pathname = '/coffer_no_such_database';
      const missing = coffer(['migrate'], { DATABASE_URL: absent.toString() });
      assert.equal(missing.status, 3, missing.stderr);
      assert.match(missing.stderr, /could not open the database, so nothing was changed: database "coffer_no_such_database" does not exist \(the database postgres:\/\/[^ ]*\/coffer_no_such_database\)/);
    }

    const server = await spawnCoffer(home, { ...env, COFFER_JOBS: 'false' });
    // The tests reach PostgreSQL as its superuser, which doctor rightly calls a problem; the embedded start is sound.
    if (url === undefined) assert.doesNotMatch(server.output(), /problem\(s\) with this installation/, 'a sound start names no problem');
    else assert.match(server.output(), /problem\(s\) with this installation[^]*database_role: Coffer connects as [a-z_]+, a superuser/);
    for (const body of ['amount=1500&currency=usd&payment_method=pm_card_visa&confirm=true',
      'amount=900&currency=eur&payment_method=pm_card_visa&capture_method=manual&confirm=true']) {
      const response = await rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body });
      assert.equal(response.status, 200, response.body);
    }
    if (url === undefined) {
      // The running server holds the embedded database: neither command may pass that off as a verdict.
      const held = coffer(['ledger', 'verify'], env);
      assert.equal(held.status, 3, held.stdout + held.stderr);
      assert.match(held.stderr, /could not open the database, so nothing was checked or changed: the embedded database .* is in use by process \d+/);
      const doctor = coffer(['doctor'], env);
      assert.match(doctor.stdout, /The database could not be opened, so its checks were skipped/);
      assert.equal(doctor.status, 3, 'skipped checks are no verdict');
    }
    await server.kill('SIGTERM');

    const clean = coffer(['ledger', 'verify'], env);
    assert.equal(clean.status, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /Checked \d+ accounts and 2 transfers in 2 currencies\./);
    assert.match(clean.stdout, /every invariant holds/);

    const database = await openExistingTestDatabase({ url, dataDir: path.join(home, 'db') });
    try {
      await sql`ALTER TABLE ledger_accounts DISABLE TRIGGER ledger_accounts_balances_guarded`.execute(database.db);
      await sql`UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE code = 'merchant_incoming' AND currency = 'usd'`.execute(database.db);
      await sql`ALTER TABLE ledger_accounts ENABLE TRIGGER ledger_accounts_balances_guarded`.execute(database.db);
    } finally {
      await database.close();
    }
    const tampered = coffer(['ledger', 'verify'], env);
    assert.equal(tampered.status, 1, tampered.stdout + tampered.stderr);
    assert.match(tampered.stdout, /VIOLATION currency_balances: usd/);
    assert.match(tampered.stdout, /VIOLATION account_equals_entries: account \d+ \(merchant_incoming usd\)/);
    if (url !== undefined) await (await openExistingTestDatabase({ url })).drop();
  });

  // A check that passes on the wrong target is worse than none, and a write that lands in a new installation made
  // by mistake is lost: only start and migrate create or migrate a database.
  test('every command but start and migrate, on a home without a database (PGlite) or a database without Coffer (PostgreSQL), exits 2 and changes nothing', async () => {
    const emptyHome = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-cli-typo-'));
    const exportFile = `${emptyHome}-export.csv`;
    // One of each command that opens the database (its subcommands open it the same way), those that write first.
    const commands = [
      ['apikeys', 'create', '--merchant', 'acct_x'], ['audit', 'seal'], ['keys', 'rotate'], ['admin', 'create', '--email', 'ops@example.com', '--name', 'Ops'],
      ['risk', 'export', '--output', exportFile], ['ledger', 'verify'], ['doctor'],
    ];
    const url = await createTestDatabaseUrl();
    try {
      // The home directory as mistyped, on PGlite; on PostgreSQL, a database without Coffer's tables.
      const env = { COFFER_HOME: emptyHome, ...(url === undefined ? {} : { DATABASE_URL: url }) };
      for (const result of await Promise.all(commands.map((args) => cofferAsync(args, env)))) {
        assert.equal(result.status, 2, `${result.args}: ${result.stdout}${result.stderr}`);
        assert.match(result.stderr, url === undefined
          ? /^coffer: no embedded database in \S*coffer-cli-typo-\w+: set COFFER_HOME \(or DATABASE_URL\) to the installation, or create its database with `coffer migrate`/
          : /^coffer: the database postgres:\/\/\S+ holds no Coffer database \(no schema_migrations table\); nothing was checked or changed\. .*`coffer migrate`/, result.args);
      }
      assert.deepEqual(fs.readdirSync(emptyHome), [], 'nothing was created in the home directory: no database, key or secret');
      assert.equal(fs.existsSync(exportFile), false, 'no export was written');
      if (url !== undefined) {
        const tables = await readDatabase<{ n: number }>({ url, dataDir: '' }, "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
        assert.equal(tables[0]?.n, 0, 'no table was created');
      }
    } finally {
      removeTree(emptyHome);
      if (url !== undefined) await dropPostgresDatabase(process.env.COFFER_TEST_DATABASE_URL ?? '', url);
    }
  });

  // A database a later `coffer migrate` would change is refused as it is, even by the commands that write to it.
  test('a database not migrated to this version: a command that writes exits 2 naming the missing migration, and migrates nothing', async () => {
    const behindHome = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-cli-behind-'));
    const url = await createMigratedTestDatabaseUrl();
    const location = { url, dataDir: path.join(behindHome, 'db') };
    const env = { COFFER_HOME: behindHome, ...(url === undefined ? {} : { DATABASE_URL: url }) };
    if (url === undefined && process.env.COFFER_TEST_PGLITE_TEMPLATE !== undefined) {
      copyTree(process.env.COFFER_TEST_PGLITE_TEMPLATE, location.dataDir);
    }
    try {
      // Migrated as this version would, then its last migration's record taken away.
      const database = await openExistingTestDatabase(location);
      const removed = await sql<{ version: number }>`DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations) RETURNING version`.execute(database.db);
      await database.close();
      const latest = removed.rows[0];
      assert.ok(latest !== undefined);
      const refused = coffer(['admin', 'create', '--email', 'ops@example.com', '--name', 'Ops'], env);
      assert.equal(refused.status, 2, refused.stdout + refused.stderr);
      assert.match(refused.stderr, new RegExp(`is not migrated to this version of Coffer \\(missing ${String(latest.version).padStart(4, '0')}-[\\w-]+\\): `
        + 'run `coffer migrate` first; nothing was checked or changed'));
      const [after] = await readDatabase<{ applied: number; staff: number }>(location,
        `SELECT (SELECT count(*)::int FROM schema_migrations WHERE version = ${latest.version}) AS applied, (SELECT count(*)::int FROM staff_users) AS staff`);
      assert.deepEqual({ ...after }, { applied: 0, staff: 0 }, 'nothing was migrated, and no owner created');
    } finally {
      removeTree(behindHome);
      if (url !== undefined) await dropPostgresDatabase(process.env.COFFER_TEST_DATABASE_URL ?? '', url);
    }
  });

  // Exit 1 from ledger verify says a violation was found: a database it cannot reach is 3, as its help says; the
  // other commands say the same, naming the database.
  test('a database that cannot be reached, does not exist or refuses the role: exit 3, nothing checked', async () => {
    const unreachable = `postgres://coffer@127.0.0.1:${await closedPort()}/nowhere`;
    const urls = [unreachable];
    const adminUrl = process.env.COFFER_TEST_DATABASE_URL;
    if (adminUrl !== undefined && adminUrl !== '') {
      const noDatabase = new URL(adminUrl);
      noDatabase.pathname = `/coffer_missing_${process.pid}`;
      const noRole = new URL(adminUrl);
      noRole.username = `coffer_nobody_${process.pid}`;
      urls.push(noDatabase.toString(), noRole.toString());
    }
    const runs = urls.flatMap((url) => [['ledger', 'verify'], ['apikeys', 'list', '--merchant', 'acct_x']].map((args) => ({ url, args })));
    const results = await Promise.all(runs.map(({ url, args }) => cofferAsync(args, { DATABASE_URL: url })));
    results.forEach((result, i) => {
      assert.equal(result.status, 3, `${result.args} on ${runs[i]?.url ?? ''}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, /^coffer: could not open the database, so nothing was checked or changed: .*(ECONNREFUSED|does not exist).* \(the database postgres:\/\/\S+\)$/m);
    });
    assert.match(results[0]?.stderr ?? '', /connect ECONNREFUSED 127\.0\.0\.1:\d+ \(the database postgres:\/\/coffer@127\.0\.0\.1:\d+\/nowhere\)/);
  });

  test('apikeys: create a restricted key limited to an address, list, roll, revoke, bad input changes nothing; audit: seal, verify, export, tampering found', async () => {
    const keysHome = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-cli-keys-'));
    const url = await createMigratedTestDatabaseUrl();
    const env = { COFFER_HOME: keysHome, ...(url === undefined ? {} : { DATABASE_URL: url }) };
    try {
      let server = await spawnCoffer(keysHome, { ...env, COFFER_JOBS: 'false' });
      await server.kill('SIGTERM');
      const { merchantId } = JSON.parse(fs.readFileSync(path.join(keysHome, 'demo-merchant.json'), 'utf8')) as { merchantId: string };
      const listed = () => coffer(['apikeys', 'list', '--merchant', merchantId], env).stdout.trim().split('\n');
      assert.equal(listed().length, 2, 'the demo merchant has its two keys');

      const refusals: Array<[string[], RegExp]> = [
        [['--type', 'restricted', '--permission', 'payouts:write'], /Unknown resource in permission "payouts:write"/],
        [['--type', 'restricted'], /needs at least one permission/],
        [['--type', 'restricted', '--permission', 'refunds:read', '--allow', '300.1.1.1'], /"300\.1\.1\.1" is not an IP address/],
      ];
      // Refused before the database is opened: side by side, on PGlite, they would otherwise find it in use.
      const refused = await Promise.all(refusals.map(([args]) => cofferAsync(['apikeys', 'create', '--merchant', merchantId, ...args], env)));
      refused.forEach((result, i) => {
        assert.equal(result.status, 1, result.args + result.stdout + result.stderr);
        assert.match(result.stderr, refusals[i]?.[1] ?? /never/);
      });
      const badOverlap = coffer(['apikeys', 'roll', 'key_x', '--overlap-hours', 'soon'], { ...env, COFFER_HOME: path.join(keysHome, 'never-made') });
      assert.deepEqual([badOverlap.status, badOverlap.stderr], [1, 'coffer: --overlap-hours must be a whole number of hours, not "soon".\n'], 'refused before any database is looked for');
      const unknownMerchant = coffer(['apikeys', 'create', '--merchant', 'acct_nobody'], env);
      assert.equal(unknownMerchant.status, 1, unknownMerchant.stdout + unknownMerchant.stderr);
      assert.match(unknownMerchant.stderr, /No such merchant: 'acct_nobody'/);
      const listUnknown = coffer(['apikeys', 'list', '--merchant', 'acct_nobody'], env);
      assert.deepEqual([listUnknown.status, listUnknown.stdout], [1, ''], 'a mistyped merchant is not one without keys');
      assert.match(listUnknown.stderr, /No such merchant: 'acct_nobody'/);
      assert.equal(listed().length, 2, 'the refused commands created nothing');
      assert.equal(coffer(['apikeys', 'create'], env).status, 2, 'usage');

      const created = coffer(['apikeys', 'create', '--merchant', merchantId, '--type', 'restricted', '--permission', 'payment_intents:write',
        '--allow', '127.0.0.1', '--name', 'checkout server'], env);
      assert.equal(created.status, 0, created.stderr);
      const key = /^(rk_test_\w+)$/m.exec(created.stdout)?.[1] ?? '';
      const keyId = /Created (key_\w+)/.exec(created.stdout)?.[1] ?? '';
      assert.ok(key !== '' && keyId !== '', created.stdout);
      const row = listed().find((line) => line.startsWith(keyId)) ?? '';
      assert.match(row, /restricted {2}test {2}…\w{4} {2}active {2}last used never {2}permissions payment_intents:write {2}from 127\.0\.0\.1\/32 {2}checkout server/);
      assert.equal(row.includes(key), false, 'list never shows a key');

      // A second merchant, with its test keys, beside the demo one.
      const second = coffer(['merchants', 'create', '--name', '  Second shop '], env);
      assert.equal(second.status, 0, second.stderr);
      const secondId = /Created merchant (acct_\w+) \(Second shop\)/.exec(second.stdout)?.[1] ?? '';
      const secondSecret = /secret key {7}(sk_test_\w+)/.exec(second.stdout)?.[1] ?? '';
      const secondPublishable = /publishable key {2}(pk_test_\w+)/.exec(second.stdout)?.[1] ?? '';
      assert.ok(secondId !== '' && secondSecret !== '' && secondPublishable !== '', second.stdout);
      const merchants = coffer(['merchants', 'list'], env);
      assert.equal(merchants.status, 0, merchants.stderr);
      assert.match(merchants.stdout, new RegExp(`^${merchantId} {2}\\S+ {2}3 key\\(s\\) not revoked {2}Demo merchant\n${secondId} {2}\\S+ {2}2 key\\(s\\) not revoked {2}Second shop\n$`));
      // Card data from the merchant's servers in live mode: refused until the operator allows it, which is audited.
      const shown = coffer(['merchants', 'raw-card-data', '--merchant', secondId], env);
      assert.deepEqual([shown.status, shown.stdout.trim()], [0, `${secondId}: card numbers sent to the live API with a secret or restricted key are refused (raw_card_data_refused).`], shown.stderr);
      const allowed = coffer(['merchants', 'raw-card-data', '--merchant', secondId, '--allow'], env);
      assert.equal(allowed.status, 0, allowed.stderr);
      assert.match(allowed.stdout, /now its servers may send card numbers to the live API .*Recorded in the audit log\./);
      const again = coffer(['merchants', 'raw-card-data', '--merchant', secondId, '--allow'], env);
      assert.match(again.stdout, /unchanged; its servers may send/);
      const nobody = coffer(['merchants', 'raw-card-data', '--merchant', 'acct_nobody', '--refuse'], env);
      assert.deepEqual([nobody.status, /No such merchant: 'acct_nobody'/.test(nobody.stderr)], [1, true], nobody.stderr + nobody.stdout);

      server = await spawnCoffer(keysHome, { ...env, COFFER_JOBS: 'false' });
      const paid = await rawRequest(server, 'POST', '/v1/payment_intents', { key, body: 'amount=700&currency=usd&payment_method=pm_card_visa&confirm=true' });
      assert.equal(paid.status, 200, paid.body);
      const outOfScope = await rawRequest(server, 'GET', '/v1/customers', { key });
      assert.equal(outOfScope.status, 403, outOfScope.body);
      const ownPayment = await rawRequest(server, 'POST', '/v1/payment_intents', { key: secondSecret, body: 'amount=900&currency=eur&payment_method=pm_card_visa&confirm=true' });
      assert.deepEqual([ownPayment.status, ownPayment.json.status], [200, 'succeeded'], ownPayment.body);
      assert.equal((await rawRequest(server, 'GET', `/v1/payment_intents/${String(paid.json.id)}`, { key: secondSecret })).status, 404, 'merchants see only their own');
      const listedByPublishable = await rawRequest(server, 'GET', '/v1/payment_intents', { key: secondPublishable });
      assert.deepEqual([listedByPublishable.status, (listedByPublishable.json.error as { code?: string }).code], [401, 'secret_key_required'], 'its publishable key works as any other');
      await server.kill('SIGTERM');

      const rolled = coffer(['apikeys', 'roll', keyId, '--overlap-hours', '0'], env);
      assert.equal(rolled.status, 0, rolled.stderr);
      const newKey = /^(rk_test_\w+)$/m.exec(rolled.stdout)?.[1] ?? '';
      const newKeyId = /to (key_\w+)/.exec(rolled.stdout)?.[1] ?? '';
      assert.equal(coffer(['apikeys', 'roll', keyId], env).status, 1, 'a key is rolled once');
      server = await spawnCoffer(keysHome, { ...env, COFFER_JOBS: 'false' });
      assert.equal((await rawRequest(server, 'GET', '/v1/payment_intents', { key })).status, 401, 'rolled without overlap: the old key stopped');
      assert.equal((await rawRequest(server, 'GET', '/v1/payment_intents', { key: newKey })).status, 200, 'the new key has the same powers');
      assert.equal((await rawRequest(server, 'GET', '/v1/customers', { key: newKey })).status, 403, 'and no more');
      await server.kill('SIGTERM');

      const revoked = coffer(['apikeys', 'revoke', newKeyId], env);
      assert.equal(revoked.status, 0, revoked.stderr);
      assert.match(listed().find((line) => line.startsWith(newKeyId)) ?? '', /revoked /);
      assert.equal(coffer(['apikeys', 'revoke', newKeyId], env).status, 1, 'a key is revoked once');

      // The audit log of all that: sealed, verified, exported, and tampering found in the export and in the database.
      const sealed = coffer(['audit', 'seal'], env);
      assert.equal(sealed.status, 0, sealed.stderr);
      assert.match(sealed.stdout, /Signed checkpoint \d+ with ack_\w{16}/);
      const intact = coffer(['audit', 'verify'], env);
      assert.equal(intact.status, 0, intact.stdout + intact.stderr);
      assert.match(intact.stdout, /The audit log is intact/);
      const exportFile = path.join(keysHome, 'audit.jsonl');
      const exported = coffer(['audit', 'export', '--output', exportFile], env);
      assert.equal(exported.status, 0, exported.stderr);
      const auditKeyId = /--key-id (ack_\w{16})/.exec(exported.stdout)?.[1] ?? '';
      const exportChecked = coffer(['audit', 'verify', '--file', exportFile, '--key-id', auditKeyId], env);
      assert.equal(exportChecked.status, 0, exported.stdout + exportChecked.stdout + exportChecked.stderr);
      assert.equal(coffer(['audit', 'verify', '--file', exportFile, '--key-id', 'ack_0000000000000000'], env).status, 1, 'pinned to another key');
      const text = fs.readFileSync(exportFile, 'utf8');
      fs.writeFileSync(exportFile, text.replace('"action":"api_key.roll"', '"action":"api_key.create"'));
      const editedExport = coffer(['audit', 'verify', '--file', exportFile, '--key-id', auditKeyId], env);
      assert.equal(editedExport.status, 1, editedExport.stdout + editedExport.stderr);
      assert.match(editedExport.stdout, /TAMPERED record \d+: changed, or moved, since it was sealed/);
      const database = await openExistingTestDatabase({ url, dataDir: path.join(keysHome, 'db') });
      try {
        await sql`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`.execute(database.db);
        await sql`UPDATE audit_log SET actor_id = 'someone-else' WHERE action = 'api_key.revoke'`.execute(database.db);
        await sql`ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`.execute(database.db);
      } finally {
        await database.close();
      }
      const tampered = coffer(['audit', 'verify'], env);
      assert.equal(tampered.status, 1, tampered.stdout);
      assert.match(tampered.stdout, /TAMPERED record \d+: changed, or moved, since it was sealed/);
    } finally {
      removeTree(keysHome);
      if (url !== undefined) await (await openExistingTestDatabase({ url })).drop();
    }
  });

  test('start says what coffer doctor would call a problem, on the terminal and in the log', async () => {
    const unsound = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-unsound-'));
    try {
      const server = await spawnCoffer(unsound, { COFFER_JOBS: 'false', COFFER_EMBEDDED_DURABILITY: 'os' });
      // The log is written asynchronously: its line may land just after "Ready" (waited for, at most 10 s).
      const logged = /"level":40,.*"check":"durability","msg":"doctor: /;
      for (let waited = 0; !logged.test(server.output()) && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      await server.kill();
      assert.match(server.output(), /1 problem\(s\) with this installation \(coffer doctor lists them, with its warnings\):\n  durability: /);
      assert.match(server.output(), logged, 'and a warning in the log');
    } finally {
      removeTree(unsound);
    }
  });

  test('admin create: the first owner, and a second, no more; the token enrolls them on the running server, and they sign in', async () => {
    const adminHome = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-admin-'));
    const url = await createMigratedTestDatabaseUrl();
    const env = { COFFER_HOME: adminHome, ...(url === undefined ? {} : { DATABASE_URL: url }) };
    if (url === undefined && process.env.COFFER_TEST_PGLITE_TEMPLATE !== undefined) {
      copyTree(process.env.COFFER_TEST_PGLITE_TEMPLATE, path.join(adminHome, 'db'));
    }
    try {
      // The command works on an installation: it neither creates nor migrates the database (both are the runner's
      // migrated copies).
      const badEmail = coffer(['admin', 'create', '--email', 'not-an-email', '--name', 'Ops'], env);
      assert.equal(badEmail.status, 1);
      assert.match(badEmail.stderr, /--email must be an email address/);
      const created = coffer(['admin', 'create', '--email', 'Ops@Example.com', '--name', 'Ops Lead'], env);
      assert.equal(created.status, 0, created.stderr);
      const token = /enrollment token[^\n]*\n\s+(\S+)/.exec(created.stdout)?.[1] ?? '';
      assert.ok(token.length >= 40, created.stdout);
      assert.match(created.stdout, new RegExp(`https://localhost:\\d+/staff/enroll#${token}`), 'the enrollment link carries the token in its fragment');
      // A second owner from the host, as approvals need two people; not a third.
      const second = coffer(['admin', 'create', '--email', 'second@example.com', '--name', 'Second'], env);
      assert.equal(second.status, 0, second.stderr);
      const third = coffer(['admin', 'create', '--email', 'third@example.com', '--name', 'Third'], env);
      assert.equal(third.status, 1);
      assert.match(third.stderr, /Two owners or administrators already exist/);
      const server = await spawnCoffer(adminHome, env);
      try {
        const internalPort = Number(/Staff API\s+https:\/\/[^:]+:(\d+)\/staff\/v1/.exec(server.output())?.[1]);
        // The server keeps real time: the enrollment code is the current one, the sign-in code the next step's
        // (within the accepted tolerance), because a code is accepted once.
        const clock = new TestClock();
        clock.offsetMs = -30_000;
        const owner = new StaffClient({ port: internalPort, agent: server.agent }, clock);
        await enrollWithToken(owner, token, 'copper-kettle-meadow-stone-58');
        assert.equal(owner.email, 'ops@example.com');
        const signedIn = await owner.signIn();
        assert.equal(signedIn.status, 200, signedIn.body);
        assert.equal((signedIn.json.user as { role: string }).role, 'owner');
      } finally {
        await server.kill('SIGTERM');
      }
    } finally {
      removeTree(adminHome);
    }
  });

  test('keys in an HSM: coffer start pays by card with the KEK in SoftHSM2, coffer keys rotate re-wraps inside it, old cards still pay',
    { skip: softHsmMissing() }, async () => {
      const hsmHome = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-cli-hsm-'));
      const url = await createMigratedTestDatabaseUrl();
      const token = createSoftHsmToken('coffer-cli');
      const env = { COFFER_HOME: hsmHome, COFFER_JOBS: 'false', ...token.env, ...(url === undefined ? {} : { DATABASE_URL: url }) };
      let server: Awaited<ReturnType<typeof spawnCoffer>> | undefined;
      try {
        server = await spawnCoffer(hsmHome, env);
        const { publishableKey } = JSON.parse(fs.readFileSync(path.join(hsmHome, 'demo-merchant.json'), 'utf8')) as { publishableKey: string };
        const saved = await rawRequest(server, 'POST', '/v1/payment_methods', { key: publishableKey, body: 'type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2031&card[cvc]=123' });
        assert.equal(saved.status, 200, saved.body);
        const method = (JSON.parse(saved.body) as { id: string }).id;
        // Saved to a customer by its first payment, so that it may pay again (a guest's card pays once).
        const customer = (JSON.parse((await rawRequest(server, 'POST', '/v1/customers', { key: server.secretKey, body: 'email=hsm@example.com' })).body) as { id: string }).id;
        const pay = async (save = false) => {
          assert.ok(server !== undefined);
          return rawRequest(server, 'POST', '/v1/payment_intents', {
            key: server.secretKey, body: `amount=2500&currency=usd&customer=${customer}&payment_method=${method}&confirm=true${save ? '&setup_future_usage=off_session' : ''}`,
          });
        };
        assert.equal((await pay(true)).status, 200);
        await server.kill('SIGTERM');
        assert.equal(fs.existsSync(path.join(hsmHome, 'keys', 'kek')), false, 'no key-encryption key file is written');

        const rotated = coffer(['keys', 'rotate'], env);
        assert.equal(rotated.status, 0, rotated.stdout + rotated.stderr);
        assert.match(rotated.stdout, /Key-encryption key kek_1 replaced by kek_2\./);
        assert.match(rotated.stdout, /Data keys: 1 examined, 1 re-wrapped, 0 already current, 0 failed\./);

        server = await spawnCoffer(hsmHome, env);
        const again = await pay();
        assert.equal(again.status, 200, again.body);
        assert.equal((JSON.parse(again.body) as { status: string }).status, 'succeeded', 'the card saved before the rotation still pays');
        await server.kill('SIGTERM');

        const wrongToken = coffer(['keys', 'rotate'], { ...env, COFFER_KEK_PKCS11_TOKEN: 'elsewhere' });
        assert.equal(wrongToken.status, 1, wrongToken.stdout + wrongToken.stderr);
        assert.match(wrongToken.stderr, /no PKCS#11 token is labelled "elsewhere"/);
        const halfConfigured = coffer(['keys', 'rotate'], { ...env, COFFER_KEK_PKCS11_PIN_FILE: '' });
        assert.equal(halfConfigured.status, 78);
        assert.match(halfConfigured.stderr, /COFFER_KEK_PKCS11_MODULE, COFFER_KEK_PKCS11_TOKEN, COFFER_KEK_PKCS11_PIN_FILE must be set together/);
      } finally {
        await server?.kill(); // a failed assertion must not leave the server running
        if (url !== undefined) await (await openExistingTestDatabase({ url })).drop();
        removeTree(hsmHome);
      }
    });

  // Goal: every command answers --help with its own usage and exit codes, and refuses what it does not take (an
  // unknown subcommand or option, an argument too many) with 2, naming it, before it reads its configuration or
  // touches a database: a mistyped command line changes nothing. The dispatch and the messages as printed run as
  // the command; the commands with options of their own are also called here, which is quicker.
  test('--help, --version, unknown subcommands and options, extra arguments', async () => {
    const nowhere = path.join(home, 'never-made');
    const helps: Array<[string[], string]> = [
      [['start', '--help'], 'coffer start'], [['migrate', '-h'], 'coffer migrate'], [['ledger', 'verify', '--help'], 'coffer ledger verify'],
      [['keys', 'rotate', '--help'], 'coffer keys rotate'], [['doctor', '--help'], 'coffer doctor'], [['help', 'apikeys'], 'coffer apikeys create'],
    ];
    const refusals: Array<[string[], string]> = [
      [['ledger', 'bogus'], 'unknown ledger command "bogus": use verify'],
      [['start', 'extra'], 'unexpected argument "extra" for coffer start'],
      [['migrate', 'extra'], 'unexpected argument "extra" for coffer migrate'],
      [['ledger', 'verify', 'extra'], 'unexpected argument "extra" for coffer ledger verify'],
      [['apikeys', 'list', '--merchant', 'acct_x', '--everything'], 'unknown option "--everything" for coffer apikeys'],
      [['--verbose'], 'unknown option "--verbose"'],
    ];
    // Asking how needs no configuration: a broken one is reported when the command runs.
    const [helped, refused, version] = await Promise.all([
      Promise.all(helps.map(([args]) => cofferAsync(args, { COFFER_HOME: nowhere, COFFER_PORT: 'eighty' }))),
      Promise.all(refusals.map(([args]) => cofferAsync(args, { COFFER_HOME: nowhere }))),
      cofferAsync(['--version'], { COFFER_HOME: nowhere }),
    ]);
    helped.forEach((result, i) => {
      const [args, names] = helps[i] ?? [[], ''];
      assert.equal(result.status, 0, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stdout, /^Usage:\n/, args.join(' '));
      assert.ok(result.stdout.includes(names), `${args.join(' ')} shows its own usage: ${result.stdout}`);
      assert.equal(result.stdout.includes('Environment:'), false, `${args.join(' ')} is not the general help`);
      if (args[0] !== 'start' && args[0] !== 'migrate') assert.match(result.stdout, /Exit codes: 0 [^]*\b2 no Coffer database there[^]*\b3 the database cannot be opened/, args.join(' '));
    });
    refused.forEach((result, i) => {
      const [args, message] = refusals[i] ?? [[], ''];
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.equal(result.stderr.split('\n')[0], `coffer: ${message}`);
      assert.match(result.stderr, /\n\n(Usage:|coffer: a self-hosted payment system)/, 'the usage follows');
    });
    const { version: expected } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    assert.deepEqual([version.status, version.stdout, version.stderr], [0, `${expected}\n`, '']);

    const printed: string[] = [];
    const print = (line: string) => printed.push(line);
    const noConfig = (): Config => assert.fail('the configuration was read');
    const modules = {
      apikeys: (argv: string[]) => commandApiKeys(noConfig, argv, print),
      audit: (argv: string[]) => commandAudit(noConfig, argv, print),
      admin: (argv: string[]) => commandAdmin(noConfig, argv, print),
      risk: async (argv: string[]) => commandRisk(argv, print),
      'risk export': (argv: string[]) => commandRiskExport(noConfig, argv, print),
      merchants: (argv: string[]) => commandMerchants(noConfig, argv, print),
    };
    const moduleHelps: Array<[keyof typeof modules, string[], string]> = [
      ['apikeys', ['list', '--merchant', 'acct_x', '--help'], apiKeysUsage], ['audit', ['seal', '-h'], auditUsage],
      ['admin', ['create', '--help'], adminUsage], ['risk', ['bogus', '--help'], riskUsage], ['risk export', ['--help'], riskExportUsage],
      ['merchants', ['create', '--help'], merchantsUsage],
    ];
    for (const [command, argv, expectedUsage] of moduleHelps) {
      printed.length = 0;
      assert.equal(await modules[command](argv), 0);
      assert.deepEqual(printed, [expectedUsage], `${command} ${argv.join(' ')}`);
      assert.match(expectedUsage, /Exit codes: 0 [^]*\b2 no Coffer database there[^]*\b3 the database cannot be opened/, command);
    }
    const moduleRefusals: Array<[keyof typeof modules, string[], string]> = [
      ['risk', ['bogus'], 'unknown risk command "bogus": use train, evaluate, score, explain or export'],
      ['risk', [], 'missing risk command: use train, evaluate, score, explain or export'],
      ['apikeys', ['bogus'], 'unknown apikeys command "bogus": use create, list, roll or revoke'],
      ['audit', ['bogus'], 'unknown audit command "bogus": use verify, seal or export'],
      ['admin', ['bogus'], 'unknown admin command "bogus": use create'],
      ['apikeys', ['list', 'extra', '--merchant', 'acct_x'], 'unexpected argument "extra" for coffer apikeys list'],
      ['apikeys', ['roll'], 'apikeys roll needs the key\'s id (key_…)'],
      ['audit', ['seal', 'extra'], 'unexpected argument "extra" for coffer audit seal'],
      ['admin', ['create', 'extra', '--email', 'ops@example.com', '--name', 'Ops'], 'unexpected argument "extra" for coffer admin create'],
      ['risk', ['train', 'extra', '--dataset', 'ulb'], 'unexpected argument "extra" for coffer risk train'],
      ['risk', ['train', '--dataset', 'ulb'], 'risk train needs --input: a labelled CSV of the data set'],
      ['merchants', ['create'], 'merchants create needs --name'],
      ['merchants', ['list', '--name', 'x'], 'merchants list takes no --name'],
      ['merchants', ['delete'], 'unknown merchants command "delete": use create, list or raw-card-data'],
      ['merchants', ['raw-card-data'], 'merchants raw-card-data needs --merchant acct_…'],
      ['merchants', ['raw-card-data', '--merchant', 'acct_x', '--allow', '--refuse'], 'merchants raw-card-data takes --allow or --refuse, not both'],
      ['merchants', ['list', '--allow'], 'merchants list takes no --merchant, --allow or --refuse'],
      ['risk', ['evaluate', '--dataset', 'sparkov'], 'risk evaluate needs --input: a labelled CSV of the data set'],
      ['risk export', ['--output', path.join(nowhere, 'f.csv'), 'extra'], 'unexpected argument "extra" for coffer risk export'],
      ['audit', ['verify', '--fiel', 'x.jsonl'], 'unknown option "--fiel" for coffer audit'],
    ];
    printed.length = 0;
    for (const [command, argv, message] of moduleRefusals) {
      await assert.rejects(modules[command](argv), (error: unknown) => error instanceof UsageError && error.message === message, `${command} ${argv.join(' ')}`);
    }
    assert.deepEqual(printed, []);
    // A name refused before any configuration is read or database opened: exit 1, naming the problem.
    for (const name of ['   ', 'x'.repeat(101), 'Shop\nEvil']) assert.equal(await modules.merchants(['create', '--name', name]), 1, JSON.stringify(name));
    assert.deepEqual(printed, []);
    assert.equal(fs.existsSync(nowhere), false, 'no command line above made the home directory');
  });

  test('help, unknown commands and bad configuration', () => {
    const help = coffer(['help'], {});
    assert.equal(help.status, 0);
    assert.match(help.stdout, /coffer ledger verify/);
    // The command runs from a bundle of the sources (built once, named by what they are), or from the sources.
    const bundled = coffer(['help'], { COFFER_BUNDLE: 'require' });
    assert.deepEqual([bundled.status, bundled.stdout], [0, help.stdout], bundled.stderr);
    const badMode = coffer(['help'], { COFFER_BUNDLE: 'sometimes' });
    assert.equal(badMode.status, 78);
    assert.match(badMode.stderr, /COFFER_BUNDLE must be off or require, got "sometimes"/);
    const fromSources = coffer(['help'], { COFFER_BUNDLE: 'off' });
    assert.deepEqual([fromSources.status, fromSources.stdout], [0, help.stdout]);
    const failing = coffer(['migrate'], { COFFER_PORT: 'eighty', COFFER_BUNDLE: 'off' });
    assert.deepEqual([failing.status, failing.stderr], [78, coffer(['migrate'], { COFFER_PORT: 'eighty' }).stderr]);
    const unknown = coffer(['frobnicate'], {});
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const badPort = coffer(['migrate'], { COFFER_PORT: 'eighty' });
    assert.equal(badPort.status, 78);
    assert.match(badPort.stderr, /COFFER_PORT must be a port number/);
    const badUrl = coffer(['migrate'], { DATABASE_URL: 'mysql://localhost/x' });
    assert.equal(badUrl.status, 78);
    assert.match(badUrl.stderr, /DATABASE_URL must start with postgres:\/\//);
  });
});
