import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Secret } from '../../../src/platform/secret.ts';
import { parseCardNumber, type CardNumber } from '../../../src/vault/card-number.ts';

/**
 * Card numbers for the vault's tests. The check digit is computed here independently of `luhnValid` (weights
 * 2,1,2,1… from the left of the final number's parity), so tests of `luhnValid` do not lean on it.
 */
export function luhnCheckDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i += 1) {
    const digit = Number(body[i]);
    // Once the check digit is appended, the body's last digit is second from the right: it is doubled.
    const doubledHere = (body.length - i) % 2 === 1;
    sum += doubledHere ? [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][digit]! : digit;
  }
  return String((10 - (sum % 10)) % 10);
}

export function cardNumber(digits: string): CardNumber {
  const parsed = parseCardNumber(new Secret(digits));
  assert.ok(parsed.ok, 'a test card number is valid');
  return parsed.cardNumber;
}

/** A Luhn-valid number of `digitsMin`–`digitsMax` digits (default 12–19: what the vault accepts). */
export function arbitraryCardDigits(digitsMin = 12, digitsMax = 19): fc.Arbitrary<string> {
  return fc
    .integer({ min: digitsMin - 1, max: digitsMax - 1 })
    .chain((length) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: length, maxLength: length }))
    .map((body) => body + luhnCheckDigit(body));
}

/** The same number with its check digit changed, so Luhn fails. */
export function breakCheckDigit(digits: string): string {
  const last = Number(digits[digits.length - 1]);
  return digits.slice(0, -1) + String((last + 1) % 10);
}

/** The published test cards, with their brands. */
export const publishedTestCards = [
  { number: '4242424242424242', brand: 'visa' },
  { number: '5555555555554444', brand: 'mastercard' },
  { number: '2223003122003222', brand: 'mastercard' },
  { number: '378282246310005', brand: 'amex' },
  { number: '6011111111111117', brand: 'discover' },
  { number: '3056930009020004', brand: 'diners' },
  { number: '3566002020360505', brand: 'jcb' },
  { number: '6200000000000005', brand: 'unionpay' },
] as const;
