import { randomBytes } from 'node:crypto';
import { assert } from '../platform/assert.ts';
import type { Clock } from '../platform/clock.ts';
import { newId } from '../platform/random.ts';
import { Secret } from '../platform/secret.ts';
import type { CardNumber } from './card-number.ts';
import { DataKey, dataKeyAad, dataKeyIdOf, decryptCardNumber, encryptCardNumber, type DataKeyRow } from './envelope.ts';
import type { KeyEncryptionKeyProvider } from './key-encryption-key.ts';
import { VaultError } from './vault-error.ts';
import { vaultLimits, type VaultLimits } from './vault-limits.ts';

/**
 * The data keys one process uses, and the vault's two everyday operations on top of `envelope.ts`:
 *
 *   interface DataKeyRows { insert(row: DataKeyRow): Promise<void>; find(id: string): Promise<DataKeyRow | undefined> }
 *   new DataKeyRing(kek: KeyEncryptionKeyProvider, rows: DataKeyRows, clock: Clock, limits?: VaultLimits)
 *     encrypt(cardNumber: CardNumber, rowId: string): Promise<Buffer>
 *     decrypt(ciphertext: Buffer, rowId: string): Promise<CardNumber>
 *     forget(): void
 *
 * Each process encrypts under a data key it made itself, and replaces it after `dataKeyEncryptionsMax`
 * encryptions or `dataKeyEncryptPeriodMs`: since no other process ever encrypts under that key, the count of
 * random nonces per key is exact (the writing key is held in memory for its whole period). Keys needed to decrypt
 * are unwrapped from their rows on demand and kept in memory for at most `dataKeyCacheTtlMs` and
 * `dataKeyCacheUsesMax` decryptions, `dataKeyCacheEntriesMax` at once. Errors are `VaultError`s from
 * `envelope.ts` and the KEK provider, plus `data_key_missing`; a failing `rows.insert` is passed on as it is.
 */
export interface DataKeyRows {
  /** Stores a new data key row; it must be durable when this resolves, as ciphertexts will name it. */
  insert(row: DataKeyRow): Promise<void>;
  find(id: string): Promise<DataKeyRow | undefined>;
}

interface Writer {
  dataKey: DataKey;
  createdAtMs: number;
}

interface CacheEntry {
  dataKey: Promise<DataKey>;
  loadedAtMs: number;
  usesLeft: number;
}

export class DataKeyRing {
  readonly #kek: KeyEncryptionKeyProvider;
  readonly #rows: DataKeyRows;
  readonly #clock: Clock;
  readonly #limits: VaultLimits;
  #writer: Writer | undefined;
  #writerPending: Promise<Writer> | undefined;
  // Insertion order is load order, so the first entry is the oldest: the one to drop when full.
  readonly #cache = new Map<string, CacheEntry>();

  constructor(kek: KeyEncryptionKeyProvider, rows: DataKeyRows, clock: Clock, limits: VaultLimits = vaultLimits) {
    this.#kek = kek;
    this.#rows = rows;
    this.#clock = clock;
    this.#limits = limits;
  }

  async encrypt(cardNumber: CardNumber, rowId: string): Promise<Buffer> {
    // Concurrent callers may share one new key and use it up; each checks it again with no await in between.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const writer = this.#usableWriter() ?? (await this.#newWriter());
      if (this.#usable(writer)) return encryptCardNumber(cardNumber, rowId, writer.dataKey);
    }
    assert(false, 'a new data key is used up by concurrent encryptions three times over: dataKeyEncryptionsMax is too small');
  }

  async decrypt(ciphertext: Buffer, rowId: string): Promise<CardNumber> {
    const dataKey = await this.#decryptionKey(dataKeyIdOf(ciphertext));
    return decryptCardNumber(ciphertext, rowId, dataKey);
  }

  /** Drops every unwrapped key from memory (on shutdown, or after a suspected compromise). */
  forget(): void {
    this.#writer = undefined;
    this.#cache.clear();
  }

  #usable(writer: Writer): boolean {
    const ageMs = this.#clock.nowMs() - writer.createdAtMs;
    return writer.dataKey.encryptionsLeft > 0 && ageMs < this.#limits.dataKeyEncryptPeriodMs;
  }

  #usableWriter(): Writer | undefined {
    return this.#writer !== undefined && this.#usable(this.#writer) ? this.#writer : undefined;
  }

  #newWriter(): Promise<Writer> {
    this.#writerPending ??= this.#createWriter().finally(() => {
      this.#writerPending = undefined;
    });
    return this.#writerPending;
  }

  /** Makes a data key, and stores its row before it encrypts anything: no ciphertext may name a missing key. */
  async #createWriter(): Promise<Writer> {
    const id = newId('dek');
    const bytes = new Secret(randomBytes(32));
    try {
      const wrapped = await this.#kek.wrap(bytes, dataKeyAad(id));
      const createdAtMs = this.#clock.nowMs();
      await this.#rows.insert({ id, kekId: wrapped.kekId, wrapped: wrapped.wrapped, createdAt: new Date(createdAtMs) });
      const writer = { dataKey: new DataKey(id, bytes, this.#limits.dataKeyEncryptionsMax), createdAtMs };
      this.#writer = writer;
      this.#remember(id, Promise.resolve(writer.dataKey));
      return writer;
    } finally {
      bytes.reveal().fill(0);
    }
  }

  #decryptionKey(id: string): Promise<DataKey> {
    const entry = this.#cache.get(id);
    if (entry !== undefined && this.#clock.nowMs() - entry.loadedAtMs < this.#limits.dataKeyCacheTtlMs && entry.usesLeft > 0) {
      entry.usesLeft -= 1;
      return entry.dataKey;
    }
    this.#cache.delete(id);
    const loading = this.#unwrap(id);
    this.#remember(id, loading);
    // A failed load is not cached: the next decryption asks again (the row or KEK may be restored).
    loading.catch(() => {
      if (this.#cache.get(id)?.dataKey === loading) this.#cache.delete(id);
    });
    return loading;
  }

  #remember(id: string, dataKey: Promise<DataKey>): void {
    this.#cache.delete(id);
    this.#cache.set(id, { dataKey, loadedAtMs: this.#clock.nowMs(), usesLeft: this.#limits.dataKeyCacheUsesMax - 1 });
    for (const oldest of this.#cache.keys()) {
      if (this.#cache.size <= this.#limits.dataKeyCacheEntriesMax) break;
      this.#cache.delete(oldest);
    }
  }

  async #unwrap(id: string): Promise<DataKey> {
    const row = await this.#rows.find(id);
    if (row === undefined) throw new VaultError('data_key_missing', `data key ${id} has no row`);
    const bytes = await this.#kek.unwrap({ kekId: row.kekId, wrapped: row.wrapped }, dataKeyAad(id));
    try {
      return new DataKey(id, bytes, 0);
    } finally {
      bytes.reveal().fill(0);
    }
  }
}
