import type { OtherDatabaseNeed } from './kek-usage.ts';
import type { Clock } from '../platform/clock.ts';
import { dataKeyAad, type DataKeyRow } from './envelope.ts';
import type { KeyEncryptionKeyProvider, WrappedKey } from './key-encryption-key.ts';
import { VaultError } from './vault-error.ts';
import { vaultLimits, type VaultLimits } from './vault-limits.ts';

/**
 * KEK rotation, step two: after `kek.rotate()`, `rewrapDataKeys` unwraps every data key row still wrapped under
 * an older KEK and wraps it again under the current one. Card ciphertexts are never read or written: they name
 * their data key, whose bytes do not change. It is idempotent (rows already current are counted and left alone)
 * and safe to run concurrently with itself or with new encryptions (each row is replaced only if it is still
 * wrapped as it was read).
 *
 *   interface DataKeyRowsForRewrap { listAfter, replaceWrapping, countWrappedUnder }
 *   rewrapDataKeys(kek, rows, limits?): Promise<RewrapReport>
 *   retireKeyEncryptionKey(kek, rows, kekId, clock, limits?): Promise<RetireOutcome>
 *
 * The rotation rule. A KEK is needed for as long as one data key row is wrapped under it, and no longer:
 *   1. `kek.rotate()`: new data keys are wrapped under the new KEK; the old KEK file must stay.
 *   2. `rewrapDataKeys(…)` until its report says `finished` with `failed: 0`.
 *   3. `retireKeyEncryptionKey(…, oldKekId, …)` destroys the old KEK, but only once its successor is older than
 *      `kekRetireGraceMs` (a process that wrapped a key under the old KEK just before the rotation has stored that
 *      row by then) and only if, counted at that moment, no row is wrapped under it. Otherwise it refuses and says
 *      why; run step 2 again and retry. Backups of the database taken before step 2 still need the old KEK: keep
 *      a copy of it with those backups, or let them expire first.
 */
export interface DataKeyRowsForRewrap {
  /** Up to `limit` rows with an id greater than `afterId` (every row when it is undefined), in id order. */
  listAfter(afterId: string | undefined, limit: number): Promise<DataKeyRow[]>;
  /** Stores `next` for row `id` only if the row is still wrapped under `expectedKekId`; says whether it did. */
  replaceWrapping(id: string, expectedKekId: string, next: WrappedKey): Promise<boolean>;
  countWrappedUnder(kekId: string): Promise<number>;
}

export interface RewrapReport {
  /** The current KEK when the run started (rows are wrapped under whatever is current when each is reached). */
  targetKekId: string;
  examined: number;
  rewrapped: number;
  alreadyCurrent: number;
  /** Rows another rewrap replaced between our read and our write: already done, not by us. */
  changedConcurrently: number;
  /** Rows whose key could not be unwrapped (KEK missing, or the row corrupted); they are left as they were. */
  failed: number;
  failedIds: string[];
  /** Every row was examined; false only when `rewrapBatchesMax` stopped the run (run it again). */
  finished: boolean;
}

export async function rewrapDataKeys(
  kek: KeyEncryptionKeyProvider,
  rows: DataKeyRowsForRewrap,
  limits: VaultLimits = vaultLimits,
): Promise<RewrapReport> {
  const report: RewrapReport = {
    targetKekId: kek.currentKeyId(),
    examined: 0,
    rewrapped: 0,
    alreadyCurrent: 0,
    changedConcurrently: 0,
    failed: 0,
    failedIds: [],
    finished: false,
  };
  let afterId: string | undefined;
  for (let batch = 0; batch < limits.rewrapBatchesMax; batch += 1) {
    const page = await rows.listAfter(afterId, limits.rewrapBatchSize);
    for (const row of page) await rewrapRow(kek, rows, row, report, limits);
    if (page.length < limits.rewrapBatchSize) {
      report.finished = true;
      break;
    }
    afterId = page[page.length - 1]?.id;
  }
  return report;
}

async function rewrapRow(
  kek: KeyEncryptionKeyProvider,
  rows: DataKeyRowsForRewrap,
  row: DataKeyRow,
  report: RewrapReport,
  limits: VaultLimits,
): Promise<void> {
  report.examined += 1;
  if (row.kekId === report.targetKekId) {
    report.alreadyCurrent += 1;
    return;
  }
  let next: WrappedKey;
  try {
    const dataKey = await kek.unwrap({ kekId: row.kekId, wrapped: row.wrapped }, dataKeyAad(row.id));
    try {
      next = await kek.wrap(dataKey, dataKeyAad(row.id));
    } finally {
      dataKey.reveal().fill(0);
    }
  } catch (error) {
    if (!(error instanceof VaultError)) throw error;
    report.failed += 1;
    if (report.failedIds.length < limits.rewrapFailedIdsListedMax) report.failedIds.push(row.id);
    return;
  }
  if (await rows.replaceWrapping(row.id, row.kekId, next)) report.rewrapped += 1;
  else report.changedConcurrently += 1;
}

export type RetireOutcome =
  | { retired: true }
  | { retired: false; reason: 'current' | 'unknown' }
  | { retired: false; reason: 'superseded_recently'; retryAfterMs: number }
  | { retired: false; reason: 'in_use'; dataKeys: number }
  /** Another database served from the same home needs it, or has not said what it needs since it was replaced. */
  | { retired: false; reason: 'other_database'; databases: OtherDatabaseNeed[] };

/** Destroys `kekId` if, and only if, the rotation rule above allows it; otherwise changes nothing. */
export async function retireKeyEncryptionKey(
  kek: KeyEncryptionKeyProvider,
  rows: DataKeyRowsForRewrap,
  kekId: string,
  clock: Clock,
  limits: VaultLimits = vaultLimits,
  otherDatabases?: (kekId: string, safeAfterMs: number) => Promise<OtherDatabaseNeed[]>,
): Promise<RetireOutcome> {
  if (kekId === kek.currentKeyId()) return { retired: false, reason: 'current' };
  const supersededAtMs = kek.supersededAtMs(kekId);
  if (supersededAtMs === undefined) return { retired: false, reason: 'unknown' };
  const retryAfterMs = supersededAtMs + limits.kekRetireGraceMs - clock.nowMs();
  if (retryAfterMs > 0) return { retired: false, reason: 'superseded_recently', retryAfterMs };
  const dataKeys = await rows.countWrappedUnder(kekId);
  if (dataKeys > 0) return { retired: false, reason: 'in_use', dataKeys };
  const others = otherDatabases === undefined ? [] : await otherDatabases(kekId, supersededAtMs + limits.kekRetireGraceMs);
  if (others.length > 0) return { retired: false, reason: 'other_database', databases: others };
  await kek.destroy(kekId);
  return { retired: true };
}
