import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { browserMissing, browserPage, clickThrough, fillCard, wholePageScreenshot } from '../support/browser.ts';
import { openCheckoutPage } from '../support/checkout-page.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: a Checkout Session may offer items the shopper adds on the hosted page (`optional_items`, decision 0061), as
// Stripe's Checkout does: none added at first; added with the quantity the merchant set, or within its bounds when
// adjustable; the page's total follows, and what is paid, the session's line items and the PaymentIntent agree with
// it. An item added at a quantity it does not take is refused and changes nothing; bad offers are refused by name.
let server: TestServer;
let stripe: Stripe;
let kettle: Stripe.Price;
let filters: Stripe.Price;
let scale: Stripe.Price;

before(async () => {
  server = await startTestServer();
  stripe = server.stripe;
  kettle = await stripe.prices.create({ currency: 'usd', unit_amount: 4_200, product_data: { name: 'Pour-over kettle' } });
  filters = await stripe.prices.create({ currency: 'usd', unit_amount: 500, product_data: { name: 'Paper filters' } });
  scale = await stripe.prices.create({ currency: 'usd', unit_amount: 2_500, product_data: { name: 'Coffee scale' } });
});
after(async () => {
  await server.close();
});

const order = { mode: 'payment' as const, success_url: 'https://shop.example/thanks', customer_email: 'shopper@example.com' };
const offer = () => ({
  ...order, line_items: [{ price: kettle.id, quantity: 1 }],
  optional_items: [{ price: filters.id, quantity: 2, adjustable_quantity: { enabled: true, minimum: 2, maximum: 10 } }, { price: scale.id, quantity: 1 }],
});

async function count(table: 'checkout_sessions' | 'charges'): Promise<number> {
  return Number((await server.database.db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n);
}

describe('optional items (API and the page\'s posts)', () => {
  test('offered, none added: the session shows the offer, its line items and total only what was ordered; bad offers are refused by name', async () => {
    const session = await stripe.checkout.sessions.create(offer());
    assert.deepEqual(session.optional_items, [
      { adjustable_quantity: { enabled: true, maximum: 10, minimum: 2 }, price: filters.id, quantity: 2 },
      { adjustable_quantity: null, price: scale.id, quantity: 1 },
    ]);
    assert.equal(session.amount_total, 4_200);
    assert.deepEqual((await stripe.checkout.sessions.listLineItems(session.id)).data.map((item) => item.description), ['Pour-over kettle']);
    assert.equal((await stripe.paymentIntents.retrieve(String(session.payment_intent))).description, 'Pour-over kettle', 'the payment names what was ordered');

    const euro = await stripe.prices.create({ currency: 'eur', unit_amount: 900, product_data: { name: 'Mug (EU)' } });
    const before = await count('checkout_sessions');
    const cases: Array<[Stripe.Checkout.SessionCreateParams.OptionalItem[], string, RegExp]> = [
      [[{ price: 'price_unknown', quantity: 1 }], 'optional_items[0][price]', /No such price/],
      [[{ price: euro.id, quantity: 1 }], 'optional_items[0][price]', /one currency/],
      [[{ price: filters.id, quantity: 12, adjustable_quantity: { enabled: true, maximum: 10 } }], 'optional_items[0][quantity]', /between/],
      [[{ price: filters.id, quantity: 0 }], 'optional_items[0][quantity]', /at least 1/],
      [Array.from({ length: 11 }, () => ({ price: filters.id, quantity: 1 })), 'optional_items', /10/],
    ];
    for (const [items, param, message] of cases) {
      const refused = await stripe.checkout.sessions.create({ ...order, line_items: [{ price: kettle.id, quantity: 1 }], optional_items: items })
        .then(() => undefined, (error: Stripe.errors.StripeError) => error);
      assert.equal(refused?.param, param, refused?.message ?? 'made');
      assert.match(refused?.message ?? '', message, param);
    }
    const withData = await stripe.checkout.sessions.create({ ...order, line_items: [{ price: kettle.id, quantity: 1 }],
      optional_items: [{ price_data: { currency: 'usd', unit_amount: 100, product_data: { name: 'x' } }, quantity: 1 }] } as unknown as Stripe.Checkout.SessionCreateParams)
      .then(() => undefined, (error: Stripe.errors.StripeError) => error);
    assert.equal(withData?.code, 'parameter_unknown', 'an optional item is a catalogue price');
    assert.equal(await count('checkout_sessions'), before, 'no session was made');
  });

  test('added through the page: at a quantity it does not take, refused and nothing tried; then paid as shown', async () => {
    const session = await stripe.checkout.sessions.create(offer());
    const page = await openCheckoutPage(server, session);
    assert.match(page.html.body, /<h3 class="optional-title">Add to your order<\/h3>/);
    assert.match(page.html.body, /id="quantity-1" data-item="1" data-choice="quantity.1" min="0" max="10" step="1" value="0"/);
    assert.match(page.html.body, /type="checkbox" autocomplete="off" id="quantity-2" data-item="2" data-choice="quantity.2" value="1"> Add \(qty 1\) · \$25\.00 each/);
    const method = (await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id;
    const charges = await count('charges');
    // Below the adjustable item's least once added; the fixed one at another quantity than the merchant's.
    for (const [quantities, amount, field] of [[[1, 1, 0], '4700', 'quantity.1'], [[1, 0, 2], '9200', 'quantity.2']] as const) {
      const refused = await page.post('/confirm', { method: 'card', payment_method: method, quantities, amount });
      assert.deepEqual([refused.status, refused.json.field], [400, field], refused.body);
    }
    assert.equal(await count('charges'), charges, 'nothing was tried');
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).amount_total, 4_200, 'the order is as it was');

    const paid = await page.post('/confirm', { method: 'card', payment_method: method, quantities: [1, 3, 1], amount: String(4_200 + 3 * 500 + 2_500) });
    assert.equal(paid.json.state, 'complete', paid.body);
    const done = await stripe.checkout.sessions.retrieve(session.id, { expand: ['payment_intent'] });
    assert.deepEqual([done.amount_total, (done.payment_intent as Stripe.PaymentIntent).amount_received], [8_200, 8_200]);
    const items = (await stripe.checkout.sessions.listLineItems(done.id)).data;
    assert.deepEqual(items.map((item) => [item.description, item.quantity, item.amount_total]), [['Pour-over kettle', 1, 4_200], ['Paper filters', 3, 1_500], ['Coffee scale', 1, 2_500]]);
    assert.equal(done.optional_items?.length, 2, 'the offer is still shown as it was made');
    assert.equal((done.payment_intent as Stripe.PaymentIntent).description, 'Pour-over kettle, Paper filters, Coffee scale', 'the payment names what was ordered');
  });

  test('a payment link offers the same to each of its sessions', async () => {
    const link = await stripe.paymentLinks.create({ line_items: [{ price: kettle.id, quantity: 1 }], optional_items: [{ price: scale.id, quantity: 1 }] });
    assert.deepEqual(link.optional_items, [{ adjustable_quantity: null, price: scale.id, quantity: 1 }]);
    const opened = await rawRequest(server, 'GET', `/buy/${link.id}`);
    const token = /name="token" value="([^"]+)"/.exec(opened.body)?.[1] ?? '';
    const made = await rawRequest(server, 'POST', `/buy/${link.id}`, { body: `token=${encodeURIComponent(token)}`, headers: { origin: new URL(link.url).origin } });
    assert.equal(made.status, 303, made.body);
    const session = await stripe.checkout.sessions.retrieve(/\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(String(made.headers.location))?.[1] ?? '');
    assert.deepEqual([session.optional_items, session.amount_total], [[{ adjustable_quantity: null, price: scale.id, quantity: 1 }], 4_200]);
    // An offered price archived since: the link says it cannot sell, and makes no session.
    await stripe.prices.update(scale.id, { active: false });
    try {
      const before = await count('checkout_sessions');
      const page = await rawRequest(server, 'GET', `/buy/${link.id}`);
      assert.doesNotMatch(page.body, /name="token"/, 'no way on');
      assert.equal(await count('checkout_sessions'), before);
    } finally {
      await stripe.prices.update(scale.id, { active: true });
    }
  });
});

describe('Adding an item on the hosted page', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  const ui = browserPage(() => server.coffer.certFile);
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  test('ticking an item and raising another\'s quantity moves the total and the button; the payment is what was shown', async () => {
    const page = ui.page();
    const session = await stripe.checkout.sessions.create(offer());
    await page.goto(session.url ?? '');
    assert.equal(await page.locator('#total').textContent(), '$42.00');
    // Below the filters' least once added: the page takes their least, as the server would have it.
    await page.fill('#quantity-1', '1');
    await page.locator('#quantity-1').blur();
    await page.locator('#total', { hasText: '$52.00' }).waitFor();
    assert.equal(await page.inputValue('#quantity-1'), '2');
    await page.check('#quantity-2');
    await page.fill('#quantity-1', '4');
    await page.locator('#quantity-1').blur();
    await page.locator('#total', { hasText: '$87.00' }).waitFor();
    assert.equal((await page.locator('#pay').textContent())?.trim(), 'Pay $87.00');
    await page.uncheck('#quantity-2');
    await page.locator('#total', { hasText: '$62.00' }).waitFor();
    await page.check('#quantity-2');
    await fillCard(page);
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-optional-items.png'));
    await clickThrough(page, '#pay', /\/done/);
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([done.status, done.amount_total], ['complete', 8_700]);
    const items = (await stripe.checkout.sessions.listLineItems(done.id)).data;
    assert.deepEqual(items.map((item) => [item.description, item.quantity]), [['Pour-over kettle', 1], ['Paper filters', 4], ['Coffee scale', 1]]);
  });
});
