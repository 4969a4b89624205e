// Goal: data keys are stored before use, cached only within their bounds, and replaced when used up or too old.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { sql } from 'kysely';
import type { Clock } from '../../src/platform/clock.ts';
import { DataKeyRing } from '../../src/vault/data-key-ring.ts';
import { LocalKeyFileProvider } from '../../src/vault/key-encryption-key.ts';
import { VaultError, type VaultErrorCode } from '../../src/vault/vault-error.ts';
import { vaultLimits, type VaultLimits } from '../../src/vault/vault-limits.ts';
import { cardNumber, publishedTestCards } from './support/cards.ts';
import { tempDir } from './support/temp-dir.ts';
import { openVaultDatabase, type VaultDatabase } from './support/vault-database.ts';

function vaultError(code: VaultErrorCode): (error: unknown) => boolean {
  return (error) => error instanceof VaultError && error.code === code;
}

class TestClock implements Clock {
  ms = Date.parse('2025-01-01T00:00:00Z');
  nowMs(): number {
    return this.ms;
  }
}

const visa = cardNumber('4242424242424242');

describe('data key ring', () => {
  let vault: VaultDatabase;
  let kek: LocalKeyFileProvider;
  let clock: TestClock;
  const ring = (limits: Partial<VaultLimits> = {}): DataKeyRing => new DataKeyRing(kek, vault.rows, clock, { ...vaultLimits, ...limits });

  before(async () => {
    vault = await openVaultDatabase();
  });
  after(async () => vault.database.drop());
  beforeEach(async () => {
    await vault.reset();
    kek = await LocalKeyFileProvider.open(path.join(tempDir(), 'kek'));
    clock = new TestClock();
  });

  test('every card decrypts in this process and in a fresh one; the one data key row was stored wrapped', async () => {
    const writer = ring();
    const ciphertexts = await Promise.all(publishedTestCards.map((card, index) => writer.encrypt(cardNumber(card.number), `card_${index}`)));
    const rows = await vault.allRows();
    assert.equal(rows.length, 1, 'concurrent first encryptions share one new data key');
    assert.deepEqual({ kekId: rows[0]?.kekId, wrappedBytes: rows[0]?.wrapped.length }, { kekId: 'kek_1', wrappedBytes: 61 });
    for (const reader of [writer, ring()]) {
      for (const [index, card] of publishedTestCards.entries()) {
        assert.equal((await reader.decrypt(ciphertexts[index]!, `card_${index}`)).reveal(), card.number);
      }
    }
    await assert.rejects(ring().decrypt(ciphertexts[0]!, 'card_1'), vaultError('ciphertext_authentication_failed'));
  });

  test('a data key whose row could not be stored encrypts nothing', async () => {
    const failing = { ...vault.rows, insert: async () => Promise.reject(new Error('database unavailable')) };
    const writer = new DataKeyRing(kek, failing, clock);
    await assert.rejects(writer.encrypt(visa, 'card_a'), /database unavailable/);
    await assert.rejects(writer.encrypt(visa, 'card_a'), /database unavailable/, 'the unstored key was not kept for the next call');
    assert.deepEqual(await vault.allRows(), []);
  });

  test('a data key encrypts at most dataKeyEncryptionsMax cards, even under concurrency', async () => {
    const writer = ring({ dataKeyEncryptionsMax: 3 });
    const ciphertexts = await Promise.all(Array.from({ length: 7 }, (_, index) => writer.encrypt(visa, `card_${index}`)));
    assert.equal((await vault.allRows()).length, 3, '3 + 3 + 1');
    const perKey = new Map<string, number>();
    for (const ciphertext of ciphertexts) {
      const id = ciphertext.subarray(2, 2 + (ciphertext[1] ?? 0)).toString();
      perKey.set(id, (perKey.get(id) ?? 0) + 1);
    }
    assert.deepEqual([...perKey.values()].sort(), [1, 3, 3]);
    const reader = ring();
    for (const [index, ciphertext] of ciphertexts.entries()) assert.equal((await reader.decrypt(ciphertext, `card_${index}`)).reveal(), visa.reveal());
  });

  test('a data key stops encrypting after dataKeyEncryptPeriodMs', async () => {
    const writer = ring();
    await writer.encrypt(visa, 'card_a');
    clock.ms += vaultLimits.dataKeyEncryptPeriodMs - 1;
    await writer.encrypt(visa, 'card_b');
    assert.equal((await vault.allRows()).length, 1);
    clock.ms += 1;
    await writer.encrypt(visa, 'card_c');
    assert.equal((await vault.allRows()).length, 2);
  });

  test('an unwrapped key is read again after dataKeyCacheTtlMs, after dataKeyCacheUsesMax uses, or when evicted', async () => {
    const ciphertexts = await Promise.all(['a', 'b', 'c'].map(async (row) => ring().encrypt(visa, `card_${row}`)));
    const reader = ring({ dataKeyCacheUsesMax: 3, dataKeyCacheEntriesMax: 2 });
    const decrypt = async (index: number): Promise<void> => {
      await reader.decrypt(ciphertexts[index]!, `card_${'abc'[index]}`);
    };
    await decrypt(0);
    await decrypt(0);
    await decrypt(0);
    assert.equal(vault.findCalls(), 1, 'three uses, one read');
    await decrypt(0);
    assert.equal(vault.findCalls(), 2, 'the fourth use reads the row again');
    clock.ms += vaultLimits.dataKeyCacheTtlMs;
    await decrypt(0);
    assert.equal(vault.findCalls(), 3, 'expired after the TTL');
    await decrypt(1);
    await decrypt(2);
    assert.equal(vault.findCalls(), 5);
    await decrypt(0);
    assert.equal(vault.findCalls(), 6, 'the oldest of three keys was dropped from a cache of two');
    reader.forget();
    await decrypt(2);
    assert.equal(vault.findCalls(), 7, 'forget() drops everything');
  });

  test('a missing data key row, or a wrapped key moved to another row, is a typed error and is not cached', async () => {
    const first = await ring().encrypt(visa, 'card_a');
    const second = await ring().encrypt(visa, 'card_b');
    const [rowA, rowB] = await vault.allRows();
    assert.ok(rowA !== undefined && rowB !== undefined);
    // Swap the wrapped bytes of the two rows: each is bound to its own data key id.
    await sql`UPDATE vault.data_keys SET wrapped = ${rowB.wrapped} WHERE id = ${rowA.id}`.execute(vault.database.db);
    await sql`UPDATE vault.data_keys SET wrapped = ${rowA.wrapped} WHERE id = ${rowB.id}`.execute(vault.database.db);
    const reader = ring();
    await assert.rejects(reader.decrypt(first, 'card_a'), vaultError('data_key_unwrap_failed'));
    await assert.rejects(reader.decrypt(second, 'card_b'), vaultError('data_key_unwrap_failed'));
    await sql`DELETE FROM vault.data_keys`.execute(vault.database.db);
    await assert.rejects(reader.decrypt(first, 'card_a'), vaultError('data_key_missing'));
    // Restored, it is found: the failures above were not remembered.
    await vault.rows.insert(rowA);
    await vault.rows.insert(rowB);
    assert.equal((await reader.decrypt(first, 'card_a')).reveal(), visa.reveal());
  });
});
