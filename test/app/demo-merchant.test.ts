import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ensureDemoMerchant } from '../../src/app/demo-merchant.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

// Goal: a home directory that starts on one database, then tries another (the embedded one, then PostgreSQL with
// DATABASE_URL), and goes back, still prints the first database's demo keys: none is lost by the other's start.
describe('demo merchant keys', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-demo-'));
  const databases: TestDatabase[] = [];
  after(async () => {
    for (const database of databases) await database.drop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  const keysFile = () => JSON.parse(fs.readFileSync(path.join(home, 'demo-merchant.json'), 'utf8')) as { merchantId: string; secretKey: string };

  test('each database keeps its own demo keys, and the file names the one in use', async () => {
    const first = await openTestDatabase(2);
    const second = await openTestDatabase(2);
    databases.push(first, second);
    const a = await ensureDemoMerchant(first.db, home);
    assert.ok(a !== undefined);
    assert.equal(keysFile().merchantId, a.merchantId);
    assert.deepEqual(await ensureDemoMerchant(first.db, home), a, 'a restart prints the same keys');

    const b = await ensureDemoMerchant(second.db, home);
    assert.ok(b !== undefined && b.merchantId !== a.merchantId, 'the other database gets its own demo merchant');
    assert.equal(keysFile().merchantId, b.merchantId);
    const aside = path.join(home, `demo-merchant.${a.merchantId}.json`);
    assert.equal(fs.statSync(aside).mode & 0o777, 0o600, 'the first database\'s keys are kept, readable by the owner only');

    assert.deepEqual(await ensureDemoMerchant(first.db, home), a, 'back on the first database: its keys, not none');
    assert.equal(keysFile().secretKey, a.secretKey);
    assert.equal(fs.existsSync(aside), false);
    assert.ok(fs.existsSync(path.join(home, `demo-merchant.${b.merchantId}.json`)), 'and the second one\'s set aside in turn');
    assert.deepEqual(await ensureDemoMerchant(second.db, home), b);
    assert.deepEqual(fs.readdirSync(home).filter((name) => name.startsWith('demo-merchant')).sort(),
      ['demo-merchant.json', `demo-merchant.${a.merchantId}.json`].sort());
  });

  test('a database that has merchants but no demo keys here gets none made', async () => {
    const third = await openTestDatabase(2);
    databases.push(third);
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-demo-other-'));
    await ensureDemoMerchant(third.db, elsewhere);
    fs.rmSync(elsewhere, { recursive: true, force: true });
    const before = fs.readdirSync(home).sort();
    assert.equal(await ensureDemoMerchant(third.db, home), undefined);
    assert.deepEqual(fs.readdirSync(home).sort(), before, 'no file written or moved');
  });
});
