import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { createApiKey } from '../../src/identity/merchants.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';
import { runJobsOnce } from '../../src/jobs/job-runner.ts';
import { TestClock } from '../support/clock.ts';

// Goal: `stripe.paymentIntents.search` finds PaymentIntents as Stripe's search language says: by amount and
// created (compared), currency, customer, status and metadata, clauses joined by AND or by OR and negated with
// `-`, newest first, paged by next_page, expanded like a list; a query it cannot read is refused naming the
// problem, and another merchant's PaymentIntents are never found.
describe('PaymentIntent search', () => {
  let server: TestServer;
  let stripe: Stripe;
  const run = `run-${Date.now()}`;
  const ids: Record<string, string> = {};
  let customer: Stripe.Customer;

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
    customer = await stripe.customers.create({ email: 'searcher@example.com', metadata: { run } });
    await stripe.customers.create({ email: 'another@example.com', metadata: { run } });
    const make = async (name: string, params: Stripe.PaymentIntentCreateParams) => {
      ids[name] = (await stripe.paymentIntents.create({ ...params, metadata: { run, name } })).id;
    };
    // Oldest first: search answers newest first.
    await make('small', { amount: 500, currency: 'usd' });
    await make('paid', { amount: 1500, currency: 'usd', customer: customer.id, payment_method: 'pm_card_visa', confirm: true });
    await make('euro', { amount: 2500, currency: 'eur', payment_method: 'pm_card_visa', confirm: true });
    await make('large', { amount: 9000, currency: 'usd', customer: customer.id });
    await stripe.paymentIntents.cancel(ids.large ?? '');
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const found = async (query: string, client = stripe) =>
    (await client.paymentIntents.search({ query: `metadata['run']:'${run}' AND ${query}` })).data.map((intent) => intent.metadata.name);

  test('each field, compared as Stripe compares it', async () => {
    assert.deepEqual(await found("status:'succeeded'"), ['euro', 'paid']);
    assert.deepEqual(await found("currency:'usd'"), ['large', 'paid', 'small']);
    assert.deepEqual(await found("currency:'USD' AND status:'succeeded'"), ['paid']);
    assert.deepEqual(await found("currency:'usd' status:'succeeded'"), ['paid'], 'a space is AND, as at Stripe');
    assert.deepEqual(await found("currency:'usd' and status:'succeeded'"), ['paid'], 'AND in any case');
    assert.deepEqual(await found('amount>1500'), ['large', 'euro']);
    assert.deepEqual(await found('amount>=1500 AND amount<9000'), ['euro', 'paid']);
    assert.deepEqual(await found('amount:500'), ['small']);
    assert.deepEqual(await found(`customer:'${customer.id}'`), ['large', 'paid']);
    assert.deepEqual(await found("metadata['name']:'euro'"), ['euro']);
    assert.deepEqual(await found("-status:'requires_payment_method' AND -status:'canceled'"), ['euro', 'paid']);
    assert.deepEqual(await found(`-customer:'${customer.id}'`), ['euro', 'small'], 'a negated clause also matches a PaymentIntent without a customer');
    // Created compares whole seconds, as list filters do; the expected names come from the PaymentIntents' own times.
    const createdOf = new Map<string, number>();
    for (const name of ['large', 'euro', 'paid', 'small']) createdOf.set(name, (await stripe.paymentIntents.retrieve(ids[name] ?? '')).created);
    const at = createdOf.get('paid') ?? 0;
    const where = (keep: (seconds: number) => boolean) => [...createdOf].filter(([, seconds]) => keep(seconds)).map(([name]) => name);
    assert.deepEqual(await found(`created>=${at}`), where((seconds) => seconds >= at));
    assert.deepEqual(await found(`created>${at}`), where((seconds) => seconds > at));
    assert.deepEqual(await found(`created<${at}`), where((seconds) => seconds < at));
    assert.deepEqual(await found(`created<=${at}`), where((seconds) => seconds <= at));
    assert.deepEqual(await found(`created:${at}`), where((seconds) => seconds === at));
    assert.ok(where((seconds) => seconds === at).includes('paid'));
  });

  test('OR joins clauses; pages follow next_page newest first; data expands like a list', async () => {
    const either = await stripe.paymentIntents.search({ query: `metadata['name']:'small' OR metadata['name']:'euro'` });
    assert.deepEqual(either.data.map((intent) => intent.metadata.name), ['euro', 'small']);
    const first = await stripe.paymentIntents.search({ query: `metadata['run']:'${run}'`, limit: 3 });
    assert.deepEqual([first.object, first.url, first.has_more, first.data.length], ['search_result', '/v1/payment_intents/search', true, 3]);
    assert.notEqual(first.next_page, null);
    const all = await stripe.paymentIntents.search({ query: `metadata['run']:'${run}'`, limit: 1 }).autoPagingToArray({ limit: 10 });
    assert.deepEqual(all.map((intent) => intent.metadata.name), ['large', 'euro', 'paid', 'small']);
    const expanded = await stripe.paymentIntents.search({ query: `metadata['run']:'${run}' AND status:'succeeded'`, expand: ['data.latest_charge', 'data.customer'] });
    const paid = expanded.data.find((intent) => intent.metadata.name === 'paid');
    assert.equal((paid?.latest_charge as Stripe.Charge).amount, 1500);
    assert.equal((paid?.customer as Stripe.Customer).email, 'searcher@example.com');

    // total_count, as at Stripe, only when expanded: the results over all pages, whatever the page.
    assert.equal(first.total_count, undefined);
    const counted = await stripe.paymentIntents.search({ query: `metadata['run']:'${run}'`, limit: 1, expand: ['total_count', 'data.customer'] });
    assert.deepEqual([counted.total_count, counted.data.length, typeof counted.data[0]?.customer], [4, 1, 'object']);
    const second = await stripe.paymentIntents.search({ query: `metadata['run']:'${run}'`, limit: 1, page: counted.next_page ?? '', expand: ['total_count'] });
    assert.equal(second.total_count, 4);
    assert.equal((await stripe.customers.search({ query: `metadata['run']:'${run}'`, expand: ['total_count'] })).total_count, 2);
    assert.equal((await stripe.charges.search({ query: "status:'succeeded'", expand: ['total_count'] })).total_count, 2);
    assert.equal((await stripe.paymentIntents.search({ query: "metadata['run']:'none'", expand: ['total_count'] })).total_count, 0);
    await assert.rejects(stripe.paymentIntents.search({ query: `metadata['run']:'${run}'`, expand: ['data.total_count'] }), (error: Stripe.errors.StripeError) => error.param === 'expand');
  });

  test('a query it cannot read is refused naming the problem; another merchant finds nothing of this one', async () => {
    const before = await stateCounts(server.database.db);
    const refusals: Array<[string, RegExp]> = [
      ["description:'x'", /search field description is not supported; use one of amount, created, currency, customer, metadata, status/],
      ["constructor:'x'", /search field constructor is not supported/],
      ["__proto__:'x'", /search field __proto__ is not supported/],
      ["status:'sucess'", /status is one of requires_payment_method.*not 'sucess'/],
      ["amount:'lots'", /amount takes a whole number/],
      ["currency>'usd'", /currency cannot be compared with >/],
      ['status:succeeded', /Put the value of status in quotes/],
      ["customer~'cus'", /customer cannot be matched by substring/],
      ["status:'succeeded' AND currency:'usd' OR amount:1", /AND or with OR, not both/],
      [Array.from({ length: 11 }, (_, i) => `amount:${i}`).join(' AND '), /at most 10 clauses/],
      ["metadata:'x'", /metadata\['key'\]:'value'/],
      ["status:'succeeded'currency:'usd'", /separate clauses with a space, AND or OR/],
      ["status:'succeeded'AND currency:'usd'", /separate clauses with a space, AND or OR/],
      ["currency:'xyz'", /^'xyz' is not a currency Coffer knows\.$/],
      ['created>99999999999999', /created takes Unix seconds from 0 to 253402300798/],
      ['created<-1', /created takes Unix seconds from 0 to 253402300798/],
    ];
    for (const [query, message] of refusals) {
      const response = await rawRequest(server, 'GET', `/v1/payment_intents/search?query=${encodeURIComponent(query)}`, { key: server.secretKey });
      const error = response.json.error as { code?: string; param?: string; message?: string } | undefined;
      assert.equal(response.status, 400, query);
      assert.deepEqual([error?.code, error?.param], ['parameter_invalid', 'query'], query);
      assert.match(error?.message ?? '', message, query);
    }
    // Page tokens it did not issue for this search and query: garbage, a position past any row, another search's.
    const query = `metadata['run']:'${run}'`;
    const customerToken = (await stripe.customers.search({ query, limit: 1 })).next_page;
    assert.ok(customerToken !== null, 'the same query on customers has a next page');
    for (const page of ['abc', Buffer.from('9999999999999999999.0123456789ab').toString('base64url'), customerToken]) {
      const badPage = await rawRequest(server, 'GET', `/v1/payment_intents/search?query=${encodeURIComponent(query)}&page=${page}`, { key: server.secretKey });
      assert.deepEqual([badPage.status, (badPage.json.error as { param?: string }).param], [400, 'page'], page);
    }
    const missing = await rawRequest(server, 'GET', '/v1/payment_intents/search', { key: server.secretKey });
    assert.deepEqual([missing.status, (missing.json.error as { param?: string }).param], [400, 'query']);
    assert.deepEqual(await stateCounts(server.database.db), before);

    const other = stripeClient(server, server.otherSecretKey);
    assert.deepEqual(await found("status:'succeeded'", other), []);
    const noIntents = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { charges: 'read' } })).key.reveal());
    await assert.rejects(noIntents.paymentIntents.search({ query: "status:'succeeded'" }), (error: Stripe.errors.StripeError) => error.statusCode === 403);
  });
  test('charges: updated (description, metadata; charge.updated with what changed) and searched as Stripe\'s charge search', async () => {
    const paid = await stripe.paymentIntents.retrieve(ids.paid ?? '');
    const euro = await stripe.paymentIntents.retrieve(ids.euro ?? '');
    const paidCharge = await stripe.charges.update(paid.latest_charge as string, { metadata: { run, order: 'A-1' }, description: 'order A-1' });
    assert.deepEqual([paidCharge.metadata, paidCharge.description, paidCharge.amount, paidCharge.status], [{ run, order: 'A-1' }, 'order A-1', 1500, 'succeeded']);
    await stripe.charges.update(euro.latest_charge as string, { metadata: { run, order: 'B-2' } });
    const updated = (await stripe.events.list({ type: 'charge.updated', limit: 10 })).data.find((event) => (event.data.object as Stripe.Charge).id === paidCharge.id);
    assert.deepEqual(updated?.data.previous_attributes, { description: paid.description, metadata: { run: null, order: null } });

    const charges = async (query: string) => (await stripe.charges.search({ query: `metadata['run']:'${run}' AND ${query}` })).data.map((charge) => charge.metadata.order);
    assert.deepEqual(await charges("currency:'eur'"), ['B-2']);
    assert.deepEqual(await charges('amount>=1500'), ['B-2', 'A-1']);
    assert.deepEqual(await charges(`customer:'${customer.id}'`), ['A-1']);
    assert.deepEqual(await charges(`payment_intent:'${euro.id}'`), ['B-2']);
    assert.deepEqual(await charges("status:'succeeded' AND -metadata['order']:'A-1'"), ['B-2']);
    const refused = await rawRequest(server, 'GET', `/v1/charges/search?query=${encodeURIComponent("status:'paid'")}`, { key: server.secretKey });
    assert.deepEqual([refused.status, (refused.json.error as { param?: string }).param], [400, 'query']);

    const before = await stateCounts(server.database.db);
    for (const [body, param] of [['amount=5', 'amount'], [`metadata[${'k'.repeat(41)}]=v`, 'metadata'], ['description=' + 'd'.repeat(1001), 'description'],
      ['receipt_email=not-an-address', 'receipt_email'], ['shipping[name]=A&shipping[address][planet]=Mars', 'shipping']] as const) {
      const bad = await rawRequest(server, 'POST', `/v1/charges/${paidCharge.id}`, { key: server.secretKey, body });
      assert.equal(bad.status, 400, bad.body);
      assert.match(String((bad.json.error as { param?: string }).param), new RegExp(`^${param}`), bad.body);
    }
    assert.deepEqual(await stateCounts(server.database.db), before, 'refused updates change nothing');
    // The receipt email and shipping too, as Stripe's; "" unsets them.
    const shipped = await stripe.charges.update(paidCharge.id, { receipt_email: 'buyer@example.com', shipping: { name: 'Ada', address: { line1: '1 Main St', country: 'GB' } } });
    assert.deepEqual([shipped.receipt_email, shipped.shipping?.name, shipped.shipping?.address?.line1, shipped.shipping?.address?.city], ['buyer@example.com', 'Ada', '1 Main St', null]);
    const shippedEvent = (await stripe.events.list({ type: 'charge.updated', limit: 1 })).data[0];
    assert.equal((shippedEvent?.data.previous_attributes as { receipt_email?: unknown } | undefined)?.receipt_email, paidCharge.receipt_email);
    const unset = await stripe.charges.update(paidCharge.id, { receipt_email: '', shipping: '' } as unknown as Stripe.ChargeUpdateParams);
    assert.deepEqual([unset.receipt_email, unset.shipping], [null, null]);
    const other = stripeClient(server, server.otherSecretKey);
    await assert.rejects(other.charges.update(paidCharge.id, { metadata: { x: 'y' } }), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    await assert.rejects(other.charges.update(paidCharge.id, { fraud_details: { user_report: 'fraudulent' } }), (error: Stripe.errors.StripeError) => error.statusCode === 404);

    // The merchant's report: shown on the charge, an event, an audit record, and a risk label; '' withdraws it.
    const labels = () => server.database.db.selectFrom('risk_labels').select(['source', 'fraud']).where('charge_id', '=', paidCharge.id).execute();
    assert.deepEqual(paidCharge.fraud_details, {});
    const reported = await stripe.charges.update(paidCharge.id, { fraud_details: { user_report: 'fraudulent' } });
    assert.deepEqual([reported.fraud_details, reported.amount_refunded, reported.status], [{ user_report: 'fraudulent' }, 0, 'succeeded'], 'a report moves no money');
    assert.deepEqual(await labels(), [{ source: 'report', fraud: true }]);
    const reportEvent = (await stripe.events.list({ type: 'charge.updated', limit: 1 })).data[0];
    assert.deepEqual(reportEvent?.data.previous_attributes, { fraud_details: { user_report: null } }, 'within fraud_details, the key that changed');
    const audited = await server.database.db.selectFrom('audit_log').select('details').where('object_id', '=', paidCharge.id).where('action', '=', 'charge.update').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    assert.equal((audited.details as { user_report?: unknown }).user_report, 'fraudulent');
    assert.deepEqual((await stripe.charges.update(paidCharge.id, { fraud_details: { user_report: 'safe' } })).fraud_details, { user_report: 'safe' });
    assert.deepEqual(await labels(), [{ source: 'report', fraud: false }]);
    const beforeBad = [await stateCounts(server.database.db), await labels()];
    for (const body of ['fraud_details[user_report]=maybe', 'fraud_details[stripe_report]=fraudulent']) {
      const bad = await rawRequest(server, 'POST', `/v1/charges/${paidCharge.id}`, { key: server.secretKey, body });
      assert.deepEqual([bad.status, String((bad.json.error as { param?: string }).param).startsWith('fraud_details')], [400, true], bad.body);
    }
    assert.deepEqual([await stateCounts(server.database.db), await labels()], beforeBad, 'a refused report changes nothing');
    assert.deepEqual((await stripe.charges.retrieve(paidCharge.id)).fraud_details, { user_report: 'safe' });
    const withdrawn = await stripe.charges.update(paidCharge.id, { fraud_details: { user_report: '' } });
    assert.deepEqual([withdrawn.fraud_details, await labels()], [{}, []]);
    assert.deepEqual((await other.charges.search({ query: `metadata['run']:'${run}'` })).data, []);
  });
});

// Goal: the rest of Stripe's charge search fields: the card's last four digits, brand, expiry and fingerprint, the
// billing postal code, and whether the charge is refunded (in full) or disputed. Each one finds exactly the charges
// it describes; a misspelt value is refused naming the query.
describe('charge search by card, postal code, refunded and disputed', () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();
  /** The order each PaymentIntent was made for; this merchant has no other charges. */
  const orders = new Map<string, string>();
  const thisYear = new Date().getUTCFullYear();

  before(async () => {
    server = await startTestServer({ clock, providerTimeoutMs: 1_500 });
    stripe = server.stripe;
    const publishable = stripeClient(server, server.publishableKey);
    const pay = async (order: string, amount: number, paymentMethod: string) => {
      const intent = await stripe.paymentIntents.create({ amount, currency: 'usd', payment_method: paymentMethod, confirm: true });
      orders.set(intent.id, order);
      return intent;
    };
    const zipped = await publishable.paymentMethods.create({
      type: 'card', card: { number: '5555555555554444', exp_month: 3, exp_year: thisYear + 4, cvc: '123' }, billing_details: { address: { postal_code: 'SW1Y 4LB', country: 'GB' } },
    });
    await pay('zip', 1000, zipped.id);
    await pay('visa', 2000, 'pm_card_visa');
    const full = await pay('refunded', 3000, 'pm_card_visa');
    await stripe.refunds.create({ payment_intent: full.id });
    const part = await pay('partly', 4000, 'pm_card_visa');
    await stripe.refunds.create({ payment_intent: part.id, amount: 1000 });
    await pay('disputed', 5000, 'pm_card_createDispute');
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  test('each field finds exactly the charges it describes', async () => {
    const charges = async (query: string) => (await stripe.charges.search({ query })).data.map((charge) => orders.get(String(charge.payment_intent))).sort();
    assert.deepEqual(await charges("payment_method_details.card.last4:'4444'"), ['zip']);
    assert.deepEqual(await charges("payment_method_details.card.last4:'4242'"), ['partly', 'refunded', 'visa']);
    assert.deepEqual(await charges("payment_method_details.card.brand:'MasterCard'"), ['zip'], 'brand is case-blind');
    assert.deepEqual(await charges(`payment_method_details.card.exp_year:${thisYear + 4} AND payment_method_details.card.exp_month:3`), ['zip']);
    assert.deepEqual(await charges('payment_method_details.card.exp_month>3'), ['disputed', 'partly', 'refunded', 'visa']);
    const zip = (await stripe.charges.search({ query: "payment_method_details.card.last4:'4444'" })).data[0];
    const fingerprint = zip?.payment_method_details?.card?.fingerprint ?? '';
    assert.ok(fingerprint.length > 0);
    assert.deepEqual(await charges(`payment_method_details.card.fingerprint:'${fingerprint}'`), ['zip']);
    assert.deepEqual(await charges("billing_details.address.postal_code:'sw1y 4lb'"), ['zip']);
    assert.deepEqual(await charges("billing_details.address.postal_code~'SW1Y'"), ['zip']);
    assert.deepEqual(await charges('refunded:true'), ['refunded'], 'a partial refund is not refunded');
    assert.deepEqual(await charges("refunded:'false'"), ['disputed', 'partly', 'visa', 'zip']);
    assert.deepEqual(await charges('disputed:true'), ['disputed']);
    assert.deepEqual(await charges('-disputed:true AND -refunded:true'), ['partly', 'visa', 'zip']);
    assert.deepEqual(await charges("payment_method_details.card.last4:'4444' OR refunded:true"), ['refunded', 'zip']);
    for (const query of ['payment_method_details.card.exp_year>2147483648', 'payment_method_details.card.exp_month:99999999999']) {
      assert.deepEqual(await charges(query), [], `${query}: a large number finds nothing, without an error`);
    }
    for (const query of ['refunded:yes', "disputed:'1'", 'payment_method_details.card.last4:4242', 'payment_method_details.card.cvc:123', 'refunded>1']) {
      const refused = await rawRequest(server, 'GET', `/v1/charges/search?query=${encodeURIComponent(query)}`, { key: server.secretKey });
      assert.deepEqual([refused.status, (refused.json.error as { param?: string }).param], [400, 'query'], `${query}: ${refused.body}`);
    }
  });
});
