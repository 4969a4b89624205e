import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Stripe from 'stripe';
import { createApiKey } from '../../src/identity/merchants.ts';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: a merchant's page pays the way Stripe.js does. The server creates the PaymentIntent with its secret key and
// hands the client secret to the page; the page gives the card to the vault and confirms with the publishable key
// and that client secret, and sees only what such a key may see. What the merchant decides stays with its secret key.
describe('confirming with a publishable key and the client secret', () => {
  let server: TestServer;
  let stripe: Stripe;
  let shopper: Stripe;

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
    shopper = stripeClient(server, server.publishableKey);
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const newCard = (number = '4242424242424242') => shopper.paymentMethods.create({ type: 'card', card: { number, exp_month: 12, exp_year: 2031, cvc: '123' } });

  test('the page confirms with a card it collected, and reads back only the shopper\'s fields', async () => {
    const customer = await stripe.customers.create({ email: 'x@shop.example' });
    const intent = await stripe.paymentIntents.create({ amount: 2599, currency: 'eur', metadata: { order: 'private-7' }, customer: customer.id });
    // A card the merchant saved to the customer, with its own notes: the page pays with it and sees neither.
    const card = await stripe.paymentMethods.attach((await newCard()).id, { customer: customer.id });
    await stripe.paymentMethods.update(card.id, { metadata: { note: 'private-card-note' } });
    const confirmed = await shopper.paymentIntents.confirm(intent.id, { client_secret: intent.client_secret ?? '', payment_method: card.id, expand: ['payment_method'] } as Stripe.PaymentIntentConfirmParams);
    assert.equal(confirmed.status, 'succeeded');
    assert.equal((confirmed.payment_method as Stripe.PaymentMethod).card?.last4, '4242');
    assert.deepEqual(['metadata' in (confirmed.payment_method as object), 'customer' in (confirmed.payment_method as object)], [false, false], 'nor the card\'s');
    assert.equal('metadata' in confirmed, false, 'the merchant\'s metadata is not shown to the page');
    assert.equal('customer' in confirmed, false);
    assert.equal('latest_charge' in confirmed, false);
    const seen = await stripe.paymentIntents.retrieve(intent.id, { expand: ['latest_charge'] });
    assert.equal(seen.status, 'succeeded');
    assert.equal(seen.amount_received, 2599);
    assert.deepEqual(seen.metadata, { order: 'private-7' });
    assert.equal((seen.latest_charge as Stripe.Charge).payment_method_details?.card?.last4, '4242');
  });

  test('a decline answers the page with the error and a PaymentIntent cut to the shopper\'s fields', async () => {
    const customer = await stripe.customers.create({ email: 'y@shop.example' });
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', metadata: { order: 'private-8' }, customer: customer.id });
    const card = await stripe.paymentMethods.attach((await newCard('4000000000009995')).id, { customer: customer.id });
    await stripe.paymentMethods.update(card.id, { metadata: { note: 'private-card-note' } });
    await assert.rejects(
      shopper.paymentIntents.confirm(intent.id, { client_secret: intent.client_secret ?? '', payment_method: card.id } as Stripe.PaymentIntentConfirmParams),
      (error: Stripe.errors.StripeError) => {
        assert.equal(error.statusCode, 402);
        assert.equal(error.decline_code, 'insufficient_funds');
        const shown = error.raw as { payment_intent?: Record<string, unknown>; payment_method?: Record<string, unknown> };
        assert.equal(shown.payment_intent?.status, 'requires_payment_method');
        assert.equal(shown.payment_intent !== undefined && 'metadata' in shown.payment_intent, false);
        // The declined card, in the error and in last_payment_error, without the merchant's notes or customer.
        const inError = (shown.payment_intent?.last_payment_error as { payment_method?: Record<string, unknown> }).payment_method;
        for (const method of [shown.payment_method, inError]) {
          assert.equal(method?.id, card.id);
          assert.deepEqual(['metadata' in (method ?? {}), 'customer' in (method ?? {})], [false, false]);
        }
        return true;
      },
    );
    const retried = await shopper.paymentIntents.confirm(intent.id, { client_secret: intent.client_secret ?? '', payment_method: (await newCard()).id } as Stripe.PaymentIntentConfirmParams);
    assert.equal(retried.status, 'succeeded', 'the shopper may try another card');
  });

  test('3-D Secure: the page gets the redirect to follow', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 4200, currency: 'eur' });
    const card = await newCard('4000002760003184');
    const confirmed = await shopper.paymentIntents.confirm(intent.id, { client_secret: intent.client_secret ?? '', payment_method: card.id, return_url: 'https://shop.example/done' } as Stripe.PaymentIntentConfirmParams);
    assert.equal(confirmed.status, 'requires_action');
    assert.equal(confirmed.next_action?.type, 'redirect_to_url');
    assert.equal(confirmed.next_action?.redirect_to_url?.return_url, 'https://shop.example/done');
  });

  test('refused, changing nothing: no or a wrong client secret, the merchant\'s parameters, a manually confirmed PaymentIntent, another merchant\'s key', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd' });
    const manual = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', confirmation_method: 'manual' });
    const card = await newCard();
    const secret = intent.client_secret ?? '';
    const other = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd' });
    const refusals: Array<[string, () => Promise<unknown>, number, string, string | undefined]> = [
      ['no client secret', () => shopper.paymentIntents.confirm(intent.id, { payment_method: card.id }), 401, 'secret_key_required', 'client_secret'],
      ['another PaymentIntent\'s secret', () => shopper.paymentIntents.confirm(intent.id, { client_secret: other.client_secret, payment_method: card.id } as Stripe.PaymentIntentConfirmParams), 400, 'parameter_invalid', 'client_secret'],
      ['a wrong secret with the secret key', () => stripe.paymentIntents.confirm(intent.id, { client_secret: `${intent.id}_secret_wrong`, payment_method: card.id } as Stripe.PaymentIntentConfirmParams), 400, 'parameter_invalid', 'client_secret'],
      ['capture_method', () => shopper.paymentIntents.confirm(intent.id, { client_secret: secret, payment_method: card.id, capture_method: 'manual' } as Stripe.PaymentIntentConfirmParams), 400, 'parameter_invalid', 'capture_method'],
      ['off_session', () => shopper.paymentIntents.confirm(intent.id, { client_secret: secret, payment_method: card.id, off_session: true } as Stripe.PaymentIntentConfirmParams), 400, 'parameter_invalid', 'off_session'],
      ['expanding the charge', () => shopper.paymentIntents.confirm(intent.id, { client_secret: secret, payment_method: card.id, expand: ['latest_charge'] } as Stripe.PaymentIntentConfirmParams), 400, 'parameter_invalid', 'expand'],
      ['confirmation_method manual', () => shopper.paymentIntents.confirm(manual.id, { client_secret: manual.client_secret, payment_method: card.id } as Stripe.PaymentIntentConfirmParams), 401, 'secret_key_required', undefined],
      ['capturing', () => shopper.paymentIntents.capture(intent.id), 401, 'secret_key_required', undefined],
      ['cancelling', () => shopper.paymentIntents.cancel(intent.id), 401, 'secret_key_required', undefined],
    ];
    for (const [what, call, status, code, param] of refusals) {
      await assert.rejects(call(), (error: Stripe.errors.StripeError) => {
        assert.equal(error.statusCode, status, what);
        assert.equal(error.code, code, what);
        assert.equal(error.param, param, what);
        return true;
      });
    }
    for (const id of [intent.id, manual.id]) {
      const unchanged = await stripe.paymentIntents.retrieve(id);
      assert.equal(unchanged.status, 'requires_payment_method');
      assert.equal(unchanged.payment_method, null);
      assert.equal(unchanged.latest_charge, null);
    }
    assert.equal((await stripe.charges.list({ payment_intent: intent.id })).data.length, 0);
    // The card is still unused, so the right confirmation may take it.
    const paid = await shopper.paymentIntents.confirm(intent.id, { client_secret: secret, payment_method: card.id } as Stripe.PaymentIntentConfirmParams);
    assert.equal(paid.status, 'succeeded');
  });

  test('setup_future_usage the merchant set: the page may raise it from on_session to off_session, never lower or remove it', async () => {
    const customer = await stripe.customers.create({ email: 'consent@example.com' });
    const make = (params: Partial<Stripe.PaymentIntentCreateParams>) => stripe.paymentIntents.create({ amount: 1500, currency: 'usd', customer: customer.id, ...params });
    const offSession = await make({ setup_future_usage: 'off_session' });
    const cardOption = await make({ payment_method_options: { card: { setup_future_usage: 'on_session' } } });
    const confirm = (intent: Stripe.PaymentIntent, params: Record<string, unknown>) => shopper.paymentIntents.confirm(intent.id, { client_secret: intent.client_secret, ...params } as Stripe.PaymentIntentConfirmParams);
    for (const [intent, params, param] of [
      [offSession, { setup_future_usage: 'on_session' }, 'setup_future_usage'],
      [offSession, { setup_future_usage: '' }, 'setup_future_usage'],
      [cardOption, { payment_method_options: { card: { setup_future_usage: 'none' } } }, 'payment_method_options[card][setup_future_usage]'],
      // The card's option may not withdraw, for a card, the consent the merchant set at the top level.
      [offSession, { payment_method_options: { card: { setup_future_usage: 'none' } } }, 'payment_method_options[card][setup_future_usage]'],
      [offSession, { payment_method_options: { card: { setup_future_usage: 'on_session' } } }, 'payment_method_options[card][setup_future_usage]'],
    ] as const) {
      const card = await newCard();
      await assert.rejects(confirm(intent, { ...params, payment_method: card.id }), (error: Stripe.errors.StripeError) =>
        error.statusCode === 400 && error.param === param && /may only change it from on_session to off_session/.test(error.message));
      const unchanged = await stripe.paymentIntents.retrieve(intent.id);
      assert.deepEqual([unchanged.status, unchanged.setup_future_usage, unchanged.payment_method_options?.card?.setup_future_usage, unchanged.latest_charge],
        [intent.status, intent.setup_future_usage, intent.payment_method_options?.card?.setup_future_usage, null], 'the refusal changed nothing');
    }
    // Raising the card's consent from on_session to off_session is the shopper's to give.
    const raised = await confirm(cardOption, { payment_method: (await newCard()).id, payment_method_options: { card: { setup_future_usage: 'off_session' } } });
    assert.equal(raised.status, 'succeeded');
    assert.equal((await stripe.paymentIntents.retrieve(cardOption.id)).payment_method_options?.card?.setup_future_usage, 'off_session');
    // And the same value again is no change.
    assert.equal((await confirm(offSession, { payment_method: (await newCard()).id, setup_future_usage: 'off_session' })).status, 'succeeded');
  });

  test('an Idempotency-Key used by the secret key is not replayed to the publishable key, nor to a key with fewer powers', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 1800, currency: 'usd', metadata: { order: 'private-9' } });
    const body = `client_secret=${intent.client_secret ?? ''}&payment_method=pm_card_visa&expand[]=payment_method`;
    const key = `confirm-${intent.id}`;
    const first = await rawRequest(server, 'POST', `/v1/payment_intents/${intent.id}/confirm`, { key: server.secretKey, body, headers: { 'idempotency-key': key } });
    assert.equal(first.status, 200, first.body);
    assert.deepEqual(first.json.metadata, { order: 'private-9' });
    const replayed = await rawRequest(server, 'POST', `/v1/payment_intents/${intent.id}/confirm`, { key: server.secretKey, body, headers: { 'idempotency-key': key } });
    assert.equal(replayed.headers['idempotent-replayed'], 'true', 'the same key and powers replay');
    // A restricted key shares the secret key's key space (both are the merchant's servers'): the same key with other
    // powers is another request, refused as a reuse.
    const writeOnly = (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { payment_intents: 'write' } })).key.reveal();
    const restricted = await rawRequest(server, 'POST', `/v1/payment_intents/${intent.id}/confirm`, { key: writeOnly, body, headers: { 'idempotency-key': key } });
    assert.equal(restricted.status, 400, restricted.body);
    assert.equal((restricted.json.error as { code?: string }).code, 'idempotency_key_reused');
    assert.equal(restricted.body.includes('private-9'), false, 'the restricted key never sees the first response');
    // The publishable key's keys are a space of their own: its request runs as its own, on a PaymentIntent that
    // has already succeeded, and sees only what a publishable key may.
    const shopper = await rawRequest(server, 'POST', `/v1/payment_intents/${intent.id}/confirm`, { key: server.publishableKey, body, headers: { 'idempotency-key': key } });
    assert.equal(shopper.headers['idempotent-replayed'], undefined, shopper.body);
    assert.equal(shopper.status, 400, shopper.body);
    assert.equal((shopper.json.error as { code?: string }).code, 'payment_intent_unexpected_state');
    assert.equal(shopper.body.includes('private-9'), false, 'the publishable key never sees the first response');
  });

  test('a key name the publishable key used first does not block the secret key, nor the other way round', async () => {
    // A shopper's browser holds the publishable key: whatever key names it sends, the merchant's server keeps its
    // own (an order id, say).
    const key = `order-${Date.now()}`;
    const card = await rawRequest(server, 'POST', '/v1/payment_methods', {
      key: server.publishableKey, body: 'type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2031&card[cvc]=123', headers: { 'idempotency-key': key },
    });
    assert.equal(card.status, 200, card.body);
    const created = await rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=2500&currency=usd', headers: { 'idempotency-key': key } });
    assert.equal(created.status, 200, created.body);
    assert.equal(created.json.object, 'payment_intent');
    assert.equal(created.headers['idempotent-replayed'], undefined);
    // Each space replays its own first response.
    const again = await rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=2500&currency=usd', headers: { 'idempotency-key': key } });
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.body, created.body);
    const cardAgain = await rawRequest(server, 'POST', '/v1/payment_methods', {
      key: server.publishableKey, body: 'type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2031&card[cvc]=123', headers: { 'idempotency-key': key },
    });
    assert.equal(cardAgain.headers['idempotent-replayed'], 'true');
    assert.equal(cardAgain.body, card.body);
    const rows = await server.database.db.selectFrom('idempotency_keys').select(['publishable', 'request_path']).where('key', '=', key).orderBy('publishable').execute();
    assert.deepEqual(rows, [{ publishable: false, request_path: '/v1/payment_intents' }, { publishable: true, request_path: '/v1/payment_methods' }]);
  });

  test('another merchant\'s publishable key finds no such PaymentIntent, even with its client secret', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 700, currency: 'usd' });
    const [otherMerchant] = await server.database.db.selectFrom('api_keys').select('merchant_id').where('merchant_id', '!=', server.merchantId).execute();
    assert.notEqual(otherMerchant, undefined);
    const otherShopper = stripeClient(server, (await createApiKey(server.database.db, otherMerchant?.merchant_id ?? '', 'publishable', false)).key.reveal());
    const card = await otherShopper.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2031, cvc: '123' } });
    await assert.rejects(
      otherShopper.paymentIntents.confirm(intent.id, { client_secret: intent.client_secret, payment_method: card.id } as Stripe.PaymentIntentConfirmParams),
      (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.code === 'resource_missing',
    );
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_payment_method');
  });
});
