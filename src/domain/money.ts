import { limits } from '../limits.ts';
import { currencies, findCurrency, formatAmount, type CurrencyInfo } from './currency.ts';
import { CofferError } from './errors.ts';

/** Money inside Coffer: an integer count of the currency's API minor unit. */
export interface Money {
  amountMinor: bigint;
  currency: CurrencyInfo;
}

export function parseCurrency(code: string, param = 'currency'): CurrencyInfo {
  const currency = findCurrency(code.toLowerCase());
  if (currency === undefined) {
    throw new CofferError(
      'currency_invalid',
      `Invalid currency: ${code}. Coffer supports these currencies: ${[...currencies.keys()].sort().join(', ')}`,
      { param },
    );
  }
  return currency;
}

/**
 * Checks an amount from the API against its currency: a positive integer no larger than eight digits, at least
 * the currency's minimum charge, and a multiple of its step (three-decimal currencies end in 0; ISK and UGX are
 * whole units given with two zero decimals).
 */
export function parseAmount(amount: number, currency: CurrencyInfo, param = 'amount'): Money {
  if (!Number.isSafeInteger(amount)) {
    throw new CofferError('parameter_invalid_integer', `Invalid integer: ${amount}`, { param });
  }
  if (amount < 1) {
    throw new CofferError('parameter_invalid_integer', 'This value must be greater than or equal to 1.', { param });
  }
  const minimum = currency.minimumMinor;
  if (amount < minimum) {
    const why = currency.minimumIndicative ? ' (about 0.25 usd: Coffer\'s floor for a currency without a published minimum)' : '';
    throw new CofferError('amount_too_small', `Amount must be at least ${formatAmount(minimum, currency)}${why}`, { param });
  }
  if (amount > limits.amountMinorMax) {
    throw new CofferError(
      'amount_too_large',
      `Amount must be no more than ${formatAmount(limits.amountMinorMax, currency)}`,
      { param },
    );
  }
  checkAmountStep(BigInt(amount), currency, param);
  return { amountMinor: BigInt(amount), currency };
}

/**
 * Refuses an amount that is not a whole step of its currency (three-decimal currencies end in 0; ISK and UGX are
 * whole units given with two zero decimals), wherever an amount comes in: a charge, a capture, a refund, a credit.
 */
export function checkAmountStep(amount: bigint, currency: CurrencyInfo, param: string): void {
  if (amount % BigInt(currency.amountStep) === 0n) return;
  throw new CofferError(
    'invalid_charge_amount',
    `Amounts in ${currency.code} must be a multiple of ${currency.amountStep} (got ${amount}): ` +
      (currency.amountStep === 10
        ? 'the last of its three decimals must be 0.'
        : `${currency.code} is charged in whole units, given with two decimals that are 00.`),
    { param },
  );
}
