import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../support/server.ts';
import { signedInStaff, StaffClient } from '../support/staff.ts';
import { TestClock } from '../support/clock.ts';
import { SoftAuthenticator, type CeremonyOptions } from '../support/webauthn.ts';

// Goal: a signed-in, re-authenticated staff member registers a passkey (user verification required), then signs
// in with password and passkey; an assertion is refused when replayed, made for another origin, made without user
// verification, signed by another key, or carrying a counter that did not grow (a cloned authenticator); every
// refusal starts no session, counts towards the lockout and is audited; registration that does not verify stores
// nothing.
describe('staff passkeys (WebAuthn)', { concurrency: false }, () => {
  let server: TestServer;
  let origin: string;
  const clock = new TestClock();
  before(async () => {
    server = await startTestServer({ clock });
    origin = `https://localhost:${server.coffer.internalPort}`;
  });
  after(async () => server.close());

  const db = () => server.database.db;
  const passkeyRows = async (userId: string) => db().selectFrom('staff_passkeys').selectAll().where('user_id', '=', userId).execute();
  const activeSessions = async (userId: string) => (await db().selectFrom('staff_sessions').select('id').where('user_id', '=', userId).where('stage', '=', 'active').where('revoked_at', 'is', null).execute()).length;
  const audits = async (userId: string, action: string, outcome: 'success' | 'failure') =>
    (await db().selectFrom('audit_log').select('details').where('actor_id', '=', userId).where('action', '=', action).where('outcome', '=', outcome).execute()).length;

  async function register(client: StaffClient, authenticator: SoftAuthenticator, name = 'laptop'): Promise<void> {
    assert.equal((await client.reauthenticate()).status, 200);
    const options = await client.request('POST', '/staff/v1/passkeys/options');
    assert.equal(options.status, 200, options.body);
    const created = await client.request('POST', '/staff/v1/passkeys', { name, credential: authenticator.register(options.json.public_key as CeremonyOptions) });
    assert.equal(created.status, 200, created.body);
  }

  /** The password step, then options for the passkey step: what a sign-in page does. */
  async function passwordThenOptions(client: StaffClient): Promise<CeremonyOptions> {
    client.cookie = undefined;
    const first = await client.request('POST', '/staff/v1/session', { email: client.email, password: client.password });
    assert.equal(first.status, 200, first.body);
    assert.deepEqual(first.json.second_factors, ['totp', 'recovery_code', 'passkey']);
    const options = await client.request('POST', '/staff/v1/session/passkey_options');
    assert.equal(options.status, 200, options.body);
    const publicKey = options.json.public_key as CeremonyOptions & { userVerification: string; allowCredentials: Array<{ id: string }> };
    assert.equal(publicKey.userVerification, 'required');
    return publicKey;
  }

  test('registration needs a fresh re-authentication and user verification; then password and passkey sign in', async () => {
    const client = await signedInStaff(server, clock, 'support_agent', 'pia');
    const authenticator = new SoftAuthenticator(origin);
    clock.offsetMs += 6 * 60_000;
    assert.equal((await client.request('POST', '/staff/v1/passkeys/options')).status, 401, 'registering needs a re-authentication');

    // Without user verification, from another origin, or answering no challenge: refused, nothing stored.
    assert.equal((await client.reauthenticate()).status, 200);
    for (const variation of [{ userVerified: false }, { origin: 'https://evil.example' }]) {
      const options = await client.request('POST', '/staff/v1/passkeys/options');
      const refused = await client.request('POST', '/staff/v1/passkeys', { name: 'bad', credential: authenticator.register(options.json.public_key as CeremonyOptions, variation) });
      assert.equal(refused.status, 400, refused.body);
      assert.equal((refused.json.error as { code: string }).code, 'passkey_invalid');
    }
    const stale = await client.request('POST', '/staff/v1/passkeys', { name: 'bad', credential: authenticator.register({ challenge: 'bm90LWEtY2hhbGxlbmdl' }) });
    assert.equal(stale.status, 400, 'no challenge was issued for this answer');
    assert.deepEqual(await passkeyRows(client.userId), [], 'nothing was stored');
    assert.equal(await audits(client.userId, 'staff.passkey_add', 'failure'), 3);

    await register(client, authenticator);
    const listed = await client.request('GET', '/staff/v1/passkeys');
    assert.deepEqual((listed.json.data as Array<{ name: string; last_used: number | null }>).map((row) => [row.name, row.last_used]), [['laptop', null]]);
    assert.equal(await audits(client.userId, 'staff.passkey_add', 'success'), 1);

    const options = await passwordThenOptions(client);
    assert.equal((options as unknown as { allowCredentials: Array<{ id: string }> }).allowCredentials[0]?.id, authenticator.credentialId.toString('base64url'));
    const signedIn = await client.request('POST', '/staff/v1/session/mfa', { passkey: authenticator.assert(options) });
    assert.equal(signedIn.status, 200, signedIn.body);
    assert.equal(signedIn.json.stage, 'active');
    client.csrf = signedIn.json.csrf_token as string;
    const row = (await passkeyRows(client.userId))[0];
    assert.equal(row?.counter, 1n);
    assert.ok(row?.last_used_at !== null);
    const signInAudit = await db().selectFrom('audit_log').select('details').where('actor_id', '=', client.userId).where('action', '=', 'staff.sign_in').where('outcome', '=', 'success').orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    assert.equal((signInAudit.details as { method?: string }).method, 'passkey');

    // A passkey also re-authenticates, with the password.
    const reauthOptions = await client.request('POST', '/staff/v1/session/reauthenticate/passkey_options', undefined);
    assert.equal(reauthOptions.status, 200, reauthOptions.body);
    const reauth = await client.request('POST', '/staff/v1/session/reauthenticate', { password: client.password, passkey: authenticator.assert(reauthOptions.json.public_key as CeremonyOptions) });
    assert.equal(reauth.status, 200, reauth.body);
  });

  test('replayed, foreign-origin, unverified, wrongly signed and cloned assertions start no session and count as failures', async () => {
    const client = await signedInStaff(server, clock, 'finance', 'fay');
    const authenticator = new SoftAuthenticator(origin);
    await register(client, authenticator);
    const sessionsBefore = await activeSessions(client.userId);

    // A good assertion, used once; the same assertion again (a replay) is refused: its challenge is spent.
    const options = await passwordThenOptions(client);
    const assertion = authenticator.assert(options);
    assert.equal((await client.request('POST', '/staff/v1/session/mfa', { passkey: assertion })).status, 200);
    const afterGood = await activeSessions(client.userId);
    assert.equal(afterGood, sessionsBefore + 1);
    await passwordThenOptions(client);
    const replay = await client.request('POST', '/staff/v1/session/mfa', { passkey: assertion });
    assert.equal(replay.status, 401, replay.body);

    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const variations = [
      { label: 'another origin', variation: { origin: 'https://evil.example' } },
      { label: 'no user verification', variation: { userVerified: false } },
      { label: 'signed with another key', variation: { signWith: attacker } },
      { label: 'a counter that did not grow (cloned authenticator)', variation: { counter: 1 } },
    ];
    const failuresBefore = (await db().selectFrom('staff_users').select('failed_logins').where('id', '=', client.userId).executeTakeFirstOrThrow()).failed_logins;
    for (const { label, variation } of variations) {
      const fresh = await passwordThenOptions(client);
      const refused = await client.request('POST', '/staff/v1/session/mfa', { passkey: authenticator.assert(fresh, variation) });
      assert.equal(refused.status, 401, `${label}: ${refused.body}`);
      assert.equal((refused.json.error as { code: string }).code, 'authentication_failed', label);
    }
    assert.equal(await activeSessions(client.userId), afterGood, 'no refused assertion started a session');
    const failuresAfter = (await db().selectFrom('staff_users').select('failed_logins').where('id', '=', client.userId).executeTakeFirstOrThrow()).failed_logins;
    assert.equal(failuresAfter, failuresBefore + variations.length, 'each refusal counts towards the lockout');
    assert.equal((await passkeyRows(client.userId))[0]?.counter, 1n, 'the stored counter moved only with the accepted assertion');

    // Someone else's passkey is not this person's second factor.
    const other = await signedInStaff(server, clock, 'auditor', 'oli');
    const otherAuthenticator = new SoftAuthenticator(origin);
    await register(other, otherAuthenticator);
    const mine = await passwordThenOptions(client);
    assert.equal((await client.request('POST', '/staff/v1/session/mfa', { passkey: otherAuthenticator.assert(mine) })).status, 401);

    // Removing the passkey needs re-authentication, and then it no longer signs in.
    const [row] = await passkeyRows(client.userId);
    assert.ok(row !== undefined);
    client.cookie = undefined;
    assert.equal((await client.signIn()).status, 200);
    clock.offsetMs += 6 * 60_000;
    const unconfirmed = await client.request('POST', `/staff/v1/passkeys/${row.id}/delete`);
    assert.equal(unconfirmed.status, 401);
    assert.equal((await client.reauthenticate()).status, 200);
    assert.equal((await client.request('POST', `/staff/v1/passkeys/${row.id}/delete`)).status, 200);
    assert.equal((await client.request('POST', `/staff/v1/passkeys/${row.id}/delete`)).status, 404);
    assert.deepEqual(await passkeyRows(client.userId), []);
  });
});
