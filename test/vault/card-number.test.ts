// Goal: card numbers are accepted only with 12–19 digits and a valid Luhn digit, and brand, BIN and last 4 are right.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import type { CardBrand as ConnectorCardBrand } from '../../src/connectors/card/test-cards.ts';
import { Secret } from '../../src/platform/secret.ts';
import { cardBin, cardBrand, cardLast4, luhnValid, parseCardNumber, type CardBrand } from '../../src/vault/card-number.ts';
import { arbitraryCardDigits, breakCheckDigit, cardNumber, luhnCheckDigit, publishedTestCards } from './support/cards.ts';

// Fails to compile if the vault's brand names and the card connector's drift apart.
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const brandsAgree: Same<CardBrand, ConnectorCardBrand> = true;

/** A Luhn-valid 16-digit number starting with `prefix`. */
function withPrefix(prefix: string, length = 16): string {
  const body = prefix + '0'.repeat(length - 1 - prefix.length);
  return body + luhnCheckDigit(body);
}

describe('card numbers', () => {
  test('the published test cards have their brand, BIN and last 4', () => {
    assert.equal(brandsAgree, true);
    for (const card of publishedTestCards) {
      const number = cardNumber(card.number);
      assert.equal(cardBrand(number), card.brand, card.number);
      assert.equal(cardBin(number), card.number.slice(0, 6));
      assert.equal(cardLast4(number), card.number.slice(-4));
    }
    // More of Stripe's: a 14-digit Diners, a 19-digit UnionPay, Discover's other ranges.
    assert.equal(cardBrand(cardNumber('36227206271667')), 'diners');
    assert.equal(cardBrand(cardNumber('6205500000000000004')), 'unionpay');
    assert.equal(cardBrand(cardNumber('6445644564456445')), 'discover');
  });

  test('brand ranges end where they should', () => {
    const cases: Array<[string, CardBrand | undefined]> = [
      ['2220', undefined], ['2221', 'mastercard'], ['2720', 'mastercard'], ['2721', undefined],
      ['50', undefined], ['51', 'mastercard'], ['55', 'mastercard'], ['56', undefined],
      ['3527', undefined], ['3528', 'jcb'], ['3589', 'jcb'], ['3590', undefined],
      ['300', 'diners'], ['305', 'diners'], ['306', undefined], ['3095', 'diners'], ['36', 'diners'], ['39', 'diners'],
      ['33', undefined], ['34', 'amex'], ['35', undefined], ['37', 'amex'],
      ['6010', undefined], ['6011', 'discover'], ['643', undefined], ['644', 'discover'], ['649', 'discover'],
      ['65', 'discover'], ['62', 'unionpay'], ['81', 'unionpay'], ['4', 'visa'], ['1', undefined], ['9', undefined],
    ];
    for (const [prefix, brand] of cases) assert.equal(cardBrand(cardNumber(withPrefix(prefix))), brand, prefix);
  });

  test('an 8-digit BIN is given only for numbers of 16 digits or more (PCI DSS first 8 + last 4)', () => {
    assert.equal(cardBin(cardNumber('4242424242424242'), 8), '42424242');
    assert.equal(cardBin(cardNumber('6205500000000000004'), 8), '62055000');
    assert.equal(cardBin(cardNumber('378282246310005'), 8), '378282');
    assert.equal(cardBin(cardNumber('36227206271667'), 8), '362272');
  });

  test('spaces and dashes are removed; anything else, a wrong length or a wrong check digit is refused', () => {
    for (const written of ['4242 4242 4242 4242', '4242-4242-4242-4242', '3782 822463 10005']) {
      const parsed = parseCardNumber(new Secret(written));
      assert.ok(parsed.ok, written);
      assert.equal(parsed.cardNumber.reveal(), written.replace(/[ -]/g, ''));
    }
    const refusals: Array<[string, string]> = [
      ['4242424242424241', 'checksum'],
      ['4242.4242.4242.4242', 'characters'],
      ['4242\t4242424242424', 'characters'],
      ['４２４２４２４２４２４２４２４２', 'characters'],
      ['4242424242424242x', 'characters'],
      ['', 'length'],
      [withPrefix('4', 11), 'length'],
      [withPrefix('4', 20), 'length'],
    ];
    for (const [written, reason] of refusals) {
      const parsed = parseCardNumber(new Secret(written));
      // The refusal says why and nothing more: never the number.
      assert.deepEqual(parsed, { ok: false, reason }, written);
    }
    assert.equal(parseCardNumber(new Secret(withPrefix('4', 12))).ok, true);
    assert.equal(parseCardNumber(new Secret(withPrefix('4', 19))).ok, true);
  });

  test('Luhn accepts exactly one check digit per body and catches every single-digit error', () => {
    fc.assert(
      fc.property(arbitraryCardDigits(), fc.nat(), fc.integer({ min: 1, max: 9 }), (digits, position, delta) => {
        assert.ok(luhnValid(digits));
        const valid = [...'0123456789'].filter((check) => luhnValid(digits.slice(0, -1) + check));
        assert.deepEqual(valid, [digits[digits.length - 1]]);
        const at = position % digits.length;
        const changed = digits.slice(0, at) + String((Number(digits[at]) + delta) % 10) + digits.slice(at + 1);
        assert.equal(luhnValid(changed), false, 'one changed digit is detected');
        assert.equal(luhnValid(breakCheckDigit(digits)), false);
      }),
      { numRuns: 1000 },
    );
    assert.equal(luhnValid(''), false);
    assert.equal(luhnValid('42424242424242a2'), false);
  });

  test('a card number prints as [redacted] however it is printed', () => {
    const number = cardNumber('4242424242424242');
    for (const shown of [String(number), JSON.stringify({ number }), inspect({ number }), `${number}`]) {
      assert.ok(!shown.includes('4242424242424242'), shown);
      assert.ok(shown.includes('[redacted]'), shown);
    }
  });
});
