import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import type Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { browserMissing, clickThrough, fillEmail, launchTrusting, wholePageScreenshot } from '../support/browser.ts';
import { TestClock } from '../support/clock.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: the hosted checkout's step-up by payment password and by passkey works in a real browser. A payment
// password is set only with a one-time code, confirms later payments, locks after five wrong tries (never saying
// whether the phone number or the password was wrong) and is reset with a code. A passkey is saved after a code
// and confirms a payment with user verification; its assertion cannot be replayed, an assertion without user
// verification is refused, and one made before the payment's amount changed is refused. A PaymentIntent made
// through the API is paid on the same page, opened with its client secret. The page is served on a host name
// (localhost), as a relying party must be.
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

interface InPageAnswer {
  status: number;
  json: { state: string; message?: string; options?: Record<string, unknown> };
}

describe('hosted checkout step-up in a browser: payment password and passkeys', { concurrency: false, skip: browserMissing(), timeout: 300_000 }, () => {
  let server: TestServer;
  let stripe: Stripe;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let cdp: CDPSession;
  let authenticatorId: string;
  let origin: string;
  const violations: string[] = [];
  const clock = new TestClock();
  const shots = process.env.COFFER_TEST_SCREENSHOTS;
  const screenshot = async (name: string) => {
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, name));
  };
  const authenticator = { protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal', hasResidentKey: true, isUserVerified: true, automaticPresenceSimulation: true } as const;

  before(async () => {
    const port = await freePort();
    origin = `https://localhost:${port}`;
    server = await startTestServer({ clock, configEnv: { COFFER_PORT: String(port), COFFER_PUBLIC_URL: origin } });
    stripe = server.stripe;
    const set = await rawRequest(server, 'POST', '/v1/risk/settings', { key: server.secretKey, contentType: 'application/json', body: JSON.stringify({ step_up_above_usd: 5 }) });
    assert.equal(set.status, 200, set.body);
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    context = await browser.newContext({ locale: 'en-US' });
    page = await context.newPage();
    page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) violations.push(message.text()); });
    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    authenticatorId = (await cdp.send('WebAuthn.addVirtualAuthenticator', { options: { ...authenticator, hasUserVerification: true } })).authenticatorId;
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function newSession(): Promise<Stripe.Checkout.Session> {
    return stripe.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/thanks', currency: 'cny',
      line_items: [{ price_data: { currency: 'cny', unit_amount: 9_900, product_data: { name: 'Tea set' } }, quantity: 1 }],
    });
  }

  /** Opens the page, pays by card, and waits for the step-up the shop's amount asks for. */
  async function toStepUp(url: string): Promise<void> {
    await page.goto(url);
    await fillEmail(page);
    const frame = page.frameLocator('#card-frame');
    await frame.locator('#number').fill('4242424242424242');
    await frame.locator('#expiry').fill('12 / 34');
    await frame.locator('#cvc').fill('123');
    await page.click('#pay');
    await page.locator('#step-up:not([hidden])').waitFor();
  }

  async function codeFor(destination: string): Promise<string> {
    const outbox = await rawRequest(server, 'GET', `/sandbox/outbox?format=json&to=${encodeURIComponent(destination)}`, { key: server.secretKey });
    const [latest] = outbox.json.data as Array<{ body: string }>;
    return /\b(\d{6})\b/.exec(latest?.body ?? '')?.[1] ?? '';
  }

  async function sendCode(destination: string): Promise<string> {
    // One code a number every 30 seconds: the tests move time on rather than wait.
    clock.offsetMs += 31_000;
    await page.check('input[name="step-method"][value="code"]');
    await page.fill('#step-up-phone', destination);
    await page.click('#step-up-send');
    await page.locator(`#status:has-text("${strings.en.codeSent}")`).waitFor();
    return codeFor(destination);
  }

  async function errorAfterPay(): Promise<string> {
    const [answer] = await Promise.all([page.waitForResponse((response) => /\/step-up\//.test(response.url()) && response.request().method() === 'POST'), page.click('#pay')]);
    await answer.finished();
    await page.locator('#error:not([hidden])').waitFor();
    return (await page.locator('#error').textContent()) ?? '';
  }

  /** A post from the page's own script, with its token: what a shopper's browser (or a tampered one) can send. */
  async function inPage(suffix: string, body: Record<string, unknown>): Promise<InPageAnswer> {
    return page.evaluate(`(async () => {
      const config = JSON.parse(document.getElementById('checkout-config').textContent);
      const body = { amount: config.amount, currency: config.currency, ...${JSON.stringify(body)} };
      const response = await fetch('/pay/' + config.session + ${JSON.stringify(suffix)}, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-coffer-csrf': config.csrf }, body: JSON.stringify(body),
      });
      return { status: response.status, json: await response.json() };
    })()`);
  }

  /** The authenticator's answer to options, made in the page; with `preferred`, the browser does not insist on verification. */
  async function assertionInPage(options: Record<string, unknown>, userVerification: 'required' | 'preferred', credentialId?: string): Promise<Record<string, unknown>> {
    const allowCredentials = credentialId === undefined ? [] : [{ id: credentialId, type: 'public-key' }];
    return page.evaluate(`(async () => {
      const options = ${JSON.stringify({ ...options, userVerification, allowCredentials })};
      const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
      return credential.toJSON();
    })()`);
  }

  const chargeOf = async (paymentIntent: string) => {
    const intent = await stripe.paymentIntents.retrieve(paymentIntent);
    return server.database.db.selectFrom('charges').select(['status', 'risk']).where('id', '=', intent.latest_charge as string).executeTakeFirstOrThrow();
  };
  const stepUpRows = (sessionId: string) => server.database.db.selectFrom('shopper_step_ups').selectAll().where('checkout_session_id', '=', sessionId).orderBy('created_at').execute();
  const passwordOf = (identity: string) => server.database.db.selectFrom('shopper_credentials').selectAll().where('identity', '=', identity).where('kind', '=', 'payment_password').executeTakeFirst();
  const triesOf = (identity: string) => server.database.db.selectFrom('shopper_password_tries').selectAll().where('identity', '=', identity).executeTakeFirst();

  test('payment password: set only with a code (a guessable one is refused and spends nothing), then confirms another payment', async () => {
    const phone = '+8613700137000';
    const first = await newSession();
    await toStepUp(first.url ?? '');
    const code = await sendCode(phone);
    await page.fill('#step-up-code', code);
    await page.fill('#step-up-new-password', '123456');
    assert.equal(await errorAfterPay(), strings.en.stepUp_password_weak);
    const [sent] = await stepUpRows(first.id);
    assert.equal(sent?.attempts, 0, 'the refused password spent no try of the code');
    assert.equal(sent?.verified_at, null);
    assert.equal(await passwordOf(phone), undefined, 'no password was set');
    await page.fill('#step-up-new-password', '739164');
    await clickThrough(page, '#pay', /\/done/);
    const stored = await passwordOf(phone);
    assert.match(stored?.password_hash ?? '', /^\$argon2id\$/);
    assert.equal((await chargeOf(first.payment_intent as string)).risk?.shopper_step_up, 'sms_code');

    const second = await newSession();
    await toStepUp(second.url ?? '');
    await page.check('input[name="step-method"][value="password"]');
    assert.equal(await page.isVisible('#step-up-send'), false, 'the code controls are hidden');
    await page.fill('#step-up-phone', '+86 137 0013 7000');
    await page.fill('#step-up-password', '739164');
    await screenshot('checkout-step-up-password.png');
    await clickThrough(page, '#pay', /\/done/);
    const charge = await chargeOf(second.payment_intent as string);
    assert.equal(charge.status, 'succeeded');
    assert.equal(charge.risk?.shopper_step_up, 'payment_password', 'the method is recorded on the payment');
    const audit = await server.database.db.selectFrom('audit_log').select(['actor_type', 'details']).where('action', '=', 'step_up.verify').orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    assert.equal(audit.actor_type, 'shopper');
    assert.deepEqual([(audit.details as { method?: string }).method, (audit.details as { result?: string }).result], ['payment_password', 'passed']);
  });

  test('payment password: five wrong tries lock it, the answer never says which part was wrong, and a code sets a new one', async () => {
    const phone = '+8613700137000';
    const third = await newSession();
    await toStepUp(third.url ?? '');
    await page.check('input[name="step-method"][value="password"]');
    await page.fill('#step-up-phone', phone);
    const messages: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      await page.fill('#step-up-password', `90817${i}`);
      messages.push(await errorAfterPay());
    }
    assert.deepEqual(messages.slice(0, 4), [4, 3, 2, 1].map((n) => strings.en.stepUp_password_wrong.replace('{remaining}', String(n))));
    assert.equal(messages[4], strings.en.stepUp_password_locked);
    assert.notEqual((await triesOf(phone))?.locked_at, null, 'the password is locked');
    await page.fill('#step-up-password', '739164');
    assert.equal(await errorAfterPay(), strings.en.stepUp_password_locked, 'even the right password is refused');
    assert.equal((await stripe.paymentIntents.retrieve(third.payment_intent as string)).status, 'requires_payment_method');

    // Another session: an unknown number gets the very answer a known one with a wrong password got.
    const fourth = await newSession();
    await toStepUp(fourth.url ?? '');
    await page.check('input[name="step-method"][value="password"]');
    await page.fill('#step-up-phone', '+8613600136000');
    await page.fill('#step-up-password', '739164');
    assert.equal(await errorAfterPay(), messages[0], 'an unknown number and a wrong password read the same');
    await page.fill('#step-up-phone', phone);
    assert.equal(await errorAfterPay(), strings.en.stepUp_password_locked, 'the lock holds in every session');
    const code = await sendCode(phone);
    await page.fill('#step-up-code', code);
    await page.fill('#step-up-new-password', '582047');
    await clickThrough(page, '#pay', /\/done/);
    assert.equal(await triesOf(phone), undefined, 'the code forgave the wrong tries and lifted the lock');
    const actions = await server.database.db.selectFrom('audit_log').select('action').where('action', 'in', ['step_up.password_set', 'step_up.password_reset']).orderBy('seq').execute();
    assert.deepEqual(actions.map((row) => row.action), ['step_up.password_set', 'step_up.password_reset']);
  });

  let assertion: Record<string, unknown> | undefined;

  test('passkey: saved after a code, then confirms a payment with the device\'s user verification', async () => {
    const phone = '+8613500135000';
    const first = await newSession();
    await toStepUp(first.url ?? '');
    const code = await sendCode(phone);
    await page.fill('#step-up-code', code);
    await page.check('#step-up-save-passkey');
    await screenshot('checkout-step-up-code.png');
    await clickThrough(page, '#pay', /\/done/);
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'the authenticator holds one passkey');
    const saved = await server.database.db.selectFrom('shopper_credentials').selectAll().where('kind', '=', 'passkey').execute();
    assert.deepEqual(saved.map((row) => [row.identity, row.credential_id]), [[phone, credentials[0]?.credentialId.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')]]);

    const second = await newSession();
    await toStepUp(second.url ?? '');
    await page.check('input[name="step-method"][value="passkey"]');
    assert.equal(await page.isVisible('#step-up-phone'), false, 'nothing to type');
    await screenshot('checkout-step-up-passkey.png');
    page.on('request', (request) => {
      if (request.url().endsWith('/step-up/passkey/verify')) assertion = (JSON.parse(request.postData() ?? '{}') as { credential: Record<string, unknown> }).credential;
    });
    await clickThrough(page, '#pay', /\/done/);
    const charge = await chargeOf(second.payment_intent as string);
    assert.equal(charge.status, 'succeeded');
    assert.equal(charge.risk?.shopper_step_up, 'passkey');
    const rows = await stepUpRows(second.id);
    const passkeyRow = rows.find((row) => row.method === 'passkey');
    assert.notEqual(passkeyRow?.verified_at, null);
    assert.equal(passkeyRow?.payment_intent_id, second.payment_intent);
    assert.ok(assertion !== undefined, 'the page sent an assertion');
  });

  test('a replayed passkey assertion is refused, in its own session and in another', async () => {
    assert.ok(assertion !== undefined);
    const other = await newSession();
    await toStepUp(other.url ?? '');
    const asked = await inPage('/step-up/passkey/options', {});
    assert.equal(asked.status, 200);
    const replayed = await inPage('/step-up/passkey/verify', { credential: assertion });
    assert.equal(replayed.status, 400);
    assert.equal(replayed.json.message, strings.en.stepUp_passkey_failed);
    // The challenge was spent by the refused answer: an honest answer to it now is refused too.
    const late = await inPage('/step-up/passkey/verify', { credential: await assertionInPage(asked.json.options ?? {}, 'required') });
    assert.equal(late.status, 400, 'a challenge is answered once');
    assert.deepEqual((await stepUpRows(other.id)).filter((row) => row.verified_at !== null), [], 'nothing was verified');
    const confirm = await inPage('/confirm', { method: 'card', payment_method: 'pm_card_visa', details: { email: 'shopper@example.com' } });
    assert.equal(confirm.json.state, 'step_up', 'the payment still asks for its step-up');
    assert.equal((await stripe.paymentIntents.retrieve(other.payment_intent as string)).status, 'requires_payment_method');
  });

  test('an assertion without user verification is refused by the server', async () => {
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    const [credential] = credentials;
    assert.ok(credential !== undefined);
    // The same passkey in an authenticator that cannot verify its user; the page is asked with `preferred`, so the
    // browser lets the unverified answer through and only the server stands in the way.
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    const weak = (await cdp.send('WebAuthn.addVirtualAuthenticator', { options: { ...authenticator, hasUserVerification: false, isUserVerified: false } })).authenticatorId;
    await cdp.send('WebAuthn.addCredential', { authenticatorId: weak, credential });
    const session = await newSession();
    await toStepUp(session.url ?? '');
    const asked = await inPage('/step-up/passkey/options', {});
    const unverified = await assertionInPage(asked.json.options ?? {}, 'preferred', Buffer.from(credential.credentialId, 'base64').toString('base64url'));
    const answer = await inPage('/step-up/passkey/verify', { credential: unverified });
    assert.equal(answer.status, 400);
    assert.equal(answer.json.message, strings.en.stepUp_passkey_failed);
    const audit = await server.database.db.selectFrom('audit_log').select('details').where('action', '=', 'step_up.verify').orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    assert.match(String((audit.details as { reason?: string }).reason), /user verification/i);
    assert.equal((await stripe.paymentIntents.retrieve(session.payment_intent as string)).status, 'requires_payment_method');
    // The verifying authenticator back, with the passkey (and its counter) as it is now.
    const { credentials: now } = await cdp.send('WebAuthn.getCredentials', { authenticatorId: weak });
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: weak });
    authenticatorId = (await cdp.send('WebAuthn.addVirtualAuthenticator', { options: { ...authenticator, hasUserVerification: true } })).authenticatorId;
    for (const restored of now) await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: restored });
  });

  test('a PaymentIntent made through the API is paid on the page by its client secret; a passkey answer made before its amount changed is refused', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 5_000, currency: 'cny', allowed_payment_method_types: ['card'], description: 'Order 42' });
    const pages = () => server.database.db.selectFrom('checkout_sessions').select('id').where('kind', '=', 'payment_intent').execute();
    const wrong = await page.goto(`${origin}/pay/intent?client_secret=${intent.id}_secret_${'x'.repeat(25)}`);
    assert.equal(wrong?.status(), 404, 'a wrong secret opens nothing');
    const badReturn = await page.goto(`${origin}/pay/intent?client_secret=${intent.client_secret ?? ''}&return_url=javascript:alert(1)`);
    assert.equal(badReturn?.status(), 400);
    assert.match(await page.locator('main').textContent() ?? '', /return_url/);
    assert.deepEqual(await pages(), [], 'the refused requests made no page');

    await toStepUp(`${origin}/pay/intent?client_secret=${intent.client_secret ?? ''}&return_url=${encodeURIComponent('https://shop.example/order/42')}`);
    assert.match(page.url(), /\/pay\/cs_test_[A-Za-z0-9]{24}$/, 'the secret left the address bar');
    assert.match(await page.locator('#total').textContent() ?? '', /50\.00/);
    const listed = await stripe.checkout.sessions.list({ payment_intent: intent.id });
    assert.deepEqual(listed.data, [], 'the Checkout Sessions API does not show a PaymentIntent\'s page');

    const asked = await inPage('/step-up/passkey/options', {});
    await stripe.paymentIntents.update(intent.id, { amount: 6_000 });
    const signed = await assertionInPage(asked.json.options ?? {}, 'required');
    // The page still shows 50.00: told that the payment changed, before the answer is even looked at.
    const shown = await inPage('/step-up/passkey/verify', { credential: signed });
    assert.equal(shown.status, 400);
    assert.equal(shown.json.message, strings.en.stepUp_payment_changed);
    // A page that claims the new amount: the answer signed the old one, and is refused all the same.
    const claimed = await inPage('/step-up/passkey/verify', { credential: signed, amount: '6000' });
    assert.equal(claimed.status, 400);
    assert.equal(claimed.json.message, strings.en.stepUp_payment_changed);
    assert.deepEqual((await stepUpRows((await pages())[0]?.id ?? '')).filter((row) => row.verified_at !== null), [], 'nothing was verified');
    assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_payment_method');
    // Paying from the stale page is refused too, and the page comes back with the new amount and a word on why.
    await page.click('#pay');
    await page.waitForURL(/changed=1/);
    assert.equal(await page.locator('#error').textContent(), strings.en.paymentChanged);

    await toStepUp(page.url());
    assert.match(await page.locator('#total').textContent() ?? '', /60\.00/, 'the page shows the new amount');
    await page.check('input[name="step-method"][value="passkey"]');
    await clickThrough(page, '#pay', /\/done/);
    const paid = await stripe.paymentIntents.retrieve(intent.id);
    assert.equal(paid.status, 'succeeded');
    assert.equal(paid.amount_received, 6_000);
    assert.equal(await page.locator('a.button').getAttribute('href'), 'https://shop.example/order/42');
    assert.equal((await chargeOf(intent.id)).risk?.shopper_step_up, 'passkey');
    const events = await stripe.events.list({ type: 'checkout.session.completed', limit: 100 });
    assert.ok(!events.data.some((event) => (event.data.object as { payment_intent?: string }).payment_intent === intent.id), 'no checkout event for a PaymentIntent\'s page');
    assert.deepEqual(violations, [], 'no page broke its Content-Security-Policy');
  });

  test('the step-up panel on a phone: nothing overflows, and axe-core finds no serious or critical violation', async () => {
    const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    // axe is injected for the audit only: the checkout's own CSP would (rightly) refuse it.
    const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, bypassCSP: true, locale: 'zh-CN' });
    const small = await phone.newPage();
    try {
      const session = await newSession();
      await small.goto(session.url ?? '');
      await fillEmail(small);
      const frame = small.frameLocator('#card-frame');
      await frame.locator('#number').fill('4242424242424242');
      await frame.locator('#expiry').fill('12 / 34');
      await frame.locator('#cvc').fill('123');
      // By keyboard: on a phone, the focused field in the frame may still be scrolling into view, moving the button under a click.
      await small.locator('#pay').focus();
      await small.keyboard.press('Enter');
      await small.locator('#step-up:not([hidden])').waitFor();
      assert.equal(await small.locator('#step-up-title').textContent(), strings.zh.stepUpTitle, 'in the shopper\'s language');
      for (const method of ['code', 'password', 'passkey']) {
        await small.check(`input[name="step-method"][value="${method}"]`);
        const overflow = await small.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
        assert.ok(overflow <= 0, `with ${method}, the page is ${overflow}px wider than the screen`);
        await small.addScriptTag({ content: axeSource });
        const result = await small.evaluate<Array<{ id: string; impact: string | null; count: number }>>(`axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })
          .then((run) => run.violations.map((violation) => ({ id: violation.id, impact: violation.impact, count: violation.nodes.length })))`);
        const serious = result.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
        assert.deepEqual(serious, [], `${method}: ${JSON.stringify(result)}`);
      }
    } finally {
      await phone.close();
    }
  });
});
