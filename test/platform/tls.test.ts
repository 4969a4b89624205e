import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '../../src/platform/config-error.ts';
import { loadTlsMaterial } from '../../src/platform/tls.ts';

// Goal: a certificate and key given with COFFER_TLS_CERT and COFFER_TLS_KEY are checked before anything listens,
// and a file that is missing, is not PEM, or a key that is not the certificate's is refused as a configuration
// error (exit 78) that names the setting and the file; a good pair is used as given.
describe('TLS certificate and key from the configuration', () => {
  let dir: string;
  let cert: string;
  let key: string;
  let otherKey: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-tls-'));
    // Two generated pairs (in homes of their own): the files a configuration would name.
    const one = await loadTlsMaterial(path.join(dir, 'one'), { certFile: undefined, keyFile: undefined }, Date.now());
    const two = await loadTlsMaterial(path.join(dir, 'two'), { certFile: undefined, keyFile: undefined }, Date.now());
    cert = one.certFile;
    key = path.join(dir, 'one', 'tls', 'localhost.key');
    otherKey = path.join(dir, 'two', 'tls', 'localhost.key');
    assert.notEqual(one.key, two.key);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const refused = async (certFile: string, keyFile: string, message: RegExp) => {
    await assert.rejects(loadTlsMaterial(path.join(dir, 'unused'), { certFile, keyFile }, Date.now()), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, message);
      return true;
    });
    assert.equal(fs.existsSync(path.join(dir, 'unused')), false, 'nothing generated instead');
  };

  test('a missing file, a file that is not PEM, and a key of another certificate are refused naming the setting', async () => {
    await refused(path.join(dir, 'absent.crt'), key, /^COFFER_TLS_CERT: cannot read .*absent\.crt \(ENOENT\)$/);
    await refused(cert, path.join(dir, 'absent.key'), /^COFFER_TLS_KEY: cannot read .*absent\.key \(ENOENT\)$/);
    const garbage = path.join(dir, 'garbage.pem');
    fs.writeFileSync(garbage, 'not a certificate\n');
    await refused(garbage, key, /^COFFER_TLS_CERT: .*garbage\.pem holds no PEM certificate$/);
    await refused(cert, garbage, /^COFFER_TLS_KEY: .*garbage\.pem holds no PEM private key/);
    await refused(cert, otherKey, /^COFFER_TLS_KEY: .*two\/tls\/localhost\.key is not the private key of the certificate in /);
  });

  test('a matching pair is used as given', async () => {
    const material = await loadTlsMaterial(path.join(dir, 'unused'), { certFile: cert, keyFile: key }, Date.now());
    assert.deepEqual([material.cert, material.key, material.generated], [fs.readFileSync(cert, 'utf8'), fs.readFileSync(key, 'utf8'), false]);
  });
});
