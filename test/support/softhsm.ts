import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where Debian's `softhsm2` package puts the PKCS#11 module; `.ci/run` installs it. */
export const softHsmModule = '/usr/lib/softhsm/libsofthsm2.so';

/**
 * Why the SoftHSM2 tests cannot run here, or `false` when they can. In CI the package must be there (`.ci/run`
 * installs it), so a missing module fails the suite there instead of skipping it.
 */
export function softHsmMissing(): string | false {
  if (fs.existsSync(softHsmModule)) return false;
  if (process.env.CI === 'true') throw new Error(`${softHsmModule} is missing: .ci/run must install the softhsm2 package`);
  return `SoftHSM2 is not installed (apt-get install softhsm2)`;
}

export interface SoftHsmToken {
  label: string;
  pin: string;
  pinFile: string;
  /** The environment that points Coffer at this token. */
  env: Record<string, string>;
}

/**
 * A fresh SoftHSM2 token in its own directory. SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialised, so
 * this sets it for the whole test process: one token directory per process, any number of tokens in it.
 */
export function createSoftHsmToken(label: string, pin = '246810'): SoftHsmToken {
  let conf = process.env.SOFTHSM2_CONF;
  if (conf === undefined || !conf.includes('coffer-softhsm-')) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-softhsm-'));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    fs.mkdirSync(path.join(dir, 'tokens'), { mode: 0o700 });
    conf = path.join(dir, 'softhsm2.conf');
    fs.writeFileSync(conf, `directories.tokendir = ${path.join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    process.env.SOFTHSM2_CONF = conf;
  }
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', '13579135'], { env: process.env, stdio: 'pipe' });
  const pinFile = path.join(path.dirname(conf), `${label}.pin`);
  fs.writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  return {
    label, pin, pinFile,
    env: { COFFER_KEK_PKCS11_MODULE: softHsmModule, COFFER_KEK_PKCS11_TOKEN: label, COFFER_KEK_PKCS11_PIN_FILE: pinFile, SOFTHSM2_CONF: conf },
  };
}
