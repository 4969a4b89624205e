import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { AlipayConnector } from '../../src/connectors/alipay/client.ts';
import { AlipaySandbox } from '../../src/connectors/alipay/sandbox/alipay-sandbox.ts';
import { generateAlipaySandboxCredentials } from '../../src/connectors/alipay/sandbox/credentials.ts';
import { registerAlipaySandbox } from '../../src/connectors/alipay/sandbox/register-alipay-sandbox.ts';
import { NotificationRejected } from '../../src/connectors/connector.ts';
import type { NotificationSender } from '../../src/connectors/sandbox-faults.ts';
import type { WalletNotification, WalletTradeRequest } from '../../src/connectors/wallet.ts';
import { findCurrency, type CurrencyInfo } from '../../src/domain/currency.ts';
import { TestClock } from '../support/clock.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

/**
 * The Alipay connector against the sandbox over HTTP (the official SDK inside, every answer's signature checked):
 * each operation maps Alipay's answers into Coffer's terms exhaustively, checks every amount Alipay echoes, and
 * turns anything it cannot trust (faults, timeouts, tampering, mismatches) into `unknown` or a rejection.
 */

const cny = findCurrency('cny') as CurrencyInfo;
const usd = findCurrency('usd') as CurrencyInfo;
const credentials = generateAlipaySandboxCredentials();
const clock = new TestClock();
const logger = pino({ level: 'silent' });
/** Notifications the sandbox sent, as Coffer's endpoint would receive them. */
const received: Array<{ headers: Record<string, string>; rawBody: string }> = [];
const send: NotificationSender = async (_url, request) => {
  received.push({ headers: request.headers, rawBody: request.body });
  return { statusCode: 200, body: 'success' };
};

let database: TestDatabase;
let app: FastifyInstance;
let sandbox: AlipaySandbox;
let origin = '';
let connector: AlipayConnector;

function connectorFor(gateway: string, overrides: Partial<{ appId: string; timeoutMs: number }> = {}): AlipayConnector {
  return new AlipayConnector({
    appId: overrides.appId ?? credentials.appId,
    appPrivateKeyPem: credentials.appPrivateKeyPem,
    alipayPublicKeyPem: credentials.alipayPublicKeyPem,
    gateway,
    timeoutMs: overrides.timeoutMs ?? 3_000,
    logger,
  });
}

function tradeRequest(flow: 'qr' | 'page', amountMinor = 1234n, currency = cny): WalletTradeRequest {
  return {
    reference: `ch_${randomBytes(8).toString('hex')}`,
    amountMinor,
    currency,
    subject: 'Order 7 at Shop & Co / Tea=Good',
    flow,
    notifyUrl: 'https://coffer.example/hooks/alipay/test',
    returnUrl: flow === 'page' ? 'https://shop.example/done' : null,
    expiresAt: new Date(clock.nowMs() + 30 * 60_000),
  };
}

async function press(url: string, action: 'scan' | 'pay' | 'cancel'): Promise<number> {
  const html = await (await fetch(url)).text();
  const formToken = /name="form_token" value="([^"]+)"/.exec(html)?.[1] ?? '';
  const response = await fetch(`${url}/${action}`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `form_token=${formToken}`, redirect: 'manual',
  });
  return response.status;
}

/** A QR trade created through the connector and paid on the cashier; returns the request and its QR code. */
async function paidQrTrade(amountMinor = 1234n): Promise<{ request: WalletTradeRequest; qrCode: string }> {
  const request = tradeRequest('qr', amountMinor);
  const created = await connector.createTrade(request);
  assert.equal(created.status, 'created');
  const qrCode = created.action.qrCode ?? '';
  assert.equal(await press(qrCode, 'pay'), 303);
  return { request, qrCode };
}

async function notifications(): Promise<Array<{ headers: Record<string, string>; rawBody: string }>> {
  received.length = 0;
  await sandbox.deliverDueNotifications(100);
  return [...received];
}

function ref(request: WalletTradeRequest) {
  return { reference: request.reference, amountMinor: request.amountMinor, currency: request.currency };
}

before(async () => {
  database = await openTestDatabase();
  sandbox = new AlipaySandbox({ db: database.db, clock, credentials, cashierBaseUrl: () => `${origin}/sandbox/alipay`, send });
  app = Fastify();
  registerAlipaySandbox(app, sandbox);
  origin = await app.listen({ port: 0, host: '127.0.0.1' });
  connector = connectorFor(`${origin}/sandbox/alipay/gateway.do`);
});

after(async () => {
  await app.close();
  await database.drop();
});

beforeEach(async () => {
  sandbox.faults.reset();
  await notifications();
});

describe('Alipay connector, against the sandbox', () => {
  it('creates a QR trade: pending until scanned and paid, then paid with Alipay\'s trade number and the amount', async () => {
    // Goal: the QR flow's states as Coffer sees them, including the trade that does not exist before its scan.
    const request = tradeRequest('qr');
    const created = await connector.createTrade(request);
    assert.equal(created.status, 'created');
    assert.equal(created.action.redirectUrl, null);
    assert.match(created.action.qrCode ?? '', /\/sandbox\/alipay\/cashier\/[0-9A-Za-z]{24}$/);
    assert.deepEqual(await connector.createTrade(request), created, 'a retried create gives the same QR code');

    assert.deepEqual(await connector.queryTrade(ref(request)), { status: 'pending' }, 'not scanned: Alipay says TRADE_NOT_EXIST');
    assert.equal(await press(created.action.qrCode ?? '', 'scan'), 303);
    assert.deepEqual(await connector.queryTrade(ref(request)), { status: 'pending' });
    assert.equal(await press(created.action.qrCode ?? '', 'pay'), 303);
    const paid = await connector.queryTrade(ref(request));
    assert.equal(paid.status, 'paid');
    assert.match(paid.providerReference, /^20\d{26}$/);
    assert.equal(paid.amountMinor, 1234n);
    assert.ok(paid.paidAt instanceof Date && Math.abs(paid.paidAt.getTime() - clock.nowMs()) < 5_000, 'paid at the sandbox\'s time, read as Beijing time');

    const mismatch = await connector.queryTrade({ ...ref(request), amountMinor: 1235n });
    assert.equal(mismatch.status, 'unknown');
    assert.match(mismatch.reason, /total_amount mismatch/);
  });

  it('creates a page trade as a signed gateway URL that opens the cashier', async () => {
    // Goal: the page flow needs no call; the trade comes to exist when the shopper's browser opens the URL.
    const request = tradeRequest('page', 8880n);
    const created = await connector.createTrade(request);
    assert.equal(created.status, 'created');
    assert.equal(created.action.qrCode, null);
    const url = new URL(created.action.redirectUrl ?? '');
    assert.equal(url.pathname, '/sandbox/alipay/gateway.do');
    assert.equal(url.searchParams.get('method'), 'alipay.trade.page.pay');
    assert.equal(url.searchParams.get('return_url'), 'https://shop.example/done');
    const biz = JSON.parse(url.searchParams.get('biz_content') ?? '{}') as Record<string, string>;
    assert.equal(biz.total_amount, '88.80', 'fen become a yuan string');
    assert.equal(biz.subject, 'Order 7 at Shop   Co   Tea Good', 'characters Alipay forbids in a subject are replaced');
    assert.deepEqual(await connector.queryTrade(ref(request)), { status: 'pending' });
    const opened = await fetch(url, { redirect: 'manual' });
    assert.equal(opened.status, 302);
    assert.equal(await press(opened.headers.get('location') ?? '', 'pay'), 303);
    assert.equal((await connector.queryTrade(ref(request))).status, 'paid');
  });

  it('refuses currencies other than CNY and flows Alipay lacks, without calling Alipay', async () => {
    // Goal: unsupported requests fail with stable codes.
    const inUsd = await connector.createTrade(tradeRequest('qr', 1234n, usd));
    assert.deepEqual(inUsd.status === 'failed' && inUsd.code, 'currency_not_supported');
    const jsapi = await connector.createTrade({ ...tradeRequest('qr'), flow: 'jsapi' });
    assert.deepEqual(jsapi.status === 'failed' && jsapi.code, 'flow_not_supported');
    const tooMuch = await connector.createTrade(tradeRequest('qr', 10_000_000_001n));
    assert.deepEqual(tooMuch.status === 'failed' && tooMuch.code, 'amount_invalid');
  });

  it('closes a waiting trade; a paid one reports paid; a never-scanned one is reported not opened, and stays payable', async () => {
    // Goal: a close that comes too late turns into the payment, never into a lost one.
    const waiting = tradeRequest('qr');
    const created = await connector.createTrade(waiting);
    assert.equal(await press(created.status === 'created' ? created.action.qrCode ?? '' : '', 'scan'), 303);
    assert.deepEqual(await connector.closeTrade(ref(waiting)), { status: 'closed' });
    assert.deepEqual(await connector.queryTrade(ref(waiting)), { status: 'closed' });
    const again = await connector.closeTrade(ref(waiting));
    assert.deepEqual(again, { status: 'closed' }, 'closing twice: Alipay refuses, the query says closed');

    const { request } = await paidQrTrade();
    const late = await connector.closeTrade(ref(request));
    assert.equal(late.status, 'paid');
    assert.equal(late.amountMinor, 1234n);

    const unscanned = tradeRequest('qr');
    const opened = await connector.createTrade(unscanned);
    assert.equal(opened.status, 'created');
    // Alipay has no trade before the scan (ACQ.TRADE_NOT_EXIST): nothing was closed, and the code can still be paid.
    assert.deepEqual(await connector.closeTrade(ref(unscanned)), { status: 'not_opened' });
    assert.equal(await press(opened.status === 'created' ? opened.action.qrCode ?? '' : '', 'scan'), 303);
    assert.deepEqual(await connector.queryTrade(ref(unscanned)), { status: 'pending' }, 'scanned after the close: waiting for the shopper');
  });

  it('refunds by Coffer\'s key once, syncs refunds, refuses over-refunds, and reads a fully refunded trade as paid', async () => {
    // Goal: refunds are idempotent by out_request_no and every echoed amount is checked.
    const { request } = await paidQrTrade();
    const refund = { idempotencyKey: 're_first', reference: 're_first', paymentReference: request.reference, amountMinor: 500n, currency: cny, totalMinor: 1234n };
    const first = await connector.refund(refund);
    assert.equal(first.status, 'succeeded');
    assert.match(first.providerReference, /^20\d{26}:re_first$/);
    assert.deepEqual(await connector.refund(refund), first, 'a retry succeeds without refunding again (fund_change N, confirmed by query)');
    assert.deepEqual(await connector.syncRefund(refund), first);
    assert.deepEqual(await connector.syncRefund({ ...refund, idempotencyKey: 're_never' }), { status: 'not_found' });
    const wrongAmount = await connector.syncRefund({ ...refund, amountMinor: 400n });
    assert.equal(wrongAmount.status, 'unknown');
    assert.match(wrongAmount.reason, /refund_amount mismatch/);

    const over = await connector.refund({ ...refund, idempotencyKey: 're_over', amountMinor: 735n });
    assert.deepEqual(over, { status: 'failed', providerReference: null, failureReason: 'ACQ.REASON_TRADE_REFUND_FEE_ERR' });
    const rest = await connector.refund({ ...refund, idempotencyKey: 're_rest', amountMinor: 734n });
    assert.equal(rest.status, 'succeeded', 'the refused refund took nothing: 7.34 remained');
    const state = await connector.queryTrade(ref(request));
    assert.equal(state.status, 'paid', 'TRADE_CLOSED after a full refund is still a payment');

    const mismatched = await connector.refund({ ...refund, idempotencyKey: 're_rest', amountMinor: 734n, totalMinor: 1000n });
    assert.equal(mismatched.status, 'unknown');
    assert.match(mismatched.reason, /refund_fee mismatch/);
    const inUsd = await connector.refund({ ...refund, currency: usd });
    assert.deepEqual(inUsd, { status: 'failed', providerReference: null, failureReason: 'currency_not_supported' });
  });

  it('parses a genuine notification and rejects tampered ones and ones for another app', async () => {
    // Goal: only a notification that verifies and names this app is believed; its states map exhaustively.
    const { request } = await paidQrTrade();
    const [genuine] = await notifications();
    assert.ok(genuine);
    const parsed: WalletNotification = connector.parseNotification(genuine);
    assert.equal(parsed.kind, 'payment');
    assert.equal(parsed.reference, request.reference);
    assert.equal(parsed.account, credentials.appId);
    assert.equal(parsed.totalMinor, 1234n);
    assert.equal(parsed.currency, 'cny');
    assert.equal(parsed.kind === 'payment' && parsed.state.status, 'paid');
    assert.match(parsed.notificationId, /^[0-9a-f]{34}$/);

    const other = connectorFor(`${origin}/sandbox/alipay/gateway.do`, { appId: '2021000111111111' });
    assert.throws(() => other.parseNotification(genuine), (error: Error) => error instanceof NotificationRejected && /app_id/.test(error.message));
    assert.throws(() => connector.parseNotification({ ...genuine, rawBody: `${genuine.rawBody}&total_amount=1.00` }), /appears twice/);
    assert.throws(() => connector.parseNotification({ headers: { 'content-type': 'application/json' }, rawBody: genuine.rawBody }), NotificationRejected);

    for (const tamper of ['amount', 'signature'] as const) {
      sandbox.faults.set({ notifications: { tamper } });
      await paidQrTrade();
      const [tampered] = await notifications();
      assert.ok(tampered);
      assert.throws(() => connector.parseNotification(tampered), (error: Error) => error instanceof NotificationRejected && /signature/.test(error.message), `tampered ${tamper}`);
    }

    const waiting = tradeRequest('qr');
    const created = await connector.createTrade(waiting);
    assert.equal(await press(created.status === 'created' ? created.action.qrCode ?? '' : '', 'cancel'), 303);
    const [closed] = await notifications();
    assert.ok(closed);
    const closedState = connector.parseNotification(closed);
    assert.equal(closedState.kind === 'payment' && closedState.state.status, 'closed');

    assert.equal(await sandbox.finishTrade(request.reference), true);
    const [finished] = await notifications();
    assert.ok(finished);
    const finishedState = connector.parseNotification(finished);
    assert.equal(finishedState.kind === 'payment' && finishedState.state.status, 'paid');
    assert.equal((await connector.queryTrade(ref(request))).status, 'paid', 'TRADE_FINISHED is paid');

    assert.deepEqual(connector.notificationAnswer(true), { statusCode: 200, contentType: 'text/plain; charset=utf-8', body: 'success' });
    assert.equal(connector.notificationAnswer(false).body, 'fail');
  });

  it('a full refund\'s TRADE_CLOSED notification reads as paid, not closed', async () => {
    // Goal: TRADE_CLOSED is told apart by its payment and refund fields.
    const { request } = await paidQrTrade(100n);
    await notifications();
    const refund = await connector.refund({ idempotencyKey: 're_all', reference: 're_all', paymentReference: request.reference, amountMinor: 100n, currency: cny, totalMinor: 100n });
    assert.equal(refund.status, 'succeeded');
    const [refunded] = await notifications();
    assert.ok(refunded);
    assert.match(refunded.rawBody, /trade_status=TRADE_CLOSED/);
    const parsed = connector.parseNotification(refunded);
    assert.equal(parsed.kind === 'payment' && parsed.state.status, 'paid');
  });

  it('turns Alipay\'s system error, a held answer and a tampered answer into unknown outcomes', async () => {
    // Goal: whatever Coffer cannot trust is unknown, to be settled by a query, never a failure or success.
    const request = tradeRequest('qr');
    sandbox.faults.set({ answers: { error: true } });
    const unavailable = await connector.createTrade(request);
    assert.equal(unavailable.status, 'unknown');
    assert.match(unavailable.reason, /20000/);

    sandbox.faults.set({ answers: { timeout: true } });
    const impatient = connectorFor(`${origin}/sandbox/alipay/gateway.do`, { timeoutMs: 300 });
    const held = await impatient.queryTrade(ref(request));
    assert.equal(held.status, 'unknown');

    const proxy = http.createServer((incoming, outgoing) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => {
        void fetch(`${origin}${incoming.url ?? ''}`, { method: 'POST', headers: { 'content-type': incoming.headers['content-type'] ?? '' }, body: Buffer.concat(chunks) })
          .then(async (upstream) => outgoing.writeHead(200).end((await upstream.text()).replace('"code":"10000"', '"code":"10000" ')));
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const address = proxy.address();
      assert.ok(address !== null && typeof address !== 'string');
      const { request: paid } = await paidQrTrade();
      const viaProxy = connectorFor(`http://127.0.0.1:${address.port}/sandbox/alipay/gateway.do`);
      const tampered = await viaProxy.queryTrade(ref(paid));
      assert.equal(tampered.status, 'unknown');
      assert.match(tampered.reason, /验签失败/);
      assert.equal((await connector.queryTrade(ref(paid))).status, 'paid', 'the same query, untampered, is believed');
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }

    const unreachable = connectorFor('http://127.0.0.1:9/gateway.do', { timeoutMs: 1_000 });
    assert.equal((await unreachable.queryTrade(ref(request))).status, 'unknown');
    assert.equal((await unreachable.refund({ idempotencyKey: 're_x', reference: 're_x', paymentReference: request.reference, amountMinor: 1n, currency: cny, totalMinor: 1234n })).status, 'unknown');
  });
});
