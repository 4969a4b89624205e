import { handleEach } from './handle-each.ts';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/database.ts';
import type { Services } from '../flows/context.ts';
import { syncWalletAttempt } from '../flows/wallet-payments.ts';
import { limits } from '../limits.ts';
import { recordAttemptOutcome } from '../flows/record-attempt-outcome.ts';
import { riskBlockDecline } from '../flows/risk-decision.ts';
import { jobTrail } from './system-trail.ts';

/**
 * Wallet payments (Alipay, WeChat Pay) waiting at the provider are asked about on a backoff schedule until their
 * outcome is known: a lost or refused notification, a trade whose opening got no answer, or a shopper who never
 * paid all end here. Rows are leased by moving `provider_sync_at` ahead, so parallel workers skip them.
 */
export async function syncWalletPayments(services: Services): Promise<number> {
  const now = new Date(services.clock.nowMs());
  const claimed = await services.db
    .updateTable('charges')
    .set({ provider_sync_at: new Date(now.getTime() + limits.walletSyncLeaseMs) })
    .where('id', 'in', (eb) =>
      eb.selectFrom('charges').select('id')
        .where('status', '=', 'pending').where('provider_sync_at', '<=', now).where('provider', '!=', 'card')
        .orderBy('provider_sync_at').limit(limits.jobBatchSize).forUpdate().skipLocked())
    .returningAll()
    .execute();
  return handleEach(services, claimed, { what: 'charge', failed: 'wallet payment sync failed' }, async (charge) => {
    const trail = await jobTrail(services, 'sync-wallet-payments', charge.merchant_id);
    // Blocked by the risk engine, and the process stopped before recording it: the provider never hears of it.
    if (charge.risk?.action === 'block') {
      await recordAttemptOutcome(services, { scope: { merchantId: charge.merchant_id, livemode: charge.livemode }, paymentIntentId: charge.payment_intent_id, chargeId: charge.id },
        riskBlockDecline(charge), trail, undefined);
      return;
    }
    await syncWalletAttempt(services, charge, trail);
  });
}

/**
 * Wallet payments still unresolved well past the shopper's time to pay: normally none. Anything here means the
 * provider has not given a final answer for a long time, and someone should look: the doctor reports it, and the
 * internal listener's `/metrics` exposes it as `coffer_wallet_payments_stuck` for an alert.
 */
export async function countStuckWalletPayments(db: Kysely<Database>, nowMs: number): Promise<number> {
  const deadline = new Date(nowMs - limits.walletStuckAfterMs);
  const row = await db.selectFrom('charges').select(sql<string>`count(*)`.as('stuck'))
    .where('status', '=', 'pending').where('provider', '!=', 'card')
    .where((eb) => eb.or([eb('action_expires_at', '<', deadline), eb.and([eb('action_expires_at', 'is', null), eb('created_at', '<', deadline)])]))
    .executeTakeFirstOrThrow();
  return Number(row.stuck);
}
