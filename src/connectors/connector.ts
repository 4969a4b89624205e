import type { CurrencyInfo } from '../domain/currency.ts';
import { CofferError } from '../domain/errors.ts';
import type { Secret } from '../platform/secret.ts';
import type { CardAcquirerSandbox } from './card/sandbox/acquirer.ts';

/**
 * The one interface between Coffer and a payment provider. Flows see only this; each provider has a folder with
 * its client, transformers (wire format <-> these types, with exhaustive status maps) and sandbox. Every call
 * carries Coffer's idempotency key, so that a retry after a timeout or a crash never charges twice. A call that
 * fails in transit returns `unknown`: the outcome is then learned by `syncPayment`, never guessed.
 */
export interface CardData {
  number: Secret<string>;
  expMonth: number;
  expYear: number;
}

export interface AuthorizeRequest {
  idempotencyKey: string;
  /** Coffer's id for the attempt (the charge id), echoed back by the provider. */
  reference: string;
  amountMinor: bigint;
  currency: CurrencyInfo;
  /** Capture in the same step (automatic capture). */
  capture: boolean;
  card: CardData;
  statementDescriptor: string | null;
}

export type DeclineErrorCode = 'card_declined' | 'expired_card' | 'incorrect_cvc' | 'incorrect_number' | 'processing_error';

export interface Approval {
  status: 'authorized' | 'captured';
  providerReference: string;
  amountMinor: bigint;
  authorizationCode: string;
  networkTransactionId: string;
  cvcCheck: 'pass' | 'fail' | 'unavailable' | 'unchecked' | null;
  /** Funds go straight to the merchant's available balance (Stripe's bypass-pending test cards). */
  availableImmediately: boolean;
}

export interface Decline {
  status: 'declined';
  providerReference: string | null;
  code: DeclineErrorCode;
  declineCode: string;
  message: string;
  param: string | null;
  adviceCode: string | null;
  networkStatus: 'declined_by_network' | 'not_sent_to_network';
  /** Blocked before reaching the network as too risky (Stripe's Radar test cards). */
  blocked: boolean;
}

export type AuthorizeResult = Approval | Decline | { status: 'unknown'; reason: string };

export interface CaptureRequest {
  idempotencyKey: string;
  providerReference: string;
  amountMinor: bigint;
  currency: CurrencyInfo;
}

export type CaptureResult =
  | { status: 'captured'; amountMinor: bigint }
  | { status: 'failed'; code: string; message: string }
  | { status: 'unknown'; reason: string };

export interface VoidRequest {
  idempotencyKey: string;
  providerReference: string;
}

export type VoidResult = { status: 'voided' } | { status: 'failed'; code: string; message: string } | { status: 'unknown'; reason: string };

/** Identifies an attempt already sent, to ask the provider about it and check its answer. */
export interface AttemptRef {
  idempotencyKey: string;
  reference: string;
  amountMinor: bigint;
  currency: CurrencyInfo;
}

/** The provider's record of an attempt, found by Coffer's idempotency key. */
export type SyncResult = Approval | Decline | { status: 'not_found' } | { status: 'unknown'; reason: string };

export interface RefundRequest {
  /** Coffer's key for this refund at the provider (the refund id). */
  idempotencyKey: string;
  reference: string;
  /** The provider's reference of the payment being refunded. */
  paymentReference: string;
  amountMinor: bigint;
  currency: CurrencyInfo;
}

export type RefundResult =
  | { status: 'succeeded'; providerReference: string }
  | { status: 'failed'; providerReference: string | null; failureReason: string }
  | { status: 'unknown'; reason: string };

export type RefundSyncResult = Exclude<RefundResult, { status: 'unknown' }> | { status: 'not_found' } | { status: 'unknown'; reason: string };

/** Something the provider tells Coffer on its own initiative, verified and parsed (see each connector's webhook). */
export type ProviderNotification =
  | {
      type: 'refund.failed';
      notificationId: string;
      /** Coffer's refund id, echoed by the provider. */
      reference: string;
      providerReference: string;
      amountMinor: bigint;
      currency: string;
      failureReason: string;
    }
  | {
      /** Opened; changed by the issuer (an inquiry escalated to a chargeback); decided. */
      type: 'dispute.created' | 'dispute.updated' | 'dispute.closed';
      notificationId: string;
      /** Coffer's charge id, echoed by the provider. */
      chargeReference: string;
      /** The provider's id of the disputed payment and of the dispute. */
      paymentReference: string;
      providerReference: string;
      amountMinor: bigint;
      currency: string;
      status: DisputeStatus;
      reason: string;
      networkReasonCode: string | null;
    };

/** Stripe's dispute statuses as an acquirer reports them; `warning_*` are inquiries, which withdraw nothing. */
export const disputeStatuses = [
  'warning_needs_response', 'warning_under_review', 'warning_closed', 'needs_response', 'under_review', 'won', 'lost',
] as const;
export type DisputeStatus = (typeof disputeStatuses)[number];

export type DisputeResult = { status: DisputeStatus } | { status: 'failed'; message: string } | { status: 'unknown'; reason: string };

export interface ConnectorCapabilities {
  manualCapture: boolean;
  partialCapture: boolean;
  void: boolean;
  sync: boolean;
  refund: boolean;
  partialRefund: boolean;
}

export interface Connector {
  readonly name: string;
  readonly capabilities: ConnectorCapabilities;
  authorize(request: AuthorizeRequest): Promise<AuthorizeResult>;
  capture(request: CaptureRequest): Promise<CaptureResult>;
  void(request: VoidRequest): Promise<VoidResult>;
  /** What became of the attempt sent with this idempotency key. */
  syncPayment(attempt: AttemptRef): Promise<SyncResult>;
  /**
   * Makes sure an attempt that Coffer gave up on can never complete later (a request still in transit when we
   * asked): afterwards the provider refuses that key. Returns the attempt if it had already happened.
   */
  abandonAttempt(attempt: AttemptRef): Promise<SyncResult>;
  refund(request: RefundRequest): Promise<RefundResult>;
  /** Checks with the issuer that a card can be charged later, without moving money (a zero-amount check). */
  verifyCard(request: { idempotencyKey: string; reference: string; card: CardData; currency: CurrencyInfo }): Promise<AuthorizeResult>;
  /** What became of the refund sent with this key; like `abandonAttempt`, `abandon` closes the key first. */
  syncRefund(request: RefundRequest, abandon: boolean): Promise<RefundSyncResult>;
  /** Sends the merchant's evidence for a dispute; `submit` ends the response (the dispute goes under review). */
  submitDisputeEvidence(providerReference: string, evidence: Record<string, string>, submit: boolean): Promise<DisputeResult>;
  /** Accepts a dispute: the merchant does not contest it, and it is lost. */
  acceptDispute(providerReference: string): Promise<DisputeResult>;
  /** Verifies a notification's signature and parses it; throws `NotificationRejected` if it is not genuine. */
  parseNotification(rawBody: string, signatureHeader: string | undefined): ProviderNotification;
}

export class NotificationRejected extends Error {
  override readonly name = 'NotificationRejected';
}

export interface ConnectorRegistry {
  card(livemode: boolean): Connector;
  /** The providers' sides in test mode, with their test controls. */
  sandboxes: { card: CardAcquirerSandbox };
}

export function flowNotSupported(connector: string, flow: string): CofferError {
  return new CofferError('flow_not_supported', `The ${connector} connector does not support ${flow}.`);
}
