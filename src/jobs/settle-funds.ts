import { sql } from 'kysely';
import { settlementTransfers } from '../domain/ledger.ts';
import type { Services } from '../flows/context.ts';
import { inTransaction } from '../flows/transaction.ts';
import { limits } from '../limits.ts';
import { applyTransfers } from '../store/ledger.ts';

/**
 * Captured funds whose `available_on` has come move from the merchant's pending to its available balance. The
 * charge row is locked, so a refund or dispute being recorded for it waits, then moves the available side.
 */
export async function settleFunds(services: Services): Promise<number> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const due = await tx
      .selectFrom('charges')
      .select(['id', 'merchant_id', 'livemode', 'currency', 'payment_intent_id'])
      .where('captured', '=', true)
      .where('settled', '=', false)
      .where('available_on', '<=', now)
      .orderBy('available_on')
      .limit(limits.jobBatchSize)
      .forUpdate()
      .skipLocked()
      .execute();
    if (due.length === 0) return 0;
    // What each charge left in the pending funds, from the ledger itself: its capture, less what refunds and
    // disputes took from them before settlement, plus what came back (a failed refund, a won dispute).
    const positions = await sql<{ charge_id: string; net: string }>`
      SELECT t.charge_id,
             (sum(CASE WHEN c.code = 'merchant_incoming' THEN t.amount ELSE 0 END)
              - sum(CASE WHEN d.code = 'merchant_incoming' THEN t.amount ELSE 0 END))::text AS net
        FROM ledger_transfers t
        JOIN ledger_accounts d ON d.id = t.debit_account_id
        JOIN ledger_accounts c ON c.id = t.credit_account_id
       WHERE t.charge_id IN (${sql.join(due.map((charge) => charge.id))}) AND t.kind IN ('single', 'post_pending')
       GROUP BY t.charge_id`.execute(tx);
    const pending = new Map(positions.rows.map((row) => [row.charge_id, BigInt(row.net)]));
    for (const charge of due) {
      const net = pending.get(charge.id) ?? 0n;
      if (net !== 0n) {
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
