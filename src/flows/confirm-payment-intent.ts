import type { Connector } from '../connectors/connector.ts';
import type { CurrencyInfo } from '../domain/currency.ts';
import { CofferError } from '../domain/errors.ts';
import { findCurrency } from '../domain/currency.ts';
import type { ChargeCardDetails } from '../objects/charge.ts';
import { assert } from '../platform/assert.ts';
import { newId } from '../platform/random.ts';
import type { ChargeRow, PaymentIntentRow, PaymentMethodRow } from '../store/database.ts';
import type { Outcome, RequestContext, Services, Tx } from './context.ts';
import { emptyToNull, type ShippingParams } from './payment-intent-params.ts';
import {
  assertNoOperationInFlight,
  lockPaymentIntent,
  nextStatus,
  recordChange,
  updatePaymentIntentRow,
  type Scope,
} from './payment-intent-records.ts';
import { resolvePaymentMethod } from './payment-methods.ts';
import { attemptError, outcomeUnknownError, recordAttemptOutcome } from './record-attempt-outcome.ts';
import type { Respond } from './respond.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

export interface ConfirmParams {
  payment_method?: string;
  receipt_email?: string;
  return_url?: string;
  setup_future_usage?: 'on_session' | 'off_session' | '';
  shipping?: ShippingParams | '';
  capture_method?: 'automatic' | 'automatic_async' | 'manual';
}

interface Attempt {
  intent: PaymentIntentRow;
  charge: ChargeRow;
  paymentMethod: PaymentMethodRow;
  currency: CurrencyInfo;
}

function chargeCardDetails(paymentMethod: PaymentMethodRow): ChargeCardDetails {
  const card = paymentMethod.card;
  return {
    brand: card.brand,
    last4: card.last4,
    exp_month: card.exp_month,
    exp_year: card.exp_year,
    country: card.country,
    funding: card.funding,
    fingerprint: card.fingerprint,
    network: card.brand,
    authorization_code: null,
    network_transaction_id: null,
    cvc_check: null,
  };
}

type Started = { kind: 'send'; attempt: Attempt } | { kind: 'finished'; outcome: Outcome };

/**
 * The attempt this same idempotent request started before (it crashed, or the acquirer did not answer): still
 * pending, it is sent again with its own acquirer key; already settled (by the recovery job), its outcome is
 * answered as the first run would have.
 */
async function earlierAttempt(
  tx: Tx,
  ctx: RequestContext,
  intent: PaymentIntentRow,
  respond: Respond,
): Promise<Started | undefined> {
  const claim = ctx.idempotency;
  if (claim === undefined || intent.latest_charge_id === null) return undefined;
  const charge = await tx.selectFrom('charges').selectAll().where('id', '=', intent.latest_charge_id).executeTakeFirst();
  if (charge === undefined || charge.idempotency_key_id !== claim.rowId) return undefined;
  if (charge.status !== 'pending') {
    const error = charge.status === 'failed' ? attemptError(charge) : undefined;
    return { kind: 'finished', outcome: await respond(tx, { paymentIntent: intent, ...(error === undefined ? {} : { error }) }) };
  }
  const paymentMethod = await tx
    .selectFrom('payment_methods')
    .selectAll()
    .where('id', '=', charge.payment_method_id)
    .executeTakeFirstOrThrow();
  const currency = findCurrency(intent.currency);
  assert(currency !== undefined, 'a stored currency is known');
  return { kind: 'send', attempt: { intent, charge, paymentMethod, currency } };
}

/** Phase 1: validate, then persist the attempt (a pending charge) before anything is sent to the acquirer. */
async function startAttempt(
  tx: Tx,
  services: Services,
  ctx: RequestContext,
  scope: Scope,
  id: string,
  params: ConfirmParams,
  respond: Respond,
  now: Date,
): Promise<Started> {
  let intent = await lockPaymentIntent(tx, scope, id);
  const earlier = await earlierAttempt(tx, ctx, intent, respond);
  if (earlier !== undefined) return earlier;
  assertNoOperationInFlight(intent);
  let paymentMethod: PaymentMethodRow | undefined;
  let status = intent.status;
  if (params.payment_method !== undefined) {
    status = nextStatus(intent, 'attach_payment_method');
    paymentMethod = await resolvePaymentMethod(tx, services, scope, params.payment_method, now);
  } else if (intent.payment_method_id === null && intent.status === 'requires_payment_method') {
    throw new CofferError(
      'payment_intent_unexpected_state',
      "You cannot confirm this PaymentIntent because it's missing a payment method. Update the PaymentIntent " +
        'with a payment method and then confirm it again.',
      { param: 'payment_method' },
    );
  }
  status = nextStatus({ ...intent, status }, 'confirm');
  paymentMethod ??= await tx
    .selectFrom('payment_methods')
    .selectAll()
    .where('id', '=', intent.payment_method_id ?? '')
    .executeTakeFirstOrThrow();
  const currency = findCurrency(intent.currency);
  assert(currency !== undefined, 'a stored currency is known');
  const chargeId = newId('ch');
  const charge = await tx
    .insertInto('charges')
    .values({
      id: chargeId,
      merchant_id: scope.merchantId,
      livemode: scope.livemode,
      created_at: now,
      updated_at: now,
      payment_intent_id: intent.id,
      payment_method_id: paymentMethod.id,
      provider: 'card',
      provider_idempotency_key: chargeId,
      provider_reference: null,
      idempotency_key_id: ctx.idempotency?.rowId ?? null,
      amount: intent.amount,
      currency: intent.currency,
      status: 'pending',
      capture_before: null,
      payment_method_details: JSON.stringify(chargeCardDetails(paymentMethod)),
      outcome: JSON.stringify(null),
      failure_code: null,
      failure_message: null,
      decline_code: null,
      description: intent.description,
      metadata: JSON.stringify({}),
      receipt_email: emptyToNull(params.receipt_email, intent.receipt_email),
      statement_descriptor: intent.statement_descriptor,
      statement_descriptor_suffix: intent.statement_descriptor_suffix,
      available_on: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  intent = await updatePaymentIntentRow(
    tx,
    intent.id,
    {
      status,
      payment_method_id: paymentMethod.id,
      latest_charge_id: charge.id,
      last_payment_error: JSON.stringify(null),
      next_action: JSON.stringify(null),
      receipt_email: emptyToNull(params.receipt_email, intent.receipt_email),
      return_url: params.return_url ?? intent.return_url,
      capture_method: params.capture_method ?? intent.capture_method,
      ...(params.setup_future_usage === undefined ? {} : { setup_future_usage: params.setup_future_usage || null }),
      ...(params.shipping === undefined ? {} : { shipping: JSON.stringify(params.shipping || null) }),
    },
    now,
  );
  await recordChange(
    tx,
    requestTrail(ctx),
    scope,
    { action: 'payment_intent.confirm', objectType: 'payment_intent', objectId: intent.id, details: { charge: charge.id } },
    [],
    now,
  );
  return { kind: 'send', attempt: { intent, charge, paymentMethod, currency } };
}

/**
 * Confirms a PaymentIntent: persist the attempt, send it to the acquirer with the attempt's own idempotency key
 * (outside any transaction), then record the outcome. A retry of the same request after a crash or a timeout
 * resends the same attempt, which the acquirer answers without authorizing twice.
 */
export async function confirmPaymentIntent(
  services: Services,
  ctx: RequestContext,
  id: string,
  params: ConfirmParams,
  respond: Respond,
): Promise<Outcome> {
  const scope = { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
  const now = new Date(services.clock.nowMs());
  const connector: Connector = services.connectors.card(scope.livemode);
  const started = await inTransaction(services.db, (tx) => startAttempt(tx, services, ctx, scope, id, params, respond, now));
  if (started.kind === 'finished') return started.outcome;
  const attempt = started.attempt;
  services.faults.reach('confirm.after_attempt_persisted');
  const card = await services.cardSource.cardFor(attempt.paymentMethod);
  assert(card !== undefined, `payment method ${attempt.paymentMethod.id} has a card to charge`);
  const result = await connector.authorize({
    idempotencyKey: attempt.charge.provider_idempotency_key,
    reference: attempt.charge.id,
    amountMinor: attempt.charge.amount,
    currency: attempt.currency,
    capture: attempt.intent.capture_method !== 'manual',
    card,
    statementDescriptor: attempt.intent.statement_descriptor,
  });
  services.faults.reach('confirm.after_provider_call');
  if (result.status === 'unknown') throw outcomeUnknownError();
  const outcome = await recordAttemptOutcome(
    services,
    { scope, paymentIntentId: attempt.intent.id, chargeId: attempt.charge.id },
    result,
    requestTrail(ctx),
    respond,
  );
  assert(outcome !== undefined, 'a request always gets a response');
  return outcome;
}
