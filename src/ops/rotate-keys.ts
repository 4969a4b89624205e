import type { Kysely } from 'kysely';
import type { Clock } from '../platform/clock.ts';
import type { Database } from '../store/database.ts';
import { vaultDataKeyRows, vaultHasDataKeys } from '../vault/card-vault.ts';
import { openKeyEncryptionKey, type KekSettings } from '../vault/open-kek.ts';
import { retireKeyEncryptionKey, rewrapDataKeys, type RetireOutcome, type RewrapReport } from '../vault/rewrap.ts';
import { noteKekUsage, otherDatabasesNeeding } from '../vault/kek-usage.ts';
import { vaultLimits } from '../vault/vault-limits.ts';

export interface RotationReport {
  previousKekId: string;
  currentKekId: string;
  rewrap: RewrapReport;
}

/**
 * Rotates the vault's key-encryption key: a new KEK becomes current, and every data key is re-wrapped under it.
 * Card ciphertexts are not touched (they are encrypted under the data keys, which do not change). Running it again
 * finishes an interrupted rewrap. The old KEK file stays until `retireOldKeys`.
 */
export async function rotateVaultKeys(db: Kysely<Database>, settings: KekSettings, homeDir: string, label: string, clock: Clock): Promise<RotationReport> {
  const kek = await openKeyEncryptionKey(settings, homeDir, () => vaultHasDataKeys(db));
  try {
    const previousKekId = kek.currentKeyId();
    const currentKekId = await kek.rotate();
    const rewrap = await rewrapDataKeys(kek, vaultDataKeyRows(db));
    // What this database needs now, for a retirement run against another database served from this home.
    await noteKekUsage(db, kek, vaultDataKeyRows(db), homeDir, label, clock.nowMs());
    return { previousKekId, currentKekId, rewrap };
  } finally {
    await kek.close();
  }
}

/**
 * Deletes KEKs that nothing is wrapped under any more (and that were superseded long enough ago), in this database
 * or in any other this home serves (as they last noted, see `kek-usage.ts`).
 */
export async function retireOldKeys(db: Kysely<Database>, settings: KekSettings, homeDir: string, label: string, clock: Clock): Promise<Array<{ kekId: string; outcome: RetireOutcome }>> {
  const kek = await openKeyEncryptionKey(settings, homeDir, () => vaultHasDataKeys(db));
  try {
    await noteKekUsage(db, kek, vaultDataKeyRows(db), homeDir, label, clock.nowMs());
    const others = (kekId: string, safeAfterMs: number) => otherDatabasesNeeding(db, homeDir, kekId, safeAfterMs, label === 'embedded');
    const current = kek.currentKeyId();
    const results: Array<{ kekId: string; outcome: RetireOutcome }> = [];
    const currentNumber = Number(current.slice(4));
    for (let n = 1; n < currentNumber; n += 1) {
      const kekId = `kek_${n}`;
      if (kek.supersededAtMs(kekId) === undefined) continue;
      results.push({ kekId, outcome: await retireKeyEncryptionKey(kek, vaultDataKeyRows(db), kekId, clock, vaultLimits, others) });
    }
    return results;
  } finally {
    await kek.close();
  }
}
