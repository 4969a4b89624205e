import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { Aes, Formatter, Rsa, Wechatpay } from 'wechatpay-axios-plugin';
import type { NotificationSender } from '../../src/connectors/sandbox-faults.ts';
import { weChatRetryScheduleMs } from '../../src/connectors/wechat-pay/sandbox/callback-queue.ts';
import { registerWeChatPaySandbox } from '../../src/connectors/wechat-pay/sandbox/register-wechat-pay-sandbox.ts';
import { generateWeChatPaySandboxCredentials } from '../../src/connectors/wechat-pay/sandbox/sandbox-credentials.ts';
import { WeChatPaySandbox } from '../../src/connectors/wechat-pay/sandbox/wechat-pay-sandbox.ts';
import type { RefundResource, TransactionResource } from '../../src/connectors/wechat-pay/wire.ts';
import type { Database } from '../../src/store/database.ts';
import { TestClock } from '../support/clock.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

/**
 * WeChat Pay's side of the wire, proven with the official client (`wechatpay-axios-plugin` in WeChat Pay
 * public-key mode) against the sandbox on a real HTTP listener and a real migrated database: the plugin signs
 * requests and verifies every answer itself, so any drift from WeChat's protocol fails here.
 */

interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A merchant's callback endpoint on loopback: records every delivery and answers the queued statuses (then 204). */
class CallbackReceiver {
  readonly received: Delivery[] = [];
  readonly answers: number[] = [];
  #server: http.Server | undefined;

  async start(): Promise<string> {
    this.#server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        const status = this.answers.shift() ?? 204;
        response.writeHead(status, status === 204 ? {} : { 'content-type': 'application/json' })
          .end(status === 204 ? undefined : JSON.stringify({ code: 'FAIL', message: 'try again' }));
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    return `http://127.0.0.1:${address.port}/hooks/wechat_pay/test`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }
}

const send: NotificationSender = async (url, request) => {
  const response = await fetch(url, { method: 'POST', headers: request.headers, body: request.body });
  return { statusCode: response.status, body: await response.text() };
};

interface PluginFailure {
  code?: string;
  response?: { status: number; data: { code?: string; message?: string } };
}

/** Runs a plugin call expected to fail and returns its error (WeChat's status and body, or the plugin's own code). */
async function failure(call: Promise<unknown>): Promise<PluginFailure> {
  try {
    await call;
  } catch (error) {
    return error as PluginFailure;
  }
  throw new Error('the call was expected to fail');
}

/** Reads the hidden form token from the payment page, as a browser would submit it. */
function formToken(html: string): string {
  const match = /name="form_token" value="([^"]+)"/.exec(html);
  assert.ok(match?.[1], 'the page carries a form token');
  return match[1];
}

const credentials = generateWeChatPaySandboxCredentials();
const clock = new TestClock();
let database: TestDatabase;
let app: FastifyInstance;
let sandbox: WeChatPaySandbox<Database>;
let origin: string;
let receiver: CallbackReceiver;
let notifyUrl: string;
let wxpay: Wechatpay;

function client(overrides: { privateKey?: string; certs?: Record<string, string>; timeout?: number } = {}): Wechatpay {
  return new Wechatpay({
    mchid: credentials.mchid,
    serial: credentials.merchantSerialNo,
    privateKey: overrides.privateKey ?? credentials.merchantPrivateKeyPem,
    certs: overrides.certs ?? { [credentials.platformPublicKeyId]: credentials.platformPublicKeyPem },
    baseURL: `${origin}/sandbox/wechat-pay/`,
    ...(overrides.timeout === undefined ? {} : { timeout: overrides.timeout }),
  });
}

interface Reply<T> {
  status: number;
  data: T;
  headers: Record<string, string>;
}

/** One call through the plugin (its `chain` is the path-string form of `wxpay.v3.pay…`); it signs and verifies. */
async function wx<T = Record<string, unknown>>(
  method: 'get' | 'post', path: string, options: { body?: object; params?: Record<string, string>; via?: Wechatpay } = {},
): Promise<Reply<T>> {
  const chain = (options.via ?? wxpay).chain(path);
  const response = method === 'get' ? await chain.get(options.params === undefined ? {} : { params: options.params }) : await chain.post(options.body);
  return { status: response.status, data: response.data as T, headers: response.headers as unknown as Record<string, string> };
}

const query = (outTradeNo: unknown, via?: Wechatpay) =>
  wx<TransactionResource>('get', `v3/pay/transactions/out-trade-no/${String(outTradeNo)}`, { params: { mchid: credentials.mchid }, ...(via === undefined ? {} : { via }) });
const close = (outTradeNo: unknown) => wx<string>('post', `v3/pay/transactions/out-trade-no/${String(outTradeNo)}/close`, { body: { mchid: credentials.mchid } });
const createNative = (order: object, via?: Wechatpay) =>
  wx<{ code_url: string }>('post', 'v3/pay/transactions/native', { body: order, ...(via === undefined ? {} : { via }) });
const refundPost = (body: object) => wx<RefundResource>('post', 'v3/refund/domestic/refunds', { body });
const refundQuery = (outRefundNo: string) => wx<RefundResource>('get', `v3/refund/domestic/refunds/${outRefundNo}`);

let orderNumber = 0;
function nativeOrder(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  orderNumber += 1;
  return {
    appid: credentials.appid,
    mchid: credentials.mchid,
    description: 'Order 1234 at Test Shop',
    out_trade_no: `ch_test${Date.now()}${orderNumber}`,
    notify_url: notifyUrl,
    amount: { total: 1234, currency: 'CNY' },
    ...overrides,
  };
}

/** The tester's browser: opens the payment page and presses a button (with a token read earlier, if given). */
async function press(pageUrl: string, action: 'scan' | 'pay' | 'fail' | 'cancel', token?: string): Promise<Response> {
  const pageToken = new URL(pageUrl).pathname.split('/').at(-1) ?? '';
  return fetch(`${origin}/sandbox/wechat-pay/scan/${pageToken}/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ form_token: token ?? (await readFormToken(pageUrl)) }).toString(),
    redirect: 'manual',
  });
}

async function readFormToken(pageUrl: string): Promise<string> {
  const page = await fetch(pageUrl);
  assert.equal(page.status, 200);
  return formToken(await page.text());
}

async function deliverAll(): Promise<number> {
  return sandbox.deliverDueNotifications(100);
}

/** Checks a callback as a merchant must (signature with the WeChat Pay public key) and decrypts its resource. */
function openCallback(delivery: Delivery): { envelope: Record<string, unknown>; resource: Record<string, unknown> } {
  const timestamp = String(delivery.headers['wechatpay-timestamp']);
  const nonce = String(delivery.headers['wechatpay-nonce']);
  const signature = String(delivery.headers['wechatpay-signature']);
  assert.equal(delivery.headers['wechatpay-serial'], credentials.platformPublicKeyId);
  assert.ok(Rsa.verify(Formatter.response(timestamp, nonce, delivery.body), signature, credentials.platformPublicKeyPem), 'callback signature verifies');
  const envelope = JSON.parse(delivery.body) as { resource: { ciphertext: string; nonce: string; associated_data: string } } & Record<string, unknown>;
  assert.equal(envelope.resource.nonce.length, 12);
  const plaintext = Aes.AesGcm.decrypt(envelope.resource.ciphertext, Buffer.from(credentials.apiV3Key), envelope.resource.nonce, envelope.resource.associated_data);
  return { envelope, resource: JSON.parse(plaintext) as Record<string, unknown> };
}

async function callbackRows(): Promise<Array<{ notification_id: string; attempts: number; delivered_at: Date | null; given_up_at: Date | null }>> {
  const rows = await sql<{ notification_id: string; attempts: number; delivered_at: Date | null; given_up_at: Date | null }>`
    SELECT notification_id, attempts, delivered_at, given_up_at FROM sandbox_wechat_pay_callbacks ORDER BY sequence`.execute(database.db);
  return rows.rows;
}

before(async () => {
  database = await openTestDatabase();
  receiver = new CallbackReceiver();
  notifyUrl = await receiver.start();
  app = Fastify();
  sandbox = new WeChatPaySandbox({
    db: database.db,
    clock,
    credentials,
    scanBaseUrl: () => `${origin}/sandbox/wechat-pay`,
    send,
  });
  registerWeChatPaySandbox(app, sandbox);
  origin = await app.listen({ port: 0, host: '127.0.0.1' });
  wxpay = client();
});

after(async () => {
  await app.close();
  await receiver.stop();
  await database.drop();
});

describe('WeChat Pay sandbox, with the official client', () => {
  it('goes native order → scan page → paid → verified callback → query SUCCESS → refund → refund SUCCESS', async () => {
    // Goal: the whole money path as a merchant using WeChat's own SDK sees it, every answer verified by the SDK.
    sandbox.resetControls();
    receiver.received.length = 0;
    const order = nativeOrder();
    const created = await createNative(order);
    assert.equal(created.status, 200);
    const codeUrl = created.data.code_url;
    assert.match(codeUrl, /\/sandbox\/wechat-pay\/scan\/[0-9A-Za-z]{24}$/);

    const beforeScan = await query(order.out_trade_no);
    assert.equal(beforeScan.data.trade_state, 'NOTPAY');
    assert.equal(beforeScan.data.transaction_id, undefined, 'no transaction id before the shopper reaches the trade');

    assert.equal((await press(codeUrl, 'scan')).status, 303);
    const scanned = await query(order.out_trade_no);
    assert.equal(scanned.data.trade_state, 'USERPAYING');
    assert.equal((await press(codeUrl, 'pay')).status, 303);

    assert.equal(await deliverAll(), 1);
    assert.equal(receiver.received.length, 1);
    const payment = openCallback(receiver.received[0] as Delivery);
    assert.equal(payment.envelope.event_type, 'TRANSACTION.SUCCESS');
    assert.equal(payment.envelope.resource_type, 'encrypt-resource');
    assert.equal(payment.resource.trade_state, 'SUCCESS');
    assert.equal(payment.resource.out_trade_no, order.out_trade_no);
    assert.equal(payment.resource.mchid, credentials.mchid);
    assert.deepEqual((payment.resource.amount as Record<string, unknown>).total, 1234);
    assert.equal(await deliverAll(), 0, 'an acknowledged callback is not sent again');

    const paid = await query(order.out_trade_no);
    assert.equal(paid.data.trade_state, 'SUCCESS');
    assert.equal(paid.data.transaction_id, payment.resource.transaction_id);
    assert.match(String(paid.data.success_time), /\+08:00$/);
    const byId = await wx<TransactionResource>('get', `v3/pay/transactions/id/${String(paid.data.transaction_id)}`, { params: { mchid: credentials.mchid } });
    assert.equal(byId.data.out_trade_no, order.out_trade_no);

    const refundBody = { out_trade_no: order.out_trade_no, out_refund_no: `re_${order.out_trade_no as string}`, amount: { refund: 1000, total: 1234, currency: 'CNY' } };
    const refund = await refundPost(refundBody);
    assert.equal(refund.data.status, 'PROCESSING');
    assert.equal(refund.data.amount.refund, 1000);
    const again = await refundPost(refundBody);
    assert.equal(again.data.refund_id, refund.data.refund_id, 'the same out_refund_no is the same refund');

    clock.offsetMs += sandbox.refunds.settleAfterMs + 1;
    try {
      const settled = await refundQuery(refundBody.out_refund_no);
      assert.equal(settled.data.status, 'SUCCESS');
      assert.match(String(settled.data.success_time), /\+08:00$/);
      assert.equal(await deliverAll(), 1);
      const refunded = openCallback(receiver.received[1] as Delivery);
      assert.equal(refunded.envelope.event_type, 'REFUND.SUCCESS');
      assert.equal(refunded.resource.refund_status, 'SUCCESS');
      assert.equal(refunded.resource.out_refund_no, refundBody.out_refund_no);
      const afterRefund = await query(order.out_trade_no);
      assert.equal(afterRefund.data.trade_state, 'REFUND');

      // What is left is 234 fen: 235 is refused, and nothing is recorded for it.
      const over = await failure(refundPost({ ...refundBody, out_refund_no: `${refundBody.out_refund_no}b`, amount: { refund: 235, total: 1234, currency: 'CNY' } }));
      assert.equal(over.response?.status, 400);
      assert.equal(over.response?.data.code, 'INVALID_REQUEST');
      const missing = await failure(refundQuery(`${refundBody.out_refund_no}b`));
      assert.equal(missing.response?.status, 404);
      assert.equal(missing.response?.data.code, 'RESOURCE_NOT_EXISTS');
      // The same out_refund_no with another amount is refused, and the first refund is untouched.
      const reused = await failure(refundPost({ ...refundBody, amount: { refund: 1, total: 1234, currency: 'CNY' } }));
      assert.equal(reused.response?.data.code, 'INVALID_REQUEST');
    } finally {
      clock.offsetMs = 0;
    }
  });

  it('closes another order with a signed, empty 204 the plugin verifies', async () => {
    // Goal: WeChat's close answers 204 with no body but still signed; the plugin checks that signature.
    const order = nativeOrder();
    const created = await createNative(order);
    const token = await readFormToken(created.data.code_url);
    const closed = await close(order.out_trade_no);
    assert.equal(closed.status, 204);
    assert.equal(closed.data, '');
    const headers = closed.headers as Record<string, string>;
    assert.ok(Rsa.verify(Formatter.response(headers['wechatpay-timestamp'] ?? '', headers['wechatpay-nonce'] ?? '', ''), headers['wechatpay-signature'] ?? '',
      credentials.platformPublicKeyPem), 'signed over ts\\nnonce\\n\\n');
    const found = await query(order.out_trade_no);
    assert.equal(found.data.trade_state, 'CLOSED');
    // A closed order cannot be paid, and closing it again is still a 204.
    const refused = await press(created.data.code_url, 'pay', token);
    assert.equal(refused.status, 409);
    assert.match(await refused.text(), /closed/i);
    assert.doesNotMatch(await (await fetch(created.data.code_url)).text(), /<form/, 'a closed order offers no actions');
    assert.equal((await close(order.out_trade_no)).status, 204);
    const repeat = await failure(createNative(order));
    assert.equal(repeat.response?.data.code, 'ORDER_CLOSED');
    const unknownOrder = await failure(close('no_such_order_1'));
    assert.equal(unknownOrder.response?.status, 404);
    assert.equal(unknownOrder.response?.data.code, 'ORDER_NOT_EXIST');
  });

  it('refuses a request signed with another key, or with a stale timestamp, with 401 SIGN_ERROR and acts on neither', async () => {
    // Goal: only the merchant's key, recently, can act; a refusal changes nothing.
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const order = nativeOrder();
    const forged = await failure(createNative(order, client({ privateKey: stranger.privateKey })));
    assert.equal(forged.response?.status, 401);
    assert.equal(forged.response?.data.code, 'SIGN_ERROR');

    // The right key, but signed six minutes ago (the plugin always signs "now", so sign by hand).
    const body = JSON.stringify(order);
    const path = '/sandbox/wechat-pay/v3/pay/transactions/native';
    const stale = Math.floor(Date.now() / 1000) - 360;
    const nonce = Formatter.nonce();
    const signature = Rsa.sign(Formatter.request('POST', path, stale, nonce, body), Rsa.from(credentials.merchantPrivateKeyPem, Rsa.KEY_TYPE_PRIVATE));
    const staleAnswer = await fetch(`${origin}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: Formatter.authorization(credentials.mchid, nonce, signature, stale, credentials.merchantSerialNo) },
      body,
    });
    assert.equal(staleAnswer.status, 401);
    assert.equal(((await staleAnswer.json()) as { code: string }).code, 'SIGN_ERROR');
    assert.ok(staleAnswer.headers.get('wechatpay-signature'), 'errors are signed too');

    // A signature over other bytes than those sent (the body changed on the way) is refused as well.
    const fresh = Math.floor(Date.now() / 1000);
    const changed = Rsa.sign(Formatter.request('POST', path, fresh, nonce, body.replace('1234', '1235')), Rsa.from(credentials.merchantPrivateKeyPem, Rsa.KEY_TYPE_PRIVATE));
    const tampered = await fetch(`${origin}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: Formatter.authorization(credentials.mchid, nonce, changed, fresh, credentials.merchantSerialNo) },
      body,
    });
    assert.equal(tampered.status, 401);

    const notCreated = await failure(query(order.out_trade_no));
    assert.equal(notCreated.response?.status, 404);
    assert.equal(notCreated.response?.data.code, 'ORDER_NOT_EXIST');
  });

  it('has its probe signatures and an unknown Wechatpay-Serial rejected by the plugin', async () => {
    // Goal: WeChat's deliberate WECHATPAY/SIGNTEST/ probes, on answers and on callbacks, fail verification.
    const order = nativeOrder();
    await createNative(order);
    sandbox.probeNextAnswers(1);
    const probed = await failure(query(order.out_trade_no));
    assert.equal(probed.code, 'EV3_RES_HEADER_SIGNATURE_DIGEST');
    // Only that answer was a probe.
    assert.equal((await query(order.out_trade_no)).status, 200);

    const otherKeyId = await failure(query(order.out_trade_no, client({ certs: { PUB_KEY_ID_0000000000000000000000000000000: credentials.platformPublicKeyPem } })));
    assert.equal(otherKeyId.code, 'EV3_RES_HEADER_PLATFORM_SERIAL');

    receiver.received.length = 0;
    await sandbox.queueSignatureProbe(notifyUrl);
    assert.equal(await deliverAll(), 1);
    const probe = receiver.received[0] as Delivery;
    const signature = String(probe.headers['wechatpay-signature']);
    assert.ok(signature.startsWith('WECHATPAY/SIGNTEST/'));
    assert.equal(Rsa.verify(Formatter.response(String(probe.headers['wechatpay-timestamp']), String(probe.headers['wechatpay-nonce']), probe.body), signature,
      credentials.platformPublicKeyPem), false);
  });

  it('answers a repeated order with the same code_url, and another order under the same out_trade_no with OUT_TRADE_NO_USED', async () => {
    // Goal: out_trade_no is the idempotency key; its reuse for other parameters is refused and changes nothing.
    const order = nativeOrder();
    const first = await createNative(order);
    const second = await createNative({ ...order, amount: { currency: 'CNY', total: 1234 } });
    assert.equal(second.data.code_url, first.data.code_url);
    const reused = await failure(createNative({ ...order, amount: { total: 9999, currency: 'CNY' } }));
    assert.equal(reused.response?.status, 403);
    assert.equal(reused.response?.data.code, 'OUT_TRADE_NO_USED');
    const otherFlow = await failure(wx('post', 'v3/pay/transactions/jsapi', { body: { ...order, payer: { openid: 'oUser1' } } }));
    assert.equal(otherFlow.response?.data.code, 'OUT_TRADE_NO_USED');
    const found = await query(order.out_trade_no);
    assert.equal(found.data.amount.total, 1234, 'the order keeps its first amount');
  });

  it('validates orders as WeChat does: CNY only, jsapi needs payer.openid, h5 needs scene_info, appid must match', async () => {
    // Goal: bad requests get PARAM_ERROR (naming the field) or WeChat's specific code, and create nothing.
    const usd = await failure(createNative(nativeOrder({ amount: { total: 100, currency: 'USD' } })));
    assert.equal(usd.response?.status, 400);
    assert.equal(usd.response?.data.code, 'PARAM_ERROR');
    assert.match(String(usd.response?.data.message), /amount\/currency/);
    const noPayer = await failure(wx('post', 'v3/pay/transactions/jsapi', { body: nativeOrder() }));
    assert.equal(noPayer.response?.data.code, 'PARAM_ERROR');
    const noScene = await failure(wx('post', 'v3/pay/transactions/h5', { body: nativeOrder() }));
    assert.equal(noScene.response?.data.code, 'PARAM_ERROR');
    const wrongApp = await failure(createNative(nativeOrder({ appid: 'wx0000000000000000' })));
    assert.equal(wrongApp.response?.data.code, 'APPID_MCHID_NOT_MATCH');

    const jsapi = await wx('post', 'v3/pay/transactions/jsapi', { body: nativeOrder({ payer: { openid: 'oUserOpenId123' } }) });
    assert.match(String(jsapi.data.prepay_id), /^wx\d{14}[0-9a-f]{20}$/);
    const h5 = await wx('post', 'v3/pay/transactions/h5', { body: nativeOrder({ scene_info: { payer_client_ip: '203.0.113.7', h5_info: { type: 'Wap' } } }) });
    const h5Url = String(h5.data.h5_url);
    assert.match(h5Url, /\/scan\/[0-9A-Za-z]{24}\?prepay_id=wx/);
    const page = await fetch(h5Url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /H5 \(mobile browser\)/);
  });

  it('serves a payment page with a strict CSP and no script, and refuses a form without the page token', async () => {
    // Goal: the tester's page cannot run script and cannot be driven blind by another site.
    const order = nativeOrder();
    const created = await createNative(order);
    const codeUrl = created.data.code_url;
    const page = await fetch(codeUrl);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /form-action 'self'/);
    assert.doesNotMatch(csp, /script-src|unsafe-inline/);
    const html = await page.text();
    assert.doesNotMatch(html, /<script/i);
    assert.match(html, /¥12\.34/);

    const token = new URL(codeUrl).pathname.split('/').at(-1) ?? '';
    const forged = await fetch(`${origin}/sandbox/wechat-pay/scan/${token}/pay`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'form_token=guessed', redirect: 'manual',
    });
    assert.equal(forged.status, 403);
    const found = await query(order.out_trade_no);
    assert.equal(found.data.trade_state, 'NOTPAY', 'the forged form changed nothing');

    assert.equal((await press(codeUrl, 'fail')).status, 303);
    const failed = await query(order.out_trade_no);
    assert.equal(failed.data.trade_state, 'PAYERROR');
  });

  it('retries an unacknowledged callback on WeChat\'s schedule, compressed by the divisor, until it is acknowledged', async () => {
    // Goal: a 500 from the merchant means "send again": 15 s, 15 s, 30 s … (here divided by 3), the same body each time.
    sandbox.resetControls();
    sandbox.faults.set({ retryScheduleDivisor: 3 });
    await deliverAll();
    receiver.received.length = 0;
    receiver.answers.push(500, 500, 500);
    const created = await createNative(nativeOrder());
    await press(created.data.code_url, 'pay');
    try {
      assert.equal(await deliverAll(), 1, 'first attempt');
      clock.offsetMs += 4_000;
      assert.equal(await deliverAll(), 0, 'not before 15 s / 3');
      clock.offsetMs += 1_100;
      assert.equal(await deliverAll(), 1, 'second attempt after 5 s');
      clock.offsetMs += 5_100;
      assert.equal(await deliverAll(), 1, 'third attempt after another 5 s');
      clock.offsetMs += 9_000;
      assert.equal(await deliverAll(), 0, 'not before 30 s / 3');
      clock.offsetMs += 1_100;
      assert.equal(await deliverAll(), 1, 'fourth attempt after 10 s, answered 204');
      clock.offsetMs += 60 * 60_000;
      assert.equal(await deliverAll(), 0, 'an acknowledged callback is done');
    } finally {
      clock.offsetMs = 0;
      sandbox.resetControls();
    }
    assert.equal(receiver.received.length, 4);
    assert.ok(receiver.received.every((delivery) => delivery.body === receiver.received[0]?.body), 'every attempt carries the same body');
    const last = (await callbackRows()).at(-1);
    assert.equal(last?.attempts, 4);
    assert.ok(last?.delivered_at);
  });

  it('gives a callback up after the 15 retries of the schedule', async () => {
    // Goal: the schedule is bounded: 16 attempts in all (24 h 4 min uncompressed), then no more.
    sandbox.resetControls();
    sandbox.faults.set({ retryScheduleDivisor: 1_000 });
    await deliverAll();
    const created = await createNative(nativeOrder());
    await press(created.data.code_url, 'pay');
    receiver.received.length = 0;
    receiver.answers.push(...Array.from({ length: 16 }, () => 503));
    try {
      assert.equal(await deliverAll(), 1);
      for (const delayMs of weChatRetryScheduleMs) {
        clock.offsetMs += Math.round(delayMs / 1_000) + 5;
        assert.equal(await deliverAll(), 1);
      }
      clock.offsetMs += 24 * 3_600_000;
      assert.equal(await deliverAll(), 0);
    } finally {
      clock.offsetMs = 0;
      receiver.answers.length = 0;
      sandbox.resetControls();
    }
    assert.equal(receiver.received.length, 16);
    const last = (await callbackRows()).at(-1);
    assert.equal(last?.attempts, 16);
    assert.ok(last?.given_up_at);
    assert.equal(last?.delivered_at, null);
  });

  it('applies notification faults: duplicate, drop, tamper (ciphertext and signature), delay and reorder', async () => {
    // Goal: each fault the control names reaches the merchant as WeChat's misbehaviour would.
    sandbox.resetControls();
    await deliverAll();
    const pay = async (): Promise<string> => {
      const order = nativeOrder();
      const created = await createNative(order);
      await press(created.data.code_url, 'pay');
      return String(order.out_trade_no);
    };

    receiver.received.length = 0;
    sandbox.faults.set({ notifications: { duplicate: 3 } });
    await pay();
    assert.equal(await deliverAll(), 3);
    const ids = receiver.received.map((delivery) => (JSON.parse(delivery.body) as { id: string }).id);
    assert.equal(new Set(ids).size, 1, 'three deliveries of one notification id');

    receiver.received.length = 0;
    sandbox.faults.set({ notifications: { drop: true } });
    await pay();
    assert.equal(await deliverAll(), 0);
    assert.equal(receiver.received.length, 0);

    receiver.received.length = 0;
    sandbox.faults.set({ notifications: { tamper: 'ciphertext' } });
    await pay();
    sandbox.faults.set({ notifications: { tamper: 'signature' } });
    await pay();
    await deliverAll();
    assert.equal(receiver.received.length, 2);
    for (const delivery of receiver.received) {
      assert.throws(() => openCallback(delivery), /callback signature verifies/);
    }

    receiver.received.length = 0;
    sandbox.faults.set({ notifications: { delayMs: 10_000 } });
    await pay();
    assert.equal(await deliverAll(), 0, 'held for the delay');
    clock.offsetMs += 10_001;
    try {
      assert.equal(await deliverAll(), 1, 'sent once the delay passed');
    } finally {
      clock.offsetMs = 0;
    }

    receiver.received.length = 0;
    sandbox.faults.set({ notifications: { reorder: true } });
    const first = await pay();
    assert.equal(await deliverAll(), 0, 'held until the next notification');
    const second = await pay();
    assert.equal(await deliverAll(), 2);
    const order = receiver.received.map((delivery) => openCallback(delivery).resource.out_trade_no);
    assert.deepEqual(order, [second, first]);
  });

  it('answers the error fault with a signed 500 SYSTEM_ERROR without acting, latency late, throttling with 429, and the timeout fault by acting and never answering', async () => {
    // Goal: the two ways a provider call ends without a usable answer, seen through the official client.
    const failedOrder = nativeOrder();
    sandbox.faults.set({ answers: { error: true } });
    const busy = await failure(createNative(failedOrder));
    assert.equal(busy.response?.status, 500);
    assert.equal(busy.response?.data.code, 'SYSTEM_ERROR');
    const none = await failure(query(failedOrder.out_trade_no));
    assert.equal(none.response?.data.code, 'ORDER_NOT_EXIST', 'the erroring call did nothing');

    sandbox.faults.set({ answers: { latencyMs: 250 } });
    const startedMs = Date.now();
    assert.equal((await createNative(nativeOrder())).status, 200, 'a slow answer is still an answer');
    assert.ok(Date.now() - startedMs >= 240, 'the answer came late');

    const throttled = nativeOrder();
    sandbox.throttleNextRequests(1);
    const limited = await failure(createNative(throttled));
    assert.equal(limited.response?.status, 429);
    assert.equal(limited.response?.data.code, 'FREQUENCY_LIMITED');
    assert.equal((await failure(query(throttled.out_trade_no))).response?.data.code, 'ORDER_NOT_EXIST', 'the limited call did nothing');

    const timedOrder = nativeOrder();
    sandbox.faults.set({ answers: { timeout: true } });
    const timedOut = await failure(createNative(timedOrder, client({ timeout: 300 })));
    assert.equal(timedOut.code, 'ECONNABORTED');
    assert.equal(timedOut.response, undefined);
    const acted = await query(timedOrder.out_trade_no);
    assert.equal(acted.data.trade_state, 'NOTPAY', 'the timed-out call created the order');
  });

  it('takes its test controls over HTTP', async () => {
    // Goal: the control endpoint sets faults (refusing unknown settings) and resets them.
    const post = (body: unknown) => fetch(`${origin}/sandbox/wechat-pay/control`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post({ answers: { error: true } })).status, 204);
    const busy = await failure(createNative(nativeOrder()));
    assert.equal(busy.response?.data.code, 'SYSTEM_ERROR');
    assert.equal((await post({ answers: { error: true, count: 5 } })).status, 204);
    assert.equal((await post({ reset: true })).status, 204);
    assert.equal((await createNative(nativeOrder())).status, 200, 'reset cleared the faults');
    assert.equal((await post({ answers: { explode: true } })).status, 400);
    assert.equal((await post({ refunds: { outcome: 'ABNORMAL' }, retryScheduleDivisor: 60 })).status, 204);
    assert.equal(sandbox.faults.scaled(60_000), 1_000);
    sandbox.resetControls();
  });

  it('web sign-in sends the browser back only to the domain registered for the app, never elsewhere', async () => {
    const authorize = (redirectUri: string) => fetch(`${origin}/sandbox/wechat-pay/connect/oauth2/authorize?${new URLSearchParams({
      appid: credentials.appid, response_type: 'code', scope: 'snsapi_base', state: 's1', redirect_uri: redirectUri,
    }).toString()}`, { redirect: 'manual' });
    const home = await authorize(`${origin}/pay/cs_test_x/wechat-sign-in`);
    assert.equal(home.status, 302);
    assert.match(home.headers.get('location') ?? '', new RegExp(`^${origin}/pay/cs_test_x/wechat-sign-in\\?code=[\\w-]+&state=s1$`));
    for (const elsewhere of ['https://evil.example/phish', `${origin.replace('127.0.0.1', 'localhost')}/pay/cs_test_x/wechat-sign-in`, `${origin}@evil.example/x`]) {
      const refused = await authorize(elsewhere);
      assert.equal(refused.status, 400, elsewhere);
      assert.equal(refused.headers.get('location'), null);
      assert.match(await refused.text(), /not on the domain registered for this app/);
    }
  });
});
