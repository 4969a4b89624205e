import { createHash, createHmac, randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type AuthenticatorTransport, type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON, type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { newId } from '../platform/random.ts';
import type { CheckoutSessionRow, PaymentIntentRow, ShopperCredentialRow } from '../store/database.ts';
import type { Services, Tx } from './context.ts';
import {
  auditStepUp, checkIdentityOnFile, codeRefusal, lockSession, maskedIdentity, normalizeDestination, paymentOf, recentlyVerifiedIdentity, stepUpLimits, StepUpRefused, stepUpRow, verifyStepUpCode,
} from './shopper-step-up.ts';
import { inTransaction } from './transaction.ts';

/**
 * The shopper's own step-up credentials on the hosted checkout, for one merchant and one identity (a phone number
 * or email address proved with a one-time code):
 *
 * - a **payment password**: six digits, set or reset only right after a code to that identity was verified; kept
 *   as argon2id over an HMAC under the instance key (a copy of the table alone cannot be tried against the million
 *   possible passwords); five wrong tries lock it, counted on the password and on the page session both, and the
 *   answer never says whether the identity or the password was wrong;
 * - a **passkey**: a WebAuthn credential, registered after a verified code, used with user verification required
 *   (fingerprint, face, PIN). Each step-up challenge is SHA-256 of the PaymentIntent's id, amount, currency, the
 *   payee and a random part: the authenticator signs this payment and no other, and the server recomputes it from
 *   the PaymentIntent as it is when the answer comes, so an answer for an amount since changed is refused. The
 *   challenge is answered once (right or wrong), so an assertion cannot be replayed.
 *
 * The relying party is the checkout page's origin; its host name is the RP id (an IP address cannot be one: on
 * such an origin passkeys are not offered).
 */
export const paymentPasswordTriesMax = 5;

export interface CheckoutRelyingParty {
  origin: string;
  id: string;
}

/** The relying party for the checkout page's origin, or undefined when its host is an IP address. */
export function checkoutRelyingParty(pageOrigin: string): CheckoutRelyingParty | undefined {
  const host = new URL(pageOrigin).hostname;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host) || host.startsWith('[')) return undefined;
  return { origin: pageOrigin, id: host };
}

// -- Payment password ------------------------------------------------------------------------------------------

/** Refuses what is not six digits, or is six digits anyone would try first (one digit repeated, a run). */
export function checkPaymentPassword(password: string): void {
  if (!/^\d{6}$/.test(password)) throw new StepUpRefused('password_format');
  const digits = [...password].map(Number);
  const steps = new Set(digits.slice(1).map((digit, index) => (digit - (digits[index] ?? 0) + 10) % 10));
  const repeatedPair = password.slice(0, 2).repeat(3) === password;
  const repeatedTriple = password.slice(0, 3).repeat(2) === password;
  if ((steps.size === 1 && (steps.has(0) || steps.has(1) || steps.has(9))) || repeatedPair || repeatedTriple) throw new StepUpRefused('password_weak');
}

function peppered(services: Services, identity: string, password: string): string {
  return createHmac('sha256', services.checkoutKey.reveal()).update(`payment password ${identity} ${password}`).digest('base64url');
}

/** argon2id (the library's defaults: m=19456 KiB, t=2, p=1) of the password's HMAC under the instance key. */
export function paymentPasswordHash(services: Services, identity: string, password: string): Promise<string> {
  return hash(peppered(services, identity, password));
}

let decoy: Promise<string> | undefined;

async function passwordMatches(services: Services, stored: string | undefined, identity: string, password: string): Promise<boolean> {
  // An identity without a password is checked against a decoy, so that the time taken does not tell.
  decoy ??= hash('a decoy: no payment password is this');
  try {
    const matches = await verify(stored ?? (await decoy), peppered(services, identity, password));
    return stored !== undefined && matches;
  } catch {
    return false;
  }
}

async function storePaymentPassword(tx: Tx, session: CheckoutSessionRow, identity: string, passwordHash: string, origin: string, now: Date): Promise<void> {
  const existing = await tx.selectFrom('shopper_credentials').select('id').where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode)
    .where('identity', '=', identity).where('kind', '=', 'payment_password').executeTakeFirst();
  // An upsert: two sessions setting the first password of one identity at once leave one row, the later hash.
  const row = await tx.insertInto('shopper_credentials').values({
    id: newId('spw'), merchant_id: session.merchant_id, livemode: session.livemode, identity, kind: 'payment_password', password_hash: passwordHash,
    credential_id: null, public_key: null, counter: null, transports: null, created_at: now, last_used_at: null,
  }).onConflict((oc) => oc.columns(['merchant_id', 'livemode', 'identity']).where('kind', '=', 'payment_password').doUpdateSet({ password_hash: passwordHash }))
    .returning('id').executeTakeFirstOrThrow();
  // A code proved the identity: its wrong tries are forgiven and the lock lifted.
  await tx.deleteFrom('shopper_password_tries').where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode).where('identity', '=', identity).execute();
  await auditStepUp(tx, session, existing === undefined ? 'step_up.password_set' : 'step_up.password_reset', row.id, { identity: maskedIdentity(identity) }, origin, now);
}

/**
 * A one-time code, and with it a new payment password for the identity the code went to. The password is checked
 * against the policy, and the code for being there to try, before anything is hashed or counted: a refused
 * password spends no try of the code.
 */
export async function verifyCodeAndSetPassword(services: Services, session: CheckoutSessionRow, code: string, newPassword: string, origin: string): Promise<void> {
  checkPaymentPassword(newPassword);
  const latest = await services.db.selectFrom('shopper_step_ups').selectAll().where('checkout_session_id', '=', session.id)
    .where('method', 'in', ['sms_code', 'email_code']).orderBy('created_at', 'desc').limit(1).executeTakeFirst();
  const dead = codeRefusal(latest, services.clock.nowMs());
  if (dead !== undefined || latest === undefined) throw dead ?? new StepUpRefused('no_code');
  const passwordHash = await paymentPasswordHash(services, latest.destination, newPassword);
  await verifyStepUpCode(services, session, code, origin, async (tx, identity, now) => {
    // Another code sent since: the hash was made for another identity. Refused, and the code's verification undone.
    if (identity !== latest.destination) throw new StepUpRefused('no_code');
    await storePaymentPassword(tx, session, identity, passwordHash, origin, now);
  });
}

/**
 * A payment password try for this session's payment. Right: the payment is stepped up. Wrong: one try fewer for
 * the session and for the identity, whether or not it has a password (so that neither the words nor the count
 * tell); the fifth wrong try locks, and then even the right password is refused until a code sets a new one.
 */
export async function verifyPaymentPassword(services: Services, session: CheckoutSessionRow, rawIdentity: string, password: string, origin: string): Promise<void> {
  const destination = normalizeDestination(rawIdentity);
  if (destination === undefined) throw new StepUpRefused('invalid_phone');
  // Not a password at all (an empty field): said so, and not counted.
  if (!/^\d{6}$/.test(password)) throw new StepUpRefused('password_format');
  const identity = destination.address;
  const now = new Date(services.clock.nowMs());
  const outcome = await inTransaction(services.db, async (tx) => {
    await lockSession(tx, session);
    const intent = await paymentOf(tx, session);
    // Refused before a try is counted: a password for an identity the merchant did not give proves nothing here.
    // The refusal is counted on the page instead (decision 0041), and committed.
    const notOnFile = await checkIdentityOnFile(tx, session, intent, identity, { method: 'payment_password', origin, now });
    if (notOnFile !== undefined) return { refused: notOnFile };
    let tries = await tx.selectFrom('shopper_step_ups').selectAll().where('checkout_session_id', '=', session.id).where('method', '=', 'payment_password')
      .orderBy('created_at', 'desc').limit(1).executeTakeFirst();
    if (tries === undefined) {
      tries = await tx.insertInto('shopper_step_ups').values(stepUpRow(session, intent, {
        id: newId('stepup'), method: 'payment_password', destination: identity, code_hash: '', created_at: now, expires_at: session.expires_at,
      })).returningAll().executeTakeFirstOrThrow();
    }
    // The identity's count, taken first (made if new) and locked: tries from every session are counted one by one.
    await tx.insertInto('shopper_password_tries').values({ merchant_id: session.merchant_id, livemode: session.livemode, identity, failed_attempts: 0, locked_at: null, updated_at: now })
      .onConflict((oc) => oc.columns(['merchant_id', 'livemode', 'identity']).doNothing()).execute();
    const counted = await tx.selectFrom('shopper_password_tries').selectAll().where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode)
      .where('identity', '=', identity).forUpdate().executeTakeFirstOrThrow();
    const details = { method: 'payment_password', identity: maskedIdentity(identity) };
    if (tries.attempts >= paymentPasswordTriesMax || counted.locked_at !== null) {
      await auditStepUp(tx, session, 'step_up.verify', tries.id, { ...details, result: 'locked' }, origin, now);
      return { refused: new StepUpRefused('password_locked') };
    }
    const credential = await tx.selectFrom('shopper_credentials').selectAll().where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode)
      .where('identity', '=', identity).where('kind', '=', 'payment_password').executeTakeFirst();
    if (await passwordMatches(services, credential?.password_hash ?? undefined, identity, password) && credential !== undefined) {
      await tx.updateTable('shopper_step_ups').set({
        verified_at: now, destination: identity, amount: intent.amount, currency: intent.currency, payment_intent_id: intent.id,
      }).where('id', '=', tries.id).execute();
      await tx.updateTable('shopper_credentials').set({ last_used_at: now }).where('id', '=', credential.id).execute();
      await tx.updateTable('shopper_password_tries').set({ failed_attempts: 0, updated_at: now }).where('merchant_id', '=', session.merchant_id)
        .where('livemode', '=', session.livemode).where('identity', '=', identity).execute();
      await auditStepUp(tx, session, 'step_up.verify', tries.id, { ...details, result: 'passed' }, origin, now);
      return { refused: undefined };
    }
    const attempts = tries.attempts + 1;
    const failed = counted.failed_attempts + 1;
    const locked = attempts >= paymentPasswordTriesMax || failed >= paymentPasswordTriesMax;
    await tx.updateTable('shopper_step_ups').set({ attempts, destination: identity }).where('id', '=', tries.id).execute();
    await tx.updateTable('shopper_password_tries').set({ failed_attempts: failed, locked_at: failed >= paymentPasswordTriesMax ? now : null, updated_at: now })
      .where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode).where('identity', '=', identity).execute();
    await auditStepUp(tx, session, 'step_up.verify', tries.id, { ...details, result: locked ? 'locked' : 'failed' }, origin, now);
    return { refused: new StepUpRefused(locked ? 'password_locked' : 'password_wrong', paymentPasswordTriesMax - Math.max(attempts, failed)) };
  });
  if (outcome.refused !== undefined) throw outcome.refused;
}

// -- Passkeys --------------------------------------------------------------------------------------------------

const transportsOf = (row: ShopperCredentialRow) => (row.transports ?? []) as AuthenticatorTransport[];

/** The challenge a passkey signs for a payment: this PaymentIntent, amount, currency and payee, and a random part. */
export function paymentChallenge(intent: Pick<PaymentIntentRow, 'id' | 'amount' | 'currency' | 'merchant_id'>, nonce: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash('sha256').update(['coffer payment step-up v1', intent.id, intent.amount.toString(), intent.currency, intent.merchant_id, nonce].join('\n')).digest());
}

const base64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

async function passkeysOf(reader: Tx | Services['db'], session: CheckoutSessionRow, identity: string): Promise<ShopperCredentialRow[]> {
  return reader.selectFrom('shopper_credentials').selectAll().where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode)
    .where('identity', '=', identity).where('kind', '=', 'passkey').execute();
}

/** The WebAuthn user handle of an identity at a merchant: opaque, stable, not the phone number or address. */
function userHandle(services: Services, session: CheckoutSessionRow, identity: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHmac('sha256', services.checkoutKey.reveal()).update(`passkey user ${session.merchant_id} ${session.livemode} ${identity}`).digest().subarray(0, 16));
}

/** Options to register a passkey for the identity this session's shopper proved with a code in the last ten minutes. */
export async function passkeyRegistrationOptions(services: Services, session: CheckoutSessionRow, rp: CheckoutRelyingParty, origin: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const now = new Date(services.clock.nowMs());
  const identity = await recentlyVerifiedIdentity(services.db, session, now.getTime());
  if (identity === undefined) throw new StepUpRefused('not_verified');
  const existing = await passkeysOf(services.db, session, identity);
  const options = await generateRegistrationOptions({
    rpName: 'Coffer checkout', rpID: rp.id, userName: maskedIdentity(identity), userDisplayName: maskedIdentity(identity), userID: userHandle(services, session, identity),
    attestationType: 'none', timeout: stepUpLimits.codeTtlMs,
    excludeCredentials: existing.map((row) => ({ id: row.credential_id ?? '', transports: transportsOf(row) })),
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
  });
  await inTransaction(services.db, async (tx) => {
    await lockSession(tx, session);
    const intent = await paymentOf(tx, session);
    const id = newId('stepup');
    await tx.insertInto('shopper_step_ups').values(stepUpRow(session, intent, {
      id, method: 'passkey_registration', destination: identity, code_hash: options.challenge, created_at: now, expires_at: new Date(now.getTime() + stepUpLimits.codeTtlMs),
    })).execute();
    await auditStepUp(tx, session, 'step_up.passkey_options', id, { purpose: 'registration', identity: maskedIdentity(identity) }, origin, now);
  });
  return options;
}

/** The session's latest challenge of a kind, taken for good (answered once, right or wrong); undefined if none is live. */
async function takeChallenge(tx: Tx, session: CheckoutSessionRow, method: 'passkey' | 'passkey_registration', now: Date) {
  const row = await tx.selectFrom('shopper_step_ups').selectAll().where('checkout_session_id', '=', session.id).where('method', '=', method)
    .orderBy('created_at', 'desc').limit(1).forUpdate().executeTakeFirst();
  if (row === undefined || row.attempts > 0 || row.verified_at !== null) return undefined;
  await tx.updateTable('shopper_step_ups').set({ attempts: 1 }).where('id', '=', row.id).execute();
  return row.expires_at.getTime() > now.getTime() ? row : undefined;
}

export async function registerShopperPasskey(services: Services, session: CheckoutSessionRow, rp: CheckoutRelyingParty, response: RegistrationResponseJSON, origin: string): Promise<void> {
  const now = new Date(services.clock.nowMs());
  const outcome = await inTransaction(services.db, async (tx) => {
    await lockSession(tx, session);
    const challenge = await takeChallenge(tx, session, 'passkey_registration', now);
    const fail = async (reason: string) => {
      await auditStepUp(tx, session, 'step_up.passkey_register', challenge?.id ?? session.id, { result: 'failed', reason }, origin, now);
      return { refused: new StepUpRefused('passkey_failed') };
    };
    if (challenge === undefined) return fail('no_challenge');
    let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verification = await verifyRegistrationResponse({ response, expectedChallenge: challenge.code_hash, expectedOrigin: rp.origin, expectedRPID: rp.id, requireUserVerification: true });
    } catch (error) {
      return fail(error instanceof Error ? error.message.slice(0, 200) : 'unverifiable');
    }
    if (!verification.verified) return fail('not_verified');
    const credential = verification.registrationInfo.credential;
    const taken = await tx.selectFrom('shopper_credentials').select('id').where('merchant_id', '=', session.merchant_id).where('kind', '=', 'passkey')
      .where('credential_id', '=', credential.id).executeTakeFirst();
    if (taken !== undefined) return fail('credential_already_registered');
    const id = newId('spk');
    await tx.insertInto('shopper_credentials').values({
      id, merchant_id: session.merchant_id, livemode: session.livemode, identity: challenge.destination, kind: 'passkey', password_hash: null,
      credential_id: credential.id, public_key: Buffer.from(credential.publicKey), counter: BigInt(credential.counter),
      transports: JSON.stringify(credential.transports ?? []), created_at: now, last_used_at: null,
    }).execute();
    await tx.updateTable('shopper_step_ups').set({ verified_at: now }).where('id', '=', challenge.id).execute();
    await auditStepUp(tx, session, 'step_up.passkey_register', id, { result: 'passed', identity: maskedIdentity(challenge.destination) }, origin, now);
    return { refused: undefined };
  }).catch((error: unknown) => {
    // The same credential registered by another session at the same moment: the unique index had the last word.
    if ((error as { code?: unknown }).code === '23505') return { refused: new StepUpRefused('passkey_failed') };
    throw error;
  });
  if (outcome.refused !== undefined) throw outcome.refused;
}

/**
 * Options to confirm this payment with a passkey: a discoverable-credential request (the shopper types nothing),
 * user verification required, the challenge bound to the payment as it is now.
 */
export async function passkeyStepUpOptions(services: Services, session: CheckoutSessionRow, rp: CheckoutRelyingParty, origin: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    await lockSession(tx, session);
    const intent = await paymentOf(tx, session);
    const nonce = randomBytes(32).toString('base64url');
    const options = await generateAuthenticationOptions({
      rpID: rp.id, userVerification: 'required', timeout: stepUpLimits.codeTtlMs, allowCredentials: [], challenge: paymentChallenge(intent, nonce),
    });
    const id = newId('stepup');
    await tx.insertInto('shopper_step_ups').values(stepUpRow(session, intent, {
      id, method: 'passkey', destination: '', code_hash: nonce, created_at: now, expires_at: new Date(now.getTime() + stepUpLimits.codeTtlMs),
    })).execute();
    await auditStepUp(tx, session, 'step_up.passkey_options', id, { purpose: 'payment', payment_intent: intent.id, amount: intent.amount.toString(), currency: intent.currency }, origin, now);
    return options;
  });
}

/**
 * Checks a passkey's answer for this payment: the session's live challenge (taken), recomputed from the
 * PaymentIntent as it is now; a passkey of this merchant; origin, RP id, user verification, signature, and a
 * signature counter that grows.
 */
export async function verifyPasskeyStepUp(services: Services, session: CheckoutSessionRow, rp: CheckoutRelyingParty, response: AuthenticationResponseJSON, origin: string): Promise<void> {
  const now = new Date(services.clock.nowMs());
  const outcome = await inTransaction(services.db, async (tx) => {
    await lockSession(tx, session);
    const challenge = await takeChallenge(tx, session, 'passkey', now);
    const fail = async (reason: string, refusal: 'passkey_failed' | 'payment_changed' = 'passkey_failed') => {
      await auditStepUp(tx, session, 'step_up.verify', challenge?.id ?? session.id, { method: 'passkey', result: 'failed', reason }, origin, now);
      return { refused: new StepUpRefused(refusal) };
    };
    if (challenge === undefined) return fail('no_challenge');
    const intent = await paymentOf(tx, session);
    if (intent.id !== challenge.payment_intent_id || intent.amount !== challenge.amount || intent.currency !== challenge.currency) return fail('payment_changed', 'payment_changed');
    const passkey = typeof response.id === 'string'
      ? await tx.selectFrom('shopper_credentials').selectAll().where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode)
        .where('kind', '=', 'passkey').where('credential_id', '=', response.id).forUpdate().executeTakeFirst()
      : undefined;
    if (passkey === undefined || passkey.public_key === null || passkey.counter === null) return fail('unknown_passkey');
    // A passkey of another identity than the merchant's: refused, counted on the page and audited (the challenge is taken).
    const notOnFile = await checkIdentityOnFile(tx, session, intent, passkey.identity, { method: 'passkey', objectId: challenge.id, origin, now });
    if (notOnFile !== undefined) return { refused: notOnFile };
    let verification: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      verification = await verifyAuthenticationResponse({
        response, expectedChallenge: base64url(paymentChallenge(intent, challenge.code_hash)), expectedOrigin: rp.origin, expectedRPID: rp.id,
        requireUserVerification: true,
        credential: { id: passkey.credential_id ?? '', publicKey: new Uint8Array(passkey.public_key), counter: Number(passkey.counter), transports: transportsOf(passkey) },
      });
    } catch (error) {
      return fail(error instanceof Error ? error.message.slice(0, 200) : 'unverifiable');
    }
    if (!verification.verified) return fail('not_verified');
    await tx.updateTable('shopper_credentials').set({ counter: BigInt(verification.authenticationInfo.newCounter), last_used_at: now }).where('id', '=', passkey.id).execute();
    await tx.updateTable('shopper_step_ups').set({ verified_at: now, destination: passkey.identity }).where('id', '=', challenge.id).execute();
    await auditStepUp(tx, session, 'step_up.verify', challenge.id, { method: 'passkey', result: 'passed', passkey: passkey.id, identity: maskedIdentity(passkey.identity) }, origin, now);
    return { refused: undefined };
  });
  if (outcome.refused !== undefined) throw outcome.refused;
}
