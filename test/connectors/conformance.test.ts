import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import { NotificationRejected, type RefundRequest, type RefundResult, type RefundSyncResult } from '../../src/connectors/connector.ts';
import type { IncomingNotification, WalletTradeRef, WalletTradeRequest } from '../../src/connectors/wallet.ts';
import { findCurrency, type CurrencyInfo } from '../../src/domain/currency.ts';
import { walletHarnesses, type ConnectorHarness, type ScenarioKey } from '../support/conformance.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

/**
 * One conformance suite for every wallet connector (the `WalletConnector` interface): the same scenarios, by the
 * same names, run against each provider's connector through its sandbox over HTTP, on a real migrated database.
 * Everything a scenario needs to know of a provider (how the shopper pays, how notifications arrive, how refunds
 * settle, what the provider reads in an answer) comes from its harness in test/support/conformance.ts. A
 * divergence a harness declares runs as `todo`, with its evidence, so it stays visible until it is fixed.
 */

const cny = findCurrency('cny') as CurrencyInfo;
const usd = findCurrency('usd') as CurrencyInfo;
/** 1234 fen: ¥12.34. */
const amount = 1234n;

type WalletRefund = RefundRequest & { totalMinor: bigint };

function newReference(prefix: string): string {
  return `${prefix}_${randomBytes(8).toString('hex')}`;
}

function tradeRequest(h: ConnectorHarness, overrides: Partial<WalletTradeRequest> = {}): WalletTradeRequest {
  return {
    reference: newReference('ch'),
    amountMinor: amount,
    currency: cny,
    subject: 'Order 1234 at Test Shop',
    flow: 'qr',
    notifyUrl: h.notifyUrl,
    returnUrl: null,
    expiresAt: new Date(Date.now() + 30 * 60_000),
    ...overrides,
  };
}

function refOf(request: WalletTradeRequest, amountMinor = request.amountMinor): WalletTradeRef {
  return { reference: request.reference, amountMinor, currency: request.currency };
}

function refundOf(request: WalletTradeRequest, amountMinor: bigint, currency = cny): WalletRefund {
  const key = newReference('re');
  return { idempotencyKey: key, reference: key, paymentReference: request.reference, amountMinor, currency, totalMinor: request.amountMinor };
}

/** A QR trade created through the connector. */
async function qrTrade(h: ConnectorHarness): Promise<{ request: WalletTradeRequest; qrCode: string }> {
  const request = tradeRequest(h);
  const created = await h.connector.createTrade(request);
  assert.equal(created.status, 'created', `createTrade answered ${created.status}`);
  assert.ok(created.action.qrCode !== null, 'a QR trade has a QR code');
  return { request, qrCode: created.action.qrCode };
}

/** A QR trade the shopper paid, with the one notification the sandbox sent for it. */
async function paidTrade(h: ConnectorHarness): Promise<{ request: WalletTradeRequest; notification: IncomingNotification }> {
  const { request, qrCode } = await qrTrade(h);
  assert.equal(await h.shopper(qrCode, 'pay'), 303, 'the shopper pays on the page');
  const sent = await h.deliverNotifications();
  assert.equal(sent.length, 1, 'the payment is notified once');
  const [notification] = sent;
  assert.ok(notification);
  return { request, notification };
}

/**
 * A refund's final word: its first answer where the provider settles refunds at once; otherwise the first answer
 * must be "processing" (`unknown`, never a guess), and the sync after the sandbox settles it decides.
 */
async function settledRefund(h: ConnectorHarness, refund: WalletRefund, first: RefundResult): Promise<RefundSyncResult> {
  if (h.refundsSettle === 'at once') return first;
  assert.equal(first.status, 'unknown', 'a refund still processing is not yet an outcome');
  assert.match(first.reason, /processing/);
  await h.settleRefunds();
  return h.connector.syncRefund(refund);
}

interface Scenario {
  key: ScenarioKey;
  name: string;
  run(h: ConnectorHarness): Promise<void>;
}

const scenarios: readonly Scenario[] = [
  {
    key: 'create',
    name: 'createTrade (qr) is created with a QR code; the same reference again gives the same code, not a second trade',
    async run(h) {
      const request = tradeRequest(h);
      const created = await h.connector.createTrade(request);
      assert.equal(created.status, 'created');
      assert.equal(created.action.redirectUrl, null);
      assert.equal(created.action.appParameters, null);
      const qrCode = created.action.qrCode ?? '';
      assert.notEqual(qrCode, '', 'the qr flow gives a QR code');
      const page = await h.openPage(qrCode);
      assert.equal(page.status, 200, 'the QR code opens the provider\'s page');
      assert.match(page.html, /12\.34/, 'which asks the shopper for ¥12.34');
      assert.deepEqual(await h.connector.createTrade(request), created, 'the same reference gives the same QR code');
      assert.equal(await h.tradesAtSandbox(request.reference), 1, 'one trade at the provider');
    },
  },
  {
    key: 'pendingBeforePay',
    name: 'queryTrade before the shopper pays is pending',
    async run(h) {
      const { request, qrCode } = await qrTrade(h);
      assert.deepEqual(await h.connector.queryTrade(refOf(request)), { status: 'pending' }, 'created, not yet seen by the shopper');
      assert.equal(await h.shopper(qrCode, 'scan'), 303);
      assert.deepEqual(await h.connector.queryTrade(refOf(request)), { status: 'pending' }, 'scanned, not paid');
    },
  },
  {
    key: 'paid',
    name: 'after the shopper pays, queryTrade is paid with the amount asked and a provider reference',
    async run(h) {
      const { request, qrCode } = await qrTrade(h);
      assert.equal(await h.shopper(qrCode, 'pay'), 303);
      const paid = await h.connector.queryTrade(refOf(request));
      assert.equal(paid.status, 'paid');
      assert.equal(paid.amountMinor, amount);
      assert.match(paid.providerReference, /^\S{8,}$/, 'the provider\'s own trade number');
      assert.notEqual(paid.providerReference, request.reference, 'the provider\'s reference, not Coffer\'s');
      assert.ok(paid.paidAt === null || Math.abs(paid.paidAt.getTime() - Date.now()) < 60_000, 'paid now, if the provider says when');
      assert.deepEqual(await h.connector.queryTrade(refOf(request)), paid, 'asking again gives the same answer');
    },
  },
  {
    key: 'notification',
    name: 'the payment notification the sandbox sends is accepted; the connector\'s answers are the provider\'s "received" and "send again"',
    async run(h) {
      // The provider's retries come at once, and the first delivery is answered "send again".
      h.faults.set({ retryScheduleDivisor: 1e9 });
      h.answerNotifications(false);
      const { request, qrCode } = await qrTrade(h);
      assert.equal(await h.shopper(qrCode, 'pay'), 303);
      const [first, ...others] = await h.deliverNotifications();
      assert.ok(first, 'the payment is notified');
      assert.equal(others.length, 0);

      const parsed = h.connector.parseNotification(first);
      assert.equal(parsed.kind, 'payment');
      assert.equal(parsed.reference, request.reference);
      assert.equal(parsed.account, h.connector.account);
      assert.equal(parsed.account, h.merchantAccount);
      assert.equal(parsed.totalMinor, amount);
      assert.equal(parsed.currency, 'cny');
      assert.notEqual(parsed.notificationId, '');
      assert.equal(parsed.state.status, 'paid');
      assert.equal(parsed.state.amountMinor, amount);
      const queried = await h.connector.queryTrade(refOf(request));
      assert.equal(queried.status, 'paid');
      assert.equal(parsed.state.providerReference, queried.providerReference, 'the notification and the query name the same payment');
      const last = Number(h.merchantAccount.at(-1));
      const stranger = h.connectorWith({ account: `${h.merchantAccount.slice(0, -1)}${(last + 1) % 10}` });
      assert.throws(() => stranger.parseNotification(first), (error: unknown) => error instanceof NotificationRejected,
        'the same notification is refused by a connector for another merchant account');

      const received = h.connector.notificationAnswer(true);
      const again = h.connector.notificationAnswer(false);
      assert.ok(h.answerRules.received(received), `notificationAnswer(true) ${JSON.stringify(received)}: ${h.answerRules.describedAs}`);
      assert.ok(h.answerRules.sendAgain(again), `notificationAnswer(false) ${JSON.stringify(again)}: ${h.answerRules.describedAs}`);
      assert.ok(!h.answerRules.received(again));

      // The sandbox reads them as the provider does: "send again" brings the same notification back; "received" ends it.
      h.answerNotifications(true);
      const [resent, ...resentOthers] = await h.deliverNotifications();
      assert.ok(resent, 'answered "send again", the provider sends it again');
      assert.equal(resentOthers.length, 0);
      assert.equal(h.connector.parseNotification(resent).notificationId, parsed.notificationId, 'the same notification');
      assert.deepEqual(await h.deliverNotifications(), [], 'answered "received", the provider stops');
    },
  },
  {
    key: 'tampered',
    name: 'the same notification with one byte changed is rejected',
    async run(h) {
      const { notification } = await paidTrade(h);
      assert.equal(h.connector.parseNotification(notification).kind, 'payment', 'the genuine notification is accepted');
      assert.ok(h.tamperings.some((tampering) => tampering.part === 'signature'), 'the signature is among the parts changed');
      assert.ok(h.tamperings.length >= 2, 'and the content it signs');
      for (const tampering of h.tamperings) {
        const tampered = tampering.apply(notification);
        assert.notDeepEqual(tampered, notification, `the ${tampering.part} changed`);
        assert.throws(() => h.connector.parseNotification(tampered), (error: unknown) => error instanceof NotificationRejected,
          `one byte of the ${tampering.part} changed: NotificationRejected`);
      }
      assert.equal(h.connector.parseNotification(notification).kind, 'payment', 'the genuine one is still accepted');
    },
  },
  {
    key: 'refund',
    name: 'a partial refund succeeds; its key again refunds once; a refund above what remains fails',
    async run(h) {
      const { request } = await paidTrade(h);
      const part = refundOf(request, 500n);
      const first = await h.connector.refund(part);
      const repeated = await h.connector.refund(part);
      assert.deepEqual(repeated, first, 'the same key at once: the same refund, as it stands');
      const settled = await settledRefund(h, part, first);
      assert.equal(settled.status, 'succeeded');
      assert.notEqual(settled.providerReference, '');
      assert.deepEqual(await h.connector.syncRefund(part), settled, 'the refund as the provider keeps it');
      assert.deepEqual(await h.connector.refund(part), settled, 'the same key once settled: the same refund');
      assert.deepEqual(await h.connector.syncRefund(refundOf(request, 500n)), { status: 'not_found' }, 'a key never sent is not found');
      assert.deepEqual(await h.refundsAtSandbox(request.reference), { count: 1, totalMinor: 500n }, 'refunded once at the provider');

      const over = await h.connector.refund(refundOf(request, amount - 500n + 1n));
      assert.equal(over.status, 'failed', 'one fen more than remains');
      assert.equal(over.providerReference, null, 'no refund was made');
      const rest = refundOf(request, amount - 500n);
      const restSettled = await settledRefund(h, rest, await h.connector.refund(rest));
      assert.equal(restSettled.status, 'succeeded', 'exactly what remains: neither the repeat nor the refused refund took any');
      assert.deepEqual(await h.refundsAtSandbox(request.reference), { count: 2, totalMinor: amount }, 'the whole trade, refunded once');
      assert.equal((await h.connector.refund(refundOf(request, 1n))).status, 'failed', 'nothing remains');
      assert.equal((await h.connector.queryTrade(refOf(request))).status, 'paid', 'a refunded trade is still a payment');
    },
  },
  {
    key: 'close',
    name: 'closeTrade closes an unpaid trade, which then queries closed and cannot be paid',
    async run(h) {
      const { request, qrCode } = await qrTrade(h);
      await h.bringIntoBeing(qrCode);
      assert.deepEqual(await h.connector.closeTrade(refOf(request)), { status: 'closed' });
      assert.deepEqual(await h.connector.queryTrade(refOf(request)), { status: 'closed' });
      assert.notEqual(await h.shopper(qrCode, 'pay'), 303, 'the shopper can no longer pay it');
      assert.deepEqual(await h.connector.queryTrade(refOf(request)), { status: 'closed' });
      assert.deepEqual(await h.connector.closeTrade(refOf(request)), { status: 'closed' }, 'closing again is harmless');
    },
  },
  {
    key: 'closeBeforeShopper',
    name: 'a trade closed before the shopper opened it is closed for good, or reported not opened (and then still payable)',
    async run(h) {
      const { request, qrCode } = await qrTrade(h);
      const closed = await h.connector.closeTrade(refOf(request));
      if (closed.status === 'closed') {
        assert.notEqual(await h.shopper(qrCode, 'pay'), 303, 'the shopper cannot pay a trade the connector reported closed');
        assert.deepEqual(await h.connector.queryTrade(refOf(request)), { status: 'closed' });
        return;
      }
      // The provider had nothing to close: the connector must not say closed, since the shopper can still pay it.
      assert.deepEqual(closed, { status: 'not_opened' });
      assert.equal(await h.shopper(qrCode, 'pay'), 303, 'a trade reported not opened is still payable (Coffer watches it)');
      const state = await h.connector.queryTrade(refOf(request));
      assert.equal(state.status, 'paid', 'and the query then finds it paid');
      const again = await h.connector.closeTrade(refOf(request));
      assert.equal(again.status, 'paid', 'a close after the payment finds it paid, never closed');
    },
  },
  {
    key: 'amountMismatch',
    name: 'queryTrade with an amount other than the trade\'s is unknown, naming the amount',
    async run(h) {
      const waiting = await qrTrade(h);
      await h.bringIntoBeing(waiting.qrCode);
      const pending = await h.connector.queryTrade(refOf(waiting.request, amount + 1n));
      assert.equal(pending.status, 'unknown', 'a waiting trade for another amount');
      assert.match(pending.reason, /amount mismatch/);

      const { request } = await paidTrade(h);
      for (const expected of [amount + 1n, amount - 1n]) {
        const mismatch = await h.connector.queryTrade(refOf(request, expected));
        assert.equal(mismatch.status, 'unknown', `a paid trade of ${amount} read as ${expected}`);
        assert.match(mismatch.reason, /amount mismatch/);
      }
      assert.equal((await h.connector.queryTrade(refOf(request))).status, 'paid', 'the right amount is believed');
    },
  },
  {
    key: 'answerFaults',
    name: 'the provider\'s system error, and an answer that never comes, are unknown outcomes',
    async run(h) {
      const { request } = await paidTrade(h);
      h.faults.set({ answers: { error: true } });
      assert.equal((await h.connector.queryTrade(refOf(request))).status, 'unknown', 'a system error');
      assert.equal((await h.connector.queryTrade(refOf(request))).status, 'paid', 'the fault was for one answer');
      h.faults.set({ answers: { error: true } });
      assert.equal((await h.connector.refund(refundOf(request, 100n))).status, 'unknown', 'a refund answered with a system error');
      assert.deepEqual(await h.refundsAtSandbox(request.reference), { count: 0, totalMinor: 0n }, 'the erring provider did nothing');

      const impatient = h.connectorWith({ timeoutMs: 300 });
      h.faults.set({ answers: { timeout: true } });
      const startedMs = Date.now();
      assert.equal((await impatient.queryTrade(refOf(request))).status, 'unknown', 'no answer');
      assert.ok(Date.now() - startedMs < 5_000, 'given up near the connector\'s own timeout');

      // The provider acted and then never answered: unknown now, and the sync learns that it was done.
      const refund = refundOf(request, 100n);
      h.faults.set({ answers: { timeout: true } });
      assert.equal((await impatient.refund(refund)).status, 'unknown', 'a refund whose answer never came');
      assert.deepEqual(await h.refundsAtSandbox(request.reference), { count: 1, totalMinor: 100n }, 'made at the provider');
      await h.settleRefunds();
      assert.equal((await h.connector.syncRefund(refund)).status, 'succeeded');
    },
  },
  {
    key: 'currency',
    name: 'a currency other than CNY fails without creating anything at the provider',
    async run(h) {
      const request = tradeRequest(h, { currency: usd });
      const created = await h.connector.createTrade(request);
      assert.equal(created.status, 'failed');
      assert.match(created.message, /CNY|cny/);
      assert.equal(await h.tradesAtSandbox(request.reference), 0, 'nothing at the provider');

      const { request: paid } = await paidTrade(h);
      const refund = await h.connector.refund(refundOf(paid, 100n, usd));
      assert.equal(refund.status, 'failed', 'a refund in another currency');
      assert.equal(refund.providerReference, null);
      assert.deepEqual(await h.refundsAtSandbox(paid.reference), { count: 0, totalMinor: 0n }, 'nothing refunded');
    },
  },
  {
    key: 'capabilities',
    name: 'capabilities: no manual capture, refunds (partial too), the qr flow; the connector is named for its provider',
    async run(h) {
      const { capabilities } = h.connector;
      assert.equal(capabilities.manualCapture, false);
      assert.equal(capabilities.refund, true);
      assert.equal(capabilities.partialRefund, true, 'the refund scenario refunds in part');
      assert.ok(capabilities.flows.includes('qr'));
      assert.equal(h.connector.name, h.provider);
      assert.equal(h.connector.account, h.merchantAccount);
    },
  },
];

let database: TestDatabase;

before(async () => {
  database = await openTestDatabase();
});

after(async () => {
  await database.drop();
});

for (const factory of walletHarnesses) {
  describe(factory.title, () => {
    let harness: ConnectorHarness | undefined;
    const current = (): ConnectorHarness => {
      assert.ok(harness !== undefined, `the ${factory.title} harness started`);
      return harness;
    };

    before(async () => {
      harness = await factory.start(database.db);
    });

    after(async () => {
      await harness?.stop();
    });

    beforeEach(async () => {
      // Each scenario starts with the sandbox behaving and nothing left to notify from the one before.
      const h = current();
      h.resetControls();
      await h.deliverNotifications();
    });

    for (const scenario of scenarios) {
      const divergence = factory.knownDivergences[scenario.key];
      test(scenario.name, divergence === undefined ? {} : { todo: `known divergence: ${divergence}` }, () => scenario.run(current()));
    }
  });
}
