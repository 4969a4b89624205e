import type { Kysely } from 'kysely';
import { limits } from '../limits.ts';
import type { Database } from '../store/database.ts';
import type { Tx } from './context.ts';

const retryableCodes = new Set(['40001', '40P01']);

function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && retryableCodes.has(code);
}

/**
 * Runs `work` in one transaction, retrying it from the start on a serialization failure or deadlock (bounded).
 * `work` must therefore do nothing but database work: no provider call ever happens inside a transaction.
 */
export async function inTransaction<T>(db: Kysely<Database>, work: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await db.transaction().execute(work);
    } catch (error) {
      if (!isRetryable(error) || attempt >= limits.transactionRetriesMax) throw error;
    }
  }
}
