import { createHash } from 'node:crypto';
import type { TransferReason } from '../domain/ledger.ts';
import type { ApiShape } from './api-version.ts';
import { amountOut, unixTime } from './common.ts';

/**
 * Stripe's balance transactions, read from the ledger. Each is one transfer that changes what Coffer owes the
 * merchant (its pending or available funds), as the merchant sees it: a capture, a refund, a refund that failed
 * after succeeding, a dispute's withdrawal (with its fee) or its reinstatement, a customer balance credit or debit.
 * Authorizations, their releases and settlements are not: an authorization is not yet the merchant's money, and a
 * settlement only moves a charge's money from pending to available, which is the transaction's `status`.
 */
export const balanceTransactionReasons = [
  'capture', 'refund', 'refund_failure', 'dispute', 'dispute_reinstatement', 'customer_credit', 'customer_debit',
] as const satisfies readonly TransferReason[];
export type BalanceTransactionReason = (typeof balanceTransactionReasons)[number];

const kinds: Record<BalanceTransactionReason, { type: string; category: string; description: string | null }> = {
  capture: { type: 'charge', category: 'charge', description: null },
  refund: { type: 'refund', category: 'refund', description: 'REFUND FOR CHARGE' },
  refund_failure: { type: 'refund_failure', category: 'refund_failure', description: 'REFUND FAILURE' },
  dispute: { type: 'adjustment', category: 'dispute', description: 'Chargeback withdrawal' },
  dispute_reinstatement: { type: 'adjustment', category: 'dispute_reversal', description: 'Chargeback reversal' },
  customer_credit: { type: 'adjustment', category: 'other_adjustment', description: 'Customer balance credit' },
  customer_debit: { type: 'adjustment', category: 'other_adjustment', description: 'Customer balance debit' },
};

/**
 * A transaction's id names its source (the charge, refund, dispute or customer balance transaction) and its
 * reason, so the objects that cite it know it without reading the ledger. The database finds it by the same
 * digest (migration 0035).
 */
export function balanceTransactionId(sourceId: string, reason: BalanceTransactionReason): string {
  return `txn_${createHash('sha256').update(`${sourceId}:${reason}`).digest('hex').slice(0, 24)}`;
}

export interface BalanceTransactionRow {
  seq: bigint;
  source: string;
  reason: BalanceTransactionReason;
  amount: bigint;
  /** The dispute fee withdrawn (or given back) with the transaction; 0 for the others. */
  fee: bigint;
  currency: string;
  created_at: Date;
  /** Whether the transfer pays the merchant (credits its funds) or takes from it. */
  to_merchant: boolean;
  /** Which of the merchant's funds it moved: pending ones become available when their charge settles. */
  merchant_account: 'merchant_incoming' | 'merchant_available';
  charge_settled: boolean | null;
  charge_available_on: Date | null;
  charge_description: string | null;
  /** How the charge was paid: `card`, or a wallet (`alipay`, `wechat_pay`), whose payments Stripe types `payment`. */
  charge_provider: string | null;
}

export function balanceTransactionObject(row: BalanceTransactionRow, shape: ApiShape): Record<string, unknown> {
  const kind = kinds[row.reason];
  const wallet = row.charge_provider !== null && row.charge_provider !== 'card';
  const type = wallet && row.reason === 'capture' ? 'payment' : wallet && row.reason === 'refund' ? 'payment_refund' : kind.type;
  const sign = row.to_merchant ? 1n : -1n;
  const amount = sign * row.amount;
  // A fee is what the merchant pays: withdrawn with a dispute, given back (negative) with its reinstatement.
  const fee = row.to_merchant ? -row.fee : row.fee;
  const pending = row.merchant_account === 'merchant_incoming' && row.charge_settled !== true;
  const availableOn = row.merchant_account === 'merchant_incoming' && row.charge_available_on !== null ? row.charge_available_on : row.created_at;
  const object: Record<string, unknown> = {
    id: balanceTransactionId(row.source, row.reason),
    object: 'balance_transaction',
    amount: amountOut(amount),
    available_on: unixTime(availableOn),
  };
  if (shape === 'current') object.balance_type = 'payments';
  Object.assign(object, {
    created: unixTime(row.created_at),
    currency: row.currency,
    description: row.reason === 'capture' ? row.charge_description : kind.description,
    exchange_rate: null,
    fee: amountOut(fee),
    fee_details: fee === 0n ? [] : [{ amount: amountOut(fee), application: null, currency: row.currency, description: 'Dispute fee', type: 'stripe_fee' }],
    net: amountOut(amount - fee),
    reporting_category: kind.category,
    source: row.source,
    status: pending ? 'pending' : 'available',
    type,
  });
  return object;
}
