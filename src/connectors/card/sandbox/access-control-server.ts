import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Selectable } from 'kysely';
import { assertNever } from '../../../platform/assert.ts';
import type { SandboxCardPaymentsTable } from '../../../store/database.ts';
import { threeDSecureSupportOf, type CardBrand, type TestCard } from '../test-cards.ts';
import type { AcquirerDecline, AcquirerThreeDSecure, AcquirerThreeDSecureRequest } from '../wire.ts';

/**
 * The issuer's access control server (ACS) of the card sandbox: EMV 3-D Secure 2 reduced to what a test needs.
 * The acquirer asks it, card by card (Stripe's 3-D Secure test cards), whether the shopper must authenticate;
 * frictionless results are given at once, a challenge is answered on the ACS page (acs.ts).
 * These are the issuer's rules, not Coffer's limits, which is why they live here and not in limits.ts.
 */
export const messageVersion = '2.2.0';
/** Where the ACS pages live on the server that hosts them (`registerCardAcsSandbox`). */
export const acsPathPrefix = '/sandbox/card/acs';
/** How long the shopper has to answer a challenge, as ACSs give a few minutes. */
export const challengeTtlMs = 10 * 60_000;
/** Wrong one-time codes accepted before the authentication fails. */
export const challengeCodeAttemptsMax = 3;

export type Authentication =
  /** No 3-D Secure: the acquirer authorizes as usual. */
  | { kind: 'none' }
  /** Decided without the shopper (frictionless); the authorization follows with this result. */
  | { kind: 'frictionless'; result: AcquirerThreeDSecure }
  /** The shopper must answer a challenge before the authorization. */
  | { kind: 'challenge' }
  /** The payment cannot go on: authentication is required and impossible, or failed for a technical reason. */
  | { kind: 'refused'; decline: AcquirerDecline };

type TransStatus = 'Y' | 'A' | 'N' | 'U';

/** Visa, Amex, JCB and the others use 05/06/07; Mastercard 02/01/00. */
function eciFor(brand: CardBrand, status: TransStatus): string {
  const mastercard = brand === 'mastercard';
  switch (status) {
    case 'Y':
      return mastercard ? '02' : '05';
    case 'A':
      return mastercard ? '01' : '06';
    case 'N':
    case 'U':
      return mastercard ? '00' : '07';
    default:
      return assertNever(status, 'transStatus');
  }
}

/**
 * An authentication outcome. Only Y and A carry an authentication value: the CAVV (Mastercard's AAV), 20 bytes
 * given in base64 (28 characters) as the networks do, which the authorization must carry.
 */
export function authenticationResult(
  brand: CardBrand,
  status: TransStatus,
  flow: 'frictionless' | 'challenge',
  dsTransId: string = randomUUID(),
): AcquirerThreeDSecure {
  const authenticated = status === 'Y' || status === 'A';
  return {
    version: messageVersion,
    trans_status: status,
    flow,
    eci: eciFor(brand, status),
    authentication_value: authenticated ? randomBytes(20).toString('base64') : null,
    ds_trans_id: dsTransId,
  };
}

export const authenticationFailed: AcquirerDecline = {
  code: 'payment_intent_authentication_failure',
  decline_code: 'authentication_failed',
  message: 'The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.',
  param: null,
  advice_code: null,
  network_status: 'not_sent_to_network',
  blocked: false,
};

/**
 * The soft decline of a payment that needed authentication and came without it (off session, or the merchant would
 * rather decline than challenge): Stripe's `authentication_required` code, which its saved-card guides test for to
 * bring the customer back, with the same decline code.
 */
const authenticationRequired: AcquirerDecline = {
  code: 'authentication_required',
  decline_code: 'authentication_required',
  message: 'Your card was declined. This transaction requires authentication.',
  param: null,
  advice_code: null,
  network_status: 'declined_by_network',
  blocked: false,
};

const lookupFailed: AcquirerDecline = {
  code: 'processing_error',
  decline_code: 'processing_error',
  message: 'An error occurred while processing your card. Try again in a little bit.',
  param: null,
  advice_code: 'try_again_later',
  network_status: 'not_sent_to_network',
  blocked: false,
};

/**
 * Whether and how the shopper authenticates, by the card and what the merchant asked: `any` authenticates every
 * card that supports it, `automatic` only when the issuer requires it. Without a request (null: the shopper is not
 * there), a card that requires authentication is declined `authentication_required`.
 */
export function decideAuthentication(card: TestCard, given: AcquirerThreeDSecureRequest | null): Authentication {
  // A merchant that would rather decline than have the shopper act (Stripe's error_on_requires_action) gets what a
  // challenge would need: authentication_required.
  if (given?.no_challenge === true) {
    const { no_challenge: _ignored, ...asked } = given;
    const decided = decideAuthentication(card, asked);
    return decided.kind === 'challenge' ? { kind: 'refused', decline: authenticationRequired } : decided;
  }
  const support = threeDSecureSupportOf(card);
  // Off session (the shopper is not there): a card set up for later payments is charged without a challenge, as
  // Stripe's 4000002500003155 is; anything that would need the shopper is declined authentication_required.
  if (given?.off_session === true) {
    if (support === 'required_unless_set_up' && given.card_set_up) return { kind: 'none' };
    return decideAuthentication(card, null);
  }
  const request = given;
  const asked = request?.request === 'any' || request?.request === 'challenge';
  // `challenge`: the merchant asks the issuer for a challenge (EMV 3DS "challenge requested"); a card that can
  // authenticate gets one, even where it would otherwise pass without.
  const challengeAsked = request?.request === 'challenge';
  switch (support) {
    case 'not_supported':
      return { kind: 'none' };
    case 'optional':
      if (challengeAsked) return { kind: 'challenge' };
      return asked ? { kind: 'frictionless', result: authenticationResult(card.brand, 'Y', 'frictionless') } : { kind: 'none' };
    case 'optional_error':
      // The ACS could not authenticate (transStatus U): no liability shift, and the payment goes on without it.
      return asked ? { kind: 'frictionless', result: authenticationResult(card.brand, 'U', 'frictionless') } : { kind: 'none' };
    case 'required_unless_set_up':
      if (request === null) return { kind: 'refused', decline: authenticationRequired };
      if (request.card_set_up && !challengeAsked) {
        return asked ? { kind: 'frictionless', result: authenticationResult(card.brand, 'Y', 'frictionless') } : { kind: 'none' };
      }
      return { kind: 'challenge' };
    case 'required':
      return request === null ? { kind: 'refused', decline: authenticationRequired } : { kind: 'challenge' };
    case 'required_lookup_error':
      return { kind: 'refused', decline: request === null ? authenticationRequired : lookupFailed };
    default:
      return assertNever(support, '3-D Secure support');
  }
}

/** The challenge request (CReq) the 3DS server hands the shopper's browser for the ACS, base64url JSON. */
export function challengeRequest(threeDSServerTransId: string, acsTransId: string): string {
  const creq = {
    threeDSServerTransID: threeDSServerTransId,
    acsTransID: acsTransId,
    messageVersion,
    challengeWindowSize: '05',
    messageType: 'CReq',
  };
  return Buffer.from(JSON.stringify(creq), 'utf8').toString('base64url');
}

/** The ACS transaction a CReq names, or undefined if it is not a well-formed CReq. */
export function acsTransIdOfChallengeRequest(creq: string): string | undefined {
  if (creq.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(creq)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(creq, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { acsTransID, messageType } = parsed as Record<string, unknown>;
  return messageType === 'CReq' && typeof acsTransID === 'string' ? acsTransID : undefined;
}

/** Only an absolute http(s) URL can be where the browser returns to (never `javascript:` or a relative path). */
export function validReturnUrl(value: string): boolean {
  if (value.length > 2048) return false;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/** What the ACS page shows of a challenge; the code and form token only while the shopper may answer. */
export interface ChallengeView {
  acsTransId: string;
  /** `open`: waiting for the shopper; `expired`: too late to answer; `finished`: answered, or abandoned. */
  state: 'open' | 'expired' | 'finished';
  merchantReference: string;
  /** In the currency's ISO 4217 minor unit, as on the acquirer's wire. */
  amount: number;
  currency: string;
  last4: string;
  code: string | null;
  formToken: string | null;
  attemptsLeft: number;
  expiresAt: Date;
  /** The origin of the URL the shopper returns to, which the page's forms may lead to. */
  returnOrigin: string;
}

export type ChallengeAnswer =
  /** The authentication ended (authenticated or failed) and the payment with it: back to the merchant. */
  | { kind: 'finished'; returnUrl: string }
  /** A wrong code, with tries left: the page again. */
  | { kind: 'wrong_code'; view: ChallengeView }
  /** Nothing changed: no such challenge, a bad form token, or too late. */
  | { kind: 'refused'; httpStatus: 403 | 404 | 409 | 410; message: string };

/** What the page shows of a payment's challenge; undefined for a payment that never had one. */
export function challengeViewOf(row: Selectable<SandboxCardPaymentsTable>, nowMs: number): ChallengeView | undefined {
  if (row.acs_trans_id === null || row.acs_expires_at === null || row.acs_return_url === null) return undefined;
  const state = row.status !== 'requires_action' ? 'finished' : nowMs >= row.acs_expires_at.getTime() ? 'expired' : 'open';
  return {
    acsTransId: row.acs_trans_id,
    state,
    merchantReference: row.merchant_reference,
    amount: Number(row.amount),
    currency: row.currency,
    last4: row.test_card,
    code: state === 'open' ? row.acs_code : null,
    formToken: state === 'open' ? row.acs_form_token : null,
    attemptsLeft: Math.max(0, challengeCodeAttemptsMax - row.acs_attempts),
    expiresAt: row.acs_expires_at,
    returnOrigin: new URL(row.acs_return_url).origin,
  };
}

/** Compares secrets in constant time. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
