// Goal: after rotate() and rewrap every card still decrypts, card ciphertexts are untouched, and the old KEK is
// needed exactly until the rewrap is done: retiring it is refused before, and harmless after.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { DataKeyRing } from '../../src/vault/data-key-ring.ts';
import { LocalKeyFileProvider } from '../../src/vault/key-encryption-key.ts';
import { retireKeyEncryptionKey, rewrapDataKeys, type RewrapReport } from '../../src/vault/rewrap.ts';
import { VaultError } from '../../src/vault/vault-error.ts';
import { vaultLimits } from '../../src/vault/vault-limits.ts';
import { cardNumber, publishedTestCards } from './support/cards.ts';
import { tempDir } from './support/temp-dir.ts';
import { openVaultDatabase, type VaultDatabase } from './support/vault-database.ts';

const systemClock = { nowMs: () => Date.now() };
const afterGrace = { nowMs: () => Date.now() + vaultLimits.kekRetireGraceMs + 1000 };

interface Card {
  rowId: string;
  number: string;
  ciphertext: Buffer;
}

/** Encrypts cards as a process would: its own ring, so its own data key. */
async function encryptCards(kek: LocalKeyFileProvider, vault: VaultDatabase, numbers: readonly string[], prefix: string): Promise<Card[]> {
  const ring = new DataKeyRing(kek, vault.rows, systemClock);
  return Promise.all(
    numbers.map(async (number, index) => {
      const rowId = `card_${prefix}${index}`;
      return { rowId, number, ciphertext: await ring.encrypt(cardNumber(number), rowId) };
    }),
  );
}

/** Decrypts as a process started now would: a fresh KEK provider and ring, nothing cached. */
async function decryptAll(kekDir: string, vault: VaultDatabase, cards: Card[]): Promise<string[]> {
  const ring = new DataKeyRing(await LocalKeyFileProvider.open(kekDir), vault.rows, systemClock);
  return Promise.all(cards.map(async (card) => (await ring.decrypt(card.ciphertext, card.rowId)).reveal()));
}

function counts(report: RewrapReport): Omit<RewrapReport, 'targetKekId' | 'failedIds'> {
  const { targetKekId: _target, failedIds: _ids, ...rest } = report;
  return rest;
}

describe('KEK rotation', () => {
  let vault: VaultDatabase;
  let kekDir: string;
  let kek: LocalKeyFileProvider;
  const numbers = publishedTestCards.map((card) => card.number);

  before(async () => {
    vault = await openVaultDatabase();
  });
  after(async () => vault.database.drop());
  beforeEach(async () => {
    await vault.reset();
    kekDir = path.join(tempDir(), 'kek');
    kek = await LocalKeyFileProvider.open(kekDir);
  });

  test('cards from before and after rotate() decrypt before, during and after the rewrap; then kek_1 can go', async () => {
    const older = await encryptCards(kek, vault, numbers, 'old');
    assert.equal(await kek.rotate(), 'kek_2');
    const newer = await encryptCards(kek, vault, numbers, 'new');
    const cards = [...older, ...newer];
    const stored = cards.map((card) => Buffer.from(card.ciphertext));
    assert.deepEqual((await vault.allRows()).map((row) => row.kekId).sort(), ['kek_1', 'kek_2']);
    assert.deepEqual(await decryptAll(kekDir, vault, cards), [...numbers, ...numbers]);

    // Before the rewrap, kek_1 is still needed: retiring it is refused, and without its file old cards are lost.
    assert.deepEqual(await retireKeyEncryptionKey(kek, vault.rows, 'kek_1', afterGrace), { retired: false, reason: 'in_use', dataKeys: 1 });
    assert.ok(fs.existsSync(path.join(kekDir, 'kek_1.key')));
    const withoutOld = path.join(tempDir(), 'kek');
    fs.mkdirSync(withoutOld, { mode: 0o700 });
    fs.copyFileSync(path.join(kekDir, 'kek_2.key'), path.join(withoutOld, 'kek_2.key'));
    await assert.rejects(decryptAll(withoutOld, vault, older), (error) => error instanceof VaultError && error.code === 'kek_missing');
    assert.deepEqual(await decryptAll(withoutOld, vault, newer), numbers);

    const report = await rewrapDataKeys(kek, vault.rows);
    assert.equal(report.targetKekId, 'kek_2');
    assert.deepEqual(counts(report), { examined: 2, rewrapped: 1, alreadyCurrent: 1, changedConcurrently: 0, failed: 0, finished: true });
    assert.deepEqual((await vault.allRows()).map((row) => row.kekId), ['kek_2', 'kek_2']);
    // Idempotent: a second run changes nothing.
    const rowsAfterFirst = await vault.allRows();
    assert.deepEqual(counts(await rewrapDataKeys(kek, vault.rows)), { examined: 2, rewrapped: 0, alreadyCurrent: 2, changedConcurrently: 0, failed: 0, finished: true });
    assert.deepEqual(await vault.allRows(), rowsAfterFirst);

    // After the rewrap, kek_2 alone suffices; card ciphertexts were never touched.
    assert.deepEqual(await decryptAll(withoutOld, vault, cards), [...numbers, ...numbers]);
    assert.deepEqual(await retireKeyEncryptionKey(kek, vault.rows, 'kek_1', afterGrace), { retired: true });
    assert.deepEqual(fs.readdirSync(kekDir), ['kek_2.key']);
    assert.deepEqual(await decryptAll(kekDir, vault, cards), [...numbers, ...numbers]);
    assert.deepEqual(cards.map((card) => card.ciphertext), stored);
  });

  test('retiring is refused for the current KEK, an unknown one, and within the grace period', async () => {
    await encryptCards(kek, vault, numbers.slice(0, 1), 'a');
    assert.deepEqual(await retireKeyEncryptionKey(kek, vault.rows, 'kek_1', afterGrace), { retired: false, reason: 'current' });
    await kek.rotate();
    await rewrapDataKeys(kek, vault.rows);
    assert.deepEqual(await retireKeyEncryptionKey(kek, vault.rows, 'kek_7', afterGrace), { retired: false, reason: 'unknown' });
    const early = await retireKeyEncryptionKey(kek, vault.rows, 'kek_1', systemClock);
    assert.equal(early.retired, false);
    assert.ok(!early.retired && early.reason === 'superseded_recently' && early.retryAfterMs > 0 && early.retryAfterMs <= vaultLimits.kekRetireGraceMs);
    assert.deepEqual(fs.readdirSync(kekDir).sort(), ['kek_1.key', 'kek_2.key'], 'nothing was destroyed');
  });

  test('two rewraps at once rewrap each row exactly once, across several pages', async () => {
    const many = Array.from({ length: 7 }, () => numbers);
    for (const [index, batch] of many.entries()) await encryptCards(kek, vault, batch, `p${index}-`);
    await kek.rotate();
    const limits = { ...vaultLimits, rewrapBatchSize: 2 };
    const reports = await Promise.all([rewrapDataKeys(kek, vault.rows, limits), rewrapDataKeys(kek, vault.rows, limits)]);
    const rewrapped = reports.reduce((sum, report) => sum + report.rewrapped, 0);
    const raced = reports.reduce((sum, report) => sum + report.changedConcurrently, 0);
    assert.equal(rewrapped, 7);
    assert.ok(reports.every((report) => report.finished && report.failed === 0 && report.examined === 7));
    assert.equal(rewrapped + raced + reports.reduce((sum, report) => sum + report.alreadyCurrent, 0), 14);
    assert.ok(raced > 0, 'the two runs overlapped, so the compare-and-set was exercised');
    assert.equal(await vault.rows.countWrappedUnder('kek_1'), 0);
  });

  test('a row whose KEK is missing is reported as failed and left alone, and the old KEK cannot be retired', async () => {
    const cards = await encryptCards(kek, vault, numbers.slice(0, 2), 'a');
    await kek.rotate();
    const before = await vault.allRows();
    // A process whose key directory lost kek_1 (say, a bad restore) runs the rewrap.
    const withoutOld = path.join(tempDir(), 'kek');
    fs.mkdirSync(withoutOld, { mode: 0o700 });
    fs.copyFileSync(path.join(kekDir, 'kek_2.key'), path.join(withoutOld, 'kek_2.key'));
    const report = await rewrapDataKeys(await LocalKeyFileProvider.open(withoutOld), vault.rows);
    assert.deepEqual(counts(report), { examined: 1, rewrapped: 0, alreadyCurrent: 0, changedConcurrently: 0, failed: 1, finished: true });
    assert.deepEqual(report.failedIds, before.map((row) => row.id));
    assert.deepEqual(await vault.allRows(), before);
    assert.deepEqual(await retireKeyEncryptionKey(kek, vault.rows, 'kek_1', afterGrace), { retired: false, reason: 'in_use', dataKeys: 1 });
    // Where kek_1 is still present, the rewrap completes and the cards are safe.
    assert.equal((await rewrapDataKeys(kek, vault.rows)).rewrapped, 1);
    assert.deepEqual(await decryptAll(withoutOld, vault, cards), numbers.slice(0, 2));
  });

  test('a run stopped by rewrapBatchesMax says it did not finish, and the next run completes it', async () => {
    for (let index = 0; index < 5; index += 1) await encryptCards(kek, vault, numbers.slice(0, 1), `r${index}-`);
    await kek.rotate();
    const limits = { ...vaultLimits, rewrapBatchSize: 2, rewrapBatchesMax: 1 };
    const first = await rewrapDataKeys(kek, vault.rows, limits);
    assert.deepEqual({ rewrapped: first.rewrapped, finished: first.finished }, { rewrapped: 2, finished: false });
    await rewrapDataKeys(kek, vault.rows, { ...limits, rewrapBatchesMax: 10 });
    assert.equal(await vault.rows.countWrappedUnder('kek_1'), 0);
  });
});
