import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The key that signs audit checkpoints: Ed25519, kept in `<home>/keys/audit-signing.key` (PKCS#8 PEM, mode 0600
 * in a 0700 directory), outside the database, so that someone who can rewrite the database, a superuser
 * included, cannot produce a checkpoint that matches a rewritten chain. Created on first use; a key file that
 * group or others can read is refused. Its public half is exported with the log, for auditors.
 */
export class CheckpointSigner {
  readonly keyId: string;
  readonly publicKeyPem: string;
  readonly #privateKey: KeyObject;

  private constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    const publicKey = createPublicKey(privateKey);
    this.publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    this.keyId = checkpointKeyId(this.publicKeyPem);
  }

  /** `create: false` (verifying): a missing key is an error, not a reason to make a new one. */
  static open(homeDir: string, options: { create?: boolean } = {}): CheckpointSigner {
    const directory = path.join(homeDir, 'keys');
    const file = path.join(directory, 'audit-signing.key');
    if (options.create === false && !fs.existsSync(file)) throw new Error(`${file} does not exist: verify where the installation's audit signing key is`);
    fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
    if (!fs.existsSync(file)) {
      const { privateKey } = generateKeyPairSync('ed25519');
      try {
        fs.writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
      } catch (error) {
        // Another process created it first: use theirs.
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    const stat = fs.lstatSync(file);
    if (!stat.isFile() || (stat.mode & 0o077) !== 0) {
      throw new Error(`${file} must be a regular file readable by its owner only (chmod 600)`);
    }
    return new CheckpointSigner(createPrivateKey(fs.readFileSync(file)));
  }

  sign(message: Buffer): Buffer {
    return sign(null, message, this.#privateKey);
  }
}

/** A key's id: the first 16 hex digits of the SHA-256 of its public key (PEM). */
export function checkpointKeyId(publicKeyPem: string): string {
  return `ack_${createHash('sha256').update(publicKeyPem).digest('hex').slice(0, 16)}`;
}

export function verifyCheckpointSignature(publicKeyPem: string, message: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, message, createPublicKey(publicKeyPem), signature);
  } catch {
    return false;
  }
}
