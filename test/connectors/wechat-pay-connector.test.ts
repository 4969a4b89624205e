import assert from 'node:assert/strict';
import { createPrivateKey, sign } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { NotificationRejected } from '../../src/connectors/connector.ts';
import type { NotificationSender } from '../../src/connectors/sandbox-faults.ts';
import type { IncomingNotification, WalletTradeRequest } from '../../src/connectors/wallet.ts';
import { WeChatPayConnector, type WeChatPayConnectorOptions } from '../../src/connectors/wechat-pay/client.ts';
import { registerWeChatPaySandbox } from '../../src/connectors/wechat-pay/sandbox/register-wechat-pay-sandbox.ts';
import { generateWeChatPaySandboxCredentials } from '../../src/connectors/wechat-pay/sandbox/sandbox-credentials.ts';
import { WeChatPaySandbox } from '../../src/connectors/wechat-pay/sandbox/wechat-pay-sandbox.ts';
import { mapTradeState, toRefundResult } from '../../src/connectors/wechat-pay/transformers.ts';
import { findCurrency, type CurrencyInfo } from '../../src/domain/currency.ts';
import { createLogger } from '../../src/platform/logger.ts';
import type { Database } from '../../src/store/database.ts';
import { TestClock } from '../support/clock.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

/**
 * The WeChat Pay connector against the WeChat Pay sandbox over HTTP, on a real migrated database: each flow,
 * the mapping of every state, the checks of what WeChat echoes, and the verification of callbacks (genuine ones
 * accepted; tampered, probing, foreign or stale ones refused).
 */

/** Coffer's notification endpoint in miniature: keeps each callback exactly as received, answers 204. */
class NotificationTrap {
  readonly received: IncomingNotification[] = [];
  #server: http.Server | undefined;

  async start(): Promise<string> {
    this.#server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const headers: Record<string, string | undefined> = {};
        for (const [name, value] of Object.entries(request.headers)) headers[name] = Array.isArray(value) ? value.join(',') : value;
        this.received.push({ headers, rawBody: Buffer.concat(chunks).toString('utf8') });
        response.writeHead(204).end();
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

const credentials = generateWeChatPaySandboxCredentials();
const sandboxClock = new TestClock();
const connectorClock = new TestClock();
const cny = findCurrency('cny') as CurrencyInfo;
let database: TestDatabase;
let app: FastifyInstance;
let sandbox: WeChatPaySandbox<Database>;
let origin: string;
let trap: NotificationTrap;
let notifyUrl: string;
let connector: WeChatPayConnector;

function connectorWith(overrides: Partial<WeChatPayConnectorOptions> = {}): WeChatPayConnector {
  return new WeChatPayConnector({
    mchid: credentials.mchid,
    appid: credentials.appid,
    merchantSerialNo: credentials.merchantSerialNo,
    merchantPrivateKeyPem: credentials.merchantPrivateKeyPem,
    platformPublicKeyId: credentials.platformPublicKeyId,
    platformPublicKeyPem: credentials.platformPublicKeyPem,
    apiV3Key: credentials.apiV3Key,
    baseUrl: `${origin}/sandbox/wechat-pay`,
    clock: connectorClock,
    logger: createLogger('silent'),
    timeoutMs: 5_000,
    ...overrides,
  });
}

let tradeNumber = 0;
function trade(overrides: Partial<WalletTradeRequest> = {}): WalletTradeRequest {
  tradeNumber += 1;
  return {
    reference: `ch_${Date.now()}${tradeNumber}`,
    amountMinor: 1234n,
    currency: cny,
    subject: 'Order 1234 at Test Shop',
    flow: 'qr',
    notifyUrl,
    returnUrl: null,
    expiresAt: new Date(Date.now() + 30 * 60_000),
    ...overrides,
  };
}

/** Creates a QR trade and returns its reference and payment page. */
async function qrTrade(amountMinor = 1234n): Promise<{ reference: string; page: string }> {
  const request = trade({ amountMinor });
  const created = await connector.createTrade(request);
  assert.equal(created.status, 'created');
  assert.ok(created.status === 'created' && created.action.qrCode !== null);
  return { reference: request.reference, page: created.action.qrCode };
}

/** The tester presses a button on the payment page. */
async function press(page: string, action: 'scan' | 'pay' | 'fail' | 'cancel'): Promise<void> {
  const html = await (await fetch(page)).text();
  const formToken = /name="form_token" value="([^"]+)"/.exec(html)?.[1] ?? '';
  const token = new URL(page).pathname.split('/').at(-1) ?? '';
  const answer = await fetch(`${origin}/sandbox/wechat-pay/scan/${token}/${action}`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `form_token=${formToken}`, redirect: 'manual',
  });
  assert.equal(answer.status, 303);
}

const ref = (reference: string, amountMinor = 1234n) => ({ reference, amountMinor, currency: cny });

/** Pays a fresh trade and returns the callback it produced, as Coffer's endpoint received it. */
async function paidCallback(): Promise<{ reference: string; notification: IncomingNotification }> {
  await sandbox.deliverDueNotifications(100);
  trap.received.length = 0;
  const { reference, page } = await qrTrade();
  await press(page, 'pay');
  assert.ok(await sandbox.deliverDueNotifications(100) >= 1, 'the payment\'s callback was sent');
  // On a loaded machine an earlier test's callback (a refund's, a retry) can fall due in the meantime and go out
  // with this one: this trade's is the payment callback for its reference.
  const ours = (received: IncomingNotification) => {
    try {
      const parsed = connector.parseNotification(received);
      return parsed.kind === 'payment' && parsed.reference === reference;
    } catch {
      return false;
    }
  };
  const notification = trap.received.length === 1 ? trap.received[0] : trap.received.find(ours);
  assert.ok(notification, `this trade's callback among the ${trap.received.length} sent`);
  return { reference, notification };
}

function rejectedFor(notification: IncomingNotification, pattern: RegExp, by = connector): void {
  assert.throws(() => by.parseNotification(notification), (error: unknown) => error instanceof NotificationRejected && pattern.test(error.message));
}

before(async () => {
  database = await openTestDatabase();
  trap = new NotificationTrap();
  notifyUrl = await trap.start();
  app = Fastify();
  sandbox = new WeChatPaySandbox({ db: database.db, clock: sandboxClock, credentials, scanBaseUrl: () => `${origin}/sandbox/wechat-pay`, send });
  registerWeChatPaySandbox(app, sandbox);
  origin = await app.listen({ port: 0, host: '127.0.0.1' });
  connector = connectorWith();
});

after(async () => {
  await app.close();
  await trap.stop();
  await database.drop();
});

describe('WeChat Pay connector', () => {
  it('creates a QR trade whose code URL opens the payment page, and refuses what WeChat cannot do', async () => {
    // Goal: the qr flow yields WeChat's code_url; other currencies and the page flow never reach WeChat.
    const { page } = await qrTrade();
    const html = await (await fetch(page)).text();
    assert.match(html, /¥12\.34/, '1234 fen are ¥12.34');
    assert.match(html, /Native \(QR code\)/);

    const usd = trade({ currency: findCurrency('usd') as CurrencyInfo });
    assert.deepEqual(await connector.createTrade(usd), { status: 'failed', code: 'currency_invalid', message: 'WeChat Pay takes CNY only, not usd' });
    const pageFlow = await connector.createTrade(trade({ flow: 'page' }));
    assert.equal(pageFlow.status === 'failed' && pageFlow.code, 'flow_not_supported');
    assert.deepEqual(await connector.queryTrade(ref(usd.reference)), { status: 'unknown', reason: 'not found: no such order' }, 'nothing was sent');
  });

  it('creates a JSAPI trade with browser parameters signed by the merchant key, which WeChat accepts', async () => {
    // Goal: appParameters are what getBrandWCPayRequest takes; the sandbox checks paySign with the merchant key.
    const request = trade({ flow: 'jsapi', payerId: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' });
    const before = Math.floor(connectorClock.nowMs() / 1000);
    const created = await connector.createTrade(request);
    const after = Math.floor(connectorClock.nowMs() / 1000);
    assert.ok(created.status === 'created' && created.action.appParameters !== null);
    const parameters = created.action.appParameters;
    assert.equal(parameters.appId, credentials.appid);
    assert.equal(parameters.signType, 'RSA');
    assert.match(parameters.package ?? '', /^prepay_id=wx/);
    // The connector's clock, in whole seconds, while the trade was created (a second may tick over meanwhile).
    assert.ok(/^\d+$/.test(parameters.timeStamp ?? '') && Number(parameters.timeStamp) >= before && Number(parameters.timeStamp) <= after,
      `timeStamp ${parameters.timeStamp} is between ${before} and ${after}`);

    const accepted = await fetch(`${origin}/sandbox/wechat-pay/jsapi?${new URLSearchParams(parameters).toString()}`);
    assert.equal(accepted.status, 200);
    assert.match(await accepted.text(), /JSAPI \(in WeChat\)/);
    const forged = await fetch(`${origin}/sandbox/wechat-pay/jsapi?${new URLSearchParams({ ...parameters, nonceStr: 'another' }).toString()}`);
    assert.equal(forged.status, 400);
    assert.match(await forged.text(), /paySign is not valid/);

    const noOpenid = await connector.createTrade(trade({ flow: 'jsapi' }));
    assert.equal(noOpenid.status === 'failed' && noOpenid.code, 'PARAM_ERROR');
  });

  it('creates an H5 trade whose URL carries the return address back to the merchant', async () => {
    // Goal: the h5 flow redirects to WeChat's h5_url with `redirect_url` appended, as WeChat documents.
    const returnUrl = 'https://shop.example/orders/1234?paid=1';
    const created = await connector.createTrade(trade({ flow: 'h5', clientIp: '203.0.113.9', returnUrl }));
    assert.ok(created.status === 'created' && created.action.redirectUrl !== null);
    assert.equal(new URL(created.action.redirectUrl).searchParams.get('redirect_url'), returnUrl);
    const html = await (await fetch(created.action.redirectUrl)).text();
    assert.match(html, /href="https:\/\/shop\.example\/orders\/1234\?paid=1" rel="noreferrer">Return to the merchant/);
    const noIp = await connector.createTrade(trade({ flow: 'h5' }));
    assert.equal(noIp.status === 'failed' && noIp.code, 'PARAM_ERROR');
  });

  it('maps every trade state the shopper can reach', async () => {
    // Goal: NOTPAY/USERPAYING pending, SUCCESS and REFUND paid, CLOSED closed, PAYERROR failed, never created unknown.
    const { reference, page } = await qrTrade();
    assert.deepEqual(await connector.queryTrade(ref(reference)), { status: 'pending' });
    await press(page, 'scan');
    assert.deepEqual(await connector.queryTrade(ref(reference)), { status: 'pending' });
    await press(page, 'pay');
    const paid = await connector.queryTrade(ref(reference));
    assert.ok(paid.status === 'paid');
    assert.match(paid.providerReference, /^4200\d{24}$/);
    assert.equal(paid.amountMinor, 1234n);
    assert.ok(paid.paidAt instanceof Date && Math.abs(paid.paidAt.getTime() - Date.now()) < 60_000);

    const refund = await connector.refund({ idempotencyKey: `re_${reference}`, reference: `re_${reference}`, paymentReference: reference, amountMinor: 100n, currency: cny, totalMinor: 1234n });
    assert.deepEqual(refund, { status: 'unknown', reason: 'refund processing' });
    assert.deepEqual(await connector.queryTrade(ref(reference)), paid, 'a refunded trade stays paid');

    const failed = await qrTrade();
    await press(failed.page, 'fail');
    assert.deepEqual(await connector.queryTrade(ref(failed.reference)), { status: 'failed', code: 'PAYERROR', message: 'Payment failed' });
    const canceled = await qrTrade();
    await press(canceled.page, 'cancel');
    assert.deepEqual(await connector.queryTrade(ref(canceled.reference)), { status: 'closed' });
    const never = await connector.queryTrade(ref('ch_never_created_1'));
    assert.ok(never.status === 'unknown' && /not found/.test(never.reason));
  });

  it('maps states no flow here reaches, and refuses to guess at an unknown one', () => {
    // Goal: the mapping is exhaustive: REVOKED is closed, an unknown trade_state or a paid trade without an id is unknown.
    const base = { appid: credentials.appid, mchid: credentials.mchid, out_trade_no: 'ch_1', amount: { total: 1 } };
    assert.deepEqual(mapTradeState({ ...base, trade_state: 'REVOKED' }), { status: 'closed' });
    assert.equal(mapTradeState({ ...base, trade_state: 'ACCEPTED' }).status, 'unknown');
    assert.equal(mapTradeState({ ...base, trade_state: 'SUCCESS' }).status, 'unknown');
    const echo = { refund_id: '50', out_refund_no: 're_1', transaction_id: '42', out_trade_no: 'ch_1', status: 'SUCCESS', amount: { total: 1234, refund: 100, currency: 'CNY' } };
    const expected = { outRefundNo: 're_1', outTradeNo: 'ch_1', amountMinor: 100n, totalMinor: 1234n };
    assert.deepEqual(toRefundResult(echo, expected), { status: 'succeeded', providerReference: '50' });
    assert.equal(toRefundResult({ ...echo, amount: { ...echo.amount, refund: 101 } }, expected).status, 'unknown');
    assert.equal(toRefundResult({ ...echo, out_refund_no: 're_2' }, expected).status, 'unknown');
    assert.equal(toRefundResult({ ...echo, status: 'PENDING_REVIEW' }, expected).status, 'unknown');
  });

  it('reports a trade whose echoed amount is not what Coffer expects as unknown, naming the amount', async () => {
    // Goal: WeChat's amount.total is checked on every query, paid or not.
    const { reference, page } = await qrTrade(1234n);
    await press(page, 'pay');
    const mismatch = await connector.queryTrade(ref(reference, 1235n));
    assert.ok(mismatch.status === 'unknown');
    assert.match(mismatch.reason, /amount mismatch: WeChat Pay says amount.total 1234 fen, Coffer expects 1235/);
  });

  it('closes a trade, and reports one the shopper paid first as paid', async () => {
    // Goal: close is a signed 204; a close that loses the race with the shopper yields the payment.
    const open = await qrTrade();
    assert.deepEqual(await connector.closeTrade(ref(open.reference)), { status: 'closed' });
    assert.deepEqual(await connector.queryTrade(ref(open.reference)), { status: 'closed' });
    assert.deepEqual(await connector.closeTrade(ref(open.reference)), { status: 'closed' }, 'closing again is harmless');

    const paidFirst = await qrTrade();
    await press(paidFirst.page, 'pay');
    const late = await connector.closeTrade(ref(paidFirst.reference));
    assert.ok(late.status === 'paid');
    assert.equal(late.amountMinor, 1234n);
    const unknownTrade = await connector.closeTrade(ref('ch_never_created_2'));
    assert.deepEqual(unknownTrade, { status: 'failed', code: 'ORDER_NOT_EXIST', message: 'no such order' });
  });

  it('refunds: processing then succeeded, idempotent by key, refused beyond the total, unresolved when WeChat says ABNORMAL, failed on NOT_ENOUGH', async () => {
    // Goal: the refund statuses map as the recovery job needs them, and refusals are failures that moved no money.
    const { reference, page } = await qrTrade();
    await press(page, 'pay');
    const request = { idempotencyKey: `re_a_${reference}`, reference: `re_a_${reference}`, paymentReference: reference, amountMinor: 1000n, currency: cny, totalMinor: 1234n };
    assert.deepEqual(await connector.refund(request), { status: 'unknown', reason: 'refund processing' });
    assert.deepEqual(await connector.syncRefund(request), { status: 'unknown', reason: 'refund processing' });
    sandboxClock.offsetMs += sandbox.refunds.settleAfterMs + 1;
    try {
      const settled = await connector.syncRefund(request);
      assert.ok(settled.status === 'succeeded');
      assert.match(settled.providerReference, /^50\d{27}$/);
      assert.deepEqual(await connector.refund(request), settled, 'the same key is the same refund');

      const over = await connector.refund({ ...request, idempotencyKey: `re_b_${reference}`, amountMinor: 235n });
      assert.deepEqual(over, { status: 'failed', providerReference: null, failureReason: 'INVALID_REQUEST' });
      assert.deepEqual(await connector.syncRefund({ ...request, idempotencyKey: `re_b_${reference}`, amountMinor: 235n }), { status: 'not_found' });

      sandbox.refunds.settleNextAs('ABNORMAL');
      const abnormal = { ...request, idempotencyKey: `re_c_${reference}`, amountMinor: 100n };
      assert.deepEqual(await connector.refund(abnormal), { status: 'unknown', reason: 'refund processing' });
      sandboxClock.offsetMs += sandbox.refunds.settleAfterMs + 1;
      // ABNORMAL: the money left the merchant but did not reach the shopper; it is finished by hand at WeChat, so
      // it is never a failure (which would release the amount for a second refund) but stays unresolved.
      const abnormalAnswer = { status: 'unknown', reason: 'refund abnormal: finish it on the WeChat Pay merchant platform' };
      assert.deepEqual(await connector.refund(abnormal), abnormalAnswer);
      assert.deepEqual(await connector.syncRefund(abnormal), abnormalAnswer);

      sandbox.refunds.balanceFen = 10;
      const poor = await connector.refund({ ...request, idempotencyKey: `re_d_${reference}`, amountMinor: 11n });
      assert.deepEqual(poor, { status: 'failed', providerReference: null, failureReason: 'NOT_ENOUGH' });
    } finally {
      sandboxClock.offsetMs = 0;
      sandbox.resetControls();
    }
  });

  it('accepts a genuine payment callback and a refund callback', async () => {
    // Goal: a callback verified and decrypted becomes Coffer's notification, amounts in minor units.
    const { reference, notification } = await paidCallback();
    const parsed = connector.parseNotification(notification);
    assert.ok(parsed.kind === 'payment');
    assert.equal(parsed.reference, reference);
    assert.equal(parsed.account, credentials.mchid);
    assert.equal(parsed.totalMinor, 1234n);
    assert.equal(parsed.currency, 'cny');
    assert.equal(parsed.notificationId, (JSON.parse(notification.rawBody) as { id: string }).id);
    assert.ok(parsed.state.status === 'paid');
    assert.match(parsed.state.providerReference, /^4200\d{24}$/);

    const request = { idempotencyKey: `re_${reference}`, reference: `re_${reference}`, paymentReference: reference, amountMinor: 234n, currency: cny, totalMinor: 1234n };
    await connector.refund(request);
    sandboxClock.offsetMs += sandbox.refunds.settleAfterMs + 1;
    try {
      trap.received.length = 0;
      assert.ok(await sandbox.deliverDueNotifications(100) >= 2, 'the refund settles, and its callback goes out');
    } finally {
      sandboxClock.offsetMs = 0;
    }
    const refunded = trap.received.map((received) => connector.parseNotification(received))
      .find((parsed) => parsed.kind === 'refund' && parsed.refundReference === request.idempotencyKey);
    assert.ok(refunded);
    assert.deepEqual({ ...refunded, notificationId: '' }, {
      kind: 'refund', notificationId: '', refundReference: request.idempotencyKey, reference, account: credentials.mchid,
      amountMinor: 234n, status: 'succeeded', failureReason: null,
    });
  });

  it('refuses callbacks with a tampered ciphertext, tag or signature', async () => {
    // Goal: a changed byte anywhere fails; the GCM tag is checked even when the signature is (re-)made valid.
    for (const tamper of ['ciphertext', 'tag', 'signature'] as const) {
      sandbox.faults.set({ notifications: { tamper } });
      const { notification } = await paidCallback();
      rejectedFor(notification, /signature is not valid/);
    }
    // A body whose tag is wrong but which carries a valid signature (only WeChat's key can make one): the AES-GCM
    // authentication must refuse it on its own.
    const { notification } = await paidCallback();
    const envelope = JSON.parse(notification.rawBody) as { resource: { ciphertext: string } };
    const sealed = Buffer.from(envelope.resource.ciphertext, 'base64');
    sealed[sealed.length - 1] = (sealed[sealed.length - 1] ?? 0) ^ 0x01;
    envelope.resource.ciphertext = sealed.toString('base64');
    const body = JSON.stringify(envelope);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = 'reSignedNonce0123456789abcdefghi';
    const signature = sign('sha256', Buffer.from(`${timestamp}\n${nonce}\n${body}\n`), createPrivateKey(credentials.platformPrivateKeyPem)).toString('base64');
    const resigned = { rawBody: body, headers: { ...notification.headers, 'wechatpay-timestamp': timestamp, 'wechatpay-nonce': nonce, 'wechatpay-signature': signature } };
    rejectedFor(resigned, /does not decrypt/);
    assert.equal(connector.parseNotification({ ...notification }).kind, 'payment', 'the untouched original still passes');
  });

  it('refuses a probe signature, an unknown Wechatpay-Serial, another merchant\'s callback and a stale one', async () => {
    // Goal: each reason a genuine-looking callback must still be refused.
    await sandbox.deliverDueNotifications(100);
    trap.received.length = 0;
    await sandbox.queueSignatureProbe(notifyUrl);
    await sandbox.deliverDueNotifications(100);
    rejectedFor(trap.received[0] as IncomingNotification, /probe/);

    const { notification } = await paidCallback();
    rejectedFor(notification, /unknown key/, connectorWith({ platformPublicKeyId: 'PUB_KEY_ID_0199999999999999999999999999999' }));
    rejectedFor(notification, /not 1999/, connectorWith({ mchid: '1999999999' }));
    connectorClock.offsetMs = 6 * 60_000;
    try {
      rejectedFor(notification, /five minutes/);
    } finally {
      connectorClock.offsetMs = 0;
    }
    assert.equal(connector.parseNotification(notification).kind, 'payment');
  });

  it('reports unknown when WeChat errs, never answers, throttles, or signs with a probe', async () => {
    // Goal: an answer Coffer cannot trust, or none, is unknown; the query then tells what happened.
    const erred = trade();
    sandbox.faults.set({ answers: { error: true } });
    const busy = await connector.createTrade(erred);
    assert.ok(busy.status === 'unknown' && /500 SYSTEM_ERROR/.test(busy.reason));
    assert.ok((await connector.queryTrade(ref(erred.reference))).status === 'unknown', 'the erring call created nothing');

    const timed = trade();
    sandbox.faults.set({ answers: { timeout: true } });
    const silent = await connectorWith({ timeoutMs: 300 }).createTrade(timed);
    assert.ok(silent.status === 'unknown' && /no answer from WeChat Pay/.test(silent.reason));
    assert.deepEqual(await connector.queryTrade(ref(timed.reference)), { status: 'pending' }, 'the timed-out call did create the trade');

    sandbox.throttleNextRequests(1);
    const limited = await connector.queryTrade(ref(timed.reference));
    assert.ok(limited.status === 'unknown' && /429 FREQUENCY_LIMITED/.test(limited.reason));

    sandbox.probeNextAnswers(1);
    const probed = await connector.queryTrade(ref(timed.reference));
    assert.deepEqual(probed, { status: 'unknown', reason: 'WeChat Pay answer not verified (EV3_RES_HEADER_SIGNATURE_DIGEST)' });
    const repeat = await connector.createTrade(timed);
    assert.ok(repeat.status === 'created', 'the same order placed again gets the same trade');
  });

  it('answers WeChat 204 for a taken callback and 500 with FAIL for one to send again', () => {
    // Goal: WeChat reads the HTTP status; the body of a refusal is its FAIL shape.
    assert.deepEqual(connector.notificationAnswer(true), { statusCode: 204, contentType: 'text/plain; charset=utf-8', body: '' });
    const refused = connector.notificationAnswer(false);
    assert.equal(refused.statusCode, 500);
    assert.equal((JSON.parse(refused.body) as { code: string }).code, 'FAIL');
  });
});
