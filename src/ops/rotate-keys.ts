import type { Kysely } from 'kysely';
import type { Clock } from '../platform/clock.ts';
import type { Database } from '../store/database.ts';
import { vaultDataKeyRows, vaultHasDataKeys } from '../vault/card-vault.ts';
import { openKeyEncryptionKey, type KekSettings } from '../vault/open-kek.ts';
import { retireKeyEncryptionKey, rewrapDataKeys, type RetireOutcome, type RewrapReport } from '../vault/rewrap.ts';

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
export async function rotateVaultKeys(db: Kysely<Database>, settings: KekSettings, homeDir: string): Promise<RotationReport> {
  const kek = await openKeyEncryptionKey(settings, homeDir, () => vaultHasDataKeys(db));
  try {
    const previousKekId = kek.currentKeyId();
    const currentKekId = await kek.rotate();
    const rewrap = await rewrapDataKeys(kek, vaultDataKeyRows(db));
    return { previousKekId, currentKekId, rewrap };
  } finally {
    await kek.close();
  }
}

/** Deletes KEKs that nothing is wrapped under any more (and that were superseded long enough ago). */
export async function retireOldKeys(db: Kysely<Database>, settings: KekSettings, homeDir: string, clock: Clock): Promise<Array<{ kekId: string; outcome: RetireOutcome }>> {
  const kek = await openKeyEncryptionKey(settings, homeDir, () => vaultHasDataKeys(db));
  try {
    const current = kek.currentKeyId();
    const results: Array<{ kekId: string; outcome: RetireOutcome }> = [];
    const currentNumber = Number(current.slice(4));
    for (let n = 1; n < currentNumber; n += 1) {
      const kekId = `kek_${n}`;
      if (kek.supersededAtMs(kekId) === undefined) continue;
      results.push({ kekId, outcome: await retireKeyEncryptionKey(kek, vaultDataKeyRows(db), kekId, clock) });
    }
    return results;
  } finally {
    await kek.close();
  }
}
