import { createPublicKey } from 'node:crypto';
import type { Agent } from 'node:https';
import { Value } from '@sinclair/typebox/value';
import { Formatter, Rsa, Wechatpay } from 'wechatpay-axios-plugin';
import { limits } from '../../limits.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Logger } from '../../platform/logger.ts';
import { Secret } from '../../platform/secret.ts';
import type { RefundRequest, RefundResult, RefundSyncResult } from '../connector.ts';
import type {
  IncomingNotification, NotificationAnswer, WalletCapabilities, WalletCloseResult, WalletConnector, WalletNotification, WalletTradeRef,
  WalletTradeRequest, WalletTradeResult, WalletTradeState,
} from '../wallet.ts';
import { toFen, toOrder, toRefundResult, toTradeState, weChatCurrency } from './transformers.ts';
import { parseWeChatPayNotification, type NotificationKeys } from './webhook.ts';
import { ErrorBody, H5Answer, JsapiAnswer, NativeAnswer, RefundResource, TransactionResource } from './wire.ts';

/**
 * The WeChat Pay connector (API v3), on the `wechatpay-axios-plugin` client in WeChat Pay public-key mode: the
 * plugin signs each request with the merchant key and verifies each successful answer's signature, timestamp and
 * `Wechatpay-Serial` (a probe signature or an unknown key throws), and we map what it returns. Test mode points
 * `baseUrl` at the sandbox; nothing else differs.
 *
 * An answer the plugin could not verify, a timeout, a network failure, 429 or 5xx: the outcome is `unknown`, to be
 * learned by a query. WeChat's error answers (4xx) are not signed by contract (the plugin does not check them);
 * they are believed only to say that nothing happened, never that money moved.
 */
export interface WeChatPayConnectorOptions {
  mchid: string;
  appid: string;
  merchantSerialNo: string;
  merchantPrivateKeyPem: string;
  platformPublicKeyId: string;
  platformPublicKeyPem: string;
  /** 32 ASCII characters: decrypts callbacks. */
  apiV3Key: string;
  /** `https://api.mch.weixin.qq.com/`, or the sandbox's `…/sandbox/wechat-pay/`. */
  baseUrl: string;
  clock: Clock;
  logger: Logger;
  timeoutMs?: number | undefined;
  /** For the sandbox over TLS: an agent that trusts Coffer's own certificate. */
  httpsAgent?: Agent | undefined;
  /** Where WeChat sends REFUND.* callbacks; without it, the merchant platform's configured address. */
  refundNotifyUrl?: string | undefined;
}

/** What one call came back with: an answer to map, or nothing we can trust. */
type Answer = { kind: 'answer'; status: number; data: unknown } | { kind: 'lost'; reason: string };

interface PluginError {
  code?: unknown;
  message?: unknown;
  response?: { status?: unknown; data?: unknown };
}

function errorCode(data: unknown): { code: string; message: string } {
  return Value.Check(ErrorBody, data) ? { code: data.code, message: data.message } : { code: 'UNKNOWN', message: 'unrecognized error answer' };
}

export class WeChatPayConnector implements WalletConnector {
  readonly name = 'wechat_pay';
  readonly capabilities: WalletCapabilities = {
    manualCapture: false, partialCapture: false, incrementalAuthorization: false, void: false, sync: true, refund: true, partialRefund: true, flows: ['qr', 'jsapi', 'h5'],
  };
  readonly account: string;
  readonly #appid: string;
  readonly #client: Wechatpay;
  readonly #merchantPrivateKey: Secret<string>;
  readonly #keys: NotificationKeys;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #refundNotifyUrl: string | undefined;

  constructor(options: WeChatPayConnectorOptions) {
    this.account = options.mchid;
    this.#appid = options.appid;
    this.#merchantPrivateKey = new Secret(options.merchantPrivateKeyPem);
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#refundNotifyUrl = options.refundNotifyUrl;
    this.#keys = {
      account: options.mchid,
      platformPublicKeyId: options.platformPublicKeyId,
      platformPublicKey: createPublicKey(options.platformPublicKeyPem),
      apiV3Key: new Secret(options.apiV3Key),
    };
    this.#client = new Wechatpay({
      mchid: options.mchid,
      serial: options.merchantSerialNo,
      privateKey: options.merchantPrivateKeyPem,
      certs: { [options.platformPublicKeyId]: options.platformPublicKeyPem },
      baseURL: options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`,
      timeout: options.timeoutMs ?? limits.providerCallTimeoutMs,
      ...(options.httpsAgent === undefined ? {} : { httpsAgent: options.httpsAgent }),
    });
  }

  async createTrade(request: WalletTradeRequest): Promise<WalletTradeResult> {
    if (request.currency.code !== weChatCurrency) {
      return { status: 'failed', code: 'currency_invalid', message: `WeChat Pay takes CNY only, not ${request.currency.code}` };
    }
    const flow = request.flow;
    if (flow === 'page') return { status: 'failed', code: 'flow_not_supported', message: 'WeChat Pay has no page flow' };
    if (flow === 'jsapi' && (request.payerId ?? '') === '') {
      return { status: 'failed', code: 'PARAM_ERROR', message: "the jsapi flow needs the shopper's openid (payerId)" };
    }
    if (flow === 'h5' && (request.clientIp ?? '') === '') {
      return { status: 'failed', code: 'PARAM_ERROR', message: "the h5 flow needs the shopper's IP address (clientIp)" };
    }
    const path = { qr: 'native', jsapi: 'jsapi', h5: 'h5' }[flow];
    const answer = await this.#call('create trade', () => this.#client.chain(`v3/pay/transactions/${path}`).post(toOrder(request, { appid: this.#appid, mchid: this.account })));
    if (answer.kind === 'lost') return { status: 'unknown', reason: answer.reason };
    if (!succeeded(answer.status)) return this.#createRefused(answer.status, answer.data);
    switch (flow) {
      case 'qr':
        return Value.Check(NativeAnswer, answer.data)
          ? { status: 'created', action: { redirectUrl: null, qrCode: answer.data.code_url, appParameters: null } }
          : this.#malformed('create trade');
      case 'jsapi':
        return Value.Check(JsapiAnswer, answer.data)
          ? { status: 'created', action: { redirectUrl: null, qrCode: null, appParameters: this.#jsapiParameters(answer.data.prepay_id) } }
          : this.#malformed('create trade');
      case 'h5':
        return Value.Check(H5Answer, answer.data)
          ? { status: 'created', action: { redirectUrl: withRedirect(answer.data.h5_url, request.returnUrl), qrCode: null, appParameters: null } }
          : this.#malformed('create trade');
    }
  }

  /**
   * A refusal of an order. The same out_trade_no already used (OUT_TRADE_NO_USED) or already paid (ORDERPAID)
   * means a trade exists under our reference: `unknown`, so that a query decides, never `failed`.
   */
  #createRefused(status: number, data: unknown): WalletTradeResult {
    const { code, message } = errorCode(data);
    if (status === 429 || status >= 500 || code === 'OUT_TRADE_NO_USED' || code === 'ORDERPAID') {
      return { status: 'unknown', reason: `WeChat Pay answered ${status} ${code}: ${message}` };
    }
    return { status: 'failed', code, message };
  }

  /** The parameters of `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`, signed with the merchant key. */
  #jsapiParameters(prepayId: string): Record<string, string> {
    const timeStamp = String(Math.floor(this.#clock.nowMs() / 1000));
    const nonceStr = Formatter.nonce(32);
    const pkg = `prepay_id=${prepayId}`;
    const paySign = Rsa.sign(Formatter.joinedByLineFeed(this.#appid, timeStamp, nonceStr, pkg), this.#merchantPrivateKey.reveal());
    return { appId: this.#appid, timeStamp, nonceStr, package: pkg, signType: 'RSA', paySign };
  }

  /**
   * ORDER_NOT_EXIST: WeChat creates an order when it is placed (unlike Alipay's QR trades, which appear at the
   * scan), so "not found" means our create never arrived, or has not yet. The connector cannot tell that from a
   * trade that exists elsewhere, and `pending` would be a claim that a payable trade exists: it answers `unknown`
   * ("not found"), and the flow decides (for instance, to close or to place the order again).
   */
  async queryTrade(trade: WalletTradeRef): Promise<WalletTradeState> {
    if (trade.currency.code !== weChatCurrency) return { status: 'unknown', reason: `WeChat Pay trades are CNY, not ${trade.currency.code}` };
    const answer = await this.#call('query trade', () => this.#client.chain(`v3/pay/transactions/out-trade-no/${encodeURIComponent(trade.reference)}`)
      .get({ params: { mchid: this.account } }));
    if (answer.kind === 'lost') return { status: 'unknown', reason: answer.reason };
    if (!succeeded(answer.status)) {
      const { code, message } = errorCode(answer.data);
      return { status: 'unknown', reason: code === 'ORDER_NOT_EXIST' ? `not found: ${message}` : `WeChat Pay answered ${answer.status} ${code}: ${message}` };
    }
    if (!Value.Check(TransactionResource, answer.data)) return this.#malformed('query trade');
    return toTradeState(answer.data, { reference: trade.reference, account: this.account, amountMinor: trade.amountMinor });
  }

  /** Close answers an empty, signed 204. A trade paid first (ORDERPAID) is reported paid, from a query. */
  async closeTrade(trade: WalletTradeRef): Promise<WalletCloseResult> {
    if (trade.currency.code !== weChatCurrency) return { status: 'unknown', reason: `WeChat Pay trades are CNY, not ${trade.currency.code}` };
    const answer = await this.#call('close trade', () => this.#client.chain(`v3/pay/transactions/out-trade-no/${encodeURIComponent(trade.reference)}/close`)
      .post({ mchid: this.account }));
    if (answer.kind === 'lost') return { status: 'unknown', reason: answer.reason };
    if (answer.status === 204) return { status: 'closed' };
    const { code, message } = errorCode(answer.data);
    if (answer.status === 429 || answer.status >= 500 || answer.status < 400) {
      return { status: 'unknown', reason: `WeChat Pay answered ${answer.status} ${code}: ${message}` };
    }
    if (code !== 'ORDERPAID') return { status: 'failed', code, message };
    const state = await this.queryTrade(trade);
    return state.status === 'paid' ? state : { status: 'unknown', reason: `close refused as paid, but the query says ${state.status}` };
  }

  async refund(request: RefundRequest & { totalMinor: bigint }): Promise<RefundResult> {
    if (request.currency.code !== weChatCurrency) return { status: 'failed', providerReference: null, failureReason: 'currency_invalid' };
    const body = {
      out_trade_no: request.paymentReference,
      out_refund_no: request.idempotencyKey,
      ...(this.#refundNotifyUrl === undefined ? {} : { notify_url: this.#refundNotifyUrl }),
      amount: { refund: toFen(request.amountMinor, request.currency), total: toFen(request.totalMinor, request.currency), currency: 'CNY' },
    };
    const answer = await this.#call('refund', () => this.#client.chain('v3/refund/domestic/refunds').post(body));
    const result = this.#refundAnswer(answer, request, false);
    return result.status === 'not_found' ? { status: 'unknown', reason: 'refund not found' } : result;
  }

  async syncRefund(request: RefundRequest & { totalMinor: bigint }): Promise<RefundSyncResult> {
    const answer = await this.#call('sync refund', () => this.#client.chain(`v3/refund/domestic/refunds/${encodeURIComponent(request.idempotencyKey)}`).get());
    return this.#refundAnswer(answer, request, true);
  }

  #refundAnswer(answer: Answer, request: RefundRequest & { totalMinor: bigint }, sync: boolean): RefundSyncResult {
    if (answer.kind === 'lost') return { status: 'unknown', reason: answer.reason };
    if (succeeded(answer.status)) {
      if (!Value.Check(RefundResource, answer.data)) return this.#malformed(sync ? 'sync refund' : 'refund');
      return toRefundResult(answer.data, {
        outRefundNo: request.idempotencyKey, outTradeNo: request.paymentReference, amountMinor: request.amountMinor, totalMinor: request.totalMinor,
      });
    }
    const { code, message } = errorCode(answer.data);
    if (answer.status === 429 || answer.status >= 500 || answer.status < 400) {
      return { status: 'unknown', reason: `WeChat Pay answered ${answer.status} ${code}: ${message}` };
    }
    if (sync && code === 'RESOURCE_NOT_EXISTS') return { status: 'not_found' };
    return { status: 'failed', providerReference: null, failureReason: code };
  }

  parseNotification(request: IncomingNotification): WalletNotification {
    return parseWeChatPayNotification(request, this.#keys, Math.floor(this.#clock.nowMs() / 1000));
  }

  /** WeChat reads the HTTP status: 204 (no body) is taken; anything else, with its FAIL body, is sent again. */
  notificationAnswer(accepted: boolean): NotificationAnswer {
    return accepted
      ? { statusCode: 204, contentType: 'text/plain; charset=utf-8', body: '' }
      : { statusCode: 500, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ code: 'FAIL', message: '失败' }) };
  }

  #malformed(operation: string): { status: 'unknown'; reason: string } {
    this.#logger.warn({ operation }, 'WeChat Pay answer has an unexpected shape');
    return { status: 'unknown', reason: `WeChat Pay's ${operation} answer has an unexpected shape` };
  }

  /**
   * Sends through the plugin. Its own errors (`EV3_…`: unsigned, wrongly signed, probe, unknown serial, stale)
   * mean the answer cannot be trusted, even when it carried a status; an error with a response is WeChat's answer.
   */
  async #call(operation: string, send: () => Promise<{ status: number; data: unknown }>): Promise<Answer> {
    try {
      const response = await send();
      return { kind: 'answer', status: response.status, data: response.data };
    } catch (error) {
      const failure = (typeof error === 'object' && error !== null ? error : {}) as PluginError;
      const code = typeof failure.code === 'string' ? failure.code : '';
      const status = failure.response?.status;
      if (!code.startsWith('EV3_') && typeof status === 'number') return { kind: 'answer', status, data: failure.response?.data };
      const reason = code.startsWith('EV3_')
        ? `WeChat Pay answer not verified (${code})`
        : `no answer from WeChat Pay: ${code === '' ? String(failure.message ?? error) : code}`;
      this.#logger.warn({ operation, reason }, 'WeChat Pay call outcome unknown');
      return { kind: 'lost', reason };
    }
  }
}

function succeeded(status: number): boolean {
  return status >= 200 && status < 300;
}

/** WeChat's h5_url takes the return address as an extra `redirect_url` parameter. */
function withRedirect(h5Url: string, returnUrl: string | null): string {
  if (returnUrl === null) return h5Url;
  return `${h5Url}${h5Url.includes('?') ? '&' : '?'}redirect_url=${encodeURIComponent(returnUrl)}`;
}

