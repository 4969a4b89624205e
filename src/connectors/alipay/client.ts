import { AlipaySdk, type AlipaySdkConfig } from 'alipay-sdk';
import type { Dispatcher } from 'urllib';
import { limits } from '../../limits.ts';
import type { Logger } from '../../platform/logger.ts';
import type { RefundRequest, RefundResult, RefundSyncResult } from '../connector.ts';
import type {
  IncomingNotification, NotificationAnswer, WalletCapabilities, WalletCloseResult, WalletConnector, WalletNotification, WalletTradeRef,
  WalletTradeRequest, WalletTradeResult, WalletTradeState,
} from '../wallet.ts';
import {
  alipayCurrency, classifyAnswer, fromAlipayTime, fromYuan, isAlipayAmount, parseTradeStatus, toAlipayTime, toSubject, toTradeState, toYuan,
} from './transformers.ts';
import { parseAlipayNotification } from './webhook.ts';

/**
 * The Alipay connector (OpenAPI v2 gateway), on the official `alipay-sdk`: the SDK signs each request with the
 * app's private key, and every call is made with `validateSign: true`, so an answer whose RSA2 signature (over
 * its exact bytes) does not verify with Alipay's public key throws and is never believed. Test mode points
 * `gateway` at the sandbox; nothing else differs.
 *
 * A network failure, a timeout, an unverifiable answer, `20000` or `ACQ.SYSTEM_ERROR`: the outcome is `unknown`,
 * to be learned by a query. Every amount Alipay echoes is checked against what Coffer expects.
 */
export interface AlipayConnectorOptions {
  appId: string;
  /** PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`) PEM, or the bare base64 Alipay's key tool gives. */
  appPrivateKeyPem: string;
  alipayPublicKeyPem: string;
  /** `https://openapi.alipay.com/gateway.do`, or the sandbox's `…/sandbox/alipay/gateway.do`. */
  gateway: string;
  /** An undici dispatcher for the SDK's requests (for the sandbox over TLS: an `Agent` trusting Coffer's certificate). */
  proxyAgent?: Dispatcher | undefined;
  timeoutMs?: number | undefined;
  logger: Logger;
}

type Fields = Record<string, unknown>;

/** What one call came back with: Alipay's verified fields, or nothing we can trust. */
type Outcome = { delivered: true; fields: Fields } | { delivered: false; reason: string };

function text(fields: Fields, name: string): string | undefined {
  const value = fields[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export class AlipayConnector implements WalletConnector {
  readonly name = 'alipay';
  readonly capabilities: WalletCapabilities = {
    manualCapture: false, partialCapture: false, incrementalAuthorization: false, void: false, sync: true, refund: true, partialRefund: true, flows: ['page', 'qr'],
  };
  readonly account: string;
  readonly #sdk: AlipaySdk;
  readonly #logger: Logger;
  readonly #timeoutMs: number;

  constructor(options: AlipayConnectorOptions) {
    this.account = options.appId;
    this.#logger = options.logger;
    this.#timeoutMs = options.timeoutMs ?? limits.providerCallTimeoutMs;
    // The key goes only into the SDK, held in a private field: nothing prints this object's fields.
    this.#sdk = new AlipaySdk({
      appId: options.appId,
      privateKey: options.appPrivateKeyPem,
      keyType: options.appPrivateKeyPem.includes('BEGIN PRIVATE KEY') ? 'PKCS8' : 'PKCS1',
      alipayPublicKey: options.alipayPublicKeyPem,
      gateway: options.gateway,
      timeout: this.#timeoutMs,
      // Snake_case fields, as on the wire and in notifications: one spelling for both.
      camelcase: false,
      // The SDK hands this to undici as the request's `dispatcher`, which takes any dispatcher, not only a proxy.
      ...(options.proxyAgent === undefined ? {} : { proxyAgent: options.proxyAgent as AlipaySdkConfig['proxyAgent'] }),
    });
  }

  async createTrade(request: WalletTradeRequest): Promise<WalletTradeResult> {
    if (request.currency.code !== alipayCurrency) {
      return { status: 'failed', code: 'currency_not_supported', message: `Alipay takes CNY only, not ${request.currency.code.toUpperCase()}` };
    }
    if (!isAlipayAmount(request.amountMinor)) {
      return { status: 'failed', code: 'amount_invalid', message: 'Alipay takes 0.01 to 100000000.00 CNY' };
    }
    const order = {
      out_trade_no: request.reference,
      total_amount: toYuan(request.amountMinor, request.currency),
      subject: toSubject(request.subject),
      time_expire: toAlipayTime(request.expiresAt),
    };
    switch (request.flow) {
      case 'qr':
        return this.#precreate(order, request.notifyUrl);
      case 'page':
        return this.#pagePayUrl(order, request.notifyUrl, request.returnUrl);
      case 'jsapi':
      case 'h5':
        return { status: 'failed', code: 'flow_not_supported', message: `the Alipay connector has no ${request.flow} flow` };
    }
  }

  async #precreate(order: Record<string, string>, notifyUrl: string): Promise<WalletTradeResult> {
    const sent = await this.#exec('alipay.trade.precreate', { ...order, product_code: 'FACE_TO_FACE_PAYMENT' }, notifyUrl);
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const answer = classifyAnswer(sent.fields);
    switch (answer.kind) {
      case 'success': {
        const qrCode = text(sent.fields, 'qr_code');
        if (text(sent.fields, 'out_trade_no') !== order.out_trade_no || qrCode === undefined) {
          return { status: 'unknown', reason: `Alipay's precreate answer names ${String(sent.fields.out_trade_no)} or has no qr_code` };
        }
        return { status: 'created', action: { redirectUrl: null, qrCode, appParameters: null } };
      }
      case 'business':
        // Already paid or closed under this out_trade_no: a query tells which, so the outcome is not a failure yet.
        if (answer.subCode === 'ACQ.TRADE_HAS_SUCCESS' || answer.subCode === 'ACQ.TRADE_HAS_CLOSE') {
          return { status: 'unknown', reason: `Alipay answered ${answer.message}` };
        }
        return { status: 'failed', code: answer.subCode, message: answer.message };
      case 'invalid':
        return { status: 'failed', code: answer.subCode, message: answer.message };
      case 'unavailable':
        return { status: 'unknown', reason: answer.reason };
    }
  }

  /** The page flow calls nothing: the SDK signs a GET URL to the gateway, and the trade exists once the shopper opens it. */
  #pagePayUrl(order: Record<string, string>, notifyUrl: string, returnUrl: string | null): WalletTradeResult {
    try {
      const redirectUrl = this.#sdk.pageExecute('alipay.trade.page.pay', 'GET', {
        bizContent: { ...order, product_code: 'FAST_INSTANT_TRADE_PAY' },
        notifyUrl,
        ...(returnUrl === null ? {} : { returnUrl }),
      });
      return { status: 'created', action: { redirectUrl, qrCode: null, appParameters: null } };
    } catch (error) {
      return { status: 'failed', code: 'alipay_request_invalid', message: error instanceof Error ? error.message : String(error) };
    }
  }

  async queryTrade(trade: WalletTradeRef): Promise<WalletTradeState> {
    if (trade.currency.code !== alipayCurrency) return { status: 'unknown', reason: `an Alipay trade is in CNY, not ${trade.currency.code}` };
    const sent = await this.#exec('alipay.trade.query', { out_trade_no: trade.reference });
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const answer = classifyAnswer(sent.fields);
    switch (answer.kind) {
      case 'success':
        return this.#tradeState(sent.fields, trade);
      case 'business':
        // A QR trade does not exist at Alipay until it is scanned: it is waiting for the shopper.
        return answer.subCode === 'ACQ.TRADE_NOT_EXIST' ? { status: 'pending' } : { status: 'unknown', reason: `Alipay answered ${answer.message}` };
      case 'invalid':
        return { status: 'unknown', reason: `Alipay refused the query: ${answer.message}` };
      case 'unavailable':
        return { status: 'unknown', reason: answer.reason };
    }
  }

  /** A query answer in Coffer's terms, once it is shown to be about this trade and its amount. */
  #tradeState(fields: Fields, trade: WalletTradeRef): WalletTradeState {
    if (text(fields, 'out_trade_no') !== trade.reference) return { status: 'unknown', reason: `Alipay answered about out_trade_no ${String(fields.out_trade_no)}` };
    const totalMinor = fromYuan(fields.total_amount);
    if (totalMinor !== trade.amountMinor) {
      return { status: 'unknown', reason: `total_amount mismatch: Alipay says ${String(fields.total_amount)}, Coffer expects ${toYuan(trade.amountMinor, trade.currency)}` };
    }
    const status = parseTradeStatus(fields.trade_status);
    if (status === undefined) return { status: 'unknown', reason: `unrecognized Alipay trade_status ${String(fields.trade_status)}` };
    const tradeNo = text(fields, 'trade_no');
    if (tradeNo === undefined) return { status: 'unknown', reason: 'Alipay answered without trade_no' };
    const paidAt = fields.send_pay_date === undefined ? null : fromAlipayTime(fields.send_pay_date);
    const refundedMinor = fields.refund_fee === undefined ? 0n : fromYuan(fields.refund_fee);
    if (paidAt === undefined || refundedMinor === undefined) return { status: 'unknown', reason: 'Alipay answered an unreadable send_pay_date or refund_fee' };
    return toTradeState({ status, tradeNo, totalMinor, paidAt, refundedMinor });
  }

  /**
   * Closes a trade still waiting for the shopper. Too late (Alipay: ACQ.TRADE_STATUS_ERROR) is resolved by a query:
   * paid, or already closed. A QR trade never scanned, or a page trade whose page was never opened, does not exist
   * at Alipay (ACQ.TRADE_NOT_EXIST): it is reported `not_opened`, since its QR code or page stays payable until its
   * time_expire.
   */
  async closeTrade(trade: WalletTradeRef): Promise<WalletCloseResult> {
    if (trade.currency.code !== alipayCurrency) return { status: 'unknown', reason: `an Alipay trade is in CNY, not ${trade.currency.code}` };
    const sent = await this.#exec('alipay.trade.close', { out_trade_no: trade.reference });
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const answer = classifyAnswer(sent.fields);
    switch (answer.kind) {
      case 'success':
        return text(sent.fields, 'out_trade_no') === trade.reference
          ? { status: 'closed' }
          : { status: 'unknown', reason: `Alipay closed out_trade_no ${String(sent.fields.out_trade_no)}` };
      case 'business':
        if (answer.subCode === 'ACQ.TRADE_NOT_EXIST') return { status: 'not_opened' };
        if (answer.subCode === 'ACQ.TRADE_STATUS_ERROR') return this.#afterLateClose(trade);
        return { status: 'failed', code: answer.subCode, message: answer.message };
      case 'invalid':
        return { status: 'failed', code: answer.subCode, message: answer.message };
      case 'unavailable':
        return { status: 'unknown', reason: answer.reason };
    }
  }

  async #afterLateClose(trade: WalletTradeRef): Promise<WalletCloseResult> {
    const state = await this.queryTrade(trade);
    switch (state.status) {
      case 'paid':
      case 'closed':
      case 'failed':
      case 'unknown':
        return state;
      case 'pending':
        return { status: 'unknown', reason: 'Alipay refused to close a trade it still reports as waiting for the buyer' };
    }
  }

  /**
   * Refunds by `out_request_no` = Coffer's refund key, so a retry never refunds twice. Alipay answers a repeat with
   * the first answer and `fund_change: N`; a first answer may also say N when the money has not moved yet: either
   * way the refund query decides. The cumulative `refund_fee` must cover this refund and stay within the total.
   */
  async refund(request: RefundRequest & { totalMinor: bigint }): Promise<RefundResult> {
    if (request.currency.code !== alipayCurrency) return { status: 'failed', providerReference: null, failureReason: 'currency_not_supported' };
    if (!isAlipayAmount(request.amountMinor)) return { status: 'failed', providerReference: null, failureReason: 'amount_invalid' };
    const sent = await this.#exec('alipay.trade.refund', {
      out_trade_no: request.paymentReference,
      refund_amount: toYuan(request.amountMinor, request.currency),
      out_request_no: request.idempotencyKey,
    });
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const answer = classifyAnswer(sent.fields);
    switch (answer.kind) {
      case 'success':
        return this.#refunded(sent.fields, request);
      case 'business':
      case 'invalid':
        return { status: 'failed', providerReference: null, failureReason: answer.subCode };
      case 'unavailable':
        return { status: 'unknown', reason: answer.reason };
    }
  }

  async #refunded(fields: Fields, request: RefundRequest & { totalMinor: bigint }): Promise<RefundResult> {
    const refundFee = fromYuan(fields.refund_fee);
    if (text(fields, 'out_trade_no') !== request.paymentReference) return { status: 'unknown', reason: `Alipay refunded out_trade_no ${String(fields.out_trade_no)}` };
    if (refundFee === undefined || refundFee < request.amountMinor || refundFee > request.totalMinor) {
      return { status: 'unknown', reason: `refund_fee mismatch: Alipay says ${String(fields.refund_fee)} refunded in all, for a refund of ${toYuan(request.amountMinor, request.currency)} of ${toYuan(request.totalMinor, request.currency)}` };
    }
    const sendBackFee = fields.send_back_fee === undefined ? request.amountMinor : fromYuan(fields.send_back_fee);
    if (sendBackFee !== request.amountMinor) return { status: 'unknown', reason: `send_back_fee mismatch: Alipay says ${String(fields.send_back_fee)}` };
    if (fields.fund_change !== 'Y') return this.syncRefund(request).then((synced) => (synced.status === 'not_found' ? { status: 'unknown', reason: 'Alipay accepted the refund but has not made it yet' } : synced));
    const tradeNo = text(fields, 'trade_no');
    return tradeNo === undefined
      ? { status: 'unknown', reason: 'Alipay answered the refund without trade_no' }
      : { status: 'succeeded', providerReference: `${tradeNo}:${request.idempotencyKey}` };
  }

  /** `alipay.trade.fastpay.refund.query`: Alipay answers 10000 with no refund data when no such refund was made. */
  async syncRefund(request: RefundRequest & { totalMinor: bigint }): Promise<RefundSyncResult> {
    if (request.currency.code !== alipayCurrency) return { status: 'failed', providerReference: null, failureReason: 'currency_not_supported' };
    const sent = await this.#exec('alipay.trade.fastpay.refund.query', { out_trade_no: request.paymentReference, out_request_no: request.idempotencyKey });
    if (!sent.delivered) return { status: 'unknown', reason: sent.reason };
    const answer = classifyAnswer(sent.fields);
    switch (answer.kind) {
      case 'success':
        return this.#refundFound(sent.fields, request);
      case 'business':
        return answer.subCode === 'ACQ.TRADE_NOT_EXIST' ? { status: 'not_found' } : { status: 'unknown', reason: `Alipay answered ${answer.message}` };
      case 'invalid':
        return { status: 'unknown', reason: `Alipay refused the refund query: ${answer.message}` };
      case 'unavailable':
        return { status: 'unknown', reason: answer.reason };
    }
  }

  #refundFound(fields: Fields, request: RefundRequest & { totalMinor: bigint }): RefundSyncResult {
    if (fields.refund_amount === undefined) return { status: 'not_found' };
    if (text(fields, 'out_request_no') !== request.idempotencyKey || text(fields, 'out_trade_no') !== request.paymentReference) {
      return { status: 'unknown', reason: `Alipay answered about refund ${String(fields.out_request_no)} of ${String(fields.out_trade_no)}` };
    }
    const refundMinor = fromYuan(fields.refund_amount);
    if (refundMinor !== request.amountMinor) return { status: 'unknown', reason: `refund_amount mismatch: Alipay says ${String(fields.refund_amount)}` };
    if (fields.total_amount !== undefined && fromYuan(fields.total_amount) !== request.totalMinor) {
      return { status: 'unknown', reason: `total_amount mismatch: Alipay says ${String(fields.total_amount)}` };
    }
    const tradeNo = text(fields, 'trade_no');
    // An absent refund_status is success for older answers, as Alipay documents; any other status has not succeeded yet.
    if (tradeNo === undefined || (fields.refund_status !== undefined && fields.refund_status !== 'REFUND_SUCCESS')) {
      return { status: 'unknown', reason: `Alipay reports the refund as ${String(fields.refund_status)}` };
    }
    return { status: 'succeeded', providerReference: `${tradeNo}:${request.idempotencyKey}` };
  }

  parseNotification(request: IncomingNotification): WalletNotification {
    return parseAlipayNotification(request, this.#sdk, this.account);
  }

  /** Alipay stops retrying only on the exact body `success`; anything else makes it send again. */
  notificationAnswer(accepted: boolean): NotificationAnswer {
    return { statusCode: 200, contentType: 'text/plain; charset=utf-8', body: accepted ? 'success' : 'fail' };
  }

  /**
   * One call through the SDK with the answer's signature verified, under a deadline. Any failure in transit or in
   * verification means the outcome is unknown, not that nothing happened.
   */
  async #exec(method: string, bizContent: Record<string, string>, notifyUrl?: string): Promise<Outcome> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => resolve({ delivered: false, reason: `no answer from Alipay within ${this.#timeoutMs} ms` }), this.#timeoutMs + 1_000);
    });
    const call = this.#sdk
      .exec(method, { bizContent, ...(notifyUrl === undefined ? {} : { notifyUrl }) }, { validateSign: true })
      .then(
        (fields): Outcome => ({ delivered: true, fields: fields as Fields }),
        (error: unknown): Outcome => ({ delivered: false, reason: `${method} failed: ${error instanceof Error ? error.message : String(error)}` }),
      );
    try {
      const outcome = await Promise.race([call, deadline]);
      if (!outcome.delivered) this.#logger.warn({ method, reason: outcome.reason.slice(0, 300) }, 'Alipay call outcome unknown');
      return outcome;
    } finally {
      clearTimeout(timer);
    }
  }
}
