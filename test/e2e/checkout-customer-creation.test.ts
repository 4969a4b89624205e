import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { openCheckoutPage } from '../support/checkout-page.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: a Checkout Session made with customer_creation=always makes its shopper a Customer with the page's
// confirmation, in the statement that starts the payment's attempt (decision 0058): a confirmation refused before
// that makes none, a declined try makes one and the retry keeps it (concurrent tries make one), the page keeps
// asking for the email the receipt goes to, and what the shopper typed never becomes the identity a step-up must
// reach.
describe('Checkout Sessions with customer_creation=always, through the page', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
    // Above five dollars the page asks the shopper to step up: the CNY sessions below; the USD ones stay under.
    const set = await rawRequest(server, 'POST', '/v1/risk/settings', { key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ step_up_above_usd: 5 }) });
    assert.equal(set.status, 200, set.body);
  });
  after(() => server.close());

  /** A session's page, and a poster that sends what the page's script would (its origin, token and shown amount). */
  async function openPage(currency: 'usd' | 'eur' | 'cny', extra: Partial<Stripe.Checkout.SessionCreateParams> = {}) {
    const session = await server.stripe.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/ok', currency, customer_creation: 'always',
      line_items: [{ price_data: { currency, unit_amount: currency === 'cny' ? 20_000 : 300, product_data: { name: 'Kettle' } }, quantity: 1 }], ...extra,
    });
    return { session, ...(await openCheckoutPage(server, session)) };
  }

  /** A card PaymentMethod of the merchant, as the card frame would make it. */
  const card = async (number = '4242424242424242') => ({
    method: 'card',
    payment_method: (await server.stripe.paymentMethods.create({ type: 'card', card: { number, exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id,
  });
  const customers = async () => (await server.database.db.selectFrom('customers').select('id').execute()).length;
  const madeFor = (sessionId: string) => server.database.db.selectFrom('audit_log').select(['object_id', 'actor_type', 'details'])
    .where('action', '=', 'customer.create').where(({ eb, ref }) => eb(ref('details', '->>').key('checkout_session' as never), '=', sessionId)).execute();

  test('the parameter: shown as given, if_required when not, refused with a customer or an unknown value, and nothing is made', async () => {
    const made = await server.stripe.checkout.sessions.create({ mode: 'payment', success_url: 'https://shop.example/ok', line_items: [{ price_data: { currency: 'usd', unit_amount: 300, product_data: { name: 'Kettle' } }, quantity: 1 }] });
    assert.equal(made.customer_creation, 'if_required');
    const before = await server.database.db.selectFrom('checkout_sessions').select('id').execute();
    const customer = await server.stripe.customers.create({ email: 'known@example.com' });
    for (const [params, code, message] of [
      [{ customer: customer.id, customer_creation: 'always' }, 'parameters_exclusive', /only specify one of these parameters: customer, customer_creation/],
      [{ customer_creation: 'sometimes' }, 'parameter_invalid', /always|if_required/],
    ] as const) {
      const refused = await server.stripe.checkout.sessions.create({
        mode: 'payment', success_url: 'https://shop.example/ok', line_items: [{ price_data: { currency: 'usd', unit_amount: 300, product_data: { name: 'Kettle' } }, quantity: 1 }], ...params,
      } as Stripe.Checkout.SessionCreateParams).then(() => undefined, (error: Stripe.errors.StripeError) => error);
      assert.equal(refused?.code, code);
      assert.equal(refused?.param, 'customer_creation');
      assert.match(refused?.message ?? '', message);
    }
    assert.equal((await server.database.db.selectFrom('checkout_sessions').select('id').execute()).length, before.length, 'no session was made');
  });

  test('a confirmation refused before its attempt makes no customer', async () => {
    const page = await openPage('usd');
    assert.equal(page.session.customer_creation, 'always');
    const count = await customers();
    // A card that does not exist, an email that is not one, and an amount the page did not show.
    const unknownCard = await page.post('/confirm', { method: 'card', payment_method: 'pm_000000000000000000000000', details: { email: 'ada@example.com' } });
    assert.equal(unknownCard.json.state, 'error', unknownCard.body);
    const badEmail = await page.post('/confirm', { ...(await card()), details: { email: 'not an email' } });
    assert.deepEqual([badEmail.status, badEmail.json.field], [400, 'email'], badEmail.body);
    const otherAmount = await page.post('/confirm', { ...(await card()), amount: '1', details: { email: 'ada@example.com' } });
    assert.equal(otherAmount.json.state, 'redirect', otherAmount.body);
    // Refused inside the attempt's own statement: a limit on what one customer may pay (the customer the statement
    // would make), which undoes the whole statement.
    const limit = await rawRequest(server, 'POST', '/v1/risk/limits', { key: server.secretKey, body: 'subject=customer&kind=amount_max&value=100&currency=eur' });
    assert.equal(limit.status, 200, limit.body);
    try {
      const limited = await openPage('eur');
      const overLimit = await limited.post('/confirm', { ...(await card()), details: { email: 'ada@example.com' } });
      assert.match(String(overLimit.json.message), /payment limit/, overLimit.body);
      assert.deepEqual(await madeFor(limited.session.id), []);
    } finally {
      assert.equal((await rawRequest(server, 'DELETE', `/v1/risk/limits/${String(limit.json.id)}`, { key: server.secretKey })).status, 200);
    }
    assert.equal(await customers(), count, 'no customer was made');
    assert.deepEqual(await madeFor(page.session.id), []);
    const session = await server.stripe.checkout.sessions.retrieve(page.session.id);
    assert.equal(session.customer, null);
  });

  test('a declined try makes the customer; the page still asks for the email, and the retry pays as the same customer', async () => {
    const page = await openPage('usd', { billing_address_collection: 'required', payment_intent_data: { setup_future_usage: 'off_session' } });
    assert.match(page.html.body, /id="email"/, 'the page asks for the email');
    const billing = { 'billing.name': 'Ada Lovelace', 'billing.line1': '12 St James Square', 'billing.city': 'London', 'billing.postal_code': 'SW1Y 4JH', 'billing.country': 'GB' };
    const details = { email: 'ada@example.com', ...billing };
    const declined = await page.post('/confirm', { ...(await card('4000000000000002')), details });
    assert.match(String(declined.json.message), /declined/, declined.body);
    const afterDecline = await server.stripe.checkout.sessions.retrieve(page.session.id);
    assert.equal(typeof afterDecline.customer, 'string', 'the try made the customer');
    const customer = await server.stripe.customers.retrieve(String(afterDecline.customer)) as Stripe.Customer;
    assert.deepEqual([customer.email, customer.name, customer.address?.line1, customer.address?.country, customer.preferred_locales],
      ['ada@example.com', 'Ada Lovelace', '12 St James Square', 'GB', ['en']]);
    const made = await madeFor(page.session.id);
    assert.deepEqual(made.map((row) => [row.object_id, row.actor_type]), [[customer.id, 'shopper']]);
    const event = (await server.stripe.events.list({ type: 'customer.created', limit: 10 })).data.find((each) => (each.data.object as Stripe.Customer).id === customer.id);
    assert.equal((event?.data.object as Stripe.Customer | undefined)?.email, 'ada@example.com');

    // The email is still asked (the customer's is the shopper's own word, not the merchant's), filled in as typed.
    const again = await rawRequest(server, 'GET', `/pay/${page.session.id}`);
    assert.match(again.body, /id="email"[^>]*value="ada@example.com"/);
    const missing = await page.post('/confirm', { ...(await card()), details: billing });
    assert.deepEqual([missing.status, missing.json.field], [400, 'email'], missing.body);

    const paying = await page.post('/confirm', { ...(await card()), details: { ...details, email: 'ada.l@example.com' } });
    assert.equal(paying.json.state, 'complete', paying.body);
    assert.equal((await madeFor(page.session.id)).length, 1, 'one customer for the session');
    const done = await server.stripe.checkout.sessions.retrieve(page.session.id, { expand: ['payment_intent'] });
    const paid = done.payment_intent as Stripe.PaymentIntent;
    assert.deepEqual([done.status, done.customer, paid.customer, done.customer_details?.email], ['complete', customer.id, customer.id, 'ada.l@example.com'],
      'the session and its payment are the customer\'s; the receipt goes to the address typed last');
    const saved = await server.stripe.paymentMethods.list({ customer: customer.id, type: 'card' });
    assert.deepEqual(saved.data.map((each) => each.id), [paid.payment_method], 'the card the payment keeps is saved to the customer');
  });

  test('first tries at once make one customer, whose the paying charge is', async () => {
    const page = await openPage('usd');
    const method = await card();
    const tries = await Promise.all(Array.from({ length: 4 }, () => page.post('/confirm', { ...method, details: { email: 'grace@example.com' } })));
    assert.ok(tries.some((answer) => answer.json.state === 'complete'), tries.map((answer) => answer.body).join('\n'));
    const made = await madeFor(page.session.id);
    assert.equal(made.length, 1, 'one customer for the session');
    const created = (await server.stripe.events.list({ type: 'customer.created', limit: 20 })).data.filter((each) => (each.data.object as Stripe.Customer).id === made[0]?.object_id);
    assert.equal(created.length, 1);
    const done = await server.stripe.checkout.sessions.retrieve(page.session.id, { expand: ['payment_intent.latest_charge'] });
    const charge = (done.payment_intent as Stripe.PaymentIntent).latest_charge as Stripe.Charge;
    assert.deepEqual([done.customer, charge.customer, charge.status], [made[0]?.object_id, made[0]?.object_id, 'succeeded'], 'the charge that made the customer is theirs');
    const listed = await server.stripe.charges.list({ customer: String(done.customer) });
    assert.deepEqual(listed.data.map((each) => each.id), [charge.id]);
  });

  test('what the shopper typed is never the identity a step-up must reach', async () => {
    const page = await openPage('cny');
    const details = { email: 'typed@example.com' };
    assert.equal((await page.post('/confirm', { ...(await card()), details })).json.state, 'step_up');
    // Nothing on file from the merchant: the shopper proves the address they give, and tries a card that is declined.
    assert.equal((await page.post('/step-up/send', { destination: 'typed@example.com' })).status, 200);
    const outbox = await rawRequest(server, 'GET', `/sandbox/outbox?format=json&to=${encodeURIComponent('typed@example.com')}`, { key: server.secretKey });
    const code = /\b(\d{6})\b/.exec((outbox.json.data as Array<{ body: string }>)[0]?.body ?? '')?.[1] ?? '';
    assert.equal((await page.post('/step-up/verify', { code })).status, 200);
    const declined = await page.post('/confirm', { ...(await card('4000000000000002')), details });
    assert.match(String(declined.json.message), /declined/, declined.body);
    const session = await server.stripe.checkout.sessions.retrieve(page.session.id);
    const customer = await server.stripe.customers.retrieve(String(session.customer)) as Stripe.Customer;
    assert.equal(customer.email, 'typed@example.com', 'the try made a customer of what was typed');
    const other = await page.post('/step-up/password', { identity: 'another@example.com', password: '739164' });
    // Another address passes the check of what is on file, and only its (wrong) password is refused: the customer
    // made from the page is no word of the merchant's.
    assert.match(String(other.json.message), /payment password is not right/, other.body);
    const refusals = await server.database.db.selectFrom('checkout_sessions').select('step_up_identity_refusals').where('id', '=', page.session.id).executeTakeFirstOrThrow();
    assert.equal(refusals.step_up_identity_refusals, 0);
  });
});
