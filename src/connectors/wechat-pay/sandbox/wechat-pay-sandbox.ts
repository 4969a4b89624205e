import { createHash, createPublicKey, randomBytes, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { limits } from '../../../limits.ts';
import type { Clock } from '../../../platform/clock.ts';
import { randomBase62, randomDigits } from '../../../platform/random.ts';
import { Secret } from '../../../platform/secret.ts';
import { SandboxFaults, type NotificationSender } from '../../sandbox-faults.ts';
import { CloseOrder, H5Order, JsapiOrder, NativeOrder, RefundApplication, weChatTime } from '../wire.ts';
import { CallbackQueue } from './callback-queue.ts';
import { SandboxSignIn } from './sign-in-sandbox.ts';
import { PlatformSigner, verifyMerchantRequest, type RequestCheck, type SignedRequest } from './sandbox-signing.ts';
import type { RefundOutcome, SandboxRefundRow, SandboxTransactionRow, TradeState, TradeType } from './tables.ts';

/**
 * WeChat Pay's side of the wire in test mode: the provider itself, not a mock. It keeps trades, refunds and
 * callbacks in its own tables (migration 0019), authenticates every request as WeChat does, answers with WeChat's
 * shapes, codes and HTTP statuses, and lets a tester pay on a page in place of the WeChat app. The HTTP routes
 * (register-wechat-pay-sandbox.ts) only carry requests to these methods and sign what they answer.
 *
 * Where a real `code_url` is `weixin://wxpay/bizpayurl?pr=…` (only the WeChat app opens it), the sandbox's is
 * the https URL of its payment page, so that a tester can open the QR code Coffer draws in any browser.
 */
export interface WeChatPaySandboxCredentials {
  mchid: string;
  appid: string;
  merchantSerialNo: string;
  merchantPublicKeyPem: string;
  platformPublicKeyId: string;
  platformPrivateKeyPem: string;
  /** 32 ASCII characters. */
  apiV3Key: string;
}

export interface WeChatPaySandboxOptions<DB> {
  /** Any Kysely on a database migrated to 0019: the sandbox uses `sql` templates on its own tables only. */
  db: Kysely<DB>;
  clock: Clock;
  credentials: WeChatPaySandboxCredentials;
  /** The public URL prefix where the sandbox's pages are served, e.g. `https://127.0.0.1:8443/sandbox/wechat-pay`. */
  scanBaseUrl: () => string;
  send: NotificationSender;
}

/** An answer before it is signed: the HTTP status and the JSON body (null: empty, as the 204 of a close). */
export interface WeChatAnswer {
  httpStatus: number;
  body: Record<string, unknown> | null;
}

function ok(body: Record<string, unknown> | null, httpStatus = 200): WeChatAnswer {
  return { httpStatus, body };
}

export function weChatError(httpStatus: number, code: string, message: string, detail?: Record<string, unknown>): WeChatAnswer {
  return { httpStatus, body: { code, message, ...(detail === undefined ? {} : { detail }) } };
}

/** WeChat's PARAM_ERROR names the first field that breaks the schema, and where it was. */
function paramError(schema: TSchema, value: unknown, location: 'body' | 'query' | 'uri_template'): WeChatAnswer {
  const first = Value.Errors(schema, value).First();
  const field = first?.path === undefined || first.path === '' ? '/' : first.path;
  const shown = first !== undefined && ['string', 'number', 'boolean'].includes(typeof first.value) ? { value: first.value } : {};
  return weChatError(400, 'PARAM_ERROR', `${field}: ${first?.message ?? 'invalid'}`, { field, ...shown, issue: first?.message ?? 'invalid', location });
}

/**
 * Every change of a trade's state the sandbox makes, in one table: by the tester's page (scan, pay, fail,
 * cancel), by the merchant (close, refund) and by time (expire). Nothing else writes `trade_state`.
 * REVOKED belongs to the in-store flows (micropay), which this sandbox does not offer; it is never entered.
 */
const tradeTransitions = {
  scan: { from: ['NOTPAY'], to: 'USERPAYING' },
  pay: { from: ['NOTPAY', 'USERPAYING'], to: 'SUCCESS' },
  fail: { from: ['NOTPAY', 'USERPAYING'], to: 'PAYERROR' },
  cancel: { from: ['NOTPAY', 'USERPAYING'], to: 'CLOSED' },
  close: { from: ['NOTPAY', 'USERPAYING', 'PAYERROR'], to: 'CLOSED' },
  expire: { from: ['NOTPAY', 'USERPAYING'], to: 'CLOSED' },
  refund: { from: ['SUCCESS', 'REFUND'], to: 'REFUND' },
} as const satisfies Record<string, { from: readonly TradeState[]; to: TradeState }>;
type TradeEvent = keyof typeof tradeTransitions;

/** What the tester can do on the payment page. */
export const pageActions = ['scan', 'pay', 'fail', 'cancel'] as const;
export type PageAction = (typeof pageActions)[number];

const stateDescriptions: Record<TradeState, string> = {
  NOTPAY: 'Not paid',
  USERPAYING: 'The shopper is paying',
  SUCCESS: 'Paid',
  CLOSED: 'Closed',
  REVOKED: 'Revoked',
  PAYERROR: 'Payment failed',
  REFUND: 'Refunded (in part or in full)',
};

/** WeChat's default validity of an order that names no `time_expire`. */
const defaultOrderLifetimeMs = 2 * 3_600_000;

/** Test controls of refunds, beyond the faults every sandbox shares. */
export class RefundControls {
  /** How long a refund stays PROCESSING before it settles. */
  settleAfterMs = 2_000;
  /** The merchant's balance available for refunds (fen): a refund above it is NOT_ENOUGH. Null: no limit. */
  balanceFen: number | null = null;
  #outcome: RefundOutcome = 'SUCCESS';
  #outcomesLeft = 0;

  /** The next `count` refunds settle as `outcome` (ABNORMAL: the shopper's account cannot take it; CLOSED). */
  settleNextAs(outcome: RefundOutcome, count = 1): void {
    this.#outcome = outcome;
    this.#outcomesLeft = count;
  }

  nextOutcome(): RefundOutcome {
    if (this.#outcomesLeft <= 0) return 'SUCCESS';
    this.#outcomesLeft -= 1;
    return this.#outcome;
  }

  reset(): void {
    this.settleAfterMs = 2_000;
    this.balanceFen = null;
    this.#outcomesLeft = 0;
  }
}

/** The order fields the sandbox keeps, whichever of the three calls created it. */
interface OrderInput {
  appid: string;
  mchid: string;
  description: string;
  outTradeNo: string;
  timeExpire: string | undefined;
  attach: string | null;
  notifyUrl: string;
  totalFen: number;
  payerOpenid: string | null;
  payerClientIp: string | null;
  /** The request as parsed, for the digest that tells a repeat from a reuse of the out_trade_no. */
  parsed: unknown;
}

/** The payment page's view of a trade. */
export interface ScanView {
  token: string;
  formToken: string;
  mchid: string;
  outTradeNo: string;
  description: string;
  tradeType: TradeType;
  tradeState: TradeState;
  amountFen: bigint;
  expiresAt: Date;
}

export type PageResult = { ok: true; state: TradeState } | { ok: false; httpStatus: number; message: string };

export class WeChatPaySandbox<DB> {
  readonly faults = new SandboxFaults();
  readonly refunds = new RefundControls();
  /** WeChat's web sign-in, which gives a page inside WeChat the shopper's openid. */
  readonly signIn: SandboxSignIn;
  readonly #db: Kysely<DB>;
  readonly #clock: Clock;
  readonly #account: { mchid: string; appid: string; merchantSerialNo: string };
  readonly #merchantKey: KeyObject;
  readonly #signer: PlatformSigner;
  readonly #scanBaseUrl: () => string;
  readonly #callbacks: CallbackQueue<DB>;
  #probeAnswersLeft = 0;
  #throttledLeft = 0;

  constructor(options: WeChatPaySandboxOptions<DB>) {
    this.#db = options.db;
    this.#clock = options.clock;
    // The private key and the APIv3 key go, wrapped, to the parts that use them; only the ids are kept here.
    this.#account = { mchid: options.credentials.mchid, appid: options.credentials.appid, merchantSerialNo: options.credentials.merchantSerialNo };
    this.#merchantKey = createPublicKey(options.credentials.merchantPublicKeyPem);
    this.#signer = new PlatformSigner(new Secret(options.credentials.platformPrivateKeyPem), options.credentials.platformPublicKeyId, options.clock);
    this.#scanBaseUrl = options.scanBaseUrl;
    this.signIn = new SandboxSignIn(options.credentials.appid, options.credentials.apiV3Key, options.clock, () => new URL(options.scanBaseUrl()).origin);
    this.#callbacks = new CallbackQueue({
      db: options.db, clock: options.clock, apiV3Key: new Secret(options.credentials.apiV3Key), signer: this.#signer, faults: this.faults, send: options.send,
    });
  }

  /** WeChat's authentication of a merchant request (see sandbox-signing.ts). */
  verifyRequest(request: SignedRequest): RequestCheck {
    const merchant = { mchid: this.#account.mchid, serialNo: this.#account.merchantSerialNo, publicKey: this.#merchantKey };
    return verifyMerchantRequest(request, merchant, Math.floor(this.#clock.nowMs() / 1000));
  }

  /** The headers that sign an answer's exact body text. */
  signAnswer(body: string): Record<string, string> {
    const probe = this.#probeAnswersLeft > 0;
    if (probe) this.#probeAnswersLeft -= 1;
    return { ...this.#signer.headers(body, { probe }), 'Request-ID': randomBytes(16).toString('hex') };
  }

  /**
   * Test control: the next `count` API answers carry a `WECHATPAY/SIGNTEST/` probe signature, as WeChat sends now
   * and then to check that merchants verify answers (the sandbox has acted; only the signature is a probe).
   */
  probeNextAnswers(count = 1): void {
    this.#probeAnswersLeft = count;
  }

  /**
   * Test control: the next `count` API requests are refused with 429 FREQUENCY_LIMITED, as WeChat refuses a
   * merchant over its call-rate limits (nothing is done; the same request may be sent again later).
   */
  throttleNextRequests(count = 1): void {
    this.#throttledLeft = count;
  }

  /** Whether this request is refused by `throttleNextRequests` (and counts it). */
  takeThrottle(): boolean {
    if (this.#throttledLeft <= 0) return false;
    this.#throttledLeft -= 1;
    return true;
  }

  resetControls(): void {
    this.faults.reset();
    this.refunds.reset();
    this.#probeAnswersLeft = 0;
    this.#throttledLeft = 0;
  }

  /** `POST /v3/pay/transactions/{native,jsapi,h5}`. A repeat of the same order gives the same answer. */
  async createOrder(tradeType: TradeType, signer: string, input: unknown): Promise<WeChatAnswer> {
    const parsed = parseOrder(tradeType, input);
    if ('httpStatus' in parsed) return parsed;
    if (parsed.mchid !== signer) return weChatError(400, 'INVALID_REQUEST', 'mchid is not the merchant that signed the request');
    if (parsed.appid !== this.#account.appid) return weChatError(400, 'APPID_MCHID_NOT_MATCH', 'appid is not bound to this mchid');
    const nowMs = this.#clock.nowMs();
    const expiresMs = parsed.timeExpire === undefined ? nowMs + defaultOrderLifetimeMs : Date.parse(parsed.timeExpire);
    if (!Number.isFinite(expiresMs) || expiresMs <= nowMs) return weChatError(400, 'INVALID_REQUEST', 'time_expire has passed');
    const requestHash = digest([tradeType, parsed.parsed]);
    const prepayId = tradeType === 'NATIVE' ? null : `wx${weChatTime(nowMs).replace(/\D/g, '').slice(0, 14)}${randomBytes(10).toString('hex')}`;
    const inserted = await sql<SandboxTransactionRow>`
      INSERT INTO sandbox_wechat_pay_transactions (transaction_id, mchid, appid, out_trade_no, trade_type, trade_state,
        request_hash, amount_total, currency, description, notify_url, attach, payer_openid, payer_client_ip, prepay_id,
        scan_token, form_token, time_expire, created_at, updated_at)
      VALUES (${`4200${randomDigits(24)}`}, ${parsed.mchid}, ${parsed.appid}, ${parsed.outTradeNo}, ${tradeType}, 'NOTPAY',
        ${requestHash}, ${parsed.totalFen}, 'CNY', ${parsed.description}, ${parsed.notifyUrl}, ${parsed.attach},
        ${parsed.payerOpenid}, ${parsed.payerClientIp}, ${prepayId}, ${randomBase62(24)}, ${randomBase62(32)},
        ${new Date(expiresMs)}, ${new Date(nowMs)}, ${new Date(nowMs)})
      ON CONFLICT (mchid, out_trade_no) DO NOTHING
      RETURNING *`.execute(this.#db);
    const created = inserted.rows[0];
    if (created !== undefined) return this.#orderAnswer(created);
    const existing = await this.#findTrade(this.#db, sql`mchid = ${signer} AND out_trade_no = ${parsed.outTradeNo}`);
    if (existing === undefined) return weChatError(500, 'SYSTEM_ERROR', 'the order vanished; retry with the same parameters');
    if (existing.request_hash !== requestHash) return weChatError(403, 'OUT_TRADE_NO_USED', 'out_trade_no was used for another order');
    switch (existing.trade_state) {
      case 'NOTPAY':
      case 'USERPAYING':
        return this.#orderAnswer(existing);
      case 'SUCCESS':
      case 'REFUND':
        return weChatError(400, 'ORDERPAID', 'the order is paid');
      case 'CLOSED':
      case 'REVOKED':
      case 'PAYERROR':
        return weChatError(400, 'ORDER_CLOSED', 'the order is closed; use a new out_trade_no');
    }
  }

  /** `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=` */
  async queryByOutTradeNo(signer: string, outTradeNo: string, query: unknown): Promise<WeChatAnswer> {
    const refused = checkQueryMchid(signer, query);
    if (refused !== null) return refused;
    const row = await this.#findTrade(this.#db, sql`mchid = ${signer} AND out_trade_no = ${outTradeNo}`);
    return row === undefined ? weChatError(404, 'ORDER_NOT_EXIST', 'no such order') : ok(transactionResource(row));
  }

  /** `GET /v3/pay/transactions/id/{transaction_id}?mchid=`: only a trade the shopper has reached has an id to ask by. */
  async queryByTransactionId(signer: string, transactionId: string, query: unknown): Promise<WeChatAnswer> {
    const refused = checkQueryMchid(signer, query);
    if (refused !== null) return refused;
    const row = await this.#findTrade(this.#db, sql`mchid = ${signer} AND transaction_id = ${transactionId}`);
    return row === undefined || !transactionIdShown(row.trade_state)
      ? weChatError(404, 'ORDER_NOT_EXIST', 'no such order')
      : ok(transactionResource(row));
  }

  /** `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close`: an empty 204; closing a closed order again is fine. */
  async closeOrder(signer: string, outTradeNo: string, input: unknown): Promise<WeChatAnswer> {
    if (!Value.Check(CloseOrder, input)) return paramError(CloseOrder, input, 'body');
    if (input.mchid !== signer) return weChatError(400, 'INVALID_REQUEST', 'mchid is not the merchant that signed the request');
    return this.#db.transaction().execute(async (tx) => {
      const row = await this.#findTrade(tx, sql`mchid = ${signer} AND out_trade_no = ${outTradeNo}`, true);
      if (row === undefined) return weChatError(404, 'ORDER_NOT_EXIST', 'no such order');
      switch (row.trade_state) {
        case 'SUCCESS':
        case 'REFUND':
          return weChatError(400, 'ORDERPAID', 'the order is paid and cannot be closed');
        case 'CLOSED':
        case 'REVOKED':
          return ok(null, 204);
        case 'NOTPAY':
        case 'USERPAYING':
        case 'PAYERROR':
          await this.#transition(tx, row, 'close');
          return ok(null, 204);
      }
    });
  }

  /**
   * `POST /v3/refund/domestic/refunds`: idempotent by out_refund_no (the same request answers the refund as it is
   * now; other parameters are refused), never more than the trade's total over all its refunds. A refund starts
   * PROCESSING and settles `refunds.settleAfterMs` later (see `deliverDueNotifications`).
   */
  async createRefund(signer: string, input: unknown): Promise<WeChatAnswer> {
    if (!Value.Check(RefundApplication, input)) return paramError(RefundApplication, input, 'body');
    const { transaction_id: transactionId, out_trade_no: outTradeNo } = input;
    if (transactionId === undefined && outTradeNo === undefined) {
      return weChatError(400, 'PARAM_ERROR', 'transaction_id or out_trade_no is required', { field: '/out_trade_no', location: 'body' });
    }
    if (input.amount.refund > input.amount.total) return weChatError(400, 'INVALID_REQUEST', 'amount.refund is more than amount.total');
    const requestHash = digest(input);
    // A repeat of a refund whose time has come answers it settled, as a query would.
    await this.#settleRefunds(1, sql`mchid = ${signer} AND out_refund_no = ${input.out_refund_no}`);
    return this.#db.transaction().execute(async (tx) => {
      const trade = await this.#findTrade(tx, sql`mchid = ${signer} AND ${transactionId === undefined
        ? sql`out_trade_no = ${outTradeNo}` : sql`transaction_id = ${transactionId}`}`, true);
      const previous = (await sql<SandboxRefundRow>`SELECT * FROM sandbox_wechat_pay_refunds
        WHERE mchid = ${signer} AND out_refund_no = ${input.out_refund_no}`.execute(tx)).rows[0];
      if (previous !== undefined) {
        if (previous.request_hash !== requestHash || trade === undefined) {
          return weChatError(400, 'INVALID_REQUEST', 'out_refund_no was used for another refund');
        }
        return ok(refundResource(previous, trade));
      }
      if (trade === undefined || (outTradeNo !== undefined && trade.out_trade_no !== outTradeNo)) {
        return weChatError(404, 'RESOURCE_NOT_EXISTS', 'no such order');
      }
      const refused = await this.#refundRefusal(tx, trade, input.amount);
      if (refused !== null) return refused;
      const nowMs = this.#clock.nowMs();
      const created = await sql<SandboxRefundRow>`
        INSERT INTO sandbox_wechat_pay_refunds (refund_id, mchid, out_refund_no, transaction_id, request_hash, amount_refund,
          amount_total, currency, reason, notify_url, status, settles_to, settles_at, created_at)
        VALUES (${`50${randomDigits(27)}`}, ${signer}, ${input.out_refund_no}, ${trade.transaction_id}, ${requestHash},
          ${input.amount.refund}, ${input.amount.total}, 'CNY', ${input.reason ?? null}, ${input.notify_url ?? null}, 'PROCESSING',
          ${this.refunds.nextOutcome()}, ${new Date(nowMs + this.refunds.settleAfterMs)}, ${new Date(nowMs)})
        RETURNING *`.execute(tx);
      const refund = created.rows[0];
      if (refund === undefined) return weChatError(500, 'SYSTEM_ERROR', 'the refund was not recorded');
      if (this.refunds.balanceFen !== null) this.refunds.balanceFen -= input.amount.refund;
      return ok(refundResource(refund, await this.#transition(tx, trade, 'refund')));
    });
  }

  async #refundRefusal(tx: Kysely<DB>, trade: SandboxTransactionRow, amount: { refund: number; total: number }): Promise<WeChatAnswer | null> {
    if (trade.trade_state !== 'SUCCESS' && trade.trade_state !== 'REFUND') {
      return weChatError(400, 'INVALID_REQUEST', `the order is not paid (${trade.trade_state})`);
    }
    if (BigInt(amount.total) !== trade.amount_total) return weChatError(400, 'INVALID_REQUEST', 'amount.total is not the order total');
    // Refunds that are processing, done or stuck (ABNORMAL) hold their amount; a CLOSED one gives it back.
    const held = await sql<{ refunded: bigint }>`
      SELECT coalesce(sum(amount_refund), 0)::bigint AS refunded FROM sandbox_wechat_pay_refunds
      WHERE transaction_id = ${trade.transaction_id} AND status IN ('PROCESSING', 'SUCCESS', 'ABNORMAL')`.execute(tx);
    const refunded = BigInt(held.rows[0]?.refunded ?? 0n);
    if (refunded + BigInt(amount.refund) > trade.amount_total) {
      return weChatError(400, 'INVALID_REQUEST', 'the refund is more than what is left to refund of the order');
    }
    if (this.refunds.balanceFen !== null && amount.refund > this.refunds.balanceFen) {
      return weChatError(403, 'NOT_ENOUGH', "the merchant's available balance cannot cover the refund");
    }
    return null;
  }

  /** `GET /v3/refund/domestic/refunds/{out_refund_no}` */
  async queryRefund(signer: string, outRefundNo: string): Promise<WeChatAnswer> {
    const refund = (await sql<SandboxRefundRow>`SELECT * FROM sandbox_wechat_pay_refunds
      WHERE mchid = ${signer} AND out_refund_no = ${outRefundNo}`.execute(this.#db)).rows[0];
    if (refund === undefined) return weChatError(404, 'RESOURCE_NOT_EXISTS', 'no such refund');
    await this.#settleRefunds(1, sql`refund_id = ${refund.refund_id}`);
    const settled = (await sql<SandboxRefundRow>`SELECT * FROM sandbox_wechat_pay_refunds
      WHERE refund_id = ${refund.refund_id}`.execute(this.#db)).rows[0] ?? refund;
    const trade = await this.#findTrade(this.#db, sql`transaction_id = ${refund.transaction_id}`);
    return trade === undefined ? weChatError(500, 'SYSTEM_ERROR', 'the refund lost its order') : ok(refundResource(settled, trade));
  }

  /** The trade behind a payment page token (the `code_url`/`h5_url` key), or undefined. */
  async scanView(token: string): Promise<ScanView | undefined> {
    const row = await this.#findTrade(this.#db, sql`scan_token = ${token}`);
    if (row === undefined) return undefined;
    return {
      token: row.scan_token, formToken: row.form_token, mchid: row.mchid, outTradeNo: row.out_trade_no, description: row.description,
      tradeType: row.trade_type, tradeState: row.trade_state, amountFen: row.amount_total, expiresAt: row.time_expire,
    };
  }

  /**
   * The tester acts on the payment page. The form carries the trade's own token, so another site cannot post it
   * blind. Paying queues the TRANSACTION.SUCCESS callback in the same transaction as the change.
   */
  async pageAction(token: string, action: PageAction, formToken: string): Promise<PageResult> {
    return this.#db.transaction().execute(async (tx): Promise<PageResult> => {
      const row = await this.#findTrade(tx, sql`scan_token = ${token}`, true);
      if (row === undefined) return { ok: false, httpStatus: 404, message: 'No such payment.' };
      const expected = Buffer.from(row.form_token);
      const given = Buffer.from(formToken);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return { ok: false, httpStatus: 403, message: 'The form is not from this payment page. Reload the page and try again.' };
      }
      if (!(tradeTransitions[action].from as readonly TradeState[]).includes(row.trade_state)) {
        return { ok: false, httpStatus: 409, message: `The payment is ${stateDescriptions[row.trade_state].toLowerCase()}.` };
      }
      const changed = await this.#transition(tx, row, action);
      if (action === 'pay') {
        await this.#callbacks.queue(tx, {
          url: changed.notify_url, eventType: 'TRANSACTION.SUCCESS', summary: '支付成功', originalType: 'transaction',
          resource: transactionResource(changed),
        });
      }
      return { ok: true, state: changed.trade_state };
    });
  }

  /**
   * The JSAPI flow's in-app payment: WeChat checks the parameters the merchant's page passes to
   * `getBrandWCPayRequest` (its paySign, by the merchant's key) before showing the payment. Returns the payment
   * page's token.
   */
  async jsapiPageToken(parameters: Record<string, string | undefined>): Promise<{ ok: true; token: string } | { ok: false; message: string }> {
    const { appId, timeStamp, nonceStr, package: pkg, signType, paySign } = parameters;
    if (appId === undefined || timeStamp === undefined || nonceStr === undefined || pkg === undefined || paySign === undefined) {
      return { ok: false, message: 'appId, timeStamp, nonceStr, package, signType and paySign are all required.' };
    }
    if (appId !== this.#account.appid) return { ok: false, message: 'appId is not the app bound to the merchant.' };
    if (signType !== 'RSA') return { ok: false, message: 'signType must be RSA.' };
    const prepayId = /^prepay_id=([0-9A-Za-z]{1,64})$/.exec(pkg)?.[1];
    if (prepayId === undefined) return { ok: false, message: 'package must be prepay_id=….' };
    const message = Buffer.from(`${appId}\n${timeStamp}\n${nonceStr}\n${pkg}\n`, 'utf8');
    if (!verify('sha256', message, this.#merchantKey, Buffer.from(paySign, 'base64'))) return { ok: false, message: 'paySign is not valid.' };
    const row = await this.#findTrade(this.#db, sql`prepay_id = ${prepayId} AND trade_type = 'JSAPI'`);
    return row === undefined ? { ok: false, message: 'No such prepay_id.' } : { ok: true, token: row.scan_token };
  }

  /**
   * The background work of WeChat's side, one bounded batch: settles refunds that are due (queueing their
   * REFUND.* callbacks), then sends due callbacks. Returns how many rows it handled.
   */
  async deliverDueNotifications(limit: number): Promise<number> {
    const settled = await this.#settleRefunds(limit, null);
    return settled + (await this.#callbacks.deliverDue(limit));
  }

  /** Queues a callback signed with a `WECHATPAY/SIGNTEST/` probe signature, which the merchant must refuse. */
  async queueSignatureProbe(url: string): Promise<string> {
    return this.#callbacks.queueProbe(url);
  }

  /** Moves due PROCESSING refunds (those matching `which`, if given) to their outcome and queues their callbacks. */
  async #settleRefunds(limit: number, which: RawBuilder<unknown> | null): Promise<number> {
    const nowMs = this.#clock.nowMs();
    return this.#db.transaction().execute(async (tx) => {
      const settled = await sql<SandboxRefundRow>`
        UPDATE sandbox_wechat_pay_refunds SET status = settles_to,
          success_time = CASE WHEN settles_to = 'SUCCESS' THEN ${new Date(nowMs)}::timestamptz ELSE NULL END
        WHERE refund_id IN (
          SELECT refund_id FROM sandbox_wechat_pay_refunds
          WHERE status = 'PROCESSING' AND settles_at <= ${new Date(nowMs)} ${which === null ? sql`` : sql`AND ${which}`}
          ORDER BY settles_at LIMIT ${Math.max(0, Math.min(limit, limits.jobBatchSize))} FOR UPDATE SKIP LOCKED)
        RETURNING *`.execute(tx);
      for (const refund of settled.rows) {
        const trade = await this.#findTrade(tx, sql`transaction_id = ${refund.transaction_id}`);
        if (trade === undefined) continue;
        await this.#callbacks.queue(tx, {
          url: refund.notify_url ?? trade.notify_url, eventType: `REFUND.${refund.status}`, summary: refundSummaries[refund.settles_to],
          originalType: 'refund', resource: refundNotice(refund, trade),
        });
      }
      return settled.rows.length;
    });
  }

  /** Finds a trade, first closing it if it expired unpaid (WeChat closes an order at its `time_expire`). */
  async #findTrade(executor: Kysely<DB>, where: RawBuilder<unknown>, lock = false): Promise<SandboxTransactionRow | undefined> {
    const found = await sql<SandboxTransactionRow>`SELECT * FROM sandbox_wechat_pay_transactions WHERE ${where}
      ${lock ? sql`FOR UPDATE` : sql``}`.execute(executor);
    const row = found.rows[0];
    if (row === undefined) return undefined;
    const expirable = (tradeTransitions.expire.from as readonly TradeState[]).includes(row.trade_state);
    if (!expirable || row.time_expire.getTime() > this.#clock.nowMs()) return row;
    return this.#transition(executor, row, 'expire');
  }

  /** Applies one row of `tradeTransitions`; paying also records when and who paid. */
  async #transition(executor: Kysely<DB>, row: SandboxTransactionRow, event: TradeEvent): Promise<SandboxTransactionRow> {
    const { from, to } = tradeTransitions[event];
    const nowMs = this.#clock.nowMs();
    const paid = event === 'pay';
    const updated = await sql<SandboxTransactionRow>`
      UPDATE sandbox_wechat_pay_transactions
      SET trade_state = ${to}, updated_at = ${new Date(nowMs)},
          success_time = ${paid ? sql`${new Date(nowMs)}::timestamptz` : sql`success_time`},
          payer_openid = coalesce(payer_openid, ${paid ? `o${randomBase62(27)}` : null}::text)
      WHERE transaction_id = ${row.transaction_id} AND trade_state IN (${sql.join([...from])})
      RETURNING *`.execute(executor);
    // The caller locked or just read the row in this state; if it moved meanwhile, the answer is what it is now.
    return updated.rows[0] ?? (await this.#findTrade(executor, sql`transaction_id = ${row.transaction_id}`)) ?? row;
  }

  #orderAnswer(row: SandboxTransactionRow): WeChatAnswer {
    const base = this.#scanBaseUrl().replace(/\/+$/, '');
    switch (row.trade_type) {
      case 'NATIVE':
        return ok({ code_url: `${base}/scan/${row.scan_token}` });
      case 'JSAPI':
        return ok({ prepay_id: row.prepay_id });
      case 'MWEB':
        // WeChat's h5_url carries a query, to which the merchant appends `&redirect_url=…`.
        return ok({ h5_url: `${base}/scan/${row.scan_token}?prepay_id=${row.prepay_id ?? ''}` });
    }
  }
}

function parseOrder(tradeType: TradeType, input: unknown): OrderInput | WeChatAnswer {
  const common = (order: NativeOrder | JsapiOrder | H5Order) => ({
    appid: order.appid, mchid: order.mchid, description: order.description, outTradeNo: order.out_trade_no,
    timeExpire: order.time_expire, attach: order.attach ?? null, notifyUrl: order.notify_url, totalFen: order.amount.total,
    payerClientIp: order.scene_info?.payer_client_ip ?? null, parsed: order,
  });
  switch (tradeType) {
    case 'NATIVE':
      return Value.Check(NativeOrder, input) ? { ...common(input), payerOpenid: null } : paramError(NativeOrder, input, 'body');
    case 'JSAPI':
      return Value.Check(JsapiOrder, input) ? { ...common(input), payerOpenid: input.payer.openid } : paramError(JsapiOrder, input, 'body');
    case 'MWEB':
      return Value.Check(H5Order, input) ? { ...common(input), payerOpenid: null } : paramError(H5Order, input, 'body');
  }
}

function checkQueryMchid(signer: string, query: unknown): WeChatAnswer | null {
  const mchid = typeof query === 'object' && query !== null ? (query as Record<string, unknown>).mchid : undefined;
  if (typeof mchid !== 'string' || mchid === '') {
    return weChatError(400, 'PARAM_ERROR', 'mchid is required', { field: 'mchid', location: 'query' });
  }
  return mchid === signer ? null : weChatError(400, 'INVALID_REQUEST', 'mchid is not the merchant that signed the request');
}

/** A digest of a parsed request that does not depend on the order of its keys. */
function digest(value: unknown): string {
  const canonical = (item: unknown): unknown => {
    if (Array.isArray(item)) return item.map(canonical);
    if (typeof item !== 'object' || item === null) return item;
    return Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, inner]) => [key, canonical(inner)]));
  };
  return createHash('sha256').update(JSON.stringify(canonical(value))).digest('hex');
}

/** The shopper's transaction id exists once the shopper reached the trade. */
function transactionIdShown(state: TradeState): boolean {
  return state !== 'NOTPAY' && state !== 'CLOSED';
}

/** The trade as the query answers it, and as the TRANSACTION.SUCCESS callback's resource carries it. */
export function transactionResource(row: SandboxTransactionRow): Record<string, unknown> {
  const successTime = row.success_time;
  const paid = successTime !== null;
  const total = Number(row.amount_total);
  return {
    appid: row.appid,
    mchid: row.mchid,
    out_trade_no: row.out_trade_no,
    ...(transactionIdShown(row.trade_state) ? { transaction_id: row.transaction_id } : {}),
    trade_type: row.trade_type,
    trade_state: row.trade_state,
    trade_state_desc: stateDescriptions[row.trade_state],
    ...(paid ? { bank_type: 'OTHERS', success_time: weChatTime(successTime.getTime()) } : {}),
    ...(row.attach === null ? {} : { attach: row.attach }),
    ...(row.payer_openid === null ? {} : { payer: { openid: row.payer_openid } }),
    amount: { total, ...(paid ? { payer_total: total } : {}), currency: row.currency, payer_currency: row.currency },
    promotion_detail: [],
  };
}

const refundSummaries: Record<RefundOutcome, string> = { SUCCESS: '退款成功', ABNORMAL: '退款异常', CLOSED: '退款关闭' };

function refundResource(refund: SandboxRefundRow, trade: SandboxTransactionRow): Record<string, unknown> {
  const total = Number(refund.amount_total);
  const amount = Number(refund.amount_refund);
  return {
    refund_id: refund.refund_id,
    out_refund_no: refund.out_refund_no,
    transaction_id: refund.transaction_id,
    out_trade_no: trade.out_trade_no,
    channel: 'ORIGINAL',
    user_received_account: '支付用户零钱',
    ...(refund.success_time === null ? {} : { success_time: weChatTime(refund.success_time.getTime()) }),
    create_time: weChatTime(refund.created_at.getTime()),
    status: refund.status,
    funds_account: 'AVAILABLE',
    amount: {
      total, refund: amount, payer_total: total, payer_refund: amount, settlement_total: total, settlement_refund: amount,
      discount_refund: 0, currency: refund.currency, refund_fee: 0,
    },
    promotion_detail: [],
  };
}

/** The REFUND.* callback's resource. */
function refundNotice(refund: SandboxRefundRow, trade: SandboxTransactionRow): Record<string, unknown> {
  return {
    mchid: refund.mchid,
    out_trade_no: trade.out_trade_no,
    transaction_id: refund.transaction_id,
    out_refund_no: refund.out_refund_no,
    refund_id: refund.refund_id,
    refund_status: refund.status,
    ...(refund.success_time === null ? {} : { success_time: weChatTime(refund.success_time.getTime()) }),
    user_received_account: '支付用户零钱',
    amount: { total: Number(refund.amount_total), refund: Number(refund.amount_refund), payer_total: Number(refund.amount_total), payer_refund: Number(refund.amount_refund) },
  };
}
