import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type Stripe from 'stripe';
import { browserMissing, clickThrough, launchTrusting, wholePageScreenshot } from '../support/browser.ts';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: a Checkout Session sells the merchant's catalogue as Stripe's does: `line_items[][price]` by price id,
// `price_data[product]` for a catalogue product at an amount of the moment, and `product_data` with a description
// and images. The order's amounts are fixed when the session is made: a later change to the catalogue does not
// change what the shopper pays. What cannot be sold (an archived price or product, another merchant's price, a
// price in another currency, a total below the currency's minimum) is refused by name and makes nothing.
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

const urls = { success_url: 'https://shop.example/thanks?session={CHECKOUT_SESSION_ID}', cancel_url: 'https://shop.example/cart' };

const countedTables = ['checkout_sessions', 'payment_intents', 'products', 'prices', 'events', 'audit_log'] as const;
async function counts(): Promise<Record<(typeof countedTables)[number], number>> {
  const result = {} as Record<(typeof countedTables)[number], number>;
  for (const table of countedTables) {
    const row = await server.database.db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
    result[table] = Number(row.n);
  }
  return result;
}

describe('Checkout Sessions selling catalogue prices (API)', { concurrency: false }, () => {
  test('price ids, catalogue products and product_data in one order; the amounts are the session\'s own', async () => {
    const beans = await stripe.products.create({ name: 'Coffee beans 1kg', description: 'Washed, from Nyeri', default_price_data: { currency: 'usd', unit_amount: 2_400 } });
    const grinder = await stripe.products.create({ name: 'Hand grinder' });
    const session = await stripe.checkout.sessions.create({
      mode: 'payment', ...urls,
      line_items: [
        { price: beans.default_price as string, quantity: 2 },
        { price_data: { currency: 'usd', unit_amount: 3_500, product: grinder.id }, quantity: 1 },
        { price_data: { currency: 'usd', unit_amount: 500, product_data: { name: 'Gift note', description: 'Handwritten', images: ['https://shop.example/note.png'] } }, quantity: 1 },
      ],
    });
    assert.equal(session.amount_total, 2 * 2_400 + 3_500 + 500);
    assert.equal(session.currency, 'usd');
    const intent = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.equal(intent.amount, 8_800);
    assert.equal(intent.description, 'Coffee beans 1kg, Hand grinder, Gift note');

    const items = await stripe.checkout.sessions.listLineItems(session.id, { expand: ['data.price.product'] });
    assert.deepEqual(items.data.map((item) => [item.description, item.quantity, item.amount_total]), [['Coffee beans 1kg', 2, 4_800], ['Hand grinder', 1, 3_500], ['Gift note', 1, 500]]);
    const [sold, adHoc, named] = items.data;
    assert.equal(sold?.price?.id, beans.default_price, 'the catalogue price, by its id');
    assert.equal(sold?.price?.active, true);
    assert.equal((sold?.price?.product as Stripe.Product).name, 'Coffee beans 1kg', 'its product, expanded');
    assert.equal((adHoc?.price?.product as Stripe.Product).id, grinder.id, 'price_data[product] names the catalogue product');
    assert.equal(adHoc?.price?.unit_amount, 3_500);
    assert.equal(adHoc?.price?.active, false, 'an amount of the moment is no catalogue price');
    assert.match(String(named?.price?.product), /^prod_/, 'product_data makes no catalogue product: its id stays an id');

    const expanded = await stripe.checkout.sessions.retrieve(session.id, { expand: ['line_items.data.price.product'] });
    assert.equal(((expanded.line_items?.data[0]?.price?.product) as Stripe.Product).id, beans.id);
    const paged = await stripe.checkout.sessions.listLineItems(session.id, { limit: 2 });
    assert.equal(paged.has_more, true);
    const rest = await stripe.checkout.sessions.listLineItems(session.id, { limit: 2, starting_after: paged.data[1]?.id ?? '' });
    assert.deepEqual([rest.data.map((item) => item.description), rest.has_more], [['Gift note'], false]);
    const walked = [];
    for await (const item of stripe.checkout.sessions.listLineItems(session.id, { limit: 1 })) walked.push(item.description);
    assert.deepEqual(walked, ['Coffee beans 1kg', 'Hand grinder', 'Gift note'], 'auto-pagination visits each item once, in order');

    // A later change to the catalogue changes no order already made.
    const dearer = await stripe.prices.create({ product: beans.id, currency: 'usd', unit_amount: 2_900 });
    await stripe.products.update(beans.id, { default_price: dearer.id, name: 'Coffee beans, 1 kg' });
    await stripe.prices.update(beans.default_price as string, { active: false });
    const again = await stripe.checkout.sessions.listLineItems(session.id);
    assert.deepEqual(again.data.map((item) => item.amount_total), [4_800, 3_500, 500]);
    assert.equal(again.data[0]?.price?.active, false, 'the price shows as the catalogue has it now');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).amount, 8_800);
  });

  test('what cannot be sold is refused by name, and nothing is made', async () => {
    const tea = await stripe.products.create({ name: 'Green tea', default_price_data: { currency: 'usd', unit_amount: 1_200 } });
    const teaPrice = tea.default_price as string;
    const old = await stripe.prices.create({ product: tea.id, currency: 'usd', unit_amount: 1_000 });
    await stripe.prices.update(old.id, { active: false });
    const retired = await stripe.products.create({ name: 'Retired blend', default_price_data: { currency: 'usd', unit_amount: 900 } });
    await stripe.products.update(retired.id, { active: false });
    const euro = await stripe.prices.create({ product: tea.id, currency: 'eur', unit_amount: 1_100 });
    const free = await stripe.prices.create({ product: tea.id, currency: 'usd', unit_amount: 0 });
    const theirs = await stripeClient(server, server.otherSecretKey).prices.create({ currency: 'usd', unit_amount: 700, product_data: { name: 'Their tea' } });
    const before = await counts();
    const cases: Array<[string, Stripe.Checkout.SessionCreateParams.LineItem[], string, RegExp]> = [
      ['an unknown price', [{ price: 'price_nothing', quantity: 1 }], 'line_items[0][price]', /No such price: 'price_nothing'/],
      ['another merchant\'s price', [{ price: theirs.id, quantity: 1 }], 'line_items[0][price]', /No such price/],
      ['an archived price', [{ price: teaPrice, quantity: 1 }, { price: old.id, quantity: 1 }], 'line_items[1][price]', /archived/],
      ['a price of an archived product', [{ price: retired.default_price as string, quantity: 1 }], 'line_items[0][price]', /product .* is archived/],
      ['an archived product in price_data', [{ price_data: { currency: 'usd', unit_amount: 900, product: retired.id }, quantity: 1 }], 'line_items[0][price_data][product]', /archived/],
      ['an unknown product in price_data', [{ price_data: { currency: 'usd', unit_amount: 900, product: 'prod_nothing' }, quantity: 1 }], 'line_items[0][price_data][product]', /No such product/],
      ['price and price_data', [{ price: teaPrice, price_data: { currency: 'usd', unit_amount: 900, product: tea.id }, quantity: 1 }], 'line_items[0][price_data]', /only specify one/],
      ['neither price nor price_data', [{ quantity: 1 }], 'line_items[0][price]', /Missing required param: line_items\[0\]\[price\]/],
      ['product and product_data', [{ price_data: { currency: 'usd', unit_amount: 900, product: tea.id, product_data: { name: 'x' } }, quantity: 1 }], 'line_items[0][price_data][product_data]', /exactly one of product/],
      ['prices in two currencies', [{ price: teaPrice, quantity: 1 }, { price: euro.id, quantity: 1 }], 'line_items[1][price]', /one currency: line_items\[1\] is in eur/],
      ['a total below the minimum', [{ price: free.id, quantity: 3 }], 'line_items', /below the smallest payment in usd/],
      ['a product_data image that is no URL', [{ price_data: { currency: 'usd', unit_amount: 900, product_data: { name: 'x', images: ['beans.png'] } }, quantity: 1 }], 'line_items[0][price_data][product_data][images][0]', /./],
    ];
    for (const [what, lineItems, param, message] of cases) {
      const error = await stripe.checkout.sessions.create({ mode: 'payment', ...urls, line_items: lineItems }).then(() => undefined, (caught: unknown) => caught as Stripe.errors.StripeError);
      assert.ok(error !== undefined, `${what}: refused`);
      assert.equal(error.param, param, `${what}: ${error.message}`);
      assert.match(error.message, message, what);
    }
    const { audit_log: auditAfter, ...afterRest } = await counts();
    const { audit_log: auditBefore, ...beforeRest } = before;
    assert.deepEqual(afterRest, beforeRest, 'no session, PaymentIntent, product, price or event was made');
    // The one record written is the security audit's: another merchant's price was tried.
    const written = await server.database.db.selectFrom('audit_log').select(['action', 'object_id']).orderBy('seq', 'desc').limit(auditAfter - auditBefore + 1).execute();
    assert.deepEqual(written.slice(0, auditAfter - auditBefore), [{ action: 'api_request.cross_merchant_access', object_id: theirs.id }]);
    // A free item with something to pay is an order.
    const withFree = await stripe.checkout.sessions.create({ mode: 'payment', ...urls, line_items: [{ price: free.id, quantity: 1 }, { price: teaPrice, quantity: 1 }] });
    assert.equal(withFree.amount_total, 1_200);
  });
});

describe('A catalogue order paid in a browser', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  let browser: Browser;
  let page: Page;
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  before(async () => {
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    // Tall enough for the whole page: with two described items the pay button sits on the edge of a 720-pixel
    // window, and a click that first scrolls the page there was seen to land before the button (no submit).
    page = await (await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 1100 } })).newPage();
  });
  after(async () => {
    await browser?.close();
  });

  test('the page lists the products with their descriptions; the card pays the session\'s total and completes it', async () => {
    const beans = await stripe.products.create({ name: 'Espresso blend 500 g', description: 'Roasted on Mondays', default_price_data: { currency: 'usd', unit_amount: 1_650 } });
    const session = await stripe.checkout.sessions.create({
      mode: 'payment', ...urls, customer_email: 'shopper@example.com',
      line_items: [{ price: beans.default_price as string, quantity: 2 }, { price_data: { currency: 'usd', unit_amount: 400, product_data: { name: 'Paper filters', description: 'Pack of 100' } }, quantity: 1 }],
    });
    await page.goto(session.url ?? '');
    const shown = await page.locator('.items li').allTextContents();
    assert.equal(shown.length, 2);
    assert.match(shown[0] ?? '', /Espresso blend 500 g.*Roasted on Mondays.*\$33\.00/s);
    assert.match(shown[1] ?? '', /Paper filters.*Pack of 100.*\$4\.00/s);
    assert.match(await page.locator('#total').textContent() ?? '', /\$37\.00/);
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-catalogue.png'));
    const frame = page.frameLocator('#card-frame');
    await frame.locator('#number').fill('4242 4242 4242 4242');
    await frame.locator('#expiry').fill('12 / 34');
    await frame.locator('#cvc').fill('123');
    await clickThrough(page, '#pay', /\/done/);
    const paid = await stripe.checkout.sessions.retrieve(session.id, { expand: ['payment_intent'] });
    assert.deepEqual([paid.status, paid.payment_status, (paid.payment_intent as Stripe.PaymentIntent).amount_received], ['complete', 'paid', 3_700]);
  });
});
