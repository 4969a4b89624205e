import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { browserMissing, browserPage, clickThrough, fillCard, wholePageScreenshot } from '../support/browser.ts';
import { openCheckoutPage } from '../support/checkout-page.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: what a Checkout Session's page says besides the order is the merchant's, as Stripe's submit_type,
// custom_text and consent_collection make it (decision 0059): the pay button's verb, the merchant's messages in their
// places (plain text, with https links only), terms the shopper must tick to pay (refused by the server too, changing
// nothing), offers they may opt into, and the card's reuse line hidden on request. What the shopper accepted is in the
// completed session's `consent` and in the audit record of the paying try. Payment links keep the same for each of
// their sessions. Bad parameters are refused by name and make nothing.
let server: TestServer;
let stripe: Stripe;

before(async () => {
  server = await startTestServer();
  stripe = server.stripe;
});
after(async () => {
  await server.close();
});

const terms = 'I agree to the [Terms of Service](https://shop.example/terms) and the <b>refund policy</b>.';
const order = {
  mode: 'payment' as const, success_url: 'https://shop.example/thanks', customer_email: 'shopper@example.com',
  line_items: [{ price_data: { currency: 'usd', unit_amount: 2_500, product_data: { name: 'Concert ticket' } }, quantity: 1 }],
};
const presented = {
  submit_type: 'book' as const,
  custom_text: { submit: { message: 'Tickets are [not refundable](https://shop.example/faq).' }, after_submit: { message: 'Your ticket comes by email.' }, terms_of_service_acceptance: { message: terms } },
  consent_collection: { terms_of_service: 'required' as const, promotions: 'auto' as const, payment_method_reuse_agreement: { position: 'hidden' as const } },
};

const fields: Stripe.Checkout.SessionCreateParams.CustomField[] = [
  { key: 'engraving', label: { type: 'custom', custom: 'Engraving' }, type: 'text', text: { minimum_length: 2, maximum_length: 12, default_value: 'For you' } },
  { key: 'floor', label: { type: 'custom', custom: 'Floor number' }, type: 'numeric', optional: true, numeric: { maximum_length: 3 } },
  { key: 'wrap', label: { type: 'custom', custom: 'Gift wrap' }, type: 'dropdown', dropdown: { options: [{ label: 'None', value: 'none' }, { label: 'Red paper', value: 'red' }], default_value: 'none' } },
];

async function count(table: 'checkout_sessions' | 'payment_links' | 'charges'): Promise<number> {
  const row = await server.database.db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('A Checkout Session\'s page text and consents (API)', () => {
  test('the session shows what it was given, and what Stripe shows when nothing was', async () => {
    const plain = await stripe.checkout.sessions.create(order);
    assert.deepEqual([plain.submit_type, plain.consent_collection, plain.consent], [null, null, null]);
    assert.deepEqual(plain.custom_text, { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null });
    const session = await stripe.checkout.sessions.create({ ...order, ...presented, custom_text: { ...presented.custom_text, shipping_address: '' }, payment_intent_data: { setup_future_usage: 'off_session' } });
    assert.equal(session.submit_type, 'book');
    assert.deepEqual(session.custom_text, { after_submit: { message: 'Your ticket comes by email.' }, shipping_address: null, submit: presented.custom_text.submit, terms_of_service_acceptance: { message: terms } });
    assert.deepEqual(session.consent_collection, { payment_method_reuse_agreement: { position: 'hidden' }, promotions: 'auto', terms_of_service: 'required' });
    assert.equal(session.consent, null, 'nothing is accepted before the shopper pays');
  });

  test('bad presentation is refused by name and makes nothing', async () => {
    const before = await count('checkout_sessions');
    const cases: Array<[string, Partial<Stripe.Checkout.SessionCreateParams>, string, RegExp]> = [
      ['a link that is not https', { custom_text: { submit: { message: 'See [this](javascript:alert(1))' } } }, 'custom_text[submit][message]', /https URL/],
      ['a plain http link', { custom_text: { after_submit: { message: 'See [our page](http://shop.example/)' } } }, 'custom_text[after_submit][message]', /https URL/],
      ['a message of spaces', { custom_text: { submit: { message: '   ' } } }, 'custom_text[submit][message]', /empty/],
      ['a message too long', { custom_text: { submit: { message: 'x'.repeat(1_201) } } }, 'custom_text[submit][message]', /1200/],
      ['a shipping address message without a shipping address', { custom_text: { shipping_address: { message: 'We ship on Mondays.' } } }, 'custom_text[shipping_address]', /shipping_address_collection/],
      ['terms to accept without their text', { consent_collection: { terms_of_service: 'required' } }, 'custom_text[terms_of_service_acceptance]', /Terms of Service/],
      ['terms text without terms to accept', { custom_text: { terms_of_service_acceptance: { message: terms } } }, 'custom_text[terms_of_service_acceptance]', /consent_collection\[terms_of_service\]=required/],
      ['a subscription\'s verb', { submit_type: 'subscribe' as 'pay' }, 'submit_type', /auto|book|donate|pay/],
      ['an unknown consent', { consent_collection: { promotions: 'always' as 'auto' } }, 'consent_collection[promotions]', /auto|none/],
      ['an unknown reuse agreement position', { consent_collection: { payment_method_reuse_agreement: { position: 'top' as 'auto' } } }, 'consent_collection[payment_method_reuse_agreement][position]', /auto|hidden/],
    ];
    for (const [what, params, param, message] of cases) {
      const refused = await stripe.checkout.sessions.create({ ...order, ...params }).then(() => undefined, (error: Stripe.errors.StripeError) => error);
      assert.equal(refused?.type, 'StripeInvalidRequestError', what);
      assert.equal(refused?.param, param, what);
      assert.match(refused?.message ?? '', message, what);
    }
    assert.equal(await count('checkout_sessions'), before, 'no session was made');
  });

  test('the page: the verb, the messages in their places (escaped, https links only), the boxes; the server needs the terms ticked', async () => {
    const session = await stripe.checkout.sessions.create({
      ...order, ...presented, payment_intent_data: { setup_future_usage: 'off_session' },
      shipping_address_collection: { allowed_countries: ['US'] }, custom_text: { ...presented.custom_text, shipping_address: { message: 'We ship on Mondays.' } },
    });
    const page = await openCheckoutPage(server, session);
    const html = page.html.body;
    assert.match(html, /<button id="pay"[^>]*>Book \$25\.00<\/button>/);
    assert.match(html, /id="custom-text-submit">Tickets are <a href="https:\/\/shop\.example\/faq" target="_blank" rel="noopener noreferrer">not refundable<\/a>\.<\/p>/);
    assert.match(html, /id="custom-text-after-submit">Your ticket comes by email\.<\/p>/);
    assert.match(html, /id="custom-text-shipping-address">We ship on Mondays\.<\/p>/);
    assert.match(html, /id="terms-text">I agree to the <a href="https:\/\/shop\.example\/terms"[^>]*>Terms of Service<\/a> and the &lt;b&gt;refund policy&lt;\/b&gt;\.<\/span>/, 'markup in a message is shown as text');
    assert.match(html, /id="terms" data-detail="terms" value="accepted" required/);
    assert.match(html, /id="promotions" data-detail="promotions" value="opt_in"/);
    assert.doesNotMatch(html, /id="card-consent"/, 'the card\'s reuse line is hidden on request');
    // The order's words the page's script recomputes the total with use the same verb.
    assert.match(html, /"pay":"Book \{amount\}"/);

    const shipping = { 'shipping.name': 'Ada', 'shipping.line1': '1 Main St', 'shipping.city': 'Springfield', 'shipping.country': 'US' };
    const method = (await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id;
    const charges = await count('charges');
    for (const ticked of ['', 'yes']) {
      const refused = await page.post('/confirm', { method: 'card', payment_method: method, details: { ...shipping, terms: ticked } });
      assert.deepEqual([refused.status, refused.json.field, refused.json.message], [400, 'terms', strings.en.termsMissing], refused.body);
    }
    assert.equal(await count('charges'), charges, 'nothing was tried without the terms');
    assert.equal((await stripe.paymentIntents.retrieve(String(session.payment_intent))).status, 'requires_payment_method');

    const paid = await page.post('/confirm', { method: 'card', payment_method: method, details: { ...shipping, terms: 'accepted', promotions: 'opt_in' } });
    assert.equal(paid.json.state, 'complete', paid.body);
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual(done.consent, { promotions: 'opt_in', terms_of_service: 'accepted' });
    const confirmed = await server.database.db.selectFrom('audit_log').select('details').where('action', '=', 'payment_intent.confirm')
      .where('object_id', '=', String(session.payment_intent)).executeTakeFirstOrThrow();
    assert.deepEqual((confirmed.details as { consent?: unknown }).consent, { terms_of_service: 'accepted', promotions: 'opt_in' }, 'the paying try records what was accepted');
  });

  test('the shopper who leaves the offers unticked opts out; without the boxes asked, the page shows none', async () => {
    const session = await stripe.checkout.sessions.create({ ...order, submit_type: 'donate', consent_collection: { promotions: 'auto' } });
    const page = await openCheckoutPage(server, session);
    assert.match(page.html.body, /<button id="pay"[^>]*>Donate \$25\.00<\/button>/);
    assert.doesNotMatch(page.html.body, /id="terms"/);
    const method = (await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id;
    const paid = await page.post('/confirm', { method: 'card', payment_method: method, details: {} });
    assert.equal(paid.json.state, 'complete', paid.body);
    assert.deepEqual((await stripe.checkout.sessions.retrieve(session.id)).consent, { promotions: 'opt_out', terms_of_service: null });

    const plain = await openCheckoutPage(server, await stripe.checkout.sessions.create({ ...order, payment_intent_data: { setup_future_usage: 'off_session' } }));
    assert.match(plain.html.body, /<button id="pay"[^>]*>Pay \$25\.00<\/button>/);
    assert.doesNotMatch(plain.html.body, /id="terms"|id="promotions"|custom-text/);
    assert.match(plain.html.body, /id="card-consent"/, 'the card\'s reuse line shows by default');
  });

  test('a payment link keeps the same for each session it makes, and refuses what a session would', async () => {
    const product = await stripe.products.create({ name: 'Workshop seat' });
    const price = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 9_000 });
    const before = await count('payment_links');
    const refused = await stripe.paymentLinks.create({ line_items: [{ price: price.id, quantity: 1 }], consent_collection: { terms_of_service: 'required' } })
      .then(() => undefined, (error: Stripe.errors.StripeError) => error);
    assert.equal(refused?.param, 'custom_text[terms_of_service_acceptance]');
    assert.equal(await count('payment_links'), before, 'no link was made');

    const link = await stripe.paymentLinks.create({ line_items: [{ price: price.id, quantity: 1 }], ...presented, customer_creation: 'always' });
    assert.deepEqual([link.submit_type, link.customer_creation, link.custom_text.submit, link.consent_collection?.terms_of_service], ['book', 'always', presented.custom_text.submit, 'required']);
    const linkPage = await rawRequest(server, 'GET', `/buy/${link.id}`);
    const token = /name="token" value="([^"]+)"/.exec(linkPage.body)?.[1] ?? '';
    const made = await rawRequest(server, 'POST', `/buy/${link.id}`, { body: `token=${encodeURIComponent(token)}`, headers: { origin: new URL(link.url).origin } });
    assert.equal(made.status, 303, made.body);
    const sessionId = /\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(String(made.headers.location))?.[1] ?? '';
    const session = await stripe.checkout.sessions.retrieve(sessionId);
    assert.deepEqual([session.submit_type, session.customer_creation, session.custom_text.terms_of_service_acceptance?.message, session.consent_collection?.promotions],
      ['book', 'always', terms, 'auto']);
  });
});

describe('The merchant\'s own fields (custom_fields)', () => {

  test('the session and a link show them (values once paid); bad ones are refused by name and make nothing', async () => {
    const session = await stripe.checkout.sessions.create({ ...order, custom_fields: fields });
    assert.deepEqual(session.custom_fields.map((field) => [field.key, field.type, field.optional]), [['engraving', 'text', false], ['floor', 'numeric', true], ['wrap', 'dropdown', false]]);
    assert.deepEqual(session.custom_fields[0]?.text, { default_value: 'For you', maximum_length: 12, minimum_length: 2, value: null });
    assert.deepEqual(session.custom_fields[2]?.dropdown, { default_value: 'none', options: [{ label: 'None', value: 'none' }, { label: 'Red paper', value: 'red' }], value: null });
    assert.equal(session.custom_fields[2]?.text, null);

    const before = await count('checkout_sessions');
    const text = (extra: Partial<Stripe.Checkout.SessionCreateParams.CustomField>) => ({ key: 'note', label: { type: 'custom' as const, custom: 'Note' }, type: 'text' as const, ...extra });
    const cases: Array<[string, Stripe.Checkout.SessionCreateParams.CustomField[], string, RegExp]> = [
      ['four fields', [...fields, text({})], 'custom_fields', /3/],
      ['a key twice', [text({}), text({})], 'custom_fields[1][key]', /another field/],
      ['a key that is not alphanumeric', [text({ key: 'gift-note' })], 'custom_fields[0][key]', /letters and digits only/],
      ['a label too long', [text({ label: { type: 'custom', custom: 'x'.repeat(51) } })], 'custom_fields[0][label][custom]', /50/],
      ['a dropdown without options', [text({ type: 'dropdown' })], 'custom_fields[0][dropdown]', /options/],
      ['a default that is no option', [{ ...fields[2]!, dropdown: { options: [{ label: 'A', value: 'a' }], default_value: 'b' } }], 'custom_fields[0][dropdown][default_value]', /not the value of one of its options/],
      ['an option value twice', [{ ...fields[2]!, dropdown: { options: [{ label: 'A', value: 'a' }, { label: 'B', value: 'a' }] } }], 'custom_fields[0][dropdown][options]', /twice/],
      ['text settings on a numeric field', [text({ type: 'numeric', text: { maximum_length: 3 } })], 'custom_fields[0][text]', /type text/],
      ['bounds out of order', [text({ text: { minimum_length: 5, maximum_length: 3 } })], 'custom_fields[0][text][minimum_length]', /above its maximum_length/],
      ['a numeric default with letters', [text({ type: 'numeric', numeric: { default_value: '12a' } })], 'custom_fields[0][numeric][default_value]', /digits only/],
    ];
    for (const [what, given, param, message] of cases) {
      const refused = await stripe.checkout.sessions.create({ ...order, custom_fields: given }).then(() => undefined, (error: Stripe.errors.StripeError) => error);
      assert.equal(refused?.param, param, `${what}: ${refused?.message ?? 'made'}`);
      assert.match(refused?.message ?? '', message, what);
    }
    assert.equal(await count('checkout_sessions'), before, 'no session was made');

    const product = await stripe.products.create({ name: 'Engraved pen' });
    const price = await stripe.prices.create({ product: product.id, currency: 'usd', unit_amount: 3_000 });
    const link = await stripe.paymentLinks.create({ line_items: [{ price: price.id, quantity: 1 }], custom_fields: fields });
    assert.deepEqual(link.custom_fields.map((field) => field.key), ['engraving', 'floor', 'wrap']);
    assert.equal('value' in (link.custom_fields[0]?.text ?? {}), false, 'a link\'s fields have no value');
  });

  test('the page asks them; the server refuses a missing, short, non-digit or unknown answer by name and tries nothing; paid, the session has the answers', async () => {
    const session = await stripe.checkout.sessions.create({ ...order, custom_fields: fields });
    const page = await openCheckoutPage(server, session);
    const html = page.html.body;
    assert.match(html, /<label class="field" for="custom-engraving">Engraving<\/label><input class="text" type="text" id="custom-engraving" data-detail="custom.engraving" required[^>]* maxlength="12" value="For you">/);
    assert.match(html, /for="custom-floor">Floor number <span class="hint">\(optional\)<\/span><\/label><input[^>]*data-detail="custom.floor" maxlength="3" inputmode="numeric"/);
    assert.match(html, /<option value="none" selected>None<\/option><option value="red">Red paper<\/option>/);

    const method = (await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id;
    const charges = await count('charges');
    const good = { 'custom.engraving': 'Ada', 'custom.floor': '', 'custom.wrap': 'red' };
    for (const [answers, field, message] of [
      [{ ...good, 'custom.engraving': ' ' }, 'custom.engraving', 'Fill in: Engraving.'],
      [{ ...good, 'custom.engraving': 'A' }, 'custom.engraving', 'Engraving: between 2 and 12 characters.'],
      [{ ...good, 'custom.floor': '3rd' }, 'custom.floor', 'Floor number: digits only.'],
      [{ ...good, 'custom.floor': '1234' }, 'custom.floor', 'Floor number: between 1 and 3 characters.'],
      [{ ...good, 'custom.wrap': 'gold' }, 'custom.wrap', 'Gift wrap: choose one of the options.'],
    ] as const) {
      const refused = await page.post('/confirm', { method: 'card', payment_method: method, details: answers });
      assert.deepEqual([refused.status, refused.json.field, refused.json.message], [400, field, message], refused.body);
    }
    assert.equal(await count('charges'), charges, 'nothing was tried');
    assert.equal((await server.database.db.selectFrom('checkout_sessions').select('collected').where('id', '=', session.id).executeTakeFirstOrThrow()).collected, null, 'nothing was kept');

    const paid = await page.post('/confirm', { method: 'card', payment_method: method, details: good });
    assert.equal(paid.json.state, 'complete', paid.body);
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual(done.custom_fields.map((field) => field.text?.value ?? field.numeric?.value ?? field.dropdown?.value ?? null), ['Ada', null, 'red']);
    const completed = (await stripe.events.list({ type: 'checkout.session.completed', limit: 20 })).data.find((event) => (event.data.object as Stripe.Checkout.Session).id === session.id);
    assert.equal((completed?.data.object as Stripe.Checkout.Session | undefined)?.custom_fields[0]?.text?.value, 'Ada', 'fulfilment gets the answers with the event');
  });

  test('the session keeps the paying try\'s answers, even after an earlier try left the payment waiting on the shopper', async () => {
    const session = await stripe.checkout.sessions.create({ ...order, consent_collection: { promotions: 'auto' }, custom_fields: [fields[0]!] });
    const page = await openCheckoutPage(server, session);
    const card = async (number: string) => (await stripe.paymentMethods.create({ type: 'card', card: { number, exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id;
    // A card whose bank asks for 3-D Secure: the shopper is sent to the challenge, and comes back to try another card.
    const first = await page.post('/confirm', { method: 'card', payment_method: await card('4000000000003220'), details: { promotions: 'opt_in', 'custom.engraving': 'First' } });
    assert.equal(first.json.state, 'redirect', first.body);
    assert.equal((await stripe.paymentIntents.retrieve(String(session.payment_intent))).status, 'requires_action');
    const method = await card('4242424242424242');
    const paid = await page.post('/confirm', { method: 'card', payment_method: method, details: { promotions: '', 'custom.engraving': 'Second' } });
    assert.equal(paid.json.state, 'complete', paid.body);
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([done.consent?.promotions, done.custom_fields[0]?.text?.value], ['opt_out', 'Second'], 'the shopper\'s last word, with which they paid');
  });
});

describe('Terms ticked on the hosted page', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  const ui = browserPage(() => server.coffer.certFile);
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  test('paying without ticking the terms is stopped before a card is sent; ticked, the booking is paid with the merchant\'s fields filled in', async () => {
    const page = ui.page();
    const session = await stripe.checkout.sessions.create({ ...order, ...presented, custom_fields: fields });
    await page.goto(session.url ?? '');
    assert.equal(await page.inputValue('#custom-engraving'), 'For you', 'the merchant\'s default');
    await page.fill('#custom-engraving', 'To Ada');
    await page.selectOption('#custom-wrap', 'red');
    assert.equal((await page.locator('#pay').textContent())?.trim(), 'Book $25.00');
    await fillCard(page);
    const methods = async () => Number((await server.database.db.selectFrom('payment_methods').select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n);
    const before = await methods();
    await page.click('#pay');
    await page.locator('#error', { hasText: strings.en.termsMissing }).waitFor();
    assert.equal(await page.locator('#terms').getAttribute('aria-invalid'), 'true');
    assert.equal(await methods(), before, 'no card was sent');
    await page.check('#terms');
    assert.equal(await page.locator('#terms').getAttribute('aria-invalid'), null, 'ticking it clears the mark');
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-terms.png'));
    await clickThrough(page, '#pay', /\/done/);
    const paid = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([paid.status, paid.consent], ['complete', { promotions: 'opt_out', terms_of_service: 'accepted' }]);
    assert.deepEqual(paid.custom_fields.map((field) => field.text?.value ?? field.numeric?.value ?? field.dropdown?.value ?? null), ['To Ada', null, 'red']);
  });
});
