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
