import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type Stripe from 'stripe';
import { createApiKey } from '../../src/identity/merchants.ts';
import { runJobsOnce } from '../../src/jobs/job-runner.ts';
import { TestClock } from '../support/clock.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: Stripe's balance transactions, read from the ledger. Every capture, refund, dispute withdrawal and
// reinstatement is one transaction the charge, refund or list cites; pending ones become available when their
// charge settles; and at every moment the transactions add up to the balance, per currency and status.

const day = 24 * 3600 * 1000;

describe('balance transactions', { concurrency: false }, () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ clock, providerTimeoutMs: 1_500 });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  /** An SDK client with a restricted key holding these permissions. */
  const keyWith = async (permissions: Record<string, 'read' | 'write'>, livemode = false) =>
    stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', livemode, { permissions })).key.reveal());

  async function allTransactions(client = stripe): Promise<Stripe.BalanceTransaction[]> {
    const all: Stripe.BalanceTransaction[] = [];
    for await (const transaction of client.balanceTransactions.list({ limit: 7 })) all.push(transaction);
    return all;
  }

  /** The balance, and the same figures added up from the transactions: they must be equal. */
  async function assertTransactionsMakeTheBalance(what: string): Promise<void> {
    const balance = await stripe.balance.retrieve();
    const sums = new Map<string, number>();
    for (const transaction of await allTransactions()) {
      const key = `${transaction.status} ${transaction.currency}`;
      sums.set(key, (sums.get(key) ?? 0) + transaction.net);
    }
    const fromBalance = new Map<string, number>();
    for (const [status, entries] of [['available', balance.available], ['pending', balance.pending]] as const) {
      for (const entry of entries) fromBalance.set(`${status} ${entry.currency}`, entry.amount);
    }
    for (const key of new Set([...sums.keys(), ...fromBalance.keys()])) {
      assert.equal(sums.get(key) ?? 0, fromBalance.get(key) ?? 0, `${what}: ${key}`);
    }
  }

  test('a capture, a partial capture and a refund: cited by their charge and refund, listed newest first, adding up to the balance', async () => {
    const paid = await stripe.paymentIntents.create({ amount: 2000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, description: 'Order 1' });
    const held = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, capture_method: 'manual' });
    const heldCharge = await stripe.charges.retrieve(held.latest_charge as string);
    assert.equal(heldCharge.balance_transaction, null, 'an authorization is not yet the merchant\'s money');
    await stripe.paymentIntents.capture(held.id, { amount_to_capture: 3000 });
    const refund = await stripe.refunds.create({ payment_intent: paid.id, amount: 500 });

    const charge = await stripe.charges.retrieve(paid.latest_charge as string, { expand: ['balance_transaction'] });
    const transaction = charge.balance_transaction as Stripe.BalanceTransaction;
    assert.match(transaction.id, /^txn_[0-9a-f]{24}$/);
    assert.deepEqual(
      [transaction.object, transaction.type, transaction.reporting_category, transaction.amount, transaction.fee, transaction.net, transaction.currency, transaction.status, transaction.source, transaction.description],
      ['balance_transaction', 'charge', 'charge', 2000, 0, 2000, 'usd', 'pending', charge.id, 'Order 1'],
    );
    assert.deepEqual(transaction.fee_details, []);
    assert.equal(transaction.balance_type, 'payments');
    assert.ok(transaction.available_on > transaction.created, 'available when the charge settles');
    const retrieved = await stripe.balanceTransactions.retrieve(transaction.id);
    assert.deepEqual(retrieved, transaction);

    const refunded = await stripe.refunds.retrieve(refund.id, { expand: ['balance_transaction'] });
    const refundTransaction = refunded.balance_transaction as Stripe.BalanceTransaction;
    assert.equal(refund.balance_transaction, refundTransaction.id, 'the refund cites its transaction from the start');
    assert.deepEqual([refundTransaction.type, refundTransaction.amount, refundTransaction.net, refundTransaction.source, refundTransaction.status],
      ['refund', -500, -500, refund.id, 'pending']);

    const captured = await stripe.charges.retrieve(heldCharge.id);
    const listed = (await stripe.balanceTransactions.list({ limit: 3 })).data;
    assert.deepEqual(listed.map((item) => item.id), [refundTransaction.id, captured.balance_transaction, transaction.id], 'newest first');
    assert.equal(listed[1]?.amount, 3000, 'a partial capture is a transaction of what was captured');
    await assertTransactionsMakeTheBalance('after paying and refunding');
  });

  test('settlement makes pending transactions available; a refund after it comes out of available funds', async () => {
    const paid = await stripe.paymentIntents.create({ amount: 1200, currency: 'eur', payment_method: 'pm_card_visa', confirm: true });
    clock.offsetMs += 3 * day;
    await runJobsOnce(server.coffer.services);
    const charge = await stripe.charges.retrieve(paid.latest_charge as string, { expand: ['balance_transaction'] });
    const transaction = charge.balance_transaction as Stripe.BalanceTransaction;
    assert.equal(transaction.status, 'available');
    const refund = await stripe.refunds.create({ payment_intent: paid.id, amount: 200 });
    const refundTransaction = await stripe.balanceTransactions.retrieve(refund.balance_transaction as string);
    assert.deepEqual([refundTransaction.status, refundTransaction.amount, refundTransaction.currency], ['available', -200, 'eur']);
    assert.ok((await allTransactions()).every((item) => item.status === 'available'), 'every charge so far has settled');
    await assertTransactionsMakeTheBalance('after settlement');
  });

  test('goodwill credit to a customer is an adjustment out of the available funds, and its source expands', async () => {
    const customer = await stripe.customers.create({ email: 'credit@example.com' });
    const credit = await stripe.customers.createBalanceTransaction(customer.id, { amount: -150, currency: 'usd', description: 'Late parcel' });
    const [transaction] = (await stripe.balanceTransactions.list({ source: credit.id, expand: ['data.source'] })).data;
    assert.deepEqual([transaction?.type, transaction?.reporting_category, transaction?.amount, transaction?.net, transaction?.status],
      ['adjustment', 'other_adjustment', -150, -150, 'available']);
    assert.deepEqual(transaction?.source, await stripe.customers.retrieveBalanceTransaction(customer.id, credit.id));
    await assertTransactionsMakeTheBalance('after a customer credit');
  });

  test('a dispute withdraws the amount with its fee in one transaction; winning it reverses both', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 6000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
    const [dispute] = (await stripe.disputes.list({ payment_intent: intent.id })).data;
    assert.ok(dispute !== undefined);
    const [withdrawal] = (await stripe.balanceTransactions.list({ source: dispute.id })).data;
    assert.deepEqual(
      [withdrawal?.type, withdrawal?.reporting_category, withdrawal?.amount, withdrawal?.fee, withdrawal?.net, withdrawal?.status],
      ['adjustment', 'dispute', -6000, 1500, -7500, 'pending'],
    );
    assert.deepEqual(withdrawal?.fee_details, [{ amount: 1500, application: null, currency: 'usd', description: 'Dispute fee', type: 'stripe_fee' }]);
    await assertTransactionsMakeTheBalance('after the withdrawal');
    // The dispute shows the transactions that moved its funds, wherever it is rendered: its endpoints, the
    // transaction's expanded source, and the events that announced the withdrawal.
    const eventOf = async (type: string) => (await stripe.events.list({ type, limit: 100 })).data
      .map((event) => event.data.object as Stripe.Dispute).find((object) => object.id === dispute.id);
    assert.deepEqual(dispute.balance_transactions, [withdrawal], 'listed');
    assert.deepEqual((await stripe.disputes.retrieve(dispute.id)).balance_transactions, [withdrawal], 'retrieved');
    const [expanded] = (await stripe.balanceTransactions.list({ source: dispute.id, expand: ['data.source'] })).data;
    assert.deepEqual((expanded?.source as Stripe.Dispute).balance_transactions, [withdrawal], 'expanded as a source');
    assert.deepEqual((await eventOf('charge.dispute.funds_withdrawn'))?.balance_transactions, [withdrawal], 'funds_withdrawn');
    assert.deepEqual((await eventOf('charge.dispute.created'))?.balance_transactions, [withdrawal], 'created');
    // Part of the dispute, as Stripe embeds them: a key that may read disputes sees them (decision 0022).
    const disputesOnly = await keyWith({ disputes: 'read' });
    assert.deepEqual((await disputesOnly.disputes.retrieve(dispute.id)).balance_transactions, [withdrawal], 'with disputes:read alone');

    const provider = await server.database.db.selectFrom('disputes').select('provider_reference').where('id', '=', dispute.id).executeTakeFirstOrThrow();
    await server.coffer.services.connectors.sandboxes.card.decideDispute(provider.provider_reference, 'won');
    await runJobsOnce(server.coffer.services);
    const both = (await stripe.balanceTransactions.list({ source: dispute.id })).data;
    assert.deepEqual(both.map((item) => [item.reporting_category, item.amount, item.fee, item.net]),
      [['dispute_reversal', 6000, -1500, 7500], ['dispute', -6000, 1500, -7500]]);
    await assertTransactionsMakeTheBalance('after the reinstatement');
    const oldestFirst = [...both].reverse();
    assert.deepEqual((await stripe.disputes.retrieve(dispute.id)).balance_transactions, oldestFirst, 'the withdrawal, then the reinstatement');
    assert.deepEqual((await eventOf('charge.dispute.funds_reinstated'))?.balance_transactions, oldestFirst, 'funds_reinstated');
    const closed = (await stripe.events.list({ type: 'charge.dispute.closed', limit: 100 })).data.find((event) => (event.data.object as Stripe.Dispute).id === dispute.id);
    assert.deepEqual((closed?.data.object as Stripe.Dispute | undefined)?.balance_transactions, oldestFirst, 'closed');
    assert.deepEqual((closed?.data.previous_attributes as { balance_transactions?: unknown } | undefined)?.balance_transactions, [withdrawal],
      'the closed event names what the transactions were before');
  });

  test('a dispute opened before settlement: the settlement takes its fee from the available funds, and the reinstatement pays into them', async () => {
    const pending = async () => (await stripe.balance.retrieve()).pending.find((item) => item.currency === 'usd')?.amount ?? 0;
    const available = async () => (await stripe.balance.retrieve()).available.find((item) => item.currency === 'usd')?.amount ?? 0;
    clock.offsetMs += 3 * day;
    await runJobsOnce(server.coffer.services); // everything before settles first
    const [pendingBefore, availableBefore] = [await pending(), await available()];
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
    const [dispute] = (await stripe.disputes.list({ payment_intent: intent.id })).data;
    assert.ok(dispute !== undefined);
    assert.equal(await pending(), pendingBefore + 1000 - 1000 - 1500, 'captured, then amount and fee withdrawn from the pending funds');
    await assertTransactionsMakeTheBalance('disputed before settlement');
    clock.offsetMs += 3 * day;
    await runJobsOnce(server.coffer.services);
    assert.deepEqual([await pending(), await available()], [pendingBefore, availableBefore - 1500], 'settled: nothing left pending, the fee owed from the available funds');
    assert.deepEqual((await stripe.disputes.retrieve(dispute.id)).balance_transactions.map((item) => item.status), ['available'], 'the withdrawal settled with its charge');
    await assertTransactionsMakeTheBalance('settled after the dispute');
    const provider = await server.database.db.selectFrom('disputes').select('provider_reference').where('id', '=', dispute.id).executeTakeFirstOrThrow();
    await server.coffer.services.connectors.sandboxes.card.decideDispute(provider.provider_reference, 'won');
    await runJobsOnce(server.coffer.services);
    assert.deepEqual([await pending(), await available()], [pendingBefore, availableBefore + 1000], 'won after settlement: amount and fee paid into the available funds');
    await assertTransactionsMakeTheBalance('won after settlement');
    await assertLedgerConsistent(server.database.db);
  });

  test('a refund, then a dispute for the whole amount, before settlement: the settlement takes back all the dispute took beyond the charge', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    await stripe.refunds.create({ payment_intent: intent.id, amount: 300 }); // before the acquirer's dispute arrives
    // The issuer filed for the whole amount before the refund's credit reached it (the sandbox files for the rest).
    const db = server.database.db;
    const filed = await db.selectFrom('sandbox_card_disputes').innerJoin('sandbox_card_payments', 'sandbox_card_payments.id', 'sandbox_card_disputes.payment_id')
      .select('sandbox_card_disputes.id').where('sandbox_card_payments.merchant_reference', '=', intent.latest_charge as string).executeTakeFirstOrThrow();
    await db.updateTable('sandbox_card_disputes').set({ amount: 1000n }).where('id', '=', filed.id).execute();
    for (const notification of await db.selectFrom('sandbox_card_notifications').select(['id', 'payload']).where('delivered_at', 'is', null).execute()) {
      const body = JSON.parse(notification.payload) as { dispute?: { id: string; amount: number } };
      if (body.dispute?.id !== filed.id) continue;
      body.dispute.amount = 1000;
      await db.updateTable('sandbox_card_notifications').set({ payload: JSON.stringify(body) }).where('id', '=', notification.id).execute();
    }
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
    assert.equal((await stripe.disputes.list({ payment_intent: intent.id })).data[0]?.amount, 1000, 'disputed in full');
    clock.offsetMs += 3 * day;
    await runJobsOnce(server.coffer.services);
    const settlement = await server.database.db.selectFrom('ledger_transfers').select(['amount']).where('transfer_key', '=', `${intent.latest_charge as string}:settlement`).executeTakeFirstOrThrow();
    assert.equal(settlement.amount, 1800n, '1000 - 300 - 1000 - 1500 left pending, taken from the available funds');
    await assertTransactionsMakeTheBalance('refunded, disputed, settled');
    await assertLedgerConsistent(server.database.db);
  });

  test('a refund made before settlement and failed after it pays back into the available funds', async () => {
    const funds = async (currency: string) => {
      const balance = await stripe.balance.retrieve();
      return [balance.pending, balance.available].map((entries) => entries.find((item) => item.currency === currency)?.amount ?? 0);
    };
    const intent = await stripe.paymentIntents.create({ amount: 3000, currency: 'gbp', payment_method: 'pm_card_refundFail', confirm: true });
    const charge = await stripe.charges.retrieve(intent.latest_charge as string, { expand: ['balance_transaction'] });
    const availableOn = (charge.balance_transaction as Stripe.BalanceTransaction).available_on * 1000;
    // Two seconds before the charge settles, a refund the acquirer fails five seconds later (refundFailureAfterMs).
    // `available_on` is in whole seconds: the charge settles within the second after it.
    clock.offsetMs += availableOn - clock.nowMs() - 2_000;
    const refund = await stripe.refunds.create({ payment_intent: intent.id, amount: 1000 });
    assert.deepEqual(await funds('gbp'), [2000, 0]);
    clock.offsetMs += 2_950;
    const settled = await runJobsOnce(server.coffer.services);
    assert.equal(settled['deliver-sandbox-notifications'], 0, 'the failure is not due yet');
    assert.deepEqual(await funds('gbp'), [0, 2000], 'settled with the refund taken');
    clock.offsetMs += 10_000;
    await runJobsOnce(server.coffer.services);
    assert.equal((await stripe.refunds.retrieve(refund.id)).status, 'failed');
    assert.deepEqual(await funds('gbp'), [0, 3000], 'the failed refund pays back into the available funds');
    const failure = await stripe.balanceTransactions.retrieve((await stripe.refunds.retrieve(refund.id)).failure_balance_transaction as string);
    assert.deepEqual([failure.type, failure.amount, failure.status], ['refund_failure', 1000, 'available']);
    assert.ok(failure.available_on >= failure.created, 'available from when it was made');
    await assertTransactionsMakeTheBalance('refund failed after settlement');
  });

  test('a PaymentIntent read expands latest_charge.balance_transaction (the fee lookup of Stripe integrations); a change refuses it and changes nothing', async () => {
    const paid = await stripe.paymentIntents.create({ amount: 1234, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const transaction = await stripe.balanceTransactions.retrieve((await stripe.charges.retrieve(paid.latest_charge as string)).balance_transaction as string);
    const retrieved = await stripe.paymentIntents.retrieve(paid.id, { expand: ['latest_charge.balance_transaction'] });
    const charge = retrieved.latest_charge as Stripe.Charge;
    assert.equal(charge.id, paid.latest_charge, 'the charge is expanded on the way');
    assert.deepEqual(charge.balance_transaction, transaction);
    const listed = await stripe.paymentIntents.list({ limit: 3, expand: ['data.latest_charge.balance_transaction', 'data.payment_method'] });
    const first = listed.data.find((intent) => intent.id === paid.id);
    assert.deepEqual((first?.latest_charge as Stripe.Charge | undefined)?.balance_transaction, transaction);
    assert.equal((first?.payment_method as Stripe.PaymentMethod | undefined)?.object, 'payment_method', 'alongside the other expansions');
    const pending = await stripe.paymentIntents.create({ amount: 500, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'automatic' });
    assert.equal((await stripe.paymentIntents.retrieve(pending.id, { expand: ['latest_charge.balance_transaction'] })).latest_charge, null, 'nothing to expand yet');

    // A change expands it too (capturing synchronously; asynchronous capture announces it later, see
    // payment-intents.test.ts): the confirmation writes the ledger first, then renders its answer, kept for a replay.
    const confirmed = await rawRequest(server, 'POST', `/v1/payment_intents/${pending.id}/confirm`,
      { key: server.secretKey, body: 'expand[]=latest_charge.balance_transaction', headers: { 'idempotency-key': `confirm-expand-${pending.id}` } });
    assert.equal(confirmed.status, 200, confirmed.body);
    const fee = ((confirmed.json.latest_charge as Record<string, unknown>).balance_transaction as Record<string, unknown>);
    assert.deepEqual([fee.object, fee.amount, fee.source], ['balance_transaction', 500, (confirmed.json.latest_charge as Record<string, unknown>).id]);
    const shown = await rawRequest(server, 'GET', `/v1/balance_transactions/${String(fee.id)}`, { key: server.secretKey });
    assert.deepEqual(fee, shown.json, 'what the ledger wrote, as its own endpoint shows it');
    const replayed = await rawRequest(server, 'POST', `/v1/payment_intents/${pending.id}/confirm`,
      { key: server.secretKey, body: 'expand[]=latest_charge.balance_transaction', headers: { 'idempotency-key': `confirm-expand-${pending.id}` } });
    assert.deepEqual([replayed.headers['idempotent-replayed'], replayed.body], ['true', confirmed.body], 'replayed byte for byte');
    const held = await stripe.paymentIntents.create({ amount: 800, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
    const captured = await stripe.paymentIntents.capture(held.id, { amount_to_capture: 600, expand: ['latest_charge.balance_transaction', 'customer'] });
    assert.equal(((captured.latest_charge as Stripe.Charge).balance_transaction as Stripe.BalanceTransaction).amount, 600, 'the capture\'s own transaction');
    const refund = await stripe.refunds.create({ payment_intent: held.id, amount: 200, expand: ['balance_transaction'] });
    assert.deepEqual([(refund.balance_transaction as Stripe.BalanceTransaction).amount, (refund.balance_transaction as Stripe.BalanceTransaction).type], [-200, 'refund']);
    const before = await stateCounts(server.database.db);
    await assert.rejects(stripe.paymentIntents.confirm(pending.id, { expand: ['latest_charge.outcome'] }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'expand' && /cannot be expanded \(latest_charge\.outcome\)/.test(error.message));
    assert.deepEqual(await stateCounts(server.database.db), before, 'refused before anything ran: not even the idempotency key is kept');
    await assert.rejects(stripe.paymentIntents.retrieve(paid.id, { expand: ['latest_charge.outcome'] }), (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'expand');

    const withoutBalance = await keyWith({ payment_intents: 'read', charges: 'read' });
    await assert.rejects(withoutBalance.paymentIntents.retrieve(paid.id, { expand: ['latest_charge.balance_transaction'] }),
      (error: Stripe.errors.StripeError) => error.statusCode === 403 && /on balance, which expanding latest_charge.balance_transaction needs/.test(error.message));
    const withoutCharges = await keyWith({ payment_intents: 'read', balance: 'read' });
    await assert.rejects(withoutCharges.paymentIntents.list({ expand: ['data.latest_charge.balance_transaction'] }),
      (error: Stripe.errors.StripeError) => error.statusCode === 403 && /on charges/.test(error.message));
    const withBoth = await keyWith({ payment_intents: 'read', charges: 'read', balance: 'read' });
    assert.deepEqual(((await withBoth.paymentIntents.retrieve(paid.id, { expand: ['latest_charge.balance_transaction'] })).latest_charge as Stripe.Charge).balance_transaction, transaction);
  });

  test('filters and pages: type, source, currency, created, starting_after and ending_before', async () => {
    const all = await allTransactions();
    assert.ok(all.length >= 8, `${all.length} transactions`);
    const charges = (await stripe.balanceTransactions.list({ type: 'charge', limit: 100 })).data;
    assert.deepEqual(charges.map((item) => item.id), all.filter((item) => item.type === 'charge').map((item) => item.id));
    assert.deepEqual((await stripe.balanceTransactions.list({ type: 'payout' })).data, [], 'a type Coffer never records lists nothing');
    assert.deepEqual((await stripe.balanceTransactions.list({ currency: 'eur', limit: 100 })).data.map((item) => item.id),
      all.filter((item) => item.currency === 'eur').map((item) => item.id));
    const oldest = all.at(-1) as Stripe.BalanceTransaction;
    assert.deepEqual((await stripe.balanceTransactions.list({ source: oldest.source as string })).data.map((item) => item.id), [oldest.id]);
    const page = await stripe.balanceTransactions.list({ limit: 2, starting_after: all[1]?.id });
    assert.deepEqual(page.data.map((item) => item.id), all.slice(2, 4).map((item) => item.id));
    assert.equal(page.has_more, true);
    const back = await stripe.balanceTransactions.list({ limit: 2, ending_before: all[4]?.id });
    assert.deepEqual(back.data.map((item) => item.id), all.slice(2, 4).map((item) => item.id));
    const created = await stripe.balanceTransactions.list({ created: { lt: oldest.created }, limit: 100 });
    assert.deepEqual(created.data, [], 'nothing before the first transaction');
    const since = await stripe.balanceTransactions.list({ created: { gte: oldest.created }, limit: 100 });
    assert.deepEqual(since.data.map((item) => item.id), all.filter((item) => item.created >= oldest.created).map((item) => item.id));
    assert.ok(since.data.some((item) => item.id === oldest.id));
    // Expanding the sources: each transaction's charge, refund or dispute, as its own endpoint renders it.
    const expanded = await stripe.balanceTransactions.list({ limit: 100, expand: ['data.source'] });
    assert.deepEqual(expanded.data.map((item) => (item.source as { id: string }).id), all.map((item) => item.source));
    const objectOf = (prefix: string) => ({ ch_: 'charge', re_: 'refund', dp_: 'dispute', cbtxn_: 'customer_balance_transaction' } as Record<string, string>)[prefix];
    assert.deepEqual(expanded.data.map((item) => (item.source as { object: string }).object),
      all.map((item) => objectOf(/^[a-z]+_/.exec(item.source as string)?.[0] ?? '')));
    assert.ok(expanded.data.some((item) => (item.source as { object: string }).object === 'dispute'), 'a dispute among them');
    const one = await stripe.balanceTransactions.retrieve(oldest.id, { expand: ['source'] });
    assert.deepEqual(one.source, await stripe.charges.retrieve(oldest.source as string));
    const charged = await stripe.charges.list({ limit: 2, expand: ['data.balance_transaction'] });
    assert.ok(charged.data.every((charge) => typeof charge.balance_transaction === 'object' && charge.balance_transaction?.object === 'balance_transaction'));
  });

  test('bad requests name the problem, and another merchant\'s transactions do not exist for this one', async () => {
    const [first] = (await stripe.balanceTransactions.list({ limit: 1 })).data;
    assert.ok(first !== undefined);
    const before = await stateCounts(server.database.db);
    const other = stripeClient(server, server.otherSecretKey);
    await assert.rejects(other.balanceTransactions.retrieve(first.id), (error: Stripe.errors.StripeError) => error.statusCode === 404 && /No such balance transaction/.test(error.message));
    assert.deepEqual((await other.balanceTransactions.list()).data, []);
    await assert.rejects(other.balanceTransactions.list({ starting_after: first.id }), (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.param === 'starting_after');
    for (const [path, param, status] of [
      ['/v1/balance_transactions/txn_0123456789abcdef01234567', 'id', 404],
      ['/v1/balance_transactions/ch_notatransaction', 'id', 404],
      ['/v1/balance_transactions?starting_after=txn_nope', 'starting_after', 404],
      [`/v1/balance_transactions?starting_after=${first.id}&ending_before=${first.id}`, 'ending_before', 400],
      ['/v1/balance_transactions?type=Charge!', 'type', 400],
      ['/v1/balance_transactions?type=bogus', 'type', 400],
      ['/v1/balance_transactions?currency=dollars', 'currency', 400],
      ['/v1/balance_transactions?currency=xyz', 'currency', 400],
      ['/v1/balance_transactions?payout=po_123', 'payout', 400],
      ['/v1/balance_transactions?limit=101', 'limit', 400],
      ['/v1/balance_transactions?expand[]=data.customer', 'expand', 400],
      [`/v1/charges?expand[]=data.not_a_field`, 'expand', 400],
    ] as const) {
      const response = await rawRequest(server, 'GET', path, { key: server.secretKey });
      assert.equal(response.status, status, `${path}: ${response.body}`);
      assert.equal((response.json.error as { param?: string }).param, param, path);
    }
    assert.deepEqual(await stateCounts(server.database.db), before, 'reading changed nothing');
  });

  test('a restricted key reads or expands transactions only with the balance permission; a live key sees none of test mode\'s', async () => {
    const [first] = (await stripe.balanceTransactions.list({ type: 'charge', limit: 1 })).data;
    assert.ok(first !== undefined && typeof first.source === 'string');
    const chargesOnly = await keyWith({ charges: 'read', payment_intents: 'read' });
    const refused = (error: Stripe.errors.StripeError) => error.statusCode === 403 && error.code === 'insufficient_permissions';
    await assert.rejects(chargesOnly.balanceTransactions.list(), refused);
    await assert.rejects(chargesOnly.charges.retrieve(first.source as string, { expand: ['balance_transaction'] }),
      (error: Stripe.errors.StripeError) => refused(error) && error.param === 'expand');
    await assert.rejects(chargesOnly.charges.list({ expand: ['data.balance_transaction'] }), refused);
    assert.equal((await chargesOnly.charges.retrieve(first.source as string)).balance_transaction, first.id, 'the id alone is the charge\'s own field');
    const charge = await chargesOnly.charges.retrieve(first.source as string);
    const intentsOnly = await keyWith({ payment_intents: 'read' });
    await assert.rejects(intentsOnly.paymentIntents.retrieve(charge.payment_intent as string, { expand: ['latest_charge'] }), refused);
    const balanceOnly = await keyWith({ balance: 'read' });
    assert.equal((await balanceOnly.balanceTransactions.retrieve(first.id)).id, first.id);
    await assert.rejects(balanceOnly.balanceTransactions.retrieve(first.id, { expand: ['source'] }),
      (error: Stripe.errors.StripeError) => refused(error) && /on charges, which expanding source needs/.test(error.message));
    const both = await keyWith({ charges: 'read', balance: 'read' });
    assert.equal(((await both.balanceTransactions.retrieve(first.id, { expand: ['source'] })).source as Stripe.Charge).object, 'charge');
    const expanded = await both.charges.retrieve(first.source as string, { expand: ['balance_transaction'] });
    assert.equal((expanded.balance_transaction as Stripe.BalanceTransaction).id, first.id);
    const live = await keyWith({ balance: 'read' }, true);
    assert.deepEqual((await live.balanceTransactions.list()).data, []);
    await assert.rejects(live.balanceTransactions.retrieve(first.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    await assert.rejects(live.balanceTransactions.list({ type: 'payout', starting_after: first.id }), (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.param === 'starting_after');
  });

  // Goal: whatever happens to a merchant's payments, in any order, the transactions add up to its balance.
  test('property: after any sequence of payments, captures, cancellations, refunds (some failing later), disputes won and settlements, the transactions make the balance', async () => {
    type Step = { kind: 'pay'; amount: number; manual: boolean } | { kind: 'capture'; part: number } | { kind: 'cancel' } | { kind: 'refund'; part: number }
      | { kind: 'settle' } | { kind: 'dispute'; amount: number } | { kind: 'win' } | { kind: 'failingRefund'; amount: number };
    const step = fc.oneof(
      fc.record({ kind: fc.constant('pay' as const), amount: fc.integer({ min: 100, max: 9_000 }), manual: fc.boolean() }),
      fc.record({ kind: fc.constant('dispute' as const), amount: fc.integer({ min: 100, max: 9_000 }) }),
      fc.record({ kind: fc.constant('win' as const) }),
      fc.record({ kind: fc.constant('failingRefund' as const), amount: fc.integer({ min: 100, max: 9_000 }) }),
      fc.record({ kind: fc.constant('capture' as const), part: fc.integer({ min: 1, max: 100 }) }),
      fc.record({ kind: fc.constant('cancel' as const) }),
      fc.record({ kind: fc.constant('refund' as const), part: fc.integer({ min: 1, max: 100 }) }),
      fc.record({ kind: fc.constant('settle' as const) }),
    );
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 6 }), async (steps: Step[]) => {
      let held: Stripe.PaymentIntent | undefined;
      let captured: Stripe.PaymentIntent | undefined;
      let disputed: string | undefined;
      for (const current of steps) {
        if (current.kind === 'pay') {
          const intent = await stripe.paymentIntents.create({ amount: current.amount, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, capture_method: current.manual ? 'manual' : 'automatic' });
          if (current.manual) held = intent;
          else captured = intent;
        } else if (current.kind === 'capture' && held !== undefined) {
          // At least the currency's minimum (0.50 usd), which a capture must reach as a charge does.
          captured = await stripe.paymentIntents.capture(held.id, { amount_to_capture: Math.max(50, Math.floor((held.amount * current.part) / 100)) });
          held = undefined;
        } else if (current.kind === 'cancel' && held !== undefined) {
          await stripe.paymentIntents.cancel(held.id);
          held = undefined;
        } else if (current.kind === 'refund' && captured !== undefined) {
          const charge = await stripe.charges.retrieve(captured.latest_charge as string);
          const amount = Math.floor((charge.amount_captured * current.part) / 100);
          // More than is left to refund is refused (and changes nothing): the sequence goes on.
          if (amount > 0) {
            await stripe.refunds.create({ charge: charge.id, amount }).catch((error: Stripe.errors.StripeError) => {
              if (error.code !== 'amount_too_large' && error.code !== 'charge_already_refunded') throw error;
            });
          }
        } else if (current.kind === 'dispute') {
          // The acquirer opens a chargeback for the whole amount a moment after the payment.
          const intent = await stripe.paymentIntents.create({ amount: current.amount, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
          clock.offsetMs += 5_000;
          await runJobsOnce(server.coffer.services);
          disputed = (await stripe.disputes.list({ payment_intent: intent.id })).data[0]?.id;
          assert.ok(disputed !== undefined);
        } else if (current.kind === 'win' && disputed !== undefined) {
          const provider = await server.database.db.selectFrom('disputes').select('provider_reference').where('id', '=', disputed).executeTakeFirstOrThrow();
          await server.coffer.services.connectors.sandboxes.card.decideDispute(provider.provider_reference, 'won');
          await runJobsOnce(server.coffer.services);
          disputed = undefined;
        } else if (current.kind === 'failingRefund') {
          // Refunded at once; the acquirer fails the refund later, whenever the jobs next run (before or after the
          // charge settles).
          const intent = await stripe.paymentIntents.create({ amount: current.amount, currency: 'usd', payment_method: 'pm_card_refundFail', confirm: true });
          await stripe.refunds.create({ payment_intent: intent.id });
        } else if (current.kind === 'settle') {
          clock.offsetMs += 3 * day;
          await runJobsOnce(server.coffer.services);
        }
        await assertTransactionsMakeTheBalance(JSON.stringify(current));
      }
    }), { numRuns: 8 });
    await assertLedgerConsistent(server.database.db);
  });
});
