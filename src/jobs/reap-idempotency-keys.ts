import { sql } from 'kysely';
import type { Services } from '../flows/context.ts';
import { limits } from '../limits.ts';

/** Idempotency keys are kept at least 24 hours (Stripe's promise), then removed in bounded batches. */
export async function reapIdempotencyKeys(services: Services): Promise<number> {
  const before = new Date(services.clock.nowMs() - limits.idempotencyKeyRetentionMs);
  const result = await services.db
    .deleteFrom('idempotency_keys')
    .where('id', 'in', (eb) =>
      eb.selectFrom('idempotency_keys').select('id').where('created_at', '<', before).limit(limits.jobBatchSize),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Nonces of signed requests outlive the signature window (after which a replay is refused by its timestamp). */
export async function reapRequestNonces(services: Services): Promise<number> {
  const before = new Date(services.clock.nowMs() - limits.requestNonceRetentionMs);
  const result = await sql`DELETE FROM request_nonces WHERE ctid IN (
    SELECT ctid FROM request_nonces WHERE seen_at < ${before} LIMIT ${limits.jobBatchSize})`.execute(services.db);
  return Number(result.numAffectedRows ?? 0n);
}
