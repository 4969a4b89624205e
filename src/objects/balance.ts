import { creditBalance } from '../domain/ledger.ts';
import type { AccountBalanceRow } from '../store/ledger.ts';
import type { ApiShape } from './api-version.ts';
import { amountOut } from './common.ts';

/**
 * Stripe's Balance, read from the ledger: `pending` is what the merchant is owed for captured payments not yet
 * available (the `merchant_incoming` account), `available` what may be paid out (`merchant_available`).
 * Authorized, uncaptured amounts are in neither, as at Stripe.
 */
export function balanceObject(accounts: AccountBalanceRow[], livemode: boolean, shape: ApiShape): Record<string, unknown> {
  const available: Array<Record<string, unknown>> = [];
  const pending: Array<Record<string, unknown>> = [];
  const currencies = [...new Set(accounts.map((account) => account.currency))].sort();
  for (const currency of currencies) {
    const amountOf = (code: string) => {
      const account = accounts.find((candidate) => candidate.currency === currency && candidate.code === code);
      if (account === undefined) return 0n;
      return creditBalance({
        debitsPending: account.debits_pending,
        debitsPosted: account.debits_posted,
        creditsPending: account.credits_pending,
        creditsPosted: account.credits_posted,
      }).posted;
    };
    const availableAmount = amountOut(amountOf('merchant_available'));
    const pendingAmount = amountOut(amountOf('merchant_incoming'));
    available.push({ amount: availableAmount, currency, source_types: { card: availableAmount } });
    pending.push({ amount: pendingAmount, currency, source_types: { card: pendingAmount } });
  }
  const object: Record<string, unknown> = { object: 'balance', available, livemode, pending };
  if (shape === 'current') object.refund_and_dispute_prefunding = { available: [], pending: [] };
  return object;
}
