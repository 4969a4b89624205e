import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { sql, type QueryExecutorProvider, type RawBuilder } from 'kysely';
import { assert, AssertionFailure, assertNever } from '../../../platform/assert.ts';
import type { Clock } from '../../../platform/clock.ts';
import { randomBase62, randomDigits } from '../../../platform/random.ts';
import { SandboxFaults, type NotificationSender } from '../../sandbox-faults.ts';
import { signedEnvelope, responseKey } from './answer-envelope.ts';
import { parseOrder, parseRefund, parseRefundQuery, parseTradeKey, type TradeKey } from './biz-content.ts';
import { cashierContentSecurityPolicy, renderCashierPage, renderMessagePage } from './cashier-page.ts';
import {
  businessFailure,
  isRefusal,
  mergeParameters,
  parseGatewayRequest,
  refusal,
  type GatewayMethod,
  type ParsedRequest,
  type Refusal,
  type VerifiedRequest,
} from './gateway-request.ts';
import { notificationParams, signedNotificationBody } from './notification-form.ts';
import type { SandboxAlipayNotificationRow, SandboxAlipayRefundRow, SandboxAlipayTradeRow, TradeMethod } from './tables.ts';
import { alipayTime, formatYuan, rsa2Sign, signContent } from './wire-format.ts';

/**
 * Alipay's side of the wire in test mode: the v2 gateway (`gateway.do`) for precreate, page pay, query, refund,
 * refund query and close; the cashier page where a tester plays the shopper; and the notifications Alipay posts
 * to merchants, retried on its schedule. It verifies requests and signs everything it sends exactly as Alipay
 * does, so the official SDK runs against it unchanged, and it reproduces Alipay's quirks: a precreated trade
 * does not exist until its QR code is scanned, identical repeats are answered as the first time, and a repeated
 * out_request_no refunds once. State lives in its own tables (migration 0018), reached with `sql` only.
 */

/** What the sandbox needs of a database: Coffer's `Kysely<Database>` is one. */
export interface SandboxDatabase extends QueryExecutorProvider {
  transaction(): { execute<T>(callback: (tx: QueryExecutorProvider) => Promise<T>): Promise<T> };
}

export interface AlipaySandboxOptions {
  db: SandboxDatabase;
  clock: Clock;
  credentials: { appId: string; appPublicKeyPem: string; alipayPrivateKeyPem: string };
  /** The public URL prefix under which the sandbox's routes are served (`https://host:port/sandbox/alipay`). */
  cashierBaseUrl: () => string;
  send: NotificationSender;
  /**
   * Alipay's optional "trade created" notification (WAIT_BUYER_PAY when a trade comes to exist), which merchants
   * subscribe to separately; off by default, as at Alipay.
   */
  notifyWaitBuyerPay?: boolean;
}

/** The sandbox's own bounds. They are test instruments, not Coffer's limits (those are in src/limits.ts). */
export const alipaySandboxLimits = {
  /** Alipay's retry schedule: the delays after the first attempt and after each retry (8 attempts in about 25 h). */
  notificationRetryDelaysMs: [4 * 60_000, 10 * 60_000, 10 * 60_000, 3_600_000, 2 * 3_600_000, 6 * 3_600_000, 15 * 3_600_000] as readonly number[],
  /** A notification being sent is not sent again by another deliverer for this long (a crash mid-send retries after it). */
  notificationLeaseMs: 60_000,
  /** A `reorder`ed notification that no later one releases is sent after this (scaled) wait anyway. */
  heldNotificationBackstopMs: 4 * 60_000,
  /** Copies a `duplicate` fault may ask for. */
  duplicatesMax: 10,
  /** Characters of a merchant's answer kept for inspection. */
  answerKeptMax: 200,
  /** Request bodies the sandbox's routes accept. */
  bodyBytesMax: 64 * 1024,
  /** A `timeout` fault holds the connection until the caller gives up, but never longer than this. */
  heldAnswerMsMax: 120_000,
} as const;

export type GatewayAnswer =
  /** The signed JSON envelope; `latencyMs` and `hold` are the answer faults to apply before (or instead of) sending it. */
  | { kind: 'json'; body: string; latencyMs: number; hold: boolean }
  | { kind: 'redirect'; location: string }
  | { kind: 'page'; statusCode: number; html: string; csp: string };

export type CashierAnswer =
  | { kind: 'page'; statusCode: number; html: string; csp: string }
  | { kind: 'redirect'; location: string };

export type CashierAction = 'scan' | 'pay' | 'cancel';

type Fields = Record<string, string>;
type Tx = QueryExecutorProvider;

const messageCsp = cashierContentSecurityPolicy(null);

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function tokensEqual(given: string | null, expected: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function success(fields: Fields): Fields {
  return { code: '10000', msg: 'Success', ...fields };
}

function messagePage(statusCode: number, title: string, message: string): CashierAnswer & GatewayAnswer {
  return { kind: 'page', statusCode, html: renderMessagePage(title, message), csp: messageCsp };
}

/** Alipay's buyer ids are 16 digits starting 2088; logon ids are shown masked. */
function maskedLogonId(buyerId: string): string {
  return `${buyerId.slice(4, 7)}***@sandbox.alipay.example`;
}

export class AlipaySandbox {
  readonly faults = new SandboxFaults();
  notifyWaitBuyerPay: boolean;
  readonly #db: SandboxDatabase;
  readonly #clock: Clock;
  readonly #appId: string;
  readonly #appPublicKeyPem: string;
  readonly #alipayPrivateKeyPem: string;
  readonly #cashierBaseUrl: () => string;
  readonly #send: NotificationSender;
  /** The merchant's Alipay user id (`seller_id`), fixed for the app. */
  readonly #sellerId: string;

  constructor(options: AlipaySandboxOptions) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#appId = options.credentials.appId;
    this.#appPublicKeyPem = options.credentials.appPublicKeyPem;
    this.#alipayPrivateKeyPem = options.credentials.alipayPrivateKeyPem;
    this.#cashierBaseUrl = options.cashierBaseUrl;
    this.#send = options.send;
    this.notifyWaitBuyerPay = options.notifyWaitBuyerPay ?? false;
    this.#sellerId = `2088${(BigInt(`0x${sha256(this.#appId)}`) % 10n ** 12n).toString().padStart(12, '0')}`;
  }

  /** A request to `gateway.do`: `query` is the raw query string, `body` the raw form body ('' for a GET). */
  async gateway(input: { query: string; body: string }): Promise<GatewayAnswer> {
    const parsed = parseGatewayRequest(mergeParameters(input.query, input.body), {
      appId: this.#appId,
      appPublicKeyPem: this.#appPublicKeyPem,
    });
    const method = parsed.ok ? parsed.request.method : parsed.method;
    // The page method is a browser's visit: it answers with pages, and the answer faults are for API calls.
    if (method === 'alipay.trade.page.pay') return this.#pagePay(parsed);
    if (!parsed.ok) return this.#envelope(method, parsed.refusal);
    const faults = this.faults.nextAnswer();
    if (faults.error === true) return this.#envelope(method, refusal('20000', 'isp.unknow-error', '系统繁忙'));
    const fields = await this.#act(parsed.request);
    return { ...this.#envelope(method, fields), latencyMs: faults.latencyMs ?? 0, hold: faults.timeout === true };
  }

  #envelope(method: GatewayMethod | null, fields: Fields | Refusal): Extract<GatewayAnswer, { kind: 'json' }> {
    return { kind: 'json', body: signedEnvelope(responseKey(method), { ...fields }, this.#alipayPrivateKeyPem), latencyMs: 0, hold: false };
  }

  async #act(request: VerifiedRequest): Promise<Fields | Refusal> {
    switch (request.method) {
      case 'alipay.trade.precreate':
        return this.#precreate(request);
      case 'alipay.trade.query':
        return this.#query(request);
      case 'alipay.trade.close':
        return this.#close(request);
      case 'alipay.trade.refund':
        return this.#refund(request);
      case 'alipay.trade.fastpay.refund.query':
        return this.#refundQuery(request);
      case 'alipay.trade.page.pay':
        throw new AssertionFailure('the page method is answered by #pagePay');
      default:
        return assertNever(request.method, 'gateway method');
    }
  }

  async #precreate(request: VerifiedRequest): Promise<Fields | Refusal> {
    const opened = await this.#openTrade(request, 'alipay.trade.precreate');
    if (isRefusal(opened)) return opened;
    assert(opened.qr_code !== null, 'a precreated trade has its QR code');
    return success({ out_trade_no: opened.out_trade_no, qr_code: opened.qr_code });
  }

  async #pagePay(parsed: ParsedRequest): Promise<GatewayAnswer> {
    const refused = (why: Refusal) => messagePage(400, `Alipay refused the payment request (${why.sub_code})`, why.sub_msg);
    if (!parsed.ok) return refused(parsed.refusal);
    const opened = await this.#openTrade(parsed.request, 'alipay.trade.page.pay');
    if (isRefusal(opened)) return refused(opened);
    return { kind: 'redirect', location: this.#cashierUrl(opened.cashier_token) };
  }

  #cashierUrl(cashierToken: string): string {
    return `${this.#cashierBaseUrl()}/cashier/${cashierToken}`;
  }

  /**
   * Creates the trade an order asks for, or finds the one an identical earlier request created (answered as the
   * first time while it waits for the buyer). A page trade exists at once; a precreated one once it is scanned.
   */
  async #openTrade(request: VerifiedRequest, method: TradeMethod): Promise<SandboxAlipayTradeRow | Refusal> {
    const nowMs = this.#clock.nowMs();
    const order = parseOrder(request.biz, method, nowMs);
    if (isRefusal(order)) return order;
    const requestHash = sha256(JSON.stringify([method, order.outTradeNo, order.totalCents.toString(), order.subject, order.productCode]));
    const cashierToken = randomBase62(24);
    const exists = method === 'alipay.trade.page.pay';
    const qrCode = exists ? null : this.#cashierUrl(cashierToken);
    const now = new Date(nowMs);
    const tradeNo = `${alipayTime(nowMs).slice(0, 10).replaceAll('-', '')}22001${randomDigits(15)}`;
    return this.#db.transaction().execute(async (tx) => {
      const inserted = await sql<SandboxAlipayTradeRow>`
        INSERT INTO sandbox_alipay_trades (trade_no, app_id, out_trade_no, method, request_hash, product_code, subject,
          total_amount, total_cents, notify_url, return_url, status, scanned, qr_code, cashier_token, form_token,
          buyer_id, time_expire, gmt_create, updated_at)
        VALUES (${tradeNo}, ${request.appId}, ${order.outTradeNo}, ${method}, ${requestHash}, ${order.productCode},
          ${order.subject}, ${formatYuan(order.totalCents)}, ${order.totalCents}, ${request.notifyUrl}, ${request.returnUrl},
          'WAIT_BUYER_PAY', ${exists}, ${qrCode}, ${cashierToken}, ${randomBase62(32)},
          ${exists ? this.#newBuyerId() : null}, ${new Date(order.timeExpireMs)}, ${now}, ${now})
        ON CONFLICT (app_id, out_trade_no) DO NOTHING
        RETURNING *`.execute(tx);
      const created = inserted.rows[0];
      if (created !== undefined) {
        if (created.scanned) await this.#notifyCreated(tx, created, nowMs);
        return created;
      }
      const existing = await this.#lockTrade(tx, { outTradeNo: order.outTradeNo }, nowMs);
      assert(existing !== undefined, 'a trade that conflicted on insert exists');
      if (existing.request_hash !== requestHash) return businessFailure('ACQ.CONTEXT_INCONSISTENT', '交易信息被篡改');
      switch (existing.status) {
        case 'WAIT_BUYER_PAY':
          return existing;
        case 'TRADE_SUCCESS':
        case 'TRADE_FINISHED':
          return businessFailure('ACQ.TRADE_HAS_SUCCESS', '交易已被支付');
        case 'TRADE_CLOSED':
          return businessFailure('ACQ.TRADE_HAS_CLOSE', '交易已经关闭');
        default:
          return assertNever(existing.status, 'trade status');
      }
    });
  }

  #newBuyerId(): string {
    return `2088${randomDigits(12)}`;
  }

  /**
   * The trade a request names, locked for the rest of the transaction. An unpaid trade whose time is up is closed
   * first, as Alipay closes it (and notifies, if it had come to exist).
   */
  async #lockTrade(tx: Tx, key: TradeKey | { cashierToken: string }, nowMs: number): Promise<SandboxAlipayTradeRow | undefined> {
    const condition = 'tradeNo' in key
      ? sql`trade_no = ${key.tradeNo} AND app_id = ${this.#appId}`
      : 'outTradeNo' in key
        ? sql`out_trade_no = ${key.outTradeNo} AND app_id = ${this.#appId}`
        : sql`cashier_token = ${key.cashierToken}`;
    const found = await sql<SandboxAlipayTradeRow>`SELECT * FROM sandbox_alipay_trades WHERE ${condition} FOR UPDATE`.execute(tx);
    const trade = found.rows[0];
    if (trade === undefined || trade.status !== 'WAIT_BUYER_PAY' || trade.time_expire.getTime() > nowMs) return trade;
    return this.#closeTrade(tx, trade, trade.time_expire, nowMs);
  }

  async #closeTrade(tx: Tx, trade: SandboxAlipayTradeRow, closedAt: Date, nowMs: number): Promise<SandboxAlipayTradeRow> {
    const closed = await this.#update(tx, trade.trade_no, sql`status = 'TRADE_CLOSED', gmt_close = ${closedAt}`, nowMs);
    if (closed.scanned) await this.#notify(tx, closed, nowMs);
    return closed;
  }

  async #update(tx: Tx, tradeNo: string, changes: RawBuilder<unknown>, nowMs: number): Promise<SandboxAlipayTradeRow> {
    const updated = await sql<SandboxAlipayTradeRow>`
      UPDATE sandbox_alipay_trades SET ${changes}, updated_at = ${new Date(nowMs)} WHERE trade_no = ${tradeNo} RETURNING *`.execute(tx);
    const row = updated.rows[0];
    assert(row !== undefined, 'a locked trade is updated');
    return row;
  }

  async #query(request: VerifiedRequest): Promise<Fields | Refusal> {
    const key = parseTradeKey(request.biz);
    if (isRefusal(key)) return key;
    const nowMs = this.#clock.nowMs();
    return this.#db.transaction().execute(async (tx) => {
      const trade = await this.#lockTrade(tx, key, nowMs);
      if (trade === undefined || !trade.scanned) return businessFailure('ACQ.TRADE_NOT_EXIST', '交易不存在');
      const paid = trade.gmt_payment !== null;
      const total = formatYuan(trade.total_cents);
      const fields: Fields = {
        trade_no: trade.trade_no,
        out_trade_no: trade.out_trade_no,
        trade_status: trade.status,
        total_amount: total,
        buyer_pay_amount: paid ? total : '0.00',
        receipt_amount: paid ? total : '0.00',
        invoice_amount: paid ? total : '0.00',
        point_amount: '0.00',
      };
      if (trade.buyer_id !== null) Object.assign(fields, { buyer_user_id: trade.buyer_id, buyer_logon_id: maskedLogonId(trade.buyer_id) });
      if (trade.gmt_payment !== null) fields.send_pay_date = alipayTime(trade.gmt_payment.getTime());
      return success(fields);
    });
  }

  /** Only a trade waiting for the buyer can be closed; one that does not exist yet (a QR code not scanned) cannot. */
  async #close(request: VerifiedRequest): Promise<Fields | Refusal> {
    const key = parseTradeKey(request.biz);
    if (isRefusal(key)) return key;
    const nowMs = this.#clock.nowMs();
    return this.#db.transaction().execute(async (tx) => {
      const trade = await this.#lockTrade(tx, key, nowMs);
      if (trade === undefined || !trade.scanned) return businessFailure('ACQ.TRADE_NOT_EXIST', '交易不存在');
      if (trade.status !== 'WAIT_BUYER_PAY') return businessFailure('ACQ.TRADE_STATUS_ERROR', '交易状态不合法');
      await this.#closeTrade(tx, trade, new Date(nowMs), nowMs);
      return success({ trade_no: trade.trade_no, out_trade_no: trade.out_trade_no });
    });
  }

  /**
   * Refunds part or all of a paid trade, at most what is not refunded yet. The refund is keyed by out_request_no
   * (the trade's out_trade_no when absent, which then must be a full refund): a repeat refunds nothing and gets
   * the first answer with `fund_change: N`, as Alipay answers it; a repeat for another amount is refused.
   */
  async #refund(request: VerifiedRequest): Promise<Fields | Refusal> {
    const key = parseTradeKey(request.biz);
    if (isRefusal(key)) return key;
    const asked = parseRefund(request.biz);
    if (isRefusal(asked)) return asked;
    const nowMs = this.#clock.nowMs();
    return this.#db.transaction().execute(async (tx) => {
      const trade = await this.#lockTrade(tx, key, nowMs);
      if (trade === undefined || !trade.scanned) return businessFailure('ACQ.TRADE_NOT_EXIST', '交易不存在');
      const outRequestNo = asked.outRequestNo ?? trade.out_trade_no;
      const previous = await sql<SandboxAlipayRefundRow>`
        SELECT * FROM sandbox_alipay_refunds WHERE trade_no = ${trade.trade_no} AND out_request_no = ${outRequestNo}`.execute(tx);
      const first = previous.rows[0];
      if (first !== undefined) {
        if (first.refund_cents !== asked.refundCents) return businessFailure('ACQ.DISCORDANT_REPEAT_REQUEST', '不一致的请求');
        return { ...(JSON.parse(first.response) as Fields), fund_change: 'N' };
      }
      const refused = refundRefusal(trade, asked.refundCents, asked.outRequestNo === null);
      if (refused !== undefined) return refused;
      return this.#recordRefund(tx, trade, outRequestNo, asked.refundCents, nowMs);
    });
  }

  async #recordRefund(tx: Tx, trade: SandboxAlipayTradeRow, outRequestNo: string, refundCents: bigint, nowMs: number): Promise<Fields> {
    const refundFee = trade.refund_fee_cents + refundCents;
    const now = new Date(nowMs);
    const changes = refundFee === trade.total_cents
      ? sql`refund_fee_cents = ${refundFee}, status = 'TRADE_CLOSED', gmt_close = ${now}`
      : sql`refund_fee_cents = ${refundFee}`;
    const updated = await this.#update(tx, trade.trade_no, changes, nowMs);
    const answer = success({
      trade_no: trade.trade_no,
      out_trade_no: trade.out_trade_no,
      ...(trade.buyer_id === null ? {} : { buyer_user_id: trade.buyer_id, buyer_logon_id: maskedLogonId(trade.buyer_id) }),
      fund_change: 'Y',
      refund_fee: formatYuan(refundFee),
      send_back_fee: formatYuan(refundCents),
      gmt_refund_pay: alipayTime(nowMs),
    });
    await sql`
      INSERT INTO sandbox_alipay_refunds (trade_no, out_request_no, refund_amount, refund_cents, response, gmt_refund)
      VALUES (${trade.trade_no}, ${outRequestNo}, ${formatYuan(refundCents)}, ${refundCents}, ${JSON.stringify(answer)}, ${now})`.execute(tx);
    await this.#notify(tx, updated, nowMs, { outRequestNo, gmtRefundMs: nowMs });
    return answer;
  }

  /** `alipay.trade.fastpay.refund.query`: code 10000 without refund data means no such refund was made. */
  async #refundQuery(request: VerifiedRequest): Promise<Fields | Refusal> {
    const key = parseTradeKey(request.biz);
    if (isRefusal(key)) return key;
    const asked = parseRefundQuery(request.biz);
    if (isRefusal(asked)) return asked;
    const condition = 'tradeNo' in key ? sql`trade_no = ${key.tradeNo}` : sql`out_trade_no = ${key.outTradeNo}`;
    const trades = await sql<SandboxAlipayTradeRow>`
      SELECT * FROM sandbox_alipay_trades WHERE app_id = ${this.#appId} AND ${condition}`.execute(this.#db);
    const trade = trades.rows[0];
    if (trade === undefined || !trade.scanned) return businessFailure('ACQ.TRADE_NOT_EXIST', '交易不存在');
    const refunds = await sql<SandboxAlipayRefundRow>`
      SELECT * FROM sandbox_alipay_refunds WHERE trade_no = ${trade.trade_no} AND out_request_no = ${asked.outRequestNo}`.execute(this.#db);
    const refund = refunds.rows[0];
    if (refund === undefined) return success({});
    return success({
      trade_no: trade.trade_no,
      out_trade_no: trade.out_trade_no,
      out_request_no: refund.out_request_no,
      total_amount: formatYuan(trade.total_cents),
      refund_amount: refund.refund_amount,
      refund_status: 'REFUND_SUCCESS',
      ...(asked.wantsRefundTime ? { gmt_refund_pay: alipayTime(refund.gmt_refund.getTime()) } : {}),
    });
  }

  /** The cashier page of a trade (its QR code's URL, or where a page trade's redirect leads). */
  async cashierPage(cashierToken: string): Promise<CashierAnswer> {
    const nowMs = this.#clock.nowMs();
    const trade = await this.#db.transaction().execute((tx) => this.#lockTrade(tx, { cashierToken }, nowMs));
    if (trade === undefined) return messagePage(404, 'No such trade', 'This cashier link does not name a trade of the sandbox.');
    const html = renderCashierPage({
      cashierToken: trade.cashier_token,
      formToken: trade.form_token,
      tradeNo: trade.trade_no,
      outTradeNo: trade.out_trade_no,
      subject: trade.subject,
      totalAmount: trade.total_amount,
      status: trade.status,
      scanned: trade.scanned,
      timeExpire: alipayTime(trade.time_expire.getTime()),
    });
    return { kind: 'page', statusCode: 200, html, csp: cashierContentSecurityPolicy(trade.return_url) };
  }

  /**
   * The tester's buttons: `scan` makes a precreated trade exist; `pay` pays it (scanning first if needed), and
   * sends a page trade's browser back to its return_url with Alipay's signed return parameters; `cancel` closes
   * it. The form must carry the trade's form token (the page's defence against cross-site posts).
   */
  async cashierAction(cashierToken: string, action: CashierAction, formBody: string): Promise<CashierAnswer> {
    const formToken = new URLSearchParams(formBody).get('form_token');
    const nowMs = this.#clock.nowMs();
    return this.#db.transaction().execute(async (tx): Promise<CashierAnswer> => {
      const trade = await this.#lockTrade(tx, { cashierToken }, nowMs);
      if (trade === undefined) return messagePage(404, 'No such trade', 'This cashier link does not name a trade of the sandbox.');
      if (!tokensEqual(formToken, trade.form_token)) return messagePage(403, 'Form refused', 'The form does not carry this trade\'s token.');
      const paid = trade.status === 'TRADE_SUCCESS' || trade.status === 'TRADE_FINISHED';
      if (trade.status !== 'WAIT_BUYER_PAY') {
        // A second click on Pay after paying is answered as the first; anything else comes too late.
        if (action === 'pay' && paid) return this.#afterPayment(trade, nowMs);
        return messagePage(409, 'Not possible now', `This trade is ${trade.status}.`);
      }
      const scanned = trade.scanned ? trade : await this.#scan(tx, trade, nowMs);
      switch (action) {
        case 'scan':
          return { kind: 'redirect', location: this.#cashierUrl(cashierToken) };
        case 'pay': {
          const payment = await this.#update(tx, trade.trade_no, sql`status = 'TRADE_SUCCESS', gmt_payment = ${new Date(nowMs)}`, nowMs);
          await this.#notify(tx, payment, nowMs);
          return this.#afterPayment(payment, nowMs);
        }
        case 'cancel':
          await this.#closeTrade(tx, scanned, new Date(nowMs), nowMs);
          return { kind: 'redirect', location: this.#cashierUrl(cashierToken) };
        default:
          return assertNever(action, 'cashier action');
      }
    });
  }

  async #scan(tx: Tx, trade: SandboxAlipayTradeRow, nowMs: number): Promise<SandboxAlipayTradeRow> {
    const scanned = await this.#update(tx, trade.trade_no, sql`scanned = true, buyer_id = ${this.#newBuyerId()}`, nowMs);
    await this.#notifyCreated(tx, scanned, nowMs);
    return scanned;
  }

  /** Where the buyer's browser goes after paying: back to the shop for a page trade, else to the cashier's "paid". */
  #afterPayment(trade: SandboxAlipayTradeRow, nowMs: number): CashierAnswer {
    if (trade.return_url === null) return { kind: 'redirect', location: this.#cashierUrl(trade.cashier_token) };
    const params: Fields = {
      charset: 'utf-8',
      out_trade_no: trade.out_trade_no,
      method: 'alipay.trade.page.pay.return',
      total_amount: formatYuan(trade.total_cents),
      trade_no: trade.trade_no,
      auth_app_id: trade.app_id,
      version: '1.0',
      app_id: trade.app_id,
      sign_type: 'RSA2',
      seller_id: this.#sellerId,
      timestamp: alipayTime(nowMs),
    };
    const url = new URL(trade.return_url);
    const signature = rsa2Sign(signContent(params, ['sign', 'sign_type']), this.#alipayPrivateKeyPem);
    for (const [name, value] of Object.entries({ ...params, sign: signature })) url.searchParams.append(name, value);
    return { kind: 'redirect', location: url.toString() };
  }

  /**
   * Test control: a paid trade becomes TRADE_FINISHED (Alipay's end of the refund period: final, no refunds),
   * and the merchant is notified. Returns whether a trade changed.
   */
  async finishTrade(outTradeNo: string): Promise<boolean> {
    const nowMs = this.#clock.nowMs();
    return this.#db.transaction().execute(async (tx) => {
      const trade = await this.#lockTrade(tx, { outTradeNo }, nowMs);
      if (trade?.status !== 'TRADE_SUCCESS') return false;
      const finished = await this.#update(tx, trade.trade_no, sql`status = 'TRADE_FINISHED'`, nowMs);
      await this.#notify(tx, finished, nowMs);
      return true;
    });
  }

  async #notifyCreated(tx: Tx, trade: SandboxAlipayTradeRow, nowMs: number): Promise<void> {
    if (this.notifyWaitBuyerPay) await this.#notify(tx, trade, nowMs);
  }

  /**
   * Queues the notification of the trade as it now stands, with the notification faults a test set: dropped,
   * sent several times, held for `delayMs`, held back until after the next one (`reorder`), or tampered after
   * signing. Queued in the transaction that changed the trade, so that no change goes unnotified.
   */
  async #notify(tx: Tx, trade: SandboxAlipayTradeRow, nowMs: number, refund?: { outRequestNo: string; gmtRefundMs: number }): Promise<void> {
    if (trade.notify_url === null) return;
    const faults = this.faults.nextNotification();
    const notifyId = randomBytes(17).toString('hex').slice(0, 34);
    const params = notificationParams({ trade, sellerId: this.#sellerId, notifyId, nowMs, refund });
    const body = signedNotificationBody(params, this.#alipayPrivateKeyPem, faults.tamper);
    const dueMs = nowMs + Math.max(0, faults.delayMs ?? 0);
    // Notifications held back by `reorder` go right after this one.
    await sql`UPDATE sandbox_alipay_notifications SET held = false, next_attempt_at = ${new Date(dueMs + 1)}
      WHERE held AND NOT delivered`.execute(tx);
    if (faults.drop === true) return;
    const held = faults.reorder === true;
    const firstAttemptAt = new Date(held ? dueMs + this.faults.scaled(alipaySandboxLimits.heldNotificationBackstopMs) : dueMs);
    const copies = Math.min(Math.max(1, Math.floor(faults.duplicate ?? 1)), alipaySandboxLimits.duplicatesMax);
    for (let copy = 0; copy < copies; copy += 1) {
      await sql`
        INSERT INTO sandbox_alipay_notifications (notify_id, trade_no, trade_status, notify_url, body, held, next_attempt_at, created_at)
        VALUES (${notifyId}, ${trade.trade_no}, ${trade.status}, ${trade.notify_url}, ${body}, ${held}, ${firstAttemptAt}, ${new Date(nowMs)})`.execute(tx);
    }
  }

  /**
   * One bounded turn of the sandbox's background work (Coffer's job calls it): closes unpaid trades whose time is
   * up, then sends the notifications that are due, in order, each to its notify_url. Only the exact answer
   * `success` (HTTP 200) counts as received; anything else is retried on Alipay's schedule (compressed by
   * `faults.retryScheduleDivisor`) and, after the eighth attempt, given up. Returns the rows it handled.
   */
  async deliverDueNotifications(limit: number): Promise<number> {
    const expired = await this.#closeExpiredTrades(limit);
    const due = await this.#claimDueNotifications(limit);
    for (const notification of due) await this.#attempt(notification);
    return expired + due.length;
  }

  async #closeExpiredTrades(limit: number): Promise<number> {
    const nowMs = this.#clock.nowMs();
    return this.#db.transaction().execute(async (tx) => {
      const expired = await sql<{ trade_no: string }>`
        SELECT trade_no FROM sandbox_alipay_trades WHERE status = 'WAIT_BUYER_PAY' AND time_expire <= ${new Date(nowMs)}
        ORDER BY time_expire LIMIT ${limit} FOR UPDATE SKIP LOCKED`.execute(tx);
      for (const { trade_no: tradeNo } of expired.rows) await this.#lockTrade(tx, { tradeNo }, nowMs);
      return expired.rows.length;
    });
  }

  /** Leases the due notifications (attempt counted, next attempt pushed past the lease) so no other turn sends them. */
  async #claimDueNotifications(limit: number): Promise<Array<SandboxAlipayNotificationRow & { due_at: Date }>> {
    const nowMs = this.#clock.nowMs();
    const claimed = await sql<SandboxAlipayNotificationRow & { due_at: Date }>`
      WITH due AS (
        SELECT id, next_attempt_at AS due_at FROM sandbox_alipay_notifications
        WHERE NOT delivered AND next_attempt_at <= ${new Date(nowMs)}
        ORDER BY next_attempt_at, id LIMIT ${limit} FOR UPDATE SKIP LOCKED)
      UPDATE sandbox_alipay_notifications AS n
      SET attempts = n.attempts + 1, held = false, next_attempt_at = ${new Date(nowMs + alipaySandboxLimits.notificationLeaseMs)}
      FROM due WHERE n.id = due.id
      RETURNING n.*, due.due_at`.execute(this.#db);
    return claimed.rows.sort((a, b) => a.due_at.getTime() - b.due_at.getTime() || (a.id < b.id ? -1 : 1));
  }

  async #attempt(notification: SandboxAlipayNotificationRow): Promise<void> {
    let answer: string;
    let received = false;
    try {
      const response = await this.#send(notification.notify_url, {
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: notification.body,
      });
      received = response.statusCode === 200 && response.body === 'success';
      answer = `${response.statusCode} ${response.body}`;
    } catch (error) {
      answer = `not delivered: ${error instanceof Error ? error.message : String(error)}`;
    }
    const nowMs = this.#clock.nowMs();
    const kept = answer.slice(0, alipaySandboxLimits.answerKeptMax);
    const retryDelayMs = alipaySandboxLimits.notificationRetryDelaysMs[notification.attempts - 1];
    const changes = received
      ? sql`delivered = true, delivered_at = ${new Date(nowMs)}, next_attempt_at = NULL`
      : retryDelayMs === undefined
        ? sql`given_up_at = ${new Date(nowMs)}, next_attempt_at = NULL`
        : sql`next_attempt_at = ${new Date(nowMs + this.faults.scaled(retryDelayMs))}`;
    await sql`UPDATE sandbox_alipay_notifications SET ${changes}, last_answer = ${kept} WHERE id = ${notification.id}`.execute(this.#db);
  }
}

/** Why a refund of a trade cannot be made, or undefined if it can. */
function refundRefusal(trade: SandboxAlipayTradeRow, refundCents: bigint, wholeTradeKey: boolean): Refusal | undefined {
  switch (trade.status) {
    case 'WAIT_BUYER_PAY':
      return businessFailure('ACQ.TRADE_STATUS_ERROR', '交易状态不合法');
    case 'TRADE_FINISHED':
      return businessFailure('ACQ.TRADE_HAS_FINISHED', '交易已结束');
    case 'TRADE_CLOSED':
      return businessFailure('ACQ.TRADE_HAS_CLOSE', '交易已经关闭');
    case 'TRADE_SUCCESS':
      break;
    default:
      return assertNever(trade.status, 'trade status');
  }
  // Without out_request_no the refund is of the whole trade.
  if (wholeTradeKey && refundCents !== trade.total_cents) return businessFailure('ACQ.REFUND_AMT_NOT_EQUAL_TOTAL', '撤销或退款金额与订单金额不一致');
  if (trade.refund_fee_cents + refundCents > trade.total_cents) return businessFailure('ACQ.REASON_TRADE_REFUND_FEE_ERR', '退款金额超限');
  return undefined;
}
