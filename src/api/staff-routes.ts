import { checkRuleSet, createRuleSetIn, type RuleParams } from '../flows/risk-rule-sets.ts';
import { RuleSetBody } from './routes/risk-limits.ts';
import { checkShape, createLimitIn, deleteLimitIn, findLimit, updateLimitIn } from '../flows/payment-limits.ts';
import type { LimitKind, LimitSubject } from '../store/database.ts';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { Type } from '@sinclair/typebox';
import { encode } from 'uqr';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sql, type Kysely } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import type { RequestContext, Services, Tx } from '../flows/context.ts';
import { createRefund, prepareRefund, RefundNeedsApproval, sendRefund } from '../flows/create-refund.ts';
import { apiResources, parsePermissions, type ApiKeyKind } from '../identity/api-keys.ts';
import { decideApproval, requestApproval, withoutSecretHashes, type ActionResult, type ApprovalExecutor } from '../identity/approvals.ts';
import { createMerchantIn, createPreparedApiKeyIn, prepareApiKey, revokeApiKey } from '../identity/merchants.ts';
import { isStaffRole, mayAssignRole, rolePermissions, roleAllows, staffRoles } from '../identity/roles.ts';
import {
  changePassword, checkEmailFree, completeEnrollment, completeSignIn, csrfTokenFor, inviteStaffUser, newEnrollmentCode, normalizeEmail, reauthenticate, regenerateRecoveryCodes,
  signInWithPassword, signOut, staffAudit, startEnrollment, type SecondFactor, type SignedIn,
} from '../identity/staff.ts';
import { passkeyAccepted, passkeyObject, passkeyRegistrationOptions, passkeySignInOptions, passkeysOf, registerPasskey, relyingParty, removePasskey, type RelyingParty } from '../identity/passkeys.ts';
import { limits } from '../limits.ts';
import { defaultApiVersion, parseApiVersion } from '../objects/api-version.ts';
import { assert } from '../platform/assert.ts';
import { findCurrency, formatAmount, fromUsdCents } from '../domain/currency.ts';
import type { Secret } from '../platform/secret.ts';
import type { Database, RefundRow, StaffApprovalRow, StaffRole, StaffUserRow } from '../store/database.ts';
import { staffOrigin, staffSessionCookie, type InternalServerOptions } from './internal-server.ts';
import { Email, ObjectId, strictObject } from './schemas.ts';

const prefix = '/staff/v1';
const Password = Type.String({ minLength: 1, maxLength: limits.staffPasswordLengthMax * 4 });
const Code = Type.String({ minLength: 1, maxLength: 32 });
const Role = Type.Union(staffRoles.map((role) => Type.Literal(role)));
const Limit = Type.Integer({ minimum: 1, maximum: limits.listLimitMax });
const B64url = Type.String({ minLength: 1, maxLength: 16_384, pattern: '^[A-Za-z0-9_-]+={0,2}$' });
/** A WebAuthn credential as `navigator.credentials.get()` / `.create()` returns it, JSON-encoded (base64url fields). */
const Attachment = Type.Optional(Type.Union([Type.String({ maxLength: 30 }), Type.Null()]));
const PasskeyAssertion = Type.Object({
  id: B64url, rawId: B64url, type: Type.Literal('public-key'),
  response: Type.Object({ clientDataJSON: B64url, authenticatorData: B64url, signature: B64url, userHandle: Type.Optional(Type.Union([B64url, Type.Null()])) }),
  clientExtensionResults: Type.Object({}), authenticatorAttachment: Attachment,
});
const PasskeyAttestation = Type.Object({
  id: B64url, rawId: B64url, type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: B64url, attestationObject: B64url, transports: Type.Optional(Type.Array(Type.String({ maxLength: 30 }), { maxItems: 10 })),
    authenticatorData: Type.Optional(B64url), publicKey: Type.Optional(B64url), publicKeyAlgorithm: Type.Optional(Type.Integer()),
  }),
  clientExtensionResults: Type.Object({}), authenticatorAttachment: Attachment,
});
const SecondFactorFields = { code: Type.Optional(Code), recovery_code: Type.Optional(Code), passkey: Type.Optional(PasskeyAssertion) };
type SecondFactorBody = { code?: string; recovery_code?: string; passkey?: AuthenticationResponseJSON };

function unix(date: Date | null): number | null {
  return date === null ? null : Math.floor(date.getTime() / 1000);
}

function staffUserObject(user: StaffUserRow, now: Date) {
  return {
    id: user.id, object: 'staff_user', email: user.email, name: user.name, role: user.role, status: user.status,
    permissions: rolePermissions[user.role], created: unix(user.created_at), last_login: unix(user.last_login_at),
    locked: user.locked_until !== null && user.locked_until > now,
  };
}

/** What an approval can be: waiting, done, refused by the approver, refused by the action itself, or too late. */
const approvalStates = ['pending', 'executed', 'rejected', 'failed', 'expired'] as const;

/**
 * What an approval's parameters say to the staff: not the hashes of the secrets given to the requester (an API key,
 * an enrollment code), which are there only for the action to check them against when it runs.
 */
function shownParams(params: Record<string, unknown>): Record<string, unknown> {
  const shown = withoutSecretHashes(params);
  const prepared = params.prepared_key as { id?: unknown } | undefined;
  return prepared === undefined ? shown : { ...shown, api_key: prepared.id };
}

/** `at`: a request still pending past its expiry shows as `expired` (nobody can approve it any more). */
function approvalObject(approval: StaffApprovalRow, at?: Date) {
  const expired = approval.status === 'pending' && at !== undefined && approval.expires_at <= at;
  return {
    id: approval.id, object: 'approval', action: approval.action, params: shownParams(approval.params), summary: approval.summary, status: expired ? 'expired' : approval.status,
    requested_by: approval.requested_by, requested: unix(approval.requested_at), expires_at: unix(approval.expires_at),
    decided_by: approval.decided_by, decided: unix(approval.decided_at), result: approval.result,
  };
}

function refundView(refund: RefundRow) {
  return {
    id: refund.id, object: 'refund', merchant: refund.merchant_id, livemode: refund.livemode, payment_intent: refund.payment_intent_id,
    amount: Number(refund.amount), currency: refund.currency, status: refund.status, reason: refund.reason, created: unix(refund.created_at),
  };
}

function secondFactor(body: SecondFactorBody, rp: RelyingParty, now: Date): SecondFactor {
  const given = (['code', 'recovery_code', 'passkey'] as const).filter((field) => body[field] !== undefined);
  if (given.length > 1) {
    throw new CofferError('parameters_exclusive', `Give one second factor: code, recovery_code or passkey, not ${given.join(' and ')}.`, { param: given[1] ?? 'code' });
  }
  if (body.passkey !== undefined) {
    // Browsers' toJSON() gives null for absent fields; the verifier wants them absent.
    const { userHandle, ...response } = body.passkey.response as AuthenticationResponseJSON['response'] & { userHandle?: string | null };
    const { authenticatorAttachment, ...rest } = body.passkey as AuthenticationResponseJSON & { authenticatorAttachment?: string | null };
    const assertion = {
      ...rest, response: { ...response, ...(userHandle === null || userHandle === undefined ? {} : { userHandle }) },
      ...(authenticatorAttachment === null || authenticatorAttachment === undefined ? {} : { authenticatorAttachment }),
    } as AuthenticationResponseJSON;
    return { passkey: (tx, session, user) => passkeyAccepted(tx, rp, session, user, assertion, now) };
  }
  if (body.recovery_code !== undefined) return { recoveryCode: body.recovery_code };
  if (body.code !== undefined) return { code: body.code };
  throw new CofferError('parameter_missing', 'Missing required param: code (from the authenticator app), recovery_code or passkey.', { param: 'code' });
}

/**
 * The relying party of passkeys, and the origin of the staff pages' links: the configured staff origin, or
 * localhost at the port this listener has, in the scheme it serves (http with COFFER_TLS_DISABLED).
 */
function relyingPartyOf(request: FastifyRequest, configured: string | undefined, tls: boolean): RelyingParty {
  if (configured !== undefined) return relyingParty(configured);
  const address = request.server.server.address();
  return relyingParty(`${tls ? 'https' : 'http'}://localhost:${typeof address === 'object' && address !== null ? address.port : 8444}`);
}

function signedIn(request: FastifyRequest): SignedIn {
  assert(request.staff !== null, 'staff routes other than public ones run after the session check');
  return request.staff;
}

function setSession(reply: FastifyReply, token: Secret<string>, lifetimeMs: number): void {
  reply.setCookie(staffSessionCookie, token.reveal(), { path: '/', httpOnly: true, secure: true, sameSite: 'strict', maxAge: Math.floor(lifetimeMs / 1000) });
}

async function findStaffUser(db: Kysely<Database> | Tx, id: string): Promise<StaffUserRow> {
  const user = await db.selectFrom('staff_users').selectAll().where('id', '=', id).executeTakeFirst();
  if (user === undefined) throw resourceMissing('staff user', id, 'user');
  return user;
}

/** A staff member acting for a merchant: a context like an API request's, naming the staff member. */
async function staffContext(
  services: Services, request: FastifyRequest, staffUserId: string, merchantId: string, livemode: boolean, db: Kysely<Database> | Tx = services.db,
): Promise<RequestContext> {
  const merchant = await db.selectFrom('merchants').select('default_api_version').where('id', '=', merchantId).executeTakeFirstOrThrow();
  const version = parseApiVersion(merchant.default_api_version) ?? defaultApiVersion;
  return {
    actor: { merchantId, livemode, apiKeyId: staffUserId, keyKind: 'secret', apiVersion: version, eventApiVersion: version },
    staffUserId,
    requestId: request.id,
    origin: request.ip,
    idempotency: undefined,
  };
}

interface LimitChangeParams {
  livemode: boolean;
  operation: 'create' | 'update' | 'delete';
  limit?: string;
  subject?: LimitSubject;
  kind?: LimitKind;
  value?: number;
  currency?: string;
}

interface RefundParams {
  payment_intent: string;
  amount: number;
  reason?: 'duplicate' | 'fraudulent' | 'requested_by_customer';
  merchant: string;
  livemode: boolean;
}

async function runRefund(services: Services, request: FastifyRequest, staffUserId: string, params: RefundParams, refundedAtMost?: bigint): Promise<ActionResult> {
  const ctx = await staffContext(services, request, staffUserId, params.merchant, params.livemode);
  let refund: RefundRow | undefined;
  await createRefund(services, ctx, { payment_intent: params.payment_intent, amount: params.amount, ...(params.reason === undefined ? {} : { reason: params.reason }) }, async (_tx, row) => {
    refund = row;
    return { statusCode: 200, body: '' };
  }, refundedAtMost);
  assert(refund !== undefined, 'a finished refund is rendered');
  return { result: { refund: refund.id, status: refund.status, amount: Number(refund.amount), currency: refund.currency }, shownOnce: { refund: refundView(refund) } };
}

/**
 * Asks the acquirer for a refund whose approval just committed it as pending, and keeps the outcome on the
 * approval. If the answer does not come (a timeout, a crash), the refund stays pending and the recovery job
 * settles it; the approval already names it.
 */
async function sendApprovedRefund(services: Services, request: FastifyRequest, approval: StaffApprovalRow): Promise<{ approval: StaffApprovalRow; refund: RefundRow }> {
  const refundId = (approval.result as { refund?: unknown } | null)?.refund;
  assert(typeof refundId === 'string' && approval.decided_by !== null, 'an executed refund approval names its refund and approver');
  const pending = await services.db.selectFrom('refunds').selectAll().where('id', '=', refundId).executeTakeFirstOrThrow();
  const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', pending.charge_id).executeTakeFirstOrThrow();
  const ctx = await staffContext(services, request, approval.decided_by, pending.merchant_id, pending.livemode);
  let refund = pending;
  try {
    await sendRefund(services, ctx, pending, charge, async (_tx, row) => {
      refund = row;
      return { statusCode: 200, body: '' };
    });
  } catch (error) {
    if (!(error instanceof CofferError)) throw error;
    request.log.warn({ err: error, refund: refundId }, 'an approved refund is left to the recovery job');
  }
  const result = { refund: refund.id, status: refund.status, amount: Number(refund.amount), currency: refund.currency };
  const updated = await services.db.updateTable('staff_approvals').set({ result: JSON.stringify(result) }).where('id', '=', approval.id).returningAll().executeTakeFirstOrThrow();
  return { approval: updated, refund };
}

/**
 * A request for a key or an invitation left pending from a version that gave its secret to the approver: refused,
 * so that the approver is not given it now (the request closes as failed; asking again gives the requester theirs).
 */
const askedBeforeSplitSecrets = () => new CofferError('parameter_invalid', 'This request was made by an earlier version of Coffer, which gave its secret to the approver; ask again.');

/** The transaction-scoped advisory lock that makes a bootstrap invitation's check and its invitation one step. */
const bootstrapLockKey = 0x636f6666; // "coff"

/**
 * Whether anyone but `requester` can, could or soon will approve `permission`: if nobody ever could (the first
 * owner inviting the second administrator), the action is a bootstrap and runs at once. Staff members invited and
 * not yet enrolled, or disabled, count as well: otherwise one person could disable the only other approver (or
 * invite before the first invitee enrolled) and invite, at once, an account of their own that approves their
 * requests. An installation left without a second approver gets one from its host (`coffer admin create`).
 */
async function hasOtherApprover(db: Kysely<Database> | Tx, requester: StaffUserRow, permission: 'staff.invite'): Promise<boolean> {
  const others = await db.selectFrom('staff_users').select('role').where('id', '!=', requester.id).execute();
  return others.some((other) => roleAllows(other.role, 'approvals.decide') && roleAllows(other.role, permission));
}

async function runInvite(
  tx: Tx, request: FastifyRequest, params: { email: string; name: string; role: StaffRole; enrollment_code_sha256?: string }, createdBy: string, now: Date, pagesOrigin: string,
): Promise<ActionResult> {
  const codeHash = params.enrollment_code_sha256 === undefined ? {} : { enrollmentCodeHash: Buffer.from(params.enrollment_code_sha256, 'hex') };
  const invited = await inviteStaffUser(tx, { email: params.email, name: params.name, role: params.role, createdBy, ...codeHash }, now);
  await staffAudit(tx, staffOrigin(request), now, {
    actorId: createdBy, action: 'staff.invite', objectType: 'staff_user', objectId: invited.userId,
    details: { role: params.role, email: normalizeEmail(params.email), enrollment_code: params.enrollment_code_sha256 !== undefined },
  });
  return {
    result: { user: invited.userId, role: params.role },
    shownOnce: {
      enrollment_token: invited.enrollmentToken.reveal(), enrollment_expires_at: unix(invited.expiresAt),
      enrollment_url: `${pagesOrigin}/staff/enroll#${invited.enrollmentToken.reveal()}`,
    },
  };
}

export function registerStaffRoutes(app: FastifyInstance, services: Services, options: InternalServerOptions): void {
  const db = services.db;
  const key = options.staffSecretKey;
  const now = () => new Date(services.clock.nowMs());
  const rp = (request: FastifyRequest) => relyingPartyOf(request, options.staffOrigin, options.https !== null);

  // -- Signing in and out -------------------------------------------------------------------------------------
  app.post(`${prefix}/session`, {
    config: { staffAccess: 'public' },
    schema: { body: strictObject({ email: Type.String({ minLength: 1, maxLength: limits.emailLengthMax }), password: Password }) },
  }, async (request, reply) => {
    const body = request.body as { email: string; password: string };
    const pending = await signInWithPassword(db, body.email, body.password, staffOrigin(request), now());
    setSession(reply, pending.token, limits.staffMfaPendingMs);
    const passkeys = await passkeysOf(db, pending.session.user_id);
    const factors = passkeys.length > 0 ? ['totp', 'recovery_code', 'passkey'] : ['totp', 'recovery_code'];
    return { object: 'staff_session', stage: 'mfa_pending', second_factors: factors, expires_at: unix(pending.session.expires_at) };
  });

  app.post(`${prefix}/session/mfa`, { config: { staffAccess: 'mfa_pending' }, schema: { body: strictObject(SecondFactorFields) } }, async (request, reply) => {
    const at = now();
    const active = await completeSignIn(db, key, signedIn(request).session, secondFactor(request.body as SecondFactorBody, rp(request), at), staffOrigin(request), at);
    setSession(reply, active.token, limits.staffSessionLifetimeMs);
    const user = await findStaffUser(db, active.session.user_id);
    return {
      object: 'staff_session', stage: 'active', user: staffUserObject(user, now()), csrf_token: csrfTokenFor(key, active.session),
      expires_at: unix(active.session.expires_at), idle_timeout_seconds: limits.staffSessionIdleMs / 1000,
    };
  });

  app.get(`${prefix}/session`, { config: { staffAccess: 'signed_in' } }, async (request) => {
    const { session, user } = signedIn(request);
    return {
      object: 'staff_session', stage: 'active', user: staffUserObject(user, now()), csrf_token: csrfTokenFor(key, session),
      expires_at: unix(session.expires_at), idle_timeout_seconds: limits.staffSessionIdleMs / 1000,
      reauthenticated_until: session.authenticated_at === null ? null : unix(new Date(session.authenticated_at.getTime() + limits.staffReauthenticationMs)),
    };
  });

  app.delete(`${prefix}/session`, { config: { staffAccess: 'signed_in' } }, async (request, reply) => {
    await signOut(db, signedIn(request), staffOrigin(request), now());
    reply.clearCookie(staffSessionCookie, { path: '/', httpOnly: true, secure: true, sameSite: 'strict' });
    return { object: 'staff_session', signed_out: true };
  });

  app.post(`${prefix}/session/reauthenticate`, {
    config: { staffAccess: 'signed_in' }, schema: { body: strictObject({ password: Password, ...SecondFactorFields }) },
  }, async (request) => {
    const body = request.body as SecondFactorBody & { password: string };
    const at = now();
    await reauthenticate(db, key, signedIn(request), body.password, secondFactor(body, rp(request), at), staffOrigin(request), at);
    return { object: 'staff_session', reauthenticated_until: unix(new Date(at.getTime() + limits.staffReauthenticationMs)) };
  });

  app.post(`${prefix}/password`, {
    config: { staffAccess: 'signed_in', reauthenticate: true }, schema: { body: strictObject({ current_password: Password, new_password: Password }) },
  }, async (request) => {
    const body = request.body as { current_password: string; new_password: string };
    await changePassword(db, signedIn(request), body.current_password, body.new_password, staffOrigin(request), now());
    return { object: 'staff_user', password_changed: true };
  });

  // -- Passkeys (WebAuthn): register one while signed in, then use it as the second factor ---------------------
  app.post(`${prefix}/session/passkey_options`, { config: { staffAccess: 'mfa_pending' } }, async (request) => ({
    object: 'passkey_options', public_key: await passkeySignInOptions(db, rp(request), signedIn(request).session, now()),
  }));

  app.post(`${prefix}/session/reauthenticate/passkey_options`, { config: { staffAccess: 'signed_in' } }, async (request) => ({
    object: 'passkey_options', public_key: await passkeySignInOptions(db, rp(request), signedIn(request).session, now()),
  }));

  app.get(`${prefix}/passkeys`, { config: { staffAccess: 'signed_in' } }, async (request) => ({
    object: 'list', data: (await passkeysOf(db, signedIn(request).user.id)).map(passkeyObject),
  }));

  app.post(`${prefix}/passkeys/options`, { config: { staffAccess: 'signed_in', reauthenticate: true } }, async (request) => ({
    object: 'passkey_options', public_key: await passkeyRegistrationOptions(db, rp(request), signedIn(request), now()),
  }));

  app.post(`${prefix}/passkeys`, {
    config: { staffAccess: 'signed_in', reauthenticate: true },
    schema: { body: strictObject({ name: Type.String({ minLength: 1, maxLength: 100 }), credential: PasskeyAttestation }) },
  }, async (request) => {
    const body = request.body as { name: string; credential: RegistrationResponseJSON };
    return passkeyObject(await registerPasskey(db, rp(request), signedIn(request), body.name, body.credential, staffOrigin(request), now()));
  });

  app.post(`${prefix}/passkeys/:passkey/delete`, {
    config: { staffAccess: 'signed_in', reauthenticate: true }, schema: { params: strictObject({ passkey: ObjectId }) },
  }, async (request) => {
    const { passkey } = request.params as { passkey: string };
    await removePasskey(db, signedIn(request), passkey, staffOrigin(request), now());
    return { id: passkey, object: 'staff_passkey', deleted: true };
  });

  app.post(`${prefix}/recovery_codes`, { config: { staffAccess: 'signed_in', reauthenticate: true } }, async (request) => ({
    object: 'recovery_codes', recovery_codes: await regenerateRecoveryCodes(db, signedIn(request), staffOrigin(request), now()),
  }));

  // -- Enrollment (the link from an invitation or `coffer admin create`) ---------------------------------------
  const EnrollmentToken = Type.String({ minLength: 1, maxLength: 100 });
  const EnrollmentCode = Type.String({ minLength: 1, maxLength: 60 });
  app.post(`${prefix}/enrollment/start`, {
    config: { staffAccess: 'public' }, schema: { body: strictObject({ token: EnrollmentToken, enrollment_code: Type.Optional(EnrollmentCode) }) },
  }, async (request) => {
    const body = request.body as { token: string; enrollment_code?: string };
    const started = await startEnrollment(db, key, body.token, body.enrollment_code, now());
    return {
      object: 'enrollment', email: started.email, name: started.name, role: started.role, totp_secret: started.totpSecret, otpauth_uri: started.otpauthUri,
      // The URI as a QR code, one string of 0 (light) and 1 (dark) per row: the page draws it, no image to fetch.
      otpauth_qr: encode(started.otpauthUri, { border: 0 }).data.map((row) => row.map((dark) => (dark ? '1' : '0')).join('')),
    };
  });

  app.post(`${prefix}/enrollment/complete`, {
    config: { staffAccess: 'public' }, schema: { body: strictObject({ token: EnrollmentToken, enrollment_code: Type.Optional(EnrollmentCode), password: Password, code: Code }) },
  }, async (request) => {
    const body = request.body as { token: string; enrollment_code?: string; password: string; code: string };
    const done = await completeEnrollment(db, key, { token: body.token, password: body.password, code: body.code, ...(body.enrollment_code === undefined ? {} : { enrollmentCode: body.enrollment_code }) }, staffOrigin(request), now());
    return { object: 'enrollment', user: done.userId, recovery_codes: done.recoveryCodes };
  });

  // -- Merchants and payments -----------------------------------------------------------------------------------
  app.get(`${prefix}/merchants`, { config: { staffAccess: 'merchants.read' }, schema: { querystring: strictObject({ limit: Type.Optional(Limit) }) } }, async (request) => {
    const { limit = limits.listLimitDefault } = request.query as { limit?: number };
    const rows = await db.selectFrom('merchants').selectAll().orderBy('created_at', 'desc').limit(limit).execute();
    return { object: 'list', data: rows.map((row) => ({ id: row.id, object: 'merchant', name: row.name, created: unix(row.created_at) })) };
  });

  // A merchant has no key when made: its keys are asked for like any other (four-eyes, api_keys.create).
  app.post(`${prefix}/merchants`, {
    config: { staffAccess: 'merchants.create', reauthenticate: true },
    schema: { body: strictObject({ name: Type.String({ minLength: 1, maxLength: limits.merchantNameLengthMax }) }) },
  }, async (request) => {
    const { name } = request.body as { name: string };
    const at = now();
    const made = await db.transaction().execute(async (tx) => {
      const merchant = await createMerchantIn(tx, name);
      await staffAudit(tx, staffOrigin(request), at, {
        actorId: signedIn(request).user.id, action: 'merchant.create', objectType: 'merchant', objectId: merchant.id, merchantId: merchant.id, details: { name: merchant.name },
      });
      return merchant;
    });
    return { id: made.id, object: 'merchant', name: made.name, created: unix(made.created) };
  });

  const PaymentQuery = strictObject({ merchant: ObjectId, livemode: Type.Optional(Type.Boolean()), limit: Type.Optional(Limit) });
  app.get(`${prefix}/payment_intents`, { config: { staffAccess: 'payments.read' }, schema: { querystring: PaymentQuery } }, async (request) => {
    const query = request.query as { merchant: string; livemode?: boolean; limit?: number };
    const rows = await db.selectFrom('payment_intents').select(['id', 'merchant_id', 'livemode', 'amount', 'currency', 'status', 'created_at', 'latest_charge_id'])
      .where('merchant_id', '=', query.merchant).where('livemode', '=', query.livemode ?? false).orderBy('seq', 'desc').limit(query.limit ?? limits.listLimitDefault).execute();
    return {
      object: 'list',
      data: rows.map((row) => ({
        id: row.id, object: 'payment_intent', merchant: row.merchant_id, livemode: row.livemode, amount: Number(row.amount), currency: row.currency,
        status: row.status, created: unix(row.created_at), latest_charge: row.latest_charge_id,
      })),
    };
  });

  app.post(`${prefix}/refunds`, {
    config: { staffAccess: 'refunds.create' },
    schema: { body: strictObject({ payment_intent: ObjectId, amount: Type.Optional(Type.Integer({ minimum: 1 })), reason: Type.Optional(Type.Union([Type.Literal('duplicate'), Type.Literal('fraudulent'), Type.Literal('requested_by_customer')])) }) },
  }, async (request, reply) => {
    const body = request.body as { payment_intent: string; amount?: number; reason?: RefundParams['reason'] };
    const { user } = signedIn(request);
    const intent = await db.selectFrom('payment_intents').leftJoin('charges', 'charges.id', 'payment_intents.latest_charge_id')
      .select(['payment_intents.merchant_id', 'payment_intents.livemode', 'payment_intents.currency', 'charges.amount_captured', 'charges.amount_refunded', 'charges.amount_refunding'])
      .where('payment_intents.id', '=', body.payment_intent).executeTakeFirst();
    if (intent === undefined) throw resourceMissing('payment_intent', body.payment_intent, 'payment_intent');
    const alreadyRefunded = Number((intent.amount_refunded ?? 0n) + (intent.amount_refunding ?? 0n));
    const refundable = Number(intent.amount_captured ?? 0n) - alreadyRefunded;
    const params: RefundParams = {
      payment_intent: body.payment_intent, amount: body.amount ?? refundable, merchant: intent.merchant_id, livemode: intent.livemode,
      ...(body.reason === undefined ? {} : { reason: body.reason }),
    };
    // The threshold is set in US cents and holds in every currency at Coffer's indicative rates (decision 0030).
    const currency = findCurrency(intent.currency);
    assert(currency !== undefined, 'a stored currency is known');
    const threshold = Number(fromUsdCents(options.fourEyesRefundAbove, currency));
    const askApproval = async (refundedTotal: number) => {
      const approval = await db.transaction().execute((tx) => requestApproval(tx, user, {
        action: 'refund.create', params: { ...params }, merchantId: intent.merchant_id,
        // In the currency's units, as the approver reads them (20.00 usd), not minor units.
        summary: `Refund ${formatAmount(params.amount, currency)} of ${body.payment_intent} (${formatAmount(refundedTotal, currency)} refunded in all, above the four-eyes threshold of ${formatAmount(threshold, currency)})`,
      }, staffOrigin(request), now()));
      return reply.code(202).send({ object: 'approval_required', approval: approvalObject(approval) });
    };
    // The payment's refunded total counts, not this refund alone: several small refunds cannot add up to a large
    // one without a second person. Checked here to ask at once, and again on the locked charge, where refunds
    // made at the same time are counted too.
    // A refund that cannot be made (nothing left, more than is left, an uncaptured payment) is refused at once by
    // the flow below, with its reason, rather than put to a second person who could only see it fail.
    const possible = params.amount > 0 && params.amount <= refundable;
    if (possible && alreadyRefunded + params.amount > threshold) return askApproval(alreadyRefunded + params.amount);
    try {
      const done = await runRefund(services, request, user.id, params, BigInt(threshold));
      return done.shownOnce?.refund;
    } catch (error) {
      if (error instanceof RefundNeedsApproval) return askApproval(Number(error.refundedTotal));
      throw error;
    }
  });

  // -- Merchants' API keys ----------------------------------------------------------------------------------------
  app.get(`${prefix}/merchants/:merchant/api_keys`, { config: { staffAccess: 'api_keys.read' }, schema: { params: strictObject({ merchant: ObjectId }) } }, async (request) => {
    const { merchant } = request.params as { merchant: string };
    const rows = await db.selectFrom('api_keys').selectAll().where('merchant_id', '=', merchant).orderBy('created_at', 'desc').limit(limits.listLimitMax).execute();
    return {
      object: 'list',
      data: rows.map((row) => ({
        id: row.id, object: 'api_key', kind: row.kind, livemode: row.livemode, last4: row.key_last4, name: row.name, permissions: row.permissions,
        created: unix(row.created_at), last_used: unix(row.last_used_at), expires_at: unix(row.expires_at), revoked: unix(row.revoked_at),
      })),
    };
  });

  app.post(`${prefix}/merchants/:merchant/api_keys`, {
    config: { staffAccess: 'api_keys.create', reauthenticate: true },
    schema: {
      params: strictObject({ merchant: ObjectId }),
      body: strictObject({
        kind: Type.Union([Type.Literal('secret'), Type.Literal('publishable'), Type.Literal('restricted')]), livemode: Type.Boolean(),
        name: Type.Optional(Type.String({ maxLength: 100 })), permissions: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: apiResources.length })),
      }),
    },
  }, async (request, reply) => {
    const { merchant } = request.params as { merchant: string };
    const body = request.body as { kind: ApiKeyKind; livemode: boolean; name?: string; permissions?: string[] };
    const found = await db.selectFrom('merchants').select('id').where('id', '=', merchant).executeTakeFirst();
    if (found === undefined) throw resourceMissing('merchant', merchant, 'merchant');
    // Validated now, so that a request that could never run is refused at once rather than approved and failed.
    if (body.kind === 'restricted') parsePermissions(body.permissions ?? []);
    else if (body.permissions !== undefined) throw new CofferError('parameter_invalid', 'Only restricted keys take permissions.', { param: 'permissions' });
    // The key is given to whoever asks for it, now, and works once someone else approves; the approver never sees
    // it, so neither of the two holds a working key alone. Only its hash waits on the approval.
    const { key: apiKey, prepared } = prepareApiKey(body.kind, body.livemode);
    const approval = await db.transaction().execute((tx) => requestApproval(tx, signedIn(request).user, {
      action: 'api_key.create', params: { merchant, ...body, prepared_key: { id: prepared.id, sha256: prepared.keyHash.toString('hex'), last4: prepared.last4 } }, merchantId: merchant,
      summary: `New ${body.livemode ? 'live' : 'test'} ${body.kind} API key for ${merchant}`,
    }, staffOrigin(request), now()));
    return reply.code(202).send({
      object: 'approval_required', approval: approvalObject(approval),
      shown_once: { api_key: { id: prepared.id, secret: apiKey.reveal() } },
    });
  });

  app.post(`${prefix}/api_keys/:key/revoke`, { config: { staffAccess: 'api_keys.revoke', reauthenticate: true }, schema: { params: strictObject({ key: ObjectId }) } }, async (request) => {
    const { key: keyId } = request.params as { key: string };
    await revokeApiKey(db, keyId, now(), { type: 'staff', id: signedIn(request).user.id });
    return { id: keyId, object: 'api_key', revoked: true };
  });

  // -- Staff ------------------------------------------------------------------------------------------------------
  app.get(`${prefix}/users`, { config: { staffAccess: 'staff.read' } }, async () => {
    const rows = await db.selectFrom('staff_users').selectAll().orderBy('created_at', 'asc').limit(1000).execute();
    const at = now();
    return { object: 'list', data: rows.map((row) => staffUserObject(row, at)) };
  });

  app.post(`${prefix}/users`, {
    config: { staffAccess: 'staff.invite', reauthenticate: true },
    schema: { body: strictObject({ email: Email, name: Type.String({ minLength: 1, maxLength: 200 }), role: Role }) },
  }, async (request, reply) => {
    const body = request.body as { email: string; name: string; role: StaffRole };
    const { user } = signedIn(request);
    if (!mayAssignRole(user.role, undefined, body.role)) throw new CofferError('insufficient_permissions', 'Only an owner may make someone an owner.', { param: 'role' });
    // Checked now as well as when the invitation runs, so that no approval is asked for what cannot happen.
    const email = await checkEmailFree(db, body.email);
    const at = now();
    // Nobody else could approve yet (the first owner inviting the second administrator): it runs at once, on record.
    // Decided and done under one lock, so that two invitations sent at once cannot both be the bootstrap.
    const bootstrapped = await db.transaction().execute(async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(${bootstrapLockKey})`.execute(tx);
      if (await hasOtherApprover(tx, user, 'staff.invite')) return undefined;
      await staffAudit(tx, staffOrigin(request), at, { actorId: user.id, action: 'approval.bootstrap', objectType: 'staff_user', details: { requested_action: 'staff.invite', reason: 'no other staff member can approve' } });
      return runInvite(tx, request, body, user.id, at, rp(request).origin);
    });
    if (bootstrapped !== undefined) return { object: 'staff_invitation', ...bootstrapped.result, ...bootstrapped.shownOnce };
    // Two secrets enroll the new account: the approver is given the link, the requester this code, now. Neither of
    // the two can enroll it alone (and so hold a second account of their own); the invitee needs both.
    const enrollmentCode = newEnrollmentCode();
    const approval = await db.transaction().execute((tx) => requestApproval(tx, user, {
      action: 'staff.invite', params: { ...body, email, enrollment_code_sha256: enrollmentCode.hash.toString('hex') }, summary: `Invite ${email} as ${body.role}`,
    }, staffOrigin(request), at));
    return reply.code(202).send({ object: 'approval_required', approval: approvalObject(approval), shown_once: { enrollment_code: enrollmentCode.code.reveal() } });
  });

  app.post(`${prefix}/users/:user/role`, {
    config: { staffAccess: 'staff.change_role', reauthenticate: true }, schema: { params: strictObject({ user: ObjectId }), body: strictObject({ role: Role }) },
  }, async (request, reply) => {
    const { user: targetId } = request.params as { user: string };
    const { role } = request.body as { role: StaffRole };
    const { user } = signedIn(request);
    const target = await findStaffUser(db, targetId);
    if (target.role === role) throw new CofferError('parameter_invalid', `${target.email} already has the role ${role}.`, { param: 'role' });
    if (!mayAssignRole(user.role, target.role, role)) throw new CofferError('insufficient_permissions', 'Only an owner may make someone an owner or change an owner\'s role.', { param: 'role' });
    const approval = await db.transaction().execute((tx) => requestApproval(tx, user, {
      action: 'staff.role_change', params: { user: target.id, from: target.role, to: role }, summary: `Change the role of ${target.email} from ${target.role} to ${role}`,
    }, staffOrigin(request), now()));
    return reply.code(202).send({ object: 'approval_required', approval: approvalObject(approval) });
  });

  app.post(`${prefix}/users/:user/disable`, {
    config: { staffAccess: 'staff.disable', reauthenticate: true }, schema: { params: strictObject({ user: ObjectId }) },
  }, async (request) => {
    const { user: targetId } = request.params as { user: string };
    const { user } = signedIn(request);
    const at = now();
    const target = await findStaffUser(db, targetId);
    if (target.id === user.id) throw new CofferError('parameter_invalid', 'You cannot disable your own account.', { param: 'user' });
    if (!mayAssignRole(user.role, target.role, target.role)) throw new CofferError('insufficient_permissions', 'Only an owner may disable an owner.', { param: 'user' });
    await db.transaction().execute(async (tx) => {
      await tx.updateTable('staff_users').set({ status: 'disabled' }).where('id', '=', target.id).execute();
      await tx.updateTable('staff_sessions').set({ revoked_at: at }).where('user_id', '=', target.id).where('revoked_at', 'is', null).execute();
      await staffAudit(tx, staffOrigin(request), at, { actorId: user.id, action: 'staff.disable', objectType: 'staff_user', objectId: target.id });
    });
    return staffUserObject({ ...target, status: 'disabled' }, at);
  });

  // -- Merchants' payment limits: read at once, changed only with a second person's approval ------------------------
  const LimitChange = strictObject({
    livemode: Type.Boolean(),
    operation: Type.Union([Type.Literal('create'), Type.Literal('update'), Type.Literal('delete')]),
    limit: Type.Optional(ObjectId),
    subject: Type.Optional(Type.Union([Type.Literal('merchant'), Type.Literal('customer'), Type.Literal('card'), Type.Literal('device'), Type.Literal('client_address')])),
    kind: Type.Optional(Type.Union([Type.Literal('amount_min'), Type.Literal('amount_max'), Type.Literal('amount_per_day'), Type.Literal('count_per_hour'), Type.Literal('count_per_day')])),
    value: Type.Optional(Type.Integer({ minimum: 0, maximum: 99_999_999_999 })),
    currency: Type.Optional(Type.String({ pattern: '^[a-z]{3}$' })),
  });
  app.get(`${prefix}/merchants/:merchant/limits`, {
    config: { staffAccess: 'limits.read' }, schema: { params: strictObject({ merchant: ObjectId }), querystring: strictObject({ livemode: Type.Optional(Type.Boolean()) }) },
  }, async (request) => {
    const { merchant } = request.params as { merchant: string };
    const livemode = (request.query as { livemode?: boolean }).livemode ?? false;
    const rows = await db.selectFrom('payment_limits').selectAll().where('merchant_id', '=', merchant).where('livemode', '=', livemode)
      .where('deleted_at', 'is', null).orderBy('seq').execute();
    return { object: 'list', data: rows.map((row) => ({ id: row.id, object: 'payment_limit', subject: row.subject, kind: row.kind, value: Number(row.value), currency: row.currency, livemode: row.livemode })) };
  });
  app.post(`${prefix}/merchants/:merchant/limits`, {
    config: { staffAccess: 'limits.change', reauthenticate: true }, schema: { params: strictObject({ merchant: ObjectId }), body: LimitChange },
  }, async (request, reply) => {
    const { merchant } = request.params as { merchant: string };
    const body = request.body as LimitChangeParams;
    const found = await db.selectFrom('merchants').select('id').where('id', '=', merchant).executeTakeFirst();
    if (found === undefined) throw resourceMissing('merchant', merchant, 'merchant');
    // Checked now, so that no approval is asked for a change that could never be made.
    const ctx = await staffContext(services, request, signedIn(request).user.id, merchant, body.livemode);
    if (body.operation === 'create') {
      if (body.subject === undefined || body.kind === undefined || body.value === undefined) {
        throw new CofferError('parameter_missing', 'Creating a limit needs subject, kind and value.', { param: body.subject === undefined ? 'subject' : body.kind === undefined ? 'kind' : 'value' });
      }
      checkShape(body.kind, body.currency);
    } else {
      if (body.limit === undefined) throw new CofferError('parameter_missing', `To ${body.operation} a limit, name it.`, { param: 'limit' });
      await findLimit(db, ctx, body.limit);
      if (body.operation === 'update' && body.value === undefined) throw new CofferError('parameter_missing', 'Updating a limit needs its new value.', { param: 'value' });
    }
    const approval = await db.transaction().execute((tx) => requestApproval(tx, signedIn(request).user, {
      action: 'limit.change', params: { merchant, ...body }, merchantId: merchant,
      summary: `${body.operation} ${body.livemode ? 'live' : 'test'} payment limit${body.limit === undefined ? '' : ` ${body.limit}`} of ${merchant}` +
        (body.value === undefined ? '' : `: ${body.kind ?? ''} ${body.value}${body.currency === undefined ? '' : ` ${body.currency}`}`),
    }, staffOrigin(request), now()));
    return reply.code(202).send({ object: 'approval_required', approval: approvalObject(approval) });
  });

  // -- Merchants' risk rules: a new version only with a second person's approval -----------------------------------
  app.get(`${prefix}/merchants/:merchant/rule_sets`, {
    config: { staffAccess: 'rules.read' }, schema: { params: strictObject({ merchant: ObjectId }), querystring: strictObject({ livemode: Type.Optional(Type.Boolean()) }) },
  }, async (request) => {
    const { merchant } = request.params as { merchant: string };
    const livemode = (request.query as { livemode?: boolean }).livemode ?? false;
    const rows = await db.selectFrom('risk_rule_sets').selectAll().where('merchant_id', '=', merchant).where('livemode', '=', livemode).orderBy('version', 'desc').execute();
    return { object: 'list', data: rows.map((row) => ({ id: row.id, object: 'risk_rule_set', version: row.version, rules: row.rules, livemode: row.livemode })) };
  });
  app.post(`${prefix}/merchants/:merchant/rule_sets`, {
    config: { staffAccess: 'rules.change', reauthenticate: true },
    schema: { params: strictObject({ merchant: ObjectId }), body: strictObject({ livemode: Type.Boolean(), rules: RuleSetBody }) },
  }, async (request, reply) => {
    const { merchant } = request.params as { merchant: string };
    const body = request.body as { livemode: boolean; rules: RuleParams[] };
    const found = await db.selectFrom('merchants').select('id').where('id', '=', merchant).executeTakeFirst();
    if (found === undefined) throw resourceMissing('merchant', merchant, 'merchant');
    checkRuleSet(body.rules); // a set that could never be made is refused now, not approved and then failed
    const approval = await db.transaction().execute((tx) => requestApproval(tx, signedIn(request).user, {
      action: 'rule_set.change', params: { merchant, ...body }, merchantId: merchant,
      summary: `New ${body.livemode ? 'live' : 'test'} risk rule set for ${merchant} (${body.rules.length} rules)`,
    }, staffOrigin(request), now()));
    return reply.code(202).send({ object: 'approval_required', approval: approvalObject(approval) });
  });

  // -- Four-eyes approvals ----------------------------------------------------------------------------------------
  app.get(`${prefix}/approvals`, {
    config: { staffAccess: 'approvals.read' },
    schema: { querystring: strictObject({ status: Type.Optional(Type.Union(approvalStates.map((s) => Type.Literal(s)))), limit: Type.Optional(Limit) }) },
  }, async (request) => {
    const query = request.query as { status?: (typeof approvalStates)[number]; limit?: number };
    const at = now();
    let select = db.selectFrom('staff_approvals').selectAll().orderBy('requested_at', 'desc').limit(query.limit ?? limits.listLimitDefault);
    // Pending and expired are one stored state, told apart by the time.
    if (query.status === 'pending') select = select.where('status', '=', 'pending').where('expires_at', '>', at);
    else if (query.status === 'expired') select = select.where('status', '=', 'pending').where('expires_at', '<=', at);
    else if (query.status !== undefined) select = select.where('status', '=', query.status);
    return { object: 'list', data: (await select.execute()).map((approval) => approvalObject(approval, at)) };
  });

  const executor = (request: FastifyRequest, at: Date) => (approval: StaffApprovalRow): ApprovalExecutor => {
    const params = approval.params;
    switch (approval.action) {
      case 'refund.create':
        // The decision and the pending refund commit together; the acquirer is asked after (see the approve route),
        // or by the recovery job if this process stops first. An approved refund cannot be forgotten.
        return async (tx, _approval, approver) => {
          const p = params as unknown as RefundParams;
          const ctx = await staffContext(services, request, approver.id, p.merchant, p.livemode, tx);
          const { refund } = await prepareRefund(tx, ctx, { payment_intent: p.payment_intent, amount: p.amount, ...(p.reason === undefined ? {} : { reason: p.reason }) }, at);
          return { result: { refund: refund.id, status: refund.status, amount: Number(refund.amount), currency: refund.currency } };
        };
      case 'api_key.create':
        return async (tx, _approval, approver) => {
          const p = params as { merchant: string; kind: ApiKeyKind; livemode: boolean; name?: string; permissions?: string[]; prepared_key?: { id: string; sha256: string; last4: string } };
          if (p.prepared_key === undefined) throw askedBeforeSplitSecrets();
          const created = await createPreparedApiKeyIn(tx, p.merchant, p.kind, p.livemode, { id: p.prepared_key.id, keyHash: Buffer.from(p.prepared_key.sha256, 'hex'), last4: p.prepared_key.last4 }, {
            ...(p.kind === 'restricted' ? { permissions: parsePermissions(p.permissions ?? []) } : {}), ...(p.name === undefined ? {} : { name: p.name }), actor: { type: 'staff', id: approver.id },
          });
          // The key's secret went to the requester when they asked; the approver is told which key now works.
          return { result: { api_key: created.id } };
        };
      case 'staff.invite':
        return (tx, _approval, approver) => {
          const p = params as { email: string; name: string; role: StaffRole; enrollment_code_sha256?: string };
          if (p.enrollment_code_sha256 === undefined) throw askedBeforeSplitSecrets();
          // As for a role change: only an owner may approve making someone an owner.
          if (!mayAssignRole(approver.role, undefined, p.role)) throw new CofferError('insufficient_permissions', 'Only an owner may approve inviting an owner.');
          return runInvite(tx, request, p, approver.id, at, rp(request).origin);
        };
      case 'staff.role_change':
        return async (tx, _approval, approver) => {
          const p = params as { user: string; from: StaffRole; to: StaffRole };
          const target = await findStaffUser(tx, p.user);
          if (target.role !== p.from) throw new CofferError('approval_unexpected_state', `The role of ${target.email} changed since this was asked (now ${target.role}).`);
          if (!isStaffRole(p.to) || !mayAssignRole(approver.role, p.from, p.to)) throw new CofferError('insufficient_permissions', 'Only an owner may approve making someone an owner.');
          await tx.updateTable('staff_users').set({ role: p.to }).where('id', '=', target.id).execute();
          await staffAudit(tx, staffOrigin(request), at, { actorId: approver.id, action: 'staff.role_change', objectType: 'staff_user', objectId: target.id, details: { from: p.from, to: p.to, approval: approval.id } });
          return { result: { user: target.id, role: p.to } };
        };
      case 'limit.change':
        return async (tx, _approval, approver) => {
          const p = params as unknown as LimitChangeParams & { merchant: string };
          const ctx = await staffContext(services, request, approver.id, p.merchant, p.livemode, tx);
          if (p.operation === 'create') {
            const created = await createLimitIn(tx, ctx, { subject: p.subject ?? 'merchant', kind: p.kind ?? 'count_per_day', value: p.value ?? 0, ...(p.currency === undefined ? {} : { currency: p.currency }) }, at);
            return { result: { limit: created.id } };
          }
          const target = p.limit ?? '';
          if (p.operation === 'update') await updateLimitIn(tx, ctx, target, p.value ?? 0, at);
          else await deleteLimitIn(tx, ctx, target, at);
          return { result: { limit: target, operation: p.operation } };
        };
      case 'rule_set.change':
        return async (tx, _approval, approver) => {
          const p = params as unknown as { merchant: string; livemode: boolean; rules: RuleParams[] };
          const ctx = await staffContext(services, request, approver.id, p.merchant, p.livemode, tx);
          const created = await createRuleSetIn(tx, ctx, p.rules, at);
          return { result: { rule_set: created.id, version: created.version } };
        };
      default:
        throw new Error(`no executor for ${String(approval.action)}`);
    }
  };

  for (const decision of ['approve', 'reject'] as const) {
    app.post(`${prefix}/approvals/:approval/${decision}`, {
      config: { staffAccess: 'approvals.decide', reauthenticate: decision === 'approve' }, schema: { params: strictObject({ approval: ObjectId }) },
    }, async (request) => {
      const at = now();
      const decided = await decideApproval(db, signedIn(request).user, (request.params as { approval: string }).approval, decision, executor(request, at), staffOrigin(request), at);
      if (decision === 'approve' && decided.approval.action === 'refund.create' && decided.approval.status === 'executed') {
        const sent = await sendApprovedRefund(services, request, decided.approval);
        return { ...approvalObject(sent.approval), shown_once: { refund: refundView(sent.refund) } };
      }
      return { ...approvalObject(decided.approval), ...(decided.shownOnce === undefined ? {} : { shown_once: decided.shownOnce }) };
    });
  }

  // -- The audit log ----------------------------------------------------------------------------------------------
  app.get(`${prefix}/audit`, {
    config: { staffAccess: 'audit.read' }, schema: { querystring: strictObject({ limit: Type.Optional(Limit), before: Type.Optional(Type.Integer({ minimum: 1 })), actor: Type.Optional(ObjectId) }) },
  }, async (request) => {
    const query = request.query as { limit?: number; before?: number; actor?: string };
    let select = db.selectFrom('audit_log').selectAll().orderBy('seq', 'desc').limit(query.limit ?? limits.listLimitDefault);
    if (query.before !== undefined) select = select.where('seq', '<', BigInt(query.before));
    if (query.actor !== undefined) select = select.where('actor_id', '=', query.actor);
    const rows = await select.execute();
    // Reading the audit log is itself recorded (PCI DSS 10.2.1.3).
    await staffAudit(db, staffOrigin(request), now(), { actorId: signedIn(request).user.id, action: 'audit.read', details: { count: rows.length } });
    return {
      object: 'list',
      data: rows.map((row) => ({
        seq: Number(row.seq), id: row.id, occurred_at: row.occurred_at.toISOString(), actor_type: row.actor_type, actor: row.actor_id, action: row.action,
        outcome: row.outcome, object_type: row.object_type, object_id: row.object_id, merchant: row.merchant_id, livemode: row.livemode,
        request_id: row.request_id, origin: row.origin, details: row.details,
      })),
    };
  });
}
