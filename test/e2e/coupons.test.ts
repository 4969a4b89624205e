import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Stripe from 'stripe';
import { strings } from '../../src/checkout/strings.ts';
import { browserMissing, browserPage, clickThrough, fillCard, wholePageScreenshot } from '../support/browser.ts';
import { openCheckoutPage } from '../support/checkout-page.ts';
import { refusedWithNothingChanged as refusedUnchanged, rowCounts } from '../support/unchanged.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: a merchant's coupons and promotion codes are made, read, changed, listed and deleted through the official SDK
// as at Stripe (decision 0062); a Checkout Session takes a coupon or a code from the merchant (`discounts`), or lets
// the shopper type a code on its page (`allow_promotion_codes`). The discount, the session's totals, its line items,
// the PaymentIntent's amount, the charge and the receipt agree; a redemption is counted when the session is paid, and
// a limited code is never redeemed more often than its limit, even by payments made at once. Every bad input is
// refused by name and changes nothing.
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
const counted = ['coupons', 'promotion_codes', 'checkout_sessions', 'payment_intents', 'charges', 'events', 'audit_log'] as const;
const counts = () => rowCounts(server, counted);
const refusedWithNothingChanged = (call: () => Promise<unknown>, param: string, message: RegExp) => refusedUnchanged(server, counted, call, param, message);

const kettle = { price_data: { currency: 'usd', unit_amount: 4_200, product_data: { name: 'Pour-over kettle' } }, quantity: 1 };
const filters = { price_data: { currency: 'usd', unit_amount: 500, product_data: { name: 'Paper filters' } }, quantity: 3 };
const order = { mode: 'payment' as const, success_url: 'https://shop.example/thanks', customer_email: 'shopper@example.com' };
let unique = 0;
const word = (stem: string) => `${stem}${(unique += 1)}`;

/** A card PaymentMethod of the merchant, as the card frame would make it. */
async function card(number = '4242424242424242') {
  return { method: 'card', payment_method: (await stripe.paymentMethods.create({ type: 'card', card: { number, exp_month: 12, exp_year: 2034, cvc: '123' } } as never)).id };
}

describe('coupons and promotion codes (API)', () => {
  test('coupons: made, read, renamed, listed and deleted, with their events; a deleted one is gone', async () => {
    const percent = await stripe.coupons.create({ percent_off: 12.5, name: 'Spring', max_redemptions: 10, metadata: { campaign: 'spring' } });
    assert.equal(percent.object, 'coupon');
    assert.deepEqual([percent.percent_off, percent.amount_off, percent.currency, percent.duration, percent.valid, percent.times_redeemed], [12.5, null, null, 'once', true, 0]);
    const amount = await stripe.coupons.create({ id: word('FIVE-OFF'), amount_off: 500, currency: 'usd', duration: 'repeating', duration_in_months: 3 });
    assert.deepEqual([amount.amount_off, amount.currency, amount.duration, amount.duration_in_months], [500, 'usd', 'repeating', 3]);
    assert.equal((await stripe.coupons.retrieve(amount.id)).id, amount.id);
    const renamed = await stripe.coupons.update(percent.id, { name: 'Spring sale', metadata: { campaign: '' } });
    assert.deepEqual([renamed.name, renamed.metadata, renamed.percent_off], ['Spring sale', {}, 12.5]);
    const listed = await stripe.coupons.list({ limit: 100 });
    assert.ok(listed.data.some((coupon) => coupon.id === percent.id) && listed.data.some((coupon) => coupon.id === amount.id));
    const deleted = await stripe.coupons.del(amount.id);
    assert.deepEqual(deleted, { id: amount.id, object: 'coupon', deleted: true });
    await assert.rejects(stripe.coupons.retrieve(amount.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    assert.ok(!(await stripe.coupons.list({ limit: 100 })).data.some((coupon) => coupon.id === amount.id));
    const types = (await server.database.db.selectFrom('events').select('type').where('type', 'like', 'coupon.%').execute()).map((row) => row.type);
    for (const type of ['coupon.created', 'coupon.updated', 'coupon.deleted']) assert.ok(types.includes(type), type);
  });

  test('coupons: every bad parameter is refused by name and makes nothing', async () => {
    const taken = await stripe.coupons.create({ id: word('TAKEN'), percent_off: 5 });
    const cases: Array<[Stripe.CouponCreateParams, string, RegExp]> = [
      [{ percent_off: 10, amount_off: 100, currency: 'usd' }, 'amount_off', /exactly one of percent_off/],
      [{}, 'percent_off', /exactly one of percent_off/],
      [{ percent_off: 12.345 }, 'percent_off', /two decimals/],
      [{ percent_off: 101 }, 'percent_off', /at most 100/],
      [{ amount_off: 500 }, 'currency', /Missing required param: currency/],
      [{ percent_off: 5, currency: 'usd' }, 'currency', /goes with amount_off/],
      [{ amount_off: 5, currency: 'kwd' }, 'amount_off', /multiple of 10/],
      [{ amount_off: 5, currency: 'xyz' }, 'currency', /./],
      [{ percent_off: 5, duration: 'repeating' }, 'duration_in_months', /duration=repeating/],
      [{ percent_off: 5, duration_in_months: 2 }, 'duration_in_months', /duration=repeating/],
      [{ percent_off: 5, redeem_by: Math.floor(Date.now() / 1000) - 60 }, 'redeem_by', /future/],
      [{ percent_off: 5, applies_to: { products: ['prod_nope'] } }, 'applies_to[products][0]', /No such product/],
      [{ percent_off: 5, currency_options: { eur: { amount_off: 5 } } } as never, 'currency_options', /one currency/],
      [{ id: taken.id, percent_off: 5 }, 'id', /already exists/],
    ];
    for (const [params, param, message] of cases) await refusedWithNothingChanged(() => stripe.coupons.create(params), param, message);
  });

  test('promotion codes: made for a coupon, found by their word, turned off and on; each word is one active code', async () => {
    const coupon = await stripe.coupons.create({ percent_off: 10, max_redemptions: 5, redeem_by: Math.floor(Date.now() / 1000) + 86_400 * 30 });
    const spring = word('SPRING');
    const code = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: spring, max_redemptions: 3, metadata: { channel: 'mail' } });
    assert.equal(code.object, 'promotion_code');
    assert.deepEqual([code.code, code.active, code.max_redemptions, code.times_redeemed, code.promotion.coupon, code.metadata], [spring, true, 3, 0, coupon.id, { channel: 'mail' }]);
    const generated = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id } });
    assert.match(generated.code, /^[A-Z0-9]{8}$/);
    // Found by its word, case aside; listed by coupon and by whether active.
    assert.deepEqual((await stripe.promotionCodes.list({ code: spring.toLowerCase() })).data.map((found) => found.id), [code.id]);
    assert.deepEqual(new Set((await stripe.promotionCodes.list({ coupon: coupon.id })).data.map((found) => found.id)), new Set([code.id, generated.id]));
    // The same word for the same customers, case aside, is refused while the first is active.
    await refusedWithNothingChanged(() => stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: spring.toLowerCase() }), 'code', /already exists/);
    const off = await stripe.promotionCodes.update(code.id, { active: false });
    assert.equal(off.active, false);
    assert.ok((await stripe.promotionCodes.list({ active: false, coupon: coupon.id })).data.some((found) => found.id === code.id));
    const again = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: spring });
    await refusedWithNothingChanged(() => stripe.promotionCodes.update(code.id, { active: true }), 'code', /already exists/);
    await stripe.promotionCodes.update(again.id, { active: false });
    assert.equal((await stripe.promotionCodes.update(code.id, { active: true })).active, true);
    // Before 2025-09-30 the code names its coupon as `coupon` (the whole object), and is made with `coupon`.
    for (const version of ['2024-04-10', '2025-08-27.basil']) {
      const legacy = stripeClient(server, server.secretKey, { apiVersion: version as never });
      const old = await legacy.promotionCodes.create({ coupon: coupon.id, code: word('LEGACY') } as never) as unknown as Record<string, unknown>;
      assert.equal((old.coupon as { id: string }).id, coupon.id, version);
      assert.equal(old.promotion, undefined, version);
    }
    // A deleted coupon's codes are inactive (in the list's filter too), and their words free for new codes.
    const doomed = await stripe.coupons.create({ percent_off: 5 });
    const summer = word('SUMMER');
    const first = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: doomed.id }, code: summer });
    await stripe.coupons.del(doomed.id);
    assert.equal((await stripe.promotionCodes.retrieve(first.id)).active, false);
    assert.deepEqual((await stripe.promotionCodes.list({ code: summer, active: true })).data, []);
    assert.deepEqual((await stripe.promotionCodes.list({ code: summer, active: false })).data.map((found) => found.id), [first.id]);
    const reused = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: summer });
    assert.equal(reused.active, true);
    // Stripe shows `applies_to` only when asked; Coffer always shows it, and takes the asking.
    assert.equal((await stripe.coupons.retrieve(coupon.id, { expand: ['applies_to'] })).id, coupon.id);
    const types = (await server.database.db.selectFrom('events').select('type').where('type', 'like', 'promotion_code.%').execute()).map((row) => row.type);
    for (const type of ['promotion_code.created', 'promotion_code.updated']) assert.ok(types.includes(type), type);
  });

  test('promotion codes: every bad parameter is refused by name and makes nothing', async () => {
    const coupon = await stripe.coupons.create({ percent_off: 10, max_redemptions: 5, redeem_by: Math.floor(Date.now() / 1000) + 86_400 });
    const euros = await stripe.coupons.create({ amount_off: 500, currency: 'eur' });
    const of = (extra: Record<string, unknown>) => ({ promotion: { type: 'coupon' as const, coupon: coupon.id }, ...extra });
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{}, 'promotion[coupon]', /Missing required param/],
      [{ promotion: { type: 'coupon', coupon: 'nope' } }, 'promotion[coupon]', /No such coupon/],
      [of({ coupon: coupon.id }), 'coupon', /only specify one/],
      [of({ code: 'has space' }), 'code', /letters, digits and dashes/],
      [of({ expires_at: Math.floor(Date.now() / 1000) - 5 }), 'expires_at', /future/],
      [of({ expires_at: Math.floor(Date.now() / 1000) + 86_400 * 2 }), 'expires_at', /redeem_by/],
      [of({ max_redemptions: 6 }), 'max_redemptions', /coupon's \(5\)/],
      [of({ restrictions: { first_time_transaction: true } }), 'restrictions[first_time_transaction]', /first-time/],
      [of({ restrictions: { minimum_amount: 1000 } }), 'restrictions[minimum_amount_currency]', /go together/],
      [{ promotion: { type: 'coupon', coupon: euros.id }, restrictions: { minimum_amount: 1000, minimum_amount_currency: 'usd' } }, 'restrictions[minimum_amount_currency]', /could never be met/],
      [of({ customer: 'cus_000000000000000000000000' }), 'customer', /No such customer/],
    ];
    for (const [params, param, message] of cases) await refusedWithNothingChanged(() => stripe.promotionCodes.create(params as never), param, message);
  });
});

describe('discounts on Checkout Sessions (API)', () => {
  test('a coupon the merchant applies: the totals, the line items and the PaymentIntent agree', async () => {
    const product = await stripe.products.create({ name: 'Grinder' });
    const price = await stripe.prices.create({ product: product.id, unit_amount: 10_000, currency: 'usd' });
    const off = await stripe.coupons.create({ percent_off: 15, name: 'Grinder week', applies_to: { products: [product.id] } });
    const session = await stripe.checkout.sessions.create({ ...order, line_items: [{ price: price.id, quantity: 1 }, filters], discounts: [{ coupon: off.id }] });
    // 15% of the grinder only: 1,500 off 11,500.
    assert.deepEqual([session.amount_subtotal, session.total_details?.amount_discount, session.amount_total], [11_500, 1_500, 10_000]);
    assert.deepEqual(session.discounts, [{ coupon: off.id, promotion_code: null }]);
    const items = (await stripe.checkout.sessions.listLineItems(session.id)).data;
    assert.deepEqual(items.map((item) => [item.amount_subtotal, item.amount_discount, item.amount_total]), [[10_000, 1_500, 8_500], [1_500, 0, 1_500]]);
    assert.equal((await stripe.paymentIntents.retrieve(String(session.payment_intent))).amount, 10_000);
    // The page recomputes the discount with the products' ids only when the coupon needs them (a product's id is the
    // merchant's, and the page shows it to no one otherwise).
    assert.match((await rawRequest(server, 'GET', `/pay/${session.id}`)).body, new RegExp(`"product":"${product.id}"`));
    const everyItem = await stripe.coupons.create({ percent_off: 5 });
    const plain = await stripe.checkout.sessions.create({ ...order, line_items: [{ price: price.id, quantity: 1 }], discounts: [{ coupon: everyItem.id }] });
    assert.doesNotMatch((await rawRequest(server, 'GET', `/pay/${plain.id}`)).body, new RegExp(product.id));

    // An amount off is at most what its items come to, and shared among them in proportion.
    const flat = await stripe.coupons.create({ amount_off: 1_000, currency: 'usd' });
    const shared = await stripe.checkout.sessions.create({ ...order, line_items: [kettle, filters], discounts: [{ coupon: flat.id }] });
    assert.equal(shared.amount_total, 5_700 - 1_000);
    const lines = (await stripe.checkout.sessions.listLineItems(shared.id)).data;
    assert.equal(lines.reduce((sum, item) => sum + item.amount_discount, 0), 1_000);
    assert.deepEqual(lines.map((item) => item.amount_discount), [737, 263]);
  });

  test('what a session cannot take is refused by name, and makes nothing', async () => {
    const euros = await stripe.coupons.create({ amount_off: 500, currency: 'eur' });
    const whole = await stripe.coupons.create({ percent_off: 100 });
    const ten = await stripe.coupons.create({ percent_off: 10 });
    const gone = await stripe.coupons.create({ percent_off: 10 });
    await stripe.coupons.del(gone.id);
    const big = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: ten.id }, restrictions: { minimum_amount: 10_000, minimum_amount_currency: 'usd' } });
    const customer = await stripe.customers.create({ email: 'vip@example.com' });
    const theirs = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: ten.id }, customer: customer.id });
    const cases: Array<[Partial<Stripe.Checkout.SessionCreateParams>, string, RegExp]> = [
      [{ discounts: [{ coupon: euros.id }] }, 'discounts[0][coupon]', /another currency/],
      [{ discounts: [{ coupon: whole.id }] }, 'discounts[0][coupon]', /below the smallest payment/],
      [{ discounts: [{ coupon: gone.id }] }, 'discounts[0][coupon]', /No such coupon/],
      [{ discounts: [{ coupon: 'nope' }] }, 'discounts[0][coupon]', /No such coupon/],
      [{ discounts: [{ promotion_code: big.id }] }, 'discounts[0][promotion_code]', /larger order/],
      [{ discounts: [{ promotion_code: theirs.id }] }, 'discounts[0][promotion_code]', /another customer/],
      [{ discounts: [{ coupon: ten.id }, { coupon: ten.id }] }, 'discounts[1]', /one discount/],
      [{ discounts: [{ coupon: ten.id, promotion_code: big.id }] }, 'discounts[0][coupon]', /exactly one/],
      [{ discounts: [{ coupon: ten.id }], allow_promotion_codes: true }, 'discounts', /allow_promotion_codes, discounts/],
    ];
    for (const [extra, param, message] of cases) {
      await refusedWithNothingChanged(() => stripe.checkout.sessions.create({ ...order, line_items: [kettle], ...extra }), param, message);
    }
    // The customer's own code is theirs to use.
    const mine = await stripe.checkout.sessions.create({ mode: 'payment', success_url: order.success_url, customer: customer.id, line_items: [kettle], discounts: [{ promotion_code: theirs.id }] });
    assert.equal(mine.total_details?.amount_discount, 420);
  });
});

describe('promotion codes on the hosted page', () => {
  test('the shopper types a code: refused ones change nothing; a good one sets the total, is paid, counted and on the receipt', async () => {
    const coupon = await stripe.coupons.create({ percent_off: 20, name: 'Friends' });
    const friends = word('FRIENDS');
    const code = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: friends, restrictions: { minimum_amount: 5_000, minimum_amount_currency: 'usd' } });
    const expired = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: word('OLD') });
    await stripe.promotionCodes.update(expired.id, { active: false });
    const session = await stripe.checkout.sessions.create({
      ...order, allow_promotion_codes: true,
      line_items: [{ ...kettle, adjustable_quantity: { enabled: true, minimum: 1, maximum: 5 } }, { ...filters, adjustable_quantity: { enabled: true, minimum: 0, maximum: 10 } }],
    });
    assert.equal(session.allow_promotion_codes, true);
    const page = await openCheckoutPage(server, session);
    assert.match(page.html.body, /id="promotion-code"/);
    const before = await counts();
    for (const [body, key] of [
      [{ code: 'NOPE' }, 'codeUnknown'],
      [{ code: expired.code }, 'codeUnknown'],
      // Below the code's least order: the kettle alone, without the filters, is 4,200.
      [{ code: friends, quantities: [1, 0] }, 'codeMinimum'],
    ] as const) {
      const refused = await page.post('/promotion-code', body);
      assert.deepEqual([refused.status, refused.json.field, refused.json.message], [400, 'promotion_code', strings.en[key]], refused.body);
    }
    assert.deepEqual(await counts(), before, 'the refused codes changed nothing');

    // Case aside, with the page's quantities: two kettles and the filters, 9,900, 20% off.
    const applied = await page.post('/promotion-code', { code: friends.toLowerCase(), quantities: [2, 3] });
    assert.equal(applied.json.state, 'redirect', applied.body);
    const discounted = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([discounted.amount_subtotal, discounted.total_details?.amount_discount, discounted.amount_total], [9_900, 1_980, 7_920]);
    assert.deepEqual(discounted.discounts, [{ coupon: coupon.id, promotion_code: code.id }]);
    assert.equal((await stripe.paymentIntents.retrieve(String(session.payment_intent))).amount, 7_920);
    const shown = await rawRequest(server, 'GET', `/pay/${session.id}`);
    assert.match(shown.body, new RegExp(`Discount \\(${friends}\\)`));
    assert.match(shown.body, /id="promotion-remove"/);
    assert.doesNotMatch(shown.body, /id="promotion-code"/);
    // Lowering the order below the code's least is refused with the payment, naming the code; nothing is charged.
    const paying = await openCheckoutPage(server, discounted);
    const tooSmall = await paying.post('/confirm', { ...(await card()), quantities: [1, 0], details: { email: 'shopper@example.com' } });
    assert.deepEqual([tooSmall.status, tooSmall.json.field], [400, 'promotion_code'], tooSmall.body);
    const paid = await paying.post('/confirm', { ...(await card()), quantities: [2, 3], details: { email: 'shopper@example.com' } });
    assert.equal(paid.json.state, 'complete', paid.body);
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.equal(done.status, 'complete');
    const intent = await stripe.paymentIntents.retrieve(String(session.payment_intent), { expand: ['latest_charge'] });
    assert.equal((intent.latest_charge as Stripe.Charge).amount, 7_920);
    assert.equal((await stripe.coupons.retrieve(coupon.id)).times_redeemed, 1);
    assert.equal((await stripe.promotionCodes.retrieve(code.id)).times_redeemed, 1);
    const receipt = await server.database.db.selectFrom('shopper_messages').select('body').where('reference', '=', session.id).executeTakeFirstOrThrow();
    assert.match(receipt.body, new RegExp(`Discount: ${friends}, -19.80 USD`));
  });

  test('a code removed gives the order back its amount; a session that does not allow codes refuses them', async () => {
    const coupon = await stripe.coupons.create({ amount_off: 700, currency: 'usd' });
    const save = word('SAVE');
    await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: save });
    const session = await stripe.checkout.sessions.create({ ...order, allow_promotion_codes: true, line_items: [kettle] });
    const page = await openCheckoutPage(server, session);
    assert.equal((await page.post('/promotion-code', { code: save })).json.state, 'redirect');
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).amount_total, 3_500);
    assert.equal((await page.post('/promotion-code', { code: '' })).json.state, 'redirect');
    const restored = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([restored.amount_total, restored.discounts, restored.total_details?.amount_discount], [4_200, [], 0]);
    assert.equal((await stripe.paymentIntents.retrieve(String(session.payment_intent))).amount, 4_200);

    const closed = await stripe.checkout.sessions.create({ ...order, line_items: [kettle] });
    const closedPage = await openCheckoutPage(server, closed);
    assert.doesNotMatch(closedPage.html.body, /id="promotion-code"/);
    const refused = await closedPage.post('/promotion-code', { code: save });
    assert.equal(refused.status, 403);
    assert.equal((await stripe.checkout.sessions.retrieve(closed.id)).amount_total, 4_200);
  });

  test('a code with one redemption left is paid once: the second session is refused before any charge', async () => {
    const coupon = await stripe.coupons.create({ percent_off: 50 });
    const once = word('ONCE');
    const code = await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: once, max_redemptions: 1 });
    const pages = [];
    for (let index = 0; index < 2; index += 1) {
      const session = await stripe.checkout.sessions.create({ ...order, allow_promotion_codes: true, line_items: [kettle] });
      const page = await openCheckoutPage(server, session);
      assert.equal((await page.post('/promotion-code', { code: once })).json.state, 'redirect', 'both apply it: neither has paid yet');
      pages.push({ session, page: await openCheckoutPage(server, await stripe.checkout.sessions.retrieve(session.id)) });
    }
    const [first, second] = pages;
    assert.ok(first !== undefined && second !== undefined);
    assert.equal((await first.page.post('/confirm', { ...(await card()), details: { email: 'shopper@example.com' } })).json.state, 'complete');
    const charges = (await counts()).charges;
    const refused = await second.page.post('/confirm', { ...(await card()), details: { email: 'shopper@example.com' } });
    assert.equal(refused.json.state, 'redirect', refused.body);
    assert.equal((await counts()).charges, charges, 'no charge was attempted');
    assert.equal((await stripe.paymentIntents.retrieve(String(second.session.payment_intent))).status, 'requires_payment_method');
    // The page, shown again, says so and offers to remove the code.
    const shown = await rawRequest(server, 'GET', `/pay/${second.session.id}`);
    assert.match(shown.body, new RegExp(strings.en.codeUsedUpRemove));
    assert.match(shown.body, /id="promotion-remove"/);
    // Applying it again now is refused as used up; the shopper removes it and pays the full amount.
    const third = await stripe.checkout.sessions.create({ ...order, allow_promotion_codes: true, line_items: [kettle] });
    const again = await (await openCheckoutPage(server, third)).post('/promotion-code', { code: once });
    assert.equal(again.json.message, strings.en.codeUsedUp, again.body);
    assert.equal((await stripe.promotionCodes.retrieve(code.id)).times_redeemed, 1);
  });

  test('payments made at once never redeem a limited coupon past its limit', async () => {
    const coupon = await stripe.coupons.create({ percent_off: 10, max_redemptions: 2 });
    const ready = [];
    for (let index = 0; index < 5; index += 1) {
      const session = await stripe.checkout.sessions.create({ ...order, line_items: [kettle], discounts: [{ coupon: coupon.id }] });
      ready.push({ session, page: await openCheckoutPage(server, session), method: await card() });
    }
    const answers = await Promise.all(ready.map(({ page, method }) => page.post('/confirm', { ...method, details: { email: 'shopper@example.com' } })));
    const states = answers.map((answer) => String(answer.json.state));
    assert.equal(states.filter((state) => state === 'complete').length, 2, states.join(', '));
    assert.equal(states.filter((state) => state === 'redirect').length, 3, answers.map((answer) => answer.body).join('\n'));
    assert.equal((await stripe.coupons.retrieve(coupon.id)).times_redeemed, 2);
    const paid = await server.database.db.selectFrom('checkout_sessions').select('id').where('discount_coupon_id', '=', coupon.id).where('status', '=', 'complete').execute();
    assert.equal(paid.length, 2);
  });

  test('a merchant\'s coupon with no use left: the page says so, the shopper removes it and pays the full amount', async () => {
    const coupon = await stripe.coupons.create({ amount_off: 1_000, currency: 'usd', max_redemptions: 1 });
    const first = await stripe.checkout.sessions.create({ ...order, line_items: [kettle], discounts: [{ coupon: coupon.id }] });
    const second = await stripe.checkout.sessions.create({ ...order, line_items: [kettle], discounts: [{ coupon: coupon.id }] });
    const secondPage = await openCheckoutPage(server, second);
    // Not removable while it has a use left, and the session takes no codes.
    assert.equal((await secondPage.post('/promotion-code', { code: '' })).status, 403);
    assert.equal((await (await openCheckoutPage(server, first)).post('/confirm', { ...(await card()), details: { email: 'shopper@example.com' } })).json.state, 'complete');
    const refused = await secondPage.post('/confirm', { ...(await card()), details: { email: 'shopper@example.com' } });
    assert.equal(refused.json.state, 'redirect', refused.body);
    const shown = await rawRequest(server, 'GET', `/pay/${second.id}`);
    assert.match(shown.body, new RegExp(strings.en.codeUsedUpRemove));
    assert.match(shown.body, /id="promotion-remove"/);
    // A word is still refused: this session takes no codes.
    assert.equal((await secondPage.post('/promotion-code', { code: 'ANY' })).status, 403);
    assert.equal((await secondPage.post('/promotion-code', { code: '' })).json.state, 'redirect');
    const full = await stripe.checkout.sessions.retrieve(second.id);
    assert.deepEqual([full.amount_total, full.discounts], [4_200, []]);
    const paid = await (await openCheckoutPage(server, full)).post('/confirm', { ...(await card()), details: { email: 'shopper@example.com' } });
    assert.equal(paid.json.state, 'complete', paid.body);
    assert.equal((await stripe.coupons.retrieve(coupon.id)).times_redeemed, 1);
  });

  test('another customer\'s code is no code to this shopper, and a page stops taking codes after ten refusals', async () => {
    const coupon = await stripe.coupons.create({ percent_off: 10 });
    const customer = await stripe.customers.create({ email: 'vip@example.com' });
    const vip = word('VIP');
    await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: vip, customer: customer.id });
    const good = word('GOOD');
    await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: good });
    const session = await stripe.checkout.sessions.create({ ...order, allow_promotion_codes: true, line_items: [kettle] });
    const page = await openCheckoutPage(server, session);
    const theirs = await page.post('/promotion-code', { code: vip });
    assert.equal(theirs.json.message, strings.en.codeUnknown, 'the same answer as for a word that is no code');
    for (let tries = 1; tries < 10; tries += 1) assert.equal((await page.post('/promotion-code', { code: `WRONG${tries}` })).json.message, strings.en.codeUnknown);
    const stopped = await page.post('/promotion-code', { code: good });
    assert.equal(stopped.json.message, strings.en.codeTooManyTries, stopped.body);
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).amount_total, 4_200);
    // The customer's own session takes it.
    const own = await stripe.checkout.sessions.create({ mode: 'payment', success_url: order.success_url, customer: customer.id, allow_promotion_codes: true, line_items: [kettle] });
    assert.equal((await (await openCheckoutPage(server, own)).post('/promotion-code', { code: vip })).json.state, 'redirect');
    assert.equal((await stripe.checkout.sessions.retrieve(own.id)).amount_total, 3_780);
  });

  test('a payment link lets its sessions\' shoppers type codes', async () => {
    const product = await stripe.products.create({ name: 'Beans', default_price_data: { currency: 'usd', unit_amount: 2_000 } });
    const link = await stripe.paymentLinks.create({ line_items: [{ price: String(product.default_price), quantity: 1 }], allow_promotion_codes: true });
    assert.equal(link.allow_promotion_codes, true);
    // The session a shopper gets from it takes codes, and its page asks for one.
    const opened = await rawRequest(server, 'GET', `/buy/${link.id}`);
    const pageToken = /name="token" value="([^"]+)"/.exec(opened.body)?.[1] ?? '';
    const made = await rawRequest(server, 'POST', `/buy/${link.id}`, { body: `token=${encodeURIComponent(pageToken)}`, headers: { origin: new URL(link.url).origin } });
    const sessionId = /\/pay\/(cs_test_[A-Za-z0-9]+)/.exec(String(made.headers.location))?.[1] ?? '';
    assert.equal((await stripe.checkout.sessions.retrieve(sessionId)).allow_promotion_codes, true);
    assert.match((await rawRequest(server, 'GET', `/pay/${sessionId}`)).body, /id="promotion-code"/);
    const off = await stripe.paymentLinks.update(link.id, { allow_promotion_codes: false });
    assert.equal(off.allow_promotion_codes, false);
  });
});

describe('typing a promotion code in a browser', { concurrency: false, skip: browserMissing(), timeout: 240_000 }, () => {
  const ui = browserPage(() => server.coffer.certFile);
  const shots = process.env.COFFER_TEST_SCREENSHOTS;

  test('a wrong code is said under its field; a good one shows the discount, which follows the quantity; the payment is what was shown', async () => {
    const coupon = await stripe.coupons.create({ percent_off: 25, name: 'Quarter' });
    const quarter = word('QUARTER');
    await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: quarter });
    const session = await stripe.checkout.sessions.create({
      ...order, allow_promotion_codes: true, line_items: [kettle, { ...filters, adjustable_quantity: { enabled: true, minimum: 1, maximum: 10 } }],
    });
    const page = ui.page();
    await page.goto(session.url ?? '');
    assert.equal(await page.locator('#total').textContent(), '$57.00');
    await page.fill('#promotion-code', 'WRONG');
    await page.click('#promotion-apply');
    // Locator waits, not waitForFunction: the page's CSP forbids the eval a polled string predicate needs.
    await page.locator('#promotion-error').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#promotion-error').textContent(), strings.en.codeUnknown);
    assert.equal(await page.getAttribute('#promotion-code', 'aria-invalid'), 'true');
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).amount_total, 5_700, 'a wrong code changed nothing');
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-promotion-code-refused.png'));
    // Lower case, as a shopper types it; the page's quantity goes with it.
    await page.fill('#quantity-1', '5');
    await page.fill('#promotion-code', quarter.toLowerCase());
    await Promise.all([page.waitForURL(/\/pay\//), page.click('#promotion-apply')]);
    await page.waitForSelector('#discount-line');
    // 4,200 + 2,500 = 6,700; a quarter off is 1,675.
    assert.equal(await page.locator('#discount-amount').textContent(), '−$16.75');
    assert.equal(await page.locator('#total').textContent(), '$50.25');
    // The discount follows the quantity at once, as the server will compute it: 4,200 + 1,000, a quarter off 1,300.
    await page.fill('#quantity-1', '2');
    await page.locator('#quantity-1').blur();
    await page.locator('#total', { hasText: '$39.00' }).waitFor();
    assert.equal(await page.locator('#discount-amount').textContent(), '−$13.00');
    assert.equal((await page.locator('#pay').textContent())?.trim(), 'Pay $39.00');
    await fillCard(page);
    if (shots !== undefined) await wholePageScreenshot(page, path.join(shots, 'checkout-promotion-code.png'));
    await clickThrough(page, '#pay', /\/done/);
    const done = await stripe.checkout.sessions.retrieve(session.id);
    assert.deepEqual([done.status, done.amount_total, done.total_details?.amount_discount], ['complete', 3_900, 1_300]);
    assert.equal((await stripe.paymentIntents.retrieve(String(done.payment_intent))).amount_received, 3_900);
  });
});
