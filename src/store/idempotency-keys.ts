import { sql, type ExpressionBuilder } from 'kysely';
import { CofferError } from '../domain/errors.ts';
import type { Database } from './database.ts';

/**
 * An idempotency key's row while the request that claimed it still holds it: not finished, and locked with that
 * request's lock (a retry that took the key over from a stalled request holds another). Every write of a key's
 * response or release goes through it, so a request never writes into a key it lost.
 */
export function keyHeldBy(claim: { rowId: bigint; lock: string }) {
  return (eb: ExpressionBuilder<Database, 'idempotency_keys'>) =>
    eb.and([eb('id', '=', claim.rowId), eb('finished_at', 'is', null), sql<boolean>`locked_at::text = ${claim.lock}`]);
}

/** The answer to a request whose key another request holds. */
export function keyInUse(key: string): CofferError {
  return new CofferError(
    'idempotency_key_in_use',
    `There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ${key}. Please try again later.`,
  );
}
