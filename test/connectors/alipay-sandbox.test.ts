import assert from 'node:assert/strict';
import { createSign, createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { AlipaySdk, type AlipaySdkCommonResult } from 'alipay-sdk';
import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { AlipaySandbox, alipaySandboxLimits } from '../../src/connectors/alipay/sandbox/alipay-sandbox.ts';
import { generateAlipaySandboxCredentials } from '../../src/connectors/alipay/sandbox/credentials.ts';
import { registerAlipaySandbox } from '../../src/connectors/alipay/sandbox/register-alipay-sandbox.ts';
import type { NotificationSender } from '../../src/connectors/sandbox-faults.ts';
import { TestClock } from '../support/clock.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

/**
 * Alipay's side of the wire, proven with the official `alipay-sdk` against the sandbox on a real HTTP listener and
 * a real migrated database: the SDK signs requests and, with `validateSign`, verifies every answer over its exact
 * bytes, and notifications are checked with the SDK's own `checkNotifySignV2`, so drift from Alipay's protocol
 * fails here.
 */

interface Delivery {
  contentType: string | undefined;
  body: string;
}

/** A merchant's notify_url on loopback: records every delivery and answers the queued bodies (then `success`). */
class NotifyReceiver {
  readonly received: Delivery[] = [];
  readonly answers: string[] = [];
  #server: http.Server | undefined;

  async start(): Promise<string> {
    this.#server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.received.push({ contentType: request.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') });
        response.writeHead(200, { 'content-type': 'text/plain' }).end(this.answers.shift() ?? 'success');
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    return `http://127.0.0.1:${address.port}/hooks/alipay/test`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }
}

const send: NotificationSender = async (url, request) => {
  const response = await fetch(url, { method: 'POST', headers: request.headers, body: request.body });
  return { statusCode: response.status, body: await response.text() };
};

const credentials = generateAlipaySandboxCredentials();
const clock = new TestClock();
const receiver = new NotifyReceiver();
let database: TestDatabase;
let app: FastifyInstance;
let sandbox: AlipaySandbox;
let origin = '';
let notifyUrl = '';
let sdk: AlipaySdk;

function sdkFor(gateway: string, privateKey = credentials.appPrivateKeyPem, appId = credentials.appId): AlipaySdk {
  return new AlipaySdk({ appId, privateKey, alipayPublicKey: credentials.alipayPublicKeyPem, gateway, timeout: 2_000 });
}

function outTradeNo(): string {
  return `ch_${randomBytes(8).toString('hex')}`;
}

async function precreate(reference: string, totalAmount = '12.34', client = sdk): Promise<AlipaySdkCommonResult> {
  return client.exec('alipay.trade.precreate', { notifyUrl, bizContent: { out_trade_no: reference, total_amount: totalAmount, subject: 'Order 1 at Shop' } }, { validateSign: true });
}

async function call(method: string, bizContent: Record<string, unknown>): Promise<AlipaySdkCommonResult> {
  return sdk.exec(method, { bizContent }, { validateSign: true });
}

/** The tester's cashier: the page, and a press of one of its buttons (with the page's form token unless told). */
async function cashier(url: string): Promise<{ status: number; html: string; csp: string | null; formToken: string | undefined }> {
  const response = await fetch(url);
  const html = await response.text();
  return { status: response.status, html, csp: response.headers.get('content-security-policy'), formToken: /name="form_token" value="([^"]+)"/.exec(html)?.[1] };
}

async function press(url: string, action: 'scan' | 'pay' | 'cancel', formToken?: string): Promise<{ status: number; location: string | null }> {
  const token = formToken ?? (await cashier(url)).formToken ?? '';
  const response = await fetch(`${url}/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ form_token: token, action }).toString(),
    redirect: 'manual',
  });
  return { status: response.status, location: response.headers.get('location') };
}

/** A request built and signed by hand, to send what the SDK never would; returns the raw answer text. */
async function signedByHand(params: Record<string, string>): Promise<string> {
  const content = Object.keys(params).sort().map((key) => `${key}=${params[key]}`).join('&');
  const sign = createSign('RSA-SHA256').update(content).sign(credentials.appPrivateKeyPem, 'base64');
  const response = await fetch(`${origin}/sandbox/alipay/gateway.do`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...params, sign }).toString(),
  });
  return response.text();
}

function commonParams(method: string, timestamp = '2024-01-01 10:00:00'): Record<string, string> {
  return { app_id: credentials.appId, method, charset: 'utf-8', sign_type: 'RSA2', version: '1.0', timestamp };
}

async function deliverAll(): Promise<number> {
  let handled = 0;
  for (let round = 0; round < 10; round += 1) {
    const count = await sandbox.deliverDueNotifications(alipaySandboxLimits.duplicatesMax * 10);
    if (count === 0) return handled;
    handled += count;
  }
  throw new Error('notifications did not drain');
}

function fields(delivery: Delivery): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(delivery.body));
}

async function control(settings: Record<string, unknown>): Promise<Response> {
  return fetch(`${origin}/sandbox/alipay/control`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings) });
}

/** A paid precreated trade: precreate, pay on the cashier (scanning on the way). */
async function paidTrade(totalAmount = '12.34'): Promise<{ reference: string; qrCode: string }> {
  const reference = outTradeNo();
  const created = await precreate(reference, totalAmount);
  assert.equal(created.code, '10000');
  assert.equal((await press(created.qrCode as string, 'pay')).status, 303);
  return { reference, qrCode: created.qrCode as string };
}

async function tradeRow(reference: string): Promise<Record<string, unknown> | undefined> {
  const rows = await sql<Record<string, unknown>>`SELECT * FROM sandbox_alipay_trades WHERE out_trade_no = ${reference}`.execute(database.db);
  return rows.rows[0];
}

before(async () => {
  database = await openTestDatabase();
  notifyUrl = await receiver.start();
  sandbox = new AlipaySandbox({ db: database.db, clock, credentials, cashierBaseUrl: () => `${origin}/sandbox/alipay`, send });
  app = Fastify();
  registerAlipaySandbox(app, sandbox);
  origin = await app.listen({ port: 0, host: '127.0.0.1' });
  sdk = sdkFor(`${origin}/sandbox/alipay/gateway.do`);
});

after(async () => {
  await app.close();
  await receiver.stop();
  await database.drop();
});

beforeEach(async () => {
  assert.equal((await control({ reset: true, notifyWaitBuyerPay: false })).status, 200);
  await deliverAll();
  receiver.received.length = 0;
  receiver.answers.length = 0;
});

describe('Alipay sandbox, with the official SDK', () => {
  it('goes precreate → not there before the scan → scan and pay → verified notification → query → refunds', async () => {
    // Goal: the whole money path as a merchant using Alipay's own SDK sees it, every answer verified by the SDK.
    const reference = outTradeNo();
    const created = await precreate(reference);
    assert.equal(created.code, '10000');
    assert.equal(created.outTradeNo, reference);
    const qrCode = created.qrCode as string;
    assert.match(qrCode, /\/sandbox\/alipay\/cashier\/[0-9A-Za-z]{24}$/);
    assert.equal((await precreate(reference)).qrCode, qrCode, 'an identical precreate returns the same QR code');
    const changed = await precreate(reference, '12.35');
    assert.equal(changed.subCode, 'ACQ.CONTEXT_INCONSISTENT', 'the same out_trade_no with another amount is refused');

    const unscanned = await call('alipay.trade.query', { out_trade_no: reference });
    assert.equal(unscanned.code, '40004');
    assert.equal(unscanned.subCode, 'ACQ.TRADE_NOT_EXIST', 'a QR trade does not exist until scanned');

    const page = await cashier(qrCode);
    assert.equal(page.status, 200);
    assert.match(page.html, /Scan QR code/);
    assert.match(page.csp ?? '', /default-src 'none'/);
    assert.doesNotMatch(page.csp ?? '', /script-src|unsafe-inline/);
    assert.doesNotMatch(page.html, /<script/i);

    assert.equal((await press(qrCode, 'pay', 'forged-token')).status, 403);
    assert.equal((await call('alipay.trade.query', { out_trade_no: reference })).subCode, 'ACQ.TRADE_NOT_EXIST', 'a forged form changed nothing');

    assert.equal((await press(qrCode, 'scan')).status, 303);
    const scanned = await call('alipay.trade.query', { out_trade_no: reference });
    assert.equal(scanned.tradeStatus, 'WAIT_BUYER_PAY');
    assert.equal(scanned.totalAmount, '12.34');
    assert.equal(scanned.sendPayDate, undefined);
    assert.equal(receiver.received.length, 0, 'no WAIT_BUYER_PAY notification unless subscribed');

    const paid = await press(qrCode, 'pay');
    assert.equal(paid.status, 303);
    assert.equal(paid.location, qrCode, 'a QR trade shows "paid" on the cashier');
    assert.match((await cashier(qrCode)).html, /Paid\./);

    assert.equal(await deliverAll(), 1);
    assert.equal(receiver.received.length, 1);
    const delivery = receiver.received[0] as Delivery;
    assert.match(delivery.contentType ?? '', /^application\/x-www-form-urlencoded/);
    const notification = fields(delivery);
    assert.equal(sdk.checkNotifySignV2(notification), true, 'the SDK verifies the notification');
    assert.equal(notification.notify_type, 'trade_status_sync');
    assert.equal(notification.trade_status, 'TRADE_SUCCESS');
    assert.equal(notification.out_trade_no, reference);
    assert.equal(notification.app_id, credentials.appId);
    assert.equal(notification.total_amount, '12.34');
    assert.match(notification.gmt_payment ?? '', /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    assert.deepEqual(Object.entries(notification).filter(([, value]) => value === ''), [], 'no empty fields are sent');
    assert.equal(await deliverAll(), 0, 'an acknowledged notification is not sent again');

    const settled = await call('alipay.trade.query', { out_trade_no: reference });
    assert.equal(settled.tradeStatus, 'TRADE_SUCCESS');
    assert.equal(settled.tradeNo, notification.trade_no);
    assert.match(settled.tradeNo as string, /^20\d{26}$/);
    assert.equal(settled.buyerPayAmount, '12.34');
    assert.match(settled.sendPayDate as string, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    assert.equal((await call('alipay.trade.close', { out_trade_no: reference })).subCode, 'ACQ.TRADE_STATUS_ERROR', 'a paid trade cannot be closed');

    const refund = await call('alipay.trade.refund', { out_trade_no: reference, refund_amount: '5.00', out_request_no: 're_1' });
    assert.equal(refund.code, '10000');
    assert.equal(refund.fundChange, 'Y');
    assert.equal(refund.refundFee, '5.00');
    assert.equal(refund.sendBackFee, '5.00');
    const repeated = await call('alipay.trade.refund', { out_trade_no: reference, refund_amount: '5.00', out_request_no: 're_1' });
    assert.equal(repeated.code, '10000');
    assert.equal(repeated.fundChange, 'N', 'a repeat moves no money');
    assert.equal(repeated.refundFee, '5.00', 'and refunds once');
    assert.equal((await call('alipay.trade.refund', { out_trade_no: reference, refund_amount: '6.00', out_request_no: 're_1' })).subCode, 'ACQ.DISCORDANT_REPEAT_REQUEST');
    const over = await call('alipay.trade.refund', { out_trade_no: reference, refund_amount: '7.35', out_request_no: 're_2' });
    assert.equal(over.subCode, 'ACQ.REASON_TRADE_REFUND_FEE_ERR', 'more than remains is refused');
    const rest = await call('alipay.trade.refund', { out_trade_no: reference, refund_amount: '7.34', out_request_no: 're_3' });
    assert.equal(rest.refundFee, '12.34', 'the refused refund took nothing');

    const found = await call('alipay.trade.fastpay.refund.query', { out_trade_no: reference, out_request_no: 're_1', query_options: ['gmt_refund_pay'] });
    assert.equal(found.refundAmount, '5.00');
    assert.equal(found.refundStatus, 'REFUND_SUCCESS');
    assert.equal(found.totalAmount, '12.34');
    assert.match(found.gmtRefundPay as string, /^\d{4}-/);
    const missing = await call('alipay.trade.fastpay.refund.query', { out_trade_no: reference, out_request_no: 're_2' });
    assert.equal(missing.code, '10000');
    assert.equal(missing.refundAmount, undefined, 'a refund never made is answered with no data');

    const refunded = await call('alipay.trade.query', { out_trade_no: reference });
    assert.equal(refunded.tradeStatus, 'TRADE_CLOSED', 'a fully refunded trade is TRADE_CLOSED');
    assert.ok(refunded.sendPayDate, 'but still carries its payment date');
    const rows = await sql<{ out_request_no: string }>`
      SELECT r.out_request_no FROM sandbox_alipay_refunds r JOIN sandbox_alipay_trades t USING (trade_no)
      WHERE t.out_trade_no = ${reference} ORDER BY r.out_request_no`.execute(database.db);
    assert.deepEqual(rows.rows.map((row) => row.out_request_no), ['re_1', 're_3']);

    assert.equal(await deliverAll(), 2, 'each refund is notified');
    const [partial, full] = receiver.received.slice(1).map(fields);
    assert.equal(partial?.trade_status, 'TRADE_SUCCESS');
    assert.equal(partial?.refund_fee, '5.00');
    assert.equal(partial?.out_biz_no, 're_1');
    assert.equal(full?.trade_status, 'TRADE_CLOSED');
    assert.equal(full?.refund_fee, '12.34');
    assert.match(full?.gmt_refund ?? '', /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/);
    assert.equal(sdk.checkNotifySignV2(full), true);
  });

  it('closes: not before the scan (TRADE_NOT_EXIST, and the QR can still be scanned), yes while waiting, not after paying', async () => {
    // Goal: close follows Alipay: it needs a trade that exists and waits for the buyer.
    const reference = outTradeNo();
    const created = await precreate(reference);
    const formToken = (await cashier(created.qrCode as string)).formToken;
    assert.equal((await call('alipay.trade.close', { out_trade_no: reference })).subCode, 'ACQ.TRADE_NOT_EXIST');
    assert.equal((await press(created.qrCode as string, 'scan')).status, 303);
    const closed = await call('alipay.trade.close', { out_trade_no: reference });
    assert.equal(closed.code, '10000');
    assert.equal(closed.outTradeNo, reference);
    assert.equal((await call('alipay.trade.query', { out_trade_no: reference })).tradeStatus, 'TRADE_CLOSED');
    assert.equal((await press(created.qrCode as string, 'pay', formToken)).status, 409, 'a closed trade cannot be paid');
    assert.equal((await call('alipay.trade.query', { out_trade_no: reference })).sendPayDate, undefined);
    assert.equal(await deliverAll(), 1);
    assert.equal(fields(receiver.received[0] as Delivery).trade_status, 'TRADE_CLOSED');
    assert.equal((await precreate(reference)).subCode, 'ACQ.TRADE_HAS_CLOSE');

    const paid = await paidTrade();
    assert.equal((await call('alipay.trade.close', { trade_no: (await call('alipay.trade.query', { out_trade_no: paid.reference })).tradeNo })).subCode, 'ACQ.TRADE_STATUS_ERROR');
    assert.equal((await precreate(paid.reference)).subCode, 'ACQ.TRADE_HAS_SUCCESS');
  });

  it('cancel on the cashier closes the trade and notifies; an expired trade is closed by the sweep', async () => {
    // Goal: the shopper's cancel and Alipay's own timeout both end in TRADE_CLOSED, notified.
    const reference = outTradeNo();
    const created = await precreate(reference);
    assert.equal((await press(created.qrCode as string, 'cancel')).status, 303);
    assert.equal((await call('alipay.trade.query', { out_trade_no: reference })).tradeStatus, 'TRADE_CLOSED');

    const expiring = outTradeNo();
    const short = await sdk.exec('alipay.trade.precreate', { notifyUrl, bizContent: { out_trade_no: expiring, total_amount: 1, subject: 'Soon gone', timeout_express: '1m' } }, { validateSign: true });
    assert.equal(short.code, '10000', 'a JSON number amount is accepted, as Alipay accepts it');
    const shortToken = (await cashier(short.qrCode as string)).formToken;
    assert.equal((await press(short.qrCode as string, 'scan')).status, 303);
    clock.offsetMs += 2 * 60_000;
    assert.equal(await deliverAll(), 3, 'one trade expired and two notifications sent');
    const statuses = receiver.received.map((delivery) => fields(delivery));
    assert.deepEqual(statuses.map((notification) => [notification.out_trade_no, notification.trade_status]), [[reference, 'TRADE_CLOSED'], [expiring, 'TRADE_CLOSED']]);
    assert.equal(statuses[1]?.total_amount, '1.00');
    assert.ok(statuses[1]?.gmt_close);
    assert.equal((await press(short.qrCode as string, 'pay', shortToken)).status, 409);
  });

  it('page pay: the GET URL and the POST form both open the cashier; paying returns to return_url with signed parameters', async () => {
    // Goal: a page trade exists once its page opens, and the browser comes back to the shop with Alipay's signature.
    const reference = outTradeNo();
    const returnUrl = 'https://shop.example/return?order=1';
    const url = sdk.pageExecute('alipay.trade.page.pay', 'GET', {
      notifyUrl,
      returnUrl,
      bizContent: { out_trade_no: reference, total_amount: '88.80', subject: 'Page order', product_code: 'FAST_INSTANT_TRADE_PAY' },
    });
    const opened = await fetch(url, { redirect: 'manual' });
    assert.equal(opened.status, 302);
    const cashierUrl = opened.headers.get('location') ?? '';
    assert.match(cashierUrl, /\/sandbox\/alipay\/cashier\/[0-9A-Za-z]{24}$/);
    assert.equal((await call('alipay.trade.query', { out_trade_no: reference })).tradeStatus, 'WAIT_BUYER_PAY', 'a page trade exists once opened');
    const page = await cashier(cashierUrl);
    assert.match(page.csp ?? '', /form-action 'self' https:\/\/shop\.example/);
    assert.match(page.html, />Pay</);

    const paid = await press(cashierUrl, 'pay', page.formToken);
    assert.equal(paid.status, 303);
    const back = new URL(paid.location ?? '');
    assert.equal(back.origin + back.pathname, 'https://shop.example/return');
    assert.equal(back.searchParams.get('order'), '1', 'the shop\'s own parameters are kept');
    const returned = Object.fromEntries(back.searchParams);
    delete returned.order;
    assert.equal(returned.method, 'alipay.trade.page.pay.return');
    assert.equal(returned.total_amount, '88.80');
    assert.equal(sdk.checkNotifySignV2(returned), true, 'the return parameters verify with Alipay\'s key');
    assert.equal(sdk.checkNotifySignV2({ ...returned, total_amount: '0.01' }), false);
    const again = await press(cashierUrl, 'pay', page.formToken);
    assert.equal(again.status, 303, 'a second click is answered as the first');
    assert.match(again.location ?? '', /^https:\/\/shop\.example\/return\?order=1&/);
    assert.equal(await deliverAll(), 1, 'and pays once');
    assert.equal(fields(receiver.received[0] as Delivery).trade_status, 'TRADE_SUCCESS');

    const formReference = outTradeNo();
    const form = sdk.pageExecute('alipay.trade.page.pay', 'POST', {
      notifyUrl,
      bizContent: { out_trade_no: formReference, total_amount: '1.00', subject: 'Form order', product_code: 'FAST_INSTANT_TRADE_PAY' },
    });
    const action = /action="([^"]+)"/.exec(form)?.[1] ?? '';
    const inputs = [...form.matchAll(/name="([^"]+)" value="([^"]*)"/g)].map((match): [string, string] => [match[1] ?? '', (match[2] ?? '').replaceAll('&quot;', '"')]);
    const posted = await fetch(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(inputs).toString(), redirect: 'manual' });
    assert.equal(posted.status, 302);
    assert.equal((await call('alipay.trade.query', { out_trade_no: formReference })).tradeStatus, 'WAIT_BUYER_PAY');

    const tampered = new URL(url);
    const biz = JSON.parse(tampered.searchParams.get('biz_content') ?? '{}') as Record<string, string>;
    tampered.searchParams.set('biz_content', JSON.stringify({ ...biz, out_trade_no: outTradeNo(), total_amount: '0.01' }));
    const refused = await fetch(tampered, { redirect: 'manual' });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /isv\.invalid-signature/);
  });

  it('refuses requests signed with another key, for another app, or with a malformed timestamp; nothing is created', async () => {
    // Goal: only requests the app signed are acted on, and the refusal is Alipay's, signed so the SDK believes it.
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const reference = outTradeNo();
    const forged = await precreate(reference, '12.34', sdkFor(`${origin}/sandbox/alipay/gateway.do`, stranger.privateKey));
    assert.equal(forged.code, '40002');
    assert.equal(forged.subCode, 'isv.invalid-signature');
    assert.equal(await tradeRow(reference), undefined, 'nothing was created');
    const otherApp = await precreate(reference, '12.34', sdkFor(`${origin}/sandbox/alipay/gateway.do`, credentials.appPrivateKeyPem, '2021000999999999'));
    assert.equal(otherApp.subCode, 'isv.invalid-app-id');

    // By hand, to send what the SDK never would: a well-signed request with a malformed timestamp.
    const biz = JSON.stringify({ out_trade_no: reference, total_amount: '1.00', subject: 'x' });
    const raw = await signedByHand({ ...commonParams('alipay.trade.precreate', '2024/01/01 10:00:00'), biz_content: biz });
    assert.match(raw, /^\{"alipay_trade_precreate_response":\{.*\},"sign":"[A-Za-z0-9+/=]+"\}$/);
    assert.match(raw, /"sub_code":"isv.invalid-timestamp"/);
    assert.equal(await tradeRow(reference), undefined);
    const unknownMethod = await signedByHand({ ...commonParams('alipay.trade.pay'), biz_content: biz });
    assert.match(unknownMethod, /^\{"error_response":\{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-method"/);
    const duplicated = await fetch(`${origin}/sandbox/alipay/gateway.do?method=alipay.trade.query`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'method=alipay.trade.query',
    });
    assert.match(await duplicated.text(), /"sub_code":"isv.invalid-parameter"/, 'a parameter given twice is refused, not guessed at');
    const badAmount = await precreate(reference, '12.345');
    assert.equal(badAmount.subCode, 'ACQ.INVALID_PARAMETER');
    assert.equal(await tradeRow(reference), undefined);
  });

  it('signs the exact bytes it sends: one byte changed on the way makes the SDK reject the answer', async () => {
    // Goal: the envelope's signature covers the raw `*_response` text, as the SDK verifies it.
    let tamper = false;
    let tampered = 0;
    const proxy = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        void fetch(`${origin}${request.url ?? ''}`, { method: 'POST', headers: { 'content-type': request.headers['content-type'] ?? '' }, body: Buffer.concat(chunks) })
          .then(async (upstream) => {
            const body = await upstream.text();
            const sent = tamper ? body.replace('"total_amount":"12.34"', '"total_amount":"12.35"') : body;
            if (sent !== body) tampered += 1;
            response.writeHead(upstream.status, { 'content-type': 'application/json' }).end(sent);
          });
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const address = proxy.address();
      assert.ok(address !== null && typeof address !== 'string');
      const viaProxy = sdkFor(`http://127.0.0.1:${address.port}/sandbox/alipay/gateway.do`);
      const { reference } = await paidTrade();
      const honest = await viaProxy.exec('alipay.trade.query', { bizContent: { out_trade_no: reference } }, { validateSign: true });
      assert.equal(honest.totalAmount, '12.34', 'the proxy alone changes nothing');
      tamper = true;
      await assert.rejects(
        viaProxy.exec('alipay.trade.query', { bizContent: { out_trade_no: reference } }, { validateSign: true }),
        (error: Error) => error.message.includes('验签失败'),
      );
      assert.equal(tampered, 1, 'the answer was changed by one byte');

      // The signed text is the raw inner object, slashes escaped as Alipay writes them.
      const raw = await signedByHand({
        ...commonParams('alipay.trade.precreate'), notify_url: notifyUrl,
        biz_content: JSON.stringify({ out_trade_no: outTradeNo(), total_amount: '3.00', subject: 'Raw' }),
      });
      const inner = /^\{"alipay_trade_precreate_response":(\{.*\}),"sign":"([^"]+)"\}$/.exec(raw);
      assert.ok(inner?.[1] !== undefined && inner[2] !== undefined);
      assert.match(inner[1], /"qr_code":"http:\\\/\\\/127\.0\.0\.1/);
      assert.equal(createVerify('RSA-SHA256').update(inner[1]).verify(credentials.alipayPublicKeyPem, inner[2], 'base64'), true);
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('retries an unacknowledged notification on Alipay\'s schedule until the exact answer `success`, then gives up after 8', async () => {
    // Goal: only `success` stops the retries; the delays are 4m, 10m, 10m, 1h, 2h, 6h, 15h (here divided by 60).
    assert.equal((await control({ retryScheduleDivisor: 60 })).status, 200);
    receiver.answers.push('fail', 'SUCCESS', 'success');
    const { reference } = await paidTrade();
    assert.equal(await deliverAll(), 1);
    clock.offsetMs += 3_000;
    assert.equal(await deliverAll(), 0, 'not before 4 minutes / 60');
    clock.offsetMs += 1_100;
    assert.equal(await deliverAll(), 1, 'the second attempt after 4 s');
    clock.offsetMs += 9_000;
    assert.equal(await deliverAll(), 0);
    clock.offsetMs += 1_100;
    assert.equal(await deliverAll(), 1, 'the third after 10 s more');
    // A day later (other tests' unpaid trades expire meanwhile, and are notified): this one is never sent again.
    clock.offsetMs += 24 * 3_600_000;
    await deliverAll();
    const mine = receiver.received.filter((delivery) => fields(delivery).out_trade_no === reference);
    assert.equal(mine.length, 3, 'acknowledged at the third attempt, and never sent again');
    assert.equal(new Set(mine.map((delivery) => fields(delivery).notify_id)).size, 1, 'the same notification each time');
    const row = await sql<{ attempts: number; delivered: boolean; last_answer: string }>`
      SELECT n.attempts, n.delivered, n.last_answer FROM sandbox_alipay_notifications n JOIN sandbox_alipay_trades t USING (trade_no)
      WHERE t.out_trade_no = ${reference}`.execute(database.db);
    assert.deepEqual(row.rows, [{ attempts: 3, delivered: true, last_answer: '200 success' }]);

    assert.equal((await control({ retryScheduleDivisor: 3_600 })).status, 200);
    receiver.received.length = 0;
    receiver.answers.push(...Array.from({ length: 20 }, () => 'fail'));
    const unlucky = await paidTrade();
    for (const delayMs of [0, ...alipaySandboxLimits.notificationRetryDelaysMs, 24 * 3_600_000]) {
      clock.offsetMs += Math.round(delayMs / 3_600) + 10;
      await deliverAll();
    }
    assert.equal(receiver.received.filter((delivery) => fields(delivery).out_trade_no === unlucky.reference).length, 8, 'eight attempts in all');
    const given = await sql<{ attempts: number; delivered: boolean; given_up_at: Date | null }>`
      SELECT n.attempts, n.delivered, n.given_up_at FROM sandbox_alipay_notifications n JOIN sandbox_alipay_trades t USING (trade_no)
      WHERE t.out_trade_no = ${unlucky.reference}`.execute(database.db);
    assert.equal(given.rows[0]?.attempts, 8);
    assert.equal(given.rows[0]?.delivered, false);
    assert.ok(given.rows[0]?.given_up_at instanceof Date);
  });

  it('notification faults: a tampered amount or signature fails checkNotifySignV2; dropped, duplicated, delayed, reordered', async () => {
    // Goal: each fault a test can ask for happens to the next notification, and only to it.
    assert.equal((await control({ notifications: { tamper: 'amount' } })).status, 200);
    await paidTrade();
    assert.equal((await control({ notifications: { tamper: 'signature' } })).status, 200);
    await paidTrade();
    await paidTrade();
    assert.equal(await deliverAll(), 3);
    const [amount, signature, honest] = receiver.received.map(fields);
    assert.notEqual(amount?.total_amount, '12.34');
    assert.equal(amount?.total_amount?.length, 5, 'one byte changed');
    assert.equal(sdk.checkNotifySignV2(amount), false);
    assert.equal(signature?.total_amount, '12.34');
    assert.equal(sdk.checkNotifySignV2(signature), false);
    assert.equal(sdk.checkNotifySignV2(honest), true, 'the fault applied to one notification only');

    receiver.received.length = 0;
    assert.equal((await control({ notifications: { drop: true } })).status, 200);
    await paidTrade();
    assert.equal(await deliverAll(), 0, 'a dropped notification is never sent');
    assert.equal((await control({ notifications: { duplicate: 3 } })).status, 200);
    await paidTrade();
    assert.equal(await deliverAll(), 3);
    assert.equal(new Set(receiver.received.map((delivery) => fields(delivery).notify_id)).size, 1, 'three copies of one notification');

    receiver.received.length = 0;
    assert.equal((await control({ notifications: { delayMs: 60_000 } })).status, 200);
    await paidTrade();
    assert.equal(await deliverAll(), 0, 'held for its delay');
    clock.offsetMs += 61_000;
    assert.equal(await deliverAll(), 1);

    receiver.received.length = 0;
    assert.equal((await control({ notifyWaitBuyerPay: true, notifications: { reorder: true } })).status, 200);
    const { reference } = await paidTrade();
    assert.equal(await deliverAll(), 2);
    assert.deepEqual(receiver.received.map((delivery) => [fields(delivery).out_trade_no, fields(delivery).trade_status]),
      [[reference, 'TRADE_SUCCESS'], [reference, 'WAIT_BUYER_PAY']], 'the stale WAIT_BUYER_PAY arrives after TRADE_SUCCESS');
  });

  it('answer faults: error answers 20000 without acting; timeout acts and never answers; latency delays', async () => {
    // Goal: the outcomes a merchant must treat as unknown are produced on demand.
    const failed = outTradeNo();
    assert.equal((await control({ answers: { error: true } })).status, 200);
    const unavailable = await precreate(failed);
    assert.equal(unavailable.code, '20000');
    assert.equal(await tradeRow(failed), undefined, 'nothing was done');
    assert.equal((await precreate(failed)).code, '10000', 'the fault applied once');

    const held = outTradeNo();
    assert.equal((await control({ answers: { timeout: true } })).status, 200);
    const impatient = new AlipaySdk({ appId: credentials.appId, privateKey: credentials.appPrivateKeyPem, alipayPublicKey: credentials.alipayPublicKeyPem, gateway: `${origin}/sandbox/alipay/gateway.do`, timeout: 300 });
    await assert.rejects(impatient.exec('alipay.trade.precreate', { notifyUrl, bizContent: { out_trade_no: held, total_amount: '1.00', subject: 'x' } }, { validateSign: true }));
    assert.ok(await tradeRow(held), 'the sandbox acted before holding its answer');

    assert.equal((await control({ answers: { latencyMs: 400 } })).status, 200);
    const startedMs = Date.now();
    assert.equal((await precreate(outTradeNo())).code, '10000');
    assert.ok(Date.now() - startedMs >= 400);
  });

  it('the control endpoint refuses unknown or out-of-range settings', async () => {
    // Goal: a typo in a test's fault settings fails loudly instead of silently testing nothing.
    assert.equal((await control({ notifications: { tamper: 'everything' } })).status, 400);
    assert.equal((await control({ answer: { error: true } })).status, 400);
    assert.equal((await control({ retryScheduleDivisor: 0 })).status, 400);
    assert.equal((await precreate(outTradeNo())).code, '10000', 'nothing was set by the refused settings');
  });
});
