import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { createApiKey, createMerchant } from '../../src/identity/merchants.ts';
import { runJobsOnce } from '../../src/jobs/job-runner.ts';
import { TestClock } from '../support/clock.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: every Stripe-style list pages the same way as Stripe's: newest first, `starting_after` towards older
// objects and `ending_before` towards newer ones, each object once, `has_more` exact; an unknown cursor (or
// another merchant's) is a 404 naming the parameter, both cursors together a 400, and `created` filters apply.
// Customer search refuses a page token it could not have issued instead of failing or reading it as page one.
describe('list pagination', () => {
  let server: TestServer;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ clock, configEnv: { COFFER_WEBHOOKS_ALLOW_PRIVATE: 'true' } });
  });
  after(async () => {
    await server.close();
  });

  interface Merchant {
    key: string;
    stripe: Stripe;
    publishable: Stripe;
  }

  /** A merchant of its own, so that a list holds exactly the objects a test made. */
  async function newMerchant(): Promise<Merchant> {
    const id = await createMerchant(server.database.db, 'Lists');
    const secret = (await createApiKey(server.database.db, id, 'secret', false)).key.reveal();
    const publishable = (await createApiKey(server.database.db, id, 'publishable', false)).key.reveal();
    return { key: secret, stripe: stripeClient(server, secret), publishable: stripeClient(server, publishable) };
  }

  /** Objects made for a list, oldest first, and how to walk that list with the SDK. */
  interface Made {
    path: string;
    ids: string[];
    created: number[];
    walk(): Promise<Array<{ id: string }>>;
  }

  interface ListCase {
    name: string;
    make(merchant: Merchant, count: number): Promise<Made>;
  }

  /** Moves the clock to a new second, so that each object has a creation second of its own. */
  function nextSecond(): void {
    clock.offsetMs += 2_000;
  }

  async function series<T extends { id: string; created: number }>(count: number, create: (index: number) => Promise<T>): Promise<Pick<Made, 'ids' | 'created'>> {
    const ids: string[] = [];
    const created: number[] = [];
    for (let index = 0; index < count; index += 1) {
      nextSecond();
      const object = await create(index);
      ids.push(object.id);
      created.push(object.created);
    }
    return { ids, created };
  }

  async function customerWithCards(merchant: Merchant, count: number): Promise<{ customer: Stripe.Customer; made: Pick<Made, 'ids' | 'created'> }> {
    const customer = await merchant.stripe.customers.create({ name: 'Cardholder' });
    const made = await series(count, async () => {
      const method = await merchant.publishable.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2031, cvc: '314' } });
      return merchant.stripe.paymentMethods.attach(method.id, { customer: customer.id });
    });
    return { customer, made };
  }

  const cases: ListCase[] = [
    {
      name: 'charges',
      make: async ({ stripe }, count) => {
        const made = await series(count, async (index) => {
          const intent = await stripe.paymentIntents.create({ amount: 500 + index, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
          return stripe.charges.retrieve(intent.latest_charge as string);
        });
        return { path: '/v1/charges', ...made, walk: () => stripe.charges.list({ limit: 1 }).autoPagingToArray({ limit: 10 }) };
      },
    },
    {
      name: 'events',
      // Each customer made is one event (customer.created), the merchant's only ones.
      make: async ({ stripe }, count) => {
        const made = await series(count, async (index) => {
          const customer = await stripe.customers.create({ name: `Evented ${index}` });
          const [event] = (await stripe.events.list({ type: 'customer.created', limit: 1 })).data;
          assert.equal((event?.data.object as { id?: string }).id, customer.id);
          return { id: event?.id ?? '', created: event?.created ?? 0 };
        });
        return { path: '/v1/events', ...made, walk: () => stripe.events.list({ limit: 1 }).autoPagingToArray({ limit: 10 }) };
      },
    },
    {
      name: 'payment intents',
      make: async ({ stripe }, count) => ({
        path: '/v1/payment_intents',
        ...(await series(count, (index) => stripe.paymentIntents.create({ amount: 100 + index, currency: 'usd' }))),
        walk: () => stripe.paymentIntents.list({ limit: 1 }).autoPagingToArray({ limit: 10 }),
      }),
    },
    {
      name: 'customers',
      make: async ({ stripe }, count) => ({
        path: '/v1/customers',
        ...(await series(count, (index) => stripe.customers.create({ name: `Customer ${index}` }))),
        walk: () => stripe.customers.list({ limit: 1 }).autoPagingToArray({ limit: 10 }),
      }),
    },
    {
      name: 'customer balance transactions',
      make: async ({ stripe }, count) => {
        const customer = await stripe.customers.create({ name: 'Balance' });
        return {
          path: `/v1/customers/${customer.id}/balance_transactions`,
          ...(await series(count, (index) => stripe.customers.createBalanceTransaction(customer.id, { amount: -100 - index, currency: 'usd', description: `Credit ${index}` }))),
          walk: () => stripe.customers.listBalanceTransactions(customer.id, { limit: 1 }).autoPagingToArray({ limit: 10 }),
        };
      },
    },
    {
      name: 'setup intents',
      make: async ({ stripe }, count) => ({
        path: '/v1/setup_intents',
        ...(await series(count, () => stripe.setupIntents.create({ usage: 'off_session' }))),
        walk: () => stripe.setupIntents.list({ limit: 1 }).autoPagingToArray({ limit: 10 }),
      }),
    },
    {
      name: 'a customer\'s payment methods',
      make: async (merchant, count) => {
        const { customer, made } = await customerWithCards(merchant, count);
        return {
          path: `/v1/customers/${customer.id}/payment_methods`,
          ...made,
          walk: () => merchant.stripe.customers.listPaymentMethods(customer.id, { limit: 1 }).autoPagingToArray({ limit: 10 }),
        };
      },
    },
    {
      name: 'payment methods by customer',
      make: async (merchant, count) => {
        const { customer, made } = await customerWithCards(merchant, count);
        return {
          path: `/v1/payment_methods?customer=${customer.id}`,
          ...made,
          walk: () => merchant.stripe.paymentMethods.list({ customer: customer.id, limit: 1 }).autoPagingToArray({ limit: 10 }),
        };
      },
    },
    {
      name: 'refunds',
      make: async ({ stripe }, count) => {
        const intent = await stripe.paymentIntents.create({ amount: 10_000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
        return {
          path: '/v1/refunds',
          ...(await series(count, () => stripe.refunds.create({ payment_intent: intent.id, amount: 1000 }))),
          walk: () => stripe.refunds.list({ limit: 1 }).autoPagingToArray({ limit: 10 }),
        };
      },
    },
    {
      name: 'disputes',
      make: async ({ stripe }, count) => ({
        path: '/v1/disputes',
        ...(await series(count, async () => {
          const intent = await stripe.paymentIntents.create({ amount: 2000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
          // The acquirer opens the dispute a little later; the dispute's creation is then.
          clock.offsetMs += 5_000;
          await runJobsOnce(server.coffer.services);
          const disputes = await stripe.disputes.list({ payment_intent: intent.id });
          assert.equal(disputes.data.length, 1, 'the acquirer opened one dispute');
          return disputes.data[0] as Stripe.Dispute;
        })),
        walk: () => stripe.disputes.list({ limit: 1 }).autoPagingToArray({ limit: 10 }),
      }),
    },
    {
      name: 'checkout sessions',
      make: async ({ stripe }, count) => ({
        path: '/v1/checkout/sessions',
        ...(await series(count, (index) => stripe.checkout.sessions.create({
          mode: 'payment', success_url: 'https://shop.example/ok', line_items: [{ price_data: { currency: 'usd', unit_amount: 100 + index, product_data: { name: 'Tea' } }, quantity: 1 }],
        }))),
        walk: () => stripe.checkout.sessions.list({ limit: 1 }).autoPagingToArray({ limit: 10 }),
      }),
    },
    {
      name: 'webhook endpoints',
      make: async ({ stripe }, count) => ({
        path: '/v1/webhook_endpoints',
        ...(await series(count, (index) => stripe.webhookEndpoints.create({ url: `http://127.0.0.1:9/hooks/${index}`, enabled_events: ['payment_intent.succeeded'] }))),
        walk: () => stripe.webhookEndpoints.list({ limit: 1 }).autoPagingToArray({ limit: 10 }),
      }),
    },
  ];

  const withQuery = (path: string, query: string) => `${path}${path.includes('?') ? '&' : '?'}${query}`;

  /** The ids of a page (newest first) and its `has_more`. */
  async function page(key: string, path: string, query: string): Promise<{ ids: string[]; hasMore: boolean }> {
    const response = await rawRequest(server, 'GET', withQuery(path, query), { key });
    assert.equal(response.status, 200, response.body);
    return { ids: (response.json.data as Array<{ id: string }>).map((object) => object.id), hasMore: response.json.has_more as boolean };
  }

  async function refused(key: string, path: string, query: string, expected: { status: number; code: string; param: string }): Promise<void> {
    const response = await rawRequest(server, 'GET', withQuery(path, query), { key });
    const error = response.json.error as { type?: string; code?: string; param?: string } | undefined;
    assert.deepEqual({ status: response.status, type: error?.type, code: error?.code, param: error?.param },
      { ...expected, type: 'invalid_request_error' }, `${path} ${query}: ${response.body}`);
  }

  for (const listCase of cases) {
    test(`${listCase.name}: keyset pages both ways, cursors checked, created filters applied`, async () => {
      const merchant = await newMerchant();
      const made = await listCase.make(merchant, 3);
      const [oldest, middle, newest] = made.ids as [string, string, string];
      const [oldestCreated, middleCreated] = made.created as [number, number, number];
      const get = (query: string) => page(merchant.key, made.path, query);

      assert.deepEqual(await get('limit=1'), { ids: [newest], hasMore: true });
      assert.deepEqual(await get(`limit=1&starting_after=${newest}`), { ids: [middle], hasMore: true });
      assert.deepEqual(await get(`limit=1&starting_after=${middle}`), { ids: [oldest], hasMore: false });
      assert.deepEqual(await get(`limit=1&ending_before=${oldest}`), { ids: [middle], hasMore: true });
      assert.deepEqual(await get(`limit=1&ending_before=${middle}`), { ids: [newest], hasMore: false });
      assert.deepEqual(await get(`limit=2&ending_before=${oldest}`), { ids: [newest, middle], hasMore: false });
      assert.deepEqual(await get(`limit=2&starting_after=${newest}`), { ids: [middle, oldest], hasMore: false });

      const walked = (await made.walk()).map((object) => object.id);
      assert.deepEqual(walked, [newest, middle, oldest], 'the SDK walks every object once, newest first');

      for (const param of ['starting_after', 'ending_before']) {
        await refused(merchant.key, made.path, `limit=1&${param}=zz_unknown`, { status: 404, code: 'resource_missing', param });
      }
      await refused(merchant.key, made.path, `starting_after=${newest}&ending_before=${oldest}`, { status: 400, code: 'parameters_exclusive', param: 'ending_before' });

      const future = Math.floor(clock.nowMs() / 1000) + 3600;
      assert.deepEqual((await get(`created[gt]=${future}`)).ids, []);
      assert.deepEqual((await get(`created[lte]=${oldestCreated - 1}`)).ids, []);
      assert.deepEqual((await get(`created[gte]=${oldestCreated}`)).ids, [newest, middle, oldest]);
      assert.deepEqual((await get(`created[gt]=${oldestCreated}`)).ids, [newest, middle]);
      assert.deepEqual((await get(`created[lt]=${middleCreated}`)).ids, [oldest]);
      assert.deepEqual((await get(`created[gte]=${oldestCreated}&created[lte]=${middleCreated}`)).ids, [middle, oldest]);
      assert.deepEqual((await get(`created=${middleCreated}`)).ids, [middle]);
      assert.deepEqual(await get(`limit=1&created[gte]=${middleCreated}&starting_after=${newest}`), { ids: [middle], hasMore: false });

      // Another merchant's object is no cursor, and its list shows only its own.
      const other = await newMerchant();
      const theirs = await listCase.make(other, 1);
      await refused(other.key, theirs.path, `starting_after=${newest}`, { status: 404, code: 'resource_missing', param: 'starting_after' });
      await refused(other.key, theirs.path, `ending_before=${oldest}`, { status: 404, code: 'resource_missing', param: 'ending_before' });
      assert.deepEqual(await page(other.key, theirs.path, 'limit=10'), { ids: theirs.ids, hasMore: false });
    });
  }

  test('customer search pages by its own tokens, positions that hold while customers are added; a token it could not have issued is a 400 naming page', async () => {
    const merchant = await newMerchant();
    const { ids } = await series(3, (index) => merchant.stripe.customers.create({ name: `Sam ${index}` }));
    const newestFirst = [...ids].reverse();
    const search = (query: string) => rawRequest(server, 'GET', `/v1/customers/search?query=${encodeURIComponent("name~'sam'")}&${query}`, { key: merchant.key });

    const seen: string[] = [];
    let next: string | null = null;
    for (let pages = 0; pages < 3; pages += 1) {
      const response = await search(`limit=1${next === null ? '' : `&page=${next}`}`);
      assert.equal(response.status, 200, response.body);
      seen.push(...(response.json.data as Array<{ id: string }>).map((customer) => customer.id));
      assert.equal(response.json.has_more, pages < 2);
      next = response.json.next_page as string | null;
    }
    assert.deepEqual(seen, newestFirst);
    assert.equal(next, null);
    const walked = await merchant.stripe.customers.search({ query: "name~'sam'", limit: 1 }).autoPagingToArray({ limit: 10 });
    assert.deepEqual(walked.map((customer) => customer.id), newestFirst);

    // A token is a position, not an offset: a customer created between two pages does not push one already seen
    // into the next page. And it is this query's: another query does not take it.
    const first = await search('limit=1');
    await merchant.stripe.customers.create({ name: 'Sam later' });
    const second = await search(`limit=1&page=${String(first.json.next_page)}`);
    assert.deepEqual((second.json.data as Array<{ id: string }>).map((customer) => customer.id), [newestFirst[1]]);
    const elsewhere = await rawRequest(server, 'GET', `/v1/customers/search?query=${encodeURIComponent("name:'Sam 0'")}&page=${String(first.json.next_page)}`, { key: merchant.key });
    assert.deepEqual([elsewhere.status, (elsewhere.json.error as { param?: string }).param], [400, 'page'], elsewhere.body);

    const customersBefore = await merchant.stripe.customers.list({ limit: 100 });
    for (const decoded of ['-1', '3', '999999999999999', '99999999999999999999', 'abc', '1.5', '01', ' 1', '', '3.000000000000']) {
      const token = Buffer.from(decoded).toString('base64url');
      const response = await search(`limit=1&page=${token}`);
      const error = response.json.error as { type?: string; code?: string; param?: string } | undefined;
      assert.deepEqual({ status: response.status, type: error?.type, code: error?.code, param: error?.param },
        { status: 400, type: 'invalid_request_error', code: 'parameter_invalid', param: 'page' }, `page decoding to '${decoded}': ${response.body}`);
    }
    for (const token of ['LTE', '!!!', 'MQ==']) {
      const response = await search(`page=${encodeURIComponent(token)}`);
      assert.equal(response.status, 400, `page '${token}': ${response.body}`);
      assert.equal((response.json.error as { param?: string }).param, 'page');
    }
    const customersAfter = await merchant.stripe.customers.list({ limit: 100 });
    assert.deepEqual(customersAfter.data, customersBefore.data, 'refused searches changed nothing');
    assert.equal((await search('limit=1')).status, 200, 'the search still answers');
  });

  test('a customer\'s balance transactions page only from that customer\'s own transactions', async () => {
    const merchant = await newMerchant();
    const [first, second] = [await merchant.stripe.customers.create({ name: 'First' }), await merchant.stripe.customers.create({ name: 'Second' })];
    const mine = await merchant.stripe.customers.createBalanceTransaction(first.id, { amount: -100, currency: 'usd', description: 'goodwill' });
    const theirs = await merchant.stripe.customers.createBalanceTransaction(second.id, { amount: -200, currency: 'usd', description: 'goodwill' });
    const path = `/v1/customers/${first.id}/balance_transactions`;
    for (const param of ['starting_after', 'ending_before']) {
      await refused(merchant.key, path, `${param}=${theirs.id}`, { status: 404, code: 'resource_missing', param });
    }
    assert.deepEqual(await page(merchant.key, path, `ending_before=${mine.id}`), { ids: [], hasMore: false });
    assert.deepEqual(await page(merchant.key, path, 'limit=10'), { ids: [mine.id], hasMore: false });
  });

  test('charges filter by customer (through their PaymentIntent) and by payment_intent', async () => {
    const merchant = await newMerchant();
    const customer = await merchant.stripe.customers.create({ name: 'Buyer' });
    const theirs = await merchant.stripe.paymentIntents.create({ amount: 700, currency: 'usd', customer: customer.id, payment_method: 'pm_card_visa', confirm: true });
    const guest = await merchant.stripe.paymentIntents.create({ amount: 800, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    assert.deepEqual((await merchant.stripe.charges.list({ customer: customer.id })).data.map((charge) => charge.id), [theirs.latest_charge]);
    assert.deepEqual((await merchant.stripe.charges.list({ payment_intent: guest.id })).data.map((charge) => charge.id), [guest.latest_charge]);
    assert.equal((await merchant.stripe.charges.list()).data.length, 2);
  });

  test('PaymentIntents filter by customer: only that customer\'s, paged; an unknown or another merchant\'s customer has none', async () => {
    const merchant = await newMerchant();
    const customer = await merchant.stripe.customers.create({ name: 'Buyer' });
    const other = await merchant.stripe.customers.create({ name: 'Someone else' });
    const theirs = [];
    for (let i = 0; i < 3; i += 1) {
      theirs.push((await merchant.stripe.paymentIntents.create({ amount: 700 + i, currency: 'usd', customer: customer.id })).id);
      await merchant.stripe.paymentIntents.create({ amount: 900, currency: 'usd' }); // a guest's, between them
    }
    await merchant.stripe.paymentIntents.create({ amount: 950, currency: 'usd', customer: other.id });
    const listed: string[] = [];
    for await (const intent of merchant.stripe.paymentIntents.list({ customer: customer.id, limit: 2 })) listed.push(intent.id);
    assert.deepEqual(listed, [...theirs].reverse(), 'newest first, across pages of 2');
    assert.deepEqual((await merchant.stripe.paymentIntents.list({ customer: 'cus_unknown' })).data, []);
    const elsewhere = await newMerchant();
    const foreign = await elsewhere.stripe.customers.create({ name: 'Foreign' });
    await elsewhere.stripe.paymentIntents.create({ amount: 500, currency: 'usd', customer: foreign.id });
    assert.deepEqual((await merchant.stripe.paymentIntents.list({ customer: foreign.id })).data, [], 'another merchant\'s customer');
    assert.equal((await merchant.stripe.paymentIntents.list({ limit: 100 })).data.length, 7, 'without the filter, all of them');
  });
  test('checkout sessions are listed by status, customer and the shopper\'s email; a PaymentIntent\'s own page is no session to page from', async () => {
    const merchant = await newMerchant();
    const item = { price_data: { currency: 'usd', unit_amount: 500, product_data: { name: 'Tea' } }, quantity: 1 };
    const base = { mode: 'payment' as const, success_url: 'https://shop.example/ok', line_items: [item] };
    const customer = await merchant.stripe.customers.create({ email: 'regular@example.com' });
    const forCustomer = await merchant.stripe.checkout.sessions.create({ ...base, customer: customer.id });
    const byEmail = await merchant.stripe.checkout.sessions.create({ ...base, customer_email: 'Ada@Example.com' });
    const expired = await merchant.stripe.checkout.sessions.expire((await merchant.stripe.checkout.sessions.create(base)).id);
    const ids = async (params: Stripe.Checkout.SessionListParams) => (await merchant.stripe.checkout.sessions.list(params)).data.map((session) => session.id);
    assert.deepEqual(await ids({ status: 'expired' }), [expired.id]);
    assert.deepEqual(await ids({ status: 'open' }), [byEmail.id, forCustomer.id]);
    assert.deepEqual(await ids({ customer: customer.id }), [forCustomer.id]);
    assert.deepEqual(await ids({ customer_details: { email: 'ada@example.com' } }), [byEmail.id], 'the email, case aside');
    assert.deepEqual(await ids({ customer_details: { email: 'nobody@example.com' } }), []);
    await refused(merchant.key, '/v1/checkout/sessions', 'status=paid', { status: 400, code: 'parameter_invalid', param: 'status' });
    await refused(merchant.key, '/v1/checkout/sessions', 'customer_details[email]=not-an-email', { status: 400, code: 'parameter_invalid', param: 'customer_details[email]' });
    await refused(merchant.key, '/v1/checkout/sessions', 'expand[]=data.line_items', { status: 400, code: 'parameter_unknown', param: 'expand' });
    // The hosted page of a PaymentIntent made through the API is a page session of Coffer's own, not a Checkout Session.
    const intent = await merchant.stripe.paymentIntents.create({ amount: 500, currency: 'usd' });
    assert.equal((await rawRequest(server, 'GET', `/pay/intent?client_secret=${intent.client_secret ?? ''}`)).status, 303, 'on to its page');
    const pageSession = await server.database.db.selectFrom('checkout_sessions').select('id').where('payment_intent_id', '=', intent.id).executeTakeFirstOrThrow();
    await refused(merchant.key, '/v1/checkout/sessions', `starting_after=${pageSession.id}`, { status: 404, code: 'resource_missing', param: 'starting_after' });
  });
  test('checkout sessions and reviews name the cursor that names no object of theirs; a SetupIntent refuses a client secret not its own', async () => {
    const merchant = await newMerchant();
    await refused(merchant.key, '/v1/checkout/sessions', 'starting_after=cs_test_unknown', { status: 404, code: 'resource_missing', param: 'starting_after' });
    for (const param of ['starting_after', 'ending_before']) {
      await refused(merchant.key, '/v1/reviews', `${param}=prv_unknown`, { status: 404, code: 'resource_missing', param });
    }
    const intent = await merchant.stripe.setupIntents.create({});
    await refused(merchant.key, `/v1/setup_intents/${intent.id}`, 'client_secret=seti_x_secret_wrong', { status: 400, code: 'parameter_invalid', param: 'client_secret' });
    const right = await rawRequest(server, 'GET', `/v1/setup_intents/${intent.id}?client_secret=${intent.client_secret ?? ''}`, { key: merchant.key });
    assert.equal(right.status, 200, right.body);
  });
});
