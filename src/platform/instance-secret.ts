import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Secret } from './secret.ts';

/**
 * This installation's own secret, from which keyed hashes (card fingerprints) derive their keys. It lives in a
 * file outside the database, created with mode 0600 on first start, so a database dump alone cannot reverse a
 * fingerprint by hashing every card number. Losing it changes future fingerprints; back it up with the keys.
 */
export function instanceKeyFile(homeDir: string): string {
  return path.join(homeDir, 'keys', 'instance.key');
}

/**
 * A value that tells whether a key is the one a database was made with, and nothing else: derived one way from
 * the secret, like every other key (HKDF), for no other purpose.
 */
export function instanceKeyCheck(secret: Secret<Buffer>): string {
  return deriveKey(secret, 'instance key check v1').reveal().subarray(0, 16).toString('base64url');
}

/** The home's secret, created on first use (home-keys.ts refuses a start that would replace a database's own). */
export function loadInstanceSecret(homeDir: string | undefined): Secret<Buffer> {
  if (homeDir === undefined) return new Secret(randomBytes(32));
  const file = instanceKeyFile(homeDir);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      fs.writeFileSync(file, randomBytes(32).toString('base64') + '\n', { flag: 'wx', mode: 0o600 });
    } catch (error) {
      // Another process created it first; use theirs.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  const mode = fs.statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new Error(`${file} must be readable by its owner only (mode 0600), found ${mode.toString(8)}`);
  }
  const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new Error(`${file} must hold 32 bytes in base64`);
  return new Secret(key);
}

/** A key for one purpose, derived from the instance secret (HKDF-SHA256). */
export function deriveKey(secret: Secret<Buffer>, purpose: string): Secret<Buffer> {
  return new Secret(Buffer.from(hkdfSync('sha256', secret.reveal(), Buffer.alloc(0), `coffer ${purpose}`, 32)));
}

/** A card fingerprint: the same card gives the same value in this installation, and nothing reversible. */
export function cardFingerprint(key: Secret<Buffer>, cardNumber: Secret<string>): string {
  const digest = createHmac('sha256', key.reveal()).update(cardNumber.reveal()).digest('base64');
  return digest.replace(/[^A-Za-z0-9]/g, '').slice(0, 16);
}
