import type { IncrementResult } from '../connectors/connector.ts';
import { findCurrency } from '../domain/currency.ts';
import { CofferError } from '../domain/errors.ts';
import { incrementTransfers } from '../domain/ledger.ts';
import { parseAmount } from '../domain/money.ts';
import type { ChargeCardDetails } from '../objects/charge.ts';
import { assert } from '../platform/assert.ts';
import { checkLimits, describeLimit } from '../risk/limits.ts';
import { sql } from 'kysely';
import type { ChargeRow, IncrementTry, PaymentIntentRow, PaymentLimitRow } from '../store/database.ts';
import type { Outcome, RequestContext, Services, Tx } from './context.ts';
import { finishWithLedger } from './ledger-work.ts';
import { listLimits } from './payment-limits.ts';
import {
  lockCharge,
  lockPaymentIntent,
  nextStatus,
  recordChange,
  startHeldOperation,
  updatePaymentIntentRow,
  type Scope,
} from './payment-intent-records.ts';
import { outcomeUnknownError } from './record-attempt-outcome.ts';
import { refuseCaptureInReview } from './reviews.ts';
import type { Respond } from './respond.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail, type Trail } from './trail.ts';

/** How many times a hold may be raised, declines included, as card networks allow (and Stripe). */
export const incrementAttemptsMax = 10;

export interface IncrementParams {
  /** The new total to hold, greater than the amount held now. */
  amount: number;
}

/** Coffer's key at the acquirer for the `attempt`-th try to raise this charge's hold. */
export function incrementKey(chargeId: string, attempt: number): string {
  return `${chargeId}:increment:${attempt}`;
}

type Started =
  | { kind: 'send'; intent: PaymentIntentRow; charge: ChargeRow; amount: bigint; attempt: number }
  | { kind: 'finished'; outcome: Outcome };

function unavailable(message: string): CofferError {
  return new CofferError('incremental_authorization_unavailable', message);
}

/** What a try reads before its transaction: the merchant's limits, and its time zone (the windows of daily limits). */
interface LimitPolicy {
  configured: PaymentLimitRow[];
  timeZone: string;
}

async function readLimitPolicy(services: Services, ctx: RequestContext): Promise<LimitPolicy> {
  const configured = await listLimits(services, ctx);
  if (configured.length === 0) return { configured, timeZone: 'UTC' };
  const settings = await services.db.selectFrom('merchant_risk_settings').select('time_zone')
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
  return { configured, timeZone: settings?.time_zone ?? 'UTC' };
}

function limitExceeded(limit: PaymentLimitRow, amount: bigint): CofferError {
  return new CofferError('payment_limit_exceeded', `Holding ${amount} would exceed ${describeLimit(limit)}. The hold was not raised.`, { param: 'amount' });
}

/**
 * The merchant's limits hold for the raised amount as for a payment: its per-payment bounds for the new total, and
 * its daily amount totals for the difference, taken now (in the try's transaction) and given back if the try fails.
 * Count limits are not taken again: a raise is not another payment.
 */
async function takeLimits(tx: Tx, policy: LimitPolicy, intent: PaymentIntentRow, charge: ChargeRow, amount: bigint, now: Date): Promise<IncrementTry['takes']> {
  if (policy.configured.length === 0) return [];
  const card = charge.payment_method_details as unknown as ChargeCardDetails;
  const check = checkLimits(policy.configured, {
    merchantId: intent.merchant_id, amountMinor: amount, currency: intent.currency, customerId: intent.customer_id,
    cardFingerprint: card.fingerprint, deviceId: charge.risk_facts?.device ?? null, clientAddress: charge.risk_facts?.client_address ?? null,
    timeZone: policy.timeZone, at: now,
  });
  if (!check.ok) throw limitExceeded(check.limit, amount);
  const delta = amount - intent.amount;
  const takes = check.takes.filter((take) => take.maxAmount !== null);
  for (const take of takes) {
    try {
      await sql`SELECT coffer_limit_raise(${take.limit.id}, ${take.subjectKey}, ${take.windowKey}, ${intent.merchant_id}, ${charge.id}, ${delta}, ${take.maxAmount})`.execute(tx);
    } catch (error) {
      if (/coffer_limit_exceeded/.test(String((error as { message?: unknown }).message))) throw limitExceeded(take.limit, amount);
      throw error;
    }
  }
  return takes.map((take) => ({ limit_id: take.limit.id, subject_key: take.subjectKey, window_key: take.windowKey, delta: delta.toString() }));
}

/** A try that failed gives back what it took from the daily amount totals. */
async function giveBackLimits(tx: Tx, merchantId: string, chargeId: string, takes: IncrementTry['takes']): Promise<void> {
  for (const take of takes) {
    await sql`SELECT coffer_limit_raise(${take.limit_id}, ${take.subject_key}, ${take.window_key}, ${merchantId}, ${chargeId}, ${-BigInt(take.delta)}, ${null})`.execute(tx);
  }
}

/** The error a failed try is answered with, now or when the retry of its request finds it recorded by the recovery job. */
function tryError(failure: NonNullable<IncrementTry['failure']>, intent: PaymentIntentRow, chargeId: string): CofferError {
  return failure.code === 'card_declined'
    ? new CofferError('card_declined', `The incremental authorization was declined: ${failure.message} The PaymentIntent remains capturable for ${intent.amount_capturable}.`, {
      declineCode: failure.decline_code ?? undefined, adviceCode: failure.advice_code ?? undefined, chargeId, paymentIntentId: intent.id,
    })
    : unavailable(`The card acquirer refused to increment the authorization: ${failure.message}`);
}

/**
 * The retry of a request whose try the recovery job recorded: a failed try is answered with its error, as the
 * request itself would have been (the PaymentIntent alone does not show that a try failed).
 */
async function recordedTryError(tx: Tx, intent: PaymentIntentRow, attempt?: number): Promise<CofferError | undefined> {
  if (intent.latest_charge_id === null) return undefined;
  const charge = await tx.selectFrom('charges').select(['id', 'increment_attempts', 'increment_try']).where('id', '=', intent.latest_charge_id).executeTakeFirst();
  const failure = charge?.increment_try?.failure;
  if (charge === undefined || failure === undefined || (attempt !== undefined && charge.increment_attempts !== attempt)) return undefined;
  return tryError(failure, intent, charge.id);
}

/**
 * Phase 1: check, count the try, and mark it in flight, so that no capture, cancellation or other increment can
 * overlap it. A retry of the request that started it resumes it, or answers the result the recovery job recorded.
 */
async function startIncrement(
  tx: Tx, ctx: RequestContext, scope: Scope, id: string, params: IncrementParams, respond: Respond, policy: LimitPolicy, now: Date,
): Promise<Started> {
  const started = await startHeldOperation(tx, ctx, scope, id, respond, 'increment', 'increment_authorization', recordedTryError);
  if (started.kind === 'finished') return started;
  const { intent, charge } = started;
  if (started.resuming && intent.operation_amount !== null) {
    return { kind: 'send', intent, charge, amount: intent.operation_amount, attempt: charge.increment_attempts };
  }
  const card = charge.payment_method_details as unknown as ChargeCardDetails;
  await refuseCaptureInReview(tx, charge, undefined, 'increment');
  if (charge.provider !== 'card' || card.incremental_authorization !== 'available') {
    const asked = intent.card_request_incremental_authorization === 'if_available';
    throw unavailable(asked
      ? `The authorization of PaymentIntent ${intent.id} cannot be incremented: its card's network or its capture method did not allow it (payment_method_details.card.incremental_authorization.status is unavailable on charge ${charge.id}).`
      : `The authorization of PaymentIntent ${intent.id} cannot be incremented: it was not requested. Set payment_method_options[card][request_incremental_authorization]=if_available, with capture_method=manual, before confirming.`);
  }
  if (charge.increment_attempts >= incrementAttemptsMax) {
    throw unavailable(`The authorization of PaymentIntent ${intent.id} has been incremented ${incrementAttemptsMax} times already (declines included), the most a payment may be; capture it, or cancel it and make a new payment.`);
  }
  const currency = findCurrency(intent.currency);
  assert(currency !== undefined, 'a stored currency is known');
  // As any amount a payment takes (at most eight digits, a whole step of the currency), and above the hold.
  const amount = parseAmount(params.amount, currency).amountMinor;
  if (amount <= intent.amount) {
    throw new CofferError('parameter_invalid_integer',
      `amount must be greater than the amount now authorized (${intent.amount}): it is the new total to hold, not the amount to add.`, { param: 'amount' });
  }
  if (charge.capture_before !== null && charge.capture_before.getTime() <= now.getTime()) {
    throw new CofferError('charge_expired_for_capture', 'The authorization for this PaymentIntent has expired and can no longer be incremented.', { chargeId: charge.id });
  }
  const takes = await takeLimits(tx, policy, intent, charge, amount, now);
  const attempt = charge.increment_attempts + 1;
  const tried: IncrementTry = { amount: amount.toString(), takes };
  await tx.updateTable('charges').set({ increment_attempts: attempt, increment_try: JSON.stringify(tried), updated_at: now }).where('id', '=', charge.id).execute();
  const updated = await updatePaymentIntentRow(tx, intent.id, {
    operation_in_flight: 'increment', operation_started_at: now, operation_amount: amount, operation_idempotency_key_id: ctx.idempotency?.reference() ?? null,
  }, now);
  return { kind: 'send', intent: updated, charge: { ...charge, increment_attempts: attempt }, amount, attempt };
}

/**
 * Phase 3: records the issuer's answer once. Approved: the PaymentIntent and its charge hold the new amount, and the
 * ledger replaces the reservation with one of the new total. Declined: nothing but the count of tries changes, and
 * the request gets the issuer's `card_declined`. Shared with the recovery job, which re-drives stuck increments.
 */
export async function recordIncrementOutcome(
  services: Services,
  scope: Scope,
  intentId: string,
  attempt: number,
  result: Exclude<IncrementResult, { status: 'unknown' }>,
  trail: Trail,
  respond: Respond | undefined,
): Promise<Outcome | undefined> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockPaymentIntent(tx, scope, intentId);
    const charge = intent.operation_in_flight === 'increment' && intent.latest_charge_id !== null ? await lockCharge(tx, intent.latest_charge_id) : undefined;
    // The answer is for try `attempt`: recorded only while that very try is in flight. A late answer to a try already
    // recorded (by its request's retry, or the recovery job) must not be taken for the next one's.
    const current = charge !== undefined && charge.increment_attempts === attempt && charge.increment_try !== null
      && intent.operation_amount === BigInt(charge.increment_try.amount);
    if (charge === undefined || !current) {
      if (respond === undefined) return undefined;
      // The request's own try, recorded meanwhile by the recovery job: answered as it was recorded.
      const error = await recordedTryError(tx, intent, attempt);
      return respond(tx, { paymentIntent: intent, ...(error === undefined ? {} : { error }) });
    }
    assert(intent.operation_amount !== null, 'an increment in flight is complete');
    const amount = intent.operation_amount;
    const cleared = { operation_in_flight: null, operation_started_at: null, operation_amount: null };
    const audit = { objectType: 'payment_intent', objectId: intent.id };
    if (result.status !== 'approved') {
      const after = await updatePaymentIntentRow(tx, intent.id, cleared, now);
      const declined = result.status === 'declined';
      const failure: NonNullable<IncrementTry['failure']> = declined
        ? { code: 'card_declined', message: result.message, decline_code: result.declineCode, advice_code: result.adviceCode }
        : { code: 'incremental_authorization_unavailable', message: result.message, decline_code: null, advice_code: null };
      const tried = charge.increment_try;
      assert(tried !== null, 'the try in flight is recorded with its charge');
      await giveBackLimits(tx, intent.merchant_id, charge.id, tried.takes);
      await tx.updateTable('charges').set({ increment_try: JSON.stringify({ ...tried, failure }), updated_at: now }).where('id', '=', charge.id).execute();
      await recordChange(tx, trail, scope, {
        ...audit, action: 'payment_intent.increment_authorization_declined',
        details: { charge: charge.id, amount: amount.toString(), attempt: charge.increment_attempts, ...(declined ? { decline_code: result.declineCode } : { acquirer_code: result.code }) },
      }, [], now);
      const error = tryError(failure, intent, charge.id);
      return respond === undefined ? undefined : respond(tx, { paymentIntent: after, error });
    }
    const increments = charge.authorization_increments + 1;
    const chargeAfter = await tx.updateTable('charges')
      .set({ amount, amount_authorized: amount, authorization_increments: increments, updated_at: now })
      .where('id', '=', charge.id).returningAll().executeTakeFirstOrThrow();
    const status = nextStatus(intent, 'increment_authorization');
    const after = await updatePaymentIntentRow(tx, intent.id, { ...cleared, status, amount, amount_capturable: amount }, now);
    await recordChange(tx, trail, scope, {
      ...audit, action: 'payment_intent.increment_authorization',
      details: { charge: charge.id, from: intent.amount.toString(), amount: amount.toString(), attempt: charge.increment_attempts },
    }, [
      { type: 'charge.updated', charge: { before: charge, after: chargeAfter } },
      { type: 'payment_intent.amount_capturable_updated', paymentIntent: { before: intent, after } },
    ], now);
    const ledger = {
      context: { merchantId: scope.merchantId, livemode: scope.livemode, currency: intent.currency, paymentIntentId: intent.id, chargeId: charge.id },
      transfers: incrementTransfers(charge.id, increments, amount),
    };
    return finishWithLedger(tx, ledger, () => respond?.(tx, { paymentIntent: after }), respond?.rendersAfterChange === true);
  });
}

/**
 * Raises the hold of a card payment authorized for manual capture to `amount`, the new total (Stripe's
 * `increment_authorization`). The call to the acquirer is made outside any transaction, with a key of its own.
 */
export async function incrementAuthorization(
  services: Services,
  ctx: RequestContext,
  id: string,
  params: IncrementParams,
  respond: Respond,
): Promise<Outcome> {
  const scope = { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
  const now = new Date(services.clock.nowMs());
  const connector = services.connectors.card(scope.livemode);
  const policy = await readLimitPolicy(services, ctx);
  const started = await inTransaction(services.db, (tx) => startIncrement(tx, ctx, scope, id, params, respond, policy, now));
  if (started.kind === 'finished') return started.outcome;
  assert(started.charge.provider_reference !== null, 'an authorized charge has the acquirer reference');
  const currency = findCurrency(started.intent.currency);
  assert(currency !== undefined, 'a stored currency is known');
  const result = await connector.incrementAuthorization({
    idempotencyKey: incrementKey(started.charge.id, started.attempt),
    providerReference: started.charge.provider_reference,
    amountMinor: started.amount,
    currency,
  });
  services.faults.reach('increment.after_provider_call');
  if (result.status === 'unknown') throw outcomeUnknownError('increment');
  const outcome = await recordIncrementOutcome(services, scope, started.intent.id, started.attempt, result, requestTrail(ctx), respond);
  assert(outcome !== undefined, 'a request always gets a response');
  return outcome;
}
