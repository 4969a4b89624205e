import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Browser, CDPSession, Page } from 'playwright-core';
import { encode } from 'uqr';
import { startTestServer, type TestServer } from '../support/server.ts';
import { inviteStaffUser, newEnrollmentCode } from '../../src/identity/staff.ts';
import { enrolledStaff, internalListener, StaffClient, strongPassword } from '../support/staff.ts';
import { TestClock } from '../support/clock.ts';
import { browserMissing, launchTrusting } from '../support/browser.ts';

// Goal: in a real browser (headless chromium with a virtual authenticator that verifies the user), a staff member
// signs in on the staff page with password and TOTP code, adds a passkey, signs out, and signs in again with
// password and passkey; with user verification failing, the passkey does not sign in. The page runs under a CSP
// that allows only its own script and breaks none of this.
describe('the staff page in a browser: passkeys', { concurrency: false, skip: browserMissing() }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let cdp: CDPSession;
  let staff: StaffClient;
  let authenticatorId: string;
  const clock = new TestClock();
  const consoleErrors: string[] = [];

  before(async () => {
    server = await startTestServer({ clock });
    staff = await enrolledStaff(server, clock, 'admin', 'ada');
    browser = await launchTrusting(fs.readFileSync(server.coffer.certFile ?? '', 'utf8'));
    const context = await browser.newContext();
    page = await context.newPage();
    page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()); });
    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const added = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    authenticatorId = added.authenticatorId;
  });
  after(async () => {
    await browser?.close();
    await server.close();
  });

  const origin = () => `https://localhost:${server.coffer.internalPort}`;
  const message = async () => (await page.locator('#message').textContent()) ?? '';

  async function passwordStep(): Promise<void> {
    await page.fill('#email', staff.email);
    await page.fill('#password', staff.password);
    await page.click('#password-step button[type=submit]');
    await page.waitForSelector('#second-step:not([hidden])');
  }

  test('the enrollment link: authenticator key shown, password and first code taken, recovery codes shown once; a spent link says so', async () => {
    const invited = await server.database.db.transaction().execute((tx) =>
      inviteStaffUser(tx, { email: 'newcomer@example.com', name: 'Newcomer', role: 'finance', createdBy: 'test' }, new Date(clock.nowMs())));
    const token = invited.enrollmentToken.reveal();
    await page.goto(`${origin()}/staff/enroll#${token}`);
    await page.waitForSelector('#setup:not([hidden])');
    assert.equal(new URL(page.url()).hash, '', 'the token left the address bar');
    assert.match((await page.locator('#welcome').textContent()) ?? '', /Newcomer \(newcomer@example\.com\).*finance/);
    const newcomer = new StaffClient(internalListener(server), clock);
    newcomer.totpSecret = ((await page.locator('#totp-secret').textContent()) ?? '').replace(/\s/g, '');
    const uri = (await page.locator('#otpauth').getAttribute('href')) ?? '';
    assert.match(uri, /^otpauth:\/\/totp\//);
    // The drawn QR code is the URI's: the same dark modules as encoding the URI here.
    const drawn = (await page.locator('#qr svg path').getAttribute('d')) ?? '';
    const expected = encode(uri, { border: 0 }).data.flatMap((row, y) => row.flatMap((dark, x) => (dark ? [`M${x},${y}h1v1h-1z`] : []))).join('');
    assert.ok(drawn.length > 0 && drawn === expected, 'the QR code encodes the otpauth URI');

    await page.fill('#password', strongPassword('copper'));
    await page.fill('#password-again', strongPassword('other'));
    await page.fill('#code', await newcomer.nextCode());
    await page.click('#complete button[type=submit]');
    assert.equal(await message(), 'The two passwords differ.');
    await page.fill('#password-again', strongPassword('copper'));
    await page.click('#complete button[type=submit]');
    await page.waitForSelector('#done:not([hidden])');
    const codes = await page.locator('#recovery-codes li').allTextContents();
    assert.equal(codes.length, 10);
    const user = await server.database.db.selectFrom('staff_users').select(['status', 'id']).where('email', '=', 'newcomer@example.com').executeTakeFirstOrThrow();
    assert.equal(user.status, 'active');

    newcomer.email = 'newcomer@example.com';
    newcomer.password = strongPassword('copper');
    assert.equal((await newcomer.signIn()).status, 200, 'the new account signs in');
    await page.goto('about:blank');
    await page.goto(`${origin()}/staff/enroll#${token}`);
    await page.locator('#message', { hasText: /\S/ }).waitFor();
    assert.equal(await page.isVisible('#setup'), false, 'a spent link enrolls nobody');
  });

  test('an invitation approved by a second person: the page asks for the requester\'s enrollment code, refuses a wrong one, and enrolls with the right one', async () => {
    const enrollmentCode = newEnrollmentCode();
    const invited = await server.database.db.transaction().execute((tx) =>
      inviteStaffUser(tx, { email: 'approved@example.com', name: 'Approved', role: 'support_agent', createdBy: 'test', enrollmentCodeHash: enrollmentCode.hash }, new Date(clock.nowMs())));
    await page.goto('about:blank'); // a new document, not a change of fragment on the last test's page
    await page.goto(`${origin()}/staff/enroll#${invited.enrollmentToken.reveal()}`);
    await page.waitForSelector('#code-needed:not([hidden])');
    assert.equal(await page.isVisible('#setup'), false, 'the link alone shows no authenticator key');
    assert.equal(await message(), '');
    await page.fill('#enrollment-code', 'aaaaa-aaaaa-aaaaa-aaaaa');
    await page.click('#code-form button[type=submit]');
    await page.locator('#message', { hasText: /not the one given for this invitation/ }).waitFor();
    assert.equal(await page.isVisible('#setup'), false);
    await page.fill('#enrollment-code', enrollmentCode.code.reveal());
    await page.click('#code-form button[type=submit]');
    await page.waitForSelector('#setup:not([hidden])');
    assert.equal(await page.isVisible('#code-needed'), false);
    assert.equal(await message(), '', 'the refusal\'s message is gone');
    const newcomer = new StaffClient(internalListener(server), clock);
    newcomer.totpSecret = ((await page.locator('#totp-secret').textContent()) ?? '').replace(/\s/g, '');
    await page.fill('#password', strongPassword('brass'));
    await page.fill('#password-again', strongPassword('brass'));
    await page.fill('#code', await newcomer.nextCode());
    await page.click('#complete button[type=submit]');
    await page.waitForSelector('#done:not([hidden])');
    const user = await server.database.db.selectFrom('staff_users').select('status').where('email', '=', 'approved@example.com').executeTakeFirstOrThrow();
    assert.equal(user.status, 'active', 'the code went with both steps');
  });

  test('password and code, then a passkey is added; signed out; password and passkey sign in again', async () => {
    const response = await page.goto(`${origin()}/staff/sign-in`);
    assert.equal(response?.status(), 200);
    assert.match(response?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    await passwordStep();
    assert.equal(await page.isVisible('#passkey-sign-in'), false, 'no passkey yet');
    await page.fill('#code', await staff.nextCode());
    await page.click('#code-step button[type=submit]');
    await page.waitForSelector('#signed-in:not([hidden])');
    assert.match((await page.locator('#who').textContent()) ?? '', /Signed in as ada \(.*\), admin\./);

    await page.fill('#passkey-name', 'Test laptop');
    await page.click('#add-passkey button[type=submit]');
    await page.locator('#message', { hasText: 'Passkey added.' }).waitFor();
    assert.deepEqual(await page.locator('#passkeys li').allTextContents(), ['Test laptop (not used yet)']);
    const credentials = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.credentials.length, 1, 'the authenticator holds the new passkey');
    const stored = await server.database.db.selectFrom('staff_passkeys').select(['name', 'credential_id']).where('user_id', '=', staff.userId).execute();
    assert.deepEqual(stored.map((row) => row.name), ['Test laptop']);

    await page.click('#sign-out');
    await page.waitForSelector('#password-step:not([hidden])');
    await passwordStep();
    assert.equal(await page.isVisible('#passkey-sign-in'), true);
    await page.click('#passkey-sign-in');
    await page.waitForSelector('#signed-in:not([hidden])');
    // The page lists the passkeys after it shows the signed-in panel, with a request of its own: wait for the list.
    await page.locator('#passkeys li', { hasText: /^Test laptop$/ }).waitFor();
    assert.deepEqual(await page.locator('#passkeys li').allTextContents(), ['Test laptop']);
    const signIn = await server.database.db.selectFrom('audit_log').select('details').where('actor_id', '=', staff.userId).where('action', '=', 'staff.sign_in')
      .where('outcome', '=', 'success').orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
    assert.equal((signIn.details as { method?: string }).method, 'passkey');
  });

  test('when the authenticator cannot verify the user, the passkey does not sign in', async () => {
    await page.click('#sign-out');
    await page.waitForSelector('#password-step:not([hidden])');
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
    await passwordStep();
    const sessionsBefore = (await server.database.db.selectFrom('staff_sessions').select('id').where('user_id', '=', staff.userId).where('stage', '=', 'active').where('revoked_at', 'is', null).execute()).length;
    await page.click('#passkey-sign-in');
    await page.locator('#message', { hasText: /\S/ }).waitFor();
    assert.match(await message(), /passkey was not used|authentication/i);
    assert.equal(await page.isVisible('#signed-in'), false);
    const sessionsAfter = (await server.database.db.selectFrom('staff_sessions').select('id').where('user_id', '=', staff.userId).where('stage', '=', 'active').where('revoked_at', 'is', null).execute()).length;
    assert.equal(sessionsAfter, sessionsBefore, 'no session was started');
    await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: true });
    assert.deepEqual(consoleErrors.filter((text) => /Content Security Policy/i.test(text)), [], 'the CSP blocked nothing the page needs');
  });
});
