import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { newId } from '../platform/random.ts';
import { amountInUsd } from '../risk/usd-rates.ts';
import type { CheckoutSessionRow } from '../store/database.ts';
import { systemContext } from './checkout-sessions.ts';
import type { Services, Tx } from './context.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

/**
 * Step-up confirmation on the hosted checkout by a one-time code sent by SMS: six digits, valid five minutes,
 * single use, five tries, at most five codes per phone number an hour (and one every 30 seconds). The proof is
 * bound to the session, its amount and currency: it confirms this payment and no other. Codes are kept only as
 * an HMAC under a key derived from the instance secret. Every send, success and failure is in the audit log.
 */
export const stepUpLimits = { codeTtlMs: 5 * 60_000, attemptsMax: 5, sendsPerHourMax: 5, resendAfterMs: 30_000, proofTtlMs: 15 * 60_000 } as const;

export type StepUpError = 'invalid_phone' | 'too_many_codes' | 'wait_before_resend' | 'no_code' | 'expired' | 'locked' | 'wrong_code';

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

/** Whether this session's payment needs the shopper's step-up: at or above the merchant's amount in dollars. */
export async function stepUpRequired(services: Services, session: CheckoutSessionRow): Promise<boolean> {
  const merchant = await services.db.selectFrom('merchants').select('step_up_above_usd').where('id', '=', session.merchant_id).executeTakeFirstOrThrow();
  if (merchant.step_up_above_usd === null) return false;
  const usd = amountInUsd(services.risk.options.usdRates, session.amount_total, session.currency);
  // A currency without a dollar rate cannot be compared: asked for, to be safe.
  return usd === undefined || usd >= Number(merchant.step_up_above_usd);
}

/** A verified proof for this session's payment, still fresh; undefined if the shopper has none. */
export async function verifiedStepUp(reader: Tx | Services['db'], session: CheckoutSessionRow, nowMs: number): Promise<{ id: string; method: 'sms_code' } | undefined> {
  const row = await reader.selectFrom('shopper_step_ups').select(['id', 'method']).where('checkout_session_id', '=', session.id)
    .where('verified_at', 'is not', null).where('verified_at', '>', new Date(nowMs - stepUpLimits.proofTtlMs))
    .where('amount', '=', session.amount_total).where('currency', '=', session.currency)
    .orderBy('verified_at', 'desc').limit(1).executeTakeFirst();
  return row;
}

async function audit(tx: Tx, session: CheckoutSessionRow, action: string, objectId: string, details: Record<string, unknown>, origin: string, now: Date): Promise<void> {
  const ctx = systemContext(session, 'checkout', true, origin);
  await recordChange(tx, requestTrail(ctx), { merchantId: session.merchant_id, livemode: session.livemode }, { action, objectType: 'step_up', objectId, details }, [], now);
}

/** Sends a new code to the phone; in test mode the sandbox outbox shows it. */
export async function sendStepUpCode(services: Services, session: CheckoutSessionRow, rawPhone: string, origin: string): Promise<{ id: string; expiresAt: Date }> {
  const phone = normalizePhone(rawPhone);
  if (phone === undefined) throw new StepUpRefused('invalid_phone');
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    // Serialized per phone number, so that concurrent sends cannot pass the hourly bound together.
    await tx.selectFrom('merchants').select('id').where('id', '=', session.merchant_id).forUpdate().executeTakeFirstOrThrow();
    const recent = await tx.selectFrom('shopper_step_ups').select('created_at').where('destination', '=', phone)
      .where('created_at', '>', new Date(now.getTime() - 3_600_000)).orderBy('created_at', 'desc').execute();
    if (recent.length >= stepUpLimits.sendsPerHourMax) throw new StepUpRefused('too_many_codes');
    const [latest] = recent;
    if (latest !== undefined && now.getTime() - latest.created_at.getTime() < stepUpLimits.resendAfterMs) throw new StepUpRefused('wait_before_resend');
    const id = newId('stepup');
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const expiresAt = new Date(now.getTime() + stepUpLimits.codeTtlMs);
    await tx.insertInto('shopper_step_ups').values({
      id, merchant_id: session.merchant_id, livemode: session.livemode, checkout_session_id: session.id, method: 'sms_code', destination: phone,
      code_hash: codeHash(services, id, code), created_at: now, expires_at: expiresAt, verified_at: null, amount: session.amount_total, currency: session.currency,
    }).execute();
    await tx.insertInto('shopper_messages').values({
      id: newId('msg'), merchant_id: session.merchant_id, livemode: session.livemode, created_at: now, channel: 'sms', recipient: phone,
      subject: 'Verification code', body: `Your code to confirm this payment is ${code}. It expires in 5 minutes. Never share it.`, reference: id,
    }).execute();
    await audit(tx, session, 'step_up.send', id, { method: 'sms_code', destination: `…${phone.slice(-4)}` }, origin, now);
    return { id, expiresAt };
  });
}

/** Checks a code against the session's latest one: right once, within five minutes and five tries. */
export async function verifyStepUpCode(services: Services, session: CheckoutSessionRow, code: string, origin: string): Promise<void> {
  const now = new Date(services.clock.nowMs());
  const outcome = await inTransaction(services.db, async (tx) => {
    const latest = await tx.selectFrom('shopper_step_ups').selectAll().where('checkout_session_id', '=', session.id)
      .orderBy('created_at', 'desc').limit(1).forUpdate().executeTakeFirst();
    if (latest === undefined || latest.verified_at !== null) return { refused: new StepUpRefused('no_code') };
    if (latest.attempts >= stepUpLimits.attemptsMax) return { refused: new StepUpRefused('locked') };
    if (latest.expires_at.getTime() <= now.getTime()) return { refused: new StepUpRefused('expired') };
    const given = Buffer.from(codeHash(services, latest.id, /^\d{6}$/.test(code) ? code : 'invalid'));
    const expected = Buffer.from(latest.code_hash);
    if (given.length === expected.length && timingSafeEqual(given, expected)) {
      await tx.updateTable('shopper_step_ups').set({ verified_at: now, attempts: latest.attempts + 1 }).where('id', '=', latest.id).execute();
      await audit(tx, session, 'step_up.verify', latest.id, { method: 'sms_code', result: 'passed' }, origin, now);
      return { refused: undefined };
    }
    const attempts = latest.attempts + 1;
    await tx.updateTable('shopper_step_ups').set({ attempts }).where('id', '=', latest.id).execute();
    await audit(tx, session, 'step_up.verify', latest.id, { method: 'sms_code', result: attempts >= stepUpLimits.attemptsMax ? 'locked' : 'failed' }, origin, now);
    return { refused: new StepUpRefused(attempts >= stepUpLimits.attemptsMax ? 'locked' : 'wrong_code', stepUpLimits.attemptsMax - attempts) };
  });
  // Refusals are thrown after the commit, so that the failed try is counted.
  if (outcome.refused !== undefined) throw outcome.refused;
}
