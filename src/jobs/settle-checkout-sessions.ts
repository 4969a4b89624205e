import type { Services } from '../flows/context.ts';
import { settleCheckoutSession } from '../flows/checkout-sessions.ts';

/**
 * Open Checkout Sessions past their expiry, or whose payment ended while nobody was on the page (a wallet paid
 * after the shopper closed the tab): brought up to date, a bounded batch at a time. Sessions still being paid
 * stay open and are looked at again on the next run.
 */
export async function settleCheckoutSessions(services: Services): Promise<number> {
  const now = new Date(services.clock.nowMs());
  const due = await services.db.selectFrom('checkout_sessions').innerJoin('payment_intents', 'payment_intents.id', 'checkout_sessions.payment_intent_id')
    .select('checkout_sessions.id').where('checkout_sessions.status', '=', 'open')
    .where((eb) => eb.or([
      // A PaymentIntent's own page does not expire by time: it closes when its PaymentIntent is paid or canceled.
      eb.and([eb('checkout_sessions.expires_at', '<=', now), eb('checkout_sessions.kind', '=', 'checkout')]),
      eb('payment_intents.status', 'in', ['succeeded', 'requires_capture']),
      eb.and([eb('payment_intents.status', '=', 'canceled'), eb('checkout_sessions.kind', '=', 'payment_intent')]),
    ]))
    .where('payment_intents.status', 'not in', ['processing', 'requires_action'])
    .orderBy('checkout_sessions.expires_at').limit(50).execute();
  let settled = 0;
  for (const { id } of due) {
    const after = await settleCheckoutSession(services, id);
    if (after.status !== 'open') settled += 1;
  }
  return settled;
}
