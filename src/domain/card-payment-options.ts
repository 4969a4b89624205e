import { assert } from '../platform/assert.ts';
import { CofferError } from './errors.ts';

/**
 * What a PaymentIntent does when it is paid with a given type of payment method. Stripe's
 * `payment_method_options[card]` override the top-level `capture_method` and `setup_future_usage` for card payments
 * only; every other type follows the top-level fields. Every decision that depends on either field asks here, so
 * that an option and the top-level field go through the same code. The 3-D Secure request a card payment asks for is
 * the card's option alone (`automatic` unless set); what a shopper's page may do with it is decided here too.
 */

export type CaptureMethod = 'automatic' | 'automatic_async' | 'manual';
export type SetupFutureUsage = 'on_session' | 'off_session';

/** The fields of a PaymentIntent these decisions read (as stored: the options are null when not given). */
export interface PaymentOptionFields {
  capture_method: CaptureMethod;
  setup_future_usage: string | null;
  card_capture_method: 'manual' | null;
  card_setup_future_usage: 'none' | SetupFutureUsage | null;
}

/** How a payment with `paymentMethodType` is captured. */
export function captureMethodFor(intent: Pick<PaymentOptionFields, 'capture_method' | 'card_capture_method'>, paymentMethodType: string): CaptureMethod {
  if (paymentMethodType === 'card' && intent.card_capture_method !== null) return intent.card_capture_method;
  return intent.capture_method;
}

/**
 * Whether (and for which use) a payment with `paymentMethodType` keeps its payment method: null when it does not.
 * A card's `none` means not to keep the card even when the top-level field asks to.
 */
export function setupFutureUsageFor(intent: Pick<PaymentOptionFields, 'setup_future_usage' | 'card_setup_future_usage'>, paymentMethodType: string): SetupFutureUsage | null {
  const asked = paymentMethodType === 'card' && intent.card_setup_future_usage !== null ? intent.card_setup_future_usage : intent.setup_future_usage;
  if (asked === null || asked === 'none') return null;
  assert(asked === 'on_session' || asked === 'off_session', `setup_future_usage holds ${asked}, which no request can set`);
  return asked;
}

export type ThreeDSecureRequest = 'automatic' | 'any' | 'challenge';

/** How much 3-D Secure each request asks for: `any` authenticates when the card can, `challenge` asks for a challenge. */
const threeDSecureStrength: Record<ThreeDSecureRequest, number> = { automatic: 0, any: 1, challenge: 2 };

/**
 * A publishable key (the shopper's page) may keep or raise the 3-D Secure request the PaymentIntent keeps, never
 * lower it: the merchant's `any` or `challenge` is a security decision its secret key made. `current` null is
 * `automatic`; `given` undefined changes nothing. Refused by name, before anything is written.
 */
export function checkShopperThreeDSecure(current: ThreeDSecureRequest | null, given: ThreeDSecureRequest | undefined): void {
  if (given === undefined || current === null) return;
  if (threeDSecureStrength[given] >= threeDSecureStrength[current]) return;
  const param = 'payment_method_options[card][request_three_d_secure]';
  throw new CofferError('parameter_invalid',
    `${param} is ${current} on this PaymentIntent; a publishable key may keep or raise it (automatic, any, challenge), not lower it (got ${given}).`, { param });
}
