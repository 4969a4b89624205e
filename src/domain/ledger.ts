import { assert } from '../platform/assert.ts';

/**
 * The ledger's chart of accounts and the rules that turn payment events into transfers. Every transfer moves a
 * positive amount from one debit account to one credit account of the same merchant, mode and currency, so the
 * debits and credits of a currency always sum to the same figure. Two-phase transfers follow TigerBeetle: a
 * `pending` transfer reserves an amount, and exactly one later `post_pending` (of at most that amount; the rest is
 * released) or `void_pending` resolves it.
 */
export const ledgerAccountCodes = [
  /** What the acquirer owes Coffer for the merchant's card payments: shopper funds in transit (asset). */
  'provider_clearing',
  /** What Coffer owes the merchant for captured payments not yet available for payout (Stripe's "pending"). */
  'merchant_incoming',
  /** What Coffer owes the merchant and may pay out (Stripe's "available"). */
  'merchant_available',
  /** Fees Coffer charged the merchant (dispute fees): the platform's revenue. */
  'fees',
  /** Credit the merchant granted its customers (goodwill), owed to them against future payments. */
  'customer_credit',
] as const;
export type LedgerAccountCode = (typeof ledgerAccountCodes)[number];

export const transferReasons = ['authorization', 'increment', 'capture', 'release', 'settlement', 'refund', 'refund_failure', 'dispute', 'dispute_fee', 'dispute_reinstatement', 'dispute_fee_reinstatement', 'customer_credit', 'customer_debit'] as const;
export type TransferReason = (typeof transferReasons)[number];

/** A request to the ledger, before accounts are resolved to rows. `key` makes every transfer idempotent. */
export type TransferCommand =
  | {
      kind: 'single' | 'pending';
      key: string;
      debit: LedgerAccountCode;
      credit: LedgerAccountCode;
      amountMinor: bigint;
      reason: TransferReason;
    }
  | { kind: 'post_pending'; key: string; pendingKey: string; amountMinor: bigint; reason: TransferReason }
  | { kind: 'void_pending'; key: string; pendingKey: string; reason: TransferReason };

/**
 * The reservation an authorization holds: the first, or the one its `increments`-th raise replaced it with. A charge
 * holds one open reservation at a time, so that its capture is one transfer.
 */
export function authorizationTransferKey(chargeId: string, increments = 0): string {
  return increments === 0 ? `${chargeId}:authorization` : `${chargeId}:authorization:${increments}`;
}

/** An authorization either reserves (manual capture) or moves at once (automatic capture). */
export function authorizationTransfers(chargeId: string, amountMinor: bigint, captured: boolean): TransferCommand[] {
  assert(amountMinor > 0n, 'an authorization moves a positive amount');
  return [
    {
      kind: captured ? 'single' : 'pending',
      key: authorizationTransferKey(chargeId),
      debit: 'provider_clearing',
      credit: 'merchant_incoming',
      amountMinor,
      reason: captured ? 'capture' : 'authorization',
    },
  ];
}

/**
 * Raising an authorization's hold (its `increment`-th approved raise) replaces its reservation with one of the new
 * total, in one step: the reservation before is voided (reason `increment`, not a release: nothing was given back
 * to the shopper) and the new one reserves the whole new amount.
 */
export function incrementTransfers(chargeId: string, increment: number, totalMinor: bigint): TransferCommand[] {
  assert(increment >= 1 && totalMinor > 0n, 'an increment replaces a reservation with a positive one');
  return [
    { kind: 'void_pending', key: `${chargeId}:increment:${increment}`, pendingKey: authorizationTransferKey(chargeId, increment - 1), reason: 'increment' },
    {
      kind: 'pending',
      key: authorizationTransferKey(chargeId, increment),
      debit: 'provider_clearing',
      credit: 'merchant_incoming',
      amountMinor: totalMinor,
      reason: 'authorization',
    },
  ];
}

/**
 * Capturing posts the reservation (the latest, after `increments` raises); posting less than reserved releases the
 * rest in the same transfer.
 */
export function captureTransfers(chargeId: string, amountMinor: bigint, increments = 0): TransferCommand[] {
  assert(amountMinor > 0n, 'a capture moves a positive amount');
  return [
    {
      kind: 'post_pending',
      key: `${chargeId}:capture`,
      pendingKey: authorizationTransferKey(chargeId, increments),
      amountMinor,
      reason: 'capture',
    },
  ];
}

/** Cancelling or expiring an uncaptured authorization voids its reservation (the latest, after `increments` raises). */
export function releaseTransfers(chargeId: string, increments = 0): TransferCommand[] {
  return [
    { kind: 'void_pending', key: `${chargeId}:release`, pendingKey: authorizationTransferKey(chargeId, increments), reason: 'release' },
  ];
}

/**
 * A charge settles: what it left in the merchant's pending funds (its capture, less what its refunds and disputes
 * took from them, plus what came back) moves to the available funds. That is negative when a dispute's fee took
 * more than the charge left: the settlement then takes it from the available funds, so that a settled charge
 * leaves nothing pending.
 */
export function settlementTransfers(key: string, netMinor: bigint): TransferCommand[] {
  assert(netMinor !== 0n, 'a settlement moves something');
  return netMinor > 0n
    ? [{ kind: 'single', key, debit: 'merchant_incoming', credit: 'merchant_available', amountMinor: netMinor, reason: 'settlement' }]
    : [{ kind: 'single', key, debit: 'merchant_available', credit: 'merchant_incoming', amountMinor: -netMinor, reason: 'settlement' }];
}

/**
 * Where a charge's money is for the merchant now: pending until the charge settles, then available. Every later
 * movement for the charge (a refund, a dispute, their reversals) takes from or gives to these funds, so that
 * what a charge leaves pending always settles with it.
 */
export function chargeFunds(charge: { settled: boolean }): 'merchant_incoming' | 'merchant_available' {
  return charge.settled ? 'merchant_available' : 'merchant_incoming';
}

/** The four balance counters of an account, as TigerBeetle keeps them. */
export interface AccountBalance {
  debitsPending: bigint;
  debitsPosted: bigint;
  creditsPending: bigint;
  creditsPosted: bigint;
}

/** A liability to the merchant grows with credits: its balance is credits minus debits. */
export function creditBalance(balance: AccountBalance): { posted: bigint; pending: bigint } {
  return {
    posted: balance.creditsPosted - balance.debitsPosted,
    pending: balance.creditsPending - balance.debitsPending,
  };
}

/** A refund pays the shopper back through the acquirer out of the merchant's pending or available funds. */
export function refundTransfers(
  refundId: string,
  amountMinor: bigint,
  from: 'merchant_incoming' | 'merchant_available',
): TransferCommand[] {
  assert(amountMinor > 0n, 'a refund moves a positive amount');
  return [{ kind: 'single', key: `${refundId}:refund`, debit: from, credit: 'provider_clearing', amountMinor, reason: 'refund' }];
}

/** A refund that failed after it succeeded puts the money back where it came from. */
export function refundFailureTransfers(
  refundId: string,
  amountMinor: bigint,
  to: 'merchant_incoming' | 'merchant_available',
): TransferCommand[] {
  assert(amountMinor > 0n, 'a refund reversal moves a positive amount');
  return [
    { kind: 'single', key: `${refundId}:refund_failure`, debit: 'provider_clearing', credit: to, amountMinor, reason: 'refund_failure' },
  ];
}

/** A dispute withdraws the disputed amount (back to the acquirer) and a fee (to Coffer) from the merchant. */
export function disputeTransfers(
  disputeId: string,
  amountMinor: bigint,
  feeMinor: bigint,
  from: 'merchant_incoming' | 'merchant_available',
): TransferCommand[] {
  assert(amountMinor > 0n && feeMinor >= 0n, 'a dispute withdraws a positive amount');
  const transfers: TransferCommand[] = [
    { kind: 'single', key: `${disputeId}:withdrawal`, debit: from, credit: 'provider_clearing', amountMinor, reason: 'dispute' },
  ];
  if (feeMinor > 0n) {
    transfers.push({ kind: 'single', key: `${disputeId}:fee`, debit: from, credit: 'fees', amountMinor: feeMinor, reason: 'dispute_fee' });
  }
  return transfers;
}

/** A won dispute gives the merchant the amount and the fee back. */
export function disputeReinstatementTransfers(
  disputeId: string,
  amountMinor: bigint,
  feeMinor: bigint,
  to: 'merchant_incoming' | 'merchant_available',
): TransferCommand[] {
  const transfers: TransferCommand[] = [
    { kind: 'single', key: `${disputeId}:reinstatement`, debit: 'provider_clearing', credit: to, amountMinor, reason: 'dispute_reinstatement' },
  ];
  if (feeMinor > 0n) {
    transfers.push({ kind: 'single', key: `${disputeId}:fee_reinstatement`, debit: 'fees', credit: to, amountMinor: feeMinor, reason: 'dispute_fee_reinstatement' });
  }
  return transfers;
}

/**
 * A customer balance adjustment: a negative amount credits the customer (goodwill, paid by the merchant out of
 * its available funds), a positive one takes credit back.
 */
export function customerBalanceTransfers(transactionId: string, amountMinor: bigint): TransferCommand[] {
  assert(amountMinor !== 0n, 'an adjustment moves something');
  return amountMinor < 0n
    ? [{ kind: 'single', key: `${transactionId}:credit`, debit: 'merchant_available', credit: 'customer_credit', amountMinor: -amountMinor, reason: 'customer_credit' }]
    : [{ kind: 'single', key: `${transactionId}:debit`, debit: 'customer_credit', credit: 'merchant_available', amountMinor, reason: 'customer_debit' }];
}
