/**
 * Stripe API versions Coffer serves. Responses follow the current shape (the one the current `stripe` SDK pins)
 * unless the request asks, by `Stripe-Version` or the merchant's default, for a version before 2025-03-31
 * ("basil"), which removed `invoice` and added fields the older SDKs do not know; those get the 2024-04-10 shape.
 * Versions before 2022-11-15 get that shape with the lists 2022-11-15 removed (`chargeListsShown`, decision 0047).
 */
export const currentApiVersion = '2026-10-28.endive';
export const legacyApiVersion = '2024-04-10';
const basilDate = '2025-03-31';

/**
 * Every version Stripe released from 2020-08-27 on, oldest first, as the `stripe` SDK's changelog names them:
 * plain dates until 2024-06-20, then a date and the release's name. Only these are served; a date Stripe never
 * released, or a name that is not that date's (`2025-03-31.acacia`), is refused rather than guessed at. Stripe
 * released nothing between 2020-08-27 and 2022-11-15 but 2022-08-01 (the SDK's list of versions says so).
 */
export const releasedApiVersions = [
  '2020-08-27', '2022-08-01', '2022-11-15', '2023-08-16', '2023-10-16', '2024-04-10', '2024-06-20',
  '2024-09-30.acacia', '2024-10-28.acacia', '2024-11-20.acacia', '2024-12-18.acacia', '2025-01-27.acacia', '2025-02-24.acacia',
  '2025-03-31.basil', '2025-04-30.basil', '2025-05-28.basil', '2025-06-30.basil', '2025-07-30.basil', '2025-08-27.basil',
  '2025-09-30.clover', '2025-10-29.clover', '2025-11-17.clover', '2025-12-15.clover', '2026-01-28.clover', '2026-02-25.clover',
  '2026-03-25.dahlia', '2026-04-22.dahlia', '2026-05-27.dahlia', '2026-06-24.dahlia', '2026-07-29.dahlia', '2026-08-26.dahlia',
  '2026-09-30.endive', '2026-10-28.endive',
] as const;

export type ApiShape = 'current' | 'legacy';

export interface ApiVersion {
  /** The version as the client named it, echoed in `Stripe-Version` and in events. */
  name: string;
  shape: ApiShape;
}

const released = new Set<string>(releasedApiVersions);
/** A named release may also be asked for by its date alone (`2025-03-31` for `2025-03-31.basil`). */
const releaseDates = new Set<string>(releasedApiVersions.map((version) => version.slice(0, 10)));

/** Parses a `Stripe-Version` value; undefined when it is not a version Coffer can serve. */
export function parseApiVersion(name: string): ApiVersion | undefined {
  if (!released.has(name) && !releaseDates.has(name)) return undefined;
  return { name, shape: name.slice(0, 10) < basilDate ? 'legacy' : 'current' };
}

/** What a refusal of an unknown version says the client may send instead. */
export const servedVersionsText = `one of Stripe's released versions from ${releasedApiVersions[0]} to ${currentApiVersion}`;

/** Why a version cannot be served, for the refusal that names it. */
export function unservedVersionReason(name: string): string {
  return `Invalid Stripe API version: ${name}; send ${servedVersionsText}.`;
}

/**
 * Before 2022-11-15, a PaymentIntent carried its charges (`charges`, a list, and no `latest_charge`) and a Charge its
 * refunds (`refunds`, a list): `src/objects/charge-lists.ts` adds them to the 2024-04-10 shape (decision 0047).
 */
export function chargeListsShown(version: { name: string }): boolean {
  return version.name.slice(0, 10) < '2022-11-15';
}

/**
 * Before 2025-09-30 ("clover"), a promotion code named its coupon as `coupon`, the whole object; from then on, under
 * `promotion` (`{ type: 'coupon', coupon }`). Events, kept in two shapes only, follow the shape (decision 0062).
 */
export function promotionCodeShowsCoupon(version: { name: string }): boolean {
  return version.name.slice(0, 10) < '2025-09-30';
}

/** From 2023-08-16, a PaymentIntent made without payment method types has automatic payment methods enabled. */
export function automaticPaymentMethodsByDefault(version: ApiVersion): boolean {
  return version.name.slice(0, 10) >= '2023-08-16';
}

/**
 * From 2024-06-20, a PaymentIntent made without `capture_method` captures asynchronously (`automatic_async`): the
 * charge's balance transaction is announced by a `charge.updated` event rather than in the confirmation's answer.
 */
export function captureMethodByDefault(version: ApiVersion): 'automatic' | 'automatic_async' {
  return version.name.slice(0, 10) >= '2024-06-20' ? 'automatic_async' : 'automatic';
}

export const defaultApiVersion: ApiVersion = { name: currentApiVersion, shape: 'current' };
