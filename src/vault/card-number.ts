import { Secret } from '../platform/secret.ts';

/**
 * Card numbers (PANs) as pure functions: validation, and the facts PCI DSS lets Coffer keep and show in clear
 * (brand, BIN, last 4). A validated number is a `CardNumber`: a `Secret` that prints `[redacted]`, branded so
 * that only `parseCardNumber` (or the vault, after decrypting) can make one.
 *
 *   parseCardNumber(input: Secret<string>): ParsedCardNumber
 *   luhnValid(digits: string): boolean
 *   cardBrand(cardNumber: CardNumber): CardBrand | undefined
 *   cardBin(cardNumber: CardNumber, digitsWanted?: 6 | 8): string
 *   cardLast4(cardNumber: CardNumber): string
 */
declare const validated: unique symbol;
export type CardNumber = Secret<string> & { readonly [validated]: true };

/** The same names as the card connector's `CardBrand` (a test keeps the two equal). */
export type CardBrand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'diners' | 'jcb' | 'unionpay';

export const cardNumberDigitsMin = 12;
export const cardNumberDigitsMax = 19;

export type ParsedCardNumber =
  | { ok: true; cardNumber: CardNumber }
  /** Why the input is not a card number; the input itself is never echoed. */
  | { ok: false; reason: 'characters' | 'length' | 'checksum' };

/** Accepts digits with the spaces and dashes people type between groups; anything else is refused. */
export function parseCardNumber(input: Secret<string>): ParsedCardNumber {
  const digits = input.reveal().replace(/[ -]/g, '');
  if (!/^[0-9]*$/.test(digits)) return { ok: false, reason: 'characters' };
  if (digits.length < cardNumberDigitsMin || digits.length > cardNumberDigitsMax) return { ok: false, reason: 'length' };
  if (!luhnValid(digits)) return { ok: false, reason: 'checksum' };
  return { ok: true, cardNumber: new Secret(digits) as CardNumber };
}

/** The Luhn (mod 10) check of ISO/IEC 7812-1 over ASCII digits: every second digit from the right is doubled. */
export function luhnValid(digits: string): boolean {
  if (digits.length === 0) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let digit = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (digit < 0 || digit > 9) return false;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/**
 * Issuer prefix ranges (inclusive, compared over the range's own number of digits). Cards in 622126–622925 are
 * co-badged Discover/UnionPay; like Stripe we call every 62 card UnionPay. Prefixes that belong to no brand here
 * (Maestro, RuPay, Mir…) give `undefined`, not a guess.
 */
const brandRanges: ReadonlyArray<readonly [CardBrand, string, string]> = [
  ['visa', '4', '4'],
  ['mastercard', '51', '55'],
  ['mastercard', '2221', '2720'],
  ['amex', '34', '34'],
  ['amex', '37', '37'],
  ['discover', '6011', '6011'],
  ['discover', '644', '649'],
  ['discover', '65', '65'],
  ['diners', '300', '305'],
  ['diners', '3095', '3095'],
  ['diners', '36', '36'],
  ['diners', '38', '39'],
  ['jcb', '3528', '3589'],
  ['unionpay', '62', '62'],
  ['unionpay', '81', '81'],
];

export function cardBrand(cardNumber: CardNumber): CardBrand | undefined {
  const digits = cardNumber.reveal();
  for (const [brand, low, high] of brandRanges) {
    // Equal-length digit strings compare as numbers do.
    const prefix = digits.slice(0, low.length);
    if (prefix >= low && prefix <= high) return brand;
  }
  return undefined;
}

/**
 * The bank identification number. Eight digits only for numbers of 16 digits or more: PCI DSS (FAQ 1091) allows
 * showing the first 8 and last 4 of those, but only the first 6 and last 4 of shorter ones, so a shorter
 * number gives 6 digits even when 8 are asked for.
 */
export function cardBin(cardNumber: CardNumber, digitsWanted: 6 | 8 = 6): string {
  const digits = cardNumber.reveal();
  return digits.slice(0, digitsWanted === 8 && digits.length >= 16 ? 8 : 6);
}

export function cardLast4(cardNumber: CardNumber): string {
  return cardNumber.reveal().slice(-4);
}
