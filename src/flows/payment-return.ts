import { findCurrency } from '../domain/currency.ts';
import { assert } from '../platform/assert.ts';
import type { Services } from './context.ts';
import { recordAttemptOutcome } from './record-attempt-outcome.ts';
import { jobTrail } from '../jobs/system-trail.ts';
import { inTransaction } from './transaction.ts';
import { isWalletType, recordWalletResolution, resolutionOf } from './wallet-payments.ts';
import { settleSetupAuthentication } from './setup-intents.ts';

/** Where the shopper's browser goes after a 3-D Secure challenge: the merchant's page, or none. */
export type ReturnTarget = { redirect: string } | { page: 'finished' | 'unknown' };

/**
 * The shopper is back from the provider (the card access control server, Alipay's cashier). Coffer asks the
 * provider what became of the attempt (the browser's arrival proves nothing by itself) and records a final answer,
 * then sends the shopper to the merchant's `return_url` with Stripe's parameters (`payment_intent`,
 * `payment_intent_client_secret`, `redirect_status`).
 */
export async function returnFromProvider(services: Services, chargeId: string, sig: string): Promise<ReturnTarget> {
  if (!services.connectors.verifyPaymentReturn(chargeId, sig)) return { page: 'unknown' };
  if (chargeId.startsWith('seti_')) return returnFromSetup(services, chargeId);
  const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', chargeId).executeTakeFirst();
  if (charge === undefined) return { page: 'unknown' };
  if (charge.status === 'pending' && isWalletType(charge.provider)) {
    const currency = findCurrency(charge.currency);
    assert(currency !== undefined, 'a stored currency is known');
    const state = await services.connectors.wallet(charge.provider, charge.livemode).queryTrade({ reference: charge.id, amountMinor: charge.amount, currency });
    const resolution = resolutionOf(state);
    if (resolution !== undefined) {
      const trail = await jobTrail(services, 'payment-return', charge.merchant_id);
      await inTransaction(services.db, (tx) => recordWalletResolution(tx, charge, resolution, trail, new Date(services.clock.nowMs())));
    }
  } else if (charge.status === 'pending') {
    const currency = findCurrency(charge.currency);
    assert(currency !== undefined, 'a stored currency is known');
    const found = await services.connectors.card(charge.livemode).syncPayment({
      idempotencyKey: charge.provider_idempotency_key, reference: charge.id, amountMinor: charge.amount, currency,
    });
    if (found.status === 'authorized' || found.status === 'captured' || found.status === 'declined') {
      await recordAttemptOutcome(
        services,
        { scope: { merchantId: charge.merchant_id, livemode: charge.livemode }, paymentIntentId: charge.payment_intent_id, chargeId: charge.id },
        found,
        await jobTrail(services, 'payment-return', charge.merchant_id),
        undefined,
      );
    }
  }
  const intent = await services.db.selectFrom('payment_intents').select(['id', 'status', 'client_secret', 'return_url'])
    .where('id', '=', charge.payment_intent_id).executeTakeFirstOrThrow();
  const redirectStatus = intent.status === 'succeeded' || intent.status === 'requires_capture' ? 'succeeded'
    : intent.status === 'requires_payment_method' ? 'failed' : 'pending';
  return backToMerchant(intent.return_url, redirectStatus, { payment_intent: intent.id, payment_intent_client_secret: intent.client_secret });
}

/**
 * Where the shopper goes next: the merchant's `return_url` with Stripe's parameters and `redirect_status`, or, without
 * one, Coffer's own page (a pending outcome has nothing to say yet).
 */
function backToMerchant(returnUrl: string | null, redirectStatus: 'succeeded' | 'failed' | 'pending', parameters: Record<string, string>): ReturnTarget {
  if (returnUrl === null) return { page: redirectStatus === 'pending' ? 'unknown' : 'finished' };
  const target = new URL(returnUrl);
  for (const [name, value] of Object.entries(parameters)) target.searchParams.set(name, value);
  target.searchParams.set('redirect_status', redirectStatus);
  return { redirect: target.toString() };
}

/**
 * The shopper is back from a SetupIntent's 3-D Secure challenge: its outcome is asked of the acquirer and recorded,
 * then the shopper goes on to the merchant's `return_url` with Stripe's parameters (`setup_intent`,
 * `setup_intent_client_secret`, `redirect_status`).
 */
async function returnFromSetup(services: Services, intentId: string): Promise<ReturnTarget> {
  const intent = await settleSetupAuthentication(services, intentId, 'payment-return');
  if (intent === undefined) return { page: 'unknown' };
  const redirectStatus = intent.status === 'succeeded' ? 'succeeded' : intent.status === 'requires_payment_method' || intent.status === 'canceled' ? 'failed' : 'pending';
  return backToMerchant(intent.return_url, redirectStatus, { setup_intent: intent.id, setup_intent_client_secret: intent.client_secret });
}
