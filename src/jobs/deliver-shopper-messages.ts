import type { Services } from '../flows/context.ts';
import { limits } from '../limits.ts';

/**
 * Sends the messages shoppers are owed (receipts, one-time codes) through the notifier of their mode, a bounded
 * batch at a time. Each message is claimed with a lease (its next attempt pushed a minute ahead, in a short
 * transaction), sent with no transaction open, then marked sent, or given a growing wait (30 s, 1, 2, 4 … minutes)
 * and at last marked failed after eight tries. A code is useless after five minutes: codes are not retried past
 * their expiry (`expires_at`). Live mode without a gateway marks its messages failed at once, saying why.
 */
export const shopperMessageTriesMax = 8;
const leaseMs = 60_000;

export async function deliverShopperMessages(services: Services): Promise<number> {
  const now = new Date(services.clock.nowMs());
  const claimed = await services.db.transaction().execute(async (tx) => {
    const due = await tx.selectFrom('shopper_messages').select('id').where('status', '=', 'pending')
      .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', now)]))
      .orderBy('seq').limit(limits.jobBatchSize).forUpdate().skipLocked().execute();
    if (due.length === 0) return [];
    return tx.updateTable('shopper_messages').set((eb) => ({ attempts: eb('attempts', '+', 1), next_attempt_at: new Date(now.getTime() + leaseMs) }))
      .where('id', 'in', due.map((row) => row.id)).returningAll().execute();
  });
  for (const message of claimed) {
    const notifier = message.livemode ? services.shopperNotifier.live : services.shopperNotifier.test;
    const result = notifier === undefined
      ? { ok: false as const, retry: false, reason: 'no gateway is configured for live messages (COFFER_SHOPPER_NOTIFY_URL)' }
      : await notifier.send(message);
    const done = new Date(services.clock.nowMs());
    if (result.ok) {
      await services.db.updateTable('shopper_messages').set({ status: 'sent', sent_at: done, next_attempt_at: null, last_error: null }).where('id', '=', message.id).execute();
      continue;
    }
    const wait = 30_000 * 2 ** (message.attempts - 1);
    const tooLate = message.expires_at !== null && done.getTime() + wait >= message.expires_at.getTime();
    const giveUp = !result.retry || message.attempts >= shopperMessageTriesMax || tooLate;
    if (giveUp) services.logger.warn({ message: message.id, reason: result.reason }, 'shopper message not delivered');
    await services.db.updateTable('shopper_messages').set({
      status: giveUp ? 'failed' : 'pending', next_attempt_at: giveUp ? null : new Date(done.getTime() + wait), last_error: result.reason.slice(0, 500),
    }).where('id', '=', message.id).execute();
  }
  return claimed.length;
}
