import type { RefundRequest, RefundResult, RefundSyncResult } from '../connectors/connector.ts';
import { isWalletType } from './wallet-payments.ts';
import { findCurrency } from '../domain/currency.ts';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { chargeFunds, refundTransfers } from '../domain/ledger.ts';
import { checkAmountStep } from '../domain/money.ts';
import { limits } from '../limits.ts';
import { assert } from '../platform/assert.ts';
import { newId } from '../platform/random.ts';
import type { ChargeRow, RefundRow } from '../store/database.ts';
import type { Outcome, RequestContext, Services, Tx } from './context.ts';
import { finishWithLedger } from './ledger-work.ts';
import { checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { lockCharge, recordChange, type Scope } from './payment-intent-records.ts';
import { outcomeUnknownError } from './record-attempt-outcome.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail, type Trail } from './trail.ts';

export interface CreateRefundParams {
  payment_intent?: string;
  charge?: string;
  amount?: number;
  reason?: 'duplicate' | 'fraudulent' | 'requested_by_customer';
  metadata?: Record<string, string> | '';
}

/**
 * A staff member's refund that would take the payment's refunded total above the four-eyes threshold: decided on
 * the locked charge, so that refunds made at once cannot add up past it, and answered by asking for an approval.
 */
export class RefundNeedsApproval extends Error {
  constructor(readonly refundedTotal: bigint) {
    super(`the refunded total would be ${refundedTotal}, above the four-eyes threshold`);
  }
}

/** Renders a refund as the response of the request that made it, and stores it with the idempotency key. */
export type RespondRefund = ((tx: Tx, refund: RefundRow) => Promise<Outcome>) & {
  /** The response shows what the ledger writes (the refund's balance transaction): rendered after it. */
  readonly rendersAfterChange?: boolean;
};

/** The captured charge a refund request names, by PaymentIntent or by charge id. */
async function chargeToRefund(tx: Tx, scope: Scope, params: CreateRefundParams): Promise<ChargeRow> {
  let chargeId = params.charge;
  if (params.payment_intent !== undefined) {
    const intent = await tx.selectFrom('payment_intents').select(['id', 'status', 'latest_charge_id'])
      .where('id', '=', params.payment_intent).where('merchant_id', '=', scope.merchantId)
      .where('livemode', '=', scope.livemode).executeTakeFirst();
    if (intent === undefined) throw resourceMissing('payment_intent', params.payment_intent, 'payment_intent');
    if (intent.status === 'requires_capture') {
      throw new CofferError('charge_not_refundable', 'This PaymentIntent has not been captured: cancel it to release the authorization instead of refunding it.', { param: 'payment_intent' });
    }
    // A PaymentIntent canceled after authorizing goes on to its charge, whose released authorization Stripe shows as
    // refunded: the same answer whether the refund names the PaymentIntent or the charge.
    const released = intent.status === 'canceled' && intent.latest_charge_id !== null
      && (await tx.selectFrom('charges').select('id').where('id', '=', intent.latest_charge_id).where('captured', '=', false)
        .where('amount_released', '>', 0n).executeTakeFirst()) !== undefined;
    if ((intent.status !== 'succeeded' && !released) || intent.latest_charge_id === null) {
      throw new CofferError('charge_not_refundable', `This PaymentIntent does not have a successful charge to refund (status ${intent.status}).`, { param: 'payment_intent' });
    }
    if (chargeId !== undefined && chargeId !== intent.latest_charge_id) {
      throw new CofferError('parameter_invalid', `Charge ${chargeId} does not belong to PaymentIntent ${intent.id}.`, { param: 'charge' });
    }
    chargeId = intent.latest_charge_id;
  }
  if (chargeId === undefined) {
    throw new CofferError('parameter_missing', 'Missing required param: payment_intent.', { param: 'payment_intent' });
  }
  const found = await tx.selectFrom('charges').select('id').where('id', '=', chargeId)
    .where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode).executeTakeFirst();
  if (found === undefined) throw resourceMissing('charge', chargeId, 'charge');
  const charge = await lockCharge(tx, chargeId);
  // A dispute pays the shopper back through the card network; refunding as well would pay twice. Only an inquiry
  // closed without escalation (warning_closed) leaves the charge refundable.
  const dispute = charge.disputed
    ? await tx.selectFrom('disputes').select('id').where('charge_id', '=', charge.id).where('status', '!=', 'warning_closed').executeTakeFirst()
    : undefined;
  if (dispute !== undefined) {
    throw new CofferError('charge_disputed', `Charge ${charge.id} has been disputed; refunding it as well would pay the shopper twice.`, { chargeId: charge.id });
  }
  if (!charge.captured && charge.amount_released === charge.amount) {
    // Canceled before capture: the whole authorization went back to the shopper, which Stripe shows as refunded.
    throw new CofferError('charge_already_refunded', `Charge ${charge.id} has already been refunded: its authorization was released when the payment was canceled.`, { chargeId: charge.id });
  }
  if (!charge.captured) {
    throw new CofferError('charge_not_refundable', `Charge ${charge.id} has not been captured, so there is nothing to refund.`, { param: 'charge' });
  }
  return charge;
}

function refundAmount(charge: ChargeRow, requested: number | undefined): bigint {
  // Refunds still in progress count as refunded, as Stripe counts pending refunds in amount_refunded.
  const refundable = charge.amount_captured - charge.amount_refunded - charge.amount_refunding;
  if (refundable <= 0n) {
    const inProgress = charge.amount_refunding > 0n ? ` (${charge.amount_refunding} of it by refunds still in progress)` : '';
    throw new CofferError('charge_already_refunded', `Charge ${charge.id} has already been refunded${inProgress}.`, {
      chargeId: charge.id, mayPassLater: charge.amount_refunding > 0n && charge.amount_captured > charge.amount_refunded,
    });
  }
  const amount = requested === undefined ? refundable : BigInt(requested);
  if (amount <= 0n) throw new CofferError('parameter_invalid_integer', 'This value must be greater than or equal to 1.', { param: 'amount' });
  if (amount > refundable) {
    // Refunds in progress may still fail, and give back what they hold.
    const settledRefundable = charge.amount_captured - charge.amount_refunded;
    const inProgress = charge.amount_refunding > 0n ? `; ${charge.amount_refunding} more is held by refunds still in progress` : '';
    throw new CofferError(
      'amount_too_large',
      `Refund amount (${amount}) is greater than unrefunded amount on charge (${refundable})${inProgress}.`,
      { param: 'amount', chargeId: charge.id, mayPassLater: amount <= settledRefundable && charge.amount_refunding > 0n },
    );
  }
  const currency = findCurrency(charge.currency);
  assert(currency !== undefined, 'a stored currency is known');
  checkAmountStep(amount, currency, 'amount');
  return amount;
}

type StartedRefund = { kind: 'send'; refund: RefundRow; charge: ChargeRow } | { kind: 'finished'; outcome: Outcome };

/**
 * Phase 1: lock the charge and reserve the amount (`amount_refunding`), so that concurrent refunds can never
 * add up to more than was captured, and record the refund as pending; a retry of the same request resumes it.
 */
async function startRefund(tx: Tx, ctx: RequestContext, params: CreateRefundParams, respond: RespondRefund, now: Date, refundedAtMost?: bigint): Promise<StartedRefund> {
  const scope = { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
  const claim = ctx.idempotency;
  if (claim !== undefined) {
    // Held until this transaction ends: a retry that took the key over while this request stalled answers for it.
    await claim.hold(tx);
    const earlier = await tx.selectFrom('refunds').selectAll().where('idempotency_key_id', '=', claim.rowId).executeTakeFirst();
    if (earlier !== undefined) {
      if (earlier.status !== 'pending') return { kind: 'finished', outcome: await respond(tx, earlier) };
      return { kind: 'send', refund: earlier, charge: await lockCharge(tx, earlier.charge_id) };
    }
  }
  const charge = await chargeToRefund(tx, scope, params);
  const amount = refundAmount(charge, params.amount);
  const refundedTotal = charge.amount_refunded + charge.amount_refunding + amount;
  if (refundedAtMost !== undefined && refundedTotal > refundedAtMost) throw new RefundNeedsApproval(refundedTotal);
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const refund = await tx.insertInto('refunds').values({
    id: newId('re'),
    merchant_id: scope.merchantId,
    livemode: scope.livemode,
    created_at: now,
    updated_at: now,
    charge_id: charge.id,
    payment_intent_id: charge.payment_intent_id,
    customer_id: charge.customer_id,
    payment_method_id: charge.payment_method_id,
    amount,
    currency: charge.currency,
    status: 'pending',
    reason: params.reason ?? null,
    failure_reason: null,
    metadata: JSON.stringify(metadata),
    provider_reference: null,
    idempotency_key_id: claim?.reference() ?? null,
    debited_account: null,
  }).returningAll().executeTakeFirstOrThrow();
  const reserved = await tx.updateTable('charges').set({ amount_refunding: charge.amount_refunding + amount, updated_at: now })
    .where('id', '=', charge.id).returningAll().executeTakeFirstOrThrow();
  await recordChange(tx, requestTrail(ctx), scope, { action: 'refund.create', objectType: 'refund', objectId: refund.id, details: { charge: charge.id, amount: amount.toString() } },
    [{ type: 'refund.created', refund: { after: refund } }], now);
  return { kind: 'send', refund, charge: reserved };
}

/**
 * Records the acquirer's answer to a refund, once: the refund's status, the charge's refunded amount, and on
 * success the ledger transfer out of the merchant's pending funds (or available ones, once settled).
 */
export async function recordRefundOutcome(
  services: Services,
  refundId: string,
  result: Exclude<RefundResult, { status: 'unknown' }>,
  trail: Trail,
  respond: RespondRefund | undefined,
): Promise<Outcome | undefined> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const found = await tx.selectFrom('refunds').select('charge_id').where('id', '=', refundId).executeTakeFirstOrThrow();
    const charge = await lockCharge(tx, found.charge_id);
    const refund = await tx.selectFrom('refunds').selectAll().where('id', '=', refundId).forUpdate().executeTakeFirstOrThrow();
    if (refund.status !== 'pending') return respond?.(tx, refund);
    const scope = { merchantId: refund.merchant_id, livemode: refund.livemode };
    const succeeded = result.status === 'succeeded';
    const from = chargeFunds(charge);
    const refundAfter = await tx.updateTable('refunds').set({
      status: result.status,
      provider_reference: result.providerReference,
      failure_reason: result.status === 'failed' ? result.failureReason : null,
      debited_account: succeeded ? from : null,
      updated_at: now,
    }).where('id', '=', refund.id).returningAll().executeTakeFirstOrThrow();
    const chargeAfter = await tx.updateTable('charges').set({
      amount_refunding: charge.amount_refunding - refund.amount,
      amount_refunded: succeeded ? charge.amount_refunded + refund.amount : charge.amount_refunded,
      updated_at: now,
    }).where('id', '=', charge.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, trail, scope,
      { action: succeeded ? 'refund.succeed' : 'refund.fail', objectType: 'refund', objectId: refund.id },
      succeeded
        ? [{ type: 'refund.updated', refund: { before: refund, after: refundAfter } }, { type: 'charge.refunded', charge: { before: charge, after: chargeAfter } }]
        : [{ type: 'refund.updated', refund: { before: refund, after: refundAfter } }, { type: 'refund.failed', refund: { after: refundAfter } }],
      now);
    const finish = () => respond?.(tx, refundAfter);
    if (!succeeded) return finish();
    const ledger = {
      context: { ...scope, currency: refund.currency, paymentIntentId: refund.payment_intent_id, chargeId: charge.id },
      transfers: refundTransfers(refund.id, refund.amount, from),
    };
    return finishWithLedger(tx, ledger, finish, respond?.rendersAfterChange === true);
  });
}

export function refundRequest(refund: RefundRow, charge: ChargeRow): RefundRequest {
  const currency = findCurrency(refund.currency);
  assert(currency !== undefined && charge.provider_reference !== null, 'a refunded charge has its acquirer reference');
  return {
    idempotencyKey: refund.id,
    reference: refund.id,
    // Wallet providers know the payment by Coffer's reference (out_trade_no); the card acquirer by its own id.
    paymentReference: isWalletType(charge.provider) ? charge.id : charge.provider_reference,
    amountMinor: refund.amount,
    currency,
  };
}

/** Sends a refund to the provider that took the payment. */
export async function refundAtProvider(services: Services, refund: RefundRow, charge: ChargeRow): Promise<RefundResult> {
  const request = refundRequest(refund, charge);
  if (!isWalletType(charge.provider)) return services.connectors.card(charge.livemode).refund(request);
  return services.connectors.wallet(charge.provider, charge.livemode).refund({ ...request, totalMinor: charge.amount });
}

/**
 * What became of a refund at the provider. The card acquirer can close a key it never received (`abandon`);
 * wallet providers cannot, so a refund they never received is sent again with the same key, which refunds once.
 */
export async function syncRefundAtProvider(services: Services, refund: RefundRow, charge: ChargeRow, abandon: boolean): Promise<RefundSyncResult> {
  const request = refundRequest(refund, charge);
  if (!isWalletType(charge.provider)) return services.connectors.card(charge.livemode).syncRefund(request, abandon);
  const wallet = services.connectors.wallet(charge.provider, charge.livemode);
  const found = await wallet.syncRefund({ ...request, totalMinor: charge.amount });
  return found.status === 'not_found' && abandon ? wallet.refund({ ...request, totalMinor: charge.amount }) : found;
}

/** Refunds a captured payment, fully or partly, through the acquirer; never more than is left to refund. */
/** `refundedAtMost`: a staff refund's four-eyes threshold on the payment's refunded total (RefundNeedsApproval). */
export async function createRefund(services: Services, ctx: RequestContext, params: CreateRefundParams, respond: RespondRefund, refundedAtMost?: bigint): Promise<Outcome> {
  const now = new Date(services.clock.nowMs());
  const started = await inTransaction(services.db, (tx) => startRefund(tx, ctx, params, respond, now, refundedAtMost));
  if (started.kind === 'finished') return started.outcome;
  const outcome = await sendRefund(services, ctx, started.refund, started.charge, respond);
  assert(outcome !== undefined, 'a request always gets a response');
  return outcome;
}

export interface PreparedRefund {
  refund: RefundRow;
  charge: ChargeRow;
}

/**
 * Phase 1 alone, in the caller's transaction: the amount reserved and the refund recorded as pending. Once that
 * commits, the refund is bound to happen: `sendRefund` now, or the recovery job (recover-refunds.ts) if the
 * process stops first. A staff approval commits its decision and this together.
 */
export async function prepareRefund(tx: Tx, ctx: RequestContext, params: CreateRefundParams, now: Date): Promise<PreparedRefund> {
  assert(ctx.idempotency === undefined, 'a prepared refund is not an API request with an idempotency key');
  const started = await startRefund(tx, ctx, params, async () => ({ statusCode: 200, body: '' }), now);
  assert(started.kind === 'send', 'without an idempotency key a refund is always new');
  return { refund: started.refund, charge: started.charge };
}

/** Phase 2: asks the acquirer and records its answer (an unknown answer leaves the refund to the recovery job). */
export async function sendRefund(services: Services, ctx: RequestContext, refund: RefundRow, charge: ChargeRow, respond: RespondRefund | undefined): Promise<Outcome | undefined> {
  const result = await refundAtProvider(services, refund, charge);
  if (result.status === 'unknown') {
    // Wallet providers settle refunds later (WeChat Pay answers PROCESSING): the refund is answered as pending, as
    // Stripe does, and the recovery job asks the provider until it ends.
    if (isWalletType(charge.provider) && respond !== undefined) return inTransaction(services.db, (tx) => respond(tx, refund));
    throw outcomeUnknownError('refund');
  }
  return recordRefundOutcome(services, refund.id, result, requestTrail(ctx), respond);
}
