import { limits } from '../../limits.ts';
import type { Logger } from '../../platform/logger.ts';
import type {
  AttemptRef,
  AuthorizeRequest,
  AuthorizeResult,
  CaptureRequest,
  CaptureResult,
  CardData,
  Connector,
  DisputeResult,
  IncrementRequest,
  IncrementResult,
  ProviderNotification,
  RefundRequest,
  RefundResult,
  RefundSyncResult,
  SyncResult,
  VoidRequest,
  VoidResult,
} from '../connector.ts';
import { disputeStatuses } from '../connector.ts';
import { refundFailureReason, toAcquirerAmount, toAuthorizeRequest, toAuthorizeResult, toIncrementResult, toRefundResult } from './transformers.ts';
import { parseCardNotification } from './webhook.ts';
import type { Clock } from '../../platform/clock.ts';
import type { CurrencyInfo } from '../../domain/currency.ts';
import type { Secret } from '../../platform/secret.ts';
import type {
  AcquirerAuthorizeRequest,
  AcquirerCaptureRequest,
  AcquirerIncrement,
  AcquirerIncrementRequest,
  AcquirerPayment,
  AcquirerRefund,
  AcquirerRefundRequest,
  AcquirerResponse,
  AcquirerVoidRequest,
} from './wire.ts';

/** How the client reaches the acquirer: the in-process sandbox in test mode, an HTTPS client in live mode. */
export interface AcquirerTransport {
  authorize(request: AcquirerAuthorizeRequest): Promise<AcquirerResponse<AcquirerPayment>>;
  capture(request: AcquirerCaptureRequest): Promise<AcquirerResponse<AcquirerPayment>>;
  increment(request: AcquirerIncrementRequest): Promise<AcquirerResponse<AcquirerIncrement>>;
  void(request: AcquirerVoidRequest): Promise<AcquirerResponse<AcquirerPayment>>;
  retrieveByKey(idempotencyKey: string): Promise<AcquirerResponse<AcquirerPayment>>;
  abandon(idempotencyKey: string): Promise<AcquirerResponse<AcquirerPayment>>;
  refund(request: AcquirerRefundRequest): Promise<AcquirerResponse<AcquirerRefund>>;
  verify(request: AcquirerAuthorizeRequest): Promise<AcquirerResponse<AcquirerPayment>>;
  submitDisputeEvidence(disputeId: string, evidence: Record<string, string>, submit: boolean): Promise<AcquirerResponse<{ status: string }>>;
  acceptDispute(disputeId: string): Promise<AcquirerResponse<{ status: string }>>;
  retrieveRefundByKey(idempotencyKey: string): Promise<AcquirerResponse<AcquirerRefund>>;
  abandonRefund(idempotencyKey: string): Promise<AcquirerResponse<AcquirerRefund>>;
}

/** How old a notification's signature may be: replays of older ones are refused. */
const notificationToleranceSeconds = 300;

type Transported<T> = { delivered: true; response: AcquirerResponse<T> } | { delivered: false; reason: string };

/** The card acquiring connector: authorization, capture and void, each idempotent by Coffer's key. */
export class CardConnector implements Connector {
  readonly name = 'card';
  readonly capabilities = { manualCapture: true, partialCapture: true, incrementalAuthorization: true, void: true, sync: true, refund: true, partialRefund: true };
  readonly #transport: AcquirerTransport;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #notificationSecret: Secret<string>;
  readonly #clock: Clock;

  constructor(
    transport: AcquirerTransport,
    logger: Logger,
    options: { notificationSecret: Secret<string>; clock: Clock; timeoutMs?: number | undefined },
  ) {
    this.#transport = transport;
    this.#logger = logger;
    this.#timeoutMs = options.timeoutMs ?? limits.providerCallTimeoutMs;
    this.#notificationSecret = options.notificationSecret;
    this.#clock = options.clock;
  }

  async refund(request: RefundRequest): Promise<RefundResult> {
    const amount = toAcquirerAmount(request.amountMinor, request.currency);
    const sent = await this.#call('refund', () =>
      this.#transport.refund({ idempotency_key: request.idempotencyKey, payment: request.paymentReference, reference: request.reference, amount }),
    );
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const response = sent.response;
    if (!response.ok) {
      if (response.httpStatus >= 500 || response.error.code === 'idempotency_mismatch') return { status: 'unknown', reason: response.error.message };
      this.#logger.warn({ code: response.error.code, reference: request.reference }, 'the acquirer refused a refund');
      return { status: 'failed', providerReference: null, failureReason: refundFailureReason(response.error.code) };
    }
    return toRefundResult(response.body, request);
  }

  async syncRefund(request: RefundRequest, abandon: boolean): Promise<RefundSyncResult> {
    const sent = await this.#call('sync refund', () =>
      abandon ? this.#transport.abandonRefund(request.idempotencyKey) : this.#transport.retrieveRefundByKey(request.idempotencyKey),
    );
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const response = sent.response;
    if (!response.ok) return response.httpStatus === 404 ? { status: 'not_found' } : { status: 'unknown', reason: response.error.message };
    return toRefundResult(response.body, request);
  }

  /**
   * A zero-amount check that the card can be charged later. With `threeDSecure`, the issuer may first want the
   * cardholder to authenticate: the answer is then `requires_action`, and the outcome is read later by key.
   */
  async verifyCard(request: { idempotencyKey: string; reference: string; card: CardData; currency: CurrencyInfo; threeDSecure?: AuthorizeRequest['threeDSecure'] }): Promise<AuthorizeResult> {
    const wire = toAuthorizeRequest({ ...request, amountMinor: 0n, capture: false, statementDescriptor: null });
    const sent = await this.#call('verify', () => this.#transport.verify(wire));
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    if (!sent.response.ok) return this.#unexpected('verify', sent.response);
    return toAuthorizeResult(sent.response.body, { reference: request.reference, amountMinor: 0n, currency: request.currency });
  }

  async submitDisputeEvidence(providerReference: string, evidence: Record<string, string>, submit: boolean): Promise<DisputeResult> {
    return this.#disputeCall('submit dispute evidence', () => this.#transport.submitDisputeEvidence(providerReference, evidence, submit));
  }

  async acceptDispute(providerReference: string): Promise<DisputeResult> {
    return this.#disputeCall('accept dispute', () => this.#transport.acceptDispute(providerReference));
  }

  async #disputeCall(operation: string, send: () => Promise<AcquirerResponse<{ status: string }>>): Promise<DisputeResult> {
    const sent = await this.#call(operation, send);
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const response = sent.response;
    if (!response.ok) return response.httpStatus >= 500 ? { status: 'unknown', reason: response.error.message } : { status: 'failed', message: response.error.message };
    const status = disputeStatuses.find((known) => known === response.body.status);
    return status === undefined ? { status: 'unknown', reason: `unrecognized dispute status ${response.body.status}` } : { status };
  }

  parseNotification(rawBody: string, signatureHeader: string | undefined): ProviderNotification {
    return parseCardNotification(rawBody, signatureHeader, this.#notificationSecret, Math.floor(this.#clock.nowMs() / 1000), notificationToleranceSeconds);
  }

  async authorize(request: AuthorizeRequest): Promise<AuthorizeResult> {
    const sent = await this.#call('authorize', () => this.#transport.authorize(toAuthorizeRequest(request)));
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    if (!sent.response.ok) return this.#unexpected('authorize', sent.response);
    return toAuthorizeResult(sent.response.body, request);
  }

  async capture(request: CaptureRequest): Promise<CaptureResult> {
    const amount = toAcquirerAmount(request.amountMinor, request.currency);
    const sent = await this.#call('capture', () =>
      this.#transport.capture({ idempotency_key: request.idempotencyKey, payment: request.providerReference, amount }),
    );
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const response = sent.response;
    if (!response.ok) {
      if (response.httpStatus >= 500) return { status: 'unknown', reason: response.error.message };
      return { status: 'failed', code: response.error.code, message: response.error.message };
    }
    if (response.body.status !== 'captured' || response.body.amount_captured !== amount) {
      return { status: 'unknown', reason: `acquirer answered ${response.body.status} ${response.body.amount_captured}` };
    }
    return { status: 'captured', amountMinor: request.amountMinor, availableImmediately: response.body.available_immediately };
  }

  async incrementAuthorization(request: IncrementRequest): Promise<IncrementResult> {
    const amount = toAcquirerAmount(request.amountMinor, request.currency);
    const sent = await this.#call('increment', () =>
      this.#transport.increment({ idempotency_key: request.idempotencyKey, payment: request.providerReference, amount }),
    );
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const response = sent.response;
    if (!response.ok) {
      // A conflict or a rate limit says nothing of whether the raise happened (another sending of the key may be under
      // way): ask again later. Any other refusal is final.
      if (response.httpStatus >= 500 || response.httpStatus === 429 || response.error.code === 'idempotency_mismatch' || response.error.code === 'request_in_progress') {
        return { status: 'unknown', reason: response.error.message };
      }
      return { status: 'failed', code: response.error.code, message: response.error.message };
    }
    return toIncrementResult(response.body, request);
  }

  async void(request: VoidRequest): Promise<VoidResult> {
    const sent = await this.#call('void', () =>
      this.#transport.void({ idempotency_key: request.idempotencyKey, payment: request.providerReference }),
    );
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const response = sent.response;
    if (!response.ok) {
      if (response.httpStatus >= 500) return { status: 'unknown', reason: response.error.message };
      return { status: 'failed', code: response.error.code, message: response.error.message };
    }
    if (response.body.status !== 'voided') return { status: 'unknown', reason: `acquirer answered ${response.body.status}` };
    return { status: 'voided' };
  }

  async syncPayment(attempt: AttemptRef): Promise<SyncResult> {
    return this.#lookup('sync', attempt, () => this.#transport.retrieveByKey(attempt.idempotencyKey));
  }

  async abandonAttempt(attempt: AttemptRef): Promise<SyncResult> {
    return this.#lookup('abandon', attempt, () => this.#transport.abandon(attempt.idempotencyKey));
  }

  async #lookup(
    operation: string,
    attempt: AttemptRef,
    send: () => Promise<AcquirerResponse<AcquirerPayment>>,
  ): Promise<SyncResult> {
    const sent = await this.#call(operation, send);
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const response = sent.response;
    if (!response.ok) {
      if (response.httpStatus === 404) return { status: 'not_found' };
      return { status: 'unknown', reason: response.error.message };
    }
    if (response.body.status === 'abandoned') return { status: 'not_found' };
    return toAuthorizeResult(response.body, attempt);
  }

  #unexpected(operation: string, response: { error: { code: string; message: string }; httpStatus: number }) {
    this.#logger.error({ operation, code: response.error.code, httpStatus: response.httpStatus }, 'acquirer refused a request');
    return { status: 'unknown' as const, reason: `${response.error.code}: ${response.error.message}` };
  }

  /** Sends with a deadline. Any failure in transit means the outcome is unknown, not that nothing happened. */
  async #call<T>(operation: string, send: () => Promise<AcquirerResponse<T>>): Promise<Transported<T>> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<Transported<T>>((resolve) => {
      timer = setTimeout(() => resolve({ delivered: false, reason: `no answer within ${this.#timeoutMs} ms` }), this.#timeoutMs);
    });
    try {
      const answer = send().then(
        (response): Transported<T> => ({ delivered: true, response }),
        (error: unknown): Transported<T> => ({ delivered: false, reason: `transport failed: ${String(error)}` }),
      );
      const result = await Promise.race([answer, deadline]);
      if (!result.delivered) this.#logger.warn({ operation, reason: result.reason }, 'acquirer call outcome unknown');
      return result;
    } finally {
      clearTimeout(timer);
    }
  }
}
