import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { orderWith } from '../../src/flows/checkout-sessions.ts';
import { limits } from '../../src/limits.ts';
import type { CheckoutLineItem, CheckoutSessionRow, CheckoutShippingOption } from '../../src/store/database.ts';

// Goal: whatever a page sends as the shopper's choices (decisions 0052, 0053), the order taken is one the session
// allows (each quantity within its item's bounds, a fixed item unchanged, a rate it offers) and its money adds up:
// each item's amount is its unit amount times its quantity, and the total is the items plus the shipping chosen,
// within what a payment in the currency may be. Anything else is refused.

const item = fc.record({
  unit: fc.integer({ min: 0, max: 2_000_000 }),
  quantity: fc.integer({ min: 0, max: 50 }),
  bounds: fc.option(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 40 })), { nil: undefined }),
  // An item the shopper may add (decision 0061), with the quantity it is added with; out of the order at first.
  optional: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }),
}).map(({ unit, quantity, bounds, optional }): CheckoutLineItem => {
  const adjustable = bounds === undefined ? undefined : { minimum: Math.min(...bounds), maximum: Math.max(...bounds) };
  if (optional !== undefined) {
    const added = adjustable === undefined ? optional : Math.min(adjustable.maximum, Math.max(adjustable.minimum, optional));
    return { name: 'extra', unit_amount: unit, quantity: 0, amount_total: 0, optional: { quantity: added }, ...(adjustable === undefined ? {} : { adjustable }) };
  }
  const start = adjustable === undefined ? Math.max(quantity, 1) : Math.min(adjustable.maximum, Math.max(adjustable.minimum, quantity));
  return { name: 'item', unit_amount: unit, quantity: start, amount_total: unit * start, ...(adjustable === undefined ? {} : { adjustable }) };
});

const option = fc.integer({ min: 0, max: 5_000 }).map((amount): CheckoutShippingOption => ({
  shipping_rate: `shr_${amount.toString().padStart(24, '0')}`, display_name: 'rate', shipping_amount: amount, delivery_estimate: null,
}));

function sessionOf(items: CheckoutLineItem[], options: CheckoutShippingOption[] | null): CheckoutSessionRow {
  const shipping = BigInt(options?.[0]?.shipping_amount ?? 0);
  const total = items.reduce((sum, line) => sum + BigInt(line.amount_total), 0n) + shipping;
  return {
    id: 'cs_test_000000000000000000000000', merchant_id: 'acct_1', livemode: false, seq: 1n, created_at: new Date(0), updated_at: new Date(0), expires_at: new Date(0),
    status: 'open', payment_status: 'unpaid', payment_intent_id: 'pi_1', amount_total: total, currency: 'usd', line_items: items, success_url: 'https://shop.example',
    cancel_url: null, customer_email: null, payment_method_types: ['card'], metadata: {}, locale: null, completed_at: null, kind: 'checkout', wechat_openid: null,
    client_reference_id: null, customer_details: null, step_up_identity_refusals: 0, customer_id: null, payment_method_options: {}, billing_address_collection: null,
    shipping_countries: null, phone_number_collection: false, collected: null, shipping_options: options, shipping_rate_id: options?.[0]?.shipping_rate ?? null,
    amount_shipping: shipping, payment_link_id: null, customer_creation: null, submit_type: null, custom_text: null, consent_collection: null, custom_fields: null,
    discount: null, discount_coupon_id: null, discount_promotion_code_id: null, amount_discount: 0n, allow_promotion_codes: false, promotion_code_refusals: 0, saved_payment_method_options: null,
    recovery: null, recovery_token: null, recovery_url: null, recovery_expires_at: null, recovered_from: null,
  };
}

describe('the shopper\'s choices', () => {
  test('an order taken is within the session\'s bounds and adds up; any other is refused', () => {
    fc.assert(fc.property(
      fc.array(item, { minLength: 1, maxLength: 4 }),
      fc.option(fc.uniqueArray(option, { minLength: 1, maxLength: 5, selector: (candidate) => candidate.shipping_rate }), { nil: null }),
      fc.option(fc.array(fc.integer({ min: -3, max: 60 }), { minLength: 0, maxLength: 5 }), { nil: undefined }),
      fc.option(fc.oneof(fc.nat({ max: 5 }), fc.constant(-1)), { nil: undefined }),
      (items, options, quantities, rateIndex) => {
        const session = sessionOf(items, options);
        const rate = rateIndex === undefined ? undefined : rateIndex === -1 ? 'shr_unknown' : options?.[rateIndex % options.length]?.shipping_rate ?? 'shr_unknown';
        const result = orderWith(session, { ...(rate === undefined ? {} : { shippingRate: rate }), ...(quantities === undefined ? {} : { quantities }) });
        const chosenRate = rate ?? session.shipping_rate_id;
        const offered = options?.find((candidate) => candidate.shipping_rate === chosenRate);
        const wanted = quantities ?? items.map((line) => line.quantity);
        const allowed = (options === null || offered !== undefined) && wanted.length === items.length
          && wanted.every((quantity, index) => {
            const line = items[index];
            if (line === undefined) return false;
            if (line.optional !== undefined && quantity === 0) return true;
            const fixed = line.optional?.quantity ?? line.quantity;
            const bounds = line.adjustable ?? { minimum: fixed, maximum: fixed };
            return quantity >= bounds.minimum && quantity <= bounds.maximum;
          }) && wanted.some((quantity) => quantity > 0);
        const total = wanted.reduce((sum, quantity, index) => sum + BigInt(quantity) * BigInt(items[index]?.unit_amount ?? 0), 0n) + BigInt(offered?.shipping_amount ?? 0);
        const payable = total >= 50n && total <= BigInt(limits.amountMinorMax);
        if (!allowed || !payable) {
          assert.ok('refused' in result, `refused: ${JSON.stringify({ wanted, chosenRate, total: String(total) })}`);
          return;
        }
        assert.ok('order' in result);
        const { order } = result;
        assert.deepEqual(order.items.map((line) => line.quantity), wanted);
        for (const [index, line] of order.items.entries()) assert.equal(line.amount_total, line.unit_amount * line.quantity, `item ${index}`);
        assert.equal(order.total, order.items.reduce((sum, line) => sum + BigInt(line.amount_total), 0n) + order.amountShipping);
        assert.equal(order.total, total);
        assert.equal(order.shippingRate, offered?.shipping_rate ?? null);
      },
    ), { numRuns: 2_000 });
  });
});
