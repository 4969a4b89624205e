import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { currencies } from '../../src/domain/currency.ts';
import { parseAmount } from '../../src/domain/money.ts';
import { CofferError } from '../../src/domain/errors.ts';

// Goal: every currency has a smallest amount: Stripe's published minimum where there is one, and otherwise a floor
// of about a quarter of a dollar, never more (so that it refuses nothing Stripe's 0.50 USD would take while rates
// drift), always a whole number of the currency's steps.
describe('currency minimums', () => {
  test('Stripe\'s published minimums, as published', () => {
    const published = { usd: 50, eur: 50, gbp: 30, jpy: 50, huf: 17500, mxn: 1000, thb: 1000, czk: 1500 };
    for (const [code, minimum] of Object.entries(published)) {
      assert.deepEqual([currencies.get(code)?.minimumMinor, currencies.get(code)?.minimumIndicative], [minimum, false], code);
    }
  });

  test('every other currency has a floor of about a quarter of a dollar, in whole steps, that parseAmount enforces', () => {
    const floors = [...currencies.values()].filter((currency) => currency.minimumIndicative);
    assert.ok(floors.length > 100, 'most currencies have no published minimum');
    for (const currency of floors) {
      assert.equal(currency.minimumMinor % currency.amountStep, 0, currency.code);
      assert.ok(currency.minimumMinor >= currency.amountStep, currency.code);
      assert.doesNotThrow(() => parseAmount(currency.minimumMinor, currency), currency.code);
      const below = currency.minimumMinor - currency.amountStep;
      if (below >= 1) {
        assert.throws(() => parseAmount(below, currency), (error: unknown) => error instanceof CofferError && error.code === 'amount_too_small', currency.code);
      }
    }
    // A few worked by hand: 0.25 × 16,300 IDR = 4,075 → 4,000.00; 0.25 × 1,380 KRW = 345 → 340; 0.25 × 0.306 KWD = 0.0765 → 0.076 → 0.070 (steps of 10).
    assert.equal(currencies.get('idr')?.minimumMinor, 400_000);
    assert.equal(currencies.get('krw')?.minimumMinor, 340);
    assert.equal(currencies.get('kwd')?.minimumMinor, 70);
    assert.equal(currencies.get('isk')?.minimumMinor, 3_100);
  });
});
