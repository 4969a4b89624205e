import { handleEach } from './handle-each.ts';
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
  return handleEach(services, claimed, { what: 'refund', failed: 'recovering a pending refund failed' }, async (refund) => {
    const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', refund.charge_id).executeTakeFirstOrThrow();
    let found = await syncRefundAtProvider(services, refund, charge, false);
    if (found.status === 'not_found') found = await syncRefundAtProvider(services, refund, charge, true);
    if (found.status === 'unknown') {
      services.logger.warn({ refund: refund.id, reason: found.reason }, 'refund outcome still unknown');
      return;
    }
    const result = found.status === 'not_found' ? { status: 'failed' as const, providerReference: null, failureReason: 'unknown' } : found;
    await recordRefundOutcome(services, refund.id, result, await jobTrail(services, 'recover-pending-refunds', refund.merchant_id), undefined);
  });
}
