import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto';

/**
 * AES-256-GCM, the only cipher the vault uses, in one place: both key wrapping and card-number encryption go
 * through these two functions, so the rules below hold everywhere.
 *
 * - Every seal draws a fresh random 12-byte nonce; callers bound the seals per key (`vaultLimits`).
 * - The tag is always 16 bytes. Node 20 accepts a tag as short as 4 bytes unless the decipher is created with
 *   `authTagLength: 16`, which would let a forger succeed after about 2^32 tries; `openAesGcm` both checks the
 *   length and passes the option, so removing either one alone does not reopen the hole.
 */
export const nonceBytes = 12;
export const tagBytes = 16;

export interface Sealed {
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

export function sealAesGcm(key: KeyObject, plaintext: Buffer, aad: Buffer): Sealed {
  const nonce = randomBytes(nonceBytes);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: tagBytes });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { nonce, ciphertext, tag: cipher.getAuthTag() };
}

/** The plaintext, or `undefined` when the input is not authentic under `key` and `aad` (callers say why). */
export function openAesGcm(key: KeyObject, sealed: Sealed, aad: Buffer): Buffer | undefined {
  if (sealed.nonce.length !== nonceBytes || sealed.tag.length !== tagBytes) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.nonce, { authTagLength: tagBytes });
  decipher.setAAD(aad);
  try {
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch {
    // OpenSSL says only "unable to authenticate data"; which byte was wrong is neither known nor useful.
    return undefined;
  }
}
