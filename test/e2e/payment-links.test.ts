import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { createApiKey } from '../../src/identity/merchants.ts';
import { browserMissing, clickThrough, fillCard, launchTrusting, wholePageScreenshot } from '../support/browser.ts';
import { rawRequest, stripeClient, startTestServer, type TestServer } from '../support/server.ts';

// Goal: a merchant makes a payment link through the official SDK, as at Stripe, from catalogue prices, with the
// options a Checkout Session takes; shoppers who open it each get a session of their own and pay it on the hosted
// page. Opening the address makes nothing; a link stops selling when archived or when it has been paid its limit of
// times; every bad input is refused by name and changes nothing.
let server: TestServer;
let stripe: Stripe;
let kettle: Stripe.Price;
let filters: Stripe.Price;

before(async () => {
  server = await startTestServer();
  stripe = server.stripe;
  kettle = await stripe.prices.create({ currency: 'usd', unit_amount: 4_200, product_data: { name: 'Pour-over kettle' } });
  filters = await stripe.prices.create({ currency: 'usd', unit_amount: 500, product_data: { name: 'Paper filters' } });
});
after(async () => {
  await server.close();
});

async function counts(): Promise<Record<string, number>> {
  const found: Record<string, number> = {};
  for (const table of ['payment_links', 'checkout_sessions', 'payment_intents', 'audit_log'] as const) {
    found[table] = Number((await server.database.db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n);
  }
  return found;
}

describe('payment links (API)', () => {
  test('made, read, listed and changed as at Stripe; the order stays as made', async () => {
    const rate = await stripe.shippingRates.create({ display_name: 'Standard', fixed_amount: { amount: 500, currency: 'usd' } });
    const link = await stripe.paymentLinks.create({
      line_items: [{ price: kettle.id, quantity: 1, adjustable_quantity: { enabled: true, maximum: 3 } }, { price: filters.id, quantity: 2 }],
      shipping_address_collection: { allowed_countries: ['US'] }, shipping_options: [{ shipping_rate: rate.id }],
      after_completion: { type: 'hosted_confirmation', hosted_confirmation: { custom_message: 'Thanks! Your kettle ships tomorrow.' } },
      restrictions: { completed_sessions: { limit: 5 } }, metadata: { campaign: 'autumn' },
    });
    assert.match(link.id, /^plink_/);
    assert.equal(link.url, `${server.url}/buy/${link.id}`);
    assert.deepEqual([link.object, link.active, link.currency, link.livemode], ['payment_link', true, 'usd', false]);
    assert.deepEqual(link.after_completion, { type: 'hosted_confirmation', hosted_confirmation: { custom_message: 'Thanks! Your kettle ships tomorrow.' } });
    assert.deepEqual(link.shipping_options, [{ shipping_amount: 500, shipping_rate: rate.id }]);
    assert.deepEqual(link.restrictions, { completed_sessions: { count: 0, limit: 5 } });
    assert.deepEqual(link.shipping_address_collection, { allowed_countries: ['US'] });
    assert.equal(link.line_items, undefined, 'line items only when expanded, as at Stripe');

    const read = await stripe.paymentLinks.retrieve(link.id, { expand: ['line_items'] });
    assert.deepEqual(read.line_items?.data.map((item) => [item.description, item.quantity, item.amount_total, item.price?.id, item.adjustable_quantity]),
      [['Pour-over kettle', 1, 4_200, kettle.id, { enabled: true, maximum: 3, minimum: 0 }], ['Paper filters', 2, 1_000, filters.id, null]]);
    const items: string[] = [];
    for await (const item of stripe.paymentLinks.listLineItems(link.id, { limit: 1 })) items.push(item.description ?? '');
    assert.deepEqual(items, ['Pour-over kettle', 'Paper filters']);

    const changed = await stripe.paymentLinks.update(link.id, {
      active: false, inactive_message: 'Sold out until spring.', after_completion: { type: 'redirect', redirect: { url: 'https://shop.example/thanks' } }, metadata: { campaign: '' },
    });
    assert.deepEqual([changed.active, changed.inactive_message, changed.after_completion.type, changed.metadata], [false, 'Sold out until spring.', 'redirect', {}]);
    assert.deepEqual((await stripe.paymentLinks.list({ active: false })).data.map((row) => row.id), [link.id]);
    // Each change is an event, as at Stripe: the link as made, then as changed with what it was before.
    const events = (await stripe.events.list({ limit: 10 })).data.filter((event) => (event.data.object as { id?: string }).id === link.id);
    assert.deepEqual(events.map((event) => event.type), ['payment_link.updated', 'payment_link.created']);
    assert.equal((events[1]?.data.object as Stripe.PaymentLink).active, true);
    assert.deepEqual([(events[0]?.data.object as Stripe.PaymentLink).active, (events[0]?.data.previous_attributes as Partial<Stripe.PaymentLink>).active], [false, true]);
    assert.deepEqual((await stripe.paymentLinks.list({ active: true })).data.map((row) => row.id), []);

    // Another merchant and the live mode see none of it; a restricted key needs payment_links.
    await assert.rejects(stripeClient(server, server.otherSecretKey).paymentLinks.retrieve(link.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    const live = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'secret', true)).key.reveal());
    assert.deepEqual((await live.paymentLinks.list()).data, []);
    const restricted = stripeClient(server, (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { checkout: 'write' } })).key.reveal());
    await assert.rejects(restricted.paymentLinks.list(), (error: Stripe.errors.StripeError) => error.statusCode === 403);
  });

  test('bad links are refused by name and make nothing', async () => {
    const archived = await stripe.prices.create({ currency: 'usd', unit_amount: 900, product_data: { name: 'Old mug' } });
    await stripe.prices.update(archived.id, { active: false });
    const euro = await stripe.prices.create({ currency: 'eur', unit_amount: 900, product_data: { name: 'Mug (EU)' } });
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ line_items: [{ price: 'price_unknown', quantity: 1 }] }, 'line_items[0][price]', /No such price/],
      [{ line_items: [{ price: archived.id, quantity: 1 }] }, 'line_items[0][price]', /archived/],
      [{ line_items: [{ price: kettle.id, quantity: 1 }, { price: euro.id, quantity: 1 }] }, 'line_items[1][price]', /one currency/],
      [{ line_items: [{ price: kettle.id, quantity: 1 }], currency: 'eur' }, 'currency', /prices are in usd/],
      [{ line_items: [{ price: kettle.id, quantity: 5, adjustable_quantity: { enabled: true, maximum: 3 } }] }, 'line_items[0][quantity]', /between/],
      [{ line_items: [{ price: kettle.id, quantity: 1 }], after_completion: { type: 'redirect' } }, 'after_completion[redirect][url]', /Missing required/],
      [{ line_items: [{ price: kettle.id, quantity: 1 }], after_completion: { type: 'redirect', redirect: { url: 'ftp://shop.example' } } }, 'after_completion[redirect][url]', /./],
      [{ line_items: [{ price: kettle.id, quantity: 1 }], after_completion: { type: 'redirect', redirect: { url: 'https://[x' } } }, 'after_completion[redirect][url]', /absolute http or https URL/],
      [{ line_items: [{ price: kettle.id, quantity: 1 }], shipping_options: [{ shipping_rate: 'shr_unknown' }] }, 'shipping_options[0][shipping_rate]', /No such shipping rate/],
      [{ line_items: [{ price: kettle.id, quantity: 1 }], payment_method_types: ['alipay'] }, 'payment_method_types[0]', /CNY/],
      [{ line_items: [{ price: kettle.id, quantity: 1 }], restrictions: { completed_sessions: { limit: 0 } } }, 'restrictions[completed_sessions][limit]', /./],
      [{ line_items: [{ price_data: { currency: 'usd', unit_amount: 100, product_data: { name: 'x' } }, quantity: 1 }] }, 'line_items[0][price_data]', /./],
      [{ line_items: [] }, 'line_items', /./],
    ];
    for (const [params, param, message] of cases) {
      const before = await counts();
      const error = await stripe.paymentLinks.create(params as unknown as Stripe.PaymentLinkCreateParams).then(() => undefined, (caught: unknown) => caught as Stripe.errors.StripeError);
      assert.equal(error?.param, param, `${JSON.stringify(params)}: ${error?.message}`);
      assert.match(error?.message ?? '', message);
      assert.equal(error?.statusCode, /No such/.test(error?.message ?? '') ? 404 : 400, param);
      assert.deepEqual(await counts(), before, `${param}: nothing written`);
    }
    const link = await stripe.paymentLinks.create({ line_items: [{ price: kettle.id, quantity: 1 }], restrictions: { completed_sessions: { limit: 1 } } });
    const before = await counts();
    await assert.rejects(stripe.paymentLinks.update(link.id, { restrictions: { completed_sessions: { limit: 0 } } }), (error: Stripe.errors.StripeError) => error.param === 'restrictions[completed_sessions][limit]');
    await assert.rejects(stripe.paymentLinks.update(link.id, { after_completion: { type: 'redirect' } as Stripe.PaymentLinkUpdateParams.AfterCompletion }),
      (error: Stripe.errors.StripeError) => error.param === 'after_completion[redirect][url]');
    await assert.rejects(stripe.paymentLinks.update(link.id, { after_completion: { type: 'redirect', redirect: { url: 'https://[x' } } }),
      (error: Stripe.errors.StripeError) => error.param === 'after_completion[redirect][url]' && /absolute http or https URL/.test(error.message));
    assert.deepEqual(await counts(), before);
  });

  test('the quantities of its items change by their ids; which items it sells, and quantities outside their bounds, do not', async () => {
    const link = await stripe.paymentLinks.create({
      line_items: [{ price: kettle.id, quantity: 1 }, { price: filters.id, quantity: 2, adjustable_quantity: { enabled: true, maximum: 5 } }],
    });
    const [first, second] = (await stripe.paymentLinks.listLineItems(link.id)).data;
    assert.ok(first !== undefined && second !== undefined);
    const changed = await stripe.paymentLinks.update(link.id, { line_items: [{ id: second.id, quantity: 4 }, { id: first.id, quantity: 2, adjustable_quantity: { enabled: true, maximum: 3 } }] });
    assert.equal(changed.id, link.id);
    const items = (await stripe.paymentLinks.listLineItems(link.id)).data;
    assert.deepEqual(items.map((item) => [item.price?.id, item.quantity, item.adjustable_quantity?.maximum ?? null]), [[kettle.id, 2, 3], [filters.id, 4, 5]]);
    assert.match((await rawRequest(server, 'GET', new URL(link.url).pathname)).body, /\$104\.00/, 'the link\'s page sells the new quantities');
    const before = await counts();
    const kept = JSON.stringify((await server.database.db.selectFrom('payment_links').select('session_params').where('id', '=', link.id).executeTakeFirstOrThrow()).session_params);
    for (const [lineItems, param, message] of [
      [[{ id: 'li_nope', quantity: 1 }], 'line_items[0][id]', /not one of this link's line items/],
      [[{ id: first.id, quantity: 1 }, { id: first.id, quantity: 2 }], 'line_items[1][id]', /named twice/],
      [[{ id: second.id, quantity: 6 }], 'line_items[0][quantity]', /between the adjustable minimum/],
    ] as const) {
      await assert.rejects(stripe.paymentLinks.update(link.id, { line_items: lineItems as unknown as Stripe.PaymentLinkUpdateParams.LineItem[] }), (error: Stripe.errors.StripeError) => {
        assert.equal(error.param, param, error.message);
        assert.match(error.message, message);
        return true;
      });
    }
    assert.deepEqual(await counts(), before, 'the refused updates wrote nothing');
    assert.equal(JSON.stringify((await server.database.db.selectFrom('payment_links').select('session_params').where('id', '=', link.id).executeTakeFirstOrThrow()).session_params), kept);
  });

  test('what later sessions are made with can be changed, checked as a session would be; sessions made already keep theirs', async () => {
    const link = await stripe.paymentLinks.create({ line_items: [{ price: kettle.id, quantity: 1 }], shipping_address_collection: { allowed_countries: ['US'] } });
    const earlier = await sessionOf(link);
    const fields: Stripe.PaymentLinkUpdateParams.CustomField[] = [{ key: 'engraving', label: { type: 'custom', custom: 'Engraving' }, type: 'text' }];
    const changed = await stripe.paymentLinks.update(link.id, {
      billing_address_collection: 'required', phone_number_collection: { enabled: true }, custom_fields: fields, submit_type: 'donate', customer_creation: 'always',
      custom_text: { submit: { message: 'Thank you!' }, shipping_address: { message: 'We ship on Mondays.' } },
    });
    assert.deepEqual([changed.billing_address_collection, changed.phone_number_collection.enabled, changed.submit_type, changed.customer_creation, changed.custom_fields.map((field) => field.key)],
      ['required', true, 'donate', 'always', ['engraving']]);
    const later = await sessionOf(link);
    assert.deepEqual([later.billing_address_collection, later.submit_type, later.customer_creation, later.custom_text.submit?.message, later.custom_fields.length], ['required', 'donate', 'always', 'Thank you!', 1]);
    assert.deepEqual([earlier.billing_address_collection, earlier.submit_type, earlier.custom_fields.length], [null, null, 0], 'a session made already keeps what it was made with');

    // Refused as a session would be, changing nothing: a message for a shipping address no longer asked.
    const before = await counts();
    const refused = await stripe.paymentLinks.update(link.id, { shipping_address_collection: '' as unknown as Stripe.PaymentLinkUpdateParams.ShippingAddressCollection })
      .then(() => undefined, (error: Stripe.errors.StripeError) => error);
    assert.equal(refused?.param, 'custom_text[shipping_address]', refused?.message);
    assert.deepEqual(await counts(), before);
    assert.deepEqual((await stripe.paymentLinks.retrieve(link.id)).shipping_address_collection, { allowed_countries: ['US'] });
    // '' removes: the shipping message, then the shipping address, the fields.
    const removed = await stripe.paymentLinks.update(link.id, { custom_text: { shipping_address: '' } as Stripe.PaymentLinkUpdateParams.CustomText });
    assert.deepEqual([removed.custom_text.shipping_address, removed.custom_text.submit?.message], [null, 'Thank you!'], 'only the message given as empty goes');
    const plain = await stripe.paymentLinks.update(link.id, { shipping_address_collection: '' as unknown as Stripe.PaymentLinkUpdateParams.ShippingAddressCollection, custom_fields: '' as unknown as Stripe.PaymentLinkUpdateParams.CustomField[] });
    assert.deepEqual([plain.shipping_address_collection, plain.custom_fields], [null, []]);
  });
});

/** A session of a link's, as a shopper pressing "Continue" makes it. */
async function sessionOf(link: Stripe.PaymentLink): Promise<Stripe.Checkout.Session> {
  const opened = await rawRequest(server, 'GET', `/buy/${link.id}`);
  const token = /name="token" value="([^"]+)"/.exec(opened.body)?.[1] ?? '';
  const made = await rawRequest(server, 'POST', `/buy/${link.id}`, { body: `token=${encodeURIComponent(token)}`, headers: { origin: new URL(link.url).origin } });
  assert.equal(made.status, 303, made.body);
  return stripe.checkout.sessions.retrieve(/\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(String(made.headers.location))?.[1] ?? '');
}

describe('paying through a payment link', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
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

  async function payOnPage(quantity?: string): Promise<void> {
    if (quantity !== undefined) await page.fill('#quantity-0', quantity);
    // A link's session has no email from the merchant: the page asks for one, for the shop and the receipt.
    await page.fill('#email', 'shopper@example.com');
    await fillCard(page);
    await clickThrough(page, '#pay', /\/done/);
  }

  test('each shopper gets a session of their own; the link counts what was paid and stops at its limit', async () => {
    const link = await stripe.paymentLinks.create({
      line_items: [{ price: kettle.id, quantity: 1, adjustable_quantity: { enabled: true, minimum: 1, maximum: 3 } }],
      after_completion: { type: 'hosted_confirmation', hosted_confirmation: { custom_message: 'Thanks! Your kettle ships tomorrow.' } },
      restrictions: { completed_sessions: { limit: 2 } },
    });
    // Opening the address makes nothing (link previews open it too).
    const before = await counts();
    const opened = await rawRequest(server, 'GET', `/buy/${link.id}`);
    assert.equal(opened.status, 200);
    assert.deepEqual(await counts(), before, 'no session or PaymentIntent made by opening the link');
    // Going on needs the page's own form: a post from another origin, or without the page's token, makes nothing.
    const pageToken = /name="token" value="([^"]+)"/.exec(opened.body)?.[1] ?? '';
    assert.notEqual(pageToken, '');
    const fromElsewhere = await rawRequest(server, 'POST', `/buy/${link.id}`, { body: `token=${encodeURIComponent(pageToken)}`, headers: { origin: 'https://evil.example' } });
    const withoutToken = await rawRequest(server, 'POST', `/buy/${link.id}`, { body: 'token=x', headers: { origin: new URL(link.url).origin } });
    assert.deepEqual([fromElsewhere.status, withoutToken.status], [403, 403]);
    assert.deepEqual(await counts(), before);

    await page.goto(link.url);
    assert.equal(await page.locator('#total').textContent(), '$42.00');
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'payment-link.png'));
    await page.click('#continue');
    await page.waitForURL(/\/pay\/cs_test_/);
    const first = /\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(page.url())?.[1] ?? '';
    await payOnPage('2');
    assert.equal(await page.locator('#merchant-message').textContent(), 'Thanks! Your kettle ships tomorrow.');

    const session = await stripe.checkout.sessions.retrieve(first);
    assert.deepEqual([session.status, session.payment_link, session.amount_total, session.success_url], ['complete', link.id, 8_400, null]);
    assert.equal(session.customer_details?.email, 'shopper@example.com');
    const receipt = await server.database.db.selectFrom('shopper_messages').select(['recipient', 'body']).where('reference', '=', first).executeTakeFirstOrThrow();
    assert.deepEqual([receipt.recipient, /2 × Pour-over kettle/.test(receipt.body)], ['shopper@example.com', true]);
    assert.deepEqual((await stripe.checkout.sessions.list({ payment_link: link.id })).data.map((row) => row.id), [first]);
    assert.deepEqual((await stripe.paymentLinks.retrieve(link.id)).restrictions, { completed_sessions: { count: 1, limit: 2 } });
    // A limit lowered to what was paid already stops the link at once; raised again, it may be reactivated.
    assert.equal((await stripe.paymentLinks.update(link.id, { restrictions: { completed_sessions: { limit: 1 } } })).active, false);
    await stripe.paymentLinks.update(link.id, { restrictions: { completed_sessions: { limit: 2 } }, inactive_message: '   ' });
    assert.deepEqual(await stripe.paymentLinks.update(link.id, { active: true }).then((row) => [row.active, row.inactive_message]), [true, null]);
    const made = await server.database.db.selectFrom('audit_log').select(['actor_type', 'actor_id']).where('action', '=', 'checkout_session.create').where('object_id', '=', first).executeTakeFirstOrThrow();
    assert.deepEqual([made.actor_type, made.actor_id], ['shopper', link.id], 'the session was made by the link\'s shopper');

    // A second shopper, a session of their own; paid, the link reaches its limit and stops selling.
    await page.goto(link.url);
    await page.click('#continue');
    await page.waitForURL(/\/pay\/cs_test_/);
    assert.notEqual(/\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(page.url())?.[1], first);
    await payOnPage();
    const full = await stripe.paymentLinks.retrieve(link.id);
    assert.deepEqual([full.active, full.restrictions?.completed_sessions], [false, { count: 2, limit: 2 }]);
    const stopped = (await stripe.events.list({ type: 'payment_link.updated', limit: 1 })).data[0];
    assert.deepEqual([(stopped?.data.object as Stripe.PaymentLink).id, (stopped?.data.previous_attributes as Partial<Stripe.PaymentLink>).active], [link.id, true],
      'the sale that reached the limit told the merchant the link stopped');
    await page.goto(link.url);
    assert.equal((await page.locator('h1').textContent())?.trim(), strings.en.linkInactiveTitle);
    assert.equal(await page.locator('#continue').count(), 0);
    await assert.rejects(stripe.paymentLinks.update(link.id, { active: true }), (error: Stripe.errors.StripeError) => error.param === 'active' && /limit/.test(error.message));
  });

  test('a link whose price was archived since says so and makes nothing; a redirect link goes to the shop once paid', async () => {
    const mug = await stripe.prices.create({ currency: 'usd', unit_amount: 1_500, product_data: { name: 'Mug' } });
    const link = await stripe.paymentLinks.create({ line_items: [{ price: mug.id, quantity: 1 }], after_completion: { type: 'redirect', redirect: { url: 'https://shop.example/thanks?session={CHECKOUT_SESSION_ID}' } } });
    await page.goto(link.url);
    await page.click('#continue');
    await page.waitForURL(/\/pay\/cs_test_/);
    const id = /\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(page.url())?.[1] ?? '';
    await payOnPage();
    assert.equal(await page.locator('a.button').getAttribute('href'), `https://shop.example/thanks?session=${id}`);

    // Opened before the price was archived, then sent: refused, nothing made. Opened after: said at once.
    await page.goto(link.url);
    await stripe.prices.update(mug.id, { active: false });
    const before = await counts();
    await page.click('#continue');
    await page.waitForLoadState();
    assert.equal((await page.locator('p').first().textContent())?.trim(), strings.en.linkUnavailable);
    assert.deepEqual(await counts(), before, 'no session made for an order that cannot be sold');
    await page.goto(link.url);
    assert.equal((await page.locator('p').first().textContent())?.trim(), strings.en.linkUnavailable);
    assert.equal(await page.locator('#continue').count(), 0);
  });
});
