import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { browserMissing, clickThrough, launchTrusting, wholePageScreenshot } from '../support/browser.ts';
import { startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: a Checkout Session asks the shopper for a shipping address (in the countries the merchant ships to), a
// billing address and a phone number when the merchant asks, as Stripe's Checkout does. What the shopper gives is
// in the session (`collected_information.shipping_details`, `customer_details`) and the shipping address on the
// PaymentIntent. A missing field or a country not shipped to is refused by name before any card is sent, on the page
// and again by the server; bad session parameters are refused by name and make nothing.
let server: TestServer;
let stripe: Stripe;

before(async () => {
  server = await startTestServer();
  stripe = server.stripe;
});
after(async () => {
  await server.close();
});

const order = {
  mode: 'payment' as const, success_url: 'https://shop.example/thanks', cancel_url: 'https://shop.example/cart', customer_email: 'shopper@example.com',
  line_items: [{ price_data: { currency: 'usd', unit_amount: 4_200, product_data: { name: 'Pour-over kettle' } }, quantity: 1 }],
};

async function count(table: 'checkout_sessions' | 'payment_intents' | 'payment_methods'): Promise<number> {
  const row = await server.database.db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('Checkout Sessions collecting addresses and a phone number (API)', () => {
  test('the session shows what it asks for; bad values are refused by name and make nothing', async () => {
    const asking = await stripe.checkout.sessions.create({
      ...order, billing_address_collection: 'required', shipping_address_collection: { allowed_countries: ['US', 'CA', 'US'] }, phone_number_collection: { enabled: true },
    });
    assert.equal(asking.billing_address_collection, 'required');
    assert.deepEqual(asking.shipping_address_collection, { allowed_countries: ['US', 'CA'] });
    assert.deepEqual(asking.phone_number_collection, { enabled: true });
    assert.equal(asking.collected_information, null, 'nothing collected yet');
    const plain = await stripe.checkout.sessions.create(order);
    assert.deepEqual([plain.billing_address_collection, plain.shipping_address_collection, plain.phone_number_collection], [null, null, { enabled: false }]);

    const before = [await count('checkout_sessions'), await count('payment_intents')];
    const cases: Array<[Partial<Stripe.Checkout.SessionCreateParams>, string]> = [
      [{ shipping_address_collection: { allowed_countries: ['US', 'XX' as 'US'] } }, 'shipping_address_collection[allowed_countries][1]'],
      [{ shipping_address_collection: { allowed_countries: ['us' as 'US'] } }, 'shipping_address_collection[allowed_countries][0]'],
      [{ shipping_address_collection: { allowed_countries: ['USA' as 'US'] } }, 'shipping_address_collection[allowed_countries][0]'],
      [{ shipping_address_collection: { allowed_countries: ['CA', 'EU' as 'US'] } }, 'shipping_address_collection[allowed_countries][1]'],
      [{ billing_address_collection: 'always' as 'auto' }, 'billing_address_collection'],
      [{ phone_number_collection: { enabled: 'yes' as unknown as boolean } }, 'phone_number_collection[enabled]'],
    ];
    for (const [extra, param] of cases) {
      const error = await stripe.checkout.sessions.create({ ...order, ...extra }).then(() => undefined, (caught: unknown) => caught as Stripe.errors.StripeError);
      assert.equal(error?.param, param, `${JSON.stringify(extra)}: ${error?.message}`);
      assert.equal(error?.statusCode, 400);
    }
    assert.deepEqual([await count('checkout_sessions'), await count('payment_intents')], before, 'no session or PaymentIntent made');
  });
});

describe('Addresses and a phone number given on the hosted page', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  let browser: Browser;
  let page: Page;
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  before(async () => {
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    // Tall enough for the whole form: a click that first scrolls the page was seen to land before the button.
    page = await (await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 1800 } })).newPage();
  });
  after(async () => {
    await browser?.close();
  });

  async function fillAddress(part: 'shipping' | 'billing', values: { name: string; line1: string; city: string; postal: string; country: string; state?: string }): Promise<void> {
    await page.fill(`#${part}-name`, values.name);
    await page.fill(`#${part}-line1`, values.line1);
    await page.fill(`#${part}-city`, values.city);
    await page.fill(`#${part}-postal-code`, values.postal);
    if (values.state !== undefined) await page.fill(`#${part}-state`, values.state);
    await page.selectOption(`#${part}-country`, values.country);
  }

  test('missing fields and a country not shipped to are refused before a card is sent; then the order pays and keeps what was given', async () => {
    const session = await stripe.checkout.sessions.create({
      ...order, billing_address_collection: 'required', shipping_address_collection: { allowed_countries: ['US', 'CA'] }, phone_number_collection: { enabled: true },
    });
    await page.goto(session.url ?? '');
    assert.deepEqual(await page.locator('#shipping-country option').allTextContents(), ['', 'Canada', 'United States'], 'only the countries shipped to, by name');
    assert.ok((await page.locator('#billing-country option').count()) > 200, 'a billing address may be anywhere');
    const frame = page.frameLocator('#card-frame');
    await frame.locator('#number').fill('4242 4242 4242 4242');
    await frame.locator('#expiry').fill('12 / 34');
    await frame.locator('#cvc').fill('123');

    // Nothing filled: the first missing field is named and focused, and no card is sent.
    const methodsBefore = await count('payment_methods');
    await page.click('#pay');
    await page.locator('#error:not([hidden])').waitFor();
    assert.equal((await page.locator('#error').textContent())?.trim(), strings.en.fillIn.replace('{field}', strings.en.fullName));
    assert.equal(await page.locator('#shipping-name').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate('document.activeElement?.id'), 'shipping-name');
    assert.equal(await count('payment_methods'), methodsBefore, 'no card was sent for an order that could not go on');

    await fillAddress('shipping', { name: 'Ada Lovelace', line1: '10 Downing Way', city: 'Toronto', postal: 'M5V 2T6', country: 'CA', state: 'ON' });
    await fillAddress('billing', { name: 'Ada L. Byron', line1: '1 Market St', city: 'San Francisco', postal: '94105', country: 'US', state: 'CA' });
    await page.click('#pay');
    await page.locator('#error', { hasText: strings.en.contactPhone }).waitFor();
    assert.equal(await page.locator('#phone-number').getAttribute('aria-invalid'), 'true');

    // The server checks again: a page that sends a country the merchant does not ship to is refused, naming the field.
    const forged = await page.evaluate(`(async () => {
      const config = JSON.parse(document.getElementById('checkout-config').textContent);
      const response = await fetch('/pay/${session.id}/confirm', { method: 'POST', headers: { 'content-type': 'application/json', 'x-coffer-csrf': config.csrf },
        body: JSON.stringify({ method: 'card', payment_method: 'pm_000000000000000000000000', amount: config.amount, currency: config.currency,
          details: { 'shipping.name': 'Ada', 'shipping.line1': '1 Rue', 'shipping.city': 'Paris', 'shipping.country': 'FR', 'billing.name': 'Ada', 'billing.line1': '1', 'billing.city': 'X', 'billing.country': 'US', phone: '+33 1 23 45 67 89' } }) });
      return { status: response.status, body: await response.json() };
    })()`) as { status: number; body: { state: string; field?: string; message?: string } };
    assert.deepEqual([forged.status, forged.body.field, forged.body.message], [400, 'shipping.country', strings.en.countryNotShipped]);
    const unconfirmed = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.deepEqual([unconfirmed.status, unconfirmed.shipping], ['requires_payment_method', null], 'nothing was confirmed');
    const kept = await server.database.db.selectFrom('checkout_sessions').select('collected').where('id', '=', session.id).executeTakeFirstOrThrow();
    assert.equal(kept.collected, null, 'the refused details were not kept');

    // A phone number that is not one is refused on the page, as the server would, before a card is sent.
    await page.fill('#phone-number', '12');
    await page.click('#pay');
    await page.locator('#error', { hasText: strings.en.phoneInvalid }).waitFor();
    assert.equal(await count('payment_methods'), methodsBefore, 'still no card sent');
    await page.fill('#phone-number', '+1 416 555 0100');
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-addresses.png'));
    await clickThrough(page, '#pay', /\/done/);

    const paid = await stripe.checkout.sessions.retrieve(session.id, { expand: ['payment_intent'] });
    assert.deepEqual([paid.status, paid.payment_status], ['complete', 'paid']);
    assert.deepEqual(paid.collected_information?.shipping_details, {
      name: 'Ada Lovelace', address: { line1: '10 Downing Way', line2: null, city: 'Toronto', state: 'ON', postal_code: 'M5V 2T6', country: 'CA' },
    });
    assert.equal(paid.customer_details?.name, 'Ada L. Byron');
    assert.equal(paid.customer_details?.phone, '+1 416 555 0100');
    assert.deepEqual(paid.customer_details?.address, { line1: '1 Market St', line2: null, city: 'San Francisco', state: 'CA', postal_code: '94105', country: 'US' });
    // API versions before 2025-03-31 show the shipping address as the session's own shipping_details, as Stripe's did.
    const older = await stripeClient(server, server.secretKey, { apiVersion: '2024-04-10' as Stripe.LatestApiVersion }).checkout.sessions.retrieve(session.id);
    const olderFields = older as unknown as Record<string, unknown>;
    assert.deepEqual(olderFields.shipping_details, paid.collected_information?.shipping_details);
    assert.equal('collected_information' in olderFields, false);
    const intent = paid.payment_intent as Stripe.PaymentIntent;
    assert.equal(intent.shipping?.name, 'Ada Lovelace');
    assert.equal(intent.shipping?.address?.country, 'CA');
    assert.equal(intent.shipping?.phone, '+1 416 555 0100');
  });

  test('a session that asks for nothing shows no such field', async () => {
    const session = await stripe.checkout.sessions.create(order);
    await page.goto(session.url ?? '');
    assert.equal(await page.locator('[data-detail]').count(), 0);
    await page.goto(`${session.url ?? ''}?lang=zh`);
    const chinese = await stripe.checkout.sessions.create({ ...order, shipping_address_collection: { allowed_countries: ['CN', 'HK'] } });
    await page.goto(`${chinese.url ?? ''}?lang=zh`);
    assert.equal((await page.locator('fieldset[data-part="shipping"] legend').textContent())?.trim(), strings.zh.shippingAddress);
    assert.deepEqual((await page.locator('#shipping-country option').allTextContents()).filter((name) => name !== '').sort(), ['中国', '中国香港特别行政区'].sort());
  });
});
