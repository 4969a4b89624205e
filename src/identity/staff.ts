import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import { CofferError } from '../domain/errors.ts';
import type { Tx } from '../flows/context.ts';
import { limits } from '../limits.ts';
import { newId } from '../platform/random.ts';
import { Secret } from '../platform/secret.ts';
import { openSecret, sealSecret } from '../platform/secret-box.ts';
import { recordAudit } from '../store/audit.ts';
import type { Database, StaffRole, StaffSessionRow, StaffUserRow } from '../store/database.ts';
import { checkPasswordPolicy, decoyHash, hashPassword, passwordMatches } from './passwords.ts';
import { acceptedTotpStep, newTotpSecret, totpUri } from './totp.ts';

/** Where a staff request came from, for the audit log. */
export interface StaffOrigin {
  requestId: string | null;
  address: string | null;
  userAgent: string | null;
}

const totpLabel = 'staff totp secret';

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function token(): string {
  return randomBytes(32).toString('base64url');
}

export function sameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** A sign-in or security event, or a staff action, in the audit log (in the caller's transaction). */
export async function staffAudit(
  tx: Tx | Kysely<Database>,
  origin: StaffOrigin,
  at: Date,
  record: { actorId: string; action: string; outcome?: 'success' | 'failure'; objectType?: string | null; objectId?: string | null; details?: Record<string, unknown>; merchantId?: string | null; livemode?: boolean | null },
): Promise<void> {
  await recordAudit(tx, {
    merchantId: record.merchantId ?? null,
    livemode: record.livemode ?? null,
    actorType: 'staff',
    actorId: record.actorId,
    action: record.action,
    objectType: record.objectType ?? null,
    objectId: record.objectId ?? null,
    outcome: record.outcome ?? 'success',
    requestId: origin.requestId,
    origin: origin.address,
    details: { ...(origin.userAgent === null ? {} : { user_agent: origin.userAgent.slice(0, 300) }), ...record.details },
    occurredAt: at,
  });
}

const genericFailure = () => new CofferError('authentication_failed', 'The email, password or code is not correct, or this account cannot sign in now.');

// ---------------------------------------------------------------------------------------------------------------
// Creating staff: the first owner from the command line, the others by invitation.

/**
 * The second secret of an invitation a second person approved: given to the person who asked for the invitation
 * when they ask, while the approver is given the link. Enrollment needs both, so neither of the two can enroll the
 * new account alone. 20 characters of an alphabet without look-alikes (about 99 bits), in groups of five.
 */
export function newEnrollmentCode(): { code: Secret<string>; hash: Buffer } {
  const chars = Array.from({ length: 20 }, () => codeAlphabet[randomInt(codeAlphabet.length)]).join('');
  const code = chars.match(/.{5}/g)?.join('-') ?? chars;
  return { code: new Secret(code), hash: enrollmentCodeHash(code) };
}

const codeAlphabet = 'abcdefghjkmnpqrstuvwxyz23456789';

/** As typed: case, spaces and hyphens do not matter. */
export function enrollmentCodeHash(code: string): Buffer {
  return sha256(code.toLowerCase().replace(/[\s-]/g, ''));
}

export interface InvitedStaff {
  userId: string;
  /** The enrollment token (for the link), shown once; only its hash is stored. */
  enrollmentToken: Secret<string>;
  expiresAt: Date;
}

/** Refuses an email that a staff user already has (in any case); returns it normalized. */
export async function checkEmailFree(db: Tx | Kysely<Database>, email: string): Promise<string> {
  const normalized = normalizeEmail(email);
  const existing = await db.selectFrom('staff_users').select('id').where('email', '=', normalized).executeTakeFirst();
  if (existing !== undefined) throw new CofferError('staff_email_taken', `A staff user with the email ${normalized} already exists.`, { param: 'email' });
  return normalized;
}

export async function inviteStaffUser(
  tx: Tx,
  input: { email: string; name: string; role: StaffRole; createdBy: string; enrollmentCodeHash?: Buffer },
  now: Date,
): Promise<InvitedStaff> {
  const email = await checkEmailFree(tx, input.email);
  const userId = newId('stf');
  await tx.insertInto('staff_users').values({
    id: userId, email, name: input.name, role: input.role, status: 'invited', password_hash: null, password_changed_at: null,
    totp_secret_ciphertext: null, totp_last_step: null, locked_until: null, created_at: now, created_by: input.createdBy, last_login_at: null,
  }).execute();
  const enrollmentToken = token();
  const expiresAt = new Date(now.getTime() + limits.staffEnrollmentMs);
  await tx.insertInto('staff_enrollments').values({
    token_hash: sha256(enrollmentToken), user_id: userId, created_at: now, expires_at: expiresAt, used_at: null, pending_totp_ciphertext: null,
    code_hash: input.enrollmentCodeHash ?? null,
  }).execute();
  return { userId, enrollmentToken: new Secret(enrollmentToken), expiresAt };
}

/**
 * `coffer admin create`: an owner added from the host: the first of a fresh installation, or a second one while
 * fewer than two owners or administrators are active or invited (the staff could not approve anything by
 * themselves). Refused beyond that: further staff are invited through the staff API, where a role grant needs a
 * second person's approval.
 */
export async function createFirstOwner(db: Kysely<Database>, email: string, name: string, now: Date): Promise<InvitedStaff> {
  return db.transaction().execute(async (tx) => {
    // Two approvers are what four-eyes approval needs; until there are two (active or invited), the host may add an
    // owner: the first one, or a second one when the staff can no longer approve anything by themselves (the
    // other approver was disabled). Beyond that, staff are invited through the staff API, with approval.
    const approvers = await tx.selectFrom('staff_users').select('id').where('role', 'in', ['owner', 'admin']).where('status', '!=', 'disabled').limit(2).execute();
    if (approvers.length >= 2) {
      throw new CofferError('parameter_invalid', 'Two owners or administrators already exist: further staff are invited through the staff API (POST /staff/v1/users), with a second person\'s approval.');
    }
    const invited = await inviteStaffUser(tx, { email, name, role: 'owner', createdBy: 'coffer-cli' }, now);
    await staffAudit(tx, { requestId: null, address: 'cli', userAgent: null }, now, {
      actorId: 'coffer-cli', action: 'staff.invite', objectType: 'staff_user', objectId: invited.userId, details: { role: 'owner', email: normalizeEmail(email) },
    });
    return invited;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Enrollment: the invited person opens the link, gets a TOTP secret, and sets a password with a first code.

async function lockEnrollment(tx: Tx, enrollmentToken: string, enrollmentCode: string | undefined, now: Date) {
  const row = await tx.selectFrom('staff_enrollments').selectAll().where('token_hash', '=', sha256(enrollmentToken)).forUpdate().executeTakeFirst();
  if (row === undefined || row.used_at !== null || row.expires_at <= now) {
    throw new CofferError('enrollment_link_invalid', 'This enrollment link is unknown, already used or expired; ask an administrator for a new invitation.', { param: 'token' });
  }
  if (row.code_hash !== null) {
    if (enrollmentCode === undefined) {
      throw new CofferError('parameter_missing', 'This invitation was approved by a second person: enrolling needs the enrollment code given to the person who asked for the invitation, as well as this link.', { param: 'enrollment_code' });
    }
    if (!sameDigest(enrollmentCodeHash(enrollmentCode), Buffer.from(row.code_hash))) {
      throw new CofferError('parameter_invalid', 'The enrollment code is not the one given for this invitation: ask the person who asked for it.', { param: 'enrollment_code' });
    }
  } else if (enrollmentCode !== undefined) {
    throw new CofferError('parameter_unknown', 'This invitation has no enrollment code: the link alone enrolls.', { param: 'enrollment_code' });
  }
  const user = await tx.selectFrom('staff_users').selectAll().where('id', '=', row.user_id).forUpdate().executeTakeFirstOrThrow();
  if (user.status !== 'invited') throw new CofferError('enrollment_link_invalid', 'This enrollment link is no longer valid.', { param: 'token' });
  return { row, user };
}

export async function startEnrollment(db: Kysely<Database>, key: Secret<Buffer>, enrollmentToken: string, enrollmentCode: string | undefined, now: Date) {
  return db.transaction().execute(async (tx) => {
    const { row, user } = await lockEnrollment(tx, enrollmentToken, enrollmentCode, now);
    const secret = newTotpSecret();
    await tx.updateTable('staff_enrollments').set({ pending_totp_ciphertext: sealSecret(key, user.id, new Secret(secret), totpLabel) })
      .where('token_hash', '=', row.token_hash).execute();
    return { email: user.email, name: user.name, role: user.role, totpSecret: secret, otpauthUri: totpUri(secret, user.email) };
  });
}

function newRecoveryCodes(): string[] {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  return Array.from({ length: limits.staffRecoveryCodes }, () => {
    const bytes = randomBytes(10);
    const chars = [...bytes].map((byte) => alphabet[byte % alphabet.length]).join('');
    return `${chars.slice(0, 5)}-${chars.slice(5)}`;
  });
}

async function replaceRecoveryCodes(tx: Tx, userId: string, now: Date): Promise<string[]> {
  const codes = newRecoveryCodes();
  await tx.deleteFrom('staff_recovery_codes').where('user_id', '=', userId).execute();
  await tx.insertInto('staff_recovery_codes').values(codes.map((code) => ({ user_id: userId, code_hash: sha256(code), created_at: now, used_at: null }))).execute();
  return codes;
}

export async function completeEnrollment(
  db: Kysely<Database>,
  key: Secret<Buffer>,
  input: { token: string; password: string; code: string; enrollmentCode?: string },
  origin: StaffOrigin,
  now: Date,
): Promise<{ userId: string; recoveryCodes: string[] }> {
  // Checked before anything is hashed or locked: a weak password changes nothing.
  const peek = await db.selectFrom('staff_enrollments').innerJoin('staff_users', 'staff_users.id', 'staff_enrollments.user_id')
    .select(['staff_users.email']).where('token_hash', '=', sha256(input.token)).executeTakeFirst();
  if (peek !== undefined) checkPasswordPolicy(input.password, peek.email);
  const passwordHash = await hashPassword(input.password);
  return db.transaction().execute(async (tx) => {
    const { row, user } = await lockEnrollment(tx, input.token, input.enrollmentCode, now);
    if (row.pending_totp_ciphertext === null) {
      throw new CofferError('parameter_invalid', 'Open the enrollment link first (POST /staff/v1/enrollment/start) to get the authenticator secret.', { param: 'token' });
    }
    const secret = openSecret(key, user.id, Buffer.from(row.pending_totp_ciphertext), totpLabel);
    const step = await acceptedTotpStep(secret.reveal(), input.code, now.getTime(), null);
    if (step === undefined) throw new CofferError('parameter_invalid', 'The authenticator code is not correct: check the device\'s clock and enter the current code.', { param: 'code' });
    await tx.updateTable('staff_users').set({
      status: 'active', password_hash: passwordHash, password_changed_at: now, totp_secret_ciphertext: sealSecret(key, user.id, secret, totpLabel), totp_last_step: BigInt(step),
    }).where('id', '=', user.id).execute();
    await tx.insertInto('staff_password_history').values({ user_id: user.id, password_hash: passwordHash, created_at: now }).execute();
    await tx.updateTable('staff_enrollments').set({ used_at: now, pending_totp_ciphertext: null }).where('token_hash', '=', row.token_hash).execute();
    const recoveryCodes = await replaceRecoveryCodes(tx, user.id, now);
    await staffAudit(tx, origin, now, { actorId: user.id, action: 'staff.enroll', objectType: 'staff_user', objectId: user.id, details: { mfa: 'totp' } });
    return { userId: user.id, recoveryCodes };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Signing in: password, then a second factor; both count towards the lockout.

/**
 * Counts a failed attempt (a password or a code, at sign-in, re-authentication or a password change); the tenth
 * in a row locks the account for 30 minutes. `endSessions`: a lockout reached by someone past the password (the
 * second step, re-authentication, a password change) also ends every session the person has, as whoever it is may
 * hold one; guesses of the password alone, which anyone who knows the email can send, do not sign the person out.
 * Returns whether it locked.
 */
async function countFailure(tx: Tx, user: StaffUserRow, origin: StaffOrigin, now: Date, endSessions = true): Promise<boolean> {
  const failures = user.failed_logins + 1;
  const locks = failures >= limits.staffLockoutFailures;
  await tx.updateTable('staff_users').set(locks ? { failed_logins: 0, locked_until: new Date(now.getTime() + limits.staffLockoutMs) } : { failed_logins: failures })
    .where('id', '=', user.id).execute();
  if (locks) {
    if (endSessions) await tx.updateTable('staff_sessions').set({ revoked_at: now }).where('user_id', '=', user.id).where('revoked_at', 'is', null).execute();
    await staffAudit(tx, origin, now, { actorId: user.id, action: 'staff.lockout', objectType: 'staff_user', objectId: user.id, details: { minutes: limits.staffLockoutMs / 60_000 } });
  }
  return locks;
}

function isLocked(user: StaffUserRow, now: Date): boolean {
  return user.locked_until !== null && user.locked_until > now;
}

export interface NewSession {
  token: Secret<string>;
  session: StaffSessionRow;
}

async function insertSession(tx: Tx, userId: string, stage: 'mfa_pending' | 'active', origin: StaffOrigin, now: Date): Promise<NewSession> {
  const sessionToken = token();
  const lifetime = stage === 'active' ? limits.staffSessionLifetimeMs : limits.staffMfaPendingMs;
  const session = await tx.insertInto('staff_sessions').values({
    id: sha256(sessionToken), user_id: userId, stage, created_at: now, last_seen_at: now,
    expires_at: new Date(now.getTime() + lifetime), authenticated_at: stage === 'active' ? now : null, revoked_at: null,
    address: origin.address, user_agent: origin.userAgent?.slice(0, 300) ?? null,
  }).returningAll().executeTakeFirstOrThrow();
  return { token: new Secret(sessionToken), session };
}

/**
 * The password step. Whatever is wrong (no such account, wrong password, locked, disabled, not enrolled), the
 * answer is the same and takes as long: a password is always verified, against a decoy when there is no account.
 */
export async function signInWithPassword(db: Kysely<Database>, email: string, password: string, origin: StaffOrigin, now: Date): Promise<NewSession> {
  const normalized = normalizeEmail(email);
  const found = await db.selectFrom('staff_users').selectAll().where('email', '=', normalized).executeTakeFirst();
  const matches = await passwordMatches(found?.password_hash ?? (await decoyHash()), password);
  const outcome = await db.transaction().execute(async (tx) => {
    const user = found === undefined ? undefined : await tx.selectFrom('staff_users').selectAll().where('id', '=', found.id).forUpdate().executeTakeFirst();
    const fail = async (reason: string, details: Record<string, unknown> = {}) => {
      await staffAudit(tx, origin, now, {
        actorId: user?.id ?? 'unknown', action: 'staff.sign_in', outcome: 'failure', objectType: 'staff_user', objectId: user?.id ?? null,
        details: { step: 'password', reason, ...(user === undefined ? { email: normalized.includes('@') ? normalized.slice(0, 200) : '[not an email]' } : {}), ...details },
      });
      return undefined;
    };
    if (user === undefined) return fail('unknown_email');
    if (user.status !== 'active') return fail(user.status === 'invited' ? 'not_enrolled' : 'disabled');
    if (isLocked(user, now)) return fail('locked', { locked_until: user.locked_until?.toISOString() });
    if (!matches || user.password_hash !== found?.password_hash) {
      await countFailure(tx, user, origin, now, false);
      return fail('wrong_password');
    }
    const session = await insertSession(tx, user.id, 'mfa_pending', origin, now);
    await staffAudit(tx, origin, now, { actorId: user.id, action: 'staff.sign_in', objectType: 'staff_user', objectId: user.id, details: { step: 'password' } });
    return session;
  });
  if (outcome === undefined) throw genericFailure();
  return outcome;
}

/** A passkey assertion is checked by `passkeys.ts` inside the sign-in transaction, with the session's challenge. */
export type PasskeyCheck = (tx: Tx, session: StaffSessionRow, user: StaffUserRow) => Promise<boolean>;

export type SecondFactor = { code: string } | { recoveryCode: string } | { passkey: PasskeyCheck };

/** Checks a TOTP code (once per time step) or a recovery code (once) inside `tx`, consuming it when right. */
async function secondFactorAccepted(
  tx: Tx, key: Secret<Buffer>, session: StaffSessionRow, user: StaffUserRow, factor: SecondFactor, now: Date,
): Promise<'totp' | 'recovery_code' | 'passkey' | undefined> {
  if ('passkey' in factor) return (await factor.passkey(tx, session, user)) ? 'passkey' : undefined;
  if ('recoveryCode' in factor) {
    const used = await tx.updateTable('staff_recovery_codes').set({ used_at: now })
      .where('user_id', '=', user.id).where('code_hash', '=', sha256(factor.recoveryCode.trim().toLowerCase())).where('used_at', 'is', null)
      .returning('user_id').executeTakeFirst();
    return used === undefined ? undefined : 'recovery_code';
  }
  if (user.totp_secret_ciphertext === null) return undefined;
  const secret = openSecret(key, user.id, Buffer.from(user.totp_secret_ciphertext), totpLabel);
  const step = await acceptedTotpStep(secret.reveal(), factor.code, now.getTime(), user.totp_last_step);
  if (step === undefined) return undefined;
  await tx.updateTable('staff_users').set({ totp_last_step: BigInt(step) }).where('id', '=', user.id).execute();
  return 'totp';
}

/** The second step: the pending session is replaced by a new, active one (a new token: no session fixation). */
export async function completeSignIn(
  db: Kysely<Database>,
  key: Secret<Buffer>,
  pending: StaffSessionRow,
  factor: SecondFactor,
  origin: StaffOrigin,
  now: Date,
): Promise<NewSession> {
  const outcome = await db.transaction().execute(async (tx) => {
    const user = await tx.selectFrom('staff_users').selectAll().where('id', '=', pending.user_id).forUpdate().executeTakeFirstOrThrow();
    const session = await tx.selectFrom('staff_sessions').selectAll().where('id', '=', pending.id).forUpdate().executeTakeFirstOrThrow();
    const fail = async (reason: string) => {
      await staffAudit(tx, origin, now, { actorId: user.id, action: 'staff.sign_in', outcome: 'failure', objectType: 'staff_user', objectId: user.id, details: { step: 'mfa', reason } });
      return undefined;
    };
    if (session.revoked_at !== null || session.stage !== 'mfa_pending' || session.expires_at <= now) return fail('session_not_pending');
    if (user.status !== 'active') return fail('disabled');
    if (isLocked(user, now)) {
      await tx.updateTable('staff_sessions').set({ revoked_at: now }).where('id', '=', session.id).execute();
      return fail('locked');
    }
    const method = await secondFactorAccepted(tx, key, session, user, factor, now);
    if (method === undefined) {
      await countFailure(tx, user, origin, now);
      return fail('wrong_code');
    }
    await tx.updateTable('staff_sessions').set({ revoked_at: now }).where('id', '=', session.id).execute();
    await tx.updateTable('staff_users').set({ failed_logins: 0, last_login_at: now }).where('id', '=', user.id).execute();
    const active = await insertSession(tx, user.id, 'active', origin, now);
    await staffAudit(tx, origin, now, { actorId: user.id, action: 'staff.sign_in', objectType: 'staff_user', objectId: user.id, details: { step: 'mfa', method } });
    return active;
  });
  if (outcome === undefined) throw genericFailure();
  return outcome;
}

export interface SignedIn {
  session: StaffSessionRow;
  user: StaffUserRow;
}

/**
 * The session a cookie names, checked: known, not signed out, within its idle timeout and lifetime, its user
 * active. An active session's idle clock restarts with each request.
 */
export async function resolveSession(db: Kysely<Database>, cookie: string | undefined, stage: 'mfa_pending' | 'active', now: Date): Promise<SignedIn> {
  if (cookie === undefined || cookie === '') throw new CofferError('session_missing', 'Sign in first: this request has no staff session.');
  const session = await db.selectFrom('staff_sessions').selectAll().where('id', '=', sha256(cookie)).executeTakeFirst();
  if (session === undefined || session.revoked_at !== null || session.stage !== stage) {
    throw new CofferError('session_missing', 'This staff session is unknown or was signed out; sign in again.');
  }
  const idle = now.getTime() - session.last_seen_at.getTime() > limits.staffSessionIdleMs;
  if (idle || session.expires_at <= now) {
    await db.updateTable('staff_sessions').set({ revoked_at: now }).where('id', '=', session.id).where('revoked_at', 'is', null).execute();
    throw new CofferError('session_expired', idle ? 'The staff session ended after 15 minutes without activity; sign in again.' : 'The staff session reached its lifetime; sign in again.');
  }
  const user = await db.selectFrom('staff_users').selectAll().where('id', '=', session.user_id).executeTakeFirstOrThrow();
  if (user.status !== 'active') throw new CofferError('session_missing', 'This staff account is disabled.');
  if (stage === 'active') await db.updateTable('staff_sessions').set({ last_seen_at: now }).where('id', '=', session.id).execute();
  return { session, user };
}

/**
 * The session's CSRF token: a keyed hash of the session's id (itself a hash of the cookie), so it can be handed
 * again to a reloaded page without being stored, and nobody without the cookie and the key can compute it.
 */
export function csrfTokenFor(key: Secret<Buffer>, session: StaffSessionRow): string {
  return createHmac('sha256', key.reveal()).update('csrf\0').update(Buffer.from(session.id)).digest('base64url');
}

export function csrfTokenMatches(key: Secret<Buffer>, session: StaffSessionRow, header: string | undefined): boolean {
  if (header === undefined || header === '') return false;
  return sameDigest(sha256(csrfTokenFor(key, session)), sha256(header));
}

export function recentlyAuthenticated(session: StaffSessionRow, now: Date): boolean {
  return session.authenticated_at !== null && now.getTime() - session.authenticated_at.getTime() <= limits.staffReauthenticationMs;
}

/** Password and a second factor again, for sensitive actions; failures count towards the lockout. */
export async function reauthenticate(
  db: Kysely<Database>,
  key: Secret<Buffer>,
  signedIn: SignedIn,
  password: string,
  factor: SecondFactor,
  origin: StaffOrigin,
  now: Date,
): Promise<void> {
  const matches = await passwordMatches(signedIn.user.password_hash ?? (await decoyHash()), password);
  const ok = await db.transaction().execute(async (tx) => {
    const user = await tx.selectFrom('staff_users').selectAll().where('id', '=', signedIn.user.id).forUpdate().executeTakeFirstOrThrow();
    const session = await tx.selectFrom('staff_sessions').selectAll().where('id', '=', signedIn.session.id).forUpdate().executeTakeFirstOrThrow();
    const refuse = async (reason: string) => {
      await countFailure(tx, user, origin, now);
      await staffAudit(tx, origin, now, { actorId: user.id, action: 'staff.reauthenticate', outcome: 'failure', objectType: 'staff_user', objectId: user.id, details: { reason } });
      return false;
    };
    if (isLocked(user, now)) return refuse('locked');
    if (!matches) return refuse('wrong_password');
    const method = await secondFactorAccepted(tx, key, session, user, factor, now);
    if (method === undefined) return refuse('wrong_code');
    await tx.updateTable('staff_users').set({ failed_logins: 0 }).where('id', '=', user.id).execute();
    await tx.updateTable('staff_sessions').set({ authenticated_at: now }).where('id', '=', signedIn.session.id).execute();
    await staffAudit(tx, origin, now, { actorId: user.id, action: 'staff.reauthenticate', objectType: 'staff_user', objectId: user.id, details: { method } });
    return true;
  });
  if (!ok) throw genericFailure();
}

export async function signOut(db: Kysely<Database>, signedIn: SignedIn, origin: StaffOrigin, now: Date): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await tx.updateTable('staff_sessions').set({ revoked_at: now }).where('id', '=', signedIn.session.id).execute();
    await staffAudit(tx, origin, now, { actorId: signedIn.user.id, action: 'staff.sign_out', objectType: 'staff_user', objectId: signedIn.user.id });
  });
}

/** A new password: the current one must be given; the new one meets the policy and is not one of the last four. */
export async function changePassword(
  db: Kysely<Database>,
  signedIn: SignedIn,
  currentPassword: string,
  newPassword: string,
  origin: StaffOrigin,
  now: Date,
): Promise<void> {
  checkPasswordPolicy(newPassword, signedIn.user.email, 'new_password');
  if (!(await passwordMatches(signedIn.user.password_hash ?? (await decoyHash()), currentPassword))) {
    // A wrong current password is a guess like any other: it counts towards the lockout.
    await db.transaction().execute(async (tx) => {
      const user = await tx.selectFrom('staff_users').selectAll().where('id', '=', signedIn.user.id).forUpdate().executeTakeFirstOrThrow();
      await countFailure(tx, user, origin, now);
      await staffAudit(tx, origin, now, { actorId: user.id, action: 'staff.password_change', outcome: 'failure', objectType: 'staff_user', objectId: user.id, details: { reason: 'wrong_password' } });
    });
    throw new CofferError('authentication_failed', 'The current password is not correct.', { param: 'current_password' });
  }
  const history = await db.selectFrom('staff_password_history').select('password_hash').where('user_id', '=', signedIn.user.id)
    .orderBy('created_at', 'desc').limit(limits.staffPasswordHistory).execute();
  for (const earlier of history) {
    if (await passwordMatches(earlier.password_hash, newPassword)) {
      throw new CofferError('password_reused', `The new password must differ from your last ${limits.staffPasswordHistory} passwords.`, { param: 'new_password' });
    }
  }
  const passwordHash = await hashPassword(newPassword);
  await db.transaction().execute(async (tx) => {
    await tx.updateTable('staff_users').set({ password_hash: passwordHash, password_changed_at: now }).where('id', '=', signedIn.user.id).execute();
    await tx.insertInto('staff_password_history').values({ user_id: signedIn.user.id, password_hash: passwordHash, created_at: now }).execute();
    // Every other session of this user ends: a changed password is often a reaction to a leak.
    await tx.updateTable('staff_sessions').set({ revoked_at: now }).where('user_id', '=', signedIn.user.id).where('id', '!=', signedIn.session.id)
      .where('revoked_at', 'is', null).execute();
    await staffAudit(tx, origin, now, { actorId: signedIn.user.id, action: 'staff.password_change', objectType: 'staff_user', objectId: signedIn.user.id });
  });
}

export async function regenerateRecoveryCodes(db: Kysely<Database>, signedIn: SignedIn, origin: StaffOrigin, now: Date): Promise<string[]> {
  return db.transaction().execute(async (tx) => {
    const codes = await replaceRecoveryCodes(tx, signedIn.user.id, now);
    await staffAudit(tx, origin, now, { actorId: signedIn.user.id, action: 'staff.recovery_codes_regenerate', objectType: 'staff_user', objectId: signedIn.user.id });
    return codes;
  });
}
