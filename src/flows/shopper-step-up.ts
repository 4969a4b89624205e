import { createHmac, randomInt } from 'node:crypto';
import { newId } from '../platform/random.ts';
import { sameSecretText } from '../platform/secret.ts';
import { limits } from '../limits.ts';
import { amountInUsd } from '../risk/usd-rates.ts';
import type { CheckoutSessionRow, PaymentIntentRow, ShopperStepUpMethod, ShopperStepUpRow, ShopperStepUpsTable } from '../store/database.ts';
import type { Insertable } from 'kysely';
import { systemContext } from './checkout-sessions.ts';
import type { Services, Tx } from './context.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

/**
 * Step-up confirmation on the hosted checkout by a one-time code sent by SMS or email: six digits, valid five
 * minutes, single use, five tries, at most five codes per phone number or address an hour (and one every 30
 * seconds). The proof is bound to the session's PaymentIntent, its amount and currency: it confirms this payment
 * and no other, and not this one once its amount changed. Codes are kept only as an HMAC under a key derived from
 * the instance secret. Every send, success and failure is in the audit log. A verified code also lets the shopper
 * set a payment password or register a passkey for that phone number or address (shopper-credentials.ts).
 */
export const stepUpLimits = {
  codeTtlMs: 5 * 60_000, attemptsMax: 5, sendsPerHourMax: 5, resendAfterMs: 30_000, proofTtlMs: 15 * 60_000,
  /** Codes one page session may send, whatever the destinations: a page is not a free SMS gateway. */
  sendsPerSessionMax: 5,
  /** How long after a verified code the shopper may still enrol a payment password or a passkey with it. */
  enrolmentTtlMs: 10 * 60_000,
} as const;

export type StepUpError =
  | 'invalid_phone' | 'too_many_codes' | 'wait_before_resend' | 'no_code' | 'expired' | 'locked' | 'wrong_code'
  | 'password_format' | 'password_weak' | 'password_wrong' | 'password_locked'
  | 'passkey_unavailable' | 'passkey_failed' | 'payment_changed' | 'not_verified' | 'not_on_file' | 'not_on_file_locked';

export class StepUpRefused extends Error {
  readonly reason: StepUpError;
  readonly remaining: number | undefined;
  constructor(reason: StepUpError, remaining?: number) {
    super(reason);
    this.reason = reason;
    this.remaining = remaining;
  }
}

function codeHash(services: Services, stepUpId: string, code: string): string {
  return createHmac('sha256', services.checkoutKey.reveal()).update(`step-up ${stepUpId} ${code}`).digest('base64url');
}

/** A phone number as digits with an optional leading +, 8 to 15 digits (E.164's bounds); else undefined. */
export function normalizePhone(raw: string): string | undefined {
  const compact = raw.replace(/[\s().-]/g, '');
  return /^\+?[1-9]\d{7,14}$/.test(compact) ? compact : undefined;
}

export interface Destination {
  channel: 'sms' | 'email';
  address: string;
}

/** Where a code can go: a mobile phone number, or an email address (lower-cased); else undefined. */
export function normalizeDestination(raw: string): Destination | undefined {
  const trimmed = raw.trim();
  if (trimmed.includes('@')) {
    const address = trimmed.toLowerCase();
    return address.length <= 254 && /^[a-z0-9._%+-]{1,64}@[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(address) ? { channel: 'email', address } : undefined;
  }
  const phone = normalizePhone(trimmed);
  return phone === undefined ? undefined : { channel: 'sms', address: phone };
}

/** The payment a step-up is about: the session's PaymentIntent as it is now. */
export async function paymentOf(reader: Tx | Services['db'], session: CheckoutSessionRow): Promise<PaymentIntentRow> {
  return reader.selectFrom('payment_intents').selectAll().where('id', '=', session.payment_intent_id).executeTakeFirstOrThrow();
}

/**
 * The identities the merchant gave for this payment, with its secret key: a Checkout Session's `customer_email`,
 * and the PaymentIntent's customer's email and phone (unless the session made that customer of its shopper),
 * normalized as destinations are. (Not the PaymentIntent's `receipt_email`: a shopper's page confirming with the
 * client secret may set that one, so it proves nothing.) A
 * step-up proves the cardholder only if it reaches one of them: when the merchant gave any, a code goes to, and a
 * password or passkey is accepted for, only those (a stranger's own phone proves nothing about the card). With none
 * given, any identity the shopper proves is taken, as decision 0016 says.
 *
 * Another identity is refused (`not_on_file`) and counted on the page session, and audited; the refusal that reaches
 * `limits.stepUpIdentityRefusalsMax` closes the page's step-up (`not_on_file_locked`, see `lockSession`), so that the
 * holder of a page link cannot test guesses of the address on file (decision 0041). The refusal is returned, not
 * thrown: the caller commits the count, then throws it. The caller holds the session's row lock (`lockSession`), so
 * that concurrent refusals are counted one by one.
 */
export async function checkIdentityOnFile(tx: Tx, session: CheckoutSessionRow, intent: PaymentIntentRow, identity: string, attempt: IdentityAttempt): Promise<StepUpRefused | undefined> {
  // A page made for an API PaymentIntent (`/pay/intent`) copies its receipt email: not the merchant's word either.
  const given: Array<string | null> = session.kind === 'payment_intent' ? [] : [session.customer_email];
  // A session made with `customer_creation=always` has no customer from the merchant (the two are exclusive, and
  // its PaymentIntent's customer cannot be changed through the API): the one it made holds what the shopper typed,
  // no word of the merchant's either (decision 0058).
  if (intent.customer_id !== null && session.customer_creation !== 'always') {
    const customer = await tx.selectFrom('customers').select(['email', 'phone']).where('id', '=', intent.customer_id).executeTakeFirst();
    given.push(customer?.email ?? null, customer?.phone ?? null);
  }
  const known = new Set(given.flatMap((value) => {
    const destination = value === null ? undefined : normalizeDestination(value);
    return destination === undefined ? [] : [destination.address];
  }));
  if (known.size === 0 || known.has(identity)) return undefined;
  const counted = await tx.updateTable('checkout_sessions').set((eb) => ({ step_up_identity_refusals: eb('step_up_identity_refusals', '+', 1) }))
    .where('id', '=', session.id).returning('step_up_identity_refusals').executeTakeFirstOrThrow();
  const refusals = counted.step_up_identity_refusals;
  const locked = refusals >= limits.stepUpIdentityRefusalsMax;
  await auditStepUp(tx, session, 'step_up.not_on_file', attempt.objectId ?? session.id, {
    method: attempt.method, identity: maskedIdentity(identity), refusals, result: locked ? 'locked' : 'failed',
  }, attempt.origin, attempt.now);
  return locked ? new StepUpRefused('not_on_file_locked') : new StepUpRefused('not_on_file', limits.stepUpIdentityRefusalsMax - refusals);
}

/** What a step-up names an identity for, for the audit record of a refusal: its method, and the step-up row it took, if any. */
export interface IdentityAttempt {
  method: ShopperStepUpMethod;
  objectId?: string;
  origin: string;
  now: Date;
}

/** Whether this payment needs the shopper's step-up: at or above the merchant's amount in dollars. */
export async function stepUpRequired(services: Services, session: CheckoutSessionRow, intent: PaymentIntentRow): Promise<boolean> {
  const merchant = await services.db.selectFrom('merchant_risk_settings').select('step_up_above_usd')
    .where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode).executeTakeFirst();
  if (merchant === undefined || merchant.step_up_above_usd === null) return false;
  const usd = amountInUsd(services.risk.options.usdRates, intent.amount, intent.currency);
  // A currency without a dollar rate cannot be compared: asked for, to be safe.
  return usd === undefined || usd >= Number(merchant.step_up_above_usd);
}

/**
 * A verified proof for this payment as it is now (its PaymentIntent, amount and currency), still fresh; undefined
 * if the shopper has none.
 */
export async function verifiedStepUp(reader: Tx | Services['db'], session: CheckoutSessionRow, intent: PaymentIntentRow, nowMs: number): Promise<{ id: string; method: ShopperStepUpMethod } | undefined> {
  const row = await reader.selectFrom('shopper_step_ups').select(['id', 'method']).where('checkout_session_id', '=', session.id)
    .where('verified_at', 'is not', null).where('verified_at', '>', new Date(nowMs - stepUpLimits.proofTtlMs))
    .where('method', '!=', 'passkey_registration')
    .where('payment_intent_id', '=', intent.id).where('amount', '=', intent.amount).where('currency', '=', intent.currency)
    .orderBy('verified_at', 'desc').limit(1).executeTakeFirst();
  return row === undefined || row.method === 'passkey_registration' ? undefined : { id: row.id, method: row.method };
}

export async function auditStepUp(tx: Tx, session: CheckoutSessionRow, action: string, objectId: string, details: Record<string, unknown>, origin: string, now: Date): Promise<void> {
  const ctx = systemContext(session, 'checkout', true, origin);
  await recordChange(tx, requestTrail(ctx), { merchantId: session.merchant_id, livemode: session.livemode }, { action, objectType: 'step_up', objectId, details }, [], now);
}

/** The last four characters of a phone number or the first of an email address: enough for the audit log. */
export function maskedIdentity(identity: string): string {
  return identity.includes('@') ? `${identity.slice(0, 1)}…@${identity.split('@')[1] ?? ''}` : `…${identity.slice(-4)}`;
}

/**
 * Takes the session's row lock in `tx`: every step-up of a session is serialized, so that concurrent tries cannot
 * pass a bound together. Refuses (`not_on_file_locked`, nothing written) once the page named too many identities the
 * merchant did not give: every step-up of the page is closed then, the right identity's too (decision 0041).
 */
export async function lockSession(tx: Tx, session: CheckoutSessionRow): Promise<void> {
  const row = await tx.selectFrom('checkout_sessions').select('step_up_identity_refusals').where('id', '=', session.id).forUpdate().executeTakeFirstOrThrow();
  if (row.step_up_identity_refusals >= limits.stepUpIdentityRefusalsMax) throw new StepUpRefused('not_on_file_locked');
}

export function stepUpRow(session: CheckoutSessionRow, intent: PaymentIntentRow, fields: Pick<Insertable<ShopperStepUpsTable>, 'id' | 'method' | 'destination' | 'code_hash' | 'created_at' | 'expires_at'>): Insertable<ShopperStepUpsTable> {
  return {
    ...fields, merchant_id: session.merchant_id, livemode: session.livemode, checkout_session_id: session.id, verified_at: null,
    amount: intent.amount, currency: intent.currency, payment_intent_id: intent.id,
  };
}

/** Why a session's latest code cannot be tried any more (none, used, five wrong tries, expired); undefined if it can. */
export function codeRefusal(latest: Pick<ShopperStepUpRow, 'verified_at' | 'attempts' | 'expires_at'> | undefined, nowMs: number): StepUpRefused | undefined {
  if (latest === undefined || latest.verified_at !== null) return new StepUpRefused('no_code');
  if (latest.attempts >= stepUpLimits.attemptsMax) return new StepUpRefused('locked');
  if (latest.expires_at.getTime() <= nowMs) return new StepUpRefused('expired');
  return undefined;
}

/** Sends a new code to the phone or address; in test mode the sandbox outbox shows it. */
export async function sendStepUpCode(services: Services, session: CheckoutSessionRow, rawDestination: string, origin: string): Promise<{ id: string; expiresAt: Date; channel: 'sms' | 'email' }> {
  const destination = normalizeDestination(rawDestination);
  if (destination === undefined) throw new StepUpRefused('invalid_phone');
  const now = new Date(services.clock.nowMs());
  const method = destination.channel === 'sms' ? 'sms_code' : 'email_code';
  const outcome = await inTransaction(services.db, async (tx) => {
    // Serialized per merchant, so that concurrent sends to one destination cannot pass the hourly bound together;
    // then per session (the merchant's lock first, always), so that refusals of identities are counted one by one.
    await tx.selectFrom('merchants').select('id').where('id', '=', session.merchant_id).forUpdate().executeTakeFirstOrThrow();
    await lockSession(tx, session);
    const recent = await tx.selectFrom('shopper_step_ups').select('created_at').where('destination', '=', destination.address)
      .where('method', 'in', ['sms_code', 'email_code']).where('created_at', '>', new Date(now.getTime() - 3_600_000)).orderBy('created_at', 'desc').execute();
    if (recent.length >= stepUpLimits.sendsPerHourMax) throw new StepUpRefused('too_many_codes');
    const fromSession = await tx.selectFrom('shopper_step_ups').select((eb) => eb.fn.countAll<string>().as('n')).where('checkout_session_id', '=', session.id)
      .where('method', 'in', ['sms_code', 'email_code']).executeTakeFirstOrThrow();
    if (Number(fromSession.n) >= stepUpLimits.sendsPerSessionMax) throw new StepUpRefused('too_many_codes');
    const [latest] = recent;
    if (latest !== undefined && now.getTime() - latest.created_at.getTime() < stepUpLimits.resendAfterMs) throw new StepUpRefused('wait_before_resend');
    const intent = await paymentOf(tx, session);
    const refused = await checkIdentityOnFile(tx, session, intent, destination.address, { method, origin, now });
    if (refused !== undefined) return { refused };
    const id = newId('stepup');
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const expiresAt = new Date(now.getTime() + stepUpLimits.codeTtlMs);
    await tx.insertInto('shopper_step_ups').values(stepUpRow(session, intent, {
      id, method, destination: destination.address,
      code_hash: codeHash(services, id, code), created_at: now, expires_at: expiresAt,
    })).execute();
    await tx.insertInto('shopper_messages').values({
      id: newId('msg'), merchant_id: session.merchant_id, livemode: session.livemode, created_at: now, channel: destination.channel, recipient: destination.address,
      subject: 'Verification code', body: `Your code to confirm this payment is ${code}. It expires in 5 minutes. Never share it.`, reference: id, expires_at: expiresAt,
    }).execute();
    await auditStepUp(tx, session, 'step_up.send', id, { method, destination: maskedIdentity(destination.address) }, origin, now);
    return { sent: { id, expiresAt, channel: destination.channel } };
  });
  // A refused identity is thrown after the commit, so that it is counted.
  if ('refused' in outcome) throw outcome.refused;
  return outcome.sent;
}

/**
 * Checks a code against the session's latest one: right once, within five minutes and five tries. `andThen` runs
 * in the same transaction when the code is right, with the phone number or address it went to (setting a payment
 * password with the code, in shopper-credentials.ts).
 */
export async function verifyStepUpCode(services: Services, session: CheckoutSessionRow, code: string, origin: string, andThen?: (tx: Tx, identity: string, now: Date) => Promise<void>): Promise<void> {
  const now = new Date(services.clock.nowMs());
  const outcome = await inTransaction(services.db, async (tx) => {
    await lockSession(tx, session);
    const latest = await tx.selectFrom('shopper_step_ups').selectAll().where('checkout_session_id', '=', session.id)
      .where('method', 'in', ['sms_code', 'email_code']).orderBy('created_at', 'desc').limit(1).forUpdate().executeTakeFirst();
    const dead = codeRefusal(latest, now.getTime());
    if (dead !== undefined || latest === undefined) return { refused: dead ?? new StepUpRefused('no_code') };
    // The payment changed since the code was sent: the code would prove nothing about it. Not counted as a try.
    const intent = await paymentOf(tx, session);
    if (latest.payment_intent_id !== intent.id || latest.amount !== intent.amount || latest.currency !== intent.currency) return { refused: new StepUpRefused('payment_changed') };
    if (sameSecretText(codeHash(services, latest.id, /^\d{6}$/.test(code) ? code : 'invalid'), latest.code_hash)) {
      await tx.updateTable('shopper_step_ups').set({ verified_at: now, attempts: latest.attempts + 1 }).where('id', '=', latest.id).execute();
      await auditStepUp(tx, session, 'step_up.verify', latest.id, { method: latest.method, result: 'passed' }, origin, now);
      if (andThen !== undefined) await andThen(tx, latest.destination, now);
      return { refused: undefined };
    }
    const attempts = latest.attempts + 1;
    await tx.updateTable('shopper_step_ups').set({ attempts }).where('id', '=', latest.id).execute();
    await auditStepUp(tx, session, 'step_up.verify', latest.id, { method: latest.method, result: attempts >= stepUpLimits.attemptsMax ? 'locked' : 'failed' }, origin, now);
    return { refused: new StepUpRefused(attempts >= stepUpLimits.attemptsMax ? 'locked' : 'wrong_code', stepUpLimits.attemptsMax - attempts) };
  });
  // Refusals are thrown after the commit, so that the failed try is counted.
  if (outcome.refused !== undefined) throw outcome.refused;
}

/** The phone number or address this session's shopper proved with a code in the last ten minutes, if any. */
export async function recentlyVerifiedIdentity(reader: Tx | Services['db'], session: CheckoutSessionRow, nowMs: number): Promise<string | undefined> {
  const row = await reader.selectFrom('shopper_step_ups').select('destination').where('checkout_session_id', '=', session.id)
    .where('method', 'in', ['sms_code', 'email_code']).where('verified_at', '>', new Date(nowMs - stepUpLimits.enrolmentTtlMs))
    .orderBy('verified_at', 'desc').limit(1).executeTakeFirst();
  return row?.destination;
}
