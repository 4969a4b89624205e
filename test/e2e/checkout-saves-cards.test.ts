import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { browserMissing, clickThrough, fillEmail, launchTrusting, wholePageScreenshot } from '../support/browser.ts';
import { openCheckoutPage } from '../support/checkout-page.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: a Checkout Session saves a returning shopper's card as Stripe's does. It takes `customer`,
// `payment_intent_data[setup_future_usage]` and the card's `capture_method` and `setup_future_usage`
// (`payment_method_options[card]`), and makes its PaymentIntent with them, so that a card paid on the hosted page is
// saved to the customer, and a card held for capture stays authorized. The page tells the shopper, in their
// language, when the card will be kept, and only then. Bad values are refused by name and make nothing.
let server: TestServer;
let stripe: Stripe;

before(async () => {
  server = await startTestServer();
  stripe = server.stripe;
});
after(async () => {
  await server.close();
});

// The SDK's types no longer declare payment_method_types, which the API still takes (and Coffer's sessions use).
type SessionParams = Stripe.Checkout.SessionCreateParams & { payment_method_types?: string[] };

function newSession(currency: string, extra: Partial<SessionParams> = {}): Promise<Stripe.Checkout.Session> {
  const params: SessionParams = {
    mode: 'payment', success_url: 'https://shop.example/thanks?session={CHECKOUT_SESSION_ID}', cancel_url: 'https://shop.example/cart',
    line_items: [{ price_data: { currency, unit_amount: 2_500, product_data: { name: 'Jasmine tea, 50 g' } }, quantity: 2 }],
    ...extra,
  };
  return stripe.checkout.sessions.create(params);
}

/** Rows a session's creation writes: a refusal must leave every count as it was. */
const countedTables = ['checkout_sessions', 'payment_intents', 'customers', 'payment_methods', 'events', 'audit_log'] as const;
async function counts(): Promise<Record<(typeof countedTables)[number], number>> {
  const result = {} as Record<(typeof countedTables)[number], number>;
  for (const table of countedTables) {
    const row = await server.database.db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
    result[table] = Number(row.n);
  }
  return result;
}

function refusal(promise: Promise<unknown>): Promise<Stripe.errors.StripeError | undefined> {
  return promise.then(() => undefined, (error: unknown) => error as Stripe.errors.StripeError);
}

describe('Checkout Sessions for a customer, keeping cards (API)', { concurrency: false }, () => {
  test('bad customers and values are refused naming the parameter, and nothing is made', async () => {
    const customer = await stripe.customers.create({ email: 'returning@example.com' });
    const gone = await stripe.customers.create({ email: 'gone@example.com' });
    await stripe.customers.del(gone.id);
    const theirs = await stripeClient(server, server.otherSecretKey).customers.create({ email: 'other-shop@example.com' });
    const before = await counts();
    const cases: Array<[string, Partial<SessionParams>, string, string, RegExp]> = [
      ['an unknown customer', { customer: 'cus_nobodyatall' }, 'customer', 'resource_missing', /No such customer: 'cus_nobodyatall'/],
      ['a deleted customer', { customer: gone.id }, 'customer', 'resource_missing', /No such customer/],
      ['another merchant\'s customer', { customer: theirs.id }, 'customer', 'resource_missing', /No such customer/],
      ['a customer and a customer_email', { customer: customer.id, customer_email: 'someone@example.com' }, 'customer_email', 'parameters_exclusive', /only specify one of these parameters: customer, customer_email/],
      ['a customer and customer_creation', { customer: customer.id, customer_creation: 'always' }, 'customer_creation', 'parameters_exclusive', /only specify one of these parameters: customer, customer_creation/],
      ['an unknown customer_creation', { customer_creation: 'sometimes' as 'always' }, 'customer_creation', 'parameter_invalid', /always|if_required/],
      ['an unknown setup_future_usage', { customer: customer.id, payment_intent_data: { setup_future_usage: 'forever' as 'off_session' } }, 'payment_intent_data[setup_future_usage]', 'parameter_invalid', /on_session|off_session/],
      ['setup_future_usage=none at the top level (only the card\'s option takes it)', { payment_intent_data: { setup_future_usage: 'none' as 'off_session' } }, 'payment_intent_data[setup_future_usage]', 'parameter_invalid', /on_session|off_session/],
      ['an unknown card setup_future_usage', { payment_method_options: { card: { setup_future_usage: 'later' as 'none' } } }, 'payment_method_options[card][setup_future_usage]', 'parameter_invalid', /none/],
      ['a card capture_method other than manual', { payment_method_options: { card: { capture_method: 'automatic' as 'manual' } } }, 'payment_method_options[card][capture_method]', 'parameter_invalid', /manual/],
      ['an unknown request_three_d_secure', { payment_method_options: { card: { request_three_d_secure: 'always' as 'any' } } }, 'payment_method_options[card][request_three_d_secure]', 'parameter_invalid', /any, automatic, challenge/],
      ['a wallet\'s options (not taken here)', { payment_method_options: { wechat_pay: { client: 'web' } } }, 'payment_method_options[wechat_pay]', 'parameter_unknown', /unknown parameter/],
      ['a wallet with setup_future_usage, which no wallet can keep', { payment_method_types: ['card', 'alipay'], payment_intent_data: { setup_future_usage: 'off_session' } }, 'payment_method_types[1]', 'parameter_invalid', /alipay cannot be kept/],
      ['card options on a session that offers no card', { payment_method_types: ['alipay'], payment_method_options: { card: { capture_method: 'manual' } } }, 'payment_method_options[card]', 'parameter_invalid', /does not offer cards/],
    ];
    for (const [what, extra, param, code, message] of cases) {
      const error = await refusal(newSession('cny', extra));
      assert.ok(error !== undefined, `${what}: refused`);
      // A missing customer is Coffer's resource_missing, 404 wherever an id names nothing (as a PaymentIntent's customer).
      assert.deepEqual([error.statusCode, error.param, error.code], [code === 'resource_missing' ? 404 : 400, param, code], what);
      assert.match(error.message, message, what);
    }
    const { audit_log: auditAfter, ...afterRest } = await counts();
    const { audit_log: auditBefore, ...beforeRest } = before;
    assert.deepEqual(afterRest, beforeRest, 'no session, PaymentIntent, customer, card or event was made');
    // The one record written is the security audit's: an id of another merchant was tried.
    const written = await server.database.db.selectFrom('audit_log').select(['action', 'object_id']).orderBy('seq', 'desc').limit(auditAfter - auditBefore).execute();
    assert.deepEqual(written, [{ action: 'api_request.cross_merchant_access', object_id: theirs.id }]);
  });

  test('the session and its PaymentIntent are the customer\'s, with the options given; top-level setup_future_usage offers the card alone', async () => {
    const customer = await stripe.customers.create({ email: 'regular@example.com' });
    const session = await newSession('cny', { customer: customer.id });
    assert.deepEqual([session.customer, session.customer_email, session.payment_method_options], [customer.id, null, {}]);
    assert.deepEqual(session.payment_method_types, ['card', 'alipay', 'wechat_pay']);
    const intent = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.deepEqual([intent.customer, intent.setup_future_usage, intent.payment_method_options?.card?.setup_future_usage], [customer.id, null, undefined]);
    const expanded = await stripe.checkout.sessions.retrieve(session.id, { expand: ['customer'] });
    assert.equal((expanded.customer as Stripe.Customer).email, 'regular@example.com');
    const listed = (await stripe.checkout.sessions.list({ payment_intent: intent.id })).data[0];
    assert.equal(listed?.customer, customer.id);

    const keeping = await newSession('cny', { customer: customer.id, payment_intent_data: { setup_future_usage: 'off_session' } });
    assert.deepEqual(keeping.payment_method_types, ['card'], 'the wallets cannot be kept: the card alone is offered');
    assert.equal((await stripe.paymentIntents.retrieve(keeping.payment_intent as string)).setup_future_usage, 'off_session');

    // The card's own options leave the wallets offered: they apply to card payments only.
    const cardOnly = await newSession('cny', { customer: customer.id, payment_method_options: { card: { capture_method: 'manual', setup_future_usage: 'on_session' } } });
    assert.deepEqual(cardOnly.payment_method_types, ['card', 'alipay', 'wechat_pay']);
    assert.deepEqual(cardOnly.payment_method_options, { card: { capture_method: 'manual', setup_future_usage: 'on_session' } });
    const cardIntent = await stripe.paymentIntents.retrieve(cardOnly.payment_intent as string);
    assert.deepEqual([cardIntent.capture_method, cardIntent.setup_future_usage, cardIntent.payment_method_options?.card?.capture_method, cardIntent.payment_method_options?.card?.setup_future_usage],
      ['automatic', null, 'manual', 'on_session']);

    // As at Stripe, setup_future_usage without a customer keeps the consent on the PaymentIntent; no customer is made.
    const guest = await newSession('usd', { payment_intent_data: { setup_future_usage: 'on_session' } });
    const guestIntent = await stripe.paymentIntents.retrieve(guest.payment_intent as string);
    assert.deepEqual([guest.customer, guestIntent.customer, guestIntent.setup_future_usage], [null, null, 'on_session']);

    // The session's PaymentIntent stays the session's: its customer and options cannot be changed through the API.
    const changed = await refusal(stripe.paymentIntents.update(cardIntent.id, { customer: '' } as Stripe.PaymentIntentUpdateParams));
    assert.equal(changed?.statusCode, 400);
    assert.equal((await stripe.paymentIntents.retrieve(cardIntent.id)).customer, customer.id);
  });
});

// Goal: every locale Stripe's Checkout takes is taken and shown as given; the page is in English or Simplified
// Chinese, whichever of the two the locale is, else the one the browser prefers. An unknown locale is refused.
describe('A Checkout Session asking for 3-D Secure', () => {
  test('the card\'s request_three_d_secure is kept on the PaymentIntent, and the page\'s card is challenged', async () => {
    const challenged = await newSession('usd', { payment_method_options: { card: { request_three_d_secure: 'challenge' } } });
    assert.deepEqual(challenged.payment_method_options, { card: { request_three_d_secure: 'challenge' } });
    const intent = await stripe.paymentIntents.retrieve(String(challenged.payment_intent));
    assert.equal(intent.payment_method_options?.card?.request_three_d_secure, 'challenge');
    const card = async () => (await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id;
    const page = await openCheckoutPage(server, challenged, { details: { email: 'shopper@example.com' } });
    const asked = await page.post('/confirm', { method: 'card', payment_method: await card() });
    assert.equal(asked.json.state, 'redirect', asked.body);
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_action', 'the bank asks the shopper');
    // Without it, the same card pays at once (the sandbox asks no frictionless card for a challenge).
    const plain = await newSession('usd');
    const paid = await (await openCheckoutPage(server, plain, { details: { email: 'shopper@example.com' } })).post('/confirm', { method: 'card', payment_method: await card() });
    assert.equal(paid.json.state, 'complete', paid.body);
  });
});

describe('Checkout Session locales', () => {
  const pageLanguage = async (url: string, acceptLanguage: string) => {
    const page = await rawRequest(server, 'GET', new URL(url).pathname, { headers: { 'accept-language': acceptLanguage } });
    assert.equal(page.status, 200);
    return /<html lang="([^"]+)"/.exec(page.body)?.[1];
  };
  test('Stripe\'s locales are taken; the page speaks English or Chinese', async () => {
    const cases: Array<[string, string, string]> = [
      ['fr', 'fr-FR,fr;q=0.9', 'en'], ['fr', 'zh-CN,zh;q=0.9', 'zh-CN'], ['zh-TW', 'en-US', 'zh-CN'], ['en-GB', 'zh-CN', 'en'], ['pt-BR', 'pt-BR', 'en'],
    ];
    for (const [locale, browser, expected] of cases) {
      const session = await newSession('usd', { locale: locale as Stripe.Checkout.SessionCreateParams.Locale });
      assert.equal(session.locale, locale);
      assert.equal(await pageLanguage(session.url ?? '', browser), expected, `${locale} with a browser asking ${browser}`);
    }
    const before = await counts();
    const refused = await rawRequest(server, 'POST', '/v1/checkout/sessions', { key: server.secretKey,
      body: 'mode=payment&success_url=https://shop.example/ok&locale=klingon&line_items[0][quantity]=1&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=100&line_items[0][price_data][product_data][name]=Tea' });
    assert.deepEqual([refused.status, (refused.json.error as { param?: string }).param], [400, 'locale'], refused.body);
    assert.deepEqual(await counts(), before, 'nothing was made');
  });
});

describe('Checkout Sessions keeping cards, paid in a browser', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  before(async () => {
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    context = await browser.newContext({ locale: 'en-US' });
    page = await context.newPage();
  });
  after(async () => {
    await browser?.close();
  });

  /** Pays the session's page by card, after `before` filled in what else the page asks. */
  async function payByCard(session: Stripe.Checkout.Session, before?: () => Promise<void>): Promise<Stripe.PaymentIntent> {
    await page.goto(session.url ?? '');
    await before?.();
    await fillEmail(page);
    const frame = page.frameLocator('#card-frame');
    await frame.locator('#number').fill('4242 4242 4242 4242');
    await frame.locator('#expiry').fill('12 / 34');
    await frame.locator('#cvc').fill('123');
    await clickThrough(page, '#pay', /\/done/);
    return stripe.paymentIntents.retrieve(session.payment_intent as string);
  }

  async function merchantName(): Promise<string> {
    const row = await server.database.db.selectFrom('merchants').select('name').where('id', '=', server.merchantId).executeTakeFirstOrThrow();
    return row.name;
  }

  test('off_session with a customer: the page asks consent; the card paid is saved to the customer, and the session shows them', async () => {
    const customer = await stripe.customers.create({ email: 'keeps-card@example.com', name: 'Lin Wei' });
    const session = await newSession('usd', { customer: customer.id, payment_intent_data: { setup_future_usage: 'off_session' } });
    await page.goto(session.url ?? '');
    const consent = page.locator('#card-consent');
    const expected = strings.en.cardKeptOffSession.replace('{merchant}', await merchantName());
    assert.equal((await consent.textContent())?.trim(), expected);
    assert.equal(await consent.isVisible(), true);
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-card-kept.png'));
    await page.goto(`${session.url ?? ''}?lang=zh`);
    assert.equal((await page.locator('#card-consent').textContent())?.trim(), strings.zh.cardKeptOffSession.replace('{merchant}', await merchantName()));

    const paid = await payByCard(session);
    assert.deepEqual([paid.status, paid.customer, paid.setup_future_usage], ['succeeded', customer.id, 'off_session']);
    const saved = await stripe.paymentMethods.list({ customer: customer.id, type: 'card' });
    assert.deepEqual(saved.data.map((method) => method.id), [paid.payment_method], 'the card is the customer\'s now');
    assert.equal(saved.data[0]?.card?.last4, '4242');
    // The saved card pays again without the shopper, as off_session promised.
    const later = await stripe.paymentIntents.create({ amount: 1_200, currency: 'usd', customer: customer.id, payment_method: paid.payment_method as string, off_session: true, confirm: true });
    assert.equal(later.status, 'succeeded');

    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([done.status, done.customer, done.customer_details?.email], ['complete', customer.id, 'keeps-card@example.com']);
    const events = await stripe.events.list({ type: 'checkout.session.completed' });
    const completed = events.data.find((event) => (event.data.object as { id: string }).id === session.id);
    assert.equal((completed?.data.object as Stripe.Checkout.Session | undefined)?.customer, customer.id, 'fulfilment learns the customer from the event');
  });

  test('customer_creation=always: the shopper becomes a customer as they pay, from what the page collected, and keeps the card', async () => {
    const session = await newSession('usd', { customer_creation: 'always', payment_intent_data: { setup_future_usage: 'off_session' }, billing_address_collection: 'required' });
    assert.deepEqual([session.customer_creation, session.customer], ['always', null]);
    const paid = await payByCard(session, async () => {
      await page.fill('#billing-name', 'Ada Lovelace');
      await page.fill('#billing-line1', '12 St James Square');
      await page.fill('#billing-city', 'London');
      await page.selectOption('#billing-country', 'GB');
    });
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.equal(typeof done.customer, 'string');
    const customer = await stripe.customers.retrieve(String(done.customer)) as Stripe.Customer;
    assert.deepEqual([customer.email, customer.name, customer.address?.city, customer.address?.country], ['shopper@example.com', 'Ada Lovelace', 'London', 'GB']);
    assert.equal(paid.customer, customer.id, 'the session\'s PaymentIntent is the new customer\'s');
    const saved = await stripe.paymentMethods.list({ customer: customer.id, type: 'card' });
    assert.deepEqual(saved.data.map((method) => method.id), [paid.payment_method], 'the card kept is saved to them');
    const created = (await stripe.events.list({ type: 'customer.created', limit: 5 })).data.filter((event) => (event.data.object as Stripe.Customer).id === customer.id);
    assert.equal(created.length, 1);
    const made = await server.database.db.selectFrom('audit_log').select(['actor_type', 'details']).where('action', '=', 'customer.create').where('object_id', '=', customer.id).executeTakeFirstOrThrow();
    assert.deepEqual([made.actor_type, (made.details as { checkout_session?: string }).checkout_session], ['shopper', session.id]);
  });

  test('the card\'s capture_method=manual holds the payment; the card\'s on_session consent shows with the card only', async () => {
    const customer = await stripe.customers.create({ email: 'holds@example.com' });
    const session = await newSession('cny', { customer: customer.id, payment_method_options: { card: { capture_method: 'manual', setup_future_usage: 'on_session' } } });
    await page.goto(session.url ?? '');
    const consent = page.locator('#card-consent');
    assert.equal((await consent.textContent())?.trim(), strings.en.cardKeptOnSession.replace('{merchant}', await merchantName()));
    assert.equal(await consent.isVisible(), true);
    // Alipay pays at once and keeps nothing: choosing it hides the line, which is about the card.
    await page.locator('input[name="method"][value="alipay"]').check();
    assert.equal(await consent.isVisible(), false);
    await page.locator('input[name="method"][value="card"]').check();
    assert.equal(await consent.isVisible(), true);

    const held = await payByCard(session);
    assert.deepEqual([held.status, held.capture_method, held.payment_method_options?.card?.capture_method, held.amount_capturable], ['requires_capture', 'automatic', 'manual', 5_000]);
    assert.deepEqual((await stripe.paymentMethods.list({ customer: customer.id, type: 'card' })).data.map((method) => method.id), [held.payment_method]);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'complete');
    assert.equal((await stripe.paymentIntents.capture(held.id)).status, 'succeeded');
  });

  test('no consent line when the card is not kept: a customer alone, or the card\'s none over a top-level setup_future_usage', async () => {
    const customer = await stripe.customers.create({ email: 'no-keep@example.com' });
    const plain = await newSession('usd', { customer: customer.id });
    await page.goto(plain.url ?? '');
    await page.frameLocator('#card-frame').locator('#number').waitFor();
    assert.equal(await page.locator('#card-consent').count(), 0);
    const withdrawn = await newSession('usd', { customer: customer.id, payment_intent_data: { setup_future_usage: 'off_session' }, payment_method_options: { card: { setup_future_usage: 'none' } } });
    await page.goto(withdrawn.url ?? '');
    await page.frameLocator('#card-frame').locator('#number').waitFor();
    assert.equal(await page.locator('#card-consent').count(), 0);
    for (const session of [plain, withdrawn]) {
      const paid = await payByCard(session);
      assert.deepEqual([paid.status, paid.customer], ['succeeded', customer.id]);
    }
    assert.deepEqual((await stripe.paymentMethods.list({ customer: customer.id, type: 'card' })).data, [], 'no card was kept');
  });

  test('without a customer, the consent is kept on the PaymentIntent and the card paid can be saved afterwards, as at Stripe', async () => {
    const session = await newSession('usd', { payment_intent_data: { setup_future_usage: 'off_session' } });
    await page.goto(session.url ?? '');
    assert.equal(await page.locator('#card-consent').isVisible(), true);
    const paid = await payByCard(session);
    assert.deepEqual([paid.status, paid.customer, paid.setup_future_usage], ['succeeded', null, 'off_session']);
    const customer = await stripe.customers.create({ email: 'signed-up-after@example.com' });
    const attached = await stripe.paymentMethods.attach(paid.payment_method as string, { customer: customer.id });
    assert.equal(attached.customer, customer.id);
    const read = await rawRequest(server, 'GET', `/v1/checkout/sessions/${session.id}`, { key: server.secretKey });
    assert.equal((read.json as { customer: unknown }).customer, null, 'the session was made for no customer');
  });
});
