import type { CurrencyInfo } from '../domain/currency.ts';
import { CofferError } from '../domain/errors.ts';
import type { Secret } from '../platform/secret.ts';
import type { CardAcquirerSandbox } from './card/sandbox/acquirer.ts';
import type { FastifyInstance } from 'fastify';
import type { SandboxFaults } from './sandbox-faults.ts';
import type { WalletConnector } from './wallet.ts';
import type { WeChatOAuth } from './wechat-pay/oauth.ts';

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
  /**
   * 3-D Secure: `automatic` authenticates when the issuer requires it, `any` whenever the card supports it.
   * `returnUrl` is where the access control server sends the shopper's browser after a challenge (Coffer's
   * `/hooks/return/<charge id>`, which then asks the acquirer for the outcome). The card was set up for later
   * payments (a SetupIntent authenticated it) when `cardSetUp` is true.
   */
  threeDSecure?: { request: 'automatic' | 'any' | 'challenge'; returnUrl: string; cardSetUp: boolean; offSession?: boolean; noChallenge?: boolean } | undefined;
  /** The merchant may want to raise the hold before capture (Stripe's `request_incremental_authorization`). */
  incrementalAuthorization?: boolean;
}

/** The result of 3-D Secure authentication, recorded on the charge (Stripe's `payment_method_details.card.three_d_secure`). */
export interface ThreeDSecureResult {
  /** `authenticated` (Y), `attempt_acknowledged` (A), `failed` (N), `not_supported` (U), `rejected` (R). */
  result: 'authenticated' | 'attempt_acknowledged' | 'failed' | 'not_supported' | 'rejected';
  flow: 'frictionless' | 'challenge';
  version: '2.2.0';
  /** Electronic commerce indicator: Visa-style 05/06/07, Mastercard 02/01/00. */
  eci: string;
  /** The authentication value (CAVV / AAV), base64; never logged. */
  authenticationValue: string | null;
  dsTransactionId: string;
  /** Fraud-chargeback liability moved to the issuer. */
  liabilityShift: boolean;
}

/** The issuer wants the cardholder to authenticate (a 3-D Secure challenge) before it authorizes. */
export interface ActionRequired {
  status: 'requires_action';
  providerReference: string;
  /** The access control server's challenge page, for the shopper's browser. */
  redirectUrl: string;
}

export type DeclineErrorCode =
  | 'card_declined' | 'authentication_required' | 'expired_card' | 'incorrect_cvc' | 'incorrect_number' | 'processing_error'
  | 'payment_intent_authentication_failure'
  | 'payment_method_provider_decline' | 'payment_intent_payment_attempt_expired';

export interface Approval {
  status: 'authorized' | 'captured';
  providerReference: string;
  amountMinor: bigint;
  authorizationCode: string;
  networkTransactionId: string;
  cvcCheck: 'pass' | 'fail' | 'unavailable' | 'unchecked' | null;
  /** The issuer's address checks (AVS): null where it made none. */
  addressLine1Check?: Approval['cvcCheck'];
  addressPostalCodeCheck?: Approval['cvcCheck'];
  /** Funds go straight to the merchant's available balance (Stripe's bypass-pending test cards). */
  availableImmediately: boolean;
  /** Set when 3-D Secure ran before the authorization. */
  threeDSecure?: ThreeDSecureResult | undefined;
  /** The hold can be raised before capture (`incrementAuthorization`). */
  incrementalAuthorization?: boolean;
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
  /** What the issuer said of the security code (`fail` when that is why it declined), if it checked it. */
  cvcCheck?: Approval['cvcCheck'];
  /** Set when 3-D Secure ran (a failed authentication declines with `authentication_failed`). */
  threeDSecure?: ThreeDSecureResult | undefined;
}

export type AuthorizeResult = Approval | Decline | ActionRequired | { status: 'unknown'; reason: string };

export interface CaptureRequest {
  idempotencyKey: string;
  providerReference: string;
  amountMinor: bigint;
  currency: CurrencyInfo;
}

export type CaptureResult =
  /** `availableImmediately`: the acquirer pays the captured funds out at once (Stripe's bypassPending test cards). */
  | { status: 'captured'; amountMinor: bigint; availableImmediately: boolean }
  | { status: 'failed'; code: string; message: string }
  | { status: 'unknown'; reason: string };

/** Raises an authorization's hold to `amountMinor`, the new total. */
export interface IncrementRequest {
  idempotencyKey: string;
  providerReference: string;
  amountMinor: bigint;
  currency: CurrencyInfo;
}

export type IncrementResult =
  | { status: 'approved'; amountMinor: bigint }
  /** The issuer declined: the hold stays as it was. */
  | { status: 'declined'; declineCode: string; message: string; adviceCode: string | null }
  /** The acquirer refused the request itself (the authorization cannot be raised, or is no longer open). */
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
export type SyncResult = Approval | Decline | ActionRequired | { status: 'not_found' } | { status: 'unknown'; reason: string };

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
      /** The cardholder finished a 3-D Secure challenge: ask the acquirer how the payment ended. */
      type: 'payment.authentication_ended';
      notificationId: string;
      /** Coffer's charge id, echoed by the provider, and the provider's payment id. */
      chargeReference: string;
      paymentReference: string;
    }
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
  incrementalAuthorization: boolean;
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
  /** Raises the hold of an authorization made with `incrementalAuthorization` that the acquirer made available. */
  incrementAuthorization(request: IncrementRequest): Promise<IncrementResult>;
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
  verifyCard(request: { idempotencyKey: string; reference: string; card: CardData; currency: CurrencyInfo; threeDSecure?: AuthorizeRequest['threeDSecure'] }): Promise<AuthorizeResult>;
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
  /** Alipay or WeChat Pay; refused with `flow_not_supported` in live mode until the operator configures the account. */
  wallet(provider: WalletProvider, livemode: boolean): WalletConnector;
  /** Where the provider sends its notifications for this mode: Coffer's public URL, `/hooks/<provider>/<mode>`. */
  /** WeChat's web sign-in for the hosted checkout opened inside WeChat (JSAPI payments); undefined when not configured. */
  wechatSignIn(livemode: boolean): WeChatOAuth | undefined;
  notificationUrl(provider: WalletProvider, livemode: boolean): string;
  /**
   * Where a provider sends the shopper back (the card access control server after a challenge, Alipay's cashier
   * after paying): `/hooks/return/<charge id>?sig=…`, keyed so that no one else can make one.
   */
  paymentReturnUrl(chargeId: string): string;
  /** Whether a return link's `sig` is the one Coffer made for this charge (the link leads to the client secret). */
  verifyPaymentReturn(chargeId: string, sig: string): boolean;
  /** Called once the public listener is up: the wallet connectors and sandboxes in test mode are reached there. */
  setPublicEndpoint(endpoint: PublicEndpoint): void;
  /** Coffer's public URL as shoppers reach it (the hosted checkout's pages are under it). */
  publicUrl(): string;
  /** Serves the sandboxes' pages and provider endpoints (`/sandbox/...`) on the public listener. */
  registerSandboxRoutes(app: FastifyInstance): void;
  /** The providers' sides in test mode, with their test controls. */
  sandboxes: { card: CardAcquirerSandbox; wallets: Record<WalletProvider, WalletSandbox> };
}

export type WalletProvider = WalletConnector['name'];

/** The public listener, once it listens: its URL as providers and shoppers reach it, and the certificate to trust. */
export interface PublicEndpoint {
  url: string;
  /** The listener's certificate (PEM) when it is self-signed, for the sandboxes' loopback calls; else undefined. */
  ca: string | undefined;
}

/** What Coffer needs of a wallet provider's sandbox: its test controls, and a turn to send due notifications. */
export interface WalletSandbox {
  faults: SandboxFaults;
  deliverDueNotifications(limit: number): Promise<number>;
}

export function flowNotSupported(connector: string, flow: string): CofferError {
  return new CofferError('flow_not_supported', `The ${connector} connector does not support ${flow}.`);
}
