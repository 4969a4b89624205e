import assert from 'node:assert/strict';
import { createPublicKey, createPrivateKey, sign, verify } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { AlipaySandboxCredentials } from '../../src/connectors/alipay/sandbox/credentials.ts';
import { prepareSandboxKeys } from '../../src/connectors/registry.ts';
import { loadSandboxAccounts } from '../../src/connectors/sandbox-accounts.ts';
import type { WeChatPaySandboxCredentialSet } from '../../src/connectors/wechat-pay/sandbox/sandbox-credentials.ts';

function pairMatches(privateKeyPem: string, publicKeyPem: string): boolean {
  const message = Buffer.from('coffer sandbox key check');
  const signature = sign('sha256', message, createPrivateKey(privateKeyPem));
  return verify('sha256', message, createPublicKey(publicKeyPem), signature);
}

// Goal: a first start makes the wallet sandboxes' keys off the main thread, keeps them owner-only in the home
// directory, and never replaces keys a home already has (callbacks in flight are signed with them).
describe('sandbox accounts', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-sandbox-accounts-'));
  after(() => fs.rmSync(home, { recursive: true, force: true }));
  const never = (): never => {
    throw new Error('keys that exist are not made again');
  };

  test('prepared keys are owner-only, pair up, and are what loading reads; preparing again changes nothing', async () => {
    const keep = await prepareSandboxKeys(home);
    const files = ['sandbox-alipay.json', 'sandbox-wechat-pay.json'].map((name) => path.join(home, 'keys', name));
    assert.deepEqual(files.filter((file) => fs.existsSync(file)), [], 'nothing is written before keep');
    keep();
    const before = files.map((file) => fs.readFileSync(file, 'utf8'));
    for (const file of files) assert.equal(fs.statSync(file).mode & 0o777, 0o600, file);
    const alipay = loadSandboxAccounts<AlipaySandboxCredentials>(home, 'alipay', never);
    assert.match(alipay.appId, /^2021000\d{9}$/);
    assert.ok(pairMatches(alipay.appPrivateKeyPem, alipay.appPublicKeyPem), 'the app key pair');
    assert.ok(pairMatches(alipay.alipayPrivateKeyPem, alipay.alipayPublicKeyPem), "Alipay's key pair");
    assert.ok(!pairMatches(alipay.appPrivateKeyPem, alipay.alipayPublicKeyPem), 'two different pairs');
    // Each provider's own encodings: PKCS#1 from Alipay's key tool, PKCS#8 as WeChat Pay's apiclient_key.pem.
    assert.match(alipay.appPrivateKeyPem, /^-----BEGIN RSA PRIVATE KEY-----/);
    const wechat = loadSandboxAccounts<WeChatPaySandboxCredentialSet>(home, 'wechat-pay', never);
    assert.ok(pairMatches(wechat.merchantPrivateKeyPem, wechat.merchantPublicKeyPem), "the merchant's key pair");
    assert.ok(pairMatches(wechat.platformPrivateKeyPem, wechat.platformPublicKeyPem), "WeChat Pay's key pair");
    assert.match(wechat.merchantPrivateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.match(wechat.merchantPublicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
    assert.equal(wechat.apiV3Key.length, 32);
    (await prepareSandboxKeys(home))();
    assert.deepEqual(files.map((file) => fs.readFileSync(file, 'utf8')), before, 'kept keys are not replaced');
  });
});
