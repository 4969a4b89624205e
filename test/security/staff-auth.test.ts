import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createFirstOwner } from '../../src/identity/staff.ts';
import { passwordWeakness } from '../../src/identity/passwords.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { enrolledStaff, enrollWithToken, signedInStaff, StaffClient, strongPassword, internalListener } from '../support/staff.ts';
import { TestClock } from '../support/clock.ts';

// Goal: staff sign in with an argon2id password and a second factor, every time; the password policy refuses
// short, common and reused passwords; ten failures lock an account for 30 minutes (the right password fails too);
// an unknown email is answered exactly like a wrong password; a TOTP code and a recovery code work once; sessions
// are HttpOnly, Secure, SameSite=Strict cookies that end on sign-out, after 15 idle minutes and after 12 hours;
// state-changing requests need the CSRF token; sensitive ones a fresh re-authentication. Each is audited.
describe('staff sign-in and sessions', { concurrency: false }, () => {
  let server: TestServer;
  const clock = new TestClock();
  before(async () => {
    server = await startTestServer({ clock });
  });
  after(async () => server.close());

  const db = () => server.database.db;
  const auditCount = async (action: string, outcome?: 'success' | 'failure') => {
    let query = db().selectFrom('audit_log').select(db().fn.countAll<string>().as('n')).where('action', '=', action);
    if (outcome !== undefined) query = query.where('outcome', '=', outcome);
    return Number((await query.executeTakeFirstOrThrow()).n);
  };

  test('the password policy refuses short, common and disguised common passwords', () => {
    for (const weak of ['short', 'password1234', 'Password2024!', 'Iloveyou2024!', 'aaaaaaaaaaaaaaa', 'abcabcabcabcabc', '1qaz2wsx3edc4rfv']) {
      assert.notEqual(passwordWeakness(weak, 'ann@example.com'), undefined, weak);
    }
    assert.match(passwordWeakness('annabel-the-great-2024', 'annabel@example.com') ?? '', /email/);
    assert.equal(passwordWeakness(strongPassword('x'), 'ann@example.com'), undefined);
  });

  test('coffer admin create: the first owner enrolls with the one-time token; a weak password changes nothing', async () => {
    const invited = await createFirstOwner(db(), 'Owner@Example.com', 'First Owner', new Date(clock.nowMs()));
    // The host adds owners until there are two, as approvals need two people, and no more.
    await createFirstOwner(db(), 'second@example.com', 'Second', new Date(clock.nowMs()));
    await assert.rejects(createFirstOwner(db(), 'third@example.com', 'Third', new Date(clock.nowMs())), /Two owners or administrators already exist/);
    const client = new StaffClient(internalListener(server), clock);
    const token = invited.enrollmentToken.reveal();
    const started = await client.request('POST', '/staff/v1/enrollment/start', { token });
    assert.equal(started.status, 200, started.body);
    assert.equal(started.json.email, 'owner@example.com');
    assert.match(started.json.otpauth_uri as string, /^otpauth:\/\/totp\/Coffer:owner%40example\.com\?secret=/);
    client.totpSecret = started.json.totp_secret as string;
    const weak = await client.request('POST', '/staff/v1/enrollment/complete', { token, password: 'Password2024!', code: await client.nextCode() });
    assert.equal(weak.status, 400);
    assert.equal((weak.json.error as { code: string }).code, 'password_too_weak');
    const wrongCode = await client.request('POST', '/staff/v1/enrollment/complete', { token, password: strongPassword('first'), code: '000000' });
    assert.equal(wrongCode.status, 400);
    const user = await db().selectFrom('staff_users').selectAll().where('id', '=', invited.userId).executeTakeFirstOrThrow();
    assert.equal(user.status, 'invited');
    assert.equal(user.password_hash, null);
    await enrollWithToken(client, token, strongPassword('first'));
    assert.equal(client.recoveryCodes.length, 10);
    const stored = await db().selectFrom('staff_users').selectAll().where('id', '=', invited.userId).executeTakeFirstOrThrow();
    assert.equal(stored.status, 'active');
    assert.match(stored.password_hash ?? '', /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.ok(!(stored.totp_secret_ciphertext ?? Buffer.alloc(0)).toString('latin1').includes(client.totpSecret), 'the TOTP secret is stored sealed');
    const again = await client.request('POST', '/staff/v1/enrollment/start', { token });
    assert.equal((again.json.error as { code: string }).code, 'enrollment_link_invalid');
  });

  test('a password alone opens nothing; the session cookie is __Host-, HttpOnly, Secure, SameSite=Strict', async () => {
    const staff = await enrolledStaff(server, clock, 'support_agent', 'cookie');
    const first = await staff.request('POST', '/staff/v1/session', { email: staff.email, password: staff.password });
    assert.equal(first.status, 200);
    assert.equal(first.json.stage, 'mfa_pending');
    const cookie = staff.lastSetCookie ?? '';
    assert.match(cookie, /^__Host-coffer_staff=/);
    for (const flag of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) assert.ok(cookie.includes(flag), `${flag} in ${cookie}`);
    const pendingCookie = staff.cookie;
    const blocked = await staff.request('GET', '/staff/v1/session');
    assert.equal(blocked.status, 401, 'a session waiting for its second factor is no session');
    const wrong = await staff.request('POST', '/staff/v1/session/mfa', { code: '123456' });
    assert.equal(wrong.status, 401);
    const ok = await staff.request('POST', '/staff/v1/session/mfa', { code: await staff.nextCode() });
    assert.equal(ok.status, 200, ok.body);
    assert.notEqual(staff.cookie, pendingCookie, 'a new session token after the second factor (no fixation)');
    staff.csrf = ok.json.csrf_token as string;
    const me = await staff.request('GET', '/staff/v1/session');
    assert.equal(me.status, 200);
    assert.equal((me.json.user as { role: string }).role, 'support_agent');
    staff.cookie = pendingCookie;
    assert.equal((await staff.request('GET', '/staff/v1/session')).status, 401, 'the pending session ended');
  });

  test('a body over the staff API\'s 64 KiB is refused with that limit named, before anything runs', async () => {
    const response = await new StaffClient(internalListener(server), clock).request('POST', '/staff/v1/session', { email: 'a@example.com', password: 'x'.repeat(70_000) });
    assert.equal(response.status, 400, response.body);
    assert.equal((response.json.error as { message: string }).message, 'The request body is larger than 65536 bytes.');
  });

  test('an unknown email gets the same answer as a wrong password, in comparable time; both are audited', async () => {
    const staff = await enrolledStaff(server, clock, 'finance', 'enum');
    const time = async (email: string) => {
      const started = process.hrtime.bigint();
      const response = await new StaffClient(internalListener(server), clock).request('POST', '/staff/v1/session', { email, password: 'wrong-password-123456' });
      return { response, ms: Number(process.hrtime.bigint() - started) / 1e6 };
    };
    const unknown: number[] = [];
    const wrong: number[] = [];
    let unknownBody = '';
    let wrongBody = '';
    for (let i = 0; i < 5; i += 1) {
      const a = await time('nobody@staff.example');
      const b = await time(staff.email);
      assert.equal(a.response.status, 401);
      assert.equal(b.response.status, 401);
      unknown.push(a.ms);
      wrong.push(b.ms);
      const strip = (body: Record<string, unknown>) => JSON.stringify({ ...(body.error as object), request_id: undefined });
      unknownBody = strip(a.response.json);
      wrongBody = strip(b.response.json);
    }
    assert.equal(unknownBody, wrongBody);
    const median = (values: number[]) => [...values].sort((x, y) => x - y)[2] ?? 0;
    // Both verify an argon2id hash (a decoy for the unknown email): neither is an order of magnitude faster.
    assert.ok(median(unknown) > median(wrong) * 0.5 && median(wrong) > median(unknown) * 0.5, `unknown ${median(unknown)} ms, wrong ${median(wrong)} ms`);
    const failures = await db().selectFrom('audit_log').select(['actor_id', 'details', 'outcome']).where('action', '=', 'staff.sign_in').where('outcome', '=', 'failure').execute();
    assert.ok(failures.some((row) => row.actor_id === 'unknown' && (row.details as { email?: string }).email === 'nobody@staff.example'));
    assert.ok(failures.some((row) => row.actor_id === staff.userId && (row.details as { reason?: string }).reason === 'wrong_password'));
    // Five wrong passwords so far: counted, not yet locked.
    await db().updateTable('staff_users').set({ failed_logins: 0 }).where('id', '=', staff.userId).execute();
  });

  test('ten failures lock the account for 30 minutes: the right password fails too; then it works again', async () => {
    const staff = await enrolledStaff(server, clock, 'developer', 'lockout');
    const lockoutsBefore = await auditCount('staff.lockout');
    for (let i = 0; i < 10; i += 1) {
      const response = await staff.request('POST', '/staff/v1/session', { email: staff.email, password: `not-the-password-${i}` });
      assert.equal(response.status, 401);
    }
    assert.equal(await auditCount('staff.lockout'), lockoutsBefore + 1);
    const locked = await staff.request('POST', '/staff/v1/session', { email: staff.email, password: staff.password });
    assert.equal(locked.status, 401, 'the right password while locked');
    assert.equal((locked.json.error as { code: string }).code, 'authentication_failed');
    assert.equal(await db().selectFrom('staff_sessions').select('id').where('user_id', '=', staff.userId).executeTakeFirst(), undefined, 'no session was created');
    clock.offsetMs += 29 * 60_000;
    assert.equal((await staff.request('POST', '/staff/v1/session', { email: staff.email, password: staff.password })).status, 401, 'still locked after 29 minutes');
    clock.offsetMs += 2 * 60_000;
    assert.equal((await staff.signIn()).status, 200, 'unlocked after 30 minutes');
  });

  test('wrong second-factor codes count towards the lockout too', async () => {
    const staff = await enrolledStaff(server, clock, 'developer', 'mfalock');
    for (let i = 0; i < 10; i += 1) {
      const first = await staff.request('POST', '/staff/v1/session', { email: staff.email, password: staff.password });
      if (first.status !== 200) break;
      assert.equal((await staff.request('POST', '/staff/v1/session/mfa', { code: String(100000 + i) })).status, 401);
    }
    const after10 = await staff.request('POST', '/staff/v1/session', { email: staff.email, password: staff.password });
    assert.equal(after10.status, 401);
    const row = await db().selectFrom('staff_users').select('locked_until').where('id', '=', staff.userId).executeTakeFirstOrThrow();
    assert.ok(row.locked_until !== null && row.locked_until.getTime() > clock.nowMs());
    clock.offsetMs += 31 * 60_000;
  });

  test('a TOTP code works once, a recovery code works once', async () => {
    const staff = await signedInStaff(server, clock, 'finance', 'once');
    const code = await staff.nextCode();
    const first = await staff.request('POST', '/staff/v1/session/reauthenticate', { password: staff.password, code });
    assert.equal(first.status, 200, first.body);
    const replay = await staff.request('POST', '/staff/v1/session/reauthenticate', { password: staff.password, code });
    assert.equal(replay.status, 401, 'the same code again is refused');
    const recovery = staff.recoveryCodes[0] ?? '';
    const other = new StaffClient(internalListener(server), clock);
    Object.assign(other, { email: staff.email, password: staff.password, totpSecret: staff.totpSecret });
    assert.equal((await other.request('POST', '/staff/v1/session', { email: staff.email, password: staff.password })).status, 200);
    assert.equal((await other.request('POST', '/staff/v1/session/mfa', { recovery_code: recovery })).status, 200);
    assert.equal((await other.request('POST', '/staff/v1/session', { email: staff.email, password: staff.password })).status, 200);
    assert.equal((await other.request('POST', '/staff/v1/session/mfa', { recovery_code: recovery })).status, 401, 'a used recovery code');
    const used = await db().selectFrom('staff_recovery_codes').select('used_at').where('user_id', '=', staff.userId).where('used_at', 'is not', null).execute();
    assert.equal(used.length, 1);
  });

  test('state-changing requests without the CSRF token are refused and change nothing', async () => {
    const staff = await signedInStaff(server, clock, 'auditor', 'csrf');
    const before = await auditCount('staff.sign_out');
    for (const csrf of [null, 'forged-token']) {
      const response = await staff.request('DELETE', '/staff/v1/session', undefined, { csrf });
      assert.equal(response.status, 403);
      assert.equal((response.json.error as { code: string }).code, 'csrf_token_invalid');
    }
    assert.equal((await staff.request('GET', '/staff/v1/session')).status, 200, 'the session was not signed out');
    assert.equal(await auditCount('staff.sign_out'), before);
    const denied = await db().selectFrom('audit_log').select('details').where('action', '=', 'staff.access_denied').where('actor_id', '=', staff.userId).execute();
    assert.equal(denied.length, 2);
  });

  test('sign-out ends the session; so do 15 idle minutes and the 12-hour lifetime', async () => {
    const staff = await signedInStaff(server, clock, 'auditor', 'ends');
    const cookie = staff.cookie;
    assert.equal((await staff.request('DELETE', '/staff/v1/session')).status, 200);
    staff.cookie = cookie;
    const after = await staff.request('GET', '/staff/v1/session');
    assert.equal(after.status, 401);
    assert.equal((after.json.error as { code: string }).code, 'session_missing');

    assert.equal((await staff.signIn()).status, 200);
    clock.offsetMs += 14 * 60_000;
    assert.equal((await staff.request('GET', '/staff/v1/session')).status, 200, 'active within 15 minutes');
    clock.offsetMs += 14 * 60_000;
    assert.equal((await staff.request('GET', '/staff/v1/session')).status, 200, 'each request restarts the idle clock');
    clock.offsetMs += 15 * 60_000 + 1_000;
    const idle = await staff.request('GET', '/staff/v1/session');
    assert.equal((idle.json.error as { code: string }).code, 'session_expired');
    assert.equal((await staff.request('GET', '/staff/v1/session')).status, 401, 'and it stays ended');

    assert.equal((await staff.signIn()).status, 200);
    for (let step = 1; step < 72; step += 1) {
      clock.offsetMs += 10 * 60_000;
      assert.equal((await staff.request('GET', '/staff/v1/session')).status, 200, `active after ${step * 10} minutes of use`);
    }
    clock.offsetMs += 10 * 60_000;
    const old = await staff.request('GET', '/staff/v1/session');
    assert.equal((old.json.error as { code: string }).code, 'session_expired', 'past the 12-hour lifetime');
  });

  test('a password change needs a recent re-authentication, refuses the last four passwords, and ends other sessions', async () => {
    const staff = await signedInStaff(server, clock, 'developer', 'rotate');
    const other = new StaffClient(internalListener(server), clock);
    Object.assign(other, { email: staff.email, password: staff.password, totpSecret: staff.totpSecret });
    assert.equal((await other.signIn()).status, 200);
    clock.offsetMs += 6 * 60_000;
    const stale = await staff.request('POST', '/staff/v1/password', { current_password: staff.password, new_password: strongPassword('next-1') });
    assert.equal((stale.json.error as { code: string }).code, 'reauthentication_required');
    assert.equal((await staff.reauthenticate()).status, 200);
    const passwords = [staff.password];
    for (let i = 1; i <= 4; i += 1) {
      const next = strongPassword(`next-${i}`);
      const changed = await staff.request('POST', '/staff/v1/password', { current_password: staff.password, new_password: next });
      assert.equal(changed.status, 200, changed.body);
      staff.password = next;
      passwords.push(next);
    }
    const reused = await staff.request('POST', '/staff/v1/password', { current_password: staff.password, new_password: passwords[1] });
    assert.equal((reused.json.error as { code: string }).code, 'password_reused');
    const fifthBack = await staff.request('POST', '/staff/v1/password', { current_password: staff.password, new_password: passwords[0] });
    assert.equal(fifthBack.status, 200, 'the fifth password back may be used again');
    assert.equal((await other.request('GET', '/staff/v1/session')).status, 401, 'the other session ended with the change');
  });
  test('a lockout from password guesses leaves open sessions alone; one reached past the password ends them all', async () => {
    const staff = await signedInStaff(server, clock, 'developer', 'guessed');
    const guesser = new StaffClient(internalListener(server), clock);
    for (let i = 0; i < 10; i += 1) {
      assert.equal((await guesser.request('POST', '/staff/v1/session', { email: staff.email, password: `guess-${i}` })).status, 401);
    }
    const locked = await db().selectFrom('staff_users').select('locked_until').where('id', '=', staff.userId).executeTakeFirstOrThrow();
    assert.ok(locked.locked_until !== null && locked.locked_until.getTime() > clock.nowMs(), 'locked');
    // Anyone who knows the email can send those guesses: they must not sign the person out.
    assert.equal((await staff.request('GET', '/staff/v1/session')).status, 200, 'the open session goes on');
    clock.offsetMs += 31 * 60_000;
    await staff.signIn();
    // Someone holding a session who gets the password wrong ten times at re-authentication is signed out everywhere.
    for (let i = 0; i < 10; i += 1) {
      await staff.request('POST', '/staff/v1/session/reauthenticate', { password: `wrong-${i}`, code: '000000' });
    }
    assert.equal((await staff.request('GET', '/staff/v1/session')).status, 401, 'the session ended with the lockout');
    clock.offsetMs += 31 * 60_000;
  });

  test('a wrong current password on a password change counts towards the lockout; refusals name the parameter', async () => {
    const staff = await signedInStaff(server, clock, 'developer', 'changeguess');
    assert.equal((await staff.reauthenticate()).status, 200);
    const weak = await staff.request('POST', '/staff/v1/password', { current_password: staff.password, new_password: 'Password2024!' });
    assert.deepEqual([(weak.json.error as { code: string }).code, (weak.json.error as { param: string }).param], ['password_too_weak', 'new_password']);
    const failuresOf = async () => (await db().selectFrom('staff_users').select('failed_logins').where('id', '=', staff.userId).executeTakeFirstOrThrow()).failed_logins;
    const before = await failuresOf();
    const wrong = await staff.request('POST', '/staff/v1/password', { current_password: 'not-my-password', new_password: strongPassword('changeguess-2') });
    assert.deepEqual([wrong.status, (wrong.json.error as { param: string }).param], [401, 'current_password']);
    assert.equal(await failuresOf(), before + 1);
    const missing = await staff.request('POST', '/staff/v1/passkeys/pk_nope/delete', {});
    assert.deepEqual([missing.status, (missing.json.error as { param: string }).param], [404, 'passkey']);
  });

  test('the staff API takes JSON only, and a route without parameters takes none: refused by name, nothing changes', async () => {
    const staff = await signedInStaff(server, clock, 'developer', 'strictbody');
    assert.equal((await staff.reauthenticate()).status, 200);
    const codesBefore = await db().selectFrom('staff_recovery_codes').select('code_hash').where('user_id', '=', staff.userId).execute();
    const extra = await staff.request('POST', '/staff/v1/recovery_codes', { x: 1 });
    assert.deepEqual([extra.status, (extra.json.error as { code: string }).code, (extra.json.error as { param: string }).param], [400, 'parameter_unknown', 'x']);
    assert.deepEqual(await db().selectFrom('staff_recovery_codes').select('code_hash').where('user_id', '=', staff.userId).execute(), codesBefore, 'no new codes');
    const form = await staff.requestRaw('POST', '/staff/v1/recovery_codes', 'x=1', 'application/x-www-form-urlencoded');
    assert.equal(form.status, 400, form.body);
    assert.equal((form.json.error as { message: string }).message, 'Send the request body as application/json.');
    assert.equal((await staff.request('POST', '/staff/v1/recovery_codes', {})).status, 200, 'an empty body is no parameter');
  });
});
