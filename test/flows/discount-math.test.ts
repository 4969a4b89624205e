import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { discountApplies, discountOf, type DiscountTerms } from '../../src/checkout/discount-math.ts';

// Goal: what a coupon takes off an order (decision 0062) is never more than the items it applies to, is shared among
// exactly those items, adds up to the whole, stays in the currency's steps, and a percentage is the nearest step to
// the exact share. The server charges and the page shows this same arithmetic, so a flaw here is a wrong charge.
const products = ['prod_a', 'prod_b', 'prod_c'];

const stepArb = fc.constantFrom(1, 10, 100);
const termsArb: fc.Arbitrary<DiscountTerms> = fc.record({
  percent: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: null }),
  amountSteps: fc.integer({ min: 1, max: 1_000_000 }),
  products: fc.option(fc.subarray(products, { minLength: 1 }), { nil: null }),
}).map(({ percent, amountSteps, products: only }) => ({ percentOffHundredths: percent, amountOff: percent === null ? amountSteps : null, products: only }));
const itemsArb = fc.array(fc.record({
  steps: fc.integer({ min: 0, max: 9_999_999 }),
  product: fc.option(fc.constantFrom(...products), { nil: undefined }),
}), { minLength: 1, maxLength: 8 });

describe('the discount arithmetic', () => {
  test('shares add up to the whole, stay within their items and steps, and only items it applies to get one', () => {
    fc.assert(fc.property(termsArb, itemsArb, stepArb, (given, rawItems, step) => {
      // An amount off is a multiple of the step, as the API requires of every amount.
      const terms = given.amountOff === null ? given : { ...given, amountOff: given.amountOff * step };
      const items = rawItems.map((item) => ({ amount: item.steps * step, product: item.product }));
      const { total, perItem } = discountOf(terms, items, step);
      const base = items.reduce((sum, item) => (discountApplies(terms, item) ? sum + item.amount : sum), 0);
      assert.equal(perItem.length, items.length);
      assert.equal(perItem.reduce((sum, share) => sum + share, 0), total, 'the shares add up to the whole');
      assert.ok(total >= 0 && total <= base, 'never more than what it applies to');
      assert.equal(total % step, 0, 'the whole is in steps');
      perItem.forEach((share, index) => {
        const item = items[index];
        assert.ok(item !== undefined);
        assert.equal(share % step, 0, 'each share is in steps');
        assert.ok(share >= 0 && share <= item.amount, 'a share is within its item');
        if (!discountApplies(terms, item)) assert.equal(share, 0, 'an item it does not apply to keeps its amount');
      });
      if (terms.percentOffHundredths !== null) {
        // The nearest step to the exact percentage (a half step up).
        const exact = (base * terms.percentOffHundredths) / 10_000;
        assert.ok(Math.abs(total - exact) <= step / 2, `${total} is the nearest step to ${exact}`);
      } else {
        assert.equal(total, Math.min(terms.amountOff ?? 0, base));
      }
    }), { numRuns: 2_000 });
  });

  test('known cases: a half rounds up, an amount off is shared in proportion, the largest remainder gets the step left', () => {
    // 12.5% of 1,004 is 125.5: 126.
    assert.equal(discountOf({ percentOffHundredths: 1_250, amountOff: null, products: null }, [{ amount: 1_004 }], 1).total, 126);
    // 1,000 off 4,200 and 1,500: 736.8… and 263.1…, the step left over to the first (the larger remainder).
    assert.deepEqual(discountOf({ percentOffHundredths: null, amountOff: 1_000, products: null }, [{ amount: 4_200 }, { amount: 1_500 }], 1).perItem, [737, 263]);
    // Only the grinder's product: the filters keep their amount.
    assert.deepEqual(discountOf({ percentOffHundredths: 1_500, amountOff: null, products: ['prod_g'] }, [{ amount: 10_000, product: 'prod_g' }, { amount: 1_500 }], 1).perItem, [1_500, 0]);
    // Three equal items, 100 off: 34, 33, 33 (the earlier item first when remainders are equal).
    assert.deepEqual(discountOf({ percentOffHundredths: null, amountOff: 100, products: null }, [{ amount: 500 }, { amount: 500 }, { amount: 500 }], 1).perItem, [34, 33, 33]);
  });
});
