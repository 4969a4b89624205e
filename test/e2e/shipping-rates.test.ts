import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { createApiKey } from '../../src/identity/merchants.ts';
import { browserMissing, clickThrough, confirmFromPage, fillCard, launchTrusting, wholePageScreenshot } from '../support/browser.ts';
import { rawRequest, stripeClient, startTestServer, type TestServer } from '../support/server.ts';
import { refusedWithNothingChanged as refusedUnchanged, rowCounts } from '../support/unchanged.ts';

// Goal: a merchant's shipping rates are made, read, archived and listed through the official SDK as at Stripe; a
// Checkout Session offers them (`shipping_options`, existing rates or new ones), shows the first as chosen, and the
// shopper picks one on the hosted page: the total shown, the PaymentIntent's amount, the charge, the session's
// `shipping_cost` and the receipt all agree. Every bad input is refused by name and changes nothing.
let server: TestServer;
let stripe: Stripe;

before(async () => {
  server = await startTestServer();
  stripe = server.stripe;
});
after(async () => {
  await server.close();
});

/** The tables a refused request could have written to. */
const counted = ['shipping_rates', 'checkout_sessions', 'payment_intents', 'events', 'audit_log'] as const;
const counts = () => rowCounts(server, counted);
const refusedWithNothingChanged = (call: () => Promise<unknown>, param: string, message: RegExp) => refusedUnchanged(server, counted, call, param, message);

const standard: Stripe.ShippingRateCreateParams = {
  display_name: 'Standard', type: 'fixed_amount', fixed_amount: { amount: 500, currency: 'usd' },
  delivery_estimate: { minimum: { unit: 'business_day', value: 5 }, maximum: { unit: 'business_day', value: 7 } },
};
const order = {
  mode: 'payment' as const, success_url: 'https://shop.example/thanks', cancel_url: 'https://shop.example/cart', customer_email: 'shopper@example.com',
  line_items: [{ price_data: { currency: 'usd', unit_amount: 4_200, product_data: { name: 'Pour-over kettle' } }, quantity: 1 }],
};

describe('shipping rates (API)', () => {
  test('made, read, archived and listed within the merchant and mode, as at Stripe', async () => {
    const rate = await stripe.shippingRates.create({ ...standard, metadata: { zone: 'domestic' }, tax_behavior: 'exclusive' });
    assert.match(rate.id, /^shr_/);
    assert.deepEqual([rate.object, rate.type, rate.active, rate.display_name, rate.tax_behavior, rate.tax_code, rate.livemode], ['shipping_rate', 'fixed_amount', true, 'Standard', 'exclusive', null, false]);
    assert.deepEqual(rate.fixed_amount, { amount: 500, currency: 'usd' });
    assert.deepEqual(rate.delivery_estimate, { minimum: { unit: 'business_day', value: 5 }, maximum: { unit: 'business_day', value: 7 } });
    assert.deepEqual(rate.metadata, { zone: 'domestic' });
    assert.deepEqual(await stripe.shippingRates.retrieve(rate.id), rate);
    const open = await stripe.shippingRates.create({ display_name: 'Pickup', fixed_amount: { amount: 0, currency: 'usd' }, delivery_estimate: { minimum: { unit: 'hour', value: 2 } } });
    assert.deepEqual([open.delivery_estimate, open.tax_behavior], [{ minimum: { unit: 'hour', value: 2 }, maximum: null }, 'unspecified']);

    const archived = await stripe.shippingRates.update(rate.id, { active: false, metadata: { zone: '', tier: 'b' } });
    assert.deepEqual([archived.active, archived.metadata], [false, { tier: 'b' }]);
    // The tax behaviour is set once, while unspecified; what makes a rate never changes.
    await refusedWithNothingChanged(() => stripe.shippingRates.update(rate.id, { tax_behavior: 'inclusive' }), 'tax_behavior', /only once/);
    assert.equal((await stripe.shippingRates.update(open.id, { tax_behavior: 'inclusive' })).tax_behavior, 'inclusive');
    await refusedWithNothingChanged(() => stripe.shippingRates.update(open.id, { fixed_amount: { currency_options: { eur: { amount: 100 } } } }),
      'fixed_amount[currency_options]', /one currency/);
    await refusedWithNothingChanged(() => stripe.shippingRates.update('shr_unknown', { active: true }), 'id', /No such shipping rate: 'shr_unknown'/);

    const cny = await stripe.shippingRates.create({ display_name: '顺丰', fixed_amount: { amount: 1_200, currency: 'cny' } });
    const listed = await stripe.shippingRates.list({ limit: 2 });
    assert.deepEqual(listed.data.map((row) => row.id), [cny.id, open.id], 'newest first');
    assert.equal(listed.has_more, true);
    const all: string[] = [];
    for await (const row of stripe.shippingRates.list({ limit: 1 })) all.push(row.id);
    assert.deepEqual(all, [cny.id, open.id, rate.id]);
    assert.deepEqual((await stripe.shippingRates.list({ active: false })).data.map((row) => row.id), [rate.id]);
    assert.deepEqual((await stripe.shippingRates.list({ currency: 'CNY' })).data.map((row) => row.id), [cny.id]);

    // Another merchant, and the same merchant's live mode, see none of it.
    const other = stripeClient(server, server.otherSecretKey);
    assert.deepEqual((await other.shippingRates.list()).data, []);
    await assert.rejects(other.shippingRates.retrieve(rate.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    const live = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'secret', true)).key.reveal());
    assert.deepEqual((await live.shippingRates.list()).data, []);
    // A restricted key needs the shipping_rates resource.
    const key = async (permissions: Record<string, 'read' | 'write'>) => stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions })).key.reveal());
    await assert.rejects((await key({ products: 'write' })).shippingRates.list(), (error: Stripe.errors.StripeError) => error.statusCode === 403);
    const reader = await key({ shipping_rates: 'read' });
    assert.equal((await reader.shippingRates.retrieve(rate.id)).id, rate.id);
    await assert.rejects(reader.shippingRates.create(standard), (error: Stripe.errors.StripeError) => error.statusCode === 403);
  });

  test('bad rates are refused by name and write nothing', async () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ display_name: 'No amount' }, 'fixed_amount', /needs its amount/],
      [{ ...standard, display_name: '   ' }, 'display_name', /cannot be empty/],
      [{ ...standard, fixed_amount: { amount: -1, currency: 'usd' } }, 'fixed_amount[amount]', /./],
      [{ ...standard, fixed_amount: { amount: 1.5, currency: 'usd' } }, 'fixed_amount[amount]', /./],
      [{ ...standard, fixed_amount: { amount: 500, currency: 'zzz' } }, 'fixed_amount[currency]', /zzz/i],
      [{ ...standard, fixed_amount: { amount: 1_005, currency: 'kwd' } }, 'fixed_amount[amount]', /multiple of 10/],
      [{ ...standard, fixed_amount: { amount: 100_000_000_000, currency: 'usd' } }, 'fixed_amount[amount]', /no more than/],
      [{ ...standard, fixed_amount: { amount: 500, currency: 'usd', currency_options: { eur: { amount: 400 } } } }, 'fixed_amount[currency_options]', /one currency/],
      [{ ...standard, tax_code: 'txcd_92010001' }, 'tax_code', /no tax/],
      [{ ...standard, type: 'delivery' }, 'type', /./],
      [{ ...standard, delivery_estimate: { minimum: { unit: 'week', value: 2 }, maximum: { unit: 'day', value: 3 } } }, 'delivery_estimate[minimum]', /longer than its maximum/],
      [{ ...standard, delivery_estimate: { minimum: { unit: 'fortnight', value: 1 } } }, 'delivery_estimate[minimum][unit]', /./],
      [{ ...standard, delivery_estimate: { maximum: { unit: 'day', value: 0 } } }, 'delivery_estimate[maximum][value]', /./],
      [{ ...standard, colour: 'red' }, 'colour', /./],
    ];
    for (const [params, param, message] of cases) {
      await refusedWithNothingChanged(() => stripe.shippingRates.create(params as unknown as Stripe.ShippingRateCreateParams), param, message);
    }
  });
});

describe('Checkout Sessions with shipping options (API)', () => {
  test('the first option is chosen: its amount is in the total, the PaymentIntent and shipping_cost; rates made with the session are rates', async () => {
    const rate = await stripe.shippingRates.create(standard);
    const session = await stripe.checkout.sessions.create({
      ...order, shipping_options: [
        { shipping_rate: rate.id },
        { shipping_rate_data: { display_name: 'Express', fixed_amount: { amount: 1_500, currency: 'usd' }, delivery_estimate: { minimum: { unit: 'business_day', value: 1 }, maximum: { unit: 'business_day', value: 2 } } } },
      ],
    });
    const express = session.shipping_options[1]?.shipping_rate as string;
    assert.match(express, /^shr_/);
    assert.deepEqual(session.shipping_options, [{ shipping_amount: 500, shipping_rate: rate.id }, { shipping_amount: 1_500, shipping_rate: express }]);
    assert.deepEqual([session.amount_subtotal, session.amount_total, session.total_details?.amount_shipping], [4_200, 4_700, 500]);
    assert.deepEqual(session.shipping_cost, { amount_subtotal: 500, amount_tax: 0, amount_total: 500, shipping_rate: rate.id });
    assert.equal((await stripe.paymentIntents.retrieve(session.payment_intent as string)).amount, 4_700, 'the PaymentIntent charges the total with shipping');
    const made = await stripe.shippingRates.retrieve(express);
    assert.deepEqual([made.display_name, made.fixed_amount?.amount, made.active], ['Express', 1_500, true]);

    const expanded = await stripe.checkout.sessions.retrieve(session.id, { expand: ['shipping_cost.shipping_rate', 'shipping_options.shipping_rate'] });
    assert.equal((expanded.shipping_cost?.shipping_rate as Stripe.ShippingRate).display_name, 'Standard');
    assert.deepEqual(expanded.shipping_options.map((option) => (option.shipping_rate as Stripe.ShippingRate).display_name), ['Standard', 'Express']);
    // Line items are the goods alone, as at Stripe.
    assert.deepEqual((await stripe.checkout.sessions.listLineItems(session.id)).data.map((item) => item.amount_total), [4_200]);
    const plain = await stripe.checkout.sessions.create(order);
    assert.deepEqual([plain.shipping_cost, plain.shipping_options, plain.amount_subtotal, plain.amount_total], [null, [], 4_200, 4_200]);
  });

  test('bad options are refused by name and make nothing', async () => {
    const rate = await stripe.shippingRates.create(standard);
    const archived = await stripe.shippingRates.create(standard);
    await stripe.shippingRates.update(archived.id, { active: false });
    const euro = await stripe.shippingRates.create({ display_name: 'EU', fixed_amount: { amount: 500, currency: 'eur' } });
    const others = await stripeClient(server, server.otherSecretKey).shippingRates.create(standard);
    const data = { display_name: 'Courier', fixed_amount: { amount: 900, currency: 'usd' } };
    const cases: Array<[unknown[], string, RegExp]> = [
      [[{ shipping_rate: 'shr_unknown' }], 'shipping_options[0][shipping_rate]', /No such shipping rate/],
      [[{ shipping_rate: archived.id }], 'shipping_options[0][shipping_rate]', /archived/],
      [[{ shipping_rate: euro.id }], 'shipping_options[0][shipping_rate]', /session's currency/],
      [[{ shipping_rate: rate.id }, { shipping_rate: rate.id }], 'shipping_options[1][shipping_rate]', /offered twice/],
      [[{ shipping_rate: rate.id, shipping_rate_data: data }], 'shipping_options[0][shipping_rate]', /exactly one/],
      [[{ shipping_rate_data: { ...data, fixed_amount: { amount: 900, currency: 'cny' } } }], 'shipping_options[0][shipping_rate_data][fixed_amount][currency]', /session's currency/],
      [[{ shipping_rate_data: { ...data, tax_code: 'txcd_92010001' } }], 'shipping_options[0][shipping_rate_data][tax_code]', /no tax/],
      [[{ shipping_rate_data: { ...data, display_name: ' ' } }], 'shipping_options[0][shipping_rate_data][display_name]', /cannot be empty/],
      [[{ shipping_rate_data: { ...data, fixed_amount: { amount: 99_999_999, currency: 'usd' } } }], 'shipping_options', /largest amount/],
      [Array.from({ length: 6 }, () => ({ shipping_rate_data: data })), 'shipping_options', /./],
    ];
    for (const [options, param, message] of cases) {
      await refusedWithNothingChanged(() => stripe.checkout.sessions.create({ ...order, shipping_options: options as Stripe.Checkout.SessionCreateParams.ShippingOption[] }), param, message);
    }
    // An option with neither (the SDK's form encoding drops an empty object, so sent as JSON).
    const empty = await counts();
    const neither = await rawRequest(server, 'POST', '/v1/checkout/sessions', { key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ ...order, shipping_options: [{}] }) });
    assert.deepEqual([neither.status, (neither.json.error as { param?: string }).param], [400, 'shipping_options[0][shipping_rate]']);
    assert.deepEqual(await counts(), empty);
    // Another merchant's rate is unknown here; naming it leaves one record, of the attempt, and nothing else.
    const before = await counts();
    await assert.rejects(stripe.checkout.sessions.create({ ...order, shipping_options: [{ shipping_rate: rate.id }, { shipping_rate: others.id }] }),
      (error: Stripe.errors.StripeError) => error.param === 'shipping_options[1][shipping_rate]' && /No such shipping rate/.test(error.message));
    assert.deepEqual(await counts(), { ...before, audit_log: before.audit_log + 1 });
    const attempt = await server.database.db.selectFrom('audit_log').select(['action', 'object_id']).orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    assert.deepEqual([attempt.action, attempt.object_id], ['api_request.cross_merchant_access', others.id]);
  });
});

describe('Choosing a shipping rate on the hosted page', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  let browser: Browser;
  let page: Page;
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  before(async () => {
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    page = await (await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 1600 } })).newPage();
  });
  after(async () => {
    await browser?.close();
  });

  test('the shopper picks express: the page, the PaymentIntent, the charge, the session and the receipt all show it', async () => {
    const standardRate = await stripe.shippingRates.create(standard);
    const session = await stripe.checkout.sessions.create({
      ...order, shipping_address_collection: { allowed_countries: ['US'] }, shipping_options: [
        { shipping_rate: standardRate.id },
        { shipping_rate_data: { display_name: 'Express', fixed_amount: { amount: 1_500, currency: 'usd' }, delivery_estimate: { minimum: { unit: 'day', value: 1 }, maximum: { unit: 'week', value: 1 } } } },
        { shipping_rate_data: { display_name: 'Pickup in store', fixed_amount: { amount: 0, currency: 'usd' } } },
      ],
    });
    const express = session.shipping_options[1]?.shipping_rate as string;
    await page.goto(session.url ?? '');
    const options = await page.locator('.shipping-options label').allTextContents();
    assert.deepEqual(options, ['Standard5–7 business days$5.00', 'Express1 day to 1 week$15.00', 'Pickup in storeFree']);
    assert.equal(await page.locator('#total').textContent(), '$47.00');
    assert.equal(await page.locator('#shipping-line').textContent(), 'Shipping: Standard');
    assert.equal(await page.locator('#pay').textContent(), 'Pay $47.00');

    // A page that sends a rate the session does not offer is refused, and nothing changes.
    const address = { 'shipping.name': 'Ada', 'shipping.line1': '1 Main St', 'shipping.city': 'Austin', 'shipping.country': 'US' };
    const refused = await confirmFromPage(page, session.id, { shipping_rate: 'shr_000000000000000000000000', details: address });
    assert.deepEqual([refused.status, refused.body.field, refused.body.message], [400, 'shipping_rate', strings.en.chooseShipping]);
    // A page that shows another amount than the rate it sends makes is told the payment changed; nothing changes.
    const stale = await confirmFromPage(page, session.id, { shipping_rate: express, details: address });
    assert.equal(stale.body.state, 'redirect');
    assert.match(stale.body.redirect ?? '', /changed=1/);
    // Nor does a confirmation refused for its card, sent with another rate and the amount it makes.
    const noCard = await confirmFromPage(page, session.id, { shipping_rate: express, details: address, amount: '5700', payment_method: 'not-a-card' });
    assert.deepEqual([noCard.status, noCard.body.message], [400, strings.en.failed]);
    const unpaid = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.deepEqual([unpaid.status, unpaid.amount], ['requires_payment_method', 4_700], 'nothing changed, nothing was confirmed');
    assert.deepEqual((await stripe.checkout.sessions.retrieve(session.id)).shipping_cost?.shipping_rate, standardRate.id);

    // Back to standard, then express again on the page: the figures follow, without a request.
    await page.check(`input[name="shipping_rate"][value="${standardRate.id}"]`);
    assert.equal(await page.locator('#total').textContent(), '$47.00');
    await page.check(`input[name="shipping_rate"][value="${express}"]`);
    assert.deepEqual([await page.locator('#total').textContent(), await page.locator('#shipping-amount').textContent(), await page.locator('#pay').textContent()],
      ['$57.00', '$15.00', 'Pay $57.00']);
    await page.fill('#shipping-name', 'Ada Lovelace');
    await page.fill('#shipping-line1', '1 Main St');
    await page.fill('#shipping-city', 'Austin');
    await page.selectOption('#shipping-country', 'US');
    await fillCard(page);
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-shipping.png'));
    await clickThrough(page, '#pay', /\/done/);

    const paid = await stripe.checkout.sessions.retrieve(session.id, { expand: ['payment_intent.latest_charge'] });
    assert.deepEqual([paid.status, paid.amount_subtotal, paid.amount_total, paid.total_details?.amount_shipping], ['complete', 4_200, 5_700, 1_500]);
    assert.deepEqual(paid.shipping_cost, { amount_subtotal: 1_500, amount_tax: 0, amount_total: 1_500, shipping_rate: express });
    const intent = paid.payment_intent as Stripe.PaymentIntent;
    assert.deepEqual([intent.status, intent.amount, intent.amount_received, (intent.latest_charge as Stripe.Charge).amount], ['succeeded', 5_700, 5_700, 5_700]);
    const event = (await stripe.events.list({ type: 'checkout.session.completed' })).data.find((candidate) => (candidate.data.object as Stripe.Checkout.Session).id === session.id);
    assert.deepEqual((event?.data.object as Stripe.Checkout.Session).shipping_cost?.shipping_rate, express, 'the event shows the choice');
    const receipt = await server.database.db.selectFrom('shopper_messages').select('body').where('reference', '=', session.id).executeTakeFirstOrThrow();
    assert.match(receipt.body, /payment of 57\.00 USD/);
    assert.match(receipt.body, /Shipping: Express, 15\.00 USD/);
    const audit = await server.database.db.selectFrom('audit_log').select(['actor_type', 'details']).where('action', '=', 'checkout_session.shopper_choice')
      .where('object_id', '=', session.id).execute();
    assert.deepEqual(audit.map((row) => [row.actor_type, (row.details as { shipping_rate?: string }).shipping_rate]), [['shopper', express]], 'one change of choice, by the shopper');
  });

  test('a shopper who left a 3-D Secure challenge open may pay for another shipping rate: the challenge is ended first', async () => {
    const session = await stripe.checkout.sessions.create({
      ...order, shipping_options: [
        { shipping_rate_data: { display_name: 'Standard', fixed_amount: { amount: 500, currency: 'usd' } } },
        { shipping_rate_data: { display_name: 'Express', fixed_amount: { amount: 1_500, currency: 'usd' } } },
      ],
    });
    const [standardId, expressId] = session.shipping_options.map((option) => option.shipping_rate as string);
    const shopper = stripeClient(server, server.publishableKey);
    const card = async (number: string) => (await shopper.paymentMethods.create({ type: 'card', card: { number, exp_month: 12, exp_year: 2034, cvc: '123' } })).id;
    await page.goto(session.url ?? '');
    const challenged = await confirmFromPage(page, session.id, { shipping_rate: standardId, payment_method: await card('4000000000003220') });
    assert.equal(challenged.body.state, 'redirect', JSON.stringify(challenged.body));
    assert.equal((await stripe.paymentIntents.retrieve(session.payment_intent as string)).status, 'requires_action');
    const paid = await confirmFromPage(page, session.id, { shipping_rate: expressId, amount: '5700', payment_method: await card('4242424242424242') });
    assert.equal(paid.body.state, 'complete', JSON.stringify(paid.body));
    const intent = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.deepEqual([intent.status, intent.amount_received], ['succeeded', 5_700]);
    const charges = (await stripe.charges.list({ payment_intent: intent.id })).data;
    assert.deepEqual(charges.map((charge) => [charge.amount, charge.status]).sort(), [[4_700, 'failed'], [5_700, 'succeeded']], 'the challenged attempt ended unpaid');
    const completed = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([completed.status, completed.amount_total, completed.shipping_cost?.shipping_rate], ['complete', 5_700, expressId]);
  });

  test('in Chinese, the delivery estimates and the free option are said in Chinese', async () => {
    const session = await stripe.checkout.sessions.create({
      ...order, shipping_options: [
        { shipping_rate_data: { display_name: '标准快递', fixed_amount: { amount: 0, currency: 'usd' }, delivery_estimate: { minimum: { unit: 'business_day', value: 3 }, maximum: { unit: 'business_day', value: 5 } } } },
        { shipping_rate_data: { display_name: '次日达', fixed_amount: { amount: 900, currency: 'usd' }, delivery_estimate: { maximum: { unit: 'day', value: 1 } } } },
      ],
    });
    await page.goto(`${session.url ?? ''}?lang=zh`);
    assert.equal((await page.locator('.shipping-options legend').textContent())?.trim(), strings.zh.shippingMethod);
    assert.deepEqual(await page.locator('.shipping-options .desc').allTextContents(), ['3–5 个工作日', '最多 1 天']);
    assert.equal(await page.locator('#shipping-amount').textContent(), strings.zh.shippingFree);
  });
});
