// Goal: with the KEK in an HSM (SoftHSM2 through PKCS#11), the key is created inside the token and can never leave
// it; data keys are wrapped and unwrapped there, bound to their KEK id and data key id; rotation, rewrap and
// retirement work as with the key file; misconfiguration is refused with a message naming the problem.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { DataKeyRing } from '../../src/vault/data-key-ring.ts';
import { wrapAad, wrappedLayout } from '../../src/vault/key-encryption-key.ts';
import { CKA, Pkcs11Error, Pkcs11Module } from '../../src/vault/pkcs11.ts';
import { Pkcs11KeyProvider, type Pkcs11KekSettings } from '../../src/vault/pkcs11-kek.ts';
import { retireKeyEncryptionKey, rewrapDataKeys } from '../../src/vault/rewrap.ts';
import { Secret } from '../../src/platform/secret.ts';
import { VaultError } from '../../src/vault/vault-error.ts';
import { vaultLimits } from '../../src/vault/vault-limits.ts';
import { createSoftHsmToken, softHsmMissing, softHsmModule, type SoftHsmToken } from '../support/softhsm.ts';
import { cardNumber, publishedTestCards } from './support/cards.ts';
import { tempDir } from './support/temp-dir.ts';
import { openVaultDatabase, type VaultDatabase } from './support/vault-database.ts';

const systemClock = { nowMs: () => Date.now() };
const afterGrace = { nowMs: () => Date.now() + vaultLimits.kekRetireGraceMs + 1000 };
const numbers = publishedTestCards.map((card) => card.number);

function isVaultError(code: string): (error: unknown) => boolean {
  return (error) => error instanceof VaultError && error.code === code;
}

describe('the key-encryption key in an HSM (PKCS#11, SoftHSM2)', { skip: softHsmMissing() }, () => {
  let vault: VaultDatabase;
  let token: SoftHsmToken;
  let settings: Pkcs11KekSettings;
  let tokens = 0;
  const open: Pkcs11KeyProvider[] = [];
  const provider = async () => {
    const opened = await Pkcs11KeyProvider.open(settings);
    open.push(opened);
    return opened;
  };

  before(async () => {
    vault = await openVaultDatabase();
  });
  after(async () => {
    for (const opened of open.splice(0).reverse()) await opened.close();
    await vault.database.drop();
  });
  beforeEach(async () => {
    for (const opened of open.splice(0).reverse()) await opened.close();
    await vault.reset();
    tokens += 1;
    token = createSoftHsmToken(`coffer-kek-${tokens}`);
    settings = { modulePath: softHsmModule, tokenLabel: token.label, pinFile: token.pinFile };
  });

  test('kek_1 is generated inside the token: sensitive, never extractable, its value cannot be read', async () => {
    const kek = await provider();
    assert.equal(kek.currentKeyId(), 'kek_1');
    const module = Pkcs11Module.open(softHsmModule);
    const session = module.openUserSession(token.label, token.pin);
    try {
      const keys = session.findSecretKeys();
      assert.equal(keys.length, 1);
      assert.match(keys[0]?.label ?? '', /^coffer kek_1 \d{4}-\d{2}-\d{2}T/);
      const handle = keys[0]?.handle ?? 0n;
      assert.deepEqual(session.attributes(handle), { sensitive: true, extractable: false, neverExtractable: true, alwaysSensitive: true, token: true, local: true });
      assert.throws(() => session.attribute(handle, CKA.VALUE), (error) => error instanceof Pkcs11Error && /CKR_ATTRIBUTE_SENSITIVE/.test(error.message));
    } finally {
      session.close();
      module.close();
    }
    // A second open finds the key instead of making another.
    const again = await provider();
    assert.equal(again.currentKeyId(), 'kek_1');
  });

  test('cards encrypted under an HSM-wrapped data key decrypt in a fresh process; a wrapped key opens only for its own id', async () => {
    const ring = new DataKeyRing(await provider(), vault.rows, systemClock);
    const ciphertexts = await Promise.all(numbers.map((number, index) => ring.encrypt(cardNumber(number), `card_h${index}`)));
    const fresh = new DataKeyRing(await provider(), vault.rows, systemClock);
    assert.deepEqual(await Promise.all(ciphertexts.map(async (ciphertext, index) => (await fresh.decrypt(ciphertext, `card_h${index}`)).reveal())), numbers);

    const [row] = await vault.allRows();
    assert.ok(row !== undefined);
    assert.equal(row.kekId, 'kek_1');
    const kek = await provider();
    const wrapped = { kekId: row.kekId, wrapped: Buffer.from(row.wrapped) };
    assert.equal((await kek.unwrap(wrapped, Buffer.from(row.id))).reveal().length, 32);
    await assert.rejects(kek.unwrap(wrapped, Buffer.from(`${row.id}x`)), isVaultError('data_key_unwrap_failed'), 'another data key id');
    const altered = Buffer.from(row.wrapped);
    altered[20] = (altered[20] ?? 0) ^ 1;
    await assert.rejects(kek.unwrap({ kekId: row.kekId, wrapped: altered }, Buffer.from(row.id)), isVaultError('data_key_unwrap_failed'), 'one bit changed');
    await assert.rejects(kek.unwrap({ kekId: 'kek_7', wrapped: Buffer.from(row.wrapped) }, Buffer.from(row.id)), isVaultError('kek_missing'));
    await assert.rejects(kek.unwrap({ kekId: 'kek_1', wrapped: Buffer.from(row.wrapped).subarray(1) }, Buffer.from(row.id)), isVaultError('data_key_unwrap_failed'));
  });

  test('rotate, rewrap and retire: kek_1 is needed until the rewrap is done, then destroyed inside the token', async () => {
    const kek = await provider();
    const older = new DataKeyRing(kek, vault.rows, systemClock);
    const oldCards = await Promise.all(numbers.map((number, index) => older.encrypt(cardNumber(number), `card_o${index}`)));
    assert.equal(await kek.rotate(), 'kek_2');
    const newer = new DataKeyRing(kek, vault.rows, systemClock);
    const newCards = await Promise.all(numbers.map((number, index) => newer.encrypt(cardNumber(number), `card_n${index}`)));
    assert.deepEqual((await vault.allRows()).map((row) => row.kekId).sort(), ['kek_1', 'kek_2']);
    assert.ok((kek.supersededAtMs('kek_1') ?? 0) > 0 && kek.supersededAtMs('kek_2') === undefined);

    assert.deepEqual(await retireKeyEncryptionKey(kek, vault.rows, 'kek_1', afterGrace), { retired: false, reason: 'in_use', dataKeys: 1 });
    const report = await rewrapDataKeys(kek, vault.rows);
    assert.equal(report.failed, 0);
    assert.equal(report.rewrapped, 1);
    assert.deepEqual((await vault.allRows()).map((row) => row.kekId), ['kek_2', 'kek_2']);
    assert.deepEqual(await retireKeyEncryptionKey(kek, vault.rows, 'kek_1', afterGrace), { retired: true });

    const module = Pkcs11Module.open(softHsmModule);
    const session = module.openUserSession(token.label, token.pin);
    try {
      assert.deepEqual(session.findSecretKeys().map((key) => key.label.split(' ')[1]), ['kek_2']);
    } finally {
      session.close();
      module.close();
    }
    const fresh = new DataKeyRing(await provider(), vault.rows, systemClock);
    const decrypt = (ciphertexts: Buffer[], prefix: string) => Promise.all(ciphertexts.map(async (ciphertext, index) => (await fresh.decrypt(ciphertext, `${prefix}${index}`)).reveal()));
    assert.deepEqual([...(await decrypt(oldCards, 'card_o')), ...(await decrypt(newCards, 'card_n'))], [...numbers, ...numbers]);
  });

  test('two processes rotating at once may both make kek_2: all wrap under the same object, and what either made unwraps', async () => {
    const a = await provider();
    assert.equal(await a.rotate(), 'kek_2');
    // Another process, which had not seen a's kek_2, creates its own.
    const module = Pkcs11Module.open(softHsmModule);
    const session = module.openUserSession(token.label, token.pin);
    try {
      session.generateAesKey(`coffer kek_2 ${new Date().toISOString()}`, randomBytes(16));
      const twins = session.findSecretKeys().filter((key) => key.label.startsWith('coffer kek_2 ')).sort((x, y) => Buffer.compare(x.id, y.id));
      assert.equal(twins.length, 2);
      const [first, second] = twins;
      assert.ok(first !== undefined && second !== undefined);
      const b = await provider();
      const dataKey = Buffer.alloc(32, 7);
      for (const wrapper of [a, b]) {
        const wrapped = await wrapper.wrap(new Secret(Buffer.from(dataKey)), Buffer.from('dk_twin'));
        assert.equal(wrapped.kekId, 'kek_2');
        const opened = session.decryptAesGcm(first.handle, wrapped.wrapped.subarray(1, 13), wrapAad('kek_2', Buffer.from('dk_twin')), wrapped.wrapped.subarray(13));
        assert.deepEqual(opened, dataKey, 'wrapped under the object with the lowest CKA_ID');
      }
      // A data key wrapped under the other twin (by the process that made it, before it saw the first) still opens.
      const nonce = randomBytes(12);
      const underSecond = session.encryptAesGcm(second.handle, nonce, wrapAad('kek_2', Buffer.from('dk_other')), dataKey);
      const blob = { kekId: 'kek_2', wrapped: Buffer.concat([Buffer.of(wrappedLayout.version), nonce, underSecond]) };
      assert.deepEqual((await a.unwrap(blob, Buffer.from('dk_other'))).reveal(), dataKey);
      assert.deepEqual((await b.unwrap(blob, Buffer.from('dk_other'))).reveal(), dataKey);
    } finally {
      session.close();
      module.close();
    }
  });

  test('a key labelled as a newer KEK that could ever leave the token is ignored: it never wraps', async () => {
    const kek = await provider();
    const module = Pkcs11Module.open(softHsmModule);
    const session = module.openUserSession(token.label, token.pin);
    try {
      session.generateAesKey(`coffer kek_9 ${new Date().toISOString()}`, randomBytes(16), true);
      const wrapped = await kek.wrap(new Secret(Buffer.alloc(32, 3)), Buffer.from('dk_planted'));
      assert.equal(wrapped.kekId, 'kek_1', 'the extractable kek_9 is not a KEK');
      assert.equal((await provider()).currentKeyId(), 'kek_1');
      assert.equal(await kek.rotate(), 'kek_2', 'rotation numbers from the real KEKs');
    } finally {
      session.close();
      module.close();
    }
  });

  test('a wrong PIN, an unknown token and a PIN file others can read are refused, naming the problem', async () => {
    const wrongPin = path.join(tempDir(), 'wrong.pin');
    fs.writeFileSync(wrongPin, '000000\n', { mode: 0o600 });
    await assert.rejects(Pkcs11KeyProvider.open({ ...settings, pinFile: wrongPin }), /C_Login failed: CKR_PIN_INCORRECT/);
    await assert.rejects(Pkcs11KeyProvider.open({ ...settings, tokenLabel: 'no-such-token' }), /no PKCS#11 token is labelled "no-such-token" \(found: .*"coffer-kek-\d+"/);
    const loose = path.join(tempDir(), 'loose.pin');
    fs.writeFileSync(loose, `${token.pin}\n`, { mode: 0o644 });
    fs.chmodSync(loose, 0o644);
    await assert.rejects(Pkcs11KeyProvider.open({ ...settings, pinFile: loose }), isVaultError('kek_file_insecure'));
    await assert.rejects(Pkcs11KeyProvider.open({ ...settings, pinFile: path.join(tempDir(), 'absent.pin') }), isVaultError('kek_missing'));
    await assert.rejects(Pkcs11KeyProvider.open({ ...settings, modulePath: path.join(tempDir(), 'libnothing.so') }), /libnothing\.so/);

    // None of the refusals created a key on the token.
    const module = Pkcs11Module.open(softHsmModule);
    const session = module.openUserSession(token.label, token.pin);
    try {
      assert.deepEqual(session.findSecretKeys(), []);
    } finally {
      session.close();
      module.close();
    }
  });
});
