import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { assert } from '../platform/assert.ts';
import { randomBase62 } from '../platform/random.ts';
import { Secret } from '../platform/secret.ts';
import { openAesGcm, sealAesGcm, nonceBytes, tagBytes } from './aes-gcm.ts';
import { VaultError } from './vault-error.ts';

/**
 * The key-encryption key (KEK): the root of the vault's key hierarchy. It never encrypts card numbers; it only
 * wraps and unwraps data keys (see `envelope.ts`), so rotating it means rewrapping a few data key rows
 * (`rewrap.ts`), never re-encrypting cards. KEK ids are `kek_1`, `kek_2`, …; the highest is current.
 *
 *   interface KeyEncryptionKeyProvider
 *     kind: 'local' | 'pkcs11'
 *     currentKeyId(): string
 *     wrap(dataKey: Secret<Buffer>, aad: Buffer): Promise<WrappedKey>
 *     unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Secret<Buffer>>
 *     rotate(): Promise<string>
 *     supersededAtMs(kekId: string): number | undefined
 *     destroy(kekId: string): Promise<void>
 *     close(): Promise<void>
 *   LocalKeyFileProvider.open(directory: string): Promise<LocalKeyFileProvider>
 *   kekDirectory(homeDir: string): string                  // <homeDir>/keys/kek
 *
 * `LocalKeyFileProvider` keeps each KEK in its own file, `<directory>/kek_<n>.key`: 32 random bytes in base64,
 * mode 0600 in a 0700 directory, and refuses any file or directory that group or others can reach. Its wrapped
 * form is `version (1 byte, 1) | nonce (12) | ciphertext (32) | tag (16)`: AES-256-GCM whose associated data is
 * `<kekId> NUL <aad>`, so a wrapped key opens only under its own KEK and for the aad (data key id) it was made for.
 * `Pkcs11KeyProvider` (`pkcs11-kek.ts`) keeps the KEKs in an HSM and uses the same wrapped form.
 */
export interface WrappedKey {
  readonly kekId: string;
  readonly wrapped: Buffer;
}

export interface KeyEncryptionKeyProvider {
  readonly kind: 'local' | 'pkcs11';
  /** The KEK that `wrap` uses (as last seen: another process may have rotated since; `wrap` looks again). */
  currentKeyId(): string;
  wrap(dataKey: Secret<Buffer>, aad: Buffer): Promise<WrappedKey>;
  /** Throws `VaultError` `kek_missing` or `data_key_unwrap_failed`. */
  unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Secret<Buffer>>;
  /** Creates the next KEK and makes it current; older KEKs still unwrap. Returns the new id. */
  rotate(): Promise<string>;
  /** When the KEK after `kekId` was created; `undefined` if `kekId` is current or unknown. */
  supersededAtMs(kekId: string): number | undefined;
  /**
   * Destroys a superseded KEK for good. Call it only through `retireKeyEncryptionKey` (`rewrap.ts`), which first
   * proves that no data key is still wrapped under it.
   */
  destroy(kekId: string): Promise<void>;
  /** Lets go of what the provider holds open (an HSM session). */
  close(): Promise<void>;
}

export function kekDirectory(homeDir: string): string {
  return path.join(homeDir, 'keys', 'kek');
}

const kekIdPattern = /^kek_([1-9][0-9]{0,8})$/;
const kekFilePattern = /^(kek_[1-9][0-9]{0,8})\.key$/;
export const dataKeyBytes = 32;
/** The wrapped form shared by every provider: `version | nonce | ciphertext | tag`. */
export const wrappedLayout = { version: 1, bytes: 1 + nonceBytes + dataKeyBytes + tagBytes } as const;
const wrapVersion = wrappedLayout.version;
const wrappedBytes = wrappedLayout.bytes;

export function kekNumber(kekId: string): number {
  const match = kekIdPattern.exec(kekId);
  assert(match?.[1] !== undefined, 'a KEK id is kek_<n>');
  return Number(match[1]);
}

function insecure(what: string, mode: number): VaultError {
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  return new VaultError('kek_file_insecure', `${what} must be reachable by its owner only (mode 0600 or 0700), found ${octal}`);
}

export function wrapAad(kekId: string, aad: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${kekId}\0`, 'ascii'), aad]);
}

interface LoadedKek {
  key: KeyObject;
  /** The file's mtime: key files are written once and never changed, so this is when the KEK was created. */
  createdAtMs: number;
}

export class LocalKeyFileProvider implements KeyEncryptionKeyProvider {
  readonly kind = 'local' as const;
  readonly #directory: string;
  readonly #keys = new Map<string, LoadedKek>();

  private constructor(directory: string) {
    this.#directory = directory;
  }

  /**
   * Opens the KEK directory, creating it and `kek_1` on first use, and loads (and checks) every KEK file.
   * `mayCreateFirst` throws when a first KEK must not be made (see open-kek.ts).
   */
  static async open(directory: string, mayCreateFirst: (where: string) => Promise<void> = async () => undefined): Promise<LocalKeyFileProvider> {
    await fs.promises.mkdir(directory, { recursive: true, mode: 0o700 });
    const stat = await fs.promises.lstat(directory);
    if (!stat.isDirectory() || (stat.mode & 0o077) !== 0) throw insecure(directory, stat.mode);
    const provider = new LocalKeyFileProvider(directory);
    await provider.#refresh();
    if (provider.#keys.size === 0) {
      await mayCreateFirst(`The key directory ${directory}`);
      await provider.#create('kek_1');
      await provider.#refresh();
    }
    return provider;
  }

  currentKeyId(): string {
    let newest = 0;
    for (const kekId of this.#keys.keys()) newest = Math.max(newest, kekNumber(kekId));
    assert(newest > 0, 'an open LocalKeyFileProvider holds at least one KEK');
    return `kek_${newest}`;
  }

  async wrap(dataKey: Secret<Buffer>, aad: Buffer): Promise<WrappedKey> {
    assert(dataKey.reveal().length === dataKeyBytes, 'a data key is 32 bytes');
    // Another process may have rotated: a new data key is wrapped under the newest KEK on disk, so that a rewrap
    // that finished after the rotation is not undone by a process still holding the old current id.
    await this.#refresh();
    const kekId = this.currentKeyId();
    const loaded = this.#keys.get(kekId);
    assert(loaded !== undefined, 'the current KEK is loaded');
    const sealed = sealAesGcm(loaded.key, dataKey.reveal(), wrapAad(kekId, aad));
    return { kekId, wrapped: Buffer.concat([Buffer.of(wrapVersion), sealed.nonce, sealed.ciphertext, sealed.tag]) };
  }

  async unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Secret<Buffer>> {
    const key = await this.#key(wrapped.kekId);
    const bytes = wrapped.wrapped;
    if (bytes.length !== wrappedBytes || bytes[0] !== wrapVersion) {
      throw new VaultError('data_key_unwrap_failed', `a data key wrapped under ${wrapped.kekId} is not in wrap format ${wrapVersion}`);
    }
    const sealed = {
      nonce: bytes.subarray(1, 1 + nonceBytes),
      ciphertext: bytes.subarray(1 + nonceBytes, 1 + nonceBytes + dataKeyBytes),
      tag: bytes.subarray(1 + nonceBytes + dataKeyBytes),
    };
    const dataKey = openAesGcm(key, sealed, wrapAad(wrapped.kekId, aad));
    if (dataKey === undefined) {
      throw new VaultError('data_key_unwrap_failed', `a data key wrapped under ${wrapped.kekId} did not authenticate`);
    }
    return new Secret(dataKey);
  }

  async rotate(): Promise<string> {
    await this.#refresh();
    // If another process creates the same id first, `#create` keeps theirs, and it is the new current KEK.
    await this.#create(`kek_${kekNumber(this.currentKeyId()) + 1}`);
    await this.#refresh();
    return this.currentKeyId();
  }

  supersededAtMs(kekId: string): number | undefined {
    if (!this.#keys.has(kekId)) return undefined;
    const number = kekNumber(kekId);
    let successor: number | undefined;
    for (const other of this.#keys.keys()) {
      const otherNumber = kekNumber(other);
      if (otherNumber > number && (successor === undefined || otherNumber < successor)) successor = otherNumber;
    }
    return successor === undefined ? undefined : this.#keys.get(`kek_${successor}`)?.createdAtMs;
  }

  async destroy(kekId: string): Promise<void> {
    assert(this.#keys.has(kekId) && kekId !== this.currentKeyId(), 'only a loaded, superseded KEK is destroyed');
    await fs.promises.rm(this.#file(kekId), { force: true });
    await syncDirectory(this.#directory);
    this.#keys.delete(kekId);
  }

  async close(): Promise<void> {
    this.#keys.clear();
  }

  #file(kekId: string): string {
    return path.join(this.#directory, `${kekId}.key`);
  }

  async #key(kekId: string): Promise<KeyObject> {
    if (!kekIdPattern.test(kekId)) throw new VaultError('kek_missing', 'a wrapped data key names no valid KEK id');
    // A KEK created by another process after this one looked is loaded on first use.
    const loaded = this.#keys.get(kekId) ?? (await this.#load(kekId));
    if (loaded === undefined) throw new VaultError('kek_missing', `${this.#file(kekId)} does not exist (was ${kekId} retired?)`);
    return loaded.key;
  }

  async #refresh(): Promise<void> {
    for (const name of await fs.promises.readdir(this.#directory)) {
      const kekId = kekFilePattern.exec(name)?.[1];
      if (kekId !== undefined && !this.#keys.has(kekId)) await this.#load(kekId);
    }
  }

  /** Loads one key file, or `undefined` if it does not exist (a file being retired may vanish meanwhile). */
  async #load(kekId: string): Promise<LoadedKek | undefined> {
    const file = this.#file(kekId);
    let handle: fs.promises.FileHandle;
    try {
      // O_NOFOLLOW: a symbolic link could point at a file whose mode we do not control.
      handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP') throw new VaultError('kek_file_insecure', `${file} must be a regular file, not a symbolic link`);
      throw error;
    }
    try {
      // The mode is read from the open descriptor, so it is the mode of the very file read.
      const stat = await handle.stat();
      if (!stat.isFile() || (stat.mode & 0o077) !== 0) throw insecure(file, stat.mode);
      const text = (await handle.readFile('utf8')).trim();
      if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) throw new VaultError('kek_file_invalid', `${file} must hold 32 bytes in base64`);
      const bytes = Buffer.from(text, 'base64');
      const loaded = { key: createSecretKey(bytes), createdAtMs: stat.mtimeMs };
      bytes.fill(0);
      this.#keys.set(kekId, loaded);
      return loaded;
    } finally {
      await handle.close();
    }
  }

  /**
   * Writes a new KEK file durably and atomically: a private temporary file is synced and then hard-linked to its
   * name. A link, unlike a rename, never replaces an existing KEK, so of two processes creating the same id the
   * first wins and the other uses its key; and a crash never leaves a half-written key file behind.
   */
  async #create(kekId: string): Promise<void> {
    const temp = path.join(this.#directory, `.${kekId}.${randomBase62(12)}.tmp`);
    const key = randomBytes(dataKeyBytes);
    try {
      const handle = await fs.promises.open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(`${key.toString('base64')}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.promises.link(temp, this.#file(kekId)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    } finally {
      key.fill(0);
      await fs.promises.rm(temp, { force: true });
    }
    await syncDirectory(this.#directory);
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await fs.promises.open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
