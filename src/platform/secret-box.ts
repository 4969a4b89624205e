import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { assert } from '../platform/assert.ts';
import { Secret } from '../platform/secret.ts';

/**
 * Secrets Coffer must read back (webhook signing secrets, which it signs with; request signing secrets, which it
 * verifies with) are stored encrypted, with AES-256-GCM under a key derived from the instance secret, bound to
 * their row by associated data (`label` and the row's id): a database dump alone does not reveal them, and a
 * ciphertext copied to another row does not decrypt. Format: version (1) | nonce (12) | ciphertext | tag (16).
 */
const version = 1;

export function sealSecret(key: Secret<Buffer>, endpointId: string, secret: Secret<string>, label = 'webhook secret'): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key.reveal(), nonce, { authTagLength: 16 });
  cipher.setAAD(Buffer.from(`${label} ${endpointId}`));
  const body = Buffer.concat([cipher.update(secret.reveal(), 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([version]), nonce, body, cipher.getAuthTag()]);
}

export function openSecret(key: Secret<Buffer>, endpointId: string, sealed: Buffer, label = 'webhook secret'): Secret<string> {
  assert(sealed.length > 1 + 12 + 16 && sealed[0] === version, 'a sealed secret has the current format');
  const nonce = sealed.subarray(1, 13);
  const tag = sealed.subarray(sealed.length - 16);
  const decipher = createDecipheriv('aes-256-gcm', key.reveal(), nonce, { authTagLength: 16 });
  decipher.setAAD(Buffer.from(`${label} ${endpointId}`));
  decipher.setAuthTag(tag);
  const body = Buffer.concat([decipher.update(sealed.subarray(13, sealed.length - 16)), decipher.final()]);
  return new Secret(body.toString('utf8'));
}
