import type { CurrencyInfo } from '../../domain/currency.ts';
import { assert } from '../../platform/assert.ts';
import type { Approval, AuthorizeRequest, AuthorizeResult, Decline, DeclineErrorCode, RefundResult } from '../connector.ts';
import type { AcquirerAuthorizeRequest, AcquirerDecline, AcquirerPayment, AcquirerRefund } from './wire.ts';

/**
 * Conversions between Coffer's types and the acquirer's wire format. The acquirer takes ISO 4217 minor units;
 * Coffer's amounts are in the API's minor units, which differ only for ISK and UGX (two API decimals, zero ISO).
 */
export function toAcquirerAmount(amountMinor: bigint, currency: CurrencyInfo): number {
  const shift = currency.apiExponent - currency.isoExponent;
  const divisor = 10n ** BigInt(shift);
  assert(amountMinor % divisor === 0n, 'amount was validated as a multiple of the currency step');
  return Number(amountMinor / divisor);
}

export function fromAcquirerAmount(amount: number, currency: CurrencyInfo): bigint {
  return BigInt(amount) * 10n ** BigInt(currency.apiExponent - currency.isoExponent);
}

export function toAuthorizeRequest(request: AuthorizeRequest): AcquirerAuthorizeRequest {
  return {
    idempotency_key: request.idempotencyKey,
    reference: request.reference,
    amount: toAcquirerAmount(request.amountMinor, request.currency),
    currency: request.currency.code,
    capture: request.capture,
    card: {
      number: request.card.number.reveal(),
      exp_month: request.card.expMonth,
      exp_year: request.card.expYear,
    },
    statement_descriptor: request.statementDescriptor,
  };
}

const declineCodes: readonly DeclineErrorCode[] = [
  'card_declined',
  'expired_card',
  'incorrect_cvc',
  'incorrect_number',
  'processing_error',
];

function cvcCheck(value: string | null): Approval['cvcCheck'] {
  switch (value) {
    case 'pass':
    case 'fail':
    case 'unavailable':
    case 'unchecked':
    case null:
      return value;
    default:
      return null;
  }
}

function decline(payment: AcquirerPayment, wire: AcquirerDecline): Decline | { status: 'unknown'; reason: string } {
  const code = declineCodes.find((known) => known === wire.code);
  if (code === undefined) return { status: 'unknown', reason: `unrecognized decline code ${wire.code}` };
  if (wire.network_status !== 'declined_by_network' && wire.network_status !== 'not_sent_to_network') {
    return { status: 'unknown', reason: `unrecognized network status ${wire.network_status}` };
  }
  return {
    status: 'declined',
    providerReference: payment.id,
    code,
    declineCode: wire.decline_code,
    message: wire.message,
    param: wire.param,
    adviceCode: wire.advice_code,
    networkStatus: wire.network_status,
    blocked: wire.blocked,
  };
}

/**
 * Maps the acquirer's record to Coffer's result, checking that it is the attempt we sent (reference, amount and
 * currency echoed back). Every acquirer status is handled; one this code does not know is an unknown outcome,
 * to be looked at, never a guess.
 */
export function toAuthorizeResult(
  payment: AcquirerPayment,
  expected: { reference: string; amountMinor: bigint; currency: CurrencyInfo },
): AuthorizeResult {
  if (payment.status === 'abandoned') return { status: 'unknown', reason: 'the attempt was abandoned' };
  const amount = fromAcquirerAmount(payment.amount, expected.currency);
  if (payment.reference !== expected.reference || amount !== expected.amountMinor || payment.currency !== expected.currency.code) {
    return { status: 'unknown', reason: `acquirer echoed ${payment.reference} ${payment.amount} ${payment.currency}` };
  }
  switch (payment.status) {
    case 'authorized':
    case 'captured':
    case 'voided': {
      if (payment.authorization_code === null || payment.network_transaction_id === null) {
        return { status: 'unknown', reason: 'approval without an authorization code' };
      }
      return {
        status: payment.status === 'captured' ? 'captured' : 'authorized',
        providerReference: payment.id,
        amountMinor: amount,
        authorizationCode: payment.authorization_code,
        networkTransactionId: payment.network_transaction_id,
        cvcCheck: cvcCheck(payment.cvc_check),
        availableImmediately: payment.available_immediately,
      };
    }
    case 'declined':
      return payment.decline === null
        ? { status: 'unknown', reason: 'decline without its reason' }
        : decline(payment, payment.decline);
    default:
      return { status: 'unknown', reason: `unrecognized acquirer status ${payment.status}` };
  }
}


/** Maps the acquirer's refund record, checking it is the refund we asked for. */
export function toRefundResult(
  refund: AcquirerRefund,
  expected: { reference: string; amountMinor: bigint; currency: CurrencyInfo },
): RefundResult {
  if (refund.reference !== expected.reference || fromAcquirerAmount(refund.amount, expected.currency) !== expected.amountMinor) {
    return { status: 'unknown', reason: `acquirer echoed refund ${refund.reference} ${refund.amount}` };
  }
  switch (refund.status) {
    case 'succeeded':
      return { status: 'succeeded', providerReference: refund.id };
    case 'failed':
      return { status: 'failed', providerReference: refund.id, failureReason: refund.failure_reason ?? 'unknown' };
    default:
      return { status: 'unknown', reason: `unrecognized refund status ${refund.status}` };
  }
}
