import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { openCheckoutPage } from '../support/checkout-page.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';
import { refusedWithNothingChanged, rowCounts } from '../support/unchanged.ts';

// Goal: a Checkout Session made with `after_expiration[recovery][enabled]` (decision 0064) gives, once it expires
// unpaid, an address valid 30 days (in the session and its `checkout.session.expired` event). Opening the address
// shows the order left and makes nothing; continuing makes a new session for the same order, naming the one it
// recovers, and taking promotion codes if the recovery says so. A forged post, an address past its days, an order paid
// through an earlier recovery or one that can no longer be sold makes nothing.
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
  mode: 'payment' as const, success_url: 'https://shop.example/thanks', customer_email: 'shopper@example.com',
  line_items: [{ price_data: { currency: 'usd', unit_amount: 4_200, product_data: { name: 'Pour-over kettle' } }, quantity: 2 }],
};
const sessions = async () => (await rowCounts(server, ['checkout_sessions'])).checkout_sessions;

/** The recovery page's form token, and a poster that sends it from the page's origin. */
async function recoveryPage(url: string) {
  const path = new URL(url).pathname;
  const page = await rawRequest(server, 'GET', path);
  const token = /name="token" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
  const post = (body: Record<string, string>, origin = new URL(url).origin) => rawRequest(server, 'POST', path, {
    body: new URLSearchParams(body).toString(), contentType: 'application/x-www-form-urlencoded', headers: { origin },
  });
  return { page, token, post };
}

describe('recovering an order left (after_expiration)', () => {
  test('the address comes with the expiry; opening it makes nothing; continuing makes the same order again, once paid no more', async () => {
    const left = await stripe.checkout.sessions.create({ ...order, after_expiration: { recovery: { enabled: true, allow_promotion_codes: true } } });
    assert.deepEqual(left.after_expiration, { recovery: { allow_promotion_codes: true, enabled: true, expires_at: null, url: null } });
    const expired = await stripe.checkout.sessions.expire(left.id);
    const recovery = expired.after_expiration?.recovery;
    assert.match(recovery?.url ?? '', /^https:\/\/.+\/pay\/recover\/[A-Za-z0-9]{32}$/);
    const days = ((recovery?.expires_at ?? 0) - Date.now() / 1000) / 86_400;
    assert.ok(days > 29.9 && days < 30.1, `valid 30 days (${days})`);
    // The merchant's webhook carries it, to send the shopper.
    const event = await server.database.db.selectFrom('events').select('payload').where('type', '=', 'checkout.session.expired').where('object_id', '=', left.id).executeTakeFirstOrThrow();
    assert.equal((JSON.parse(String(event.payload)) as Stripe.Event & { data: { object: Stripe.Checkout.Session } }).data.object.after_expiration?.recovery?.url, recovery?.url);

    const count = await sessions();
    const { page, token, post } = await recoveryPage(recovery?.url ?? '');
    assert.equal(page.status, 200);
    assert.match(page.body, /Pour-over kettle/);
    assert.match(page.body, /\$84\.00/);
    assert.equal(await sessions(), count, 'opening the address made nothing');
    // Forged: another origin, or no token.
    assert.equal((await post({ token }, 'https://evil.example')).status, 403);
    assert.equal((await post({ token: 'nope' })).status, 403);
    assert.equal(await sessions(), count, 'a forged post made nothing');

    const made = await post({ token, lang: 'en' });
    assert.equal(made.status, 303, made.body);
    const id = /\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(String(made.headers.location))?.[1] ?? '';
    const recovered = await stripe.checkout.sessions.retrieve(id);
    assert.deepEqual([recovered.status, recovered.recovered_from, recovered.amount_total, recovered.allow_promotion_codes, recovered.customer_email],
      ['open', left.id, 8_400, true, 'shopper@example.com']);
    assert.deepEqual((await stripe.checkout.sessions.listLineItems(id)).data.map((item) => [item.description, item.quantity]), [['Pour-over kettle', 2]]);
    assert.equal(recovered.after_expiration, null, 'one address, not a chain of them');
    // A second click gives the same open session, not a second order to pay.
    const twice = await post({ token, lang: 'en' });
    assert.equal(/\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(String(twice.headers.location))?.[1], id);
    assert.equal(await sessions(), count + 1);
    // The page's token is this address's own: another order's does not open it.
    const other = await stripe.checkout.sessions.create({ ...order, after_expiration: { recovery: { enabled: true } } });
    const otherUrl = (await stripe.checkout.sessions.expire(other.id)).after_expiration?.recovery?.url ?? '';
    assert.equal((await (await recoveryPage(otherUrl)).post({ token })).status, 403);
    // Paid: the address then says so and makes nothing more.
    const method = (await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id;
    const paid = await (await openCheckoutPage(server, recovered)).post('/confirm', { method: 'card', payment_method: method });
    assert.equal(paid.json.state, 'complete', paid.body);
    const afterPaid = await sessions();
    const again = await recoveryPage(recovery?.url ?? '');
    assert.match(again.page.body, new RegExp(strings.en.recoveryPaid));
    assert.equal((await again.post({ token })).status, 200);
    assert.equal(await sessions(), afterPaid, 'an order paid makes no more sessions');
  });

  test('past its 30 days, or with a price archived since, the address makes nothing', async () => {
    const product = await stripe.products.create({ name: 'Scale' });
    const price = await stripe.prices.create({ product: product.id, unit_amount: 3_000, currency: 'usd' });
    const left = await stripe.checkout.sessions.create({ ...order, line_items: [{ price: price.id, quantity: 1 }], after_expiration: { recovery: { enabled: true } } });
    const url = (await stripe.checkout.sessions.expire(left.id)).after_expiration?.recovery?.url ?? '';
    const archived = await recoveryPage(url);
    await stripe.prices.update(price.id, { active: false });
    assert.match((await rawRequest(server, 'GET', new URL(url).pathname)).body, new RegExp(strings.en.linkUnavailable.replace(/[.;]/g, '.')), 'the page says so');
    const count = await sessions();
    const refused = await archived.post({ token: archived.token });
    assert.equal(refused.status, 409);
    assert.match(refused.body, new RegExp(strings.en.linkUnavailable.replace(/[.;]/g, '.')));
    assert.equal(await sessions(), count);
    // Its days over.
    await server.database.db.updateTable('checkout_sessions').set({ recovery_expires_at: new Date(Date.now() - 1_000) }).where('id', '=', left.id).execute();
    const closed = await recoveryPage(url);
    assert.match(closed.page.body, new RegExp(strings.en.recoveryClosed.slice(0, 30)));
    assert.equal((await closed.post({ token: archived.token })).status, 200);
    assert.equal(await sessions(), count);
    // An address that was never given.
    assert.equal((await rawRequest(server, 'GET', '/pay/recover/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).status, 404);
  });

  test('a recovered session for a customer shows none of their saved cards', async () => {
    const customer = await stripe.customers.create({ email: 'ada@example.com' });
    const card = await stripe.paymentMethods.attach('pm_card_visa', { customer: customer.id });
    await stripe.paymentMethods.update(card.id, { allow_redisplay: 'always' });
    const { customer_email: _email, ...forCustomer } = order;
    const direct = await stripe.checkout.sessions.create({ ...forCustomer, customer: customer.id, after_expiration: { recovery: { enabled: true } } });
    assert.match((await rawRequest(server, 'GET', `/pay/${direct.id}`)).body, new RegExp(card.id), 'the session itself shows it');
    const url = (await stripe.checkout.sessions.expire(direct.id)).after_expiration?.recovery?.url ?? '';
    const { token, post } = await recoveryPage(url);
    const made = await post({ token });
    const id = /\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(String(made.headers.location))?.[1] ?? '';
    const page = await rawRequest(server, 'GET', `/pay/${id}`);
    assert.equal(page.status, 200);
    assert.doesNotMatch(page.body, new RegExp(card.id));
    assert.equal((await stripe.checkout.sessions.retrieve(id)).customer, customer.id);
  });

  test('bad recovery parameters are refused by name and make nothing; without recovery there is no address', async () => {
    const plain = await stripe.checkout.sessions.create(order);
    assert.equal(plain.after_expiration, null);
    assert.equal((await stripe.checkout.sessions.expire(plain.id)).after_expiration, null);
    const coupon = await stripe.coupons.create({ percent_off: 10 });
    const tables = ['checkout_sessions', 'payment_intents', 'events'] as const;
    await refusedWithNothingChanged(server, tables, () => stripe.checkout.sessions.create({
      ...order, discounts: [{ coupon: coupon.id }], after_expiration: { recovery: { enabled: true, allow_promotion_codes: true } },
    }), 'after_expiration[recovery][allow_promotion_codes]', /cannot be used with discounts/);
    await refusedWithNothingChanged(server, tables, () => stripe.checkout.sessions.create({ ...order, after_expiration: { recovery: { enabled: 'maybe' } } } as never), 'after_expiration[recovery][enabled]', /boolean/);
  });
});
