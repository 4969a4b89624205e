import type { Approval, Decline } from '../connectors/connector.ts';
import { CofferError } from '../domain/errors.ts';
import { authorizationTransfers, settlementTransfers } from '../domain/ledger.ts';
import { limits } from '../limits.ts';
import type { ChargeCardDetails, ChargeOutcome } from '../objects/charge.ts';
import type { StoredPaymentError } from '../objects/payment-intent.ts';
import { assert } from '../platform/assert.ts';
import type { ChargeRow, PaymentIntentRow } from '../store/database.ts';
import { finishWithLedger, type LedgerWork } from './ledger-work.ts';
import type { Outcome, Services, Tx } from './context.ts';
import {
  lockCharge,
  lockPaymentIntent,
  nextStatus,
  recordChange,
  updatePaymentIntentRow,
  type PaymentEvent,
  type Scope,
} from './payment-intent-records.ts';
import type { Respond } from './respond.ts';
import { inTransaction } from './transaction.ts';
import type { Trail } from './trail.ts';

/** How an attempt ended at the provider; `lost` means the provider never received it (and now never will). */
export type AttemptResolution = Approval | Decline | { status: 'lost' };

export interface AttemptRefs {
  scope: Scope;
  paymentIntentId: string;
  chargeId: string;
}

function approvedOutcome(): ChargeOutcome {
  return {
    network_status: 'approved_by_network',
    reason: null,
    type: 'authorized',
    seller_message: 'Payment complete.',
    risk_level: 'not_assessed',
    advice_code: null,
  };
}

function declinedOutcome(decline: Decline): ChargeOutcome {
  if (decline.blocked) {
    return {
      network_status: 'not_sent_to_network',
      reason: 'highest_risk_level',
      type: 'blocked',
      seller_message: 'Coffer blocked this payment as too risky.',
      risk_level: 'highest',
      advice_code: null,
    };
  }
  return {
    network_status: decline.networkStatus,
    reason: decline.declineCode,
    type: 'issuer_declined',
    seller_message:
      decline.declineCode === 'generic_decline'
        ? 'The bank did not return any further details with this decline.'
        : `The bank returned the decline code \`${decline.declineCode}\`.`,
    risk_level: 'not_assessed',
    advice_code: decline.adviceCode,
  };
}

const lostDecline: Decline = {
  status: 'declined',
  providerReference: null,
  code: 'processing_error',
  declineCode: 'processing_error',
  message: 'An error occurred while processing your card. No money was taken. Try again in a little bit.',
  param: null,
  adviceCode: 'try_again_later',
  networkStatus: 'not_sent_to_network',
  blocked: false,
};

async function recordApproval(
  tx: Tx,
  trail: Trail,
  intent: PaymentIntentRow,
  charge: ChargeRow,
  approval: Approval,
  now: Date,
): Promise<{ intent: PaymentIntentRow; ledger: LedgerWork }> {
  const captured = approval.status === 'captured';
  const status = nextStatus(intent, captured ? 'authorized_and_captured' : 'authorized');
  const details = charge.payment_method_details as unknown as ChargeCardDetails;
  const chargeAfter = await tx
    .updateTable('charges')
    .set({
      status: 'succeeded',
      updated_at: now,
      provider_reference: approval.providerReference,
      amount_authorized: charge.amount,
      amount_captured: captured ? charge.amount : 0n,
      captured,
      capture_before: captured ? null : new Date(now.getTime() + limits.authorizationHoldMs),
      available_on: captured && !approval.availableImmediately ? new Date(now.getTime() + limits.settlementDelayMs) : null,
      settled: captured && approval.availableImmediately,
      payment_method_details: JSON.stringify({
        ...details,
        authorization_code: approval.authorizationCode,
        network_transaction_id: approval.networkTransactionId,
        cvc_check: approval.cvcCheck,
      }),
      outcome: JSON.stringify(approvedOutcome()),
    })
    .where('id', '=', charge.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  const intentAfter = await updatePaymentIntentRow(
    tx,
    intent.id,
    { status, amount_capturable: captured ? 0n : charge.amount, amount_received: captured ? charge.amount : 0n },
    now,
  );
  const transfers = authorizationTransfers(charge.id, charge.amount, captured);
  if (captured && approval.availableImmediately) transfers.push(...settlementTransfers(`${charge.id}:settlement`, charge.amount));
  const events: PaymentEvent[] = [
    { type: 'charge.succeeded', charge: { after: chargeAfter } },
    {
      type: captured ? 'payment_intent.succeeded' : 'payment_intent.amount_capturable_updated',
      paymentIntent: { before: intent, after: intentAfter },
    },
  ];
  await recordChange(
    tx,
    trail,
    { merchantId: intent.merchant_id, livemode: intent.livemode },
    { action: captured ? 'charge.capture' : 'charge.authorize', objectType: 'charge', objectId: charge.id, details: { amount: charge.amount.toString(), currency: charge.currency } },
    events,
    now,
  );
  return {
    intent: intentAfter,
    ledger: {
      context: { merchantId: intent.merchant_id, livemode: intent.livemode, currency: intent.currency, paymentIntentId: intent.id, chargeId: charge.id },
      transfers,
    },
  };
}

async function recordDecline(
  tx: Tx,
  trail: Trail,
  intent: PaymentIntentRow,
  charge: ChargeRow,
  decline: Decline,
  now: Date,
): Promise<{ intent: PaymentIntentRow; error: CofferError }> {
  const status = nextStatus(intent, 'attempt_failed');
  const chargeAfter = await tx
    .updateTable('charges')
    .set({
      status: 'failed',
      updated_at: now,
      provider_reference: decline.providerReference,
      failure_code: decline.code,
      failure_message: decline.message,
      decline_code: decline.declineCode,
      outcome: JSON.stringify(declinedOutcome(decline)),
    })
    .where('id', '=', charge.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  const stored: StoredPaymentError = {
    type: 'card_error',
    code: decline.code,
    decline_code: decline.declineCode,
    message: decline.message,
    charge: charge.id,
    payment_method_id: charge.payment_method_id,
    advice_code: decline.adviceCode,
    ...(decline.param === null ? {} : { param: decline.param }),
  };
  const intentAfter = await updatePaymentIntentRow(
    tx,
    intent.id,
    { status, payment_method_id: null, last_payment_error: JSON.stringify(stored) },
    now,
  );
  await recordChange(
    tx,
    trail,
    { merchantId: intent.merchant_id, livemode: intent.livemode },
    { action: 'charge.fail', objectType: 'charge', objectId: charge.id, details: { decline_code: decline.declineCode } },
    [
      { type: 'charge.failed', charge: { after: chargeAfter } },
      { type: 'payment_intent.payment_failed', paymentIntent: { before: intent, after: intentAfter } },
    ],
    now,
  );
  return { intent: intentAfter, error: attemptError(chargeAfter) };
}

/** The card error a failed attempt is reported with, now or when a retry replays it. */
export function attemptError(charge: ChargeRow): CofferError {
  assert(charge.status === 'failed' && charge.failure_code !== null, 'only a failed attempt has an error');
  const outcome = charge.outcome as ChargeOutcome | null;
  const stored = declineCodes.find((code) => code === charge.failure_code) ?? 'card_declined';
  return new CofferError(stored, charge.failure_message ?? 'Your card was declined.', {
    declineCode: charge.decline_code ?? undefined,
    chargeId: charge.id,
    paymentMethodId: charge.payment_method_id,
    adviceCode: outcome?.advice_code ?? undefined,
    param: declineParams[charge.failure_code],
  });
}

const declineParams: Record<string, string> = { expired_card: 'exp_month', incorrect_cvc: 'cvc', incorrect_number: 'number' };
const declineCodes = ['card_declined', 'expired_card', 'incorrect_cvc', 'incorrect_number', 'processing_error'] as const;

/**
 * Records how an attempt ended, once: the charge, the PaymentIntent's new status, the ledger transfers, events
 * and audit, and (for a request) the response, all in one transaction. If the attempt was already recorded (by
 * the recovery job or a concurrent retry) nothing changes and the current state is answered.
 */
export async function recordAttemptOutcome(
  services: Services,
  refs: AttemptRefs,
  resolution: AttemptResolution,
  trail: Trail,
  respond: Respond | undefined,
): Promise<Outcome | undefined> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockPaymentIntent(tx, refs.scope, refs.paymentIntentId);
    const charge = await lockCharge(tx, refs.chargeId);
    assert(charge.payment_intent_id === intent.id, 'the charge belongs to the PaymentIntent');
    if (charge.status !== 'pending') {
      return respond === undefined ? undefined : respond(tx, { paymentIntent: intent });
    }
    if (resolution.status === 'declined' || resolution.status === 'lost') {
      const decline = resolution.status === 'lost' ? lostDecline : resolution;
      const { intent: after, error } = await recordDecline(tx, trail, intent, charge, decline, now);
      return respond === undefined ? undefined : respond(tx, { paymentIntent: after, error });
    }
    const { intent: after, ledger } = await recordApproval(tx, trail, intent, charge, resolution, now);
    return finishWithLedger(tx, ledger, () => respond?.(tx, { paymentIntent: after }));
  });
}

export function outcomeUnknownError(): CofferError {
  return new CofferError(
    'service_unavailable',
    'The card acquirer did not answer in time, so the outcome of this payment is not known yet. Retry the request ' +
      'with the same Idempotency-Key, or retrieve the PaymentIntent later: it will never be charged twice.',
    { retryAfterSeconds: 1 },
  );
}
