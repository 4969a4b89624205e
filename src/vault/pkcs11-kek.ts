import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { assert } from '../platform/assert.ts';
import { Secret } from '../platform/secret.ts';
import { Pkcs11Module, type Pkcs11Session, type SecretKeyObject } from './pkcs11.ts';
import { dataKeyBytes, kekNumber, wrapAad, wrappedLayout, type KeyEncryptionKeyProvider, type WrappedKey } from './key-encryption-key.ts';
import { nonceBytes, tagBytes } from './aes-gcm.ts';
import { VaultError } from './vault-error.ts';

/**
 * The key-encryption keys in an HSM, through PKCS#11. Each KEK is an AES-256 key generated inside the token as a
 * persistent, private, sensitive, never-extractable object that can only encrypt and decrypt; data keys are
 * wrapped and unwrapped by AES-256-GCM inside the token, in the same wrapped format and with the same associated
 * data as the local key file (`key-encryption-key.ts`), so rotation, rewrap and retirement work unchanged.
 *
 * A KEK object's label is `coffer kek_<n> <ISO creation time>`; its CKA_ID is 16 random bytes. Two processes
 * rotating at once may both create `kek_<n>`: wrapping then always uses the one with the lowest CKA_ID, unwrapping
 * tries each object of that id (the GCM tag tells which one wrapped it), and retiring destroys them all.
 */
export interface Pkcs11KekSettings {
  /** Path of the PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so` for SoftHSM2). */
  modulePath: string;
  tokenLabel: string;
  /** A file holding the user PIN (mode 0600), read at open. */
  pinFile: string;
}

const labelPattern = /^coffer (kek_[1-9][0-9]{0,8}) (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)$/;
const idBytes = 16;

interface HsmKek {
  kekId: string;
  handle: bigint;
  id: Buffer;
  createdAtMs: number;
}

export function readPinFile(file: string): Secret<string> {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new VaultError('kek_missing', `the PKCS#11 PIN file ${file} does not exist`);
  }
  if ((stat.mode & 0o077) !== 0) {
    throw new VaultError('kek_file_insecure', `${file} must be readable by its owner only (mode 0600), found ${(stat.mode & 0o777).toString(8).padStart(4, '0')}`);
  }
  const pin = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  if (pin === '') throw new VaultError('kek_file_invalid', `${file} is empty: it must hold the token's user PIN`);
  return new Secret(pin);
}

export class Pkcs11KeyProvider implements KeyEncryptionKeyProvider {
  readonly kind = 'pkcs11' as const;
  readonly #module: Pkcs11Module;
  readonly #session: Pkcs11Session;
  #keys: HsmKek[] = [];

  private constructor(module: Pkcs11Module, session: Pkcs11Session) {
    this.#module = module;
    this.#session = session;
  }

  /** Opens the token and logs in, creating `kek_1` inside it on first use (unless `mayCreateFirst` throws). */
  static async open(settings: Pkcs11KekSettings, mayCreateFirst: (where: string) => Promise<void> = async () => undefined): Promise<Pkcs11KeyProvider> {
    const pin = readPinFile(settings.pinFile);
    const module = Pkcs11Module.open(settings.modulePath);
    let session: Pkcs11Session;
    try {
      session = module.openUserSession(settings.tokenLabel, pin.reveal());
    } catch (error) {
      module.close();
      throw error;
    }
    const provider = new Pkcs11KeyProvider(module, session);
    try {
      provider.#refresh();
      if (provider.#keys.length === 0) {
        await mayCreateFirst(`The PKCS#11 token "${settings.tokenLabel}"`);
        provider.#create('kek_1');
        provider.#refresh();
      }
    } catch (error) {
      await provider.close();
      throw error;
    }
    return provider;
  }

  currentKeyId(): string {
    const newest = Math.max(0, ...this.#keys.map((key) => kekNumber(key.kekId)));
    assert(newest > 0, 'an open Pkcs11KeyProvider holds at least one KEK');
    return `kek_${newest}`;
  }

  async wrap(dataKey: Secret<Buffer>, aad: Buffer): Promise<WrappedKey> {
    assert(dataKey.reveal().length === dataKeyBytes, 'a data key is 32 bytes');
    this.#refresh();
    const kekId = this.currentKeyId();
    const [key] = this.#objects(kekId);
    assert(key !== undefined, 'the current KEK is on the token');
    const nonce = randomBytes(nonceBytes);
    const sealed = this.#session.encryptAesGcm(key.handle, nonce, wrapAad(kekId, aad), dataKey.reveal());
    assert(sealed.length === dataKeyBytes + tagBytes, 'AES-GCM output is the ciphertext and a 16-byte tag');
    return { kekId, wrapped: Buffer.concat([Buffer.of(wrappedLayout.version), nonce, sealed]) };
  }

  async unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Secret<Buffer>> {
    if (!/^kek_[1-9][0-9]{0,8}$/.test(wrapped.kekId)) throw new VaultError('kek_missing', 'a wrapped data key names no valid KEK id');
    let candidates = this.#objects(wrapped.kekId);
    if (candidates.length === 0) {
      // Created by another process since this one looked.
      this.#refresh();
      candidates = this.#objects(wrapped.kekId);
    }
    if (candidates.length === 0) throw new VaultError('kek_missing', `the HSM token holds no ${wrapped.kekId} (was it retired?)`);
    const bytes = wrapped.wrapped;
    if (bytes.length !== wrappedLayout.bytes || bytes[0] !== wrappedLayout.version) {
      throw new VaultError('data_key_unwrap_failed', `a data key wrapped under ${wrapped.kekId} is not in wrap format ${wrappedLayout.version}`);
    }
    const nonce = bytes.subarray(1, 1 + nonceBytes);
    const sealed = bytes.subarray(1 + nonceBytes);
    for (const key of candidates) {
      const dataKey = this.#session.decryptAesGcm(key.handle, nonce, wrapAad(wrapped.kekId, aad), sealed);
      if (dataKey !== undefined) return new Secret(dataKey);
    }
    throw new VaultError('data_key_unwrap_failed', `a data key wrapped under ${wrapped.kekId} did not authenticate`);
  }

  async rotate(): Promise<string> {
    this.#refresh();
    this.#create(`kek_${kekNumber(this.currentKeyId()) + 1}`);
    this.#refresh();
    return this.currentKeyId();
  }

  supersededAtMs(kekId: string): number | undefined {
    if (this.#objects(kekId).length === 0) return undefined;
    const number = kekNumber(kekId);
    const successors = this.#keys.filter((key) => kekNumber(key.kekId) > number);
    if (successors.length === 0) return undefined;
    const next = Math.min(...successors.map((key) => kekNumber(key.kekId)));
    return Math.min(...successors.filter((key) => kekNumber(key.kekId) === next).map((key) => key.createdAtMs));
  }

  async destroy(kekId: string): Promise<void> {
    assert(this.#objects(kekId).length > 0 && kekId !== this.currentKeyId(), 'only a loaded, superseded KEK is destroyed');
    for (const key of this.#objects(kekId)) this.#session.destroy(key.handle);
    this.#refresh();
  }

  async close(): Promise<void> {
    try {
      this.#session.close();
    } finally {
      this.#module.close();
    }
  }

  /** The objects of one KEK id, the one that wraps first. */
  #objects(kekId: string): HsmKek[] {
    return this.#keys.filter((key) => key.kekId === kekId).sort((a, b) => Buffer.compare(a.id, b.id));
  }

  /**
   * The token's KEKs: private AES keys labelled as Coffer's that were generated inside the token and never could
   * leave it. A key imported with a value someone knows, or one that was ever extractable, is not a KEK, whatever
   * its label says: it is ignored, so it can never become the one that wraps.
   */
  #refresh(): void {
    this.#keys = this.#session.findSecretKeys().flatMap((object: SecretKeyObject) => {
      const match = labelPattern.exec(object.label);
      if (match?.[1] === undefined || match[2] === undefined) return [];
      const attributes = this.#session.attributes(object.handle);
      const trusted = attributes.local && attributes.sensitive && attributes.alwaysSensitive && !attributes.extractable && attributes.neverExtractable && attributes.token;
      if (!trusted) return [];
      return [{ kekId: match[1], handle: object.handle, id: object.id, createdAtMs: Date.parse(match[2]) }];
    });
  }

  #create(kekId: string): void {
    this.#session.generateAesKey(`coffer ${kekId} ${new Date().toISOString()}`, randomBytes(idBytes));
  }
}
