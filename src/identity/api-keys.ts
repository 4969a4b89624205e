import { createHash } from 'node:crypto';

/** `sk_test_…`, `pk_live_…`: kind, mode, then 24 to 128 base62 characters (Coffer issues 48). */
export const apiKeyPattern = /^(sk|pk)_(test|live)_[A-Za-z0-9]{24,128}$/;

/** Keys are long random strings, so a fast hash is enough to store them irreversibly and look them up. */
export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** `sk_test_****abcd`: enough to tell keys apart, never enough to use one. */
export function maskApiKey(key: string): string {
  const prefix = /^[a-z]{2}_(test|live)_/.exec(key)?.[0] ?? '';
  return `${prefix}****${key.slice(-4)}`;
}
