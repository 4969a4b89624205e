import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Stripe from 'stripe';
import { recordIncrementOutcome } from '../../src/flows/increment-authorization.ts';
import { recoverInFlightOperations } from '../../src/jobs/recover-in-flight.ts';
import { jobTrail } from '../../src/jobs/system-trail.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: a merchant that holds a card payment for manual capture can raise the hold before capturing it (a hotel's
// extra night, a restaurant's tip), through the Stripe SDK's `incrementAuthorization`, exactly when the payment
// allows it; each raise replaces the ledger's reservation with one of the new total, a decline changes nothing,
// and the ledger verifies after every test.
describe('incremental authorization', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    server = await startTestServer({ providerTimeoutMs: 2_000 });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const hold = (amount: number, paymentMethod = 'pm_card_visa', requested = true) => stripe.paymentIntents.create({
    amount, currency: 'usd', payment_method: paymentMethod, capture_method: 'manual', confirm: true,
    ...(requested ? { payment_method_options: { card: { request_incremental_authorization: 'if_available' } } } : {}),
  });
  const chargeOf = async (intent: Stripe.PaymentIntent) => stripe.charges.retrieve(String(intent.latest_charge));
  const transfersOf = async (chargeId: string) => (await server.database.db.selectFrom('ledger_transfers')
    .select(['transfer_key', 'kind', 'reason', 'amount']).where('charge_id', '=', chargeId).orderBy('id').execute())
    .map((row) => `${row.transfer_key.slice(chargeId.length)} ${row.kind} ${row.reason} ${row.amount}`);
  const refusal = async (promise: Promise<unknown>): Promise<Stripe.errors.StripeError> => {
    try {
      await promise;
    } catch (error) {
      assert.ok(error instanceof Stripe.errors.StripeError, String(error));
      return error;
    }
    assert.fail('the request was refused');
  };
  const merchantIncomingPending = async () => {
    const row = await server.database.db.selectFrom('ledger_accounts').select(['credits_pending', 'debits_pending'])
      .where('merchant_id', '=', server.merchantId).where('livemode', '=', false).where('currency', '=', 'usd').where('code', '=', 'merchant_incoming')
      .executeTakeFirstOrThrow();
    return row.credits_pending - row.debits_pending;
  };

  test('a hold asked to be incrementable is raised, and its capture takes the new total', async () => {
    const intent = await hold(1000);
    assert.equal(intent.status, 'requires_capture');
    assert.equal(intent.payment_method_options?.card?.request_incremental_authorization, 'if_available');
    assert.equal((await chargeOf(intent)).payment_method_details?.card?.incremental_authorization?.status, 'available');
    const pendingBefore = await merchantIncomingPending();

    const raised = await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 1500 });
    assert.equal(raised.status, 'requires_capture');
    assert.equal(raised.amount, 1500);
    assert.equal(raised.amount_capturable, 1500);
    const charge = await chargeOf(raised);
    assert.equal(charge.amount, 1500);
    assert.equal(charge.payment_method_details?.card?.amount_authorized, 1500);
    assert.equal(await merchantIncomingPending() - pendingBefore, 500n, 'the reservation grew by the increment');
    const capturable = (await stripe.events.list({ type: 'payment_intent.amount_capturable_updated', limit: 20 })).data
      .filter((event) => (event.data.object as Stripe.PaymentIntent).id === intent.id).map((event) => (event.data.object as Stripe.PaymentIntent).amount_capturable);
    assert.deepEqual(capturable, [1500, 1000], 'one event when authorized, one when raised');
    const updated = (await stripe.events.list({ type: 'charge.updated', limit: 20 })).data.find((event) => (event.data.object as Stripe.Charge).id === charge.id);
    assert.equal((updated?.data.previous_attributes as Partial<Stripe.Charge> | undefined)?.amount, 1000);

    const captured = await stripe.paymentIntents.capture(intent.id, { expand: ['latest_charge.balance_transaction'] });
    assert.equal(captured.status, 'succeeded');
    assert.equal(captured.amount_received, 1500);
    const capturedCharge = captured.latest_charge as Stripe.Charge;
    assert.equal(capturedCharge.amount_captured, 1500);
    assert.equal((capturedCharge.balance_transaction as Stripe.BalanceTransaction).amount, 1500);
    assert.deepEqual(await transfersOf(charge.id), [
      ':authorization pending authorization 1000',
      ':increment:1 void_pending increment 1000',
      ':authorization:1 pending authorization 1500',
      ':capture post_pending capture 1500',
    ]);
    assert.equal(await merchantIncomingPending(), pendingBefore - 1000n, 'nothing of the hold is left reserved');
    await assertLedgerConsistent(server.database.db);
  });

  test('raised twice, then captured in part: the rest of the raised hold is released', async () => {
    const intent = await hold(1000, 'pm_card_mastercard');
    await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 1400 });
    const twice = await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 1800 });
    assert.equal(twice.amount, 1800);
    const captured = await stripe.paymentIntents.capture(intent.id, { amount_to_capture: 1200 });
    assert.equal(captured.amount_received, 1200);
    const charge = await chargeOf(captured);
    assert.equal(charge.amount_captured, 1200);
    assert.equal(charge.amount_refunded, 600, 'the released part, as Stripe reports it');
    assert.deepEqual((await transfersOf(charge.id)).slice(-2), [':authorization:2 pending authorization 1800', ':capture post_pending capture 1200']);
    await assertLedgerConsistent(server.database.db);
  });

  test('canceling a raised hold releases all of it', async () => {
    const pendingBefore = await merchantIncomingPending();
    const intent = await hold(2000, 'pm_card_amex');
    await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 3000 });
    assert.equal(await merchantIncomingPending() - pendingBefore, 3000n);
    const canceled = await stripe.paymentIntents.cancel(intent.id);
    assert.equal(canceled.status, 'canceled');
    assert.equal(await merchantIncomingPending(), pendingBefore);
    assert.deepEqual((await transfersOf(String(intent.latest_charge))).slice(-1), [':release void_pending release 3000']);
    await assertLedgerConsistent(server.database.db);
  });

  test('a declined increment is a card_declined error and leaves the hold as it was', async () => {
    const intent = await hold(1000);
    const pendingBefore = await merchantIncomingPending();
    // The sandbox's issuers raise a hold to at most twice the amount first authorized.
    const error = await refusal(stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 2001 }));
    assert.equal(error.statusCode, 402);
    assert.equal(error.type, 'StripeCardError');
    assert.equal(error.code, 'card_declined');
    assert.equal(error.decline_code, 'insufficient_funds');
    assert.equal(error.payment_intent?.amount, 1000);
    const after = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal(after.amount, 1000);
    assert.equal(after.amount_capturable, 1000);
    assert.equal(after.status, 'requires_capture');
    assert.equal(after.last_payment_error, null, 'a declined increment is not a failed payment');
    assert.equal((await chargeOf(after)).amount, 1000);
    assert.equal(await merchantIncomingPending(), pendingBefore);
    // Up to the ceiling, the next try is approved.
    assert.equal((await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 2000 })).amount, 2000);
    await assertLedgerConsistent(server.database.db);
  });

  test('a payment may be incremented ten times, declines included; the eleventh try is refused', async () => {
    const intent = await hold(500);
    for (let attempt = 1; attempt <= 10; attempt += 1) {
      if (attempt % 2 === 1) {
        assert.equal((await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 500 + attempt * 10 })).amount, 500 + attempt * 10);
      } else {
        assert.equal((await refusal(stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 5000 }))).code, 'card_declined');
      }
    }
    const before = await stateCounts(server.database.db);
    const error = await refusal(stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 600 }));
    assert.equal(error.statusCode, 400);
    assert.equal(error.code, 'incremental_authorization_unavailable');
    assert.match(error.message, /10 times/);
    const { idempotency_keys: _keys, audit_log: _audit, ...unchanged } = await stateCounts(server.database.db);
    const { idempotency_keys: _k, audit_log: _a, ...expected } = before;
    assert.deepEqual(unchanged, expected, 'the refused try changed nothing');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).amount, 590);
  });

  test('refused, naming the reason, and changing nothing: not asked for, captured at once, a brand without it, a lower amount', async () => {
    const notAsked = await hold(1000, 'pm_card_visa', false);
    assert.equal((await chargeOf(notAsked)).payment_method_details?.card?.incremental_authorization?.status, 'unavailable');
    const automatic = await stripe.paymentIntents.create({
      amount: 1000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true,
      payment_method_options: { card: { request_incremental_authorization: 'if_available' } },
    });
    assert.equal((await chargeOf(automatic)).payment_method_details?.card?.incremental_authorization?.status, 'unavailable');
    const diners = await hold(1000, 'pm_card_diners');
    assert.equal((await chargeOf(diners)).payment_method_details?.card?.incremental_authorization?.status, 'unavailable');
    const available = await hold(1000);
    const before = await stateCounts(server.database.db);
    const cases: Array<[string, number, number, string, RegExp]> = [
      [notAsked.id, 1500, 400, 'incremental_authorization_unavailable', /request_incremental_authorization/],
      [automatic.id, 1500, 400, 'payment_intent_unexpected_state', /status of succeeded/],
      [diners.id, 1500, 400, 'incremental_authorization_unavailable', /unavailable/],
      [available.id, 1000, 400, 'parameter_invalid_integer', /greater than the amount now authorized \(1000\)/],
      [available.id, 100_000_000, 400, 'amount_too_large', /no more than/],
    ];
    for (const [id, amount, status, code, message] of cases) {
      const error = await refusal(stripe.paymentIntents.incrementAuthorization(id, { amount }));
      assert.equal(error.statusCode, status, `${id} ${amount}`);
      assert.equal(error.code, code, `${id} ${amount}`);
      assert.match(error.message, message);
    }
    const wrongType = await rawRequest(server, 'POST', `/v1/payment_intents/${available.id}/increment_authorization`, { key: server.secretKey, body: 'amount=12.5' });
    assert.equal(wrongType.status, 400);
    assert.equal((wrongType.json.error as Record<string, unknown>).param, 'amount');
    const unknownParam = await rawRequest(server, 'POST', `/v1/payment_intents/${available.id}/increment_authorization`, { key: server.secretKey, body: 'amount=1500&metadata[a]=b' });
    assert.equal(unknownParam.status, 400);
    assert.equal((unknownParam.json.error as Record<string, unknown>).param, 'metadata');
    const { idempotency_keys: _keys, audit_log: _audit, ...unchanged } = await stateCounts(server.database.db);
    const { idempotency_keys: _k, audit_log: _a, ...expected } = before;
    assert.deepEqual(unchanged, expected, 'no refused request changed anything');
    const untouched = await stripe.paymentIntents.retrieve(available.id);
    assert.equal(untouched.amount, 1000);
    const attempts = await server.database.db.selectFrom('charges').select('increment_attempts').where('id', '=', String(available.latest_charge)).executeTakeFirstOrThrow();
    assert.equal(attempts.increment_attempts, 0, 'a refused request is not a try');
  });

  test('a Checkout Session asks for it for its card payments: paid on its page, the hold can be raised', async () => {
    const session = await stripe.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/ok', customer_email: 'hotel-guest@example.com',
      line_items: [{ price_data: { currency: 'usd', unit_amount: 12_000, product_data: { name: 'One night' } }, quantity: 1 }],
      payment_method_options: { card: { capture_method: 'manual', request_incremental_authorization: 'if_available' } },
    } as Stripe.Checkout.SessionCreateParams);
    assert.deepEqual(session.payment_method_options?.card, { capture_method: 'manual', request_incremental_authorization: 'if_available' });
    // Paid as the page's script pays: a card from the frame, posted with the page's token from its origin.
    const html = await rawRequest(server, 'GET', `/pay/${session.id}`);
    const csrf = /"csrf":"([^"]+)"/.exec(html.body)?.[1] ?? '';
    const card = await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } } as never);
    const paid = await rawRequest(server, 'POST', `/pay/${session.id}/confirm`, {
      body: JSON.stringify({ method: 'card', payment_method: card.id, amount: '12000', currency: 'usd' }), contentType: 'application/json',
      headers: { origin: new URL(session.url ?? '').origin, 'x-coffer-csrf': csrf },
    });
    assert.equal(paid.status, 200, paid.body);
    const intent = await stripe.paymentIntents.retrieve(String(session.payment_intent));
    assert.equal(intent.status, 'requires_capture');
    assert.equal(intent.payment_method_options?.card?.request_incremental_authorization, 'if_available');
    const raised = await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 18_000 });
    assert.deepEqual([raised.amount, raised.amount_capturable], [18_000, 18_000]);
    assert.equal((await stripe.paymentIntents.capture(intent.id)).amount_received, 18_000);
  });

  test('the shopper\'s publishable key cannot ask for it: the merchant decides', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', capture_method: 'manual' });
    const shopper = stripeClient(server, server.publishableKey);
    const error = await refusal(shopper.paymentIntents.confirm(intent.id, {
      client_secret: intent.client_secret ?? '', payment_method: 'pm_card_visa',
      payment_method_options: { card: { request_incremental_authorization: 'if_available' } },
    } as Stripe.PaymentIntentConfirmParams));
    assert.equal(error.param, 'payment_method_options[card][request_incremental_authorization]');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_payment_method');
  });

  test('a retry with the same Idempotency-Key replays the answer; the hold is raised once', async () => {
    const intent = await hold(1000);
    const first = await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 1300 }, { idempotencyKey: 'raise-once' });
    const again = await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 1300 }, { idempotencyKey: 'raise-once' });
    assert.deepEqual(again, first);
    const charge = await server.database.db.selectFrom('charges').select(['increment_attempts', 'authorization_increments', 'amount'])
      .where('id', '=', String(intent.latest_charge)).executeTakeFirstOrThrow();
    assert.deepEqual(charge, { increment_attempts: 1, authorization_increments: 1, amount: 1300n });
  });

  test('an acquirer that answers too late: 503, then the retry (or the recovery job) records the one increment', async () => {
    const sandbox = server.coffer.services.connectors.sandboxes.card;
    const retried = await hold(1000);
    const path = `/v1/payment_intents/${retried.id}/increment_authorization`;
    const send = (key: string) => rawRequest(server, 'POST', path, { key: server.secretKey, body: 'amount=1700', headers: { 'idempotency-key': key } });
    sandbox.controls.delayAnswers(5_000);
    const first = await send('late-1');
    assert.equal(first.status, 503);
    assert.match(String((first.json.error as Record<string, unknown>).message), /incremental authorization/);
    const other = await rawRequest(server, 'POST', `/v1/payment_intents/${retried.id}/capture`, { key: server.secretKey, body: '' });
    assert.equal(other.status, 429, 'nothing else may change the hold meanwhile');
    const retry = await send('late-1');
    assert.equal(retry.status, 200, retry.body);
    assert.equal(retry.json.amount, 1700);

    const recovered = await hold(1000);
    sandbox.controls.delayAnswers(5_000);
    assert.equal((await rawRequest(server, 'POST', `/v1/payment_intents/${recovered.id}/increment_authorization`, { key: server.secretKey, body: 'amount=1900' })).status, 503);
    const db = server.database.db;
    await db.updateTable('payment_intents').set({ operation_started_at: new Date(Date.now() - 600_000) }).where('id', '=', recovered.id).execute();
    assert.ok(await recoverInFlightOperations(server.coffer.services) >= 1);
    const after = await stripe.paymentIntents.retrieve(recovered.id);
    assert.equal(after.amount, 1900);
    assert.equal(after.amount_capturable, 1900);
    for (const intent of [retried, recovered]) {
      const increments = await db.selectFrom('sandbox_card_operations').select('kind')
        .where('idempotency_key', 'like', `${String(intent.latest_charge)}:increment:%`).execute();
      assert.equal(increments.length, 1, 'the acquirer raised the hold once');
    }
    await assertLedgerConsistent(db);
  });

  test('a retry of a request whose try the recovery job recorded as declined is answered card_declined, not the PaymentIntent', async () => {
    const intent = await hold(1000);
    const send = () => rawRequest(server, 'POST', `/v1/payment_intents/${intent.id}/increment_authorization`, {
      key: server.secretKey, body: 'amount=2500', headers: { 'idempotency-key': 'late-decline' },
    });
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(5_000);
    assert.equal((await send()).status, 503);
    await server.database.db.updateTable('payment_intents').set({ operation_started_at: new Date(Date.now() - 600_000) }).where('id', '=', intent.id).execute();
    assert.ok(await recoverInFlightOperations(server.coffer.services) >= 1);
    const retry = await send();
    assert.equal(retry.status, 402, retry.body);
    const error = retry.json.error as Record<string, unknown>;
    assert.deepEqual([error.code, error.decline_code], ['card_declined', 'insufficient_funds']);
    assert.equal((error.payment_intent as Record<string, unknown>).amount, 1000);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).amount, 1000);
  });

  test('a late answer to a try already recorded is not taken for the next try', async () => {
    const intent = await hold(1000);
    await stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 1200 });
    // Try 2 is in flight (the acquirer answered too late for its request)…
    const send = () => rawRequest(server, 'POST', `/v1/payment_intents/${intent.id}/increment_authorization`, {
      key: server.secretKey, body: 'amount=1500', headers: { 'idempotency-key': 'second-try' },
    });
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(5_000);
    assert.equal((await send()).status, 503);
    // …when an answer to try 1 arrives (a recovery pass that was still waiting for it): it changes nothing.
    const scope = { merchantId: server.merchantId, livemode: false };
    const trail = await jobTrail(server.coffer.services, 'recover-in-flight-operations', server.merchantId);
    const stale = await recordIncrementOutcome(server.coffer.services, scope, intent.id, 1,
      { status: 'declined', declineCode: 'insufficient_funds', message: 'Your card has insufficient funds.', adviceCode: null }, trail, undefined);
    assert.equal(stale, undefined);
    const charge = await server.database.db.selectFrom('charges').select(['increment_try', 'increment_attempts', 'authorization_increments'])
      .where('id', '=', String(intent.latest_charge)).executeTakeFirstOrThrow();
    assert.deepEqual([charge.increment_attempts, charge.authorization_increments, charge.increment_try?.amount, charge.increment_try?.failure], [2, 1, '1500', undefined]);
    const inFlight = await server.database.db.selectFrom('payment_intents').select('operation_in_flight').where('id', '=', intent.id).executeTakeFirstOrThrow();
    assert.equal(inFlight.operation_in_flight, 'increment', 'try 2 is still in flight');
    // Try 2's own retry records what the acquirer did for it.
    const retry = await send();
    assert.equal(retry.status, 200, retry.body);
    assert.equal(retry.json.amount, 1500);
    await assertLedgerConsistent(server.database.db);
  });

  test('the merchant\'s limits bound a raise: the new total per payment, the difference in the day\'s total, given back when declined', async () => {
    const api = (method: string, path: string, body?: string) => rawRequest(server, method, path, { key: server.secretKey, ...(body === undefined ? {} : { body }) });
    // By card, so that only this test's payments (Discover) count.
    const daily = await api('POST', '/v1/risk/limits', 'subject=card&kind=amount_per_day&value=5000&currency=usd');
    const perPayment = await api('POST', '/v1/risk/limits', 'subject=card&kind=amount_max&value=3000&currency=usd');
    assert.equal(daily.status, 200, daily.body);
    try {
      const counted = async () => (await server.database.db.selectFrom('payment_limit_counters').select('amount').where('limit_id', '=', String(daily.json.id)).execute())
        .reduce((sum, row) => sum + row.amount, 0n);
      const first = await hold(1000, 'pm_card_discover');
      const second = await hold(1500, 'pm_card_discover');
      assert.equal(await counted(), 2500n);
      // Above the per-payment maximum: refused before the issuer, taking nothing.
      assert.equal((await refusal(stripe.paymentIntents.incrementAuthorization(second.id, { amount: 3100 }))).code, 'payment_limit_exceeded', 'above the per-payment maximum');
      assert.equal(await counted(), 2500n);
      assert.equal((await stripe.paymentIntents.incrementAuthorization(second.id, { amount: 3000 })).amount, 3000);
      assert.equal(await counted(), 4000n, 'the day counts the difference');
      assert.equal((await refusal(stripe.paymentIntents.incrementAuthorization(first.id, { amount: 2001 }))).code, 'payment_limit_exceeded', 'the day would pass 5000');
      assert.equal(await counted(), 4000n, 'a refused raise takes nothing');
      assert.equal((await stripe.paymentIntents.incrementAuthorization(first.id, { amount: 1900 })).amount, 1900);
      assert.equal(await counted(), 4900n);
      await api('POST', `/v1/risk/limits/${String(daily.json.id)}`, 'value=9000');
      assert.equal((await refusal(stripe.paymentIntents.incrementAuthorization(first.id, { amount: 2001 }))).code, 'card_declined', 'above twice 1000: the issuer declines');
      assert.equal(await counted(), 4900n, 'the declined try gave back what it took');
      const tries = await server.database.db.selectFrom('charges').select('increment_attempts').where('id', '=', String(first.latest_charge)).executeTakeFirstOrThrow();
      assert.equal(tries.increment_attempts, 2, 'refusals before the issuer are not tries');
    } finally {
      for (const limit of [daily, perPayment]) await api('DELETE', `/v1/risk/limits/${String(limit.json.id)}`);
    }
  });

  test('a payment held for review cannot be raised while the review is open: the reviewer decides on the amount they see', async () => {
    const rules = await rawRequest(server, 'POST', '/v1/risk/rule_sets', {
      key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ rules: [{ id: 'look_at_it', text: 'review if :amount: = 4321' }] }),
    });
    assert.equal(rules.status, 200, rules.body);
    const intent = await hold(4321);
    assert.equal(intent.status, 'requires_capture');
    const error = await refusal(stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 5000 }));
    assert.equal(error.code, 'payment_intent_unexpected_state');
    assert.match(error.message, /held for review \(prv_[A-Za-z0-9]+\)/);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).amount, 4321);
  });

  test('concurrent increments and a capture: each is applied whole or refused, and the ledger agrees', async () => {
    const intent = await hold(1000);
    const results = await Promise.allSettled([
      stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 1200 }),
      stripe.paymentIntents.incrementAuthorization(intent.id, { amount: 1600 }),
      stripe.paymentIntents.capture(intent.id),
    ]);
    const final = await stripe.paymentIntents.retrieve(intent.id);
    const charge = await chargeOf(final);
    const row = await server.database.db.selectFrom('charges').select(['authorization_increments', 'increment_attempts'])
      .where('id', '=', charge.id).executeTakeFirstOrThrow();
    const raised = results.slice(0, 2).filter((result) => result.status === 'fulfilled').length;
    assert.equal(row.authorization_increments, raised, 'each increment that answered 200 was applied, and only those');
    assert.equal(charge.amount, final.amount);
    if (final.status === 'succeeded') {
      assert.equal(final.amount_received, charge.amount_captured);
      assert.equal(charge.amount_captured, final.amount, 'the capture took the whole hold as it stood');
    } else {
      assert.equal(results[2].status, 'rejected');
      assert.equal(final.amount_capturable, final.amount);
    }
    await assertLedgerConsistent(server.database.db);
  });
});
