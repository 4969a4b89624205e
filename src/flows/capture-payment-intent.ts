import { refuseCaptureInReview } from './reviews.ts';
import type { CaptureResult } from '../connectors/connector.ts';
import { findCurrency, formatAmount } from '../domain/currency.ts';
import { checkAmountStep } from '../domain/money.ts';
import { CofferError } from '../domain/errors.ts';
import { captureTransfers, settlementTransfers } from '../domain/ledger.ts';
import { limits } from '../limits.ts';
import { assert } from '../platform/assert.ts';
import type { ChargeRow, PaymentIntentRow } from '../store/database.ts';
import { finishWithLedger, type LedgerWork } from './ledger-work.ts';
import type { Outcome, RequestContext, Services, Tx } from './context.ts';
import { cardStatementDescriptorRefused, checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
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
import type { Respond } from './respond.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail, type Trail } from './trail.ts';

export interface CaptureOptions {
  /** The review being approved: the capture its open review would refuse is what approving it does. */
  approvingReview?: string;
}

export interface CaptureParams {
  amount_to_capture?: number;
  /** Only `true` (the default): Coffer captures a payment once, and releases what it does not capture. */
  final_capture?: boolean;
  metadata?: Record<string, string> | '';
  statement_descriptor?: string;
  statement_descriptor_suffix?: string;
}

export function captureKey(chargeId: string): string {
  return `${chargeId}:capture`;
}

type StartedCapture =
  | { kind: 'send'; intent: PaymentIntentRow; charge: ChargeRow; amount: bigint }
  | { kind: 'finished'; outcome: Outcome };

/**
 * Phase 1: check, then mark the capture as in flight so that no cancel or second capture can overlap it. A retry
 * of the request that started the capture resumes it, or, if the recovery job finished it, answers its result.
 */
async function startCapture(
  tx: Tx,
  ctx: RequestContext,
  scope: Scope,
  id: string,
  params: CaptureParams,
  respond: Respond,
  now: Date,
  options: CaptureOptions,
): Promise<StartedCapture> {
  const started = await startHeldOperation(tx, ctx, scope, id, respond, 'capture', 'capture');
  if (started.kind === 'finished') return started;
  const { intent, charge } = started;
  if (started.resuming && intent.operation_amount !== null) return { kind: 'send', intent, charge, amount: intent.operation_amount };
  await refuseCaptureInReview(tx, charge, options.approvingReview);
  const amount = params.amount_to_capture === undefined ? intent.amount_capturable : BigInt(params.amount_to_capture);
  if (amount > intent.amount_capturable) {
    throw new CofferError(
      'amount_too_large',
      'The payment could not be captured because the requested capture amount is greater than the amount you can ' +
        `capture for this charge (${intent.amount_capturable}).`,
      { param: 'amount_to_capture' },
    );
  }
  if (amount <= 0n) {
    throw new CofferError('parameter_invalid_integer', 'amount_to_capture must be at least 1.', { param: 'amount_to_capture' });
  }
  const currency = findCurrency(intent.currency);
  assert(currency !== undefined, 'a stored currency is known');
  checkAmountStep(amount, currency, 'amount_to_capture');
  // As at Stripe, a capture is a charge of its own amount: it too must reach the currency's minimum.
  if (amount < BigInt(currency.minimumMinor)) {
    const why = currency.minimumIndicative ? ' (about 0.25 usd: Coffer\'s floor for a currency without a published minimum)' : '';
    throw new CofferError('amount_too_small', `The amount to capture must be at least ${formatAmount(currency.minimumMinor, currency)}${why}.`, { param: 'amount_to_capture' });
  }
  if (charge.capture_before !== null && charge.capture_before.getTime() <= now.getTime()) {
    throw new CofferError(
      'charge_expired_for_capture',
      'The authorization for this PaymentIntent has expired and can no longer be captured.',
      { chargeId: charge.id },
    );
  }
  if (params.statement_descriptor !== undefined && charge.provider === 'card') throw cardStatementDescriptorRefused('statement_descriptor');
  const metadata = mergeMetadata(intent.metadata, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const updated = await updatePaymentIntentRow(
    tx,
    intent.id,
    {
      operation_in_flight: 'capture',
      operation_started_at: now,
      operation_amount: amount,
      operation_idempotency_key_id: ctx.idempotency?.reference() ?? null,
      metadata: JSON.stringify(metadata),
      ...(params.statement_descriptor === undefined ? {} : { statement_descriptor: params.statement_descriptor }),
      ...(params.statement_descriptor_suffix === undefined
        ? {}
        : { statement_descriptor_suffix: params.statement_descriptor_suffix }),
    },
    now,
  );
  return { kind: 'send', intent: updated, charge, amount };
}

/** Phase 3: record the acquirer's answer once. Shared with the recovery job, which re-drives stuck captures. */
export async function recordCaptureOutcome(
  services: Services,
  scope: Scope,
  intentId: string,
  result: Exclude<CaptureResult, { status: 'unknown' }>,
  trail: Trail,
  respond: Respond | undefined,
): Promise<Outcome | undefined> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockPaymentIntent(tx, scope, intentId);
    if (intent.operation_in_flight !== 'capture') {
      return respond === undefined ? undefined : respond(tx, { paymentIntent: intent });
    }
    assert(intent.latest_charge_id !== null && intent.operation_amount !== null, 'an in-flight capture is complete');
    const charge = await lockCharge(tx, intent.latest_charge_id);
    // operation_idempotency_key_id stays: a retry of the request that started this capture gets its result.
    const cleared = { operation_in_flight: null, operation_started_at: null, operation_amount: null };
    if (result.status === 'failed') {
      const after = await updatePaymentIntentRow(tx, intent.id, cleared, now);
      const error = new CofferError('api_error', `The card acquirer refused the capture: ${result.message}`, {
        chargeId: charge.id,
      });
      return respond === undefined ? undefined : respond(tx, { paymentIntent: after, error });
    }
    const { intent: after, ledger } = await applyCapture(tx, trail, scope, intent, charge, intent.operation_amount, result.availableImmediately, cleared, now);
    return finishWithLedger(tx, ledger, () => respond?.(tx, { paymentIntent: after }), respond?.rendersAfterChange === true);
  });
}

async function applyCapture(
  tx: Tx,
  trail: Trail,
  scope: Scope,
  intent: PaymentIntentRow,
  charge: ChargeRow,
  amount: bigint,
  availableImmediately: boolean,
  cleared: Record<string, null>,
  now: Date,
): Promise<{ intent: PaymentIntentRow; ledger: LedgerWork }> {
  const status = nextStatus(intent, 'capture');
  const chargeAfter = await tx
    .updateTable('charges')
    .set({
      captured: true,
      amount_captured: amount,
      amount_released: charge.amount_authorized - amount,
      // Funds the acquirer pays out at once are available now, as with an automatic capture of such a card
      // (record-attempt-outcome.ts); the others settle after the delay (jobs/settle-funds.ts).
      available_on: availableImmediately ? null : new Date(now.getTime() + limits.settlementDelayMs),
      settled: availableImmediately,
      updated_at: now,
    })
    .where('id', '=', charge.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  const after = await updatePaymentIntentRow(
    tx,
    intent.id,
    { ...cleared, status, amount_received: amount, amount_capturable: 0n },
    now,
  );
  await recordChange(
    tx,
    trail,
    scope,
    { action: 'payment_intent.capture', objectType: 'payment_intent', objectId: intent.id, details: { amount: amount.toString() } },
    [
      { type: 'charge.captured', charge: { before: charge, after: chargeAfter } },
      { type: 'payment_intent.succeeded', paymentIntent: { before: intent, after } },
    ],
    now,
  );
  return {
    intent: after,
    ledger: {
      context: { merchantId: scope.merchantId, livemode: scope.livemode, currency: intent.currency, paymentIntentId: intent.id, chargeId: charge.id },
      transfers: [...captureTransfers(charge.id, amount, charge.authorization_increments), ...(availableImmediately ? settlementTransfers(`${charge.id}:settlement`, amount) : [])],
    },
  };
}

/** Captures an authorized PaymentIntent, fully or partly; a partial capture releases the rest of the hold. */
export async function capturePaymentIntent(
  services: Services,
  ctx: RequestContext,
  id: string,
  params: CaptureParams,
  respond: Respond,
  options: CaptureOptions = {},
): Promise<Outcome> {
  if (params.final_capture === false) {
    throw new CofferError('parameter_invalid', 'final_capture=false asks for several captures of one payment (multicapture), which Coffer does not do: capture once, with amount_to_capture; the rest is released.', { param: 'final_capture' });
  }
  const scope = { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
  const now = new Date(services.clock.nowMs());
  const connector = services.connectors.card(scope.livemode);
  const started = await inTransaction(services.db, (tx) => startCapture(tx, ctx, scope, id, params, respond, now, options));
  if (started.kind === 'finished') return started.outcome;
  assert(started.charge.provider_reference !== null, 'an authorized charge has the acquirer reference');
  const currency = findCurrency(started.intent.currency);
  assert(currency !== undefined, 'a stored currency is known');
  const result = await connector.capture({
    idempotencyKey: captureKey(started.charge.id),
    providerReference: started.charge.provider_reference,
    amountMinor: started.amount,
    currency,
  });
  services.faults.reach('capture.after_provider_call');
  if (result.status === 'unknown') throw outcomeUnknownError('capture');
  const outcome = await recordCaptureOutcome(services, scope, started.intent.id, result, requestTrail(ctx), respond);
  assert(outcome !== undefined, 'a request always gets a response');
  return outcome;
}
