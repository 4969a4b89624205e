/**
 * Stripe API versions Coffer serves. Responses follow the current shape (the one the current `stripe` SDK pins)
 * unless the request asks, by `Stripe-Version` or the merchant's default, for a version before 2025-03-31
 * ("basil"), which removed `invoice` and added fields the older SDKs do not know; those get the 2024-04-10 shape.
 */
export const currentApiVersion = '2026-10-28.endive';
export const legacyApiVersion = '2024-04-10';
const basilDate = '2025-03-31';
const oldestDate = '2020-08-27';

export type ApiShape = 'current' | 'legacy';

export interface ApiVersion {
  /** The version as the client named it, echoed in `Stripe-Version` and in events. */
  name: string;
  shape: ApiShape;
}

const versionPattern = /^(\d{4}-\d{2}-\d{2})(\.[a-z]+)?$/;

/** Parses a `Stripe-Version` value; undefined when it is not a version Coffer can serve. */
export function parseApiVersion(name: string): ApiVersion | undefined {
  const match = versionPattern.exec(name);
  const date = match?.[1];
  if (date === undefined) return undefined;
  const currentDate = currentApiVersion.slice(0, 10);
  // A date that does not exist (2024-02-30) is refused, not rolled over to another day.
  const parsed = new Date(`${date}T00:00:00Z`);
  if (Number.isNaN(parsed.getTime()) || parsed.toISOString().slice(0, 10) !== date) return undefined;
  if (date < oldestDate || date > currentDate) return undefined;
  return { name, shape: date < basilDate ? 'legacy' : 'current' };
}

export const defaultApiVersion: ApiVersion = { name: currentApiVersion, shape: 'current' };
