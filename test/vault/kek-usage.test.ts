import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { retireOldKeys, rotateVaultKeys } from '../../src/ops/rotate-keys.ts';
import { systemClock, type Clock } from '../../src/platform/clock.ts';
import { kekUsageFile } from '../../src/vault/kek-usage.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';
import { startTestServer, stripeClient, type TestServer } from '../support/server.ts';
import { sql } from 'kysely';

// Goal: one home serving two databases (the embedded one, and PostgreSQL while it is tried, as the operations guide
// allows) never loses a key-encryption key the other database still needs: `coffer keys retire` run against one
// database keeps every KEK the other noted, and deletes it once that database has moved off it.
describe('key-encryption keys shared by two databases of one home', () => {
  let first: TestServer;
  let second: TestServer;
  let home: string;
  let secondDatabase: TestDatabase | undefined;
  const later = (minutes: number): Clock => ({ nowMs: () => systemClock.nowMs() + minutes * 60_000 });

  before(async () => {
    first = await startTestServer();
    home = path.dirname(path.dirname(first.coffer.certFile ?? ''));
    // Test databases are copies of one migrated template, and so share its audit chain id; a real second database
    // has its own (see decision 0033 on copies).
    secondDatabase = await openTestDatabase();
    await sql`UPDATE audit_chain_head SET chain_id = 'chain_second_database'`.execute(secondDatabase.db);
    second = await startTestServer({ database: secondDatabase, configEnv: { COFFER_HOME: home } });
  });
  after(async () => {
    await second?.close();
    await secondDatabase?.drop();
    await first?.close();
  });

  test('a KEK the other database still uses is kept; once both have rotated off it, it is deleted; the first database\'s cards still pay', async () => {
    const card = await stripeClient(first, first.publishableKey).paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 4, exp_year: 2034 } });
    const usage = JSON.parse(fs.readFileSync(kekUsageFile(home), 'utf8')) as { databases: Record<string, { kekIds: string[] }> };
    assert.equal(Object.keys(usage.databases).length, 2, 'each database noted what it needs at start');
    assert.equal((fs.statSync(kekUsageFile(home)).mode & 0o777).toString(8), '600');

    // The second database rotates (it has no cards), and retires once the grace period is over.
    const rotated = await rotateVaultKeys(second.database.db, { kind: 'local' }, home, 'embedded', systemClock);
    assert.deepEqual([rotated.previousKekId, rotated.currentKekId], ['kek_1', 'kek_2']);
    const kept = await retireOldKeys(second.database.db, { kind: 'local' }, home, 'embedded', later(11));
    assert.equal(kept.length, 1);
    const outcome = kept[0]?.outcome;
    assert.ok(outcome !== undefined && !outcome.retired && outcome.reason === 'other_database', JSON.stringify(outcome));
    assert.deepEqual(outcome.databases.map((other) => other.why), ['uses']);
    assert.ok(fs.existsSync(path.join(home, 'keys', 'kek', 'kek_1.key')), 'the first database\'s KEK is still there');

    // The first database rotates too; then nothing needs kek_1 or kek_2 any more.
    await rotateVaultKeys(first.database.db, { kind: 'local' }, home, 'embedded', later(11));
    // A third database whose last note is older than the keys' replacement may have wrapped under them since: kept.
    const noted = JSON.parse(fs.readFileSync(kekUsageFile(home), 'utf8')) as { databases: Record<string, unknown> };
    fs.writeFileSync(kekUsageFile(home), JSON.stringify({ ...noted, databases: { ...noted.databases, chain_third: { label: 'postgres://db3/x', kekIds: ['kek_3'], checkedAtMs: 0 } } }));
    const stale = await retireOldKeys(second.database.db, { kind: 'local' }, home, 'embedded', later(22));
    assert.deepEqual(stale.map((result) => [result.kekId, result.outcome.retired ? 'deleted' : result.outcome.reason]), [['kek_1', 'other_database'], ['kek_2', 'other_database']]);
    const unchecked = stale[0]?.outcome;
    assert.ok(unchecked !== undefined && !unchecked.retired && unchecked.reason === 'other_database');
    assert.deepEqual(unchecked.databases, [{ label: 'postgres://db3/x', why: 'unchecked' }]);
    // That database gone for good: its entry removed, as docs/operations.md says.
    const withThird = JSON.parse(fs.readFileSync(kekUsageFile(home), 'utf8')) as { databases: Record<string, unknown> };
    delete withThird.databases.chain_third;
    fs.writeFileSync(kekUsageFile(home), JSON.stringify(withThird));
    const retired = await retireOldKeys(second.database.db, { kind: 'local' }, home, 'embedded', later(22));
    assert.deepEqual(retired.map((result) => [result.kekId, result.outcome.retired]), [['kek_1', true], ['kek_2', true]]);
    first.coffer.services.vault.forget();
    const paid = await first.stripe.paymentIntents.create({ amount: 1200, currency: 'usd', payment_method: card.id, confirm: true });
    assert.equal(paid.status, 'succeeded', 'the card saved before both rotations still decrypts');
  });
});
