import type { CurrencyInfo } from '../../domain/currency.ts';
import { assert } from '../../platform/assert.ts';
import type {
  Approval,
  AuthorizeRequest,
  AuthorizeResult,
  Decline,
  DeclineErrorCode,
  IncrementRequest,
  IncrementResult,
  RefundResult,
  ThreeDSecureResult,
} from '../connector.ts';
import type { AcquirerAuthorizeRequest, AcquirerDecline, AcquirerIncrement, AcquirerPayment, AcquirerRefund, AcquirerThreeDSecure } from './wire.ts';

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
    three_d_secure: request.threeDSecure === undefined ? null : {
      request: request.threeDSecure.request,
      return_url: request.threeDSecure.returnUrl,
      card_set_up: request.threeDSecure.cardSetUp,
      ...(request.threeDSecure.offSession === true ? { off_session: true } : {}),
      ...(request.threeDSecure.noChallenge === true ? { no_challenge: true } : {}),
    },
    ...(request.incrementalAuthorization === true ? { incremental_authorization: true } : {}),
  };
}

const declineCodes: readonly DeclineErrorCode[] = [
  'card_declined',
  'authentication_required',
  'expired_card',
  'incorrect_cvc',
  'incorrect_number',
  'processing_error',
  'payment_intent_authentication_failure',
];

/** EMV transStatus values and what they mean for the charge; any other value is an outcome to look at. */
const threeDSecureResults: Readonly<Record<string, ThreeDSecureResult['result']>> = {
  Y: 'authenticated',
  A: 'attempt_acknowledged',
  N: 'failed',
  U: 'not_supported',
  R: 'rejected',
};

/**
 * Whether fraud-chargeback liability moved to the issuer, by the electronic commerce indicator: authenticated or
 * attempted (Visa-style 05/06, Mastercard 02/01), or not (07/00).
 */
const liabilityShiftByEci: Readonly<Record<string, boolean>> = {
  '05': true, '06': true, '07': false, '02': true, '01': true, '00': false,
};

function knownValue<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

type Mapped<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The acquirer's 3-D Secure record as Coffer's result; undefined when 3-D Secure did not run. */
function threeDSecureResult(wire: AcquirerThreeDSecure | null | undefined): Mapped<ThreeDSecureResult | undefined> {
  if (wire === null || wire === undefined) return { ok: true, value: undefined };
  const result = knownValue(threeDSecureResults, wire.trans_status);
  const liabilityShift = knownValue(liabilityShiftByEci, wire.eci);
  if (result === undefined) return { ok: false, reason: `unrecognized 3-D Secure transStatus ${wire.trans_status}` };
  if (liabilityShift === undefined) return { ok: false, reason: `unrecognized 3-D Secure ECI ${wire.eci}` };
  if (wire.flow !== 'frictionless' && wire.flow !== 'challenge') return { ok: false, reason: `unrecognized 3-D Secure flow ${wire.flow}` };
  if (wire.version !== '2.2.0') return { ok: false, reason: `unrecognized 3-D Secure version ${wire.version}` };
  const vouched = result === 'authenticated' || result === 'attempt_acknowledged';
  if (vouched !== (wire.authentication_value !== null) || vouched !== liabilityShift) {
    const value = wire.authentication_value === null ? 'without' : 'with';
    return { ok: false, reason: `3-D Secure ${wire.trans_status} with ECI ${wire.eci}, ${value} an authentication value, does not hold together` };
  }
  return {
    ok: true,
    value: {
      result,
      flow: wire.flow,
      version: wire.version,
      eci: wire.eci,
      authenticationValue: wire.authentication_value,
      dsTransactionId: wire.ds_trans_id,
      liabilityShift,
    },
  };
}

/** A check's result as the acquirer names it (security code or address), or null for one it does not know. */
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

function decline(
  payment: AcquirerPayment,
  wire: AcquirerDecline,
  threeDSecure: ThreeDSecureResult | undefined,
): Decline | { status: 'unknown'; reason: string } {
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
    cvcCheck: cvcCheck(payment.cvc_check),
    ...(threeDSecure === undefined ? {} : { threeDSecure }),
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
  const threeDSecure = threeDSecureResult(payment.three_d_secure);
  if (!threeDSecure.ok) return { status: 'unknown', reason: threeDSecure.reason };
  switch (payment.status) {
    case 'requires_action': {
      const redirectUrl = payment.next_action?.redirect_url;
      if (redirectUrl === undefined) return { status: 'unknown', reason: 'requires_action without its redirect URL' };
      return { status: 'requires_action', providerReference: payment.id, redirectUrl };
    }
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
        addressLine1Check: cvcCheck(payment.address_line1_check ?? null),
        addressPostalCodeCheck: cvcCheck(payment.address_postal_code_check ?? null),
        availableImmediately: payment.available_immediately,
        incrementalAuthorization: payment.incremental_authorization === 'available',
        ...(threeDSecure.value === undefined ? {} : { threeDSecure: threeDSecure.value }),
      };
    }
    case 'declined':
      return payment.decline === null
        ? { status: 'unknown', reason: 'decline without its reason' }
        : decline(payment, payment.decline, threeDSecure.value);
    default:
      return { status: 'unknown', reason: `unrecognized acquirer status ${payment.status}` };
  }
}

/**
 * Maps the issuer's answer to an increment, checking it is the payment and amount we asked about: approved at the
 * new total, or declined with the hold unchanged and the issuer's reason.
 */
export function toIncrementResult(answer: AcquirerIncrement, request: IncrementRequest): IncrementResult {
  if (answer.payment !== request.providerReference) return { status: 'unknown', reason: `acquirer answered for payment ${answer.payment}` };
  const amount = fromAcquirerAmount(answer.amount, request.currency);
  switch (answer.status) {
    case 'approved':
      return amount === request.amountMinor ? { status: 'approved', amountMinor: amount } : { status: 'unknown', reason: `acquirer approved ${answer.amount}` };
    case 'declined': {
      const wire = answer.decline;
      if (wire === null) return { status: 'unknown', reason: 'decline without its reason' };
      return { status: 'declined', declineCode: wire.decline_code, message: wire.message, adviceCode: wire.advice_code };
    }
    default:
      return { status: 'unknown', reason: `unrecognized increment status ${String(answer.status)}` };
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
      return { status: 'failed', providerReference: refund.id, failureReason: refundFailureReason(refund.failure_reason ?? 'unknown') };
    default:
      return { status: 'unknown', reason: `unrecognized refund status ${refund.status}` };
  }
}

/** Stripe's values of a refund's `failure_reason`. */
const stripeRefundFailureReasons: ReadonlySet<string> = new Set([
  'lost_or_stolen_card', 'expired_or_canceled_card', 'charge_for_pending_refund_disputed', 'insufficient_funds', 'declined', 'merchant_request', 'unknown',
]);

/**
 * An acquirer's reason for failing a refund as Stripe names it: its own codes for a disputed charge become Stripe's
 * `charge_for_pending_refund_disputed`, and any other code Stripe has no value for is `unknown`.
 */
export function refundFailureReason(code: string): string {
  if (stripeRefundFailureReasons.has(code)) return code;
  return code === 'charge_disputed' ? 'charge_for_pending_refund_disputed' : 'unknown';
}
