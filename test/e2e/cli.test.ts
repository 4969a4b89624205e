import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import { openExistingTestDatabase, createTestDatabaseUrl } from '../support/database.ts';
import { spawnCoffer } from '../support/process.ts';
import { rawRequest } from '../support/server.ts';

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

// Goal: the `coffer` command does what the README says: migrate, and `ledger verify` exits 0 on a sound ledger
// and 1, naming the violation, on a tampered one; bad configuration and unknown commands are clear errors.
describe('the coffer command', { concurrency: false }, () => {
  after(() => fs.rmSync(home, { recursive: true, force: true }));

  test('migrate, pay, verify, tamper, verify again', async () => {
    const url = await createTestDatabaseUrl();
    const env = url === undefined ? {} : { DATABASE_URL: url };
    if (url === undefined && process.env.COFFER_TEST_PGLITE_TEMPLATE !== undefined) {
      fs.cpSync(process.env.COFFER_TEST_PGLITE_TEMPLATE, path.join(home, 'db'), { recursive: true });
    }
    const migrated = coffer(['migrate'], env);
    assert.equal(migrated.status, 0, migrated.stderr);
    assert.match(migrated.stdout, /Applied: |up to date/);
    const again = coffer(['migrate'], env);
    assert.match(again.stdout, /The database is up to date\./);

    const server = await spawnCoffer(home, { ...env, COFFER_JOBS: 'false' });
    for (const body of ['amount=1500&currency=usd&payment_method=pm_card_visa&confirm=true',
      'amount=900&currency=eur&payment_method=pm_card_visa&capture_method=manual&confirm=true']) {
      const response = await rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body });
      assert.equal(response.status, 200, response.body);
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

  test('help, unknown commands and bad configuration', () => {
    const help = coffer(['help'], {});
    assert.equal(help.status, 0);
    assert.match(help.stdout, /coffer ledger verify/);
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
