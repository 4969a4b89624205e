/**
 * The card acquirer's wire format, shared by the connector's client (Coffer's side) and the sandbox (the
 * acquirer's side). Amounts are integers in the currency's minor unit, as most acquirers take them.
 */
export interface AcquirerAuthorizeRequest {
  idempotency_key: string;
  reference: string;
  amount: number;
  currency: string;
  capture: boolean;
  card: { number: string; exp_month: number; exp_year: number };
  statement_descriptor: string | null;
  /** Absent (null): the merchant cannot authenticate the shopper now (an off-session payment). */
  three_d_secure: AcquirerThreeDSecureRequest | null;
  /** The merchant may raise the hold before capture (an authorization without capture); absent: false. */
  incremental_authorization?: boolean;
}

export interface AcquirerThreeDSecureRequest {
  /** `automatic`: authenticate when the issuer requires it; `any`: whenever the card supports it. */
  request: 'automatic' | 'any' | 'challenge';
  /** Where the access control server sends the shopper's browser after a challenge. */
  return_url: string;
  /** The card was authenticated before for later payments (some issuers then skip the challenge). */
  card_set_up: boolean;
  /** The shopper is not there (a merchant-initiated payment): no challenge can be taken. */
  off_session?: boolean;
  /** The merchant asks for a decline (`authentication_required`) rather than a challenge, the shopper being there. */
  no_challenge?: boolean;
}

/** The outcome of EMV 3-D Secure 2 authentication, as the acquirer records it with the payment. */
export interface AcquirerThreeDSecure {
  version: string;
  /** EMV `transStatus`: Y authenticated, A attempted, N failed, U could not be performed, R rejected. */
  trans_status: string;
  /** `frictionless` or `challenge`. */
  flow: string;
  /** Electronic commerce indicator: 05/06/07 (Visa, Amex, JCB, …), 02/01/00 (Mastercard). */
  eci: string;
  /** The CAVV (AAV for Mastercard), base64: proof of authentication for the authorization. Never logged. */
  authentication_value: string | null;
  ds_trans_id: string;
}

export interface AcquirerDecline {
  code: string;
  decline_code: string;
  message: string;
  param: string | null;
  advice_code: string | null;
  network_status: string;
  blocked: boolean;
}

export interface AcquirerPayment {
  id: string;
  reference: string;
  status: string;
  amount: number;
  currency: string;
  amount_captured: number;
  authorization_code: string | null;
  network_transaction_id: string | null;
  cvc_check: string | null;
  /** The issuer's address checks, where it made them (absent from records made before the acquirer reported them). */
  address_line1_check?: string | null;
  address_postal_code_check?: string | null;
  available_immediately: boolean;
  decline: AcquirerDecline | null;
  /** Set when 3-D Secure ran; absent from records made before the acquirer offered it. */
  three_d_secure?: AcquirerThreeDSecure | null;
  /** Set while the status is `requires_action`: the shopper's browser must go to `redirect_url` (the challenge). */
  next_action?: { redirect_url: string } | null;
  /** Whether the hold can be raised before capture; absent from records made before the acquirer offered it. */
  incremental_authorization?: 'available' | 'unavailable';
}

export interface AcquirerCaptureRequest {
  idempotency_key: string;
  payment: string;
  amount: number;
}

/** Raises an authorization's hold to `amount` (the new total), before capture. */
export interface AcquirerIncrementRequest {
  idempotency_key: string;
  payment: string;
  amount: number;
}

/** The issuer's answer to an increment: a decline leaves the hold as it was. */
export interface AcquirerIncrement {
  payment: string;
  /** The hold after the answer: the new total when approved, the one before when declined. */
  amount: number;
  status: 'approved' | 'declined';
  decline: AcquirerDecline | null;
}

export interface AcquirerVoidRequest {
  idempotency_key: string;
  payment: string;
}

export type AcquirerResponse<T> =
  | { ok: true; body: T }
  | { ok: false; error: { code: string; message: string }; httpStatus: number };

export interface AcquirerRefundRequest {
  idempotency_key: string;
  payment: string;
  reference: string;
  amount: number;
}

export interface AcquirerRefund {
  id: string;
  payment: string;
  reference: string;
  amount: number;
  currency: string;
  status: string;
  failure_reason: string | null;
}

export interface AcquirerDispute {
  id: string;
  payment: string;
  /** The charge id Coffer gave the payment at authorization. */
  reference: string;
  amount: number;
  currency: string;
  status: string;
  reason: string;
  network_reason_code: string | null;
}

/** What the acquirer tells Coffer on its own initiative, signed with the shared notification secret. */
export interface AcquirerNotification {
  id: string;
  type: string;
  created: number;
  refund?: AcquirerRefund;
  dispute?: AcquirerDispute;
  /** `payment.authentication_ended`: the cardholder finished (or failed) 3-D Secure; the payment's own record says how it ended. */
  payment?: { id: string; reference: string };
}
