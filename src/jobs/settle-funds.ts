import { settlementTransfers } from '../domain/ledger.ts';
import type { Services } from '../flows/context.ts';
import { inTransaction } from '../flows/transaction.ts';
import { limits } from '../limits.ts';
import { applyTransfers } from '../store/ledger.ts';

/**
 * Captured funds whose `available_on` has come move from the merchant's pending to its available balance. The
 * charge row is locked, so a refund being recorded for it waits, then takes its money from the available side.
 */
export async function settleFunds(services: Services): Promise<number> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const due = await tx
      .selectFrom('charges')
      .select(['id', 'merchant_id', 'livemode', 'currency', 'payment_intent_id', 'amount_captured', 'amount_refunded'])
      .where('captured', '=', true)
      .where('settled', '=', false)
      .where('available_on', '<=', now)
      .orderBy('available_on')
      .limit(limits.jobBatchSize)
      .forUpdate()
      .skipLocked()
      .execute();
    for (const charge of due) {
      // Refunds made before settlement came out of the pending funds already; the rest becomes available.
      const net = charge.amount_captured - charge.amount_refunded;
      if (net > 0n) {
        await applyTransfers(
          tx,
          { merchantId: charge.merchant_id, livemode: charge.livemode, currency: charge.currency, paymentIntentId: charge.payment_intent_id, chargeId: charge.id },
          settlementTransfers(`${charge.id}:settlement`, net),
        );
      }
      await tx.updateTable('charges').set({ settled: true }).where('id', '=', charge.id).execute();
    }
    return due.length;
  });
}
