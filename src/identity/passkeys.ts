import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type AuthenticatorTransport, type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON, type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Kysely } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import { randomBase62 } from '../platform/random.ts';
import type { Tx } from '../flows/context.ts';
import type { Database, StaffPasskeyRow, StaffSessionRow, StaffUserRow } from '../store/database.ts';
import { staffAudit, type SignedIn, type StaffOrigin } from './staff.ts';

/**
 * Staff passkeys (WebAuthn), through `@simplewebauthn/server`. A passkey is a second factor like a TOTP code:
 * registered by a signed-in, recently re-authenticated person, then usable after the password step. User
 * verification (the authenticator's PIN or fingerprint) is required on every ceremony. Each challenge is stored
 * on the session that asked for it, lives 5 minutes and is consumed by the first answer, right or wrong, so an
 * assertion cannot be replayed; an assertion whose signature counter does not grow is refused as coming from a
 * cloned authenticator.
 *
 * The relying party is the internal listener's origin: `COFFER_STAFF_ORIGIN` (e.g. https://staff.example.com)
 * or, by default, https://localhost:<internal port>. The RP id is that origin's host name.
 */

export interface RelyingParty {
  origin: string;
  id: string;
}

export function relyingParty(origin: string): RelyingParty {
  return { origin, id: new URL(origin).hostname };
}

async function storeChallenge(db: Kysely<Database> | Tx, session: StaffSessionRow, challenge: string, now: Date): Promise<void> {
  await db.updateTable('staff_sessions')
    .set({ webauthn_challenge: challenge, webauthn_challenge_expires_at: new Date(now.getTime() + limits.staffWebauthnChallengeMs) })
    .where('id', '=', session.id).execute();
}

/**
 * Takes the challenge of `session` (a row read FOR UPDATE in `tx`) for good, whatever happens next; `undefined`
 * when there is none or it expired.
 */
async function takeChallenge(tx: Tx, session: StaffSessionRow, now: Date): Promise<string | undefined> {
  if (session.webauthn_challenge === null) return undefined;
  await tx.updateTable('staff_sessions').set({ webauthn_challenge: null, webauthn_challenge_expires_at: null }).where('id', '=', session.id).execute();
  const live = session.webauthn_challenge_expires_at !== null && session.webauthn_challenge_expires_at > now;
  return live ? session.webauthn_challenge : undefined;
}

export async function passkeysOf(db: Kysely<Database> | Tx, userId: string): Promise<StaffPasskeyRow[]> {
  return db.selectFrom('staff_passkeys').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
}

const transportsOf = (row: StaffPasskeyRow) => row.transports as AuthenticatorTransport[];

export async function passkeyRegistrationOptions(db: Kysely<Database>, rp: RelyingParty, signedIn: SignedIn, now: Date): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const existing = await passkeysOf(db, signedIn.user.id);
  const options = await generateRegistrationOptions({
    rpName: 'Coffer', rpID: rp.id, userName: signedIn.user.email, userDisplayName: signedIn.user.name,
    userID: new TextEncoder().encode(signedIn.user.id), attestationType: 'none',
    excludeCredentials: existing.map((row) => ({ id: row.credential_id, transports: transportsOf(row) })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
    timeout: limits.staffWebauthnChallengeMs,
  });
  await storeChallenge(db, signedIn.session, options.challenge, now);
  return options;
}

function refused(message: string): CofferError {
  return new CofferError('passkey_invalid', message);
}

/** Verifies an authenticator's attestation against the session's challenge and stores the new passkey. */
export async function registerPasskey(
  db: Kysely<Database>, rp: RelyingParty, signedIn: SignedIn, name: string, response: RegistrationResponseJSON, origin: StaffOrigin, now: Date,
): Promise<StaffPasskeyRow> {
  const outcome = await db.transaction().execute(async (tx) => {
    const session = await tx.selectFrom('staff_sessions').selectAll().where('id', '=', signedIn.session.id).forUpdate().executeTakeFirstOrThrow();
    const challenge = await takeChallenge(tx, session, now);
    const fail = async (reason: string) => {
      await staffAudit(tx, origin, now, { actorId: signedIn.user.id, action: 'staff.passkey_add', outcome: 'failure', objectType: 'staff_user', objectId: signedIn.user.id, details: { reason } });
      return { error: reason };
    };
    if (challenge === undefined) return fail('no_challenge');
    let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verification = await verifyRegistrationResponse({ response, expectedChallenge: challenge, expectedOrigin: rp.origin, expectedRPID: rp.id, requireUserVerification: true });
    } catch (error) {
      return fail(error instanceof Error ? error.message.slice(0, 200) : 'unverifiable');
    }
    if (!verification.verified) return fail('not_verified');
    const credential = verification.registrationInfo.credential;
    const taken = await tx.selectFrom('staff_passkeys').select('id').where('credential_id', '=', credential.id).executeTakeFirst();
    if (taken !== undefined) return fail('credential_already_registered');
    const row = await tx.insertInto('staff_passkeys').values({
      id: `spk_${randomBase62(20)}`, user_id: signedIn.user.id, credential_id: credential.id, public_key: Buffer.from(credential.publicKey),
      counter: BigInt(credential.counter), transports: JSON.stringify(credential.transports ?? []), name, created_at: now, last_used_at: null,
    }).returningAll().executeTakeFirstOrThrow();
    await staffAudit(tx, origin, now, { actorId: signedIn.user.id, action: 'staff.passkey_add', objectType: 'staff_passkey', objectId: row.id, details: { name } });
    return { row };
  });
  if ('error' in outcome) throw refused(`The passkey could not be registered (${outcome.error}). Ask for new options and try again.`);
  return outcome.row;
}

export async function removePasskey(db: Kysely<Database>, signedIn: SignedIn, passkeyId: string, origin: StaffOrigin, now: Date): Promise<void> {
  const removed = await db.transaction().execute(async (tx) => {
    const row = await tx.deleteFrom('staff_passkeys').where('id', '=', passkeyId).where('user_id', '=', signedIn.user.id).returning('id').executeTakeFirst();
    if (row !== undefined) await staffAudit(tx, origin, now, { actorId: signedIn.user.id, action: 'staff.passkey_remove', objectType: 'staff_passkey', objectId: row.id });
    return row !== undefined;
  });
  if (!removed) throw resourceMissing('passkey', passkeyId, 'passkey');
}

/** Options for the second sign-in step with a passkey, bound to the pending session. */
export async function passkeySignInOptions(db: Kysely<Database>, rp: RelyingParty, pending: StaffSessionRow, now: Date): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const passkeys = await passkeysOf(db, pending.user_id);
  const options = await generateAuthenticationOptions({
    rpID: rp.id, userVerification: 'required', timeout: limits.staffWebauthnChallengeMs,
    allowCredentials: passkeys.map((row) => ({ id: row.credential_id, transports: transportsOf(row) })),
  });
  await storeChallenge(db, pending, options.challenge, now);
  return options;
}

/**
 * Checks an assertion inside the sign-in transaction: the session's challenge (consumed), one of the user's
 * passkeys, the origin and RP id, user verification, the signature, and a growing counter. Returns whether it
 * was accepted; the caller counts a failure towards the lockout.
 */
export async function passkeyAccepted(tx: Tx, rp: RelyingParty, session: StaffSessionRow, user: StaffUserRow, response: AuthenticationResponseJSON, now: Date): Promise<boolean> {
  const challenge = await takeChallenge(tx, session, now);
  if (challenge === undefined) return false;
  const passkey = await tx.selectFrom('staff_passkeys').selectAll().where('user_id', '=', user.id).where('credential_id', '=', response.id).forUpdate().executeTakeFirst();
  if (passkey === undefined) return false;
  try {
    const verification = await verifyAuthenticationResponse({
      response, expectedChallenge: challenge, expectedOrigin: rp.origin, expectedRPID: rp.id, requireUserVerification: true,
      credential: { id: passkey.credential_id, publicKey: new Uint8Array(passkey.public_key), counter: Number(passkey.counter), transports: transportsOf(passkey) },
    });
    if (!verification.verified) return false;
    await tx.updateTable('staff_passkeys').set({ counter: BigInt(verification.authenticationInfo.newCounter), last_used_at: now }).where('id', '=', passkey.id).execute();
    return true;
  } catch {
    return false;
  }
}

export function passkeyObject(row: StaffPasskeyRow): Record<string, unknown> {
  return {
    id: row.id, object: 'staff_passkey', name: row.name, created: Math.floor(row.created_at.getTime() / 1000),
    last_used: row.last_used_at === null ? null : Math.floor(row.last_used_at.getTime() / 1000),
  };
}
