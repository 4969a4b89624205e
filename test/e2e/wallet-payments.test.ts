import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { deliverSandboxNotifications } from '../../src/jobs/deliver-sandbox-notifications.ts';
import { recoverPendingRefunds } from '../../src/jobs/recover-refunds.ts';
import { countStuckWalletPayments, syncWalletPayments } from '../../src/jobs/sync-wallet-payments.ts';
import { returnLateWalletPayments } from '../../src/flows/wallet-late-payments.ts';
import { runDoctor } from '../../src/ops/doctor.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { limits } from '../../src/limits.ts';
import { findCurrency } from '../../src/domain/currency.ts';
import { sql } from 'kysely';
import type { AlipaySandbox } from '../../src/connectors/alipay/sandbox/alipay-sandbox.ts';
import type { WeChatPaySandbox } from '../../src/connectors/wechat-pay/sandbox/wechat-pay-sandbox.ts';
import { TestClock } from '../support/clock.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { openPage, pressButton } from '../support/sandbox-pages.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';
import { internalListener } from '../support/staff.ts';

// Goal: Alipay and WeChat Pay payments work end to end through the official Stripe SDK against Coffer, with the
// providers' sandboxes on the other side of the wire: the shopper pays on the provider's page, the provider's
// signed notification (or Coffer's own query) completes the PaymentIntent exactly once, refunds go back through
// the provider, and a notification that is forged, tampered, duplicated, late or lost never moves money wrongly.
describe('wallet payments (Alipay, WeChat Pay)', () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();
  const returnUrl = 'https://shop.example/return';

  before(async () => {
    server = await startTestServer({ clock, providerTimeoutMs: 2_000 });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });
  beforeEach(() => {
    for (const sandbox of Object.values(server.coffer.services.connectors.sandboxes.wallets)) sandbox.faults.reset();
  });

  const services = () => server.coffer.services;
  const deliver = () => deliverSandboxNotifications(services());
  const alipayFaults = () => services().connectors.sandboxes.wallets.alipay.faults;
  const wechatFaults = () => services().connectors.sandboxes.wallets.wechat_pay.faults;

  async function startAlipay(amount = 1234): Promise<Stripe.PaymentIntent> {
    const created = await stripe.paymentIntents.create({ amount, currency: 'cny', allowed_payment_method_types: ['alipay'], description: 'Order 42' });
    return stripe.paymentIntents.confirm(created.id, { payment_method_data: { type: 'alipay' }, return_url: returnUrl });
  }

  async function startWeChat(amount = 2500): Promise<Stripe.PaymentIntent> {
    return stripe.paymentIntents.create({
      amount, currency: 'cny', allowed_payment_method_types: ['wechat_pay'], confirm: true,
      payment_method_data: { type: 'wechat_pay' }, payment_method_options: { wechat_pay: { client: 'web' } },
    });
  }

  /** The shopper opens the Alipay cashier from the redirect and pays (or cancels) there. */
  async function alipayShopper(intent: Stripe.PaymentIntent, action: 'pay' | 'cancel') {
    const url = intent.next_action?.alipay_handle_redirect?.url;
    assert.ok(url !== undefined && url !== null, 'an Alipay redirect URL');
    const cashier = await openPage(server, url);
    return pressButton(server, cashier, action);
  }

  async function wechatShopper(intent: Stripe.PaymentIntent, action: 'pay' | 'cancel') {
    const code = intent.next_action?.wechat_pay_display_qr_code?.data;
    assert.ok(code !== undefined, 'a WeChat Pay code URL');
    const page = await openPage(server, code);
    if (page.body.includes('value="scan"')) return pressButton(server, await pageAfter(await pressButton(server, page, 'scan'), page), action);
    return pressButton(server, page, action);
  }

  async function pageAfter(response: { status: number; headers: Record<string, string | string[] | undefined> }, page: { url: URL }) {
    const location = response.headers.location;
    return openPage(server, typeof location === 'string' ? new URL(location, page.url).toString() : page.url.toString());
  }

  /** As if the sync worker's backoff had grown: its next question is far off. */
  async function pushSyncLater(chargeId: string): Promise<void> {
    await services().db.updateTable('charges').set({ provider_sync_at: new Date(clock.nowMs() + 3_600_000) }).where('id', '=', chargeId).execute();
  }

  async function refusals(): Promise<number> {
    return (await services().db.selectFrom('audit_log').select('id').where('action', '=', 'provider_notification.refuse').execute()).length;
  }

  async function eventsOf(intentId: string, type: string): Promise<number> {
    const rows = await services().db.selectFrom('events').select('id').where('type', '=', type).where('object_id', '=', intentId).execute();
    return rows.length;
  }

  test('Alipay: confirm → redirect → the shopper pays on the cashier → the notification completes it; then refunds', async () => {
    const intent = await startAlipay(1234);
    assert.equal(intent.status, 'requires_action');
    assert.equal(intent.next_action?.type, 'alipay_handle_redirect');
    assert.equal(intent.next_action?.alipay_handle_redirect?.return_url, returnUrl);
    const url = new URL(intent.next_action?.alipay_handle_redirect?.url ?? '');
    assert.equal(url.pathname, '/sandbox/alipay/gateway.do');
    assert.equal(url.searchParams.get('method'), 'alipay.trade.page.pay');
    // The amount goes to Alipay in yuan, converted only by the connector.
    assert.equal(JSON.parse(url.searchParams.get('biz_content') ?? '{}').total_amount, '12.34');

    const paid = await alipayShopper(intent, 'pay');
    assert.equal(paid.status, 303);
    const back = new URL(String(paid.headers.location));
    assert.equal(back.pathname, `/hooks/return/${intent.latest_charge as string}`, 'Alipay sends the shopper back through Coffer');
    // Nothing is believed from the browser: until Alipay's notification arrives (or Coffer asks), nothing changes.
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action');

    assert.ok(await deliver() >= 1);
    const done = await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] });
    assert.equal(done.status, 'succeeded');
    assert.equal(done.amount_received, 1234);
    assert.equal(done.next_action, null);
    const charge = done.latest_charge as Stripe.Charge;
    assert.equal(charge.payment_method_details?.type, 'alipay');
    assert.match(String(charge.payment_method_details?.alipay?.transaction_id), /^\d{20,}$/);
    assert.equal(await eventsOf(intent.id, 'payment_intent.succeeded'), 1);
    // Coming back through Coffer leads to the merchant's return_url with Stripe's parameters.
    const returned = await rawRequest(server, 'GET', `${back.pathname}${back.search}`);
    const onward = new URL((/content="0;url=([^"]+)"/.exec(returned.body)?.[1] ?? '').replace(/&amp;/g, '&'));
    assert.equal(`${onward.origin}${onward.pathname}`, returnUrl);
    assert.equal(onward.searchParams.get('payment_intent'), intent.id);
    assert.equal(onward.searchParams.get('redirect_status'), 'succeeded');

    const partial = await stripe.refunds.create({ payment_intent: intent.id, amount: 234 });
    assert.equal(partial.status, 'succeeded');
    // In the balance transactions a wallet payment is a `payment` and its refund a `payment_refund`, as Stripe types
    // payments by other means than cards.
    const paidTransaction = await stripe.balanceTransactions.retrieve(charge.balance_transaction as string);
    assert.deepEqual([paidTransaction.type, paidTransaction.reporting_category, paidTransaction.amount, paidTransaction.source], ['payment', 'charge', 1234, charge.id]);
    const refundTransaction = await stripe.balanceTransactions.retrieve(partial.balance_transaction as string);
    assert.deepEqual([refundTransaction.type, refundTransaction.reporting_category, refundTransaction.amount], ['payment_refund', 'refund', -234]);
    assert.ok((await stripe.balanceTransactions.list({ type: 'payment', limit: 100 })).data.some((item) => item.id === paidTransaction.id));
    assert.ok(!(await stripe.balanceTransactions.list({ type: 'charge', limit: 100 })).data.some((item) => item.id === paidTransaction.id));
    const rest = await stripe.refunds.create({ payment_intent: intent.id });
    assert.equal(rest.status, 'succeeded');
    assert.equal(rest.amount, 1000);
    const before = await stateCounts(services().db);
    await assert.rejects(stripe.refunds.create({ payment_intent: intent.id, amount: 1 }), (error: Stripe.errors.StripeError) => {
      assert.equal(error.statusCode, 400);
      return true;
    });
    const afterCounts = await stateCounts(services().db);
    assert.equal(afterCounts.ledger_transfers, before.ledger_transfers, 'a refused refund moves no money');
    await assertLedgerConsistent(services().db);
  });

  test('Alipay: a notification delivered three times, and a stale one after it, completes the payment once', async () => {
    const alipay = services().connectors.sandboxes.wallets.alipay as unknown as AlipaySandbox;
    alipay.notifyWaitBuyerPay = true;
    try {
      // The "trade created" (WAIT_BUYER_PAY) notification is held back and arrives after the payment's.
      alipayFaults().set({ notifications: { reorder: true } });
      const intent = await startAlipay(800);
      const cashier = await openPage(server, intent.next_action?.alipay_handle_redirect?.url ?? '');
      alipayFaults().set({ notifications: { duplicate: 3 } });
      await pressButton(server, cashier, 'pay');
      await deliver();
      await deliver();
      assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'succeeded');
      assert.equal(await eventsOf(intent.id, 'payment_intent.succeeded'), 1);
      assert.equal(await eventsOf(intent.latest_charge as string, 'charge.succeeded'), 1);
      const transfers = await services().db.selectFrom('ledger_transfers').select('id').where('payment_intent_id', '=', intent.id).execute();
      assert.equal(transfers.length, 1, 'one ledger posting for the payment');
      // Every delivery, the stale one included, was answered "success", in the order they were sent.
      const sent = await sql<{ trade_status: string; delivered: boolean; last_answer: string | null }>`
        SELECT n.trade_status, n.delivered, n.last_answer FROM sandbox_alipay_notifications n
        JOIN sandbox_alipay_trades t ON t.trade_no = n.trade_no WHERE t.out_trade_no = ${intent.latest_charge as string}
        ORDER BY n.delivered_at, n.id`.execute(services().db);
      assert.deepEqual(sent.rows.map((row) => row.trade_status), ['TRADE_SUCCESS', 'TRADE_SUCCESS', 'TRADE_SUCCESS', 'WAIT_BUYER_PAY']);
      assert.ok(sent.rows.every((row) => row.delivered && row.last_answer?.includes('success')));
    } finally {
      alipay.notifyWaitBuyerPay = false;
    }
  });

  test('Alipay: a tampered notification is refused and audited; Coffer asks Alipay instead, and only that answer counts', async () => {
    alipayFaults().set({ notifications: { tamper: 'amount' } });
    const intent = await startAlipay(900);
    await alipayShopper(intent, 'pay');
    await pushSyncLater(intent.latest_charge as string);
    const before = await stateCounts(services().db);
    const refusedBefore = await refusals();
    await deliver();
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action', 'the tampered notification changed nothing');
    const afterCounts = await stateCounts(services().db);
    assert.equal(afterCounts.ledger_transfers, before.ledger_transfers);
    assert.equal(await refusals(), refusedBefore + 1, 'the refusal is audited as a security event');
    // The refusal brought the query forward: the sync worker asks Alipay now.
    assert.equal(await syncWalletPayments(services()), 1);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'succeeded');
  });

  test('Alipay: a genuine notification for another amount than the payment\'s is refused as a security event; no money moves', async () => {
    const intent = await startAlipay(1000);
    const chargeId = intent.latest_charge as string;
    // Someone opens a trade under this payment's number for another amount (the page trade was never opened).
    const connector = services().connectors.wallet('alipay', false);
    const currency = findCurrency('cny');
    assert.ok(currency !== undefined);
    const rogue = await connector.createTrade({
      reference: chargeId, amountMinor: 1n, currency, subject: 'rogue', flow: 'qr',
      notifyUrl: services().connectors.notificationUrl('alipay', false), returnUrl: null, expiresAt: new Date(Date.now() + 600_000),
    });
    assert.equal(rogue.status, 'created');
    const qrCode = rogue.status === 'created' ? rogue.action.qrCode ?? '' : '';
    await pressButton(server, await openPage(server, qrCode), 'pay');
    const before = await stateCounts(services().db);
    await deliver();
    const refused = await services().db.selectFrom('audit_log').select(['details', 'outcome'])
      .where('action', '=', 'provider_notification.refuse').where('object_id', '=', chargeId).execute();
    assert.equal(refused.length, 1);
    assert.match(JSON.stringify(refused[0]?.details), /does not match/);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action');
    // Asking Alipay gets the same wrong amount: the connector calls it unknown, and the payment stays unresolved.
    await syncWalletPayments(services());
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action');
    const afterCounts = await stateCounts(services().db);
    assert.equal(afterCounts.ledger_transfers, before.ledger_transfers, 'no money moved');
    // Long past its deadline it counts as stuck: the metric an alert watches says so.
    const metric = async () => (await rawRequest(internalListener(server), 'GET', '/metrics')).body;
    assert.match(await metric(), /^coffer_wallet_payments_stuck 0$/m);
    clock.offsetMs += limits.walletPaymentWindowMs + limits.walletStuckAfterMs + 60_000;
    await syncWalletPayments(services());
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action', 'never guessed');
    assert.match(await metric(), /^coffer_wallet_payments_stuck 1$/m);
    // Resolved by hand for the tests that follow: the rogue trade is closed at Alipay's side and the attempt expires.
    await services().db.updateTable('charges').set({ status: 'failed', failure_code: 'payment_intent_payment_attempt_expired', provider_sync_at: null })
      .where('id', '=', chargeId).execute();
    assert.match(await metric(), /^coffer_wallet_payments_stuck 0$/m);
  });

  test('Alipay: a lost notification is made up for by the shopper\'s return (Coffer asks Alipay) or the sync worker\'s query', async () => {
    alipayFaults().set({ notifications: { drop: true, count: 2 } });
    const returning = await startAlipay(650);
    const back = new URL(String((await alipayShopper(returning, 'pay')).headers.location));
    await deliver();
    assert.equal((await stripe.paymentIntents.retrieve(returning.id)).status, 'requires_action');
    const returned = await rawRequest(server, 'GET', `${back.pathname}${back.search}`);
    assert.match(returned.body, /redirect_status=succeeded/);
    assert.equal((await stripe.paymentIntents.retrieve(returning.id)).status, 'succeeded', 'recorded from Alipay\'s answer to Coffer\'s query');

    const intent = await startAlipay(700);
    await alipayShopper(intent, 'pay');
    await deliver();
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action');
    clock.offsetMs += limits.walletSyncFirstMs + 1_000;
    assert.ok(await syncWalletPayments(services()) >= 1);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'succeeded');
  });

  test('Alipay: a shopper who never pays: the trade is closed when the time is up, and the attempt expires', async () => {
    const intent = await startAlipay(600);
    // The shopper opens the cashier (the trade now exists at Alipay) but never pays.
    await openPage(server, intent.next_action?.alipay_handle_redirect?.url ?? '');
    clock.offsetMs += limits.walletPaymentWindowMs + limits.walletCloseGraceMs + 1_000;
    assert.equal(await countStuckWalletPayments(services().db, clock.nowMs()), 0, 'not stuck yet: the worker has not had its turn');
    await syncWalletPayments(services());
    const expired = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal(expired.status, 'requires_payment_method');
    assert.equal(expired.last_payment_error?.code, 'payment_intent_payment_attempt_expired');
    // Too late now: the cashier refuses to take the money.
    // Alipay refuses the expired page request outright, and the trade stays closed.
    await assert.rejects(alipayShopper(intent, 'pay'), /answered 400[\s\S]*Alipay refused the payment request/);
    const trade = await sql<{ status: string }>`SELECT status FROM sandbox_alipay_trades WHERE out_trade_no = ${intent.latest_charge as string}`.execute(services().db);
    assert.equal(trade.rows[0]?.status, 'TRADE_CLOSED');
  });

  test('Alipay: cancel while the shopper has not paid closes the trade first', async () => {
    const intent = await startAlipay(500);
    await openPage(server, intent.next_action?.alipay_handle_redirect?.url ?? '');
    const canceled = await stripe.paymentIntents.cancel(intent.id);
    assert.equal(canceled.status, 'canceled');
    // Alipay refuses the closed trade's page (ACQ.TRADE_HAS_CLOSE): the shopper cannot pay a canceled payment.
    await assert.rejects(openPage(server, intent.next_action?.alipay_handle_redirect?.url ?? ''), /answered 400[\s\S]*TRADE_HAS_CLOSE/);
    const charge = await stripe.charges.retrieve(intent.latest_charge as string);
    assert.equal(charge.status, 'failed');
  });

  /** What Coffer knows of a late payment, and what the sandbox's Alipay holds for its trade. */
  async function latePayment(chargeId: string) {
    const row = await services().db.selectFrom('wallet_late_payments').selectAll().where('charge_id', '=', chargeId).executeTakeFirst();
    const trade = await sql<{ status: string; refund_fee_cents: string }>`SELECT status, refund_fee_cents::text AS refund_fee_cents FROM sandbox_alipay_trades WHERE out_trade_no = ${chargeId}`.execute(services().db);
    const audits = await services().db.selectFrom('audit_log').select('action').where('object_id', '=', chargeId)
      .where('action', 'like', 'charge.%late%').orderBy('seq').execute();
    const paidAfterFailure = await services().db.selectFrom('audit_log').select('id').where('object_id', '=', chargeId).where('action', '=', 'charge.paid_after_failure').execute();
    const refunds = await sql<{ out_request_no: string }>`SELECT r.out_request_no FROM sandbox_alipay_refunds r JOIN sandbox_alipay_trades t ON t.trade_no = r.trade_no
      WHERE t.out_trade_no = ${chargeId}`.execute(services().db);
    return { row, trade: trade.rows[0], audits: audits.map((audit) => audit.action), paidAfterFailure: paidAfterFailure.length, refunds: refunds.rows.map((refund) => refund.out_request_no) };
  }

  test('Alipay: cancel before the shopper opened the page: a payment made afterwards goes back to the shopper in full, and never reaches the ledger', async () => {
    const intent = await startAlipay(880);
    const chargeId = intent.latest_charge as string;
    const canceled = await stripe.paymentIntents.cancel(intent.id);
    assert.equal(canceled.status, 'canceled');
    // Alipay had no trade to close (the page was never opened): Coffer keeps watching it until it can no longer be opened.
    assert.equal((await latePayment(chargeId)).row?.status, 'watching');
    const afterCancel = await stateCounts(services().db);

    // The shopper opens the redirect Coffer handed out before the cancel, and pays: Alipay takes the money.
    assert.equal((await alipayShopper(intent, 'pay')).status, 303);
    assert.ok(await deliver() >= 1);
    const noticed = await latePayment(chargeId);
    assert.equal(noticed.row?.status, 'refunding');
    assert.match(String(noticed.row?.provider_reference), /^\d{20,}$/, 'Alipay\'s trade_no');
    assert.equal(noticed.paidAfterFailure, 1, 'audited as a security event');
    const metric = async () => (await rawRequest(internalListener(server), 'GET', '/metrics')).body;
    assert.match(await metric(), /coffer_wallet_late_payments\{status="refunding"\} 1\n/);

    assert.ok(await returnLateWalletPayments(services()) >= 1);
    const returned = await latePayment(chargeId);
    assert.equal(returned.row?.status, 'refunded');
    assert.ok(returned.row?.refund_reference, 'the provider\'s refund id');
    assert.equal(returned.trade?.refund_fee_cents, '880', 'the whole amount went back to the shopper at Alipay');
    assert.deepEqual(returned.refunds, [`${chargeId}_late`], 'in one refund, under Coffer\'s key for it');
    assert.deepEqual(returned.audits, ['charge.late_payment_refunded']);
    assert.match(await metric(), /coffer_wallet_late_payments\{status="refunding"\} 0\n/);

    // Nothing else moved: the PaymentIntent stays canceled, its charge failed, and no money entered the ledger.
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'canceled');
    assert.equal((await stripe.charges.retrieve(chargeId)).status, 'failed');
    const afterReturn = await stateCounts(services().db);
    assert.equal(afterReturn.ledger_transfers, afterCancel.ledger_transfers);
    assert.equal(afterReturn.charges, afterCancel.charges);
    // Another run, and Alipay's notice of the refund, change nothing more: the refund was made once.
    await returnLateWalletPayments(services());
    await deliver();
    const settled = await latePayment(chargeId);
    assert.equal(settled.trade?.refund_fee_cents, '880');
    assert.equal(settled.refunds.length, 1);
    assert.deepEqual(settled.audits, ['charge.late_payment_refunded']);
    assert.equal(settled.paidAfterFailure, 1);
    await assertLedgerConsistent(services().db);
  });

  test('Alipay: a late payment whose notification is lost is found by asking Alipay once the trade can no longer be opened; an unpaid one ends the watch', async () => {
    const paid = await startAlipay(910);
    const unpaid = await startAlipay(920);
    for (const intent of [paid, unpaid]) assert.equal((await stripe.paymentIntents.cancel(intent.id)).status, 'canceled');
    alipayFaults().set({ notifications: { drop: true } });
    assert.equal((await alipayShopper(paid, 'pay')).status, 303);
    await deliver();
    assert.equal((await latePayment(paid.latest_charge as string)).row?.status, 'watching', 'the notification never came');
    assert.equal(await returnLateWalletPayments(services()), 0, 'nothing is asked while the trades can still be opened');

    // Alipay answers one question with a system error: the outcome is unknown, and asked again later.
    alipayFaults().set({ answers: { error: true, count: 1 } });
    clock.offsetMs += limits.walletPaymentWindowMs + limits.walletCloseGraceMs + 1_000;
    await returnLateWalletPayments(services());
    const states = async () => Promise.all([paid, unpaid].map(async (intent) => (await latePayment(intent.latest_charge as string)).row?.status));
    const first = await states();
    assert.ok(first.includes('watching'), `one trade's question got the system error: ${first.join(', ')}`);
    clock.offsetMs += limits.walletSyncMaxMs + 1_000;
    await returnLateWalletPayments(services());
    assert.deepEqual(await states(), ['refunded', 'unpaid']);
    const returned = await latePayment(paid.latest_charge as string);
    assert.equal(returned.trade?.refund_fee_cents, '910');
    assert.equal(returned.paidAfterFailure, 1);
    assert.equal((await latePayment(unpaid.latest_charge as string)).paidAfterFailure, 0);
    for (const intent of [paid, unpaid]) assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'canceled');
  });

  test('Alipay: a late payment the provider will not refund, or never answers for, is handed to a person: refund_failed, audited, doctor and /metrics', async () => {
    clock.offsetMs = 0;
    const metric = async () => (await rawRequest(internalListener(server), 'GET', '/metrics')).body;
    const lateDoctor = async () => (await runDoctor(loadConfig({ COFFER_HOME: server.coffer.services.homeDir }), services().db, clock.nowMs()))
      .filter((finding) => finding.check === 'late_payments').map((finding) => finding.message);
    assert.deepEqual(await lateDoctor(), []);
    const [refused, silent] = [await startAlipay(930), await startAlipay(940)];
    for (const intent of [refused, silent]) {
      assert.equal((await stripe.paymentIntents.cancel(intent.id)).status, 'canceled');
      assert.equal((await alipayShopper(intent, 'pay')).status, 303);
    }
    await deliver();
    // Someone refunded the first at Alipay by hand, under another key: Coffer's own refund is then refused.
    const alipay = services().connectors.wallet('alipay', false);
    const cny = findCurrency('cny');
    assert.ok(cny !== undefined);
    const byHand = await alipay.refund({ idempotencyKey: 'by_hand', reference: 'by_hand', paymentReference: refused.latest_charge as string, amountMinor: 930n, currency: cny, totalMinor: 930n });
    assert.equal(byHand.status, 'succeeded');
    const later = (when: number) => services().db.updateTable('wallet_late_payments').set({ next_try_at: new Date(when) }).where('charge_id', '=', silent.latest_charge as string).execute();
    await later(clock.nowMs() + 3_600_000); // the second is for later
    await returnLateWalletPayments(services());
    const failed = await latePayment(refused.latest_charge as string);
    assert.equal(failed.row?.status, 'refund_failed');
    assert.ok(failed.row?.failure_reason, 'Alipay\'s reason is kept');
    assert.deepEqual(failed.audits, ['charge.late_payment_refund_failed']);
    assert.equal(failed.trade?.refund_fee_cents, '930', 'refunded once (by hand), not twice');
    // The second: Alipay's refund answers are all system errors; Coffer tries with the same key, then gives up to a person.
    await later(clock.nowMs());
    alipayFaults().set({ answers: { error: true, count: 1000 } });
    for (let round = 0; round < limits.walletLateTriesMax + 2; round += 1) {
      await returnLateWalletPayments(services());
      clock.offsetMs += limits.walletSyncMaxMs + 1_000;
    }
    alipayFaults().reset();
    const gaveUp = await latePayment(silent.latest_charge as string);
    assert.equal(gaveUp.row?.status, 'refund_failed');
    assert.equal(gaveUp.row?.tries, limits.walletLateTriesMax);
    assert.match(String(gaveUp.row?.failure_reason), new RegExp(`no final answer after ${limits.walletLateTriesMax} tries`));
    assert.deepEqual(gaveUp.refunds, [], 'no refund reached Alipay');
    assert.match(await metric(), /coffer_wallet_late_payments\{status="refund_failed"\} 2\n/);
    assert.deepEqual(await lateDoctor(), [
      '2 wallet payment(s) made after their attempt had failed could not be refunded to the shopper: the provider refused the refund, or never answered. Settle them at the provider; the audit log\'s charge.late_payment_refund_failed records name them.',
    ]);
  });

  test('Alipay: refused before anything is written: another currency, no return_url, manual capture', async () => {
    const usd = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', allowed_payment_method_types: ['alipay'] });
    const cny = await stripe.paymentIntents.create({ amount: 1000, currency: 'cny', allowed_payment_method_types: ['alipay'] });
    const card = await stripe.paymentIntents.create({ amount: 1000, currency: 'cny', allowed_payment_method_types: ['card'] });
    const before = await stateCounts(services().db);
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      [usd.id, () => stripe.paymentIntents.confirm(usd.id, { payment_method_data: { type: 'alipay' }, return_url: returnUrl }), 'currency'],
      [cny.id, () => stripe.paymentIntents.confirm(cny.id, { payment_method_data: { type: 'alipay' } }), 'return_url'],
      [cny.id, () => stripe.paymentIntents.confirm(cny.id, { payment_method_data: { type: 'alipay' }, return_url: returnUrl, capture_method: 'manual' }), 'capture_method'],
      [card.id, () => stripe.paymentIntents.confirm(card.id, { payment_method_data: { type: 'alipay' }, return_url: returnUrl }), 'payment_method_data[type]'],
    ];
    for (const [id, attempt, param] of cases) {
      await assert.rejects(attempt(), (error: Stripe.errors.StripeError) => {
        assert.equal(error.statusCode, 400);
        assert.equal(error.param, param);
        return true;
      });
      assert.equal((await stripe.paymentIntents.retrieve(id)).status, 'requires_payment_method');
    }
    const afterCounts = await stateCounts(services().db);
    assert.equal(afterCounts.charges, before.charges);
    assert.equal(afterCounts.payment_methods, before.payment_methods);
  });

  test('a card\'s own capture_method (payment_method_options[card]) does not reach a wallet payment, which follows the top-level field', async () => {
    const created = await stripe.paymentIntents.create({
      amount: 1000, currency: 'cny', allowed_payment_method_types: ['card', 'alipay'], payment_method_options: { card: { capture_method: 'manual' } },
    });
    const confirmed = await stripe.paymentIntents.confirm(created.id, { payment_method_data: { type: 'alipay' }, return_url: returnUrl });
    assert.equal(confirmed.status, 'requires_action', 'not refused as manual capture: the option is for cards');
    assert.deepEqual([confirmed.capture_method, confirmed.payment_method_options?.card?.capture_method], ['automatic_async', 'manual']);
    await stripe.paymentIntents.cancel(confirmed.id);
  });

  test('WeChat Pay: confirm → QR code drawn locally → the shopper scans and pays → the callback completes it; refund', async () => {
    clock.offsetMs = 0; // WeChat Pay's client checks the sandbox's signed timestamps against its own clock
    const intent = await startWeChat(2500);
    assert.equal(intent.status, 'requires_action');
    assert.equal(intent.next_action?.type, 'wechat_pay_display_qr_code');
    const qr = intent.next_action?.wechat_pay_display_qr_code;
    assert.ok(qr?.data.length !== undefined && qr.data.length > 0);
    const png = Buffer.from(String(qr?.image_data_url).replace(/^data:image\/png;base64,/, ''), 'base64');
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], 'the QR image is a PNG');

    await wechatShopper(intent, 'pay');
    assert.ok(await deliver() >= 1);
    const done = await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] });
    assert.equal(done.status, 'succeeded');
    const charge = done.latest_charge as Stripe.Charge;
    assert.equal(charge.payment_method_details?.type, 'wechat_pay');
    assert.ok(charge.payment_method_details?.wechat_pay?.transaction_id);

    // WeChat settles refunds later: pending now; its REFUND.SUCCESS callback has Coffer ask again, and then it succeeded.
    (services().connectors.sandboxes.wallets.wechat_pay as unknown as WeChatPaySandbox<unknown>).refunds.settleAfterMs = 0;
    const refund = await stripe.refunds.create({ payment_intent: intent.id, amount: 1000 });
    assert.equal(refund.status, 'pending');
    await deliver();
    await recoverPendingRefunds(services());
    assert.equal((await stripe.refunds.retrieve(refund.id)).status, 'succeeded');
    await assertLedgerConsistent(services().db);
  });

  // A wallet takes the money at once, so a payment the risk engine holds is already paid: rejecting its review
  // refunds it as fraud. WeChat Pay settles refunds later, so the answer is the closed review with the refund
  // pending, the same for the request and for its retry, and the refund ends when WeChat Pay does.
  test('WeChat Pay: rejecting the review of a paid, held payment refunds it as fraud; the answer is the closed review, replayed as given', async () => {
    clock.offsetMs = 0;
    const rules = await rawRequest(server, 'POST', '/v1/risk/rule_sets', {
      key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ rules: [{ id: 'hold_2468', text: 'review if :amount: = 2468' }] }),
    });
    assert.equal(rules.status, 200, rules.body);
    try {
      const intent = await startWeChat(2468);
      await wechatShopper(intent, 'pay');
      assert.ok(await deliver() >= 1);
      const paid = await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] });
      assert.equal(paid.status, 'succeeded');
      const charge = paid.latest_charge as Stripe.Charge;
      assert.ok(typeof charge.review === 'string', 'the payment is held for review');
      (services().connectors.sandboxes.wallets.wechat_pay as unknown as WeChatPaySandbox<unknown>).refunds.settleAfterMs = 0;
      const reject = () => rawRequest(server, 'POST', `/v1/reviews/${String(charge.review)}/reject`, {
        key: server.secretKey, headers: { 'idempotency-key': `reject-${String(charge.review)}` },
      });
      const first = await reject();
      assert.equal(first.status, 200, first.body);
      assert.deepEqual([first.json.open, first.json.closed_reason], [false, 'refunded_as_fraud']);
      const again = await reject();
      assert.equal(again.body, first.body, 'the retry replays the first answer');
      const [refund] = (await stripe.refunds.list({ payment_intent: intent.id })).data;
      assert.deepEqual([refund?.status, refund?.amount, refund?.reason], ['pending', 2468, 'fraudulent']);
      await deliver();
      await recoverPendingRefunds(services());
      assert.equal((await stripe.refunds.retrieve(refund?.id ?? '')).status, 'succeeded');
      const refunds = await services().db.selectFrom('refunds').select('id').where('charge_id', '=', charge.id).execute();
      assert.equal(refunds.length, 1, 'one refund, however often the rejection is sent');
      await assertLedgerConsistent(services().db);
    } finally {
      const cleared = await rawRequest(server, 'POST', '/v1/risk/rule_sets', {
        key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ rules: [] }),
      });
      assert.equal(cleared.status, 200, cleared.body);
    }
  });

  test('WeChat Pay in a phone browser (H5) and inside WeChat (JSAPI): the shopper pays, the callback completes the payment', async () => {
    clock.offsetMs = 0;
    const h5 = await stripe.paymentIntents.create({
      amount: 1200, currency: 'cny', allowed_payment_method_types: ['wechat_pay'], confirm: true, return_url: returnUrl,
      payment_method_data: { type: 'wechat_pay' }, payment_method_options: { wechat_pay: { client: 'mobile_web' } as unknown as Stripe.PaymentIntentCreateParams.PaymentMethodOptions.WechatPay },
    });
    assert.equal(h5.next_action?.type, 'redirect_to_url');
    const h5Page = await openPage(server, h5.next_action?.redirect_to_url?.url ?? '');
    await pressButton(server, h5Page, 'pay');
    await deliver();
    assert.equal((await stripe.paymentIntents.retrieve(h5.id)).status, 'succeeded');

    // The client given at creation is kept (decision 0044), and the later confirmation pays that way; the shopper's
    // openid is kept for the confirmation but never shown.
    const kept = await stripe.paymentIntents.create({
      amount: 1250, currency: 'cny', allowed_payment_method_types: ['wechat_pay'],
      payment_method_options: { wechat_pay: { client: 'mobile_web', openid: 'oKeptOpenid' } as unknown as Stripe.PaymentIntentCreateParams.PaymentMethodOptions.WechatPay },
    });
    assert.deepEqual(kept.payment_method_options?.wechat_pay, { app_id: null, client: 'mobile_web' });
    const keptConfirmed = await stripe.paymentIntents.confirm(kept.id, { payment_method_data: { type: 'wechat_pay' }, return_url: returnUrl });
    assert.equal(keptConfirmed.next_action?.type, 'redirect_to_url', 'the H5 flow kept from the creation, not a QR code');
    assert.doesNotMatch(JSON.stringify(keptConfirmed), /oKeptOpenid/);
    // '' unsets a wallet's options: a later confirmation gets a QR code again.
    const unset = await stripe.paymentIntents.create({
      amount: 1260, currency: 'cny', allowed_payment_method_types: ['wechat_pay'],
      payment_method_options: { wechat_pay: { client: 'mobile_web' } as unknown as Stripe.PaymentIntentCreateParams.PaymentMethodOptions.WechatPay },
    });
    const cleared = await rawRequest(server, 'POST', `/v1/payment_intents/${unset.id}`, { key: server.secretKey, body: 'payment_method_options[wechat_pay]=' });
    assert.equal(cleared.status, 200, cleared.body);
    assert.equal(((cleared.json.payment_method_options as Record<string, Record<string, unknown>>).wechat_pay)?.client, null);
    assert.equal((await stripe.paymentIntents.confirm(unset.id, { payment_method_data: { type: 'wechat_pay' } })).next_action?.type, 'wechat_pay_display_qr_code');

    const noOpenid = await stripe.paymentIntents.create({ amount: 1300, currency: 'cny', allowed_payment_method_types: ['wechat_pay'] });
    await assert.rejects(stripe.paymentIntents.confirm(noOpenid.id, {
      payment_method_data: { type: 'wechat_pay' }, payment_method_options: { wechat_pay: { client: 'jsapi' } as unknown as Stripe.PaymentIntentConfirmParams.PaymentMethodOptions.WechatPay },
    }), (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'payment_method_options[wechat_pay][openid]');
    const jsapi = await stripe.paymentIntents.confirm(noOpenid.id, {
      payment_method_data: { type: 'wechat_pay' },
      payment_method_options: { wechat_pay: { client: 'jsapi', openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' } as unknown as Stripe.PaymentIntentConfirmParams.PaymentMethodOptions.WechatPay },
    });
    const parameters = (jsapi.next_action as unknown as { type: string; wechat_pay_jsapi: Record<string, string> });
    assert.equal(parameters.type, 'wechat_pay_jsapi');
    assert.match(parameters.wechat_pay_jsapi.package ?? '', /^prepay_id=/);
    assert.equal(parameters.wechat_pay_jsapi.signType, 'RSA');
    // WeChat's in-app browser checks paySign with the merchant's key: the sandbox does the same, and refuses a changed one.
    const query = new URLSearchParams(parameters.wechat_pay_jsapi);
    const forged = new URLSearchParams(query);
    forged.set('paySign', `${(query.get('paySign') ?? '').slice(0, -4)}AAAA`);
    await assert.rejects(openPage(server, `${server.url}/sandbox/wechat-pay/jsapi?${forged.toString()}`), /answered 4\d\d/);
    const appPage = await openPage(server, `${server.url}/sandbox/wechat-pay/jsapi?${query.toString()}`);
    await pressButton(server, appPage, 'pay');
    await deliver();
    assert.equal((await stripe.paymentIntents.retrieve(jsapi.id)).status, 'succeeded');
  });

  test('WeChat Pay: a callback with a changed ciphertext byte is refused; the query completes the payment', async () => {
    wechatFaults().set({ notifications: { tamper: 'ciphertext' } });
    clock.offsetMs = 0;
    const intent = await startWeChat(1500);
    await wechatShopper(intent, 'pay');
    await pushSyncLater(intent.latest_charge as string);
    await deliver();
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action');
    assert.equal(await syncWalletPayments(services()), 1);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'succeeded');
  });

  test('WeChat Pay: a slow provider leaves the attempt processing; the retry with the same key opens no second trade', async () => {
    clock.offsetMs = 0;
    wechatFaults().set({ answers: { timeout: true } });
    const created = await stripe.paymentIntents.create({ amount: 1800, currency: 'cny', allowed_payment_method_types: ['wechat_pay'] });
    const key = `wechat-retry-${created.id}`;
    await assert.rejects(
      stripe.paymentIntents.confirm(created.id, { payment_method_data: { type: 'wechat_pay' } }, { idempotencyKey: key, maxNetworkRetries: 0 }),
      (error: Stripe.errors.StripeError) => error.statusCode === 503,
    );
    assert.equal((await stripe.paymentIntents.retrieve(created.id)).status, 'processing');
    const retried = await stripe.paymentIntents.confirm(created.id, { payment_method_data: { type: 'wechat_pay' } }, { idempotencyKey: key });
    assert.equal(retried.status, 'requires_action');
    const trades = await services().db.selectFrom('charges').select('id').where('payment_intent_id', '=', created.id).execute();
    assert.equal(trades.length, 1, 'one attempt, one trade');
  });
});
