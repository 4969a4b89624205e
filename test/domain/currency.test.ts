import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { currencies, disputeFeeMinor, fromUsdCents } from '../../src/domain/currency.ts';
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

// Goal: the dispute fee is Stripe's 15.00 US dollars in the charge's currency, not 1,500 minor units of whatever
// currency (which was 1,500 yen on a yen payment, and 1.500 dinars on a Kuwaiti one): about 15 dollars, never more,
// a whole number of the currency's steps, in every currency.
describe('dispute fee', () => {
  test('15.00 USD in each currency, at the indicative rates, rounded down to two significant figures and to the step', () => {
    const fee = (code: string) => {
      const currency = currencies.get(code);
      assert.ok(currency !== undefined, code);
      return disputeFeeMinor(currency);
    };
    // Worked by hand: 15 × 150 JPY = 2,250 → 2,200; 15 × 0.306 KWD = 4.59 → 4.5 = 4,500 (three decimals);
    // 15 × 0.865 EUR = 12.975 → 12.00; 15 × 125 ISK = 1,875 → 1,800.00 (whole krónur).
    assert.deepEqual(['usd', 'jpy', 'kwd', 'eur', 'isk'].map(fee), [1500n, 2200n, 4500n, 1200n, 180_000n]);
    for (const currency of currencies.values()) {
      const minor = disputeFeeMinor(currency);
      assert.equal(minor % BigInt(currency.amountStep), 0n, currency.code);
      assert.ok(minor >= BigInt(currency.minimumMinor), `${currency.code}: the fee is more than the smallest payment`);
    }
  });

  test('a threshold in US cents holds in every currency at the indicative rates, exactly in dollars', () => {
    const of = (cents: number, code: string) => {
      const currency = currencies.get(code);
      assert.ok(currency !== undefined, code);
      return fromUsdCents(cents, currency);
    };
    // 1,000.00 USD: 150,000 JPY; 865.00 EUR; 306.000 KWD; 16,300,000.00 IDR; 123,456 cents stays 123,456 in USD.
    assert.deepEqual([of(100_000, 'usd'), of(100_000, 'jpy'), of(100_000, 'eur'), of(100_000, 'kwd'), of(100_000, 'idr'), of(123_456, 'usd')],
      [100_000n, 150_000n, 86_500n, 306_000n, 1_630_000_000n, 123_456n]);
    for (const currency of currencies.values()) {
      const minor = fromUsdCents(5_000, currency);
      assert.ok(minor > 0n && minor % BigInt(currency.amountStep) === 0n, currency.code);
    }
  });
});
