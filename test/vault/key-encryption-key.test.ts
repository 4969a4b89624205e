// Goal: KEK files are created private and refused when not, and a wrapped data key opens only under its KEK and aad.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { AssertionFailure } from '../../src/platform/assert.ts';
import { Secret } from '../../src/platform/secret.ts';
import { kekDirectory, LocalKeyFileProvider, type WrappedKey } from '../../src/vault/key-encryption-key.ts';
import { VaultError, type VaultErrorCode } from '../../src/vault/vault-error.ts';
import { modeOf, tempDir } from './support/temp-dir.ts';

function vaultError(code: VaultErrorCode): (error: unknown) => boolean {
  return (error) => error instanceof VaultError && error.code === code;
}

const aad = Buffer.from('dek_test');

async function wrapped(provider: LocalKeyFileProvider, dataKey: Buffer = randomBytes(32)): Promise<{ dataKey: Buffer; wrapped: WrappedKey }> {
  return { dataKey, wrapped: await provider.wrap(new Secret(Buffer.from(dataKey)), aad) };
}

describe('local KEK files', () => {
  test('first use creates kek_1: 32 random bytes in base64, file 0600 in a 0700 directory; reopening finds it', async () => {
    const dir = kekDirectory(tempDir());
    const provider = await LocalKeyFileProvider.open(dir);
    assert.equal(provider.currentKeyId(), 'kek_1');
    assert.deepEqual(fs.readdirSync(dir), ['kek_1.key'], 'no temporary file is left behind');
    assert.equal(modeOf(dir), 0o700);
    assert.equal(modeOf(path.join(dir, 'kek_1.key')), 0o600);
    assert.equal(Buffer.from(fs.readFileSync(path.join(dir, 'kek_1.key'), 'utf8').trim(), 'base64').length, 32);
    const { dataKey, wrapped: key } = await wrapped(provider);
    const reopened = await LocalKeyFileProvider.open(dir);
    assert.deepEqual((await reopened.unwrap(key, aad)).reveal(), dataKey);
  });

  test('several opens racing on an empty directory agree on one kek_1', async () => {
    const dir = path.join(tempDir(), 'kek');
    const providers = await Promise.all(Array.from({ length: 8 }, () => LocalKeyFileProvider.open(dir)));
    assert.deepEqual(fs.readdirSync(dir), ['kek_1.key']);
    const { dataKey, wrapped: key } = await wrapped(providers[0]!);
    for (const provider of providers) assert.deepEqual((await provider.unwrap(key, aad)).reveal(), dataKey);
  });

  test('a key file readable by group or others is refused, and left as it was', async () => {
    const dir = path.join(tempDir(), 'kek');
    await LocalKeyFileProvider.open(dir);
    const file = path.join(dir, 'kek_1.key');
    const content = fs.readFileSync(file);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      fs.chmodSync(file, mode);
      await assert.rejects(LocalKeyFileProvider.open(dir), vaultError('kek_file_insecure'), mode.toString(8));
      assert.equal(modeOf(file), mode);
      assert.deepEqual(fs.readFileSync(file), content);
    }
    fs.chmodSync(file, 0o400);
    assert.equal((await LocalKeyFileProvider.open(dir)).currentKeyId(), 'kek_1', 'owner read-only is fine');
  });

  test('a 0644 KEK that appears later is refused when first used, not silently trusted', async () => {
    const dir = path.join(tempDir(), 'kek');
    const provider = await LocalKeyFileProvider.open(dir);
    fs.writeFileSync(path.join(dir, 'kek_2.key'), `${randomBytes(32).toString('base64')}\n`, { mode: 0o644 });
    fs.chmodSync(path.join(dir, 'kek_2.key'), 0o644);
    await assert.rejects(provider.wrap(new Secret(randomBytes(32)), aad), vaultError('kek_file_insecure'));
    await assert.rejects(provider.unwrap({ kekId: 'kek_2', wrapped: Buffer.alloc(61) }, aad), vaultError('kek_file_insecure'));
  });

  test('a directory others can reach, a symbolic link, or a file without 32 base64 bytes is refused', async () => {
    const open = path.join(tempDir(), 'kek');
    fs.mkdirSync(open, { mode: 0o755 });
    fs.chmodSync(open, 0o755);
    await assert.rejects(LocalKeyFileProvider.open(open), vaultError('kek_file_insecure'));
    assert.deepEqual(fs.readdirSync(open), [], 'nothing is created in a refused directory');

    const linked = path.join(tempDir(), 'kek');
    await LocalKeyFileProvider.open(linked);
    const elsewhere = path.join(tempDir(), 'elsewhere.key');
    fs.writeFileSync(elsewhere, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    fs.symlinkSync(elsewhere, path.join(linked, 'kek_2.key'));
    await assert.rejects(LocalKeyFileProvider.open(linked), vaultError('kek_file_insecure'));

    for (const content of ['', 'short\n', `${randomBytes(31).toString('base64')}\n`, `${randomBytes(33).toString('base64')}\n`, `${'*'.repeat(43)}=\n`]) {
      const bad = path.join(tempDir(), 'kek');
      fs.mkdirSync(bad, { mode: 0o700 });
      fs.writeFileSync(path.join(bad, 'kek_1.key'), content, { mode: 0o600 });
      await assert.rejects(LocalKeyFileProvider.open(bad), vaultError('kek_file_invalid'), JSON.stringify(content));
    }
  });

  test('a wrapped key opens only with its own aad, its own KEK and every byte intact', async () => {
    const provider = await LocalKeyFileProvider.open(path.join(tempDir(), 'kek'));
    const { dataKey, wrapped: key } = await wrapped(provider);
    assert.equal(key.kekId, 'kek_1');
    assert.equal(key.wrapped.length, 61, 'version, nonce, 32 bytes, tag');
    assert.ok(!key.wrapped.includes(dataKey.subarray(0, 8)), 'the data key does not appear in its wrapped form');
    assert.deepEqual((await provider.unwrap(key, aad)).reveal(), dataKey);
    await assert.rejects(provider.unwrap(key, Buffer.from('dek_other')), vaultError('data_key_unwrap_failed'));
    for (let bit = 0; bit < key.wrapped.length * 8; bit += 1) {
      const altered = Buffer.from(key.wrapped);
      altered[bit >> 3]! ^= 1 << (bit & 7);
      await assert.rejects(provider.unwrap({ kekId: key.kekId, wrapped: altered }, aad), vaultError('data_key_unwrap_failed'), `bit ${bit}`);
    }
    await assert.rejects(provider.unwrap({ kekId: key.kekId, wrapped: key.wrapped.subarray(0, 49) }, aad), vaultError('data_key_unwrap_failed'));
    await provider.rotate();
    // The same bytes labelled as wrapped by kek_2: refused (another key, and the KEK id is in the aad).
    await assert.rejects(provider.unwrap({ kekId: 'kek_2', wrapped: key.wrapped }, aad), vaultError('data_key_unwrap_failed'));
    await assert.rejects(provider.unwrap({ kekId: 'kek_9', wrapped: key.wrapped }, aad), vaultError('kek_missing'));
    await assert.rejects(provider.unwrap({ kekId: '../kek_1', wrapped: key.wrapped }, aad), vaultError('kek_missing'));
  });

  test('a KEK file copied under another id does not open what the original wrapped: the id is in the aad', async () => {
    const dir = path.join(tempDir(), 'kek');
    const provider = await LocalKeyFileProvider.open(dir);
    const { dataKey, wrapped: key } = await wrapped(provider);
    fs.copyFileSync(path.join(dir, 'kek_1.key'), path.join(dir, 'kek_2.key'));
    fs.chmodSync(path.join(dir, 'kek_2.key'), 0o600);
    await assert.rejects(provider.unwrap({ kekId: 'kek_2', wrapped: key.wrapped }, aad), vaultError('data_key_unwrap_failed'));
    assert.deepEqual((await provider.unwrap(key, aad)).reveal(), dataKey);
  });

  test('rotate makes kek_2 current (0600) while kek_1 still unwraps; another process sees the rotation', async () => {
    const dir = path.join(tempDir(), 'kek');
    const provider = await LocalKeyFileProvider.open(dir);
    const otherProcess = await LocalKeyFileProvider.open(dir);
    const before = await wrapped(provider);
    assert.equal(provider.supersededAtMs('kek_1'), undefined, 'kek_1 is current');
    assert.equal(await provider.rotate(), 'kek_2');
    assert.equal(provider.currentKeyId(), 'kek_2');
    assert.equal(modeOf(path.join(dir, 'kek_2.key')), 0o600);
    assert.ok(Math.abs((provider.supersededAtMs('kek_1') ?? 0) - Date.now()) < 60_000);
    assert.deepEqual((await provider.unwrap(before.wrapped, aad)).reveal(), before.dataKey);
    // The other process still believes kek_1 is current, but wraps under kek_2 and opens kek_2's keys.
    assert.equal(otherProcess.currentKeyId(), 'kek_1');
    const after = await wrapped(otherProcess);
    assert.equal(after.wrapped.kekId, 'kek_2');
    assert.deepEqual((await otherProcess.unwrap((await wrapped(provider, after.dataKey)).wrapped, aad)).reveal(), after.dataKey);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['kek_1.key', 'kek_2.key']);
  });

  test('destroy removes a superseded KEK for good, and refuses the current one', async () => {
    const dir = path.join(tempDir(), 'kek');
    const provider = await LocalKeyFileProvider.open(dir);
    const before = await wrapped(provider);
    await provider.rotate();
    await assert.rejects(provider.destroy('kek_2'), AssertionFailure);
    await provider.destroy('kek_1');
    assert.deepEqual(fs.readdirSync(dir), ['kek_2.key']);
    await assert.rejects(provider.unwrap(before.wrapped, aad), vaultError('kek_missing'));
    await assert.rejects((await LocalKeyFileProvider.open(dir)).unwrap(before.wrapped, aad), vaultError('kek_missing'));
  });
});
