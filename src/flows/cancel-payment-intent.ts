import { closeReviewOfCanceled } from './reviews.ts';
import type { VoidResult } from '../connectors/connector.ts';
import { CofferError } from '../domain/errors.ts';
import { releaseTransfers } from '../domain/ledger.ts';
import { assert } from '../platform/assert.ts';
import { finishWithLedger } from './ledger-work.ts';
import type { Outcome, RequestContext, Services, Tx } from './context.ts';
import {
  assertNoOperationInFlight,
  lockCharge,
  lockPaymentIntent,
  nextStatus,
  recordChange,
  updatePaymentIntentRow,
  type Scope,
} from './payment-intent-records.ts';
import { abandonedChallenge, outcomeUnknownError, recordAttemptOutcome } from './record-attempt-outcome.ts';
import { findCurrency } from '../domain/currency.ts';
import type { Respond } from './respond.ts';
import { inTransaction } from './transaction.ts';
import { closeWalletAttemptForCancel, isWalletType } from './wallet-payments.ts';
import { requestTrail, type Trail } from './trail.ts';

export interface CancelParams {
  cancellation_reason?: 'duplicate' | 'fraudulent' | 'requested_by_customer' | 'abandoned';
}

/** Cancellation and expiry of a hold share this key: the acquirer voids an authorization once. */
export function voidKey(chargeId: string): string {
  return `${chargeId}:void`;
}

type Started = { done: Outcome } | { voidRef: { chargeId: string; providerReference: string } };

async function startCancel(
  tx: Tx,
  ctx: RequestContext,
  scope: Scope,
  id: string,
  params: CancelParams,
  respond: Respond,
  now: Date,
): Promise<Started> {
  const intent = await lockPaymentIntent(tx, scope, id);
  const claim = ctx.idempotency;
  const ownOperation = claim !== undefined && intent.operation_idempotency_key_id === claim.rowId;
  if (ownOperation && intent.operation_in_flight === null) {
    // The recovery job finished the void this request started: answer with its result.
    return { done: await respond(tx, { paymentIntent: intent }) };
  }
  const resuming = ownOperation && intent.operation_in_flight === 'cancel';
  if (!resuming) {
    assertNoOperationInFlight(intent);
    const status = nextStatus(intent, 'cancel');
    if (intent.status === 'requires_action' && intent.latest_charge_id !== null) {
      // An attempt opened meanwhile (a confirmation finished after this request looked): it must be ended at the
      // provider first, which the retry does.
      const charge = await lockCharge(tx, intent.latest_charge_id);
      if (charge.status === 'pending') {
        throw new CofferError('lock_timeout', 'This PaymentIntent is waiting for the shopper at the provider, which must be ended first. Try again in a moment.');
      }
    }
    if (intent.status !== 'requires_capture') {
      // Nothing is held at the acquirer: the cancellation is ours alone.
      const after = await updatePaymentIntentRow(
        tx,
        intent.id,
        { status, canceled_at: now, cancellation_reason: params.cancellation_reason ?? null },
        now,
      );
      await recordChange(
        tx,
        requestTrail(ctx),
        scope,
        { action: 'payment_intent.cancel', objectType: 'payment_intent', objectId: intent.id },
        [{ type: 'payment_intent.canceled', paymentIntent: { before: intent, after } }],
        now,
      );
      return { done: await respond(tx, { paymentIntent: after }) };
    }
    await updatePaymentIntentRow(
      tx,
      intent.id,
      {
        operation_in_flight: 'cancel',
        operation_started_at: now,
        operation_reason: params.cancellation_reason ?? null,
        operation_idempotency_key_id: claim?.reference() ?? null,
      },
      now,
    );
  }
  assert(intent.latest_charge_id !== null, 'an authorized PaymentIntent has a charge');
  const charge = await lockCharge(tx, intent.latest_charge_id);
  assert(charge.provider_reference !== null, 'an authorized charge has the acquirer reference');
  return { voidRef: { chargeId: charge.id, providerReference: charge.provider_reference } };
}

/**
 * Records the acquirer's answer to a void, once: the hold is released in the ledger and the PaymentIntent is
 * canceled (by the merchant, or `automatic` when the authorization expired). Shared with the recovery job.
 */
export async function recordCancelOutcome(
  services: Services,
  scope: Scope,
  intentId: string,
  result: Exclude<VoidResult, { status: 'unknown' }>,
  trail: Trail,
  respond: Respond | undefined,
): Promise<Outcome | undefined> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockPaymentIntent(tx, scope, intentId);
    if (intent.operation_in_flight !== 'cancel') {
      return respond === undefined ? undefined : respond(tx, { paymentIntent: intent });
    }
    assert(intent.latest_charge_id !== null, 'an in-flight cancellation has a charge');
    const charge = await lockCharge(tx, intent.latest_charge_id);
    const cleared = { operation_in_flight: null, operation_started_at: null, operation_amount: null };
    if (result.status === 'failed') {
      const after = await updatePaymentIntentRow(tx, intent.id, { ...cleared, operation_reason: null }, now);
      const error = new CofferError('api_error', `The card acquirer refused to release the hold: ${result.message}`);
      return respond === undefined ? undefined : respond(tx, { paymentIntent: after, error });
    }
    const expired = intent.operation_reason === 'automatic';
    const status = nextStatus(intent, expired ? 'authorization_expired' : 'cancel');
    const chargeAfter = await tx
      .updateTable('charges')
      .set({ amount_released: charge.amount_authorized - charge.amount_captured, updated_at: now })
      .where('id', '=', charge.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const after = await updatePaymentIntentRow(
      tx,
      intent.id,
      { ...cleared, operation_reason: null, status, amount_capturable: 0n, canceled_at: now, cancellation_reason: intent.operation_reason },
      now,
    );
    await recordChange(
      tx,
      trail,
      scope,
      { action: expired ? 'payment_intent.expire' : 'payment_intent.cancel', objectType: 'payment_intent', objectId: intent.id },
      [
        ...(expired ? [{ type: 'charge.expired', charge: { before: charge, after: chargeAfter } }] : []),
        { type: 'payment_intent.canceled', paymentIntent: { before: intent, after } },
      ],
      now,
    );
    await closeReviewOfCanceled(tx, charge.id, trail, now);
    const ledger = {
      context: { merchantId: scope.merchantId, livemode: scope.livemode, currency: intent.currency, paymentIntentId: intent.id, chargeId: charge.id },
      transfers: releaseTransfers(charge.id, charge.authorization_increments),
    };
    return finishWithLedger(tx, ledger, () => respond?.(tx, { paymentIntent: after }), respond?.rendersAfterChange === true);
  });
}

/**
 * A PaymentIntent waiting for the shopper (a trade open at Alipay or WeChat Pay, a 3-D Secure challenge at the
 * card acquirer) has an attempt open at the provider: it is ended there first (outside any transaction), so that
 * the shopper cannot pay a canceled payment. If they already have, that is recorded, and the cancellation then
 * voids the authorization or is refused for a captured payment (refund it instead).
 */
async function endOpenAttempt(services: Services, ctx: RequestContext, scope: Scope, id: string): Promise<void> {
  const intent = await services.db.selectFrom('payment_intents').select(['status', 'latest_charge_id']).where('id', '=', id)
    .where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode).executeTakeFirst();
  if (intent?.status !== 'requires_action' || intent.latest_charge_id === null) return;
  const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', intent.latest_charge_id).executeTakeFirstOrThrow();
  if (charge.status !== 'pending') return;
  if (isWalletType(charge.provider)) {
    await closeWalletAttemptForCancel(services, ctx, charge);
    return;
  }
  const currency = findCurrency(charge.currency);
  assert(currency !== undefined, 'a stored currency is known');
  const ended = await services.connectors.card(charge.livemode).abandonAttempt({
    idempotencyKey: charge.provider_idempotency_key, reference: charge.id, amountMinor: charge.amount, currency,
  });
  if (ended.status === 'unknown' || ended.status === 'requires_action') throw outcomeUnknownError('cancellation');
  await recordAttemptOutcome(
    services,
    { scope, paymentIntentId: charge.payment_intent_id, chargeId: charge.id },
    ended.status === 'not_found' ? abandonedChallenge : ended,
    requestTrail(ctx),
    undefined,
  );
}

/** Cancels a PaymentIntent; an authorization hold is voided at the acquirer first, outside any transaction. */
export async function cancelPaymentIntent(
  services: Services,
  ctx: RequestContext,
  id: string,
  params: CancelParams,
  respond: Respond,
): Promise<Outcome> {
  const scope = { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
  await endOpenAttempt(services, ctx, scope, id);
  const now = new Date(services.clock.nowMs());
  const started = await inTransaction(services.db, (tx) => startCancel(tx, ctx, scope, id, params, respond, now));
  if ('done' in started) return started.done;
  const connector = services.connectors.card(scope.livemode);
  const result = await connector.void({
    idempotencyKey: voidKey(started.voidRef.chargeId),
    providerReference: started.voidRef.providerReference,
  });
  if (result.status === 'unknown') throw outcomeUnknownError('cancellation');
  const outcome = await recordCancelOutcome(services, scope, id, result, requestTrail(ctx), respond);
  assert(outcome !== undefined, 'a request always gets a response');
  return outcome;
}
