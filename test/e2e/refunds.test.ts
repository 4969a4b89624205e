import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { runJobsOnce } from '../../src/jobs/job-runner.ts';
import { signatureHeader } from '../../src/platform/timestamped-signature.ts';
import { handleCardNotification } from '../../src/flows/handle-card-notification.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';
import { TestClock } from '../support/clock.ts';

/** A clock the test moves forward, for notifications and settlement that are due later. */
// Goal: refunds give money back through the acquirer, in full or in parts, never more than was captured
// whatever the concurrency, with the ledger and the balance following each one, including a refund that
// fails after it succeeded.
describe('refunds', () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();

  before(async () => {
    // The acquirer's deadline is short for the slow-acquirer test below, but not so short that a busy machine misses it.
    server = await startTestServer({ clock, providerTimeoutMs: 2000 });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const pay = (amount: number, paymentMethod = 'pm_card_visa', options: Partial<Stripe.PaymentIntentCreateParams> = {}) =>
    stripe.paymentIntents.create({ amount, currency: 'usd', payment_method: paymentMethod, confirm: true, ...options });

  test('a full refund by PaymentIntent', async () => {
    const intent = await pay(5000);
    const refund = await stripe.refunds.create({ payment_intent: intent.id, reason: 'requested_by_customer', metadata: { ticket: '7' } });
    assert.equal(refund.object, 'refund');
    assert.match(refund.id, /^re_/);
    assert.equal(refund.status, 'succeeded');
    assert.equal(refund.amount, 5000);
    assert.equal(refund.charge, intent.latest_charge);
    assert.equal(refund.payment_intent, intent.id);
    assert.equal(refund.reason, 'requested_by_customer');
    assert.deepEqual(refund.metadata, { ticket: '7' });
    assert.deepEqual([refund.customer, refund.customer_account, refund.payment_method], [null, null, intent.payment_method], 'a guest payment has no customer');
    const charge = await stripe.charges.retrieve(intent.latest_charge as string);
    assert.equal(charge.amount_refunded, 5000);
    // A customer's payment: the refund names the customer and the card, in its answer, its reads and its events.
    const customer = await stripe.customers.create({ email: 'refunded@example.com' });
    const theirs = await pay(1200, 'pm_card_visa', { customer: customer.id });
    const refunded = await stripe.refunds.create({ payment_intent: theirs.id });
    assert.deepEqual([refunded.customer, refunded.payment_method], [customer.id, theirs.payment_method]);
    assert.equal((await stripe.refunds.retrieve(refunded.id)).customer, customer.id);
    const created = (await stripe.events.list({ type: 'refund.created' })).data.find((event) => (event.data.object as Stripe.Refund).id === refunded.id);
    assert.equal((created?.data.object as Stripe.Refund | undefined)?.customer, customer.id);
    assert.equal(charge.refunded, true);
    const transfers = await server.database.db.selectFrom('ledger_transfers').select(['reason', 'amount'])
      .where('payment_intent_id', '=', intent.id).orderBy('id').execute();
    assert.deepEqual(transfers, [{ reason: 'capture', amount: 5000n }, { reason: 'refund', amount: 5000n }]);
  });

  test('partial refunds until nothing is left, then charge_already_refunded', async () => {
    const intent = await pay(10_000);
    for (const amount of [2500, 2500, 5000]) {
      const refund = await stripe.refunds.create({ payment_intent: intent.id, amount });
      assert.equal(refund.status, 'succeeded');
    }
    const charge = await stripe.charges.retrieve(intent.latest_charge as string);
    assert.equal(charge.amount_refunded, 10_000);
    const before = await stateCounts(server.database.db);
    await assert.rejects(stripe.refunds.create({ payment_intent: intent.id, amount: 1 }), (error: Stripe.errors.StripeError) => {
      assert.equal(error.code, 'charge_already_refunded');
      assert.equal(error.statusCode, 400);
      return true;
    });
    const afterCounts = await stateCounts(server.database.db);
    assert.equal(afterCounts.ledger_transfers, before.ledger_transfers);
    const list = await stripe.refunds.list({ payment_intent: intent.id });
    assert.deepEqual(list.data.map((refund) => refund.amount), [5000, 2500, 2500]);
  });

  test('more than is left is refused, naming the amounts, and changes nothing', async () => {
    const intent = await pay(3000);
    await stripe.refunds.create({ payment_intent: intent.id, amount: 1000 });
    // The SDK's Idempotency-Key keeps the error for its retries (as at Stripe); nothing else may change.
    const { idempotency_keys: _keysBefore, ...before } = await stateCounts(server.database.db);
    await assert.rejects(stripe.refunds.create({ payment_intent: intent.id, amount: 2001 }), (error: Stripe.errors.StripeError) => {
      assert.equal(error.code, 'amount_too_large');
      assert.equal(error.param, 'amount');
      assert.match(error.message, /Refund amount \(2001\) is greater than unrefunded amount on charge \(2000\)/);
      return true;
    });
    const { idempotency_keys: _keysAfter, ...afterCounts } = await stateCounts(server.database.db);
    assert.deepEqual(afterCounts, before);
    const refunds = await server.database.db.selectFrom('refunds').select('id').where('payment_intent_id', '=', intent.id).execute();
    assert.equal(refunds.length, 1);
  });

  test('an authorization is not refunded but canceled; a partial capture refunds only what was captured', async () => {
    const held = await pay(4000, 'pm_card_visa', { capture_method: 'manual' });
    await assert.rejects(stripe.refunds.create({ payment_intent: held.id }), (error: Stripe.errors.StripeError) => error.code === 'charge_not_refundable');
    await stripe.paymentIntents.capture(held.id, { amount_to_capture: 3000 });
    const refund = await stripe.refunds.create({ payment_intent: held.id });
    assert.equal(refund.amount, 3000);
    const charge = await stripe.charges.retrieve(held.latest_charge as string);
    assert.equal(charge.amount_refunded, 4000, 'the 1000 released at capture plus the 3000 refunded');
    assert.equal(charge.refunded, true);
    const unpaid = await stripe.paymentIntents.create({ amount: 500, currency: 'usd' });
    await assert.rejects(stripe.refunds.create({ payment_intent: unpaid.id }), (error: Stripe.errors.StripeError) => error.code === 'charge_not_refundable');
    // Canceled before capture: the charge shows the authorization as refunded, and a refund says so.
    const canceled = await pay(1500, 'pm_card_visa', { capture_method: 'manual' });
    await stripe.paymentIntents.cancel(canceled.id);
    assert.equal((await stripe.charges.retrieve(canceled.latest_charge as string)).refunded, true);
    await assert.rejects(stripe.refunds.create({ charge: canceled.latest_charge as string }), (error: Stripe.errors.StripeError) => error.code === 'charge_already_refunded');
    await assert.rejects(stripe.refunds.create({ payment_intent: canceled.id }), (error: Stripe.errors.StripeError) => error.code === 'charge_already_refunded',
      'the same answer by its PaymentIntent');
    await stripe.paymentIntents.cancel(unpaid.id);
    await assert.rejects(stripe.refunds.create({ payment_intent: unpaid.id }),
      (error: Stripe.errors.StripeError) => error.code === 'charge_not_refundable' && error.param === 'payment_intent', 'canceled before any charge: nothing to refund');
    assert.equal((await stripe.refunds.list({ payment_intent: canceled.id })).data.length, 0, 'no refund was made');
  });

  test('50 concurrent refunds of 3,000 on a captured 10,000: exactly 3 succeed', async () => {
    const intent = await pay(10_000);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        rawRequest(server, 'POST', '/v1/refunds', { key: server.secretKey, body: `payment_intent=${intent.id}&amount=3000`, headers: { 'idempotency-key': `race-${i}` } }),
      ),
    );
    const succeeded = results.filter((response) => response.status === 200);
    assert.equal(succeeded.length, 3, JSON.stringify(results.map((r) => r.status)));
    for (const response of results.filter((r) => r.status !== 200)) {
      assert.equal((response.json.error as Record<string, unknown>).code, 'amount_too_large');
    }
    const charge = await stripe.charges.retrieve(intent.latest_charge as string);
    assert.equal(charge.amount_refunded, 9000);
    const refunds = await server.database.db.selectFrom('refunds').select('status').where('payment_intent_id', '=', intent.id).execute();
    assert.equal(refunds.length, 3);
    await assertLedgerConsistent(server.database.db);
  });

  test('20 concurrent full refunds (no amount) of one charge: one succeeds, the others are charge_already_refunded', async () => {
    const intent = await pay(10_000);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        rawRequest(server, 'POST', '/v1/refunds', { key: server.secretKey, body: `payment_intent=${intent.id}`, headers: { 'idempotency-key': `full-race-${i}` } }),
      ),
    );
    assert.equal(results.filter((response) => response.status === 200).length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const response of results.filter((r) => r.status !== 200)) {
      const error = response.json.error as Record<string, unknown>;
      // Not an error about an amount nobody sent, whether the winner was still in progress or done.
      assert.deepEqual([response.status, error.code, error.param], [400, 'charge_already_refunded', undefined], response.body);
    }
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).amount_refunded, 10_000);
    await assertLedgerConsistent(server.database.db);
  });

  test('a refund that fails after succeeding (test card 4000000000005126) gives the money back', async () => {
    const intent = await pay(2000, 'pm_card_refundFail');
    const balanceBefore = await stripe.balance.retrieve();
    const refund = await stripe.refunds.create({ payment_intent: intent.id });
    assert.equal(refund.status, 'succeeded');
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).amount_refunded, 2000);
    clock.offsetMs += 10_000;
    const handled = await runJobsOnce(server.coffer.services);
    assert.equal(handled['deliver-sandbox-notifications'], 1);
    const failed = await stripe.refunds.retrieve(refund.id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.failure_reason, 'expired_or_canceled_card');
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).amount_refunded, 0);
    const balanceAfter = await stripe.balance.retrieve();
    const pendingUsd = (balance: Stripe.Balance) => balance.pending.find((item) => item.currency === 'usd')?.amount;
    assert.equal(pendingUsd(balanceAfter), pendingUsd(balanceBefore), 'the merchant has the money back');
    // Two balance transactions: the refund, and its failure that gives the amount back.
    assert.ok(typeof failed.balance_transaction === 'string' && typeof failed.failure_balance_transaction === 'string');
    const [refunded, returned] = await Promise.all([failed.balance_transaction, failed.failure_balance_transaction]
      .map((id) => stripe.balanceTransactions.retrieve(id as string)));
    assert.deepEqual([refunded?.type, refunded?.net, returned?.type, returned?.net, returned?.source], ['refund', -2000, 'refund_failure', 2000, refund.id]);
    const events = await stripe.events.list({ type: 'refund.failed' });
    assert.ok(events.data.some((event) => (event.data.object as Stripe.Refund).id === refund.id));
    const again = await runJobsOnce(server.coffer.services);
    assert.equal(again['deliver-sandbox-notifications'], 0, 'a delivered notification is not sent twice');
    await assertLedgerConsistent(server.database.db);
  });

  test('a notification that is forged, stale or replayed changes nothing', async () => {
    const intent = await pay(1500);
    const refund = await stripe.refunds.create({ payment_intent: intent.id });
    const body = JSON.stringify({ id: 'sbn_forged', type: 'refund.failed', created: 0,
      refund: { id: 'sbr_x', payment: 'sbx_x', reference: refund.id, amount: 1500, currency: 'usd', status: 'failed', failure_reason: 'declined' } });
    const before = await stateCounts(server.database.db);
    const services = server.coffer.services;
    await assert.rejects(handleCardNotification(services, false, body, signatureHeader(['not-the-secret'], body, Math.floor(clock.nowMs() / 1000))), /refused: no matching signature/);
    await assert.rejects(handleCardNotification(services, false, body, undefined), /refused: no signature/);
    assert.deepEqual(await stateCounts(server.database.db), before);
    assert.equal((await stripe.refunds.retrieve(refund.id)).status, 'succeeded');
  });

  test('retrieve, list, update metadata; a card refund cannot be canceled', async () => {
    const intent = await pay(1200);
    const refund = await stripe.refunds.create({ payment_intent: intent.id, amount: 200 });
    const updated = await stripe.refunds.update(refund.id, { metadata: { note: 'goodwill' } });
    assert.deepEqual(updated.metadata, { note: 'goodwill' });
    assert.deepEqual(await stripe.refunds.retrieve(refund.id), updated);
    await assert.rejects(stripe.refunds.cancel(refund.id), (error: Stripe.errors.StripeError) => error.code === 'refund_unexpected_state');
    await assert.rejects(stripe.refunds.retrieve('re_unknown00000000000000000'), (error: Stripe.errors.StripeError) => error.statusCode === 404);
  });

  test('a refund after settlement comes out of the available balance', async () => {
    const intent = await pay(8000);
    clock.offsetMs += 3 * 24 * 60 * 60 * 1000;
    await runJobsOnce(server.coffer.services);
    const settled = await server.database.db.selectFrom('charges').select('settled').where('id', '=', intent.latest_charge as string).executeTakeFirstOrThrow();
    assert.equal(settled.settled, true);
    const refund = await stripe.refunds.create({ payment_intent: intent.id, amount: 3000 });
    const row = await server.database.db.selectFrom('refunds').select('debited_account').where('id', '=', refund.id).executeTakeFirstOrThrow();
    assert.equal(row.debited_account, 'merchant_available');
    await assertLedgerConsistent(server.database.db);
  });

  test('a slow acquirer: 503, then the retry finishes the same refund without refunding twice', async () => {
    const intent = await pay(2600);
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(4000);
    const first = await rawRequest(server, 'POST', '/v1/refunds', { key: server.secretKey, body: `payment_intent=${intent.id}&amount=600`, headers: { 'idempotency-key': 'slow-refund' } });
    assert.equal(first.status, 503);
    const retry = await rawRequest(server, 'POST', '/v1/refunds', { key: server.secretKey, body: `payment_intent=${intent.id}&amount=600`, headers: { 'idempotency-key': 'slow-refund' } });
    assert.equal(retry.status, 200, retry.body);
    assert.equal(retry.json.status, 'succeeded');
    const atAcquirer = await server.database.db.selectFrom('sandbox_card_refunds').select('id').where('reference', '=', String(retry.json.id)).execute();
    assert.equal(atAcquirer.length, 1);
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).amount_refunded, 600);
  });

  // Goal: a charge's refunds are served at the address its `refunds` list names (/v1/charges/:charge/refunds), as
  // Stripe serves it: listed, read and made for that charge only, with another charge's or merchant's a 404.
  test('a charge\'s refunds at /v1/charges/:charge/refunds: list, retrieve, create', async () => {
    const intent = await pay(3000);
    const chargeId = intent.latest_charge as string;
    const first = await stripe.refunds.create({ charge: chargeId, amount: 500 });
    const made = await rawRequest(server, 'POST', `/v1/charges/${chargeId}/refunds`, { key: server.secretKey, body: 'amount=700&metadata[ticket]=9', headers: { 'idempotency-key': `charge-refund-${chargeId}` } });
    assert.equal(made.status, 200, made.body);
    assert.deepEqual([made.json.object, made.json.amount, made.json.charge, made.json.metadata], ['refund', 700, chargeId, { ticket: '9' }]);
    const listed = await rawRequest(server, 'GET', `/v1/charges/${chargeId}/refunds?limit=1`, { key: server.secretKey });
    assert.equal(listed.status, 200, listed.body);
    assert.deepEqual([(listed.json.data as Array<{ id: string }>).map((refund) => refund.id), listed.json.has_more, listed.json.url], [[made.json.id], true, `/v1/charges/${chargeId}/refunds`]);
    const rest = await rawRequest(server, 'GET', `/v1/charges/${chargeId}/refunds?starting_after=${String(made.json.id)}`, { key: server.secretKey });
    assert.deepEqual((rest.json.data as Array<{ id: string }>).map((refund) => refund.id), [first.id]);
    const one = await rawRequest(server, 'GET', `/v1/charges/${chargeId}/refunds/${first.id}?expand[]=charge`, { key: server.secretKey });
    assert.deepEqual([one.status, one.json.id, (one.json.charge as { amount_refunded: number }).amount_refunded], [200, first.id, 1200]);

    // Another charge's refund is not at this address; an unknown or another merchant's charge is a 404 naming it.
    const other = await pay(1000);
    const notHere = await rawRequest(server, 'GET', `/v1/charges/${other.latest_charge as string}/refunds/${first.id}`, { key: server.secretKey });
    assert.deepEqual([notHere.status, (notHere.json.error as { param?: string }).param], [404, 'refund']);
    const before = await stateCounts(server.database.db);
    const theirs = await rawRequest(server, 'POST', `/v1/charges/${chargeId}/refunds`, { key: server.otherSecretKey, body: 'amount=100' });
    assert.deepEqual([theirs.status, (theirs.json.error as { code?: string }).code], [404, 'resource_missing']);
    assert.equal((await rawRequest(server, 'GET', `/v1/charges/${chargeId}/refunds`, { key: server.otherSecretKey })).status, 404);
    const tooMuch = await rawRequest(server, 'POST', `/v1/charges/${chargeId}/refunds`, { key: server.secretKey, body: 'amount=5000' });
    assert.equal(tooMuch.status, 400, tooMuch.body);
    const named = await rawRequest(server, 'POST', `/v1/charges/${chargeId}/refunds`, { key: server.secretKey, body: 'charge=ch_other&amount=1' });
    assert.deepEqual([named.status, (named.json.error as { param?: string }).param], [400, 'charge'], 'the charge is the address\'s, not a parameter');
    const { audit_log: auditAfter, ...afterRest } = await stateCounts(server.database.db);
    const { audit_log: auditBefore, ...beforeRest } = before;
    assert.deepEqual(afterRest, beforeRest, 'the refusals changed nothing');
    assert.ok(auditAfter >= auditBefore);
  });
});
