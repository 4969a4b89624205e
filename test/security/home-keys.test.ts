import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { homeKeyProblems, HomeKeysError, recordInstanceKey } from '../../src/app/home-keys.ts';
import { sealAuditLog } from '../../src/audit/chain.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

// Goal: a start (or a command that would make a key) on a database whose keys are not in the home directory, lost
// or another installation's, is refused naming each key, and makes no key: a new instance key would make
// fingerprints, webhook and request-signing secrets and staff authenticators unusable, a new audit signing key
// every earlier checkpoint unverifiable.
describe('the home directory\'s keys against the database', () => {
  let server: TestServer;
  let scratch: string;
  const home = () => server.coffer.services.homeDir;
  const keyFile = (dir: string, name: string) => path.join(dir, 'keys', name);
  const files = (dir: string): string[] => fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile()).map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name))).sort();

  before(async () => {
    server = await startTestServer();
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-home-keys-'));
    // A signed checkpoint names the audit key this database's chain is signed with.
    await server.stripe.paymentIntents.create({ amount: 1200, currency: 'usd' });
    const sealed = await sealAuditLog(server.database.db, Date.now(), { signer: server.coffer.services.auditSigner, homeDir: home(), forceCheckpoint: true });
    assert.ok(sealed.checkpoint !== undefined);
  });
  after(async () => {
    await server.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  const startIn = (dir: string) => startTestServer({ database: server.database, configEnv: { COFFER_HOME: dir } });

  test('the home the database was made with passes; the first start recorded its instance key', async () => {
    assert.deepEqual(await homeKeyProblems(server.database.db, home()), []);
    const recorded = await server.database.db.selectFrom('installation').select('instance_key_check').executeTakeFirstOrThrow();
    assert.match(recorded.instance_key_check ?? '', /^[A-Za-z0-9_-]{22}$/);
  });

  test('a key file others can read is reported with the other problems (as coffer doctor lists them), not thrown', async () => {
    const instance = keyFile(home(), 'instance.key');
    fs.chmodSync(instance, 0o644);
    try {
      assert.deepEqual(await homeKeyProblems(server.database.db, home()), [`${instance} must be readable by its owner only (mode 0600), found 644`]);
    } finally {
      fs.chmodSync(instance, 0o600);
    }
  });

  test('two first starts at once, each with a new home: the second finds the first one\'s key recorded and is refused', async () => {
    // As if the first start of this database had not recorded its key yet, and another process, with another new
    // home, recorded its own in between: recording compares in the same statement.
    const other = fs.mkdtempSync(path.join(scratch, 'racing-'));
    fs.mkdirSync(path.join(other, 'keys'), { mode: 0o700 });
    fs.copyFileSync(keyFile(home(), 'audit-signing.key'), keyFile(other, 'audit-signing.key'));
    const ours = await server.database.db.selectFrom('installation').select('instance_key_check').executeTakeFirstOrThrow();
    await server.database.db.updateTable('installation').set({ instance_key_check: null }).execute();
    try {
      assert.deepEqual(await homeKeyProblems(server.database.db, other), [], 'nothing recorded yet: the check passes');
      await recordInstanceKey(server.database.db, home());
      await assert.rejects(recordInstanceKey(server.database.db, other), (error: unknown) => error instanceof HomeKeysError && /another process recorded its own first/.test(error.message));
      assert.deepEqual(await server.database.db.selectFrom('installation').select('instance_key_check').executeTakeFirstOrThrow(), ours, 'the first key stays recorded');
    } finally {
      await server.database.db.updateTable('installation').set({ instance_key_check: ours.instance_key_check }).execute();
    }
  });

  test('a home without the keys: the start is refused naming both, and nothing is written', async () => {
    const empty = fs.mkdtempSync(path.join(scratch, 'empty-'));
    await assert.rejects(startIn(empty), (error: unknown) => {
      assert.ok(error instanceof HomeKeysError, String(error));
      assert.ok(error.message.includes(`${keyFile(empty, 'instance.key')} is missing, but this database was made with one`), error.message);
      assert.ok(error.message.includes(`${keyFile(empty, 'audit-signing.key')} is missing, but this database's audit checkpoints are signed with ${server.coffer.services.auditSigner.keyId}`), error.message);
      assert.match(error.message, /Restore the whole keys\/ directory from this installation's backup/);
      return true;
    });
    const made = files(empty);
    for (const key of ['keys/instance.key', 'keys/audit-signing.key']) assert.equal(made.includes(key), false, `${key} was made: ${made.join(', ')}`);
    assert.deepEqual(made.filter((file) => file.startsWith('keys/kek')), []);
    assert.deepEqual(made, [], 'a refused start writes nothing, not even the test-mode sandbox accounts it made meanwhile');
  });

  test('another installation\'s keys are refused too', async () => {
    const other = await startTestServer();
    try {
      const foreign = fs.mkdtempSync(path.join(scratch, 'foreign-'));
      fs.mkdirSync(path.join(foreign, 'keys'), { mode: 0o700 });
      for (const name of ['instance.key', 'audit-signing.key']) fs.copyFileSync(keyFile(other.coffer.services.homeDir, name), keyFile(foreign, name));
      const problems = await homeKeyProblems(server.database.db, foreign);
      assert.deepEqual(problems, [
        `${keyFile(foreign, 'instance.key')} is not the instance key this database was made with`,
        `${keyFile(foreign, 'audit-signing.key')} holds ${other.coffer.services.auditSigner.keyId}, but this database's audit checkpoints are signed with ${server.coffer.services.auditSigner.keyId}`,
      ]);
      await assert.rejects(startIn(foreign), HomeKeysError);
      // The right instance key with another audit key: only the audit key is named.
      fs.copyFileSync(keyFile(home(), 'instance.key'), keyFile(foreign, 'instance.key'));
      assert.deepEqual((await homeKeyProblems(server.database.db, foreign)).map((problem) => problem.split(' ')[0]), [keyFile(foreign, 'audit-signing.key')]);
    } finally {
      await other.close();
    }
  });

  test('a copy of the home\'s keys serves: another process of the same installation', async () => {
    const copy = fs.mkdtempSync(path.join(scratch, 'copy-'));
    fs.cpSync(path.join(home(), 'keys'), path.join(copy, 'keys'), { recursive: true });
    const second = await startIn(copy);
    try {
      const intent = await second.stripe.paymentIntents.create({ amount: 900, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
      assert.equal(intent.status, 'succeeded');
    } finally {
      await second.close();
    }
  });
});
