import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { browserMissing, browserPage, clickThrough, wholePageScreenshot } from '../support/browser.ts';
import { openCheckoutPage } from '../support/checkout-page.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';
import { refusedWithNothingChanged as refusedUnchanged } from '../support/unchanged.ts';

// Goal: a Checkout Session may let the shopper choose to save the card they pay with
// (`saved_payment_method_options[payment_method_save]`, decision 0063): ticked, the paid card is saved to the
// customer and may be shown to them again (`allow_redisplay=always`); unticked (even after a ticked try that failed),
// nothing is saved. A returning customer's page shows their cards that may be shown again and pays with one; a card
// of theirs that may not be shown, or another's, is refused and nothing is charged. Bad options are refused by name.
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
const order = { mode: 'payment' as const, success_url: 'https://shop.example/thanks', line_items: [kettle] };
const save = { saved_payment_method_options: { payment_method_save: 'enabled' as const } };

/** A new card PaymentMethod, as the card frame would make it (no customer). */
async function card(number = '4242424242424242') {
  return { method: 'card', payment_method: (await stripe.paymentMethods.create({ type: 'card', card: { number, exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id };
}
const savedCards = async (customer: string) => (await stripe.paymentMethods.list({ customer, type: 'card' })).data;

describe('saving a card by the shopper\'s choice (API)', () => {
  test('shown as given; what it cannot do is refused by name, and nothing is made', async () => {
    const customer = await stripe.customers.create({ email: 'ada@example.com' });
    const session = await stripe.checkout.sessions.create({ ...order, customer: customer.id, ...save });
    assert.deepEqual(session.saved_payment_method_options, { allow_redisplay_filters: ['always'], payment_method_remove: null, payment_method_save: 'enabled' });
    const tables = ['checkout_sessions', 'payment_intents', 'events', 'audit_log'] as const;
    const refused = (extra: Partial<Stripe.Checkout.SessionCreateParams>, param: string, message: RegExp) =>
      refusedUnchanged(server, tables, () => stripe.checkout.sessions.create({ ...order, ...extra }), param, message);
    await refused({ ...save }, 'saved_payment_method_options[payment_method_save]', /needs a customer/);
    await refused({ ...save, customer: customer.id, payment_intent_data: { setup_future_usage: 'off_session' } }, 'saved_payment_method_options[payment_method_save]', /one or the other/);
    await refused({ ...save, customer: customer.id, payment_method_options: { card: { setup_future_usage: 'on_session' } } }, 'saved_payment_method_options[payment_method_save]', /one or the other/);
    await refused({ customer: customer.id, saved_payment_method_options: { payment_method_remove: 'enabled' } }, 'saved_payment_method_options[payment_method_remove]', /remove saved cards/);
    await refused({
      ...save, customer: customer.id, currency: 'cny', payment_method_types: ['alipay'],
      line_items: [{ price_data: { currency: 'cny', unit_amount: 4_200, product_data: { name: 'Tea' } }, quantity: 1 }],
    } as Partial<Stripe.Checkout.SessionCreateParams>, 'saved_payment_method_options[payment_method_save]', /offers none/);
    await refused({ customer: customer.id, saved_payment_method_options: { allow_redisplay_filters: ['sometimes' as never] } }, 'saved_payment_method_options[allow_redisplay_filters][0]', /./);
  });
});

describe('saving and paying with saved cards on the hosted page', () => {
  test('unticked after a ticked try that failed, nothing is saved; ticked, the card is saved and may be shown again', async () => {
    const customer = await stripe.customers.create({ email: 'grace@example.com' });
    const first = await stripe.checkout.sessions.create({ ...order, customer: customer.id, ...save });
    const firstPage = await openCheckoutPage(server, first);
    assert.match(firstPage.html.body, /id="save-card"/);
    assert.match(firstPage.html.body, new RegExp(strings.en.saveCardOptIn.replace('{merchant}', '[^<]+')));
    const cardOption = async () => (await stripe.paymentIntents.retrieve(String(first.payment_intent))).payment_method_options?.card?.setup_future_usage;
    const declined = await firstPage.post('/confirm', { ...(await card('4000000000000002')), save_card: true });
    assert.equal(declined.json.state, 'error', declined.body);
    assert.equal(await cardOption(), 'on_session', 'the ticked try asked to keep the card');
    const paid = await firstPage.post('/confirm', { ...(await card()), save_card: false });
    assert.equal(paid.json.state, 'complete', paid.body);
    assert.equal(await cardOption(), 'none', 'the unticked try asked to keep nothing');
    assert.deepEqual(await savedCards(customer.id), [], 'not ticked on the paying try: nothing saved');
    assert.equal((await stripe.checkout.sessions.retrieve(first.id)).status, 'complete');

    const second = await stripe.checkout.sessions.create({ ...order, customer: customer.id, ...save });
    const method = await card('5555555555554444');
    const kept = await (await openCheckoutPage(server, second)).post('/confirm', { ...method, save_card: true });
    assert.equal(kept.json.state, 'complete', kept.body);
    const [savedCard] = await savedCards(customer.id);
    assert.deepEqual([savedCard?.id, savedCard?.allow_redisplay, savedCard?.card?.last4], [method.payment_method, 'always', '4444']);
    // The consent is in the paying try's audit record.
    const audit = await server.database.db.selectFrom('audit_log').select('details').where('action', '=', 'payment_intent.confirm')
      .where('object_id', '=', String(second.payment_intent)).orderBy('seq', 'desc').executeTakeFirstOrThrow();
    assert.equal((audit.details as { consent?: { save_payment_method?: string } }).consent?.save_payment_method, 'accepted');
    // The merchant hears that the card may be shown again.
    const updated = await server.database.db.selectFrom('events').select('payload').where('type', '=', 'payment_method.updated').where('object_id', '=', method.payment_method).execute();
    const shownAgain = updated.map((row) => (JSON.parse(String(row.payload)) as { data: { object: { allow_redisplay: string }; previous_attributes?: { allow_redisplay?: string } } }).data).at(0);
    assert.deepEqual([shownAgain?.object.allow_redisplay, shownAgain?.previous_attributes?.allow_redisplay], ['always', 'unspecified']);
  });

  test('a returning customer pays with a card shown again; a card not to be shown, or another\'s, is refused before any charge', async () => {
    const customer = await stripe.customers.create({ email: 'linus@example.com' });
    const shown = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id });
    await stripe.paymentMethods.update(shown.id, { allow_redisplay: 'always' });
    const hidden = await stripe.paymentMethods.attach('pm_card_mastercard', { customer: customer.id });
    const stranger = await stripe.customers.create({ email: 'eve@example.com' });
    const theirs = await stripe.paymentMethods.attach('pm_card_visa', { customer: stranger.id });
    await stripe.paymentMethods.update(theirs.id, { allow_redisplay: 'always' });

    const session = await stripe.checkout.sessions.create({ ...order, customer: customer.id, ...save });
    const page = await openCheckoutPage(server, session);
    assert.match(page.html.body, new RegExp(`value="${shown.id}"`));
    assert.doesNotMatch(page.html.body, new RegExp(hidden.id));
    assert.doesNotMatch(page.html.body, new RegExp(theirs.id));
    const charges = async () => Number((await server.database.db.selectFrom('charges').select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n);
    const before = await charges();
    for (const refusedCard of [hidden.id, theirs.id]) {
      const refused = await page.post('/confirm', { method: 'card', payment_method: refusedCard });
      assert.deepEqual([refused.status, refused.json.state], [400, 'error'], refused.body);
    }
    assert.equal(await charges(), before, 'nothing was tried');
    // A saved card is not saved again, whatever the box says.
    const paid = await page.post('/confirm', { method: 'card', payment_method: shown.id, save_card: true });
    assert.equal(paid.json.state, 'complete', paid.body);
    const intent = await stripe.paymentIntents.retrieve(String(session.payment_intent));
    assert.deepEqual([intent.status, intent.payment_method, intent.payment_method_options?.card?.setup_future_usage], ['succeeded', shown.id, 'none']);

    // Filters the merchant gives widen what is shown.
    const wide = await stripe.checkout.sessions.create({ ...order, customer: customer.id, saved_payment_method_options: { allow_redisplay_filters: ['always', 'unspecified'] } });
    const widePage = await rawRequest(server, 'GET', `/pay/${wide.id}`);
    assert.match(widePage.body, new RegExp(hidden.id));
  });

  test('a customer made of the shopper gets the card they ticked to save', async () => {
    const session = await stripe.checkout.sessions.create({ ...order, customer_creation: 'always', ...save });
    const paid = await (await openCheckoutPage(server, session)).post('/confirm', { ...(await card()), save_card: true, details: { email: 'new@example.com' } });
    assert.equal(paid.json.state, 'complete', paid.body);
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.ok(typeof done.customer === 'string');
    const [kept] = await savedCards(done.customer);
    assert.equal(kept?.allow_redisplay, 'always');
  });
});

describe('a saved card in a browser', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  const ui = browserPage(() => server.coffer.certFile);
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  test('the page offers the saved card first, with a new card as the other choice; paying with it takes one click', async () => {
    const customer = await stripe.customers.create({ email: 'margaret@example.com' });
    const shown = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id });
    await stripe.paymentMethods.update(shown.id, { allow_redisplay: 'always' });
    const session = await stripe.checkout.sessions.create({ ...order, customer: customer.id, ...save });
    const page = ui.page();
    await page.goto(session.url ?? '');
    assert.equal(await page.isChecked(`input[name="saved_card"][value="${shown.id}"]`), true);
    assert.equal(await page.isHidden('#new-card'), true);
    await page.check('input[name="saved_card"][value=""]');
    assert.equal(await page.isVisible('#save-card'), true);
    await page.check(`input[name="saved_card"][value="${shown.id}"]`);
    assert.equal(await page.isHidden('#new-card'), true);
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-saved-card.png'));
    await clickThrough(page, '#pay', /\/done/);
    const intent = await stripe.paymentIntents.retrieve(String(session.payment_intent));
    assert.deepEqual([intent.status, intent.payment_method], ['succeeded', shown.id]);
  });
});
