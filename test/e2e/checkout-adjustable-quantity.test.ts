import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { browserMissing, clickThrough, confirmFromPage, fillCard, launchTrusting, wholePageScreenshot } from '../support/browser.ts';
import { startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: a Checkout Session's line items may let the shopper change their quantity on the hosted page, within bounds
// the merchant sets (`adjustable_quantity`), as Stripe's Checkout does. The page's totals follow at once; what is
// paid, the session's line items and total, the PaymentIntent and the receipt agree with what the page showed. A
// quantity outside the bounds, a change to a fixed item, or an empty order is refused by name and changes nothing.
let server: TestServer;
let stripe: Stripe;

before(async () => {
  server = await startTestServer();
  stripe = server.stripe;
});
after(async () => {
  await server.close();
});

const kettle = { price_data: { currency: 'usd', unit_amount: 4_200, product_data: { name: 'Pour-over kettle' } }, quantity: 1 };
const filters = { price_data: { currency: 'usd', unit_amount: 500, product_data: { name: 'Paper filters' } }, quantity: 2 };
const order = { mode: 'payment' as const, success_url: 'https://shop.example/thanks', customer_email: 'shopper@example.com' };

async function counts(): Promise<number[]> {
  const rows = [];
  for (const table of ['checkout_sessions', 'payment_intents', 'audit_log'] as const) {
    rows.push(Number((await server.database.db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n));
  }
  return rows;
}

describe('adjustable quantities (API)', () => {
  test('the line items show their bounds and metadata; bad bounds are refused by name and make nothing', async () => {
    const session = await stripe.checkout.sessions.create({
      ...order, line_items: [
        { ...kettle, adjustable_quantity: { enabled: true, minimum: 1, maximum: 10 }, metadata: { sku: 'KET-1' } },
        { ...filters, adjustable_quantity: { enabled: true } },
        { ...filters, adjustable_quantity: { enabled: false } },
      ],
    });
    const items = (await stripe.checkout.sessions.listLineItems(session.id)).data;
    assert.deepEqual(items.map((item) => item.adjustable_quantity), [{ enabled: true, maximum: 10, minimum: 1 }, { enabled: true, maximum: 99, minimum: 0 }, null]);
    assert.deepEqual(items.map((item) => item.metadata), [{ sku: 'KET-1' }, {}, {}]);

    const before = await counts();
    const cases: Array<[Stripe.Checkout.SessionCreateParams.LineItem, string, RegExp]> = [
      [{ ...kettle, adjustable_quantity: { enabled: true, minimum: 5, maximum: 2 } }, 'line_items[0][adjustable_quantity][minimum]', /more than its maximum/],
      [{ ...kettle, quantity: 12, adjustable_quantity: { enabled: true, maximum: 10 } }, 'line_items[0][quantity]', /between the adjustable minimum \(0\) and maximum \(10\)/],
      [{ ...kettle, quantity: 1, adjustable_quantity: { enabled: true, minimum: 2 } }, 'line_items[0][quantity]', /between/],
      [{ ...kettle, adjustable_quantity: { enabled: true, maximum: 10_000 } }, 'line_items[0][adjustable_quantity][maximum]', /./],
      [{ ...kettle, adjustable_quantity: { enabled: false, maximum: 5 } }, 'line_items[0][adjustable_quantity][enabled]', /only with/],
      [{ ...kettle, metadata: Object.fromEntries(Array.from({ length: 51 }, (_, index) => [`k${index}`, 'v'])) }, 'line_items[0][metadata]', /./],
    ];
    for (const [item, param, message] of cases) {
      const error = await stripe.checkout.sessions.create({ ...order, line_items: [item] }).then(() => undefined, (caught: unknown) => caught as Stripe.errors.StripeError);
      assert.equal(error?.param, param, `${JSON.stringify(item)}: ${error?.message}`);
      assert.match(error?.message ?? '', message);
      assert.equal(error?.statusCode, 400);
    }
    assert.deepEqual(await counts(), before, 'no session, PaymentIntent or audit record made');
  });
});

describe('Changing quantities on the hosted page', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  let browser: Browser;
  let page: Page;
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  before(async () => {
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    page = await (await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 1400 } })).newPage();
  });
  after(async () => {
    await browser?.close();
  });

  test('the shopper buys three kettles: the page, the PaymentIntent, the line items and the receipt agree', async () => {
    const session = await stripe.checkout.sessions.create({
      ...order, line_items: [{ ...kettle, adjustable_quantity: { enabled: true, minimum: 1, maximum: 5 } }, filters],
      shipping_options: [{ shipping_rate_data: { display_name: 'Standard', fixed_amount: { amount: 500, currency: 'usd' } } }],
    });
    const rate = session.shipping_options[0]?.shipping_rate;
    await page.goto(session.url ?? '');
    assert.equal(await page.locator('.qty-input').count(), 1, 'only the adjustable item has a field');
    assert.equal(await page.locator('#total').textContent(), '$57.00');

    // Refused by name, changing nothing: above the bound, a fixed item's quantity, a page showing another total.
    const above = await confirmFromPage(page, session.id, { shipping_rate: rate, quantities: [6, 2], amount: '30700' });
    assert.deepEqual([above.status, above.body.field, above.body.message], [400, 'quantity.0', strings.en.quantityOutOfRange.replace('{minimum}', '1').replace('{maximum}', '5')]);
    const fixed = await confirmFromPage(page, session.id, { shipping_rate: rate, quantities: [1, 3], amount: '6200' });
    assert.deepEqual([fixed.status, fixed.body.field], [400, 'quantity.1']);
    const stale = await confirmFromPage(page, session.id, { shipping_rate: rate, quantities: [2, 2] });
    assert.equal(stale.body.state, 'redirect', 'the page showed the total of one kettle');
    assert.equal((await stripe.paymentIntents.retrieve(session.payment_intent as string)).amount, 5_700, 'nothing changed');

    await page.fill('#quantity-0', '3');
    assert.deepEqual([await page.locator('#item-amount-0').textContent(), await page.locator('#subtotal').textContent(), await page.locator('#total').textContent(), await page.locator('#pay').textContent()],
      ['$126.00', '$136.00', '$141.00', 'Pay $141.00']);
    // Past the bound, the field comes back within it when left, and so does the total.
    await page.fill('#quantity-0', '9');
    await page.locator('#quantity-0').blur();
    assert.deepEqual([await page.locator('#quantity-0').inputValue(), await page.locator('#total').textContent()], ['5', '$225.00']);
    await page.fill('#quantity-0', '3');
    await page.locator('#quantity-0').blur();
    await fillCard(page);
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-quantities.png'));
    await clickThrough(page, '#pay', /\/done/);

    const paid = await stripe.checkout.sessions.retrieve(session.id, { expand: ['payment_intent'] });
    assert.deepEqual([paid.status, paid.amount_subtotal, paid.amount_total], ['complete', 13_600, 14_100]);
    assert.deepEqual([(paid.payment_intent as Stripe.PaymentIntent).amount_received], [14_100]);
    const items = (await stripe.checkout.sessions.listLineItems(session.id)).data;
    assert.deepEqual(items.map((item) => [item.description, item.quantity, item.amount_total]), [['Pour-over kettle', 3, 12_600], ['Paper filters', 2, 1_000]]);
    const receipt = await server.database.db.selectFrom('shopper_messages').select('body').where('reference', '=', session.id).executeTakeFirstOrThrow();
    assert.match(receipt.body, /3 × Pour-over kettle/);
    assert.match(receipt.body, /payment of 141\.00 USD/);
  });

  test('two tabs paying different quantities at once: one is paid, and what it paid is the order the session shows', async () => {
    const session = await stripe.checkout.sessions.create({ ...order, line_items: [{ ...kettle, adjustable_quantity: { enabled: true, minimum: 1, maximum: 5 } }] });
    const shopper = stripeClient(server, server.publishableKey);
    const card = async () => (await shopper.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } })).id;
    const [first, second] = [await card(), await card()];
    await page.goto(session.url ?? '');
    const answers = await Promise.all([
      confirmFromPage(page, session.id, { quantities: [2], amount: '8400', payment_method: first }),
      confirmFromPage(page, session.id, { quantities: [3], amount: '12600', payment_method: second }),
    ]);
    // A tab that finds the session paid by the other is shown the result too; what matters is that one was charged.
    assert.ok(answers.every((answer) => answer.body.state === 'complete' || answer.body.state === 'redirect'), JSON.stringify(answers.map((answer) => answer.body)));
    const paid = await stripe.checkout.sessions.retrieve(session.id, { expand: ['payment_intent'] });
    const items = (await stripe.checkout.sessions.listLineItems(session.id)).data;
    const intent = paid.payment_intent as Stripe.PaymentIntent;
    assert.equal(paid.status, 'complete');
    assert.equal(intent.amount_received, paid.amount_total, 'the PaymentIntent was paid the session\'s total');
    assert.equal(paid.amount_total, items.reduce((sum, item) => sum + item.amount_total, 0), 'the total is the items the session shows');
    assert.ok(paid.amount_total === 8_400 || paid.amount_total === 12_600);
    const charges = (await stripe.charges.list({ payment_intent: intent.id })).data;
    assert.deepEqual(charges.filter((charge) => charge.status === 'succeeded').map((charge) => charge.amount), [paid.amount_total], 'one charge, for the total shown');
  });

  test('an item taken down to none leaves the order; an empty order is refused before a card is sent', async () => {
    const session = await stripe.checkout.sessions.create({
      ...order, line_items: [{ ...kettle, adjustable_quantity: { enabled: true } }, { ...filters, adjustable_quantity: { enabled: true } }],
    });
    await page.goto(session.url ?? '');
    await page.fill('#quantity-0', '0');
    await page.fill('#quantity-1', '0');
    await fillCard(page);
    const methods = await server.database.db.selectFrom('payment_methods').select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
    await page.click('#pay');
    await page.locator('#error', { hasText: strings.en.orderEmpty }).waitFor();
    assert.equal(await page.locator('#quantity-0').getAttribute('aria-invalid'), 'true');
    const after = await server.database.db.selectFrom('payment_methods').select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
    assert.equal(after.n, methods.n, 'no card was sent for an empty order');
    // The server refuses it too.
    const empty = await confirmFromPage(page, session.id, { quantities: [0, 0], amount: '0' });
    assert.deepEqual([empty.status, empty.body.message], [400, strings.en.orderEmpty]);

    await page.fill('#quantity-1', '3');
    assert.equal(await page.locator('#total').textContent(), '$15.00');
    await clickThrough(page, '#pay', /\/done/);
    const items = (await stripe.checkout.sessions.listLineItems(session.id)).data;
    assert.deepEqual(items.map((item) => [item.description, item.quantity]), [['Paper filters', 3]], 'the kettle left the order');
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).amount_total, 1_500);
    const receipt = await server.database.db.selectFrom('shopper_messages').select('body').where('reference', '=', session.id).executeTakeFirstOrThrow();
    assert.doesNotMatch(receipt.body, /kettle/);
  });
});
