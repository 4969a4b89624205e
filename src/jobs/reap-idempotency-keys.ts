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
