import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { emittedEventTypes } from '../../src/webhooks/endpoints.ts';
import { stripeEventTypes } from '../../src/webhooks/stripe-event-types.ts';
import { recoverSetupVerifications } from '../../src/flows/setup-intents.ts';
import { limits } from '../../src/limits.ts';
import { TestClock } from '../support/clock.ts';
import { deliverDueWebhooks } from '../../src/webhooks/deliverer.ts';
import { relayEvents } from '../../src/webhooks/relay.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { WebhookReceiver } from '../support/receiver.ts';
import { rawRequest, startTestServer, stripeClient, type RawResponse, type TestServer } from '../support/server.ts';

/** Relays and delivers until nothing is due (bounded). */
async function drain(server: TestServer): Promise<void> {
  for (let round = 0; round < 50; round += 1) {
    const worked = (await relayEvents(server.coffer.services)) + (await deliverDueWebhooks(server.coffer.services));
    if (worked === 0) return;
  }
  throw new Error('deliveries did not drain');
}

/** The event types the code passes to `recordChange` and `recordEvents`, read from the source. */
function eventTypesInSource(): Set<string> {
  const found = new Set<string>();
  const root = path.resolve(import.meta.dirname, '../../src');
  const files = fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
  const patterns = [
    // `{ type: 'charge.succeeded', charge: { … } }` and `{ type: captured ? 'a' : 'b', paymentIntent: { … } }`
    /\btype: ([^,{}]+), [a-zA-Z]+: \{/g,
    // `changed(tx, ctx, before, after, ['setup_intent.created'], now)`, `changedBy(tx, trail, scope, …, ['setup_intent.succeeded'], now)`
    /\bchanged(?:By)?\([^;]*?\[([^\]]+)\], now\)/g,
  ];
  for (const file of files) {
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    for (const pattern of patterns) {
      for (const match of text.matchAll(pattern)) {
        for (const literal of (match[1] ?? '').matchAll(/'([a-z_]+(?:\.[a-z_]+)+)'/g)) found.add(literal[1] ?? '');
      }
    }
  }
  return found;
}

// Goal: saving cards for later (SetupIntents, attach, detach, update) follows Stripe: bad input is refused with
// Stripe's code and param and changes nothing, a deleted customer gets no card, attach and detach emit
// `payment_method.attached` / `.detached`, and webhook endpoints may ask only for event types Coffer sends.
describe('saved cards', () => {
  let server: TestServer;
  let stripe: Stripe;
  let publishable: Stripe;
  const receiver = new WebhookReceiver();
  let receiverUrl = '';
  const thisYear = new Date().getUTCFullYear();

  before(async () => {
    receiverUrl = await receiver.start();
    server = await startTestServer({ configEnv: { COFFER_WEBHOOKS_ALLOW_PRIVATE: 'true' } });
    stripe = server.stripe;
    publishable = stripeClient(server, server.publishableKey);
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
    await receiver.stop();
  });

  const post = (pathname: string, body: string): Promise<RawResponse> => rawRequest(server, 'POST', pathname, { key: server.secretKey, body });
  const errorOf = (response: RawResponse) => {
    const error = response.json.error as Record<string, unknown> | undefined;
    return { status: response.status, type: error?.type, code: error?.code, param: error?.param };
  };
  /** Counts of every table a refused request here could have written to. */
  const counts = async () => {
    const db = server.database.db;
    const count = async (table: 'setup_intents' | 'customers' | 'webhook_endpoints') =>
      Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n);
    return { ...(await stateCounts(db)), setup_intents: await count('setup_intents'), customers: await count('customers'), webhook_endpoints: await count('webhook_endpoints') };
  };
  const newCard = () => publishable.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 8, exp_year: thisYear + 3, cvc: '123' } });

  test('confirm=true without a payment method is refused before a SetupIntent is created', async () => {
    const customer = await stripe.customers.create({ email: 'a@example.com' });
    const before = await counts();
    const refused = await post('/v1/setup_intents', `customer=${customer.id}&confirm=true`);
    assert.deepEqual(errorOf(refused), { status: 400, type: 'invalid_request_error', code: 'parameter_missing', param: 'payment_method' }, refused.body);
    assert.deepEqual(await counts(), before, 'no SetupIntent, event or audit record was written');
    assert.deepEqual((await stripe.setupIntents.list({ customer: customer.id })).data, []);

    const saved = await stripe.setupIntents.create({ customer: customer.id, payment_method: 'pm_card_visa', confirm: true });
    assert.equal(saved.status, 'succeeded');
    assert.equal((await stripe.paymentMethods.retrieve(saved.payment_method as string)).customer, customer.id);
    const unconfirmed = await stripe.setupIntents.create({ customer: customer.id });
    assert.equal(unconfirmed.status, 'requires_payment_method', 'without confirm, no payment method is needed');
  });

  test('a SetupIntent takes the guide\'s parameters (automatic_payment_methods, return_url) and is updated before confirmation', async () => {
    const customer = await stripe.customers.create({ email: 'guide@example.com' });
    const intent = await stripe.setupIntents.create({ customer: customer.id, automatic_payment_methods: { enabled: true } });
    assert.deepEqual(intent.automatic_payment_methods, { allow_redirects: 'always', enabled: true });
    const plain = await post('/v1/setup_intents', `customer=${customer.id}&payment_method_types[0]=card`);
    assert.equal(plain.json.automatic_payment_methods, null);
    const before = await counts();
    for (const [body, param] of [
      [`customer=${customer.id}&automatic_payment_methods[enabled]=true&payment_method_types[0]=card`, 'automatic_payment_methods'],
      [`customer=${customer.id}&return_url=shop.example/back`, 'return_url'],
      [`customer=${customer.id}&automatic_payment_methods[allow_redirects]=never`, 'automatic_payment_methods[enabled]'],
    ] as const) {
      const refused = await post('/v1/setup_intents', body);
      assert.equal(refused.status, 400, refused.body);
      assert.equal((refused.json.error as { param?: string }).param, param, refused.body);
    }
    assert.deepEqual(await counts(), before, 'refusals make nothing');

    const updated = await stripe.setupIntents.update(intent.id, { metadata: { order: '42' }, description: 'card for renewals', payment_method: 'pm_card_visa' });
    assert.deepEqual([updated.status, updated.metadata, updated.description], ['requires_confirmation', { order: '42' }, 'card for renewals']);
    assert.match(String(updated.payment_method), /^pm_(?!card_)/);
    const badUpdate = await post(`/v1/setup_intents/${intent.id}`, 'metadata[a]=b&usage=on_session');
    assert.equal((badUpdate.json.error as { param?: string }).param, 'usage');
    assert.deepEqual((await stripe.setupIntents.retrieve(intent.id)).metadata, { order: '42' }, 'a refused update changes nothing');
    const confirmed = await stripe.setupIntents.confirm(intent.id, { return_url: 'https://shop.example/saved', expand: ['payment_method', 'customer'] });
    assert.equal(confirmed.status, 'succeeded');
    assert.deepEqual([(confirmed.payment_method as Stripe.PaymentMethod).object, (confirmed.customer as Stripe.Customer).id], ['payment_method', customer.id], 'the answer expands as a read does');
    const expandedCreate = await stripe.setupIntents.create({ customer: customer.id, expand: ['customer'] });
    assert.equal((expandedCreate.customer as Stripe.Customer).email, 'guide@example.com');
    const expandedUpdate = await stripe.setupIntents.update(expandedCreate.id, { metadata: { a: 'b' }, expand: ['customer'] });
    assert.equal((expandedUpdate.customer as Stripe.Customer).id, customer.id);
    const badExpand = await post(`/v1/setup_intents/${expandedCreate.id}`, 'expand[0]=latest_attempt');
    assert.deepEqual([badExpand.status, (badExpand.json.error as { param?: string }).param], [400, 'expand']);
    const savedMethod = (confirmed.payment_method as Stripe.PaymentMethod).id;
    assert.equal((await stripe.paymentMethods.retrieve(savedMethod)).customer, customer.id);
    const late = await stripe.setupIntents.update(intent.id, { metadata: { order: '43' }, description: '' });
    assert.deepEqual([late.metadata, late.description], [{ order: '43' }, null], 'metadata and description change after success too');
    await assert.rejects(stripe.setupIntents.update(intent.id, { payment_method: 'pm_card_mastercard' }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'setup_intent_unexpected_state');
    assert.equal((await stripe.setupIntents.retrieve(intent.id)).payment_method, savedMethod);
    const audited = await server.database.db.selectFrom('audit_log').select('action').where('object_id', '=', intent.id).where('action', '=', 'setup_intent.update').execute();
    assert.equal(audited.length, 2);
  });

  test('a SetupIntent whose customer was deleted cannot be confirmed, and no card is saved', async () => {
    const customer = await stripe.customers.create({ email: 'gone@example.com' });
    const method = await newCard();
    const intent = await stripe.setupIntents.create({ customer: customer.id, payment_method: method.id });
    const other = await stripe.setupIntents.create({ customer: customer.id });
    await stripe.customers.del(customer.id);
    const before = await counts();
    for (const [id, body] of [[intent.id, ''], [intent.id, `payment_method=${method.id}`], [other.id, 'payment_method=pm_card_visa']] as const) {
      const refused = await post(`/v1/setup_intents/${id}/confirm`, body);
      const error = errorOf(refused);
      assert.deepEqual([error.type, error.code, error.param], ['invalid_request_error', 'resource_missing', 'customer'], refused.body);
      assert.match(String((refused.json.error as Record<string, unknown>).message), /No such customer/);
    }
    assert.deepEqual(await counts(), before, 'nothing was written (not even a PaymentMethod for pm_card_visa)');
    assert.equal((await stripe.setupIntents.retrieve(intent.id)).status, 'requires_confirmation');
    assert.equal((await stripe.setupIntents.retrieve(other.id)).status, 'requires_payment_method');
    assert.equal((await stripe.paymentMethods.retrieve(method.id)).customer, null, 'the card was not saved to the deleted customer');
  });

  test('a card update refuses an expiry year in the past or more than 50 years ahead, and changes nothing', async () => {
    const customer = await stripe.customers.create({ email: 'exp@example.com' });
    const method = await stripe.paymentMethods.attach((await newCard()).id, { customer: customer.id });
    const before = await counts();
    for (const body of ['card[exp_year]=-5', 'card[exp_year]=2020', `card[exp_year]=${thisYear - 1}`, `card[exp_year]=${thisYear + 51}`, 'card[exp_year]=99999', 'card[exp_month]=3&card[exp_year]=0&metadata[a]=b']) {
      const refused = await post(`/v1/payment_methods/${method.id}`, body);
      assert.deepEqual(errorOf(refused), { status: 402, type: 'card_error', code: 'invalid_expiry_year', param: 'card[exp_year]' }, `${body}: ${refused.body}`);
    }
    const badMonth = await post(`/v1/payment_methods/${method.id}`, 'card[exp_month]=13');
    assert.deepEqual(errorOf(badMonth), { status: 402, type: 'card_error', code: 'invalid_expiry_month', param: 'card[exp_month]' });
    assert.deepEqual(await counts(), before);
    assert.deepEqual(await stripe.paymentMethods.retrieve(method.id), method, 'the card is as it was');

    const farthest = await stripe.paymentMethods.update(method.id, { card: { exp_month: 1, exp_year: thisYear + 50 }, metadata: { note: 'renewed' } });
    assert.deepEqual([farthest.card?.exp_month, farthest.card?.exp_year, farthest.metadata], [1, thisYear + 50, { note: 'renewed' }]);
    const twoDigits = await stripe.paymentMethods.update(method.id, { card: { exp_year: (thisYear + 2) % 100 } });
    assert.equal(twoDigits.card?.exp_year, thisYear + 2, 'two digits mean 20xx, as when the card was created');

    // Each update that changed something is a payment_method.updated event with what it changed; one that changed
    // nothing (the same metadata again) and the refusals above are none.
    await stripe.paymentMethods.update(method.id, { metadata: { note: 'renewed' } });
    const updates = (await stripe.events.list({ type: 'payment_method.updated', limit: 100 })).data.filter((event) => (event.data.object as { id?: string }).id === method.id);
    assert.equal(updates.length, 2, updates.map((event) => JSON.stringify(event.data.previous_attributes)).join(' '));
    const [second, first] = updates;
    assert.deepEqual(first?.data.previous_attributes, { card: { exp_month: method.card?.exp_month, exp_year: method.card?.exp_year }, metadata: { note: null } });
    assert.deepEqual((first?.data.object as Stripe.PaymentMethod).card?.exp_year, thisYear + 50);
    assert.deepEqual((second?.data.previous_attributes as { card?: { exp_year?: number } }).card?.exp_year, thisYear + 50);
    assert.equal((second?.data.object as Stripe.PaymentMethod).card?.exp_year, thisYear + 2);
  });

  test('Stripe\'s test ids attach a new card to a customer; a customer\'s card is retrieved through the customer', async () => {
    const customer = await stripe.customers.create({ email: 'test-ids@example.com' });
    const visa = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id });
    assert.match(visa.id, /^pm_(?!card_)/, 'a PaymentMethod of its own, as at Stripe');
    assert.deepEqual([visa.customer, visa.card?.brand, visa.card?.last4], [customer.id, 'visa', '4242']);
    const mastercard = await stripe.paymentMethods.attach('pm_card_mastercard', { customer: customer.id });
    assert.notEqual(mastercard.id, visa.id);
    const paid = await stripe.paymentIntents.create({ amount: 900, currency: 'usd', customer: customer.id, payment_method: visa.id, confirm: true, off_session: true });
    assert.equal(paid.status, 'succeeded');

    const fetched = await stripe.customers.retrievePaymentMethod(customer.id, mastercard.id);
    assert.deepEqual(fetched, await stripe.paymentMethods.retrieve(mastercard.id));
    const other = await stripe.customers.create({ email: 'other-test-ids@example.com' });
    await assert.rejects(stripe.customers.retrievePaymentMethod(other.id, visa.id),
      (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.code === 'resource_missing' && error.param === 'payment_method');
    await assert.rejects(stripe.customers.retrievePaymentMethod(customer.id, (await newCard()).id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    await assert.rejects(stripe.paymentMethods.attach('pm_card_visa', { customer: 'cus_missing' }), (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.param === 'customer');
    assert.deepEqual((await stripe.customers.listPaymentMethods(customer.id)).data.map((method) => method.id).sort(), [visa.id, mastercard.id].sort());
    assert.deepEqual((await stripe.paymentMethods.list({ customer: customer.id, type: 'us_bank_account' })).data, [], 'another type Stripe has lists nothing');
    assert.equal((await stripe.customers.listPaymentMethods(customer.id, { type: 'card' })).data.length, 2);
    const unknownType = await rawRequest(server, 'GET', `/v1/payment_methods?customer=${customer.id}&type=cheque`, { key: server.secretKey });
    assert.deepEqual([unknownType.status, (unknownType.json.error as { param?: string }).param], [400, 'type']);
  });

  test('a payment method not saved to a customer cannot be updated', async () => {
    const method = await newCard();
    const before = await counts();
    for (const body of ['metadata[a]=b', 'card[exp_month]=3', 'billing_details[name]=Jenny']) {
      const refused = await post(`/v1/payment_methods/${method.id}`, body);
      assert.deepEqual(errorOf(refused), { status: 400, type: 'invalid_request_error', code: 'payment_method_unexpected_state', param: undefined }, refused.body);
      assert.equal((refused.json.error as Record<string, unknown>).message, 'You must save this PaymentMethod to a customer before you can update it.');
    }
    assert.deepEqual(await counts(), before);
    assert.deepEqual(await stripe.paymentMethods.retrieve(method.id), method);
  });

  test('attach, detach and saving by SetupIntent emit payment_method.attached and .detached, delivered to endpoints that ask', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url: receiverUrl, enabled_events: ['payment_method.attached', 'payment_method.detached'] });
    const customer = await stripe.customers.create({ email: 'events@example.com' });
    const method = await newCard();
    const attached = await stripe.paymentMethods.attach(method.id, { customer: customer.id });
    const detached = await stripe.paymentMethods.detach(method.id);
    const setup = await stripe.setupIntents.create({ customer: customer.id, payment_method: 'pm_card_mastercard', confirm: true });
    const saved = setup.payment_method as string;

    const listed = async (type: string) => (await stripe.events.list({ type, limit: 100 })).data
      .filter((event) => [method.id, saved].includes((event.data.object as { id: string }).id));
    const attachedEvents = await listed('payment_method.attached');
    assert.deepEqual(attachedEvents.map((event) => event.data.object), [
      await stripe.paymentMethods.retrieve(saved),
      attached,
    ], 'newest first; each carries the payment method as the API renders it, saved to the customer');
    const detachedEvents = await listed('payment_method.detached');
    assert.deepEqual(detachedEvents.map((event) => event.data.object), [detached]);
    assert.equal((detachedEvents[0]?.data.object as Stripe.PaymentMethod).customer, null);
    const setupEvents = (await stripe.events.list({ type: 'setup_intent.succeeded' })).data.filter((event) => (event.data.object as { id: string }).id === setup.id);
    assert.equal(setupEvents.length, 1);

    await drain(server);
    const delivered = receiver.received.filter((item) => item.body.includes(method.id) || item.body.includes(saved));
    assert.deepEqual(delivered.map((item) => item.type).sort(), ['payment_method.attached', 'payment_method.attached', 'payment_method.detached']);
    assert.ok(receiver.received.every((item) => item.type.startsWith('payment_method.')), 'only the types the endpoint asked for');
    await stripe.webhookEndpoints.del(endpoint.id);
  });

  test('a payment with setup_future_usage saves its card to the customer with payment_method.attached; a card already saved, without a second', async () => {
    const customer = await stripe.customers.create({ email: 'future@example.com' });
    const method = await newCard();
    const paid = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', customer: customer.id, payment_method: method.id, setup_future_usage: 'off_session', confirm: true });
    assert.equal(paid.status, 'succeeded');
    const saved = await stripe.paymentMethods.retrieve(method.id);
    assert.equal(saved.customer, customer.id);
    const attachedEvents = async () => (await stripe.events.list({ type: 'payment_method.attached', limit: 100 })).data
      .filter((event) => (event.data.object as { id: string }).id === method.id);
    const events = await attachedEvents();
    assert.equal(events.length, 1);
    assert.deepEqual(events[0]?.data.object, saved, 'the payment method as the API renders it, saved to the customer');
    assert.deepEqual(events[0]?.data.previous_attributes, { customer: null });
    // Paid again with the card it already holds: nothing new is saved, so no second event.
    const again = await stripe.paymentIntents.create({ amount: 1600, currency: 'usd', customer: customer.id, payment_method: method.id, setup_future_usage: 'off_session', confirm: true });
    assert.equal(again.status, 'succeeded');
    assert.equal((await attachedEvents()).length, 1);
  });

  test('payment_method_options[card][setup_future_usage] keeps a card as the top-level field does, and none keeps it from being saved', async () => {
    const customer = await stripe.customers.create({ email: 'card-options@example.com' });
    const cardOptions = (intent: Stripe.PaymentIntent) => intent.payment_method_options?.card;
    const attachedEvents = async (id: string) => (await stripe.events.list({ type: 'payment_method.attached', limit: 100 })).data
      .filter((event) => (event.data.object as { id: string }).id === id);

    // Given for the card alone: the card is saved to the customer, with its event; the top-level field stays unset.
    const kept = await newCard();
    const paid = await stripe.paymentIntents.create({
      amount: 1500, currency: 'usd', customer: customer.id, payment_method: kept.id, confirm: true,
      payment_method_options: { card: { setup_future_usage: 'off_session' } },
    });
    assert.deepEqual([paid.status, paid.setup_future_usage, cardOptions(paid)?.setup_future_usage], ['succeeded', null, 'off_session']);
    assert.equal((await stripe.paymentMethods.retrieve(kept.id)).customer, customer.id);
    assert.equal((await attachedEvents(kept.id)).length, 1);
    assert.equal((await stripe.paymentIntents.create({ amount: 1100, currency: 'usd', customer: customer.id, payment_method: kept.id, confirm: true, off_session: true })).status, 'succeeded');

    // none withdraws the top-level consent for a card: paid, and nothing saved.
    const withdrawn = await newCard();
    const unsaved = await stripe.paymentIntents.create({
      amount: 1500, currency: 'usd', customer: customer.id, payment_method: withdrawn.id, confirm: true, setup_future_usage: 'off_session',
      payment_method_options: { card: { setup_future_usage: 'none' } },
    });
    assert.deepEqual([unsaved.status, unsaved.setup_future_usage, cardOptions(unsaved)?.setup_future_usage], ['succeeded', 'off_session', 'none']);
    assert.equal((await stripe.paymentMethods.retrieve(withdrawn.id)).customer, null, 'none: the card is not saved');
    assert.deepEqual(await attachedEvents(withdrawn.id), []);

    // Set by an update, unset with '' (the top-level field then decides again), and given with the confirmation.
    const updatedCard = await newCard();
    const pending = await stripe.paymentIntents.create({ amount: 1600, currency: 'usd', customer: customer.id, payment_method: updatedCard.id, setup_future_usage: 'on_session' });
    const refusing = await stripe.paymentIntents.update(pending.id, { payment_method_options: { card: { setup_future_usage: 'none' } } });
    assert.equal(cardOptions(refusing)?.setup_future_usage, 'none');
    const unset = await stripe.paymentIntents.update(pending.id, { payment_method_options: { card: { setup_future_usage: '' } } });
    assert.equal(Object.hasOwn(cardOptions(unset) ?? {}, 'setup_future_usage'), false, "'' unsets it");
    const confirmedCard = await newCard();
    const confirming = await stripe.paymentIntents.create({ amount: 1700, currency: 'usd', customer: customer.id, payment_method: confirmedCard.id });
    const confirmed = await stripe.paymentIntents.confirm(confirming.id, { payment_method_options: { card: { setup_future_usage: 'on_session' } } });
    assert.deepEqual([confirmed.status, cardOptions(confirmed)?.setup_future_usage], ['succeeded', 'on_session']);
    assert.equal((await stripe.paymentMethods.retrieve(confirmedCard.id)).customer, customer.id, 'given at confirmation: saved');
    assert.equal((await stripe.paymentIntents.confirm(pending.id)).status, 'succeeded');
    assert.equal((await stripe.paymentMethods.retrieve(updatedCard.id)).customer, customer.id, 'unset again: the top-level on_session saved it');

    // Like the top-level field, it changes only before confirmation: the consent is not made up or withdrawn after.
    await assert.rejects(stripe.paymentIntents.update(unsaved.id, { payment_method_options: { card: { setup_future_usage: 'off_session' } }, metadata: { note: 'x' } }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'payment_intent_unexpected_state'
        && error.param === 'payment_method_options[card][setup_future_usage]');
    const unchanged = await stripe.paymentIntents.retrieve(unsaved.id);
    assert.deepEqual([cardOptions(unchanged)?.setup_future_usage, unchanged.metadata], ['none', {}], 'the refused update changed nothing');

    // A guest's card: the card's own consent makes it savable after the payment; none does not, whatever the top level says.
    const keeper = await stripe.customers.create({ email: 'card-options-guest@example.com' });
    const guest = await newCard();
    await stripe.paymentIntents.create({ amount: 1800, currency: 'usd', payment_method: guest.id, confirm: true, payment_method_options: { card: { setup_future_usage: 'off_session' } } });
    assert.equal((await stripe.paymentMethods.attach(guest.id, { customer: keeper.id })).customer, keeper.id);
    const withdrawnGuest = await newCard();
    const guestWithdrawn = await stripe.paymentIntents.create({
      amount: 1800, currency: 'usd', payment_method: withdrawnGuest.id, confirm: true, setup_future_usage: 'off_session', payment_method_options: { card: { setup_future_usage: 'none' } },
    });
    const before = await counts();
    await assert.rejects(stripe.paymentMethods.attach(withdrawnGuest.id, { customer: keeper.id }), (error: Stripe.errors.StripeError) =>
      error.code === 'payment_method_unexpected_state' && error.message.includes(`PaymentIntent ${guestWithdrawn.id} with payment_method_options[card][setup_future_usage]=none, so it cannot be saved`));
    await assert.rejects(stripe.setupIntents.create({ customer: keeper.id, payment_method: withdrawnGuest.id, confirm: true }),
      (error: Stripe.errors.StripeError) => error.code === 'payment_method_unexpected_state');
    const { idempotency_keys: _a, ...afterRefusal } = await counts();
    const { idempotency_keys: _b, ...expected } = before;
    assert.deepEqual(afterRefusal, expected, 'the refused saves changed nothing');
    assert.equal((await stripe.paymentMethods.retrieve(withdrawnGuest.id)).customer, null);
  });

  test('a card given without a customer pays for one PaymentIntent only: retried there, refused on another, even at once; saved, it pays again', async () => {
    const refusedAsUsed = (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'payment_method_unexpected_state'
      && error.param === 'payment_method' && /was used with another PaymentIntent without a customer/.test(error.message);
    const declining = await publishable.paymentMethods.create({ type: 'card', card: { number: '4000000000000002', exp_month: 8, exp_year: thisYear + 3, cvc: '123' } });
    const first = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: declining.id });
    await assert.rejects(stripe.paymentIntents.confirm(first.id), (error: Stripe.errors.StripeError) => error.code === 'card_declined');
    await assert.rejects(stripe.paymentIntents.confirm(first.id, { payment_method: declining.id }),
      (error: Stripe.errors.StripeError) => error.code === 'card_declined', 'tried again on its own PaymentIntent: declined again, not refused');

    const card = await newCard();
    const paid = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: card.id, confirm: true });
    assert.equal(paid.status, 'succeeded');
    const before = await counts();
    const other = await stripe.paymentIntents.create({ amount: 900, currency: 'usd' });
    const afterCreate = await counts();
    await assert.rejects(stripe.paymentIntents.confirm(other.id, { payment_method: card.id }), refusedAsUsed);
    await assert.rejects(stripe.paymentIntents.create({ amount: 900, currency: 'usd', payment_method: card.id, confirm: true, off_session: true }), refusedAsUsed);
    const { idempotency_keys: _a, ...refusedCounts } = await counts();
    const { idempotency_keys: _b, ...expectedCounts } = afterCreate;
    assert.deepEqual(refusedCounts, expectedCounts, 'no PaymentIntent, charge, event or transfer, no card saved');
    assert.equal((await stripe.paymentIntents.retrieve(other.id)).status, 'requires_payment_method', 'the refused confirmation changed nothing');
    assert.equal(afterCreate.payment_intents, before.payment_intents + 1);
    // Nor can the used card be saved to a customer afterwards, to be charged at will.
    const keeper = await stripe.customers.create({ email: 'keeper@example.com' });
    const cannotSave = (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'payment_method_unexpected_state'
      && /without setup_future_usage, so it cannot be saved to a customer now/.test(error.message);
    await assert.rejects(stripe.paymentMethods.attach(card.id, { customer: keeper.id }), cannotSave);
    await assert.rejects(stripe.setupIntents.create({ customer: keeper.id, payment_method: card.id, confirm: true }), cannotSave);
    const pendingSetup = await stripe.setupIntents.create({ customer: keeper.id });
    await assert.rejects(stripe.setupIntents.confirm(pendingSetup.id, { payment_method: card.id }), cannotSave);
    assert.equal((await stripe.paymentMethods.retrieve(card.id)).customer, null, 'still no one\'s');
    await assert.rejects(stripe.paymentIntents.create({ amount: 900, currency: 'usd', customer: keeper.id, payment_method: card.id, confirm: true, off_session: true }), refusedAsUsed);

    // Two PaymentIntents confirming one new card at the same moment: exactly one has it.
    const contested = await newCard();
    const intents = await Promise.all([0, 1, 2, 3].map(() => stripe.paymentIntents.create({ amount: 700, currency: 'usd' })));
    const results = await Promise.allSettled(intents.map((intent) => stripe.paymentIntents.confirm(intent.id, { payment_method: contested.id })));
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1, 'one PaymentIntent paid with the card');
    for (const result of results) if (result.status === 'rejected') assert.ok(refusedAsUsed(result.reason as Stripe.errors.StripeError), String(result.reason));

    // Saved to a customer by its first payment, the card is the customer's to pay with again.
    const customer = await stripe.customers.create({ email: 'single-use@example.com' });
    const saved = await newCard();
    await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: customer.id, payment_method: saved.id, setup_future_usage: 'off_session', confirm: true });
    const later = await stripe.paymentIntents.create({ amount: 1100, currency: 'usd', customer: customer.id, payment_method: saved.id, confirm: true, off_session: true });
    assert.equal(later.status, 'succeeded');
    // Detached, it belongs to no customer again: it pays for nothing more.
    await stripe.paymentMethods.detach(saved.id);
    await assert.rejects(stripe.paymentIntents.create({ amount: 1200, currency: 'usd', payment_method: saved.id, confirm: true }), refusedAsDetached);
  });

  test('a guest\'s card paid with setup_future_usage can be saved to a customer after the payment, once authorized, and then pays off session', async () => {
    const keeper = await stripe.customers.create({ email: 'after-checkout@example.com' });
    // Declined, or never authorized: the consent was given, but no payment stands on it.
    const declining = await publishable.paymentMethods.create({ type: 'card', card: { number: '4000000000000002', exp_month: 8, exp_year: thisYear + 3, cvc: '123' } });
    const declined = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: declining.id, setup_future_usage: 'off_session' });
    await assert.rejects(stripe.paymentIntents.confirm(declined.id), (error: Stripe.errors.StripeError) => error.code === 'card_declined');
    const before = await counts();
    await assert.rejects(stripe.paymentMethods.attach(declining.id, { customer: keeper.id }), (error: Stripe.errors.StripeError) =>
      error.statusCode === 400 && error.code === 'payment_method_unexpected_state' && error.message.includes(`PaymentIntent ${declined.id} with setup_future_usage, but that payment is requires_payment_method`));
    const { idempotency_keys: _a, ...afterRefusal } = await counts();
    const { idempotency_keys: _b, ...expected } = before;
    assert.deepEqual(afterRefusal, expected, 'the refused attach changed nothing');

    // Declined there, then replaced by a card that paid: the declined one was not authorized, and is not savable.
    const replaced = await publishable.paymentMethods.create({ type: 'card', card: { number: '4000000000000002', exp_month: 8, exp_year: thisYear + 3, cvc: '123' } });
    const retried = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: replaced.id, setup_future_usage: 'off_session' });
    await assert.rejects(stripe.paymentIntents.confirm(retried.id), (error: Stripe.errors.StripeError) => error.code === 'card_declined');
    assert.equal((await stripe.paymentIntents.confirm(retried.id, { payment_method: (await newCard()).id })).status, 'succeeded');
    await assert.rejects(stripe.paymentMethods.attach(replaced.id, { customer: keeper.id }), (error: Stripe.errors.StripeError) =>
      error.code === 'payment_method_unexpected_state' && error.message.includes('that payment was made with another card'));
    // Nor can the consent be given after the payment: setup_future_usage changes only before confirmation.
    const guest = await newCard();
    const unasked = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: guest.id, capture_method: 'manual', confirm: true });
    await assert.rejects(stripe.paymentIntents.update(unasked.id, { setup_future_usage: 'off_session', metadata: { note: 'x' } }), (error: Stripe.errors.StripeError) =>
      error.code === 'payment_intent_unexpected_state' && error.param === 'setup_future_usage');
    const unchanged = await stripe.paymentIntents.retrieve(unasked.id);
    assert.deepEqual([unchanged.setup_future_usage, unchanged.metadata], [null, {}], 'the refused update changed nothing');
    await assert.rejects(stripe.paymentMethods.attach(guest.id, { customer: keeper.id }), (error: Stripe.errors.StripeError) => error.code === 'payment_method_unexpected_state');

    const card = await newCard();
    const paid = await stripe.paymentIntents.create({ amount: 2500, currency: 'usd', payment_method: card.id, setup_future_usage: 'off_session', confirm: true });
    assert.equal(paid.status, 'succeeded');
    assert.equal((await stripe.paymentMethods.retrieve(card.id)).customer, null, 'no customer was given, so nothing was saved yet');
    // Until it is saved, the card still pays for its own PaymentIntent only.
    await assert.rejects(stripe.paymentIntents.create({ amount: 900, currency: 'usd', payment_method: card.id, confirm: true }),
      (error: Stripe.errors.StripeError) => /was used with another PaymentIntent without a customer/.test(error.message));
    const attached = await stripe.paymentMethods.attach(card.id, { customer: keeper.id });
    assert.equal(attached.customer, keeper.id);
    const events = await stripe.events.list({ type: 'payment_method.attached' });
    assert.ok(events.data.some((event) => (event.data.object as Stripe.PaymentMethod).id === card.id), 'payment_method.attached sent');
    const later = await stripe.paymentIntents.create({ amount: 1100, currency: 'usd', customer: keeper.id, payment_method: card.id, confirm: true, off_session: true });
    assert.equal(later.status, 'succeeded');

    // An authorization not yet captured stands too; a manual one canceled before capture does not.
    const held = await newCard();
    const authorized = await stripe.paymentIntents.create({ amount: 1300, currency: 'usd', payment_method: held.id, setup_future_usage: 'on_session', capture_method: 'manual', confirm: true });
    assert.equal(authorized.status, 'requires_capture');
    const released = await newCard();
    const canceled = await stripe.paymentIntents.create({ amount: 1300, currency: 'usd', payment_method: released.id, setup_future_usage: 'on_session', capture_method: 'manual', confirm: true });
    await stripe.paymentIntents.cancel(canceled.id);
    const setup = await stripe.setupIntents.create({ customer: keeper.id, payment_method: held.id, confirm: true });
    assert.equal(setup.status, 'succeeded');
    assert.equal((await stripe.paymentMethods.retrieve(held.id)).customer, keeper.id);
    await assert.rejects(stripe.paymentMethods.attach(released.id, { customer: keeper.id }), (error: Stripe.errors.StripeError) =>
      error.code === 'payment_method_unexpected_state' && error.message.includes('but that payment is canceled'));
  });

  const refusedAsDetached = (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'payment_method_unexpected_state'
    && /was detached from its customer, so it may not be used again/.test(error.message);

  test('a card detached before it was ever charged, or whose customer was deleted, pays for nothing and is not saved again', async () => {
    const customer = await stripe.customers.create({ email: 'detached@example.com' });
    const neverCharged = await stripe.paymentMethods.attach((await newCard()).id, { customer: customer.id });
    await stripe.paymentMethods.detach(neverCharged.id);
    const deleted = await stripe.customers.create({ email: 'deleted@example.com' });
    const orphan = await stripe.paymentMethods.attach((await newCard()).id, { customer: deleted.id });
    await stripe.customers.del(deleted.id);
    const keeper = await stripe.customers.create({ email: 'keeper-2@example.com' });
    const waiting = await stripe.paymentIntents.create({ amount: 800, currency: 'usd' });
    const before = await counts();
    for (const method of [neverCharged.id, orphan.id]) {
      const refusals: Array<[string, () => Promise<unknown>]> = [
        ['a new payment', () => stripe.paymentIntents.create({ amount: 800, currency: 'usd', payment_method: method, confirm: true })],
        ['a waiting PaymentIntent', () => stripe.paymentIntents.confirm(waiting.id, { payment_method: method })],
        ['attach', () => stripe.paymentMethods.attach(method, { customer: keeper.id })],
        ['a SetupIntent', () => stripe.setupIntents.create({ customer: keeper.id, payment_method: method, confirm: true })],
      ];
      for (const [what, call] of refusals) await assert.rejects(call(), refusedAsDetached, `${method}: ${what}`);
      assert.equal((await stripe.paymentMethods.retrieve(method)).customer, null);
    }
    const { idempotency_keys: _a, ...after } = await counts();
    const { idempotency_keys: _b, ...expected } = before;
    assert.deepEqual(after, expected, 'no PaymentIntent, SetupIntent, charge, event or transfer');
    const still = await stripe.paymentIntents.retrieve(waiting.id);
    assert.deepEqual([still.status, still.payment_method], ['requires_payment_method', null]);
    assert.deepEqual((await stripe.customers.listPaymentMethods(keeper.id)).data, []);
  });

  test('a charge shows its customer and the billing details the card was given with, as they were then', async () => {
    const customer = await stripe.customers.create({ email: 'billed@example.com' });
    const billing = { name: 'Ada Lovelace', email: 'ada@example.com', phone: '+44 20 7946 0000', address: { line1: '12 St James\'s Sq', city: 'London', postal_code: 'SW1Y 4LB', country: 'GB' } };
    const method = await publishable.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 8, exp_year: thisYear + 3, cvc: '123' }, billing_details: billing });
    const paid = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', customer: customer.id, payment_method: method.id, setup_future_usage: 'off_session', confirm: true });
    const charge = await stripe.charges.retrieve(paid.latest_charge as string);
    assert.equal(charge.customer, customer.id);
    assert.deepEqual(charge.billing_details, { ...billing, address: { state: null, line2: null, ...billing.address }, tax_id: null });
    await stripe.paymentMethods.update(method.id, { billing_details: { name: 'A. Lovelace' } });
    assert.equal((await stripe.charges.retrieve(charge.id)).billing_details.name, 'Ada Lovelace', 'a past charge keeps what the card was given with');
    const guest = await stripe.paymentIntents.create({ amount: 500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const guestCharge = await stripe.charges.retrieve(guest.latest_charge as string);
    assert.deepEqual([guestCharge.customer, guestCharge.billing_details.name], [null, null], 'a guest\'s charge has none');
    assert.deepEqual((await stripe.charges.list({ customer: customer.id })).data.map((item) => item.customer), [customer.id]);

    // A PaymentIntent whose customer changes between attempts: each charge stays listed under the customer it was for.
    const first = await stripe.customers.create({ email: 'first@example.com' });
    const second = await stripe.customers.create({ email: 'second@example.com' });
    const moved = await stripe.paymentIntents.create({ amount: 900, currency: 'usd', customer: first.id });
    await assert.rejects(stripe.paymentIntents.confirm(moved.id, { payment_method: 'pm_card_chargeDeclined' }), (error: Stripe.errors.StripeError) => error.code === 'card_declined');
    await stripe.paymentIntents.update(moved.id, { customer: second.id });
    const paidByMoved = await stripe.paymentIntents.confirm(moved.id, { payment_method: 'pm_card_visa' });
    const listedFor = async (id: string) => (await stripe.charges.list({ customer: id })).data.map((item) => [item.customer, item.status]);
    assert.deepEqual(await listedFor(first.id), [[first.id, 'failed']]);
    assert.deepEqual(await listedFor(second.id), [[second.id, 'succeeded']]);
    assert.equal((await stripe.charges.list({ customer: second.id })).data[0]?.id, paidByMoved.latest_charge);
  });

  test('webhook endpoints may ask for *, the types Coffer sends and Stripe\'s other types, nothing else', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url: receiverUrl, enabled_events: ['payment_intent.succeeded'] });
    const before = await counts();
    const unknownOnCreate = await post('/v1/webhook_endpoints', `url=${encodeURIComponent(receiverUrl)}&enabled_events[]=foo.bar`);
    assert.deepEqual(errorOf(unknownOnCreate), { status: 400, type: 'invalid_request_error', code: 'parameter_invalid', param: 'enabled_events[0]' }, unknownOnCreate.body);
    const unknownOnUpdate = await post(`/v1/webhook_endpoints/${endpoint.id}`, 'enabled_events[]=*&enabled_events[]=payment_intent.sucseeded');
    assert.deepEqual(errorOf(unknownOnUpdate), { status: 400, type: 'invalid_request_error', code: 'parameter_invalid', param: 'enabled_events[1]' }, unknownOnUpdate.body);
    assert.match(String((unknownOnUpdate.json.error as Record<string, unknown>).message), /payment_intent\.sucseeded is not one of Stripe's event types/);
    assert.deepEqual(await counts(), before);
    assert.deepEqual((await stripe.webhookEndpoints.retrieve(endpoint.id)).enabled_events, ['payment_intent.succeeded']);

    // A plugin's automatic setup asks for types Coffer never sends besides those it does: taken as given, and the
    // endpoint receives only what Coffer sends.
    const asked = ['charge.succeeded', 'invoice.paid', 'source.chargeable', 'payment_intent.processing'] as Stripe.WebhookEndpointCreateParams.EnabledEvent[];
    const plugin = await stripe.webhookEndpoints.create({ url: receiverUrl, enabled_events: asked });
    assert.deepEqual(plugin.enabled_events, asked);
    await stripe.webhookEndpoints.update(endpoint.id, { disabled: true });
    const paid = await stripe.paymentIntents.create({ amount: 1234, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    await drain(server);
    const delivered = await server.database.db.selectFrom('webhook_deliveries').innerJoin('events', 'events.id', 'webhook_deliveries.event_id')
      .select(['events.type', 'events.object_id']).where('webhook_deliveries.endpoint_id', '=', plugin.id).execute();
    assert.deepEqual(delivered.map((row) => row.type), ['charge.succeeded'], 'only the type Coffer sends was delivered');
    assert.equal(delivered[0]?.object_id, paid.latest_charge);
    await stripe.webhookEndpoints.del(plugin.id);

    const everything = await stripe.webhookEndpoints.update(endpoint.id, { enabled_events: [...emittedEventTypes] as Stripe.WebhookEndpointUpdateParams.EnabledEvent[] });
    assert.equal(everything.enabled_events.length, emittedEventTypes.size);
    assert.deepEqual((await stripe.webhookEndpoints.update(endpoint.id, { enabled_events: ['*'] })).enabled_events, ['*']);
    await stripe.webhookEndpoints.del(endpoint.id);
  });

  test('the list of event types an endpoint may ask for is exactly the types the code emits', () => {
    assert.deepEqual([...eventTypesInSource()].sort(), [...emittedEventTypes].sort());
  });

  test('Stripe\'s event types are those the official SDK declares, and every type Coffer sends is one of them', () => {
    const declared = fs.readFileSync(path.resolve(import.meta.dirname, '../../node_modules/stripe/esm/resources/WebhookEndpoints.d.ts'), 'utf8');
    const union = /type EnabledEvent = ([^;]*);/.exec(declared)?.[1];
    assert.ok(union !== undefined, 'the SDK declares WebhookEndpointCreateParams.EnabledEvent');
    const sdkTypes = [...union.matchAll(/'([^']+)'/g)].map((match) => match[1]).filter((type) => type !== '*');
    assert.ok(sdkTypes.length > 200);
    assert.deepEqual([...stripeEventTypes].sort(), sdkTypes.sort(), 'src/webhooks/stripe-event-types.ts matches the SDK');
    assert.deepEqual([...emittedEventTypes].filter((type) => !stripeEventTypes.has(type)), []);
  });
});

// Goal: a SetupIntent whose verification got no answer from the acquirer is never stuck in `processing`: the
// merchant's retry with the same Idempotency-Key finishes it, and without a retry the recovery job does; the
// acquirer is asked under the same key each time, so the card is verified once.
describe('a SetupIntent whose verification got no answer', () => {
  let server: TestServer;
  const clock = new TestClock();

  before(async () => {
    // A deadline a loaded machine's ordinary answer meets; the slow answers below are well past it.
    server = await startTestServer({ clock, providerTimeoutMs: 1_000 });
  });
  after(async () => {
    await server.close();
  });

  const confirm = (id: string, key: string) => rawRequest(server, 'POST', `/v1/setup_intents/${id}/confirm`, { key: server.secretKey, body: '', headers: { 'idempotency-key': key } });
  const verifications = async (id: string) => (await server.database.db.selectFrom('sandbox_card_payments').select('id').where('merchant_reference', '=', id).execute()).length;

  test('the retry with the same Idempotency-Key finishes it; the card is verified once', async () => {
    const customer = await server.stripe.customers.create({ email: 'slow@example.com' });
    const intent = await server.stripe.setupIntents.create({ customer: customer.id, payment_method: 'pm_card_visa' });
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(2_500);
    const first = await confirm(intent.id, 'slow-setup');
    assert.equal(first.status, 503, first.body);
    assert.equal((await server.stripe.setupIntents.retrieve(intent.id)).status, 'processing');
    await new Promise((resolve) => setTimeout(resolve, 2_700)); // the acquirer's late answer lands
    const retry = await confirm(intent.id, 'slow-setup');
    assert.equal(retry.status, 200, retry.body);
    assert.equal(retry.json.status, 'succeeded');
    assert.equal(await verifications(intent.id), 1, 'asked again under the same key: one verification');
    const method = await server.stripe.paymentMethods.retrieve(intent.payment_method as string);
    assert.equal(method.customer, customer.id);
  });

  test('created with confirm=true: the retry with the same Idempotency-Key takes up the same SetupIntent, never a second one', async () => {
    const customer = await server.stripe.customers.create({ email: 'slow-create@example.com' });
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(2_500);
    const create = () => rawRequest(server, 'POST', '/v1/setup_intents', {
      key: server.secretKey, body: `customer=${customer.id}&payment_method=pm_card_visa&confirm=true`, headers: { 'idempotency-key': 'slow-create' },
    });
    assert.equal((await create()).status, 503);
    await new Promise((resolve) => setTimeout(resolve, 2_700));
    const retry = await create();
    assert.equal(retry.status, 200, retry.body);
    assert.equal(retry.json.status, 'succeeded');
    const intents = await server.stripe.setupIntents.list({ customer: customer.id });
    assert.deepEqual(intents.data.map((intent) => intent.id), [retry.json.id], 'one SetupIntent');
    assert.equal(await verifications(String(retry.json.id)), 1, 'the card was verified once');
  });

  test('without a retry, the recovery job finishes it', async () => {
    const intent = await server.stripe.setupIntents.create({ payment_method: 'pm_card_visa' });
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(2_500);
    assert.equal((await confirm(intent.id, 'slow-setup-2')).status, 503);
    await new Promise((resolve) => setTimeout(resolve, 2_700));
    assert.equal(await recoverSetupVerifications(server.coffer.services), 0, 'not before the in-flight grace');
    clock.offsetMs += limits.inFlightRecoveryAfterMs + 1_000;
    assert.equal(await recoverSetupVerifications(server.coffer.services), 1);
    const done = await server.stripe.setupIntents.retrieve(intent.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(await verifications(intent.id), 1);
    assert.equal(await recoverSetupVerifications(server.coffer.services), 0, 'nothing left in processing');
  });
});
