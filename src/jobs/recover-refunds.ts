import { sql } from 'kysely';
import type { Services } from '../flows/context.ts';
import { recordRefundOutcome, syncRefundAtProvider } from '../flows/create-refund.ts';
import { limits } from '../limits.ts';
import { jobTrail } from './system-trail.ts';

/**
 * Refunds left pending (the process crashed, or the acquirer did not answer) are settled by asking the
 * acquirer. One it never received is first closed at the acquirer, then recorded as failed: nothing was paid
 * back, and the reserved amount is released for another refund.
 */
export async function recoverPendingRefunds(services: Services): Promise<number> {
  const cutoff = new Date(services.clock.nowMs() - limits.inFlightRecoveryAfterMs);
  const claimed = await services.db
    .updateTable('refunds')
    .set({ updated_at: sql`now()` })
    .where('id', 'in', (eb) =>
      eb.selectFrom('refunds').select('id').where('status', '=', 'pending').where('updated_at', '<', cutoff)
        .orderBy('updated_at').limit(limits.jobBatchSize).forUpdate().skipLocked())
    .returningAll()
    .execute();
  for (const refund of claimed) {
    try {
      const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', refund.charge_id).executeTakeFirstOrThrow();
      let found = await syncRefundAtProvider(services, refund, charge, false);
      if (found.status === 'not_found') found = await syncRefundAtProvider(services, refund, charge, true);
      if (found.status === 'unknown') {
        services.logger.warn({ refund: refund.id, reason: found.reason }, 'refund outcome still unknown');
        continue;
      }
      const result = found.status === 'not_found' ? { status: 'failed' as const, providerReference: null, failureReason: 'unknown' } : found;
      await recordRefundOutcome(services, refund.id, result, await jobTrail(services, 'recover-pending-refunds', refund.merchant_id), undefined);
    } catch (error) {
      // One refund's failure must not stop the others; its lease expires and it is tried again.
      services.logger.error({ err: error, refund: refund.id }, 'recovering a pending refund failed');
    }
  }
  return claimed.length;
}
