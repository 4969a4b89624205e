import { assert } from '../platform/assert.ts';

/** Amounts are bigint inside Coffer and JSON numbers on the wire; every amount fits (limits.amountMinorMax). */
export function amountOut(value: bigint): number {
  assert(value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER), 'amount out of range');
  return Number(value);
}

export function unixTime(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

export function unixTimeOrNull(date: Date | null): number | null {
  return date === null ? null : unixTime(date);
}

export const emptyAddress = { city: null, country: null, line1: null, line2: null, postal_code: null, state: null };

/** An address as Stripe shows one: every key, null where none was given (or null for no address at all). */
export function addressObject(address: unknown): Record<string, unknown> | null {
  return typeof address === 'object' && address !== null ? { ...emptyAddress, ...address } : null;
}

/**
 * Shipping details as Stripe shows them: the address with every key, and `carrier`, `phone` and `tracking_number`
 * null where none was given (a customer's shipping has no carrier or tracking number).
 */
export function shippingObject(shipping: unknown, kind: 'payment' | 'customer' = 'payment'): Record<string, unknown> | null {
  if (typeof shipping !== 'object' || shipping === null) return null;
  const given = shipping as Record<string, unknown>;
  const base: Record<string, unknown> = kind === 'payment' ? { carrier: null, name: null, phone: null, tracking_number: null } : { name: null, phone: null };
  return { ...base, ...given, address: addressObject(given.address) ?? emptyAddress };
}
