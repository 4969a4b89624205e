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

/**
 * Velocity entries and their buckets older than the longest window (7 days) plus a day for late arrivals are
 * never read again: removed in bounded batches. Returns the rows removed.
 */
export async function reapVelocity(db: Services['db'], nowMs: number): Promise<number> {
  const before = new Date(nowMs - limits.velocityRetentionMs);
  const entries = await sql`DELETE FROM velocity_entries WHERE ctid IN (
    SELECT ctid FROM velocity_entries WHERE occurred_at < ${before} LIMIT ${limits.jobBatchSize})`.execute(db);
  // A bucket goes once the whole of it is older than that (an hour's bucket starts up to an hour before its entries).
  const buckets = await sql`DELETE FROM velocity_buckets WHERE ctid IN (
    SELECT ctid FROM velocity_buckets WHERE bucket_start < ${new Date(before.getTime() - 3_600_000)} LIMIT ${limits.jobBatchSize})`.execute(db);
  return Number(entries.numAffectedRows ?? 0n) + Number(buckets.numAffectedRows ?? 0n);
}
