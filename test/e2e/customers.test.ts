import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: customers can be created, found (by list filter and by search), updated and deleted through the SDK,
// stay with their merchant, and goodwill credit to a customer moves money in the ledger with a stated reason.
describe('customers', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  test('create, retrieve, update, list by email, search, delete', async () => {
    const jenny = await stripe.customers.create({ email: 'Jenny.Rosen@example.com', name: 'Jenny Rosen', metadata: { plan: 'gold' } });
    assert.match(jenny.id, /^cus_/);
    assert.equal(jenny.email, 'Jenny.Rosen@example.com');
    assert.equal(jenny.balance, 0);
    const other = await stripe.customers.create({ email: 'bob@example.com', name: 'Bob' });
    const updated = await stripe.customers.update(jenny.id, {
      phone: '+15555550100', metadata: { plan: '', tier: '2' }, address: { line1: '1 Main St', city: 'Springfield', country: 'US' },
      shipping: { name: 'Jenny Rosen', address: { line1: '2 Side St', country: 'US' } },
    });
    assert.equal(updated.phone, '+15555550100');
    assert.deepEqual(updated.address, { city: 'Springfield', country: 'US', line1: '1 Main St', line2: null, postal_code: null, state: null }, 'every address key, null where none was given');
    assert.deepEqual(updated.shipping, { address: { city: null, country: 'US', line1: '2 Side St', line2: null, postal_code: null, state: null }, name: 'Jenny Rosen', phone: null });
    assert.deepEqual(updated.metadata, { tier: '2' });
    assert.deepEqual(await stripe.customers.retrieve(jenny.id), updated);
    const byEmail = await stripe.customers.list({ email: 'Jenny.Rosen@example.com' });
    assert.deepEqual(byEmail.data.map((customer) => customer.id), [jenny.id]);
    assert.deepEqual((await stripe.customers.list({ email: 'jenny.rosen@example.com' })).data, [], 'the list filter is case-sensitive, as Stripe\'s is');
    const searched = await stripe.customers.search({ query: "email:'jenny.rosen@example.com'" });
    assert.equal(searched.object, 'search_result');
    assert.deepEqual(searched.data.map((customer) => customer.id), [jenny.id]);
    const byName = await stripe.customers.search({ query: "name~'ros' AND metadata['tier']:'2'" });
    assert.deepEqual(byName.data.map((customer) => customer.id), [jenny.id]);
    const either = await stripe.customers.search({ query: "email:'bob@example.com' OR name:'jenny rosen'" });
    assert.deepEqual(either.data.map((customer) => customer.id), [other.id, jenny.id], 'OR: either clause, newest first');
    const notJenny = await stripe.customers.search({ query: "-name:'Jenny Rosen' AND email~'example.com'" });
    assert.equal(notJenny.data.some((customer) => customer.id === jenny.id), false, 'a negated clause excludes');
    assert.equal(notJenny.data.some((customer) => customer.id === other.id), true);
    const since = await stripe.customers.search({ query: `created>=${jenny.created} AND name~'ros'` });
    assert.deepEqual(since.data.map((customer) => customer.id), [jenny.id]);
    // Text is compared by the database on both sides, whatever the script; quotes and backslashes in keys and values
    // are written with a backslash, in either kind of quote.
    const istanbul = await stripe.customers.create({ name: 'İstanbul ΣΊΣΥΦΟΣ', metadata: { "o'k": 'q', 'back\\slash': 'a\\b' } });
    for (const query of ["name:'İstanbul ΣΊΣΥΦΟΣ'", "name~'İsta'", "name~'ΣΥΦΟΣ'", "name~'συφοσ'", "metadata['o\\'k']:'q'", 'metadata["o\'k"]:"q"', "metadata['back\\\\slash']:'a\\\\b'"]) {
      assert.deepEqual((await stripe.customers.search({ query })).data.map((customer) => customer.id), [istanbul.id], query);
    }
    await assert.rejects(stripe.customers.search({ query: "email:'a' OR name:'b' AND phone:'c'" }), (error: Stripe.errors.StripeError) => error.param === 'query' && /AND or with OR, not both/.test(error.message));
    const deleted = await stripe.customers.del(other.id);
    assert.deepEqual(deleted, { id: other.id, object: 'customer', deleted: true });
    const gone = await stripe.customers.retrieve(other.id);
    assert.equal((gone as Stripe.DeletedCustomer).deleted, true);
    await assert.rejects(stripe.customers.update(other.id, { name: 'x' }), (error: Stripe.errors.StripeError) => error.code === 'resource_missing');
    const elsewhere = stripeClient(server, server.otherSecretKey);
    await assert.rejects(elsewhere.customers.retrieve(jenny.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
  });

  test('a customer created with a payment_method saves it (and may make it the default); refusals make nothing', async () => {
    const customer = await stripe.customers.create({ email: 'with-card@example.com', payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: 'pm_card_visa' } });
    const [card] = (await stripe.customers.listPaymentMethods(customer.id)).data;
    assert.ok(card !== undefined, 'the card is saved to the customer');
    assert.equal(card.card?.last4, '4242');
    assert.equal(customer.invoice_settings.default_payment_method, card.id, 'and is its default');
    const paid = await stripe.paymentIntents.create({ amount: 700, currency: 'usd', customer: customer.id, payment_method: card.id, confirm: true, off_session: true });
    assert.equal(paid.status, 'succeeded');
    const attached = (await stripe.events.list({ type: 'payment_method.attached', limit: 10 })).data.filter((event) => (event.data.object as Stripe.PaymentMethod).id === card.id);
    assert.equal(attached.length, 1);
    const plain = await stripe.customers.create({ email: 'no-default@example.com', payment_method: 'pm_card_mastercard' });
    assert.equal(plain.invoice_settings.default_payment_method, null, 'saved, not made the default unless asked');

    // A refusal's answer may be kept for its idempotency key, as at Stripe; nothing else is written.
    const withoutKeys = async () => {
      const { idempotency_keys: _kept, ...rest } = await stateCounts(server.database.db);
      return rest;
    };
    const before = await withoutKeys();
    const countCustomers = async () => (await server.database.db.selectFrom('customers').select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n;
    const customersBefore = await countCustomers();
    const refusals: Array<[Stripe.CustomerCreateParams, string, number]> = [
      [{ payment_method: card.id }, 'payment_method', 400],
      [{ payment_method: 'pm_nothing' }, 'payment_method', 404],
      [{ payment_method: 'pm_card_visa', invoice_settings: { default_payment_method: card.id } }, 'invoice_settings[default_payment_method]', 400],
      [{ invoice_settings: { default_payment_method: card.id } }, 'invoice_settings[default_payment_method]', 400],
    ];
    for (const [params, param, status] of refusals) {
      await assert.rejects(stripe.customers.create({ email: 'refused@example.com', ...params }),
        (error: Stripe.errors.StripeError) => error.param === param && error.statusCode === status, JSON.stringify(params));
    }
    assert.deepEqual(await withoutKeys(), before);
    assert.equal(await countCustomers(), customersBefore, 'no customer was made');
    assert.equal((await stripe.paymentMethods.retrieve(card.id)).customer, customer.id, 'the card stays where it was');
  });

  test('goodwill credit: a reasoned ledger transfer from the merchant to the customer, and no more taken back than held', async () => {
    await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', payment_method: 'pm_card_bypassPending', confirm: true });
    const customer = await stripe.customers.create({ email: 'late@example.com' });
    const before = await stateCounts(server.database.db);
    await assert.rejects(stripe.customers.createBalanceTransaction(customer.id, { amount: -500, currency: 'usd' }),
      (error: Stripe.errors.StripeError) => error.code === 'parameter_missing' && error.param === 'description');
    const { idempotency_keys: _a, ...countsBefore } = before;
    const { idempotency_keys: _b, ...countsAfter } = await stateCounts(server.database.db);
    assert.deepEqual(countsAfter, countsBefore);
    const credit = await stripe.customers.createBalanceTransaction(customer.id, { amount: -500, currency: 'usd', description: 'Parcel arrived late' });
    assert.equal(credit.object, 'customer_balance_transaction');
    assert.equal(credit.ending_balance, -500);
    assert.equal((await stripe.customers.retrieve(customer.id) as Stripe.Customer).balance, -500);
    const transfers = await server.database.db.selectFrom('ledger_transfers').select(['reason', 'amount']).where('transfer_key', 'like', `${credit.id}:%`).execute();
    assert.deepEqual(transfers, [{ reason: 'customer_credit', amount: 500n }]);
    const available = (await stripe.balance.retrieve()).available.find((item) => item.currency === 'usd')?.amount;
    assert.equal(available, 4500);
    await assert.rejects(stripe.customers.createBalanceTransaction(customer.id, { amount: 600, currency: 'usd', description: 'too much' }),
      (error: Stripe.errors.StripeError) => error.param === 'amount');
    const back = await stripe.customers.createBalanceTransaction(customer.id, { amount: 200, currency: 'usd', description: 'partly used' });
    assert.equal(back.ending_balance, -300);
    const listed = await stripe.customers.listBalanceTransactions(customer.id);
    assert.deepEqual(listed.data.map((item) => item.amount), [200, -500]);
    const audit = await server.database.db.selectFrom('audit_log').select('details').where('object_id', '=', credit.id).executeTakeFirstOrThrow();
    assert.equal((audit.details as { reason: string }).reason, 'Parcel arrived late');

    // Deleting the customer gives the 300 of credit it still held back to the merchant, through the ledger.
    await stripe.customers.del(customer.id);
    assert.equal((await stripe.balance.retrieve()).available.find((item) => item.currency === 'usd')?.amount, 5000, 'all 500 of credit is back: 200 taken back, 300 returned');
    const last = await server.database.db.selectFrom('customer_balance_transactions').select(['id', 'amount', 'ending_balance', 'description'])
      .where('customer_id', '=', customer.id).orderBy('created_at', 'desc').orderBy('id').execute();
    assert.equal(last.length, 3);
    const returned = last.find((row) => row.description.startsWith('Credit returned'));
    assert.ok(returned !== undefined);
    assert.equal(returned.amount, 300n);
    assert.equal(returned.ending_balance, 0n);
    const returnedTransfers = await server.database.db.selectFrom('ledger_transfers').select(['reason', 'amount']).where('transfer_key', 'like', `${returned.id}:%`).execute();
    assert.equal(returnedTransfers.length, 1);
    assert.equal(returnedTransfers[0]?.amount, 300n);
    const credit2 = await server.database.db.selectFrom('ledger_accounts').select(['credits_posted', 'debits_posted'])
      .where('merchant_id', '=', server.merchantId).where('code', '=', 'customer_credit').where('currency', '=', 'usd').where('livemode', '=', false).executeTakeFirstOrThrow();
    assert.equal(credit2.credits_posted - credit2.debits_posted, 0n, 'no credit is left for a customer who no longer exists');
    await assertLedgerConsistent(server.database.db);
  });

  test('customer changes are events (created, updated, deleted) carrying the customer, as Stripe\'s are', async () => {
    const customer = await stripe.customers.create({ email: 'events@example.com', metadata: { tier: 'gold', region: 'eu' } });
    await stripe.customers.update(customer.id, { name: 'Eve', metadata: { tier: 'silver', team: 'ops', region: '' } });
    // An update that changes nothing is no event.
    await stripe.customers.update(customer.id, { name: 'Eve', metadata: { tier: 'silver' } });
    await stripe.customers.createBalanceTransaction(customer.id, { amount: -100, currency: 'usd', description: 'sorry' });
    const newCard = await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 8, exp_year: new Date().getUTCFullYear() + 3, cvc: '123' } });
    const card = await stripe.paymentMethods.attach(newCard.id, { customer: customer.id });
    await stripe.customers.del(customer.id);
    const detached = (await stripe.events.list({ type: 'payment_method.detached', limit: 100 })).data.filter((event) => (event.data.object as { id?: string }).id === card.id);
    assert.equal(detached.length, 1, 'deleting the customer detaches its card, as an event');
    assert.equal((detached[0]?.data.object as Stripe.PaymentMethod).customer, null);
    assert.deepEqual(detached[0]?.data.previous_attributes, { customer: customer.id });
    const events = (await stripe.events.list({ limit: 100 })).data.filter((event) => (event.data.object as { id?: string }).id === customer.id);
    assert.deepEqual(events.map((event) => event.type).reverse(), ['customer.created', 'customer.updated', 'customer.updated', 'customer.deleted']);
    const [deleted, balance, named, created] = events;
    assert.equal((created?.data.object as Stripe.Customer).email, 'events@example.com');
    assert.equal((named?.data.object as Stripe.Customer).name, 'Eve');
    // Within metadata, only the keys that changed: a new key's previous value is null, a removed key's its value.
    assert.deepEqual(named?.data.previous_attributes, { name: null, metadata: { tier: 'gold', team: null, region: 'eu' } });
    assert.deepEqual(balance?.data.previous_attributes, { balance: 0, currency: null });
    assert.equal((deleted?.data.object as Stripe.Customer).email, 'events@example.com', 'the deleted customer as it was');
  });

  test('preferred_locales and tax_exempt are kept and shown; bad values are refused by name and change nothing', async () => {
    const customer = await stripe.customers.create({ email: 'locales@example.com', preferred_locales: ['zh-CN', 'en'], tax_exempt: 'exempt' });
    assert.deepEqual([customer.preferred_locales, customer.tax_exempt], [['zh-CN', 'en'], 'exempt']);
    assert.deepEqual(await stripe.customers.retrieve(customer.id), customer);
    const plain = await stripe.customers.create({ email: 'plain@example.com' });
    assert.deepEqual([plain.preferred_locales, plain.tax_exempt], [[], 'none'], 'a customer given neither has none and is not exempt');

    const updated = await stripe.customers.update(customer.id, { tax_exempt: 'reverse', preferred_locales: ['pt-BR'] });
    assert.deepEqual([updated.preferred_locales, updated.tax_exempt], [['pt-BR'], 'reverse']);
    const event = (await stripe.events.list({ type: 'customer.updated', limit: 100 })).data.find((item) => (item.data.object as { id?: string }).id === customer.id);
    assert.deepEqual(event?.data.previous_attributes, { preferred_locales: ['zh-CN', 'en'], tax_exempt: 'exempt' });
    // An empty list from the SDK sends nothing and changes nothing; '' clears the list, and tax_exempt '' is 'none'.
    assert.deepEqual((await stripe.customers.update(customer.id, { preferred_locales: [] })).preferred_locales, ['pt-BR']);
    const cleared = await rawRequest(server, 'POST', `/v1/customers/${customer.id}`, { key: server.secretKey, body: 'preferred_locales=&tax_exempt=' });
    assert.deepEqual([cleared.status, cleared.json.preferred_locales, cleared.json.tax_exempt], [200, [], 'none'], cleared.body);

    const before = [await stateCounts(server.database.db), await stripe.customers.retrieve(customer.id)];
    const refusals: Array<[Stripe.CustomerUpdateParams, string]> = [
      [{ tax_exempt: 'maybe' as 'none' }, 'tax_exempt'],
      [{ preferred_locales: ['en', 'not a language'] }, 'preferred_locales[1]'],
      [{ preferred_locales: Array.from({ length: 21 }, () => 'en') }, 'preferred_locales'],
    ];
    for (const [params, param] of refusals) {
      await assert.rejects(stripe.customers.update(customer.id, params), (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === param, param);
      await assert.rejects(stripe.customers.create({ email: 'refused@example.com', ...params } as Stripe.CustomerCreateParams), (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === param, param);
    }
    assert.deepEqual([await stateCounts(server.database.db), await stripe.customers.retrieve(customer.id)], before, 'nothing was created or changed');
    assert.deepEqual((await stripe.customers.list({ email: 'refused@example.com' })).data, []);
  });
});
