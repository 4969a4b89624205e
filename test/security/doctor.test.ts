import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { sealAuditLog } from '../../src/audit/chain.ts';
import { runDoctor } from '../../src/ops/doctor.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { recordAudit } from '../../src/store/audit.ts';
import { keepPrivate } from '../../src/store/open-database.ts';
import { openTestDatabase } from '../support/database.ts';
import { copyTree, removeTree } from '../support/files.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const homes: string[] = [];

function home(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-doctor-'));
  homes.push(dir);
  fs.mkdirSync(path.join(dir, 'keys', 'kek'), { recursive: true, mode: 0o700 });
  fs.chmodSync(path.join(dir, 'keys'), 0o700);
  fs.writeFileSync(path.join(dir, 'keys', 'kek', 'kek_1.key'), 'x'.repeat(44), { mode: 0o600 });
  // The command opens the embedded database: start from the migrated copy the test runner prepared.
  const template = process.env.COFFER_TEST_PGLITE_TEMPLATE;
  if (template !== undefined) copyTree(template, path.join(dir, 'db'));
  keepPrivate(path.join(dir, 'db'));
  return dir;
}

const checks = (findings: Array<{ severity: string; check: string }>, severity: string) =>
  findings.filter((finding) => finding.severity === severity).map((finding) => finding.check).sort();

// Goal: `coffer doctor` finds what is insecure (readable key files, TLS off on an exposed listener, a database
// reached without TLS, commits that are not flushed, a superuser connection, a sealer that does not run) and
// exits 1 for those, while a sound installation passes with warnings only.
describe('coffer doctor', { concurrency: false }, () => {
  after(() => {
    for (const dir of homes) removeTree(dir);
  });

  test('a sound configuration has no problem; each insecure setting is one, named', async () => {
    const sound = home();
    assert.deepEqual(checks(await runDoctor(loadConfig({ COFFER_HOME: sound }), undefined, Date.now()), 'problem'), []);

    const loose = home();
    fs.chmodSync(path.join(loose, 'keys', 'kek', 'kek_1.key'), 0o644);
    const insecure = loadConfig({
      COFFER_HOME: loose, COFFER_TLS_DISABLED: 'true', COFFER_HOST: '0.0.0.0', COFFER_EMBEDDED_DURABILITY: 'os', COFFER_INTERNAL_HOST: '0.0.0.0',
    });
    const findings = await runDoctor(insecure, undefined, Date.now());
    assert.deepEqual(checks(findings, 'problem'), ['durability', 'internal_listener', 'key_files', 'tls']);
    assert.match(findings.find((finding) => finding.check === 'key_files')?.message ?? '', /kek_1\.key can be read or entered by group or others \(mode 644\): chmod 600/);
    const withClientCerts = await runDoctor(loadConfig({ COFFER_HOME: sound, COFFER_INTERNAL_HOST: '0.0.0.0', COFFER_INTERNAL_CLIENT_CA: path.join(sound, 'staff-ca.pem') }), undefined, Date.now());
    assert.deepEqual(checks(withClientCerts, 'problem'), [], 'an exposed internal listener that requires client certificates is not a problem');

    // Another local user who may enter the embedded database's directory can rewrite it (PGlite's files are 0666).
    const openDb = home();
    fs.chmodSync(path.join(openDb, 'db'), 0o755);
    fs.mkdirSync(path.join(openDb, 'tls'), { mode: 0o700 });
    fs.writeFileSync(path.join(openDb, 'tls', 'localhost.key'), 'key', { mode: 0o644 });
    fs.chmodSync(path.join(openDb, 'tls', 'localhost.key'), 0o644);
    const exposedFiles = (await runDoctor(loadConfig({ COFFER_HOME: openDb }), undefined, Date.now())).filter((finding) => finding.check === 'private_files');
    assert.deepEqual(exposedFiles.map((finding) => [finding.severity, finding.message]), [
      ['problem', `${path.join(openDb, 'db')} is open to other users (mode 755): chmod 700 it (Coffer does so when it opens the database).`],
      ['problem', `${path.join(openDb, 'tls', 'localhost.key')} is open to other users (mode 644): chmod 600 it.`],
    ]);
    fs.chmodSync(path.join(openDb, 'db'), 0o750);
    fs.chmodSync(path.join(openDb, 'tls', 'localhost.key'), 0o600);
    assert.deepEqual((await runDoctor(loadConfig({ COFFER_HOME: openDb }), undefined, Date.now())).filter((finding) => finding.check === 'private_files'), [],
      'a backup group may read the database (0750), as PostgreSQL allows');

    const remote = await runDoctor(loadConfig({ COFFER_HOME: sound, DATABASE_URL: 'postgres://coffer@db.internal:5432/coffer' }), undefined, Date.now());
    assert.deepEqual(checks(remote, 'problem'), ['database_tls']);
    const remoteTls = await runDoctor(loadConfig({ COFFER_HOME: sound, DATABASE_URL: 'postgres://coffer@db.internal:5432/coffer?sslmode=verify-full' }), undefined, Date.now());
    assert.deepEqual(checks(remoteTls, 'problem'), []);
    assert.ok(checks(remoteTls, 'warning').includes('kek'), 'with PostgreSQL, key files instead of an HSM are worth a warning');

    // The KEK in an HSM: the module must exist and the PIN file be private.
    const pinFile = path.join(sound, 'token.pin');
    fs.writeFileSync(pinFile, '246810\n', { mode: 0o644 });
    fs.chmodSync(pinFile, 0o644);
    const hsm = { COFFER_HOME: sound, COFFER_KEK_PKCS11_MODULE: path.join(sound, 'libmissing.so'), COFFER_KEK_PKCS11_TOKEN: 'coffer', COFFER_KEK_PKCS11_PIN_FILE: pinFile };
    const hsmFindings = (await runDoctor(loadConfig(hsm), undefined, Date.now())).filter((finding) => finding.check === 'kek');
    assert.deepEqual(hsmFindings.map((finding) => finding.severity), ['problem', 'problem']);
    assert.match(hsmFindings[0]?.message ?? '', /libmissing\.so \(COFFER_KEK_PKCS11_MODULE\) does not exist/);
    assert.match(hsmFindings[1]?.message ?? '', /token\.pin can be read by group or others \(mode 644\): chmod 600 it/);
    fs.chmodSync(pinFile, 0o600);
    fs.writeFileSync(path.join(sound, 'libmissing.so'), '');
    assert.deepEqual((await runDoctor(loadConfig(hsm), undefined, Date.now())).filter((finding) => finding.check === 'kek'), []);
  });

  test('the embedded database\'s directory is made private when it opens, whatever the home directory\'s mode', () => {
    const parent = home();
    const fresh = path.join(parent, 'fresh-db');
    keepPrivate(fresh);
    assert.equal(fs.statSync(fresh).mode & 0o777, 0o700, 'created private');
    fs.chmodSync(fresh, 0o777);
    keepPrivate(fresh);
    assert.equal(fs.statSync(fresh).mode & 0o777, 0o700, 'tightened when others may enter it');
    fs.chmodSync(fresh, 0o750);
    keepPrivate(fresh);
    assert.equal(fs.statSync(fresh).mode & 0o777, 0o750, 'a backup group\'s read access is left as the operator set it');
  });

  test('in the database: a superuser connection, and audit records the sealer has not reached', async () => {
    const database = await openTestDatabase();
    try {
      const config = loadConfig({ COFFER_HOME: home(), ...(database.url === undefined ? {} : { DATABASE_URL: database.url }) });
      const superuser = database.url === undefined ? [] : ['database_role'];
      assert.deepEqual(checks(await runDoctor(config, database.db, Date.now()), 'problem'), superuser, 'tests connect as postgres, a superuser');
      const hourAgo = new Date(Date.now() - 3_600_000);
      await recordAudit(database.db, { merchantId: null, livemode: null, actorType: 'system', actorId: 'test', action: 'test.old', objectType: null, objectId: null, outcome: 'success', requestId: null, origin: null, occurredAt: hourAgo });
      const stalled = await runDoctor(config, database.db, Date.now());
      assert.deepEqual(checks(stalled, 'problem'), [...superuser, 'audit_sealer'].sort());
      await sealAuditLog(database.db, Date.now());
      assert.deepEqual(checks(await runDoctor(config, database.db, Date.now()), 'problem'), superuser);
      // A database made with an instance key this home does not hold: the start would be refused, and doctor says so.
      await database.db.updateTable('installation').set({ instance_key_check: 'made-elsewhere' }).execute();
      const mismatch = await runDoctor(config, database.db, Date.now());
      assert.deepEqual(checks(mismatch, 'problem'), [...superuser, 'home_keys'].sort());
      assert.match(mismatch.find((finding) => finding.check === 'home_keys')?.message ?? '', /keys\/instance\.key is missing, but this database was made with one: Coffer will not start/);
    } finally {
      await database.drop();
    }
  });

  test('the command exits 1 on a problem and 0 without one', () => {
    const run = (env: NodeJS.ProcessEnv, command = 'doctor') => spawnSync(process.execPath, [path.join(root, 'bin/coffer.js'), command], {
      env: { PATH: process.env.PATH, COFFER_LOG_LEVEL: 'warn', ...env }, encoding: 'utf8', timeout: 120_000,
    });
    // Doctor looks at an installation and creates no database: without the runner's migrated copy, one is made.
    // Both runs read the same one, and change nothing in it.
    const installed = home();
    if (process.env.COFFER_TEST_PGLITE_TEMPLATE === undefined) assert.equal(run({ COFFER_HOME: installed }, 'migrate').status, 0);
    const sound = run({ COFFER_HOME: installed });
    assert.equal(sound.status, 0, sound.stdout + sound.stderr);
    assert.match(sound.stdout, /No problem found/);
    const exposed = run({ COFFER_HOME: installed, COFFER_TLS_DISABLED: 'true', COFFER_HOST: '0.0.0.0' });
    assert.equal(exposed.status, 1, exposed.stdout + exposed.stderr);
    assert.match(exposed.stdout, /problem {3}tls: TLS is disabled \(COFFER_TLS_DISABLED\) and the listener binds 0\.0\.0\.0/);
  });
});
