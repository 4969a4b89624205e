import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { sql } from 'kysely';
import type Stripe from 'stripe';
import { checkoutAsset } from '../../src/checkout/assets.ts';
import { strings } from '../../src/checkout/strings.ts';
import { deliverSandboxNotifications } from '../../src/jobs/deliver-sandbox-notifications.ts';
import { browserMissing, clickThrough, fillEmail, launchTrusting, wholePageScreenshot } from '../support/browser.ts';
import { openPage, pressButton } from '../support/sandbox-pages.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: the hosted checkout works in a real browser from a Checkout Session made with the official SDK: card
// (success, decline; the card frame is another origin, so the page's code cannot read the card), Alipay on the
// cashier, WeChat Pay by QR code with live status, both languages, a phone-width screen, keyboard-only paying,
// no serious accessibility violations (axe-core), no Content-Security-Policy violations, the result page's
// receipt and support form, and an expired session.
describe('hosted checkout in a browser', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  let server: TestServer;
  let stripe: Stripe;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const violations: string[] = [];
  const shots = process.env.COFFER_TEST_SCREENSHOTS;
  const screenshot = async (name: string, target: Page = page) => {
    if (shots !== undefined) await wholePageScreenshot(target, path.join(shots, name));
  };
  const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    context = await browser.newContext({ locale: 'en-US' });
    page = await context.newPage();
    page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) violations.push(message.text()); });
    if (process.env.DEBUG_CHECKOUT) { page.on('console', (m) => console.log('console', m.text())); page.on('response', (r) => console.log('resp', r.status(), r.url())); }
  });
  after(async () => {
    await browser?.close();
    await server.close();
  });

  async function newSession(currency = 'cny', extra: Partial<Stripe.Checkout.SessionCreateParams> = {}): Promise<Stripe.Checkout.Session> {
    return stripe.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/thanks?session={CHECKOUT_SESSION_ID}', cancel_url: 'https://shop.example/cart',
      customer_email: 'shopper@example.com',
      line_items: [
        { price_data: { currency, unit_amount: 1_999, product_data: { name: 'Oolong tea, 100 g' } }, quantity: 2 },
        { price_data: { currency, unit_amount: 500, product_data: { name: 'Gift wrap' } }, quantity: 1 },
      ],
      ...extra,
    });
  }

  async function fillCard(target: Page, number: string): Promise<void> {
    await fillEmail(target);
    const frame = target.frameLocator('#card-frame');
    await frame.locator('#number').fill(number);
    await frame.locator('#expiry').fill('12 / 34');
    await frame.locator('#cvc').fill('123');
  }

  test('the SDK makes a session; bad input is refused naming the parameter, and creates nothing', async () => {
    const before = (await stripe.checkout.sessions.list({ limit: 100 })).data.length;
    const usdWallet = await newSession('usd', { payment_method_types: ['card', 'alipay'] } as unknown as Partial<Stripe.Checkout.SessionCreateParams>).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(usdWallet?.param, 'payment_method_types[1]');
    const soon = await newSession('cny', { expires_at: Math.floor(Date.now() / 1000) + 60 }).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(soon?.param, 'expires_at');
    const mixed = await stripe.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/ok',
      line_items: [{ price_data: { currency: 'cny', unit_amount: 1000, product_data: { name: 'A' } }, quantity: 1 }, { price_data: { currency: 'usd', unit_amount: 100, product_data: { name: 'B' } }, quantity: 1 }],
    }).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(mixed?.param, 'line_items[1][price_data][currency]');
    const badUrl = await newSession('cny', { success_url: 'javascript:alert(1)' }).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(badUrl?.param, 'success_url');
    const badReference = await newSession('cny', { client_reference_id: 'order 77' }).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(badReference?.param, 'client_reference_id');
    assert.equal((await stripe.checkout.sessions.list({ limit: 100 })).data.length, before, 'nothing was created');
    const session = await newSession();
    assert.equal(session.amount_total, 4_498);
    assert.equal(session.status, 'open');
    assert.deepEqual(session.payment_method_types, ['card', 'alipay', 'wechat_pay']);
    assert.match(session.url ?? '', /\/pay\/cs_test_[A-Za-z0-9]{24}$/);
    const items = await stripe.checkout.sessions.listLineItems(session.id);
    assert.deepEqual(items.data.map((item) => [item.description, item.quantity, item.amount_total]), [['Oolong tea, 100 g', 2, 3_998], ['Gift wrap', 1, 500]]);
    assert.deepEqual(items.data.map((item) => [item.price?.object, item.price?.unit_amount, String(item.price?.unit_amount_decimal), item.price?.type]), [['price', 1_999, '1999', 'one_time'], ['price', 500, '500', 'one_time']]);
    assert.match(items.data[0]?.price?.id ?? '', /^price_/);
    assert.deepEqual([session.ui_mode, session.customer_details?.email, session.total_details], ['hosted', 'shopper@example.com', { amount_discount: 0, amount_shipping: 0, amount_tax: 0 }]);
    const intent = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.equal(intent.amount, 4_498);
    assert.equal(intent.status, 'requires_payment_method');
  });

  test('card: paid through the card frame, which the page cannot read; the result page shows the receipt; the receipt is in the outbox', async () => {
    const session = await newSession('cny', { client_reference_id: 'order-77' });
    assert.equal(session.client_reference_id, 'order-77');
    const response = await page.goto(session.url ?? '');
    const csp = response?.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'nonce-[A-Za-z0-9+/=]+'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(await page.locator('#total').textContent() ?? '', /CN¥44\.98|¥44\.98/);
    await page.frameLocator('#card-frame').locator('#number').waitFor();
    // The frame is another origin: the page's own code cannot reach into it.
    const reachable = await page.evaluate(`(() => {
      const frame = document.getElementById('card-frame');
      try { return frame.contentDocument !== null && frame.contentDocument.getElementById('number') !== null; } catch { return false; }
    })()`);
    assert.equal(reachable, false);
    await fillCard(page, '4242 4242 4242 4242');
    await screenshot('checkout-card.png');
    await clickThrough(page, '#pay', /\/done/);
    assert.equal((await page.locator('#receipt-reference').textContent())?.trim(), session.payment_intent);
    await screenshot('checkout-done.png');
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.equal(done.status, 'complete');
    assert.equal(done.payment_status, 'paid');
    assert.equal(done.url, null);
    assert.equal((await stripe.paymentIntents.retrieve(session.payment_intent as string)).status, 'succeeded');
    const events = await stripe.events.list({ type: 'checkout.session.completed' });
    const completed = events.data.find((event) => (event.data.object as { id: string }).id === session.id);
    assert.equal((completed?.data.object as Stripe.Checkout.Session | undefined)?.client_reference_id, 'order-77', 'fulfilment finds its order');
    const details = (completed?.data.object as Stripe.Checkout.Session | undefined)?.customer_details;
    assert.deepEqual([details?.email, details?.tax_exempt, details?.address], ['shopper@example.com', 'none', null], 'whom to fulfil for, as Stripe\'s guide reads it (the page asks for no address)');
    assert.deepEqual(done.customer_details, details, 'the same on every later read');
    // What Stripe's fulfilment guide reads: the session with its line items and its payment.
    const fulfilled = await stripe.checkout.sessions.retrieve(session.id, { expand: ['line_items', 'payment_intent.latest_charge'] });
    assert.deepEqual(fulfilled.line_items?.data.map((item) => [item.description, item.quantity]), [['Oolong tea, 100 g', 2], ['Gift wrap', 1]]);
    const paidIntent = fulfilled.payment_intent as Stripe.PaymentIntent;
    assert.deepEqual([paidIntent.id, paidIntent.status, (paidIntent.latest_charge as Stripe.Charge).paid], [session.payment_intent, 'succeeded', true]);
    await assert.rejects(stripe.checkout.sessions.retrieve(session.id, { expand: ['customer_details'] }), (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'expand');
    const outbox = await rawRequest(server, 'GET', '/sandbox/outbox?format=json&to=shopper%40example.com', { key: server.secretKey });
    const receipt = (outbox.json.data as Array<{ reference: string; body: string }>).find((message) => message.reference === session.id);
    assert.ok(receipt !== undefined, 'a receipt was sent');
    assert.match(receipt.body, new RegExp(session.payment_intent as string));
    assert.match(receipt.body, /^Thank you for your payment of 44\.98 CNY\.\n/, 'the total, its currency named once');
  });

  test('the support form on the result page opens a case attached to the payment; an empty one is refused', async () => {
    const [session] = (await stripe.checkout.sessions.list({ limit: 10 })).data.filter((entry) => entry.status === 'complete');
    assert.ok(session !== undefined);
    await page.goto(`${server.url}/pay/${session.id}/done`);
    // The browser itself asks for a message (required); the server refuses a blank one all the same.
    assert.equal(await page.getAttribute('#problem-message', 'required'), '');
    await page.evaluate("document.getElementById('problem-message').removeAttribute('required')");
    await page.fill('#problem-message', '   ');
    await page.click('form[action*="/support"] button');
    await page.locator('.error[role=alert]').waitFor();
    assert.equal(await page.locator('.error[role=alert]').textContent(), strings.en.problemEmpty);
    const before = await rawRequest(server, 'GET', '/v1/support_cases', { key: server.secretKey });
    assert.equal((before.json.data as unknown[]).length, 0, 'the empty message opened nothing');
    await page.fill('#problem-message', 'I was charged twice, I think.');
    await page.fill('#problem-contact', 'shopper@example.com');
    await page.click('form[action*="/support"] button');
    await page.locator('.success[role=status]').waitFor();
    assert.match(await page.locator('.success[role=status]').textContent() ?? '', /sc_/);
    const cases = await rawRequest(server, 'GET', `/v1/support_cases?payment_intent=${session.payment_intent as string}`, { key: server.secretKey });
    const [opened] = cases.json.data as Array<{ message: string; contact: string; checkout_session: string }>;
    assert.equal(opened?.message, 'I was charged twice, I think.');
    assert.equal(opened?.checkout_session, session.id);

    // A session link cannot flood the merchant: a few cases per session, even from posts sent at once.
    const done = await rawRequest(server, 'GET', `/pay/${session.id}/done`);
    const csrf = /name="csrf" value="([^"]+)"/.exec(done.body)?.[1] ?? '';
    assert.ok(csrf !== '');
    const posts = await Promise.all(Array.from({ length: 8 }, (_, i) => rawRequest(server, 'POST', `/pay/${session.id}/support`, {
      body: new URLSearchParams({ csrf, lang: 'en', message: `message ${i}` }).toString(), headers: { origin: server.url },
    })));
    const statuses = posts.map((post) => post.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429, 429], 'four more, then refused');
    assert.ok(posts.filter((post) => post.status === 429).every((post) => post.body.includes(strings.en.problemTooMany)));
    // And the merchant pages through them, as through any list.
    const firstPage = await rawRequest(server, 'GET', `/v1/support_cases?payment_intent=${session.payment_intent as string}&limit=3`, { key: server.secretKey });
    const secondPage = await rawRequest(server, 'GET', `/v1/support_cases?payment_intent=${session.payment_intent as string}&limit=3&starting_after=${String((firstPage.json.data as Array<{ id: string }>)[2]?.id)}`, { key: server.secretKey });
    assert.deepEqual([(firstPage.json.data as unknown[]).length, firstPage.json.has_more, (secondPage.json.data as unknown[]).length, secondPage.json.has_more], [3, true, 2, false]);
  });

  test('posts without the session\'s token, from another origin, or for a method not offered are refused and change nothing', async () => {
    const session = await newSession('usd');
    const html = await rawRequest(server, 'GET', `/pay/${session.id}`);
    const csrf = /"csrf":"([^"]+)"/.exec(html.body)?.[1] ?? '';
    assert.ok(csrf !== '');
    const confirm = (headers: Record<string, string>, body: unknown) =>
      rawRequest(server, 'POST', `/pay/${session.id}/confirm`, { body: JSON.stringify(body), contentType: 'application/json', headers });
    const origin = server.url;
    const card = { method: 'card', payment_method: 'pm_card_visa' };
    assert.equal((await confirm({ origin }, card)).status, 403, 'no token');
    assert.equal((await confirm({ origin, 'x-coffer-csrf': 'A'.repeat(43) }, card)).status, 403, 'a wrong token');
    assert.equal((await confirm({ origin: 'https://evil.example', 'x-coffer-csrf': csrf }, card)).status, 403, 'another origin');
    assert.equal((await confirm({ origin, 'x-coffer-csrf': csrf }, { method: 'alipay' })).status, 400, 'a method the session does not offer');
    const frame = await rawRequest(server, 'POST', `/pay/card-frame/${session.id}/payment_method`, {
      body: JSON.stringify({ number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' }), contentType: 'application/json', headers: { origin },
    });
    assert.equal(frame.status, 404, 'the card endpoint answers only on the card frame\'s origin');
    const intent = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.equal(intent.status, 'requires_payment_method');
    assert.equal(intent.latest_charge, null, 'no attempt was made');
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'open');
  });

  test('card declined: the page says why, nothing is charged, and the shopper can pay with another card', async () => {
    const session = await newSession();
    await page.goto(session.url ?? '');
    await fillCard(page, '4000 0000 0000 9995');
    await page.click('#pay');
    await page.locator('#error:not([hidden])').waitFor();
    assert.match(await page.locator('#error').textContent() ?? '', /insufficient funds.*Nothing was charged/);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'open');
    await fillCard(page, '4242424242424242');
    await clickThrough(page, '#pay', /\/done/);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'complete');
  });

  test('a session the merchant gave no email asks the shopper for one, as Stripe\'s does: it is the session\'s customer_details.email', async () => {
    await page.goto((await newSession()).url ?? '');
    assert.equal(await page.locator('#email').count(), 0, 'the merchant gave the shopper\'s email: none asked');
    const known = await stripe.customers.create({ email: 'known@example.com' });
    await page.goto((await newSession('cny', { customer_email: undefined, customer: known.id })).url ?? '');
    assert.equal(await page.locator('#email').count(), 0, 'the session\'s customer has an email: none asked');
    const nameless = await stripe.customers.create({ name: 'No email on file' });
    await page.goto((await newSession('cny', { customer_email: undefined, customer: nameless.id })).url ?? '');
    assert.equal(await page.locator('#email').count(), 1, 'the session\'s customer has no email: asked');
    const session = await newSession('cny', { customer_email: undefined });
    await page.goto(session.url ?? '');
    assert.equal(await page.locator('#email').count(), 1);
    const frame = page.frameLocator('#card-frame');
    await frame.locator('#number').fill('4242424242424242');
    await frame.locator('#expiry').fill('12 / 34');
    await frame.locator('#cvc').fill('123');
    for (const [typed, message] of [['', 'Fill in: Email.'], ['ada@', strings.en.emailInvalid]] as const) {
      await page.fill('#email', typed);
      await page.click('#pay');
      await page.locator('#error:not([hidden])').waitFor();
      assert.equal((await page.locator('#error').textContent())?.trim(), message);
      assert.equal((await stripe.paymentIntents.retrieve(session.payment_intent as string)).status, 'requires_payment_method', 'nothing was confirmed');
    }
    await page.fill('#email', 'ada@example.com');
    await screenshot('checkout-email.png');
    await clickThrough(page, '#pay', /\/done/);
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([done.status, done.customer_details?.email], ['complete', 'ada@example.com']);
  });

  test('3-D Secure: a challenged card goes to the access control server; passing it completes the session, failing it comes back to the page', async () => {
    const session = await newSession();
    await page.goto(session.url ?? '');
    await fillCard(page, '4000 0027 6000 3184');
    await clickThrough(page, '#pay', /\/sandbox\/card\/acs/);
    const code = (await page.locator('.code').textContent())?.trim() ?? '';
    await page.fill('input[name=code]', code);
    await Promise.all([page.waitForURL(/\/pay\/cs_test_[A-Za-z0-9]+\/done/), page.click('button:has-text("Complete")')]);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'complete');
    const charge = await stripe.charges.retrieve((await stripe.paymentIntents.retrieve(session.payment_intent as string)).latest_charge as string);
    assert.equal(charge.payment_method_details?.card?.three_d_secure?.result, 'authenticated');

    const failing = await newSession();
    await page.goto(failing.url ?? '');
    await fillCard(page, '4000 0027 6000 3184');
    await clickThrough(page, '#pay', /\/sandbox\/card\/acs/);
    await Promise.all([page.waitForURL(new RegExp(`/pay/${failing.id}\\?`)), page.click('button:has-text("Fail")')]);
    await page.locator('#error:not([hidden])').waitFor();
    assert.match(await page.locator('#error').textContent() ?? '', /could not confirm it was you/);
    assert.equal((await stripe.checkout.sessions.retrieve(failing.id)).status, 'open');
  });

  test('keyboard only: choose the method and pay without a mouse', async () => {
    const session = await newSession();
    await page.goto(session.url ?? '');
    await page.frameLocator('#card-frame').locator('#number').waitFor();
    const frame = await (await page.$('#card-frame'))?.contentFrame();
    assert.ok(frame !== null && frame !== undefined, 'the card frame is on the page');
    // Focus crosses into and out of the card frame, another origin and so another process, asynchronously: each key
    // goes only once focus has arrived where a shopper would see it (at most 5 s), or keys typed too early are lost.
    const pageFocus = async () => page.evaluate<string>('document.activeElement?.id || document.activeElement?.value || document.activeElement?.tagName');
    const frameFocus = async () => frame.evaluate<string>('document.hasFocus() ? (document.activeElement?.id ?? "") : ""');
    const focusReaches = async (where: () => Promise<string>, id: string): Promise<string> => {
      let now = await where();
      for (let waited = 0; waited < 5_000 && now !== id; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        now = await where();
      }
      return now;
    };
    await page.keyboard.press('Tab');
    for (let i = 0; i < 6 && (await pageFocus()) !== 'card'; i += 1) await page.keyboard.press('Tab');
    assert.equal(await pageFocus(), 'card', 'the method radios are reachable by keyboard');
    for (const [field, keys] of [['number', '4242424242424242'], ['expiry', '12/34'], ['cvc', '123']] as const) {
      await page.keyboard.press('Tab');
      assert.equal(await focusReaches(frameFocus, field), field, `Tab moves on to the card frame's ${field} field`);
      await page.keyboard.type(keys);
      assert.equal((await frame.inputValue(`#${field}`)).replace(/\D/g, ''), keys.replace(/\D/g, ''), `every key typed reached ${field}`);
    }
    await page.keyboard.press('Tab');
    assert.equal(await focusReaches(pageFocus, 'pay'), 'pay', 'Tab leaves the frame for the pay button');
    await Promise.all([page.waitForURL(/\/done/), page.keyboard.press('Enter')]);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'complete');
  });

  test('Alipay: on to the cashier, paid, and back to the result page', async () => {
    const session = await newSession();
    await page.goto(session.url ?? '');
    await page.check('input[value=alipay]');
    assert.equal((await page.locator('#pay').textContent())?.trim(), 'Continue to Alipay');
    await clickThrough(page, '#pay', /\/sandbox\/alipay\//);
    assert.match(await page.content(), /44\.98/);
    await Promise.all([page.waitForURL(/\/pay\/cs_test_/), page.click('button[value=pay]')]);
    await deliverSandboxNotifications(server.coffer.services);
    await page.goto(`${session.url ?? ''}`);
    await page.waitForURL(/\/done/);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'complete');
  });

  test('Alipay canceled at the cashier: back on the page, nothing is charged and the shopper pays another way', async () => {
    const session = await newSession();
    await page.goto(session.url ?? '');
    await page.check('input[value=alipay]');
    await clickThrough(page, '#pay', /\/sandbox\/alipay\//);
    await page.click('button[value=cancel]');
    await page.locator('text=This trade is closed.').waitFor();
    await deliverSandboxNotifications(server.coffer.services);
    await page.goto(session.url ?? '');
    await page.locator('#error:not([hidden])').waitFor();
    assert.match(await page.locator('#error').textContent() ?? '', /Nothing was charged/);
    const intent = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    assert.equal(intent.status, 'requires_payment_method');
    assert.equal(intent.amount_received, 0);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'open');
    await page.check('input[value=card]');
    await fillCard(page, '4242424242424242');
    await clickThrough(page, '#pay', /\/done/);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'complete');
  });

  /** Pays a WeChat Pay trade on the sandbox's page, as the shopper's WeChat would. */
  async function payWeChatTrade(address: string): Promise<void> {
    let trade = await openPage(server, address);
    if (trade.body.includes('value="scan"')) {
      const scanned = await pressButton(server, trade, 'scan');
      const location = scanned.headers.location;
      trade = await openPage(server, typeof location === 'string' ? new URL(location, trade.url).toString() : trade.url.toString());
    }
    assert.ok((await pressButton(server, trade, 'pay')).status < 400);
  }

  test('WeChat Pay: the QR code shows, the page waits, and moves on by itself once the shopper has paid', async () => {
    const session = await newSession();
    await page.goto(session.url ?? '');
    await page.check('input[value=wechat_pay]');
    await page.click('#pay');
    await page.locator('#wechat-qr:not([hidden]) img').waitFor();
    assert.match(await page.locator('#status').textContent() ?? '', /Waiting for your payment/);
    await screenshot('checkout-wechat.png');
    const intent = await stripe.paymentIntents.retrieve(session.payment_intent as string);
    const scanUrl = intent.next_action?.wechat_pay_display_qr_code?.data ?? '';
    // The shopper's phone scans and pays (the scan page, over HTTP: the page under test keeps the browser).
    await payWeChatTrade(scanUrl);
    await deliverSandboxNotifications(server.coffer.services);
    await page.waitForURL(/\/done/, { timeout: 15_000 });
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'complete');
  });

  const weChatAgent = 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36 MicroMessenger/8.0.49.2600 NetType/WIFI Language/zh_CN';

  test('WeChat Pay inside WeChat: the shopper is signed in by WeChat, then pays in WeChat itself (JSAPI; the sandbox plays the payment sheet)', async () => {
    const inside = await browser.newContext({ locale: 'en-US', userAgent: weChatAgent });
    const wechat = await inside.newPage();
    try {
      // The shopper gives an email on the page: it comes back filled in from WeChat's sign-in, and the payment goes on.
      const session = await newSession('cny', { customer_email: undefined });
      await wechat.goto(session.url ?? '');
      await wechat.fill('#email', 'wei@example.com');
      await wechat.check('input[value=wechat_pay]');
      assert.equal((await wechat.locator('#pay').textContent())?.trim(), strings.en.payWithWechat);
      // The tap goes to WeChat's sign-in, back with the openid, and on to WeChat's payment sheet by itself.
      await Promise.all([wechat.waitForURL(/\/sandbox\/wechat-pay\/scan\//), wechat.click('#pay')]);
      const stored = await server.database.db.selectFrom('checkout_sessions').select('wechat_openid').where('id', '=', session.id).executeTakeFirstOrThrow();
      assert.match(stored.wechat_openid ?? '', /^o[A-Za-z0-9_-]+$/);
      const intent = await stripe.paymentIntents.retrieve(session.payment_intent as string);
      assert.equal(intent.next_action?.type, 'wechat_pay_jsapi');
      const { rows: trades } = await server.database.db.executeQuery<{ trade_type: string; payer_openid: string | null }>(
        sql`SELECT trade_type, payer_openid FROM sandbox_wechat_pay_transactions WHERE payer_openid = ${stored.wechat_openid}`.compile(server.database.db));
      assert.deepEqual(trades.map((row) => row.trade_type), ['JSAPI'], 'a JSAPI order was placed for the signed-in shopper');
      await wechat.click('button[value=pay]');
      await Promise.all([wechat.waitForURL(/\/pay\/cs_test_/), wechat.click('text=Return to the merchant')]);
      // The provider's notice may fall due a moment after the return: deliver until the page has moved on (bounded).
      for (let round = 0; round < 40 && !/\/done/.test(wechat.url()); round += 1) {
        await deliverSandboxNotifications(server.coffer.services);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await wechat.waitForURL(/\/done/, { timeout: 15_000 });
      const done = await stripe.checkout.sessions.retrieve(session.id);
      assert.deepEqual([done.status, done.customer_details?.email], ['complete', 'wei@example.com']);

      // A sign-in answer that does not carry this session's state is refused and stores nothing.
      const other = await newSession();
      const forged = await wechat.goto(`${new URL(other.url ?? '').origin}/pay/${other.id}/wechat-sign-in?code=abc&state=forged`);
      assert.equal(forged?.status(), 403);
      const untouched = await server.database.db.selectFrom('checkout_sessions').select('wechat_openid').where('id', '=', other.id).executeTakeFirstOrThrow();
      assert.equal(untouched.wechat_openid, null);
    } finally {
      await inside.close();
    }
  });

  test('WeChat Pay inside WeChat with its bridge: the page hands WeixinJSBridge the signed payment, then waits for WeChat\'s word', async () => {
    const inside = await browser.newContext({ locale: 'en-US', userAgent: weChatAgent });
    await inside.addInitScript(`window.WeixinJSBridge = { invoke(name, parameters, callback) { window.bridgeCall = { name, parameters }; callback({ err_msg: 'get_brand_wcpay_request:ok' }); } };`);
    const wechat = await inside.newPage();
    try {
      const session = await newSession();
      await wechat.goto(session.url ?? '');
      await wechat.check('input[value=wechat_pay]');
      await wechat.click('#pay');
      // Read from outside the page (the page's CSP rightly forbids the evaluation waitForFunction would do in it).
      let call: { name: string; parameters: Record<string, string> } | undefined;
      for (let waited = 0; call === undefined && waited < 15_000; waited += 100) {
        // The page is going through WeChat's sign-in and back: a read during a navigation finds no page and is tried again.
        call = await wechat.evaluate('window.bridgeCall').catch(() => undefined) as typeof call;
        if (call === undefined) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(call !== undefined, 'the page called WeixinJSBridge');
      assert.equal(call.name, 'getBrandWCPayRequest');
      assert.deepEqual(Object.keys(call.parameters).sort(), ['appId', 'nonceStr', 'package', 'paySign', 'signType', 'timeStamp']);
      assert.match(await wechat.locator('#status').textContent() ?? '', /Waiting for your payment/);
      // WeChat checks the merchant's signature over these parameters (the sandbox does the same), and the shopper pays.
      const tampered = await rawRequest(server, 'GET', `/sandbox/wechat-pay/jsapi?${new URLSearchParams({ ...call.parameters, paySign: Buffer.from('forged').toString('base64') }).toString()}`);
      assert.equal(tampered.status, 400);
      await payWeChatTrade(`${server.url}/sandbox/wechat-pay/jsapi?${new URLSearchParams(call.parameters).toString()}`);
      await deliverSandboxNotifications(server.coffer.services);
      await wechat.waitForURL(/\/done/, { timeout: 15_000 });
      assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'complete');
    } finally {
      await inside.close();
    }
  });

  test('Simplified Chinese by Accept-Language, switchable; amounts in the shopper\'s locale', async () => {
    const session = await newSession();
    const chinese = await browser.newContext({ locale: 'zh-CN', extraHTTPHeaders: { 'accept-language': 'zh-CN,zh;q=0.9,en;q=0.5' } });
    const zhPage = await chinese.newPage();
    await zhPage.goto(session.url ?? '');
    assert.equal(await zhPage.getAttribute('html', 'lang'), 'zh-CN');
    assert.match(await zhPage.locator('h1').textContent() ?? '', /向 .* 付款/);
    assert.match(await zhPage.locator('#pay').textContent() ?? '', /支付 ¥44\.98/);
    assert.equal(await zhPage.frameLocator('#card-frame').locator('label[for=number]').textContent(), strings.zh.cardNumber);
    await screenshot('checkout-zh.png', zhPage);
    await zhPage.click('a[hreflang=en]');
    assert.equal(await zhPage.getAttribute('html', 'lang'), 'en');
    assert.match(await zhPage.locator('#pay').textContent() ?? '', /^Pay /);
    await chinese.close();
  });

  test('phone width: nothing overflows, and axe-core finds no serious or critical violation on the page or the frame', async () => {
    const session = await newSession();
    // axe is injected into the page for the audit only: the checkout's own CSP would (rightly) refuse it.
    const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, bypassCSP: true });
    const small = await phone.newPage();
    await small.goto(session.url ?? '');
    await small.frameLocator('#card-frame').locator('#number').waitFor();
    const overflow = await small.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    await screenshot('checkout-phone.png', small);
    for (const target of [small.mainFrame(), small.frames().find((frame) => frame.url().includes('/pay/card-frame'))]) {
      assert.ok(target !== undefined, 'the card frame loaded');
      await target.addScriptTag({ content: axeSource });
      const result = await target.evaluate<Array<{ id: string; impact: string | null; count: number }>>(`axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })
        .then((run) => run.violations.map((violation) => ({ id: violation.id, impact: violation.impact, count: violation.nodes.length })))`);
      const serious = result.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
      assert.deepEqual(serious, [], JSON.stringify(result));
    }
    await phone.close();
  });

  test('an expired session: the page says so, the PaymentIntent is canceled, and checkout.session.expired goes out', async () => {
    const session = await newSession();
    const expired = await stripe.checkout.sessions.expire(session.id);
    assert.equal(expired.status, 'expired');
    assert.equal(expired.url, null);
    await page.goto(session.url ?? '');
    assert.equal(await page.locator('h1').textContent(), strings.en.expiredTitle);
    assert.equal((await stripe.paymentIntents.retrieve(session.payment_intent as string)).status, 'canceled');
    const again = await stripe.checkout.sessions.expire(session.id).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(again?.code, 'checkout_session_not_open');
    const events = await stripe.events.list({ type: 'checkout.session.expired' });
    const expiredEvent = events.data.find((event) => (event.data.object as { id: string }).id === session.id);
    assert.ok(expiredEvent !== undefined);
    // The expiry's events name the request that caused them, as every merchant request's do.
    assert.equal(expiredEvent.request?.id, expired.lastResponse.requestId);
    const canceledEvent = (await stripe.events.list({ type: 'payment_intent.canceled' })).data.find((event) => (event.data.object as { id: string }).id === session.payment_intent);
    assert.equal(canceledEvent?.request?.id, expired.lastResponse.requestId);
    assert.deepEqual(violations, [], 'no page broke its Content-Security-Policy');
  });

  // A refused expiry changes nothing: not while the shopper is paying (the session must not end early later),
  // and not once paid (only an open session can be expired, as at Stripe).
  test('a session\'s PaymentIntent is paid on its page only: the API cannot confirm it, cancel it or change what the shopper was shown', async () => {
    const session = await newSession('usd');
    const intentId = session.payment_intent as string;
    const before = await stripe.paymentIntents.retrieve(intentId);
    const refusal = async (call: Promise<unknown>) => call.then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    const refusals = [
      await refusal(stripe.paymentIntents.confirm(intentId, { payment_method: 'pm_card_visa' })),
      await refusal(stripe.paymentIntents.cancel(intentId)),
      await refusal(stripe.paymentIntents.update(intentId, { amount: 100 })),
      await refusal(stripe.paymentIntents.update(intentId, { payment_method: 'pm_card_visa' })),
      await refusal(stripe.paymentIntents.update(intentId, { capture_method: 'manual' })),
      await refusal(stripe.paymentIntents.update(intentId, { payment_method_options: { card: { capture_method: 'manual' } } })),
    ];
    for (const refused of refusals) {
      assert.equal(refused?.code, 'payment_intent_unexpected_state');
      assert.match(refused?.message ?? '', new RegExp(`belongs to Checkout Session ${session.id}.*expire the Checkout Session`));
    }
    assert.deepEqual(refusals.slice(2).map((refused) => refused?.param), ['amount', 'payment_method', 'capture_method', 'payment_method_options']);
    // The publishable key with the client secret (Stripe.js's confirmation) is refused too.
    const client = await rawRequest(server, 'POST', `/v1/payment_intents/${intentId}/confirm`, {
      key: server.publishableKey, body: `payment_method=pm_card_visa&client_secret=${before.client_secret ?? ''}`,
    });
    assert.equal(client.status, 400, client.body);
    assert.equal((client.json.error as Record<string, unknown>).code, 'payment_intent_unexpected_state');
    assert.ok(!client.body.includes(session.id), 'a publishable key is not told the session, whose id opens its page');
    const unchanged = await stripe.paymentIntents.retrieve(intentId);
    assert.deepEqual([unchanged.status, unchanged.amount, unchanged.payment_method, unchanged.capture_method, unchanged.payment_method_options, unchanged.latest_charge],
      [before.status, before.amount, before.payment_method, before.capture_method, before.payment_method_options, null], 'the refusals changed nothing');
    // What is the merchant's own stays editable; the shopper still pays on the page.
    const noted = await stripe.paymentIntents.update(intentId, { metadata: { order: 'A-17' }, description: 'Order A-17' });
    assert.deepEqual([noted.metadata.order, noted.description], ['A-17', 'Order A-17']);
    await page.goto(session.url ?? '');
    await fillCard(page, '4242424242424242');
    await clickThrough(page, '#pay', /\/done/);
    const paid = await stripe.paymentIntents.retrieve(intentId);
    assert.deepEqual([paid.status, paid.amount], ['succeeded', session.amount_total]);
  });

  test('payment_intent_data shapes the session\'s PaymentIntent; one authorized on the page is the merchant\'s to capture or cancel', async () => {
    const refused = await newSession('usd', { payment_intent_data: { capture_method: 'later' as 'manual' } }).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(refused?.param, 'payment_intent_data[capture_method]');
    // The wallets take the money at once: a yuan session that captures later offers the card alone; asking for a
    // wallet with it is refused, naming it, and makes nothing.
    const before = (await stripe.checkout.sessions.list({ limit: 100 })).data.length;
    const withWallet = await newSession('cny', { payment_method_types: ['card', 'alipay'], payment_intent_data: { capture_method: 'manual' } } as Partial<Stripe.Checkout.SessionCreateParams>)
      .then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.deepEqual([withWallet?.param, /alipay does not support/.test(withWallet?.message ?? '')], ['payment_method_types[1]', true]);
    assert.equal((await stripe.checkout.sessions.list({ limit: 100 })).data.length, before, 'no session was made');
    const yuan = await newSession('cny', { payment_intent_data: { capture_method: 'manual' } });
    assert.deepEqual(yuan.payment_method_types, ['card']);
    const pay = async (session: Stripe.Checkout.Session) => {
      await page.goto(session.url ?? '');
      await fillCard(page, '4242424242424242');
      await clickThrough(page, '#pay', /\/done/);
      return stripe.paymentIntents.retrieve(session.payment_intent as string);
    };
    const held = await newSession('usd', {
      payment_intent_data: { capture_method: 'manual', description: 'Order B-2', metadata: { order: 'B-2' }, statement_descriptor_suffix: 'TEA B2' },
    });
    const created = await stripe.paymentIntents.retrieve(held.payment_intent as string);
    assert.deepEqual([created.capture_method, created.description, created.metadata, created.statement_descriptor_suffix],
      ['manual', 'Order B-2', { order: 'B-2' }, 'TEA B2']);
    const authorized = await pay(held);
    assert.deepEqual([authorized.status, authorized.amount_capturable], ['requires_capture', held.amount_total]);
    assert.equal((await stripe.checkout.sessions.retrieve(held.id)).status, 'complete');
    const captured = await stripe.paymentIntents.capture(authorized.id, { amount_to_capture: 2_000 });
    assert.deepEqual([captured.status, captured.amount_received], ['succeeded', 2_000]);
    const released = await pay(await newSession('usd', { payment_intent_data: { capture_method: 'manual' } }));
    const canceled = await stripe.paymentIntents.cancel(released.id);
    assert.deepEqual([canceled.status, canceled.amount_capturable], ['canceled', 0]);
  });

  test('expiring a session being paid, or paid, is refused and changes nothing', async () => {
    const paying = await newSession('usd');
    await page.goto(paying.url ?? '');
    await fillCard(page, '4000 0027 6000 3184');
    await clickThrough(page, '#pay', /\/sandbox\/card\/acs/);
    assert.equal((await stripe.paymentIntents.retrieve(paying.payment_intent as string)).status, 'requires_action', 'the shopper is at the card\'s challenge');
    const refusedPaying = await stripe.checkout.sessions.expire(paying.id).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(refusedPaying?.code, 'checkout_session_not_open');
    const stillPaying = await stripe.checkout.sessions.retrieve(paying.id);
    assert.deepEqual([stillPaying.status, stillPaying.expires_at], ['open', paying.expires_at], 'the session still ends when it said');
    const paid = await newSession('usd');
    await page.goto(paid.url ?? '');
    await fillCard(page, '4242424242424242');
    await clickThrough(page, '#pay', /\/done/);
    const refusedPaid = await stripe.checkout.sessions.expire(paid.id).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(refusedPaid?.code, 'checkout_session_not_open');
    assert.match(refusedPaid?.message ?? '', /complete/);
    const complete = await stripe.checkout.sessions.retrieve(paid.id);
    assert.deepEqual([complete.status, complete.expires_at], ['complete', paid.expires_at]);
    // Two expiries at once: one expires the session, the other is told it is no longer open.
    const twice = await newSession('usd');
    const answers = await Promise.all([1, 2].map(() => rawRequest(server, 'POST', `/v1/checkout/sessions/${twice.id}/expire`, { key: server.secretKey })));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 400], answers.map((answer) => answer.body).join('\n'));
  });

  test('SMS step-up above the shop\'s amount: a code to the phone confirms this payment; wrong codes lock after five tries', async () => {
    const set = await rawRequest(server, 'POST', '/v1/risk/settings', { key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ step_up_above_usd: 5 }) });
    assert.equal(set.status, 200, set.body);
    assert.equal(set.json.step_up_above_usd, 5);
    const bad = await rawRequest(server, 'POST', '/v1/risk/settings', { key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ step_up_above_usd: -1 }) });
    assert.equal(bad.status, 400);
    assert.equal((await rawRequest(server, 'GET', '/v1/risk/settings', { key: server.secretKey })).json.step_up_above_usd, 5, 'the refused change changed nothing');
    const codeFor = async (phone: string) => {
      const outbox = await rawRequest(server, 'GET', `/sandbox/outbox?format=json&to=${encodeURIComponent(phone)}`, { key: server.secretKey });
      const [latest] = outbox.json.data as Array<{ body: string; channel: string }>;
      assert.equal(latest?.channel, 'sms');
      return /\b(\d{6})\b/.exec(latest.body)?.[1] ?? '';
    };

    // A session without the shopper's email: the shopper proves whichever phone they give (with one, only that
    // email would do: checkout-step-up.test.ts).
    const session = await newSession('cny', { customer_email: undefined });
    await page.goto(session.url ?? '');
    await fillCard(page, '4242424242424242');
    await page.click('#pay');
    await page.locator('#step-up:not([hidden])').waitFor();
    assert.equal((await stripe.paymentIntents.retrieve(session.payment_intent as string)).status, 'requires_payment_method', 'nothing is confirmed before the step-up');
    await page.fill('#step-up-phone', '12');
    await page.click('#step-up-send');
    await page.locator('#error:not([hidden])').waitFor();
    assert.equal(await page.locator('#error').textContent(), strings.en.stepUp_invalid_phone);
    await page.fill('#step-up-phone', '+86 138 0013 8000');
    await page.click('#step-up-send');
    await page.locator(`#status:has-text("${strings.en.codeSent}")`).waitFor();
    await page.click('#step-up-send');
    await page.locator('#error:has-text("Wait half a minute")').waitFor();
    const code = await codeFor('+8613800138000');
    assert.match(code, /^\d{6}$/);
    const wrong = code === '000000' ? '111111' : '000000';
    await page.fill('#step-up-code', wrong);
    await page.click('#pay');
    await page.locator('#error:has-text("4 tries left")').waitFor();
    await screenshot('checkout-step-up.png');
    await page.fill('#step-up-code', code);
    await clickThrough(page, '#pay', /\/done/);
    const charge = await stripe.charges.retrieve((await stripe.paymentIntents.retrieve(session.payment_intent as string)).latest_charge as string);
    assert.equal(charge.status, 'succeeded');
    const audit = await server.database.db.selectFrom('audit_log').select(['action', 'actor_type', 'details']).where('action', 'in', ['step_up.send', 'step_up.verify']).execute();
    assert.deepEqual(audit.map((row) => [row.action, row.actor_type, (row.details as { result?: string } | null)?.result ?? null]),
      [['step_up.send', 'shopper', null], ['step_up.verify', 'shopper', 'failed'], ['step_up.verify', 'shopper', 'passed']]);
    const stored = await server.database.db.selectFrom('charges').select('risk').where('id', '=', charge.id).executeTakeFirstOrThrow();
    assert.equal(stored.risk?.shopper_step_up, 'sms_code', 'the method is recorded on the payment');

    // Another payment needs its own proof; five wrong codes lock, and then even the right one is refused.
    const locked = await newSession('cny', { customer_email: undefined });
    await page.goto(locked.url ?? '');
    await fillCard(page, '4242424242424242');
    await page.click('#pay');
    await page.locator('#step-up:not([hidden])').waitFor();
    await page.fill('#step-up-phone', '+8613900139000');
    await page.click('#step-up-send');
    await page.locator(`#status:has-text("${strings.en.codeSent}")`).waitFor();
    const right = await codeFor('+8613900139000');
    for (let i = 0; i < 5; i += 1) {
      await page.fill('#step-up-code', right === '999999' ? '888888' : '999999');
      await page.click('#pay');
      await page.locator(`#error:has-text("${i === 4 ? 'Too many wrong codes' : `${4 - i} tries left`}")`).waitFor();
    }
    await page.fill('#step-up-code', right);
    const [refusal] = await Promise.all([page.waitForResponse((response) => response.url().endsWith('/step-up/verify')), page.click('#pay')]);
    assert.equal(refusal.status(), 400, 'the right code is refused once locked');
    assert.equal((await stripe.checkout.sessions.retrieve(locked.id)).status, 'open');
    assert.equal((await stripe.paymentIntents.retrieve(locked.payment_intent as string)).status, 'requires_payment_method');
    await rawRequest(server, 'POST', '/v1/risk/settings', { key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ step_up_above_usd: '' }) });
  });

  test('the page script stays small', () => {
    const script = checkoutAsset('checkout.js');
    const frame = checkoutAsset('card-frame.js');
    assert.ok(script !== undefined && frame !== undefined);
    console.log(`checkout.js ${script.body.length} B (${script.gzipBytes} B gzipped); card-frame.js ${frame.body.length} B (${frame.gzipBytes} B gzipped)`);
    assert.ok(script.gzipBytes < 30_000, `checkout.js is ${script.gzipBytes} B gzipped`);
  });
});
