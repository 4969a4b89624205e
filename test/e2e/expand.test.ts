import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { createApiKey } from '../../src/identity/merchants.ts';
import { runJobsOnce } from '../../src/jobs/job-runner.ts';
import { TestClock } from '../support/clock.ts';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: `expand[]` works as Stripe's does on the fields an integration reaches for (a charge's customer,
// PaymentIntent and refunds; a refund's or dispute's charge; a PaymentIntent's, PaymentMethod's or SetupIntent's
// customer; a customer's default card): each expanded object is exactly what its own endpoint returns, lists
// expand every item, a null field stays null, and a restricted key needs read permission on what it expands.
describe('expanding related objects', () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ clock });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  /** The object as its own endpoint returns it, without the SDK's lastResponse. */
  const plain = <T extends object>(object: T): T => {
    const { lastResponse: _ignored, ...rest } = object as T & { lastResponse?: unknown };
    return rest as T;
  };

  test('a charge expands its customer, PaymentIntent, refunds and balance transaction; a refund its charge and PaymentIntent', async () => {
    const customer = await stripe.customers.create({ email: 'expand@example.com' });
    const paid = await stripe.paymentIntents.create({ amount: 3000, currency: 'usd', customer: customer.id, payment_method: 'pm_card_visa', confirm: true });
    const chargeId = paid.latest_charge as string;
    const first = await stripe.refunds.create({ payment_intent: paid.id, amount: 500 });
    const second = await stripe.refunds.create({ payment_intent: paid.id, amount: 700 });

    const charge = await stripe.charges.retrieve(chargeId, { expand: ['customer', 'payment_intent', 'refunds', 'balance_transaction'] });
    assert.deepEqual(charge.customer, plain(await stripe.customers.retrieve(customer.id)));
    assert.deepEqual(charge.payment_intent, plain(await stripe.paymentIntents.retrieve(paid.id)));
    assert.equal((charge.balance_transaction as Stripe.BalanceTransaction).object, 'balance_transaction');
    assert.equal((charge.balance_transaction as Stripe.BalanceTransaction).source, chargeId);
    const refunds = charge.refunds as Stripe.ApiList<Stripe.Refund>;
    assert.deepEqual([refunds.object, refunds.has_more, refunds.url], ['list', false, `/v1/charges/${chargeId}/refunds`]);
    assert.deepEqual(refunds.data, [plain(await stripe.refunds.retrieve(second.id)), plain(await stripe.refunds.retrieve(first.id))], 'newest first');
    assert.equal('refunds' in plain(await stripe.charges.retrieve(chargeId)), false, 'not there unless expanded');

    const refund = await stripe.refunds.retrieve(first.id, { expand: ['charge', 'payment_intent'] });
    assert.deepEqual(refund.charge, plain(await stripe.charges.retrieve(chargeId)));
    assert.equal((refund.payment_intent as Stripe.PaymentIntent).id, paid.id);

    const listed = await stripe.charges.list({ payment_intent: paid.id, expand: ['data.customer', 'data.payment_intent'] });
    assert.equal((listed.data[0]?.customer as Stripe.Customer).email, 'expand@example.com');
    assert.equal((listed.data[0]?.payment_intent as Stripe.PaymentIntent).id, paid.id);
    const refundsListed = await stripe.refunds.list({ payment_intent: paid.id, expand: ['data.charge'] });
    assert.deepEqual(refundsListed.data.map((item) => (item.charge as Stripe.Charge).id), [chargeId, chargeId]);

    // Ten refunds at most, newest first; over a list, each charge gets its own, from one query.
    const many = await stripe.paymentIntents.create({ amount: 1100, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const manyRefunds = [];
    for (let i = 0; i < 11; i += 1) manyRefunds.push((await stripe.refunds.create({ payment_intent: many.id, amount: 100 })).id);
    const both = await stripe.charges.list({ limit: 2, expand: ['data.refunds'] });
    assert.deepEqual(both.data.map((charge) => charge.id), [many.latest_charge, chargeId]);
    const [manyListed, fewListed] = both.data.map((charge) => charge.refunds as Stripe.ApiList<Stripe.Refund>);
    assert.deepEqual([manyListed?.has_more, manyListed?.data.map((refund) => refund.id)], [true, manyRefunds.slice(1).reverse()]);
    assert.deepEqual([fewListed?.has_more, fewListed?.data.map((refund) => refund.id)], [false, [second.id, first.id]]);

    // A guest's charge has no customer: null stays null.
    const guest = await stripe.paymentIntents.create({ amount: 900, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    assert.equal((await stripe.charges.retrieve(guest.latest_charge as string, { expand: ['customer'] })).customer, null);
  });

  test('a PaymentIntent, PaymentMethod and SetupIntent expand their customer; a customer its default card; a deleted customer shows as deleted', async () => {
    const customer = await stripe.customers.create({ email: 'owner@example.com', name: 'Owner' });
    const setup = await stripe.setupIntents.create({ customer: customer.id, payment_method: 'pm_card_visa', confirm: true });
    const methodId = setup.payment_method as string;
    await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: methodId } });
    const intent = await stripe.paymentIntents.create({ amount: 1100, currency: 'eur', customer: customer.id });

    const ownCustomer = plain(await stripe.customers.retrieve(customer.id));
    assert.deepEqual((await stripe.paymentIntents.retrieve(intent.id, { expand: ['customer'] })).customer, ownCustomer);
    const intents = await stripe.paymentIntents.list({ customer: customer.id, expand: ['data.customer', 'data.latest_charge'] });
    assert.deepEqual(intents.data.map((item) => (item.customer as Stripe.Customer).id), [customer.id]);
    assert.deepEqual((await stripe.paymentMethods.retrieve(methodId, { expand: ['customer'] })).customer, ownCustomer);
    assert.deepEqual((await stripe.customers.listPaymentMethods(customer.id, { expand: ['data.customer'] })).data.map((item) => (item.customer as Stripe.Customer).email), ['owner@example.com']);
    const setupSeen = await stripe.setupIntents.retrieve(setup.id, { expand: ['customer', 'payment_method'] });
    assert.deepEqual(setupSeen.customer, ownCustomer);
    assert.deepEqual(setupSeen.payment_method, plain(await stripe.paymentMethods.retrieve(methodId)));
    const withCard = await stripe.customers.retrieve(customer.id, { expand: ['invoice_settings.default_payment_method'] }) as Stripe.Customer;
    assert.equal((withCard.invoice_settings.default_payment_method as Stripe.PaymentMethod).id, methodId);
    const searched = await stripe.customers.search({ query: "email:'owner@example.com'", expand: ['data.invoice_settings.default_payment_method'] });
    assert.equal((searched.data[0]?.invoice_settings.default_payment_method as Stripe.PaymentMethod).card?.last4, '4242');

    await stripe.customers.del(customer.id);
    assert.deepEqual((await stripe.paymentIntents.retrieve(intent.id, { expand: ['customer'] })).customer, { id: customer.id, object: 'customer', deleted: true });
  });

  test('a dispute expands its charge and PaymentIntent', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 2500, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
    const [dispute] = (await stripe.disputes.list({ payment_intent: intent.id, expand: ['data.charge'] })).data;
    assert.ok(dispute !== undefined);
    assert.equal((dispute.charge as Stripe.Charge).id, intent.latest_charge);
    const seen = await stripe.disputes.retrieve(dispute.id, { expand: ['charge', 'payment_intent'] });
    assert.deepEqual(seen.charge, plain(await stripe.charges.retrieve(intent.latest_charge as string)));
    assert.equal((seen.payment_intent as Stripe.PaymentIntent).status, 'succeeded');
  });

  test('a change expands as a read does: refunds, customers, cards, disputes; a key that may not read what it asks changes nothing', async () => {
    const customer = await stripe.customers.create({ email: 'changes@example.com', expand: ['invoice_settings.default_payment_method'] });
    assert.equal(customer.invoice_settings.default_payment_method, null, 'null stays null');
    const given = await stripeClient(server, server.publishableKey).paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2031, cvc: '123' } });
    const card = await stripe.paymentMethods.attach(given.id, { customer: customer.id, expand: ['customer'] });
    assert.deepEqual(card.customer, plain(await stripe.customers.retrieve(customer.id)));
    const updated = await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: card.id }, expand: ['invoice_settings.default_payment_method'] });
    assert.deepEqual(updated.invoice_settings.default_payment_method, plain(await stripe.paymentMethods.retrieve(card.id)));
    const renamed = await stripe.paymentMethods.update(card.id, { metadata: { label: 'work' }, expand: ['customer'] });
    assert.equal((renamed.customer as Stripe.Customer).id, customer.id);

    // A refund's response shows its charge as the refund left it, and its PaymentIntent.
    const paid = await stripe.paymentIntents.create({ amount: 4000, currency: 'usd', customer: customer.id, payment_method: card.id, confirm: true });
    const refund = await stripe.refunds.create({ payment_intent: paid.id, amount: 1500, expand: ['charge', 'payment_intent'] });
    assert.equal((refund.charge as Stripe.Charge).amount_refunded, 1500);
    assert.deepEqual(refund.charge, plain(await stripe.charges.retrieve(paid.latest_charge as string)));
    assert.equal((refund.payment_intent as Stripe.PaymentIntent).id, paid.id);
    const noted = await stripe.refunds.update(refund.id, { metadata: { ticket: 'T-1' }, expand: ['payment_intent'] });
    assert.deepEqual(noted.payment_intent, plain(await stripe.paymentIntents.retrieve(paid.id)));
    const detached = await stripe.paymentMethods.detach(card.id, { expand: ['customer'] });
    assert.equal(detached.customer, null);

    // A dispute's change shows its charge and PaymentIntent.
    const disputed = await stripe.paymentIntents.create({ amount: 2200, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
    const [dispute] = (await stripe.disputes.list({ payment_intent: disputed.id })).data;
    assert.ok(dispute !== undefined);
    const evidence = await stripe.disputes.update(dispute.id, { metadata: { case: 'C-1' }, expand: ['charge'] });
    assert.deepEqual(evidence.charge, plain(await stripe.charges.retrieve(disputed.latest_charge as string)));
    const closed = await stripe.disputes.close(dispute.id, { expand: ['payment_intent'] });
    assert.equal((closed.payment_intent as Stripe.PaymentIntent).id, disputed.id);

    // A PaymentIntent made or confirmed with its customer expanded shows it as its own endpoint does.
    const made = await stripe.paymentIntents.create({ amount: 1200, currency: 'usd', customer: customer.id, expand: ['customer'] });
    assert.deepEqual(made.customer, plain(await stripe.customers.retrieve(customer.id)));
    const declinedAnswer = await rawRequest(server, 'POST', `/v1/payment_intents/${made.id}/confirm`,
      { key: server.secretKey, body: 'payment_method=pm_card_chargeDeclined&expand[]=customer&expand[]=latest_charge.balance_transaction' });
    assert.equal(declinedAnswer.status, 402, 'a decline is still a decline');
    const declinedIntent = (declinedAnswer.json.error as { payment_intent: Record<string, unknown> }).payment_intent;
    assert.deepEqual([(declinedIntent.customer as Record<string, unknown>).id, (declinedIntent.latest_charge as Record<string, unknown>).balance_transaction], [customer.id, null]);

    // Refused before anything is changed: a path that cannot be expanded, and one the key may not read.
    const refundsBefore = (await stripe.refunds.list({ payment_intent: paid.id })).data.length;
    const unknownPath = await rawRequest(server, 'POST', '/v1/refunds', { key: server.secretKey, body: `payment_intent=${paid.id}&amount=100&expand[]=balance_transaction.source` });
    assert.equal(unknownPath.status, 400, unknownPath.body);
    assert.match((unknownPath.json.error as { message: string }).message, /what can be expanded here: balance_transaction, charge, payment_intent/);
    const refundsOnly = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { refunds: 'write' } })).key.reveal());
    await assert.rejects(refundsOnly.refunds.create({ payment_intent: paid.id, amount: 100, expand: ['charge'] }), (error: Stripe.errors.StripeError) => error.statusCode === 403);
    assert.equal((await stripe.refunds.list({ payment_intent: paid.id })).data.length, refundsBefore, 'no refund was made');
    const customersOnly = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { customers: 'write' } })).key.reveal());
    await assert.rejects(customersOnly.customers.update(customer.id, { name: 'Changed', expand: ['invoice_settings.default_payment_method'] }),
      (error: Stripe.errors.StripeError) => error.statusCode === 403);
    assert.equal((await stripe.customers.retrieve(customer.id) as Stripe.Customer).name, null, 'the customer was not changed');
    assert.equal((await customersOnly.customers.update(customer.id, { name: 'Changed' })).name, 'Changed', 'the key may change it without the expansion');
  });

  test('a restricted key expands only what it may read; an unlisted path is refused naming what can be expanded', async () => {
    const customer = await stripe.customers.create({ email: 'restricted@example.com' });
    const paid = await stripe.paymentIntents.create({ amount: 1300, currency: 'usd', customer: customer.id, payment_method: 'pm_card_visa', confirm: true });
    const chargesOnly = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { charges: 'read' } })).key.reveal());
    for (const path of ['customer', 'payment_intent', 'refunds']) {
      await assert.rejects(chargesOnly.charges.retrieve(paid.latest_charge as string, { expand: [path] }), (error: Stripe.errors.StripeError) => {
        assert.equal(error.statusCode, 403, path);
        assert.equal(error.code, 'insufficient_permissions', path);
        return true;
      });
    }
    const both = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { charges: 'read', customers: 'read' } })).key.reveal());
    assert.equal(((await both.charges.retrieve(paid.latest_charge as string, { expand: ['customer'] })).customer as Stripe.Customer).id, customer.id);

    const refused = await rawRequest(server, 'GET', `/v1/charges/${paid.latest_charge as string}?expand[]=payment_method`, { key: server.secretKey });
    assert.equal(refused.status, 400);
    const error = refused.json.error as { code: string; param: string; message: string };
    assert.deepEqual([error.code, error.param], ['parameter_invalid', 'expand']);
    assert.match(error.message, /payment_method.*what can be expanded here: balance_transaction, customer, payment_intent, refunds/);
    // On a list, a path names the items' field after data., as at Stripe: a bare name is refused, not read as one.
    const bare = await rawRequest(server, 'GET', '/v1/charges?expand[]=customer', { key: server.secretKey });
    assert.equal(bare.status, 400);
    assert.equal((bare.json.error as { message: string }).message,
      'This property cannot be expanded (customer); what can be expanded here: data.balance_transaction, data.customer, data.payment_intent, data.refunds.');
  });
});
