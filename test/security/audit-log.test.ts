import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql, type RawBuilder } from 'kysely';
import { checkpointsFile, readAuditChain, sealAuditLog, verifyAuditChain, type AuditRecord } from '../../src/audit/chain.ts';
import { recordAudit } from '../../src/store/audit.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { TestClock } from '../support/clock.ts';
import { openTestDatabase, testDatabaseKind } from '../support/database.ts';

// Goal: the audit log is append-only for the application, and every kind of tampering (a changed, deleted,
// inserted or reordered record; a chain rewritten by a superuser with the triggers off; a checkpoint removed or
// forged) is reported by the verifier, which passes again once the tampering is undone.
describe('the audit log', { concurrency: false }, () => {
  let server: TestServer;
  const clock = new TestClock();
  before(async () => {
    server = await startTestServer({ clock });
  });
  after(async () => server.close());

  const db = () => server.database.db;
  const seal = (forceCheckpoint = true) => sealAuditLog(db(), clock.nowMs(), { signer: server.coffer.services.auditSigner, homeDir: server.coffer.services.homeDir, forceCheckpoint });
  const problems = async () => verifyAuditChain(await readAuditChain(db(), server.coffer.services.auditSigner, server.coffer.services.homeDir)).problems;
  const chainId = async (database = db()) => (await database.selectFrom('audit_chain_head').select('chain_id').executeTakeFirstOrThrow()).chain_id;
  /** This database's copy of its checkpoints, in the home directory. */
  const outsideFile = async () => checkpointsFile(server.coffer.services.homeDir, await chainId());

  /** What a superuser can do: switch the append-only triggers off, change things, switch them on again. */
  async function asSuperuser(...statements: Array<RawBuilder<unknown>>): Promise<void> {
    const triggers = ['audit_log append_only', 'audit_seals append_only', 'audit_checkpoints append_only'].map((name) => name.split(' ') as [string, string]);
    for (const [table, suffix] of triggers) await sql.raw(`ALTER TABLE ${table} DISABLE TRIGGER ${table}_${suffix}`).execute(db());
    try {
      for (const statement of statements) await statement.execute(db());
    } finally {
      for (const [table, suffix] of triggers) await sql.raw(`ALTER TABLE ${table} ENABLE TRIGGER ${table}_${suffix}`).execute(db());
    }
  }

  const auditInput = (action: string) => ({ merchantId: null, livemode: null, actorType: 'system' as const, actorId: 'test', action, objectType: null, objectId: null, outcome: 'success' as const, requestId: null, origin: null, occurredAt: new Date(clock.nowMs()) });

  /** A transaction that takes an audit sequence number and rolls back: the number it took. */
  async function rolledBackAuditSeq(): Promise<bigint> {
    let taken = 0n;
    await db().transaction().execute(async (tx) => {
      await recordAudit(tx, auditInput('test.rolled_back'));
      taken = (await tx.selectFrom('audit_log').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow()).seq;
      throw new Error('roll back');
    }).catch((error: unknown) => assert.match(String(error), /roll back/));
    return taken;
  }

  async function records(): Promise<AuditRecord[]> {
    return db().selectFrom('audit_log').selectAll().orderBy('seq').execute();
  }

  test('records are chained and checkpointed; the application cannot update, delete or truncate them', async () => {
    for (const amount of [1000, 2000, 3000]) {
      await server.stripe.paymentIntents.create({ amount, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    }
    const sealed = await seal();
    assert.ok(sealed.sealed >= 3, `${sealed.sealed} sealed`);
    assert.ok(sealed.checkpoint !== undefined);
    assert.deepEqual(await problems(), []);
    const file = fs.readFileSync(await outsideFile(), 'utf8').trim().split('\n');
    assert.equal(file.length, 1, 'the checkpoint is also kept outside the database');
    assert.equal((fs.statSync(await outsideFile()).mode & 0o077), 0);

    const before = await records();
    for (const table of ['audit_log', 'audit_seals', 'audit_checkpoints']) {
      await assert.rejects(sql.raw(`UPDATE ${table} SET seq = seq`).execute(db()), /append-only \(UPDATE refused\)/, table);
      await assert.rejects(sql.raw(`DELETE FROM ${table}`).execute(db()), /append-only \(DELETE refused\)/, table);
      await assert.rejects(sql.raw(`TRUNCATE ${table}`).execute(db()), /append-only \(TRUNCATE refused\)/, table);
    }
    assert.deepEqual(await records(), before, 'nothing changed');
    assert.deepEqual(await problems(), []);
  });

  test('a changed record is reported, and the report clears when it is put back', async () => {
    const target = (await records())[1];
    assert.ok(target !== undefined);
    await asSuperuser(sql`UPDATE audit_log SET action = 'payment_intent.nothing_to_see' WHERE seq = ${target.seq}`);
    assert.deepEqual(await problems(), [`record ${target.seq}: changed, or moved, since it was sealed`, `checkpoint ${(await db().selectFrom('audit_checkpoints').select('seq').executeTakeFirstOrThrow()).seq} (${(await db().selectFrom('audit_checkpoints').select('created_at').executeTakeFirstOrThrow()).created_at.toISOString()}): the records up to it are not the ones it signed`]);
    await asSuperuser(sql`UPDATE audit_log SET action = ${target.action} WHERE seq = ${target.seq}`);
    assert.deepEqual(await problems(), []);
  });

  test('a deleted record, two records swapped, and a record inserted into a gap are reported', async () => {
    const [first, second] = await records();
    assert.ok(first !== undefined && second !== undefined);
    await asSuperuser(sql`DELETE FROM audit_log WHERE seq = ${second.seq}`);
    assert.ok((await problems()).includes(`record ${second.seq}: deleted (its seal remains)`));
    await asSuperuser(sql`INSERT INTO audit_log SELECT * FROM json_populate_record(NULL::audit_log, ${JSON.stringify({ ...second, seq: String(second.seq) })}::json)`);
    assert.deepEqual(await problems(), [], 'put back as it was');

    // Swap every field but the sequence number: the order of events is part of what was sealed.
    const swap = (from: AuditRecord, to: AuditRecord) => sql`UPDATE audit_log SET id = ${`${from.id}_`}, action = ${from.action}, object_id = ${from.object_id}, occurred_at = ${from.occurred_at} WHERE seq = ${to.seq}`;
    await asSuperuser(swap(first, second), swap(second, first));
    const swapped = await problems();
    assert.ok(swapped.includes(`record ${first.seq}: changed, or moved, since it was sealed`) && swapped.includes(`record ${second.seq}: changed, or moved, since it was sealed`), swapped.join('; '));
    await asSuperuser(
      sql`UPDATE audit_log SET id = ${first.id}, action = ${first.action}, object_id = ${first.object_id}, occurred_at = ${first.occurred_at} WHERE seq = ${first.seq}`,
      sql`UPDATE audit_log SET id = ${second.id}, action = ${second.action}, object_id = ${second.object_id}, occurred_at = ${second.occurred_at} WHERE seq = ${second.seq}`,
    );
    assert.deepEqual(await problems(), []);

    // A rolled-back transaction leaves a gap in the sequence. With no other transaction running, nothing can fill
    // it any more, so the sealer passes it at once.
    const gap = await rolledBackAuditSeq();
    await server.stripe.customers.create({ email: 'after-gap@example.com' });
    const passed = await seal();
    assert.ok(passed.sealed >= 1 && passed.headSeq > gap, `the gap at ${gap} is passed (head ${passed.headSeq})`);
    assert.deepEqual(await problems(), []);
    await asSuperuser(sql`INSERT INTO audit_log (seq, id, occurred_at, actor_type, actor_id, action, outcome, details)
      VALUES (${gap}, 'aud_forged', now(), 'staff', 'nobody', 'refund.approve', 'success', '{}')`);
    assert.ok((await problems()).includes(`record ${gap}: inserted into the sealed chain (it has no seal)`));
    await asSuperuser(sql`DELETE FROM audit_log WHERE seq = ${gap}`);
    assert.deepEqual(await problems(), []);
  });

  test('a gap that a running transaction may still fill holds the sealer until that transaction ends, or the grace period passes',
    { skip: testDatabaseKind() === 'pglite' ? 'PGlite runs one transaction at a time' : false }, async () => {
      const headBefore = (await seal()).headSeq;
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => { release = resolve; });
      let heldSeq = 0n;
      let holding: () => void = () => undefined;
      const held = new Promise<void>((resolve) => { holding = resolve; });
      const writer = db().transaction().execute(async (tx) => {
        await recordAudit(tx, auditInput('test.slow_writer'));
        heldSeq = (await tx.selectFrom('audit_log').select('seq').where('action', '=', 'test.slow_writer').executeTakeFirstOrThrow()).seq;
        holding();
        await released;
      });
      await held;
      await server.stripe.customers.create({ email: 'while-a-writer-runs@example.com' });
      const waiting = await seal();
      assert.equal(waiting.headSeq, headBefore, `the sealer stops before ${heldSeq}, which may still be committed`);
      release();
      await writer;
      const after = await seal();
      assert.ok(after.headSeq > heldSeq, 'once the writer committed, its record and the ones after it are sealed');
      assert.deepEqual(await problems(), []);

      // A writer that never ends does not stop the sealer for ever: after the grace period the gap is passed.
      const stuck = await rolledBackAuditSeq();
      let releaseStuck: () => void = () => undefined;
      const stuckReleased = new Promise<void>((resolve) => { releaseStuck = resolve; });
      let stuckRunning: () => void = () => undefined;
      const stuckStarted = new Promise<void>((resolve) => { stuckRunning = resolve; });
      const stuckWriter = db().transaction().execute(async (tx) => {
        // What an insert into the audit log holds until its transaction ends.
        await sql`LOCK TABLE audit_log IN ROW EXCLUSIVE MODE`.execute(tx);
        stuckRunning();
        await stuckReleased;
      });
      await stuckStarted;
      await server.stripe.customers.create({ email: 'after-a-stuck-gap@example.com' });
      try {
        assert.ok((await seal()).headSeq < stuck, 'within the grace period the sealer waits');
        clock.offsetMs += 6 * 60_000;
        assert.ok((await seal()).headSeq > stuck, 'after it, the gap is passed');
      } finally {
        releaseStuck();
        await stuckWriter;
      }
      assert.deepEqual(await problems(), []);
    });

  test('a superuser who rewrites a record and recomputes every seal is caught by the signed checkpoints', async () => {
    const target = (await records())[0];
    assert.ok(target !== undefined);
    const original = (await db().selectFrom('audit_seals').select(['seq', 'hash']).orderBy('seq').execute()).map((row) => ({ seq: row.seq, hash: Buffer.from(row.hash) }));
    const head = await db().selectFrom('audit_chain_head').select(['seq', 'hash']).executeTakeFirstOrThrow();
    // Rewrite the record, then rebuild the whole chain as the sealer would.
    await asSuperuser(sql`UPDATE audit_log SET outcome = 'failure' WHERE seq = ${target.seq}`, sql`DELETE FROM audit_seals`,
      sql`UPDATE audit_chain_head SET seq = 0, hash = decode(repeat('00', 32), 'hex')`);
    await sealAuditLog(db(), clock.nowMs());
    const report = await problems();
    assert.equal(report.filter((problem) => problem.startsWith('record ')).length, 0, 'the rebuilt seals are consistent with the rewritten records');
    assert.ok(report.length >= 1 && report.every((problem) => /^checkpoint \d+ .*: the records up to it are not the ones it signed$/.test(problem)), report.join('; '));
    // Undo: the original record and seals.
    await asSuperuser(sql`UPDATE audit_log SET outcome = ${target.outcome} WHERE seq = ${target.seq}`, sql`DELETE FROM audit_seals`,
      ...original.map((row) => sql`INSERT INTO audit_seals (seq, hash) VALUES (${row.seq}, ${row.hash})`),
      sql`UPDATE audit_chain_head SET seq = ${head.seq}, hash = ${head.hash}`);
    assert.deepEqual(await problems(), []);
  });

  test('a checkpoint removed from the database, or with a forged signature, is reported', async () => {
    const row = await db().selectFrom('audit_checkpoints').selectAll().orderBy('seq').limit(1).executeTakeFirstOrThrow();
    const checkpoint = { ...row, head_hash: Buffer.from(row.head_hash), signature: Buffer.from(row.signature) };
    await asSuperuser(sql`DELETE FROM audit_checkpoints WHERE seq = ${checkpoint.seq}`);
    assert.ok((await problems()).includes(`checkpoint ${checkpoint.seq}: kept outside the database but missing from it`));
    const forged = Buffer.from(checkpoint.signature);
    forged[0] = (forged[0] ?? 0) ^ 1;
    await asSuperuser(sql`INSERT INTO audit_checkpoints (seq, head_hash, created_at, key_id, signature) VALUES (${checkpoint.seq}, ${checkpoint.head_hash}, ${checkpoint.created_at}, ${checkpoint.key_id}, ${forged})`);
    const report = await problems();
    assert.ok(report.some((problem) => problem.endsWith(`signature does not verify with key ${checkpoint.key_id}`)), report.join('; '));
    assert.ok(report.includes(`checkpoint ${checkpoint.seq}: differs from the copy kept outside the database`));
    await asSuperuser(sql`DELETE FROM audit_checkpoints WHERE seq = ${checkpoint.seq}`,
      sql`INSERT INTO audit_checkpoints (seq, head_hash, created_at, key_id, signature) VALUES (${checkpoint.seq}, ${checkpoint.head_hash}, ${checkpoint.created_at}, ${checkpoint.key_id}, ${checkpoint.signature})`);
    assert.deepEqual(await problems(), []);
    // Without the copy outside the database, removed checkpoints could not be noticed: that is a problem itself.
    const file = await outsideFile();
    fs.renameSync(file, `${file}.away`);
    assert.deepEqual(await problems(), [`the checkpoint file outside the database (${file}) is missing: checkpoints removed from the database could not be noticed`]);
    fs.renameSync(`${file}.away`, file);
    assert.deepEqual(await problems(), []);
  });
  test('one home directory used with two databases keeps the checkpoints of each apart', async () => {
    const other = await openTestDatabase();
    try {
      // Test databases are copies of one migrated template, and so share its chain id; a database migrated on its
      // own (the embedded one, then PostgreSQL, under one home) has its own.
      await sql`UPDATE audit_chain_head SET chain_id = 'chain_other_' || md5(random()::text)`.execute(other.db);
      await recordAudit(other.db, auditInput('test.other_database'));
      const home = server.coffer.services.homeDir;
      const signer = server.coffer.services.auditSigner;
      const otherSealed = await sealAuditLog(other.db, clock.nowMs(), { signer, homeDir: home, forceCheckpoint: true });
      assert.ok(otherSealed.checkpoint !== undefined);
      await recordAudit(db(), auditInput('test.this_database'));
      assert.ok((await seal()).checkpoint !== undefined);
      assert.deepEqual(verifyAuditChain(await readAuditChain(other.db, signer, home)).problems, []);
      assert.deepEqual(await problems(), []);
      assert.notEqual(checkpointsFile(home, await chainId(other.db)), await outsideFile());
    } finally {
      await other.drop();
    }
  });

  test('the single checkpoint file of earlier versions: this database takes its own lines from it, and no other', async () => {
    await recordAudit(db(), auditInput('test.before_upgrade'));
    assert.ok((await seal()).checkpoint !== undefined);
    const file = await outsideFile();
    const mine = fs.readFileSync(file, 'utf8');
    // As an earlier version left it: one file for every database the home directory was used with.
    const legacy = path.join(server.coffer.services.homeDir, 'audit', 'checkpoints.jsonl');
    const foreign = JSON.stringify({ seq: '999999', head_hash: '00'.repeat(32), created_at: new Date(0).toISOString(), key_id: 'ack_other', signature: 'AAAA' });
    fs.writeFileSync(legacy, `${foreign}\n${mine}`);
    fs.rmSync(file);
    try {
      assert.deepEqual(await problems(), [], 'the other database\'s line is not this database\'s missing checkpoint');
      assert.equal(fs.existsSync(file), false, 'verifying writes nothing');
      await recordAudit(db(), auditInput('test.after_upgrade'));
      const sealed = await seal();
      assert.ok(sealed.checkpoint !== undefined);
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(`${lines.slice(0, -1).join('\n')}\n`, mine, 'the sealer started the file with exactly this database\'s lines');
      assert.equal(JSON.parse(lines.at(-1) ?? '{}').seq, String(sealed.checkpoint.seq));
      assert.equal(fs.readFileSync(legacy, 'utf8'), `${foreign}\n${mine}`, 'the old file is left for the other database');
      assert.deepEqual(await problems(), []);
    } finally {
      fs.rmSync(legacy);
    }
  });
});
