/**
 * Operating errors: bad input, declines, state conflicts, providers down. Each has a stable code, a Stripe error
 * type and an HTTP status, all in this one catalog; `docs/errors.md` lists the same codes and a test keeps the two
 * in agreement. Bugs are not here: they are assertions (`platform/assert.ts`).
 */
export type ErrorType = 'api_error' | 'card_error' | 'idempotency_error' | 'invalid_request_error';

interface CatalogEntry {
  type: ErrorType;
  httpStatus: number;
}

export const errorCatalog = {
  // The request itself.
  parameter_unknown: { type: 'invalid_request_error', httpStatus: 400 },
  parameter_missing: { type: 'invalid_request_error', httpStatus: 400 },
  parameter_invalid: { type: 'invalid_request_error', httpStatus: 400 },
  parameter_invalid_integer: { type: 'invalid_request_error', httpStatus: 400 },
  parameter_invalid_empty: { type: 'invalid_request_error', httpStatus: 400 },
  parameters_exclusive: { type: 'invalid_request_error', httpStatus: 400 },
  currency_invalid: { type: 'invalid_request_error', httpStatus: 400 },
  amount_too_small: { type: 'invalid_request_error', httpStatus: 400 },
  amount_too_large: { type: 'invalid_request_error', httpStatus: 400 },
  invalid_charge_amount: { type: 'invalid_request_error', httpStatus: 400 },
  request_body_too_large: { type: 'invalid_request_error', httpStatus: 400 },
  request_body_invalid: { type: 'invalid_request_error', httpStatus: 400 },
  content_type_unsupported: { type: 'invalid_request_error', httpStatus: 400 },
  api_version_invalid: { type: 'invalid_request_error', httpStatus: 400 },
  header_unsupported: { type: 'invalid_request_error', httpStatus: 400 },
  url_unknown: { type: 'invalid_request_error', httpStatus: 404 },
  url_invalid: { type: 'invalid_request_error', httpStatus: 400 },
  // Who is asking.
  api_key_missing: { type: 'invalid_request_error', httpStatus: 401 },
  api_key_invalid: { type: 'invalid_request_error', httpStatus: 401 },
  secret_key_required: { type: 'invalid_request_error', httpStatus: 401 },
  rate_limit: { type: 'invalid_request_error', httpStatus: 429 },
  insufficient_permissions: { type: 'invalid_request_error', httpStatus: 403 },
  raw_card_data_refused: { type: 'invalid_request_error', httpStatus: 403 },
  api_key_address_not_allowed: { type: 'invalid_request_error', httpStatus: 403 },
  request_signature_required: { type: 'invalid_request_error', httpStatus: 401 },
  request_signature_invalid: { type: 'invalid_request_error', httpStatus: 401 },
  request_signature_expired: { type: 'invalid_request_error', httpStatus: 401 },
  request_replayed: { type: 'invalid_request_error', httpStatus: 401 },
  // Staff sign-in, sessions and four-eyes approval (the internal listener).
  authentication_failed: { type: 'invalid_request_error', httpStatus: 401 },
  session_missing: { type: 'invalid_request_error', httpStatus: 401 },
  session_expired: { type: 'invalid_request_error', httpStatus: 401 },
  csrf_token_invalid: { type: 'invalid_request_error', httpStatus: 403 },
  reauthentication_required: { type: 'invalid_request_error', httpStatus: 401 },
  enrollment_link_invalid: { type: 'invalid_request_error', httpStatus: 400 },
  password_too_weak: { type: 'invalid_request_error', httpStatus: 400 },
  password_reused: { type: 'invalid_request_error', httpStatus: 400 },
  staff_email_taken: { type: 'invalid_request_error', httpStatus: 400 },
  approval_self_decision: { type: 'invalid_request_error', httpStatus: 403 },
  approval_unexpected_state: { type: 'invalid_request_error', httpStatus: 400 },
  passkey_invalid: { type: 'invalid_request_error', httpStatus: 400 },
  // The hosted checkout only: the risk engine asks the shopper to confirm a wallet payment first.
  shopper_step_up_required: { type: 'invalid_request_error', httpStatus: 400 },
  checkout_payment_changed: { type: 'invalid_request_error', httpStatus: 400 },
  checkout_discount_used_up: { type: 'invalid_request_error', httpStatus: 400 },
  // Objects and their states.
  resource_missing: { type: 'invalid_request_error', httpStatus: 404 },
  resource_already_exists: { type: 'invalid_request_error', httpStatus: 400 },
  product_has_prices: { type: 'invalid_request_error', httpStatus: 400 },
  payment_intent_unexpected_state: { type: 'invalid_request_error', httpStatus: 400 },
  charge_expired_for_capture: { type: 'invalid_request_error', httpStatus: 400 },
  incremental_authorization_unavailable: { type: 'invalid_request_error', httpStatus: 400 },
  payment_method_unexpected_state: { type: 'invalid_request_error', httpStatus: 400 },
  setup_intent_unexpected_state: { type: 'invalid_request_error', httpStatus: 400 },
  charge_already_refunded: { type: 'invalid_request_error', httpStatus: 400 },
  charge_not_refundable: { type: 'invalid_request_error', httpStatus: 400 },
  refund_unexpected_state: { type: 'invalid_request_error', httpStatus: 400 },
  charge_disputed: { type: 'invalid_request_error', httpStatus: 400 },
  dispute_unexpected_state: { type: 'invalid_request_error', httpStatus: 400 },
  // 429 as at Stripe, whose SDKs retry it (Stripe-Should-Retry).
  lock_timeout: { type: 'invalid_request_error', httpStatus: 429 },
  flow_not_supported: { type: 'invalid_request_error', httpStatus: 400 },
  // Idempotency.
  idempotency_key_reused: { type: 'idempotency_error', httpStatus: 400 },
  idempotency_key_in_use: { type: 'invalid_request_error', httpStatus: 409 },
  idempotency_key_invalid: { type: 'invalid_request_error', httpStatus: 400 },
  // The card network's answers.
  card_declined: { type: 'card_error', httpStatus: 402 },
  authentication_required: { type: 'card_error', httpStatus: 402 },
  expired_card: { type: 'card_error', httpStatus: 402 },
  incorrect_cvc: { type: 'card_error', httpStatus: 402 },
  incorrect_number: { type: 'card_error', httpStatus: 402 },
  invalid_expiry_month: { type: 'card_error', httpStatus: 402 },
  invalid_expiry_year: { type: 'card_error', httpStatus: 402 },
  invalid_cvc: { type: 'card_error', httpStatus: 402 },
  processing_error: { type: 'card_error', httpStatus: 402 },
  payment_intent_authentication_failure: { type: 'invalid_request_error', httpStatus: 400 },
  setup_intent_authentication_failure: { type: 'invalid_request_error', httpStatus: 400 },
  // The merchant's own payment limits.
  payment_limit_exceeded: { type: 'invalid_request_error', httpStatus: 400 },
  // The risk engine's review queue.
  review_closed: { type: 'invalid_request_error', httpStatus: 400 },
  // Hosted checkout.
  checkout_session_not_open: { type: 'invalid_request_error', httpStatus: 400 },
  // Alipay's and WeChat Pay's answers.
  payment_method_provider_decline: { type: 'card_error', httpStatus: 402 },
  payment_intent_payment_attempt_expired: { type: 'invalid_request_error', httpStatus: 400 },
  // Coffer or a provider failed.
  api_error: { type: 'api_error', httpStatus: 500 },
  service_unavailable: { type: 'api_error', httpStatus: 503 },
} as const satisfies Record<string, CatalogEntry>;

export type ErrorCode = keyof typeof errorCatalog;

/**
 * The codes Stripe documents (stripe.com/docs/error-codes), whose `doc_url` points at Stripe's page for them.
 * Coffer's own codes (staff sign-in, request signing, payment limits, …) have no page there, and so no `doc_url`:
 * docs/errors.md explains them.
 */
const stripeDocumentedCodes: ReadonlySet<string> = new Set<ErrorCode>([
  'parameter_unknown', 'parameter_missing', 'parameter_invalid_integer', 'parameter_invalid_empty', 'parameters_exclusive',
  'amount_too_small', 'amount_too_large', 'invalid_charge_amount', 'url_invalid', 'secret_key_required', 'rate_limit',
  'resource_missing', 'resource_already_exists', 'payment_intent_unexpected_state', 'charge_expired_for_capture', 'payment_method_unexpected_state',
  'setup_intent_unexpected_state', 'charge_already_refunded', 'charge_not_refundable', 'charge_disputed', 'lock_timeout',
  'idempotency_key_in_use', 'card_declined', 'authentication_required', 'expired_card', 'incorrect_cvc', 'incorrect_number', 'invalid_expiry_month',
  'invalid_expiry_year', 'invalid_cvc', 'processing_error', 'payment_intent_authentication_failure',
  'setup_intent_authentication_failure', 'payment_method_provider_decline', 'payment_intent_payment_attempt_expired',
]);

/** Stripe's page for a code it documents; undefined for Coffer's own codes. */
export function errorDocUrl(code: string): string | undefined {
  return stripeDocumentedCodes.has(code) ? `https://stripe.com/docs/error-codes/${code.replaceAll('_', '-')}` : undefined;
}

export interface CofferErrorDetails {
  param?: string | undefined;
  declineCode?: string | undefined;
  /** Ids and objects Stripe attaches to some errors (a declined confirmation carries its PaymentIntent). */
  paymentIntentId?: string | undefined;
  chargeId?: string | undefined;
  paymentMethodId?: string | undefined;
  /** The objects themselves, rendered, where Stripe embeds them (a declined confirmation). */
  paymentIntentObject?: Record<string, unknown> | undefined;
  paymentMethodObject?: Record<string, unknown> | undefined;
  /** A declined SetupIntent confirmation carries the SetupIntent, as Stripe's does. */
  setupIntentObject?: Record<string, unknown> | undefined;
  adviceCode?: string | undefined;
  /** Seconds a client should wait before retrying (429, 503). */
  retryAfterSeconds?: number | undefined;
  /** Whether the SDKs should retry on their own (`Stripe-Should-Retry`); true unless said otherwise. */
  shouldRetry?: boolean | undefined;
  /** A valid key refused for this request (permissions, address): the refusal is audited against its merchant. */
  refusedKey?: { keyId: string; merchantId: string; livemode: boolean } | undefined;
  /**
   * A refusal that holds only because of work still in progress (refunds not yet settled, which may still fail):
   * the same request may pass once it ends. A four-eyes approval refused so stays pending.
   */
  mayPassLater?: boolean | undefined;
  /** The id a `resource_missing` error could not find, to tell an unknown id from another merchant's. */
  missingId?: string | undefined;
}

export class CofferError extends Error {
  override readonly name = 'CofferError';
  readonly code: ErrorCode;
  readonly details: CofferErrorDetails;

  constructor(code: ErrorCode, message: string, details: CofferErrorDetails = {}) {
    super(message);
    this.code = code;
    this.details = details;
  }

  get type(): ErrorType {
    return errorCatalog[this.code].type;
  }

  get httpStatus(): number {
    return errorCatalog[this.code].httpStatus;
  }
}

export function resourceMissing(kind: string, id: string, param = 'id'): CofferError {
  return new CofferError('resource_missing', `No such ${kind}: '${id}'`, { param, missingId: id });
}
