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
  available_immediately: boolean;
  decline: AcquirerDecline | null;
}

export interface AcquirerCaptureRequest {
  idempotency_key: string;
  payment: string;
  amount: number;
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
}
