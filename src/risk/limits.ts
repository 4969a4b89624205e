import type { LimitKind, LimitSubject, PaymentLimitRow } from '../store/database.ts';

/**
 * Payment limits, decided without I/O: which of a merchant's limits a payment falls under, in which counting
 * window (days and hours in the merchant's time zone), and whether a per-payment bound refuses it outright.
 */
export const limitSubjects: readonly LimitSubject[] = ['merchant', 'customer', 'card', 'device', 'client_address'];
export const limitKinds: readonly LimitKind[] = ['amount_min', 'amount_max', 'amount_per_day', 'count_per_hour', 'count_per_day'];

export function isAmountKind(kind: LimitKind): boolean {
  return kind === 'amount_min' || kind === 'amount_max' || kind === 'amount_per_day';
}

/** What Coffer knows about a payment that limits can be keyed by; a missing one means its limits do not apply. */
export interface LimitFacts {
  merchantId: string;
  amountMinor: bigint;
  currency: string;
  customerId: string | null;
  cardFingerprint: string | null;
  deviceId: string | null;
  clientAddress: string | null;
  timeZone: string;
  at: Date;
}

function subjectKey(subject: LimitSubject, facts: LimitFacts): string | null {
  switch (subject) {
    case 'merchant':
      return facts.merchantId;
    case 'customer':
      return facts.customerId;
    case 'card':
      return facts.cardFingerprint;
    case 'device':
      return facts.deviceId;
    case 'client_address':
      return facts.clientAddress;
  }
}

/** The local date and hour in a time zone: `2026-11-26` and `2026-11-26T14`. */
export function localWindows(at: Date, timeZone: string): { day: string; hour: string } {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', hourCycle: 'h23',
  }).formatToParts(at);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '00';
  const day = `${part('year')}-${part('month')}-${part('day')}`;
  return { day, hour: `${day}T${part('hour')}` };
}

export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** A counter the payment takes from: the limit, whose total it is, the window, and the bound. */
export interface CounterTake {
  limit: PaymentLimitRow;
  subjectKey: string;
  windowKey: string;
  maxAmount: bigint | null;
  maxCount: number | null;
}

export type LimitCheck =
  | { ok: true; takes: CounterTake[] }
  | { ok: false; limit: PaymentLimitRow };

/**
 * Applies the per-payment bounds now and lists the counters to take. Amount limits count only payments in their
 * own currency (no conversion is guessed); count limits count every payment.
 */
export function checkLimits(limits: readonly PaymentLimitRow[], facts: LimitFacts): LimitCheck {
  const windows = localWindows(facts.at, facts.timeZone);
  const takes: CounterTake[] = [];
  for (const limit of limits) {
    const key = subjectKey(limit.subject, facts);
    if (key === null) continue;
    if (isAmountKind(limit.kind) && limit.currency !== facts.currency) continue;
    switch (limit.kind) {
      case 'amount_min':
        if (facts.amountMinor < limit.value) return { ok: false, limit };
        break;
      case 'amount_max':
        if (facts.amountMinor > limit.value) return { ok: false, limit };
        break;
      case 'amount_per_day':
        if (facts.amountMinor > limit.value) return { ok: false, limit };
        takes.push({ limit, subjectKey: key, windowKey: windows.day, maxAmount: limit.value, maxCount: null });
        break;
      case 'count_per_hour':
        takes.push({ limit, subjectKey: key, windowKey: windows.hour, maxAmount: null, maxCount: Number(limit.value) });
        break;
      case 'count_per_day':
        takes.push({ limit, subjectKey: key, windowKey: windows.day, maxAmount: null, maxCount: Number(limit.value) });
        break;
    }
  }
  return { ok: true, takes };
}

const kindWords: Record<LimitKind, string> = {
  amount_min: 'minimum amount per payment',
  amount_max: 'maximum amount per payment',
  amount_per_day: 'amount per day',
  count_per_hour: 'payments per hour',
  count_per_day: 'payments per day',
};

/** "the limit plim_… (amount per day of 500 usd, by card)". */
export function describeLimit(limit: PaymentLimitRow): string {
  const value = limit.currency === null ? `${limit.value}` : `${limit.value} ${limit.currency}`;
  return `the limit ${limit.id} (${kindWords[limit.kind]} of ${value}, by ${limit.subject.replace('_', ' ')})`;
}
