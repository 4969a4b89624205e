/**
 * Every bound the card vault enforces. They belong in `src/limits.ts`; they live here until the vault is wired in,
 * so that the vault stays self-contained. Hitting one is reported (a new data key, a report field), never silent.
 */
export interface VaultLimits {
  /**
   * Card numbers one data key encrypts before a new one is made. Each encryption draws a random 96-bit nonce;
   * NIST SP 800-38D §8.3 caps a key at 2^32 of them, and this stays 4000 times below that.
   */
  readonly dataKeyEncryptionsMax: number;
  /** How long one data key encrypts new card numbers (its cryptoperiod for writing). */
  readonly dataKeyEncryptPeriodMs: number;
  /** How long an unwrapped data key stays in memory for decryption after it was unwrapped. */
  readonly dataKeyCacheTtlMs: number;
  /** Decryptions served by one unwrapped data key before it is dropped and unwrapped again. */
  readonly dataKeyCacheUsesMax: number;
  /** Unwrapped data keys held in memory at once (the oldest is dropped first). */
  readonly dataKeyCacheEntriesMax: number;
  /** Data key rows a rewrap reads per batch, and batches per run. */
  readonly rewrapBatchSize: number;
  readonly rewrapBatchesMax: number;
  /** Ids of rows a rewrap could not unwrap that its report lists (the count is always exact). */
  readonly rewrapFailedIdsListedMax: number;
  /**
   * A superseded KEK may be destroyed only this long after its successor was created, so that a process that
   * wrapped a data key under it just before the rotation has stored that row before the last check for users.
   */
  readonly kekRetireGraceMs: number;
  /** Matches a PAN scan returns; beyond it the result says `truncated`. */
  readonly panScanMatchesMax: number;
}

export const vaultLimits: VaultLimits = {
  dataKeyEncryptionsMax: 1_000_000,
  dataKeyEncryptPeriodMs: 60 * 60 * 1000,
  dataKeyCacheTtlMs: 5 * 60 * 1000,
  dataKeyCacheUsesMax: 100_000,
  dataKeyCacheEntriesMax: 1_000,
  rewrapBatchSize: 100,
  rewrapBatchesMax: 10_000,
  rewrapFailedIdsListedMax: 100,
  kekRetireGraceMs: 10 * 60 * 1000,
  panScanMatchesMax: 10_000,
};
