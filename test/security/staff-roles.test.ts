import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { staffRoutesOf } from '../../src/api/internal-server.ts';
import { rolePermissions, staffRoles } from '../../src/identity/roles.ts';
import type { StaffRole } from '../../src/store/database.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';
import { recoverPendingRefunds } from '../../src/jobs/recover-refunds.ts';
import { limits } from '../../src/limits.ts';
import { enrollWithToken, internalListener, signedInStaff, StaffClient, strongPassword } from '../support/staff.ts';
import { TestClock } from '../support/clock.ts';

const code = (response: { json: Record<string, unknown> }) => (response.json.error as { code?: string } | undefined)?.code;

// Goal: default deny. Every route of the staff API declares what it needs, and walking every route with every role
// gives exactly the role table's answer: 403 where the role lacks the permission, never 403 where it has it. Four-eyes
// actions (large refunds, API keys, invitations, role changes) wait for a second person, who cannot be the requester
// and must hold the permission; approvals expire; every step is audited.
describe('staff roles and four-eyes approval', { concurrency: false }, () => {
  let server: TestServer;
  const clock = new TestClock();
  const staff = new Map<StaffRole, StaffClient>();
  before(async () => {
    server = await startTestServer({ clock, providerTimeoutMs: 1_000, configEnv: { COFFER_FOUR_EYES_REFUND_ABOVE: '5000' } });
    for (const role of staffRoles) staff.set(role, await signedInStaff(server, clock, role));
  });
  after(async () => server.close());
  const as = (role: StaffRole) => {
    const client = staff.get(role);
    assert.ok(client !== undefined);
    return client;
  };
  const db = () => server.database.db;
  /** Each TOTP code moves the test clock on 30 s; long walks outlast the 15-minute idle timeout, so sign in anew. */
  const freshSessions = async () => {
    for (const client of staff.values()) assert.equal((await client.signIn()).status, 200);
  };

  test('every route with every role: the answer matches the role table', async () => {
    const routes = staffRoutesOf(server.coffer.internalApp);
    assert.ok(routes.length >= 20, `${routes.length} staff routes`);
    let checked = 0;
    for (const role of staffRoles) {
      const client = as(role);
      assert.equal((await client.signIn()).status, 200);
      for (const route of routes) {
        if (route.access === 'public' || route.access === 'mfa_pending' || route.url.endsWith('/session') && route.method === 'DELETE') continue;
        if (route.reauthenticate) assert.equal((await client.reauthenticate()).status, 200);
        const path = route.url.replace(/:(\w+)/g, (_match, name: string) => `${name}_unknown`);
        const response = await client.request(route.method, path, route.method === 'GET' ? undefined : {});
        const allowed = route.access === 'signed_in' || rolePermissions[role].includes(route.access);
        if (allowed) {
          assert.notEqual(response.status, 403, `${role} ${route.method} ${route.url}: ${response.body}`);
          assert.notEqual(response.status, 401, `${role} ${route.method} ${route.url}: ${response.body}`);
        } else {
          assert.equal(response.status, 403, `${role} ${route.method} ${route.url}: ${response.body}`);
          assert.equal(code(response), 'insufficient_permissions');
        }
        checked += 1;
      }
    }
    assert.ok(checked >= staffRoles.length * 15, `${checked} route × role checks`);
  });

  test('a route that declares no access stops the internal server from starting', async () => {
    const { buildInternalServer } = await import('../../src/api/internal-server.ts');
    const app = await buildInternalServer(server.coffer.services, {
      https: null, rateLimits: { perKey: 10, perAddress: 10, windowSeconds: 1, redisUrl: undefined, redisPrefix: 'x' },
      staffSecretKey: server.coffer.services.staffSecretKey, fourEyesRefundAbove: 1, onFatal: () => undefined,
    });
    assert.throws(() => app.get('/staff/v1/forgotten', async () => ({})), /declares no staffAccess/);
    await app.close();
  });

  test('a refund above the threshold waits for a second person with the right role; self-approval is refused', async () => {
    await freshSessions();
    const intent = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const support = as('support_agent');
    const small = await support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 1000, reason: 'requested_by_customer' });
    assert.equal(small.status, 200, small.body);
    assert.equal(small.json.status, 'succeeded');
    const big = await support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 8000 });
    assert.equal(big.status, 202, big.body);
    const approvalId = (big.json.approval as { id: string }).id;
    const refundsBefore = await server.stripe.refunds.list({ payment_intent: intent.id });
    assert.equal(refundsBefore.data.length, 1, 'nothing refunded while waiting');

    const finance = as('finance');
    const selfTry = await as('admin').request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 7000 });
    const adminApproval = (selfTry.json.approval as { id: string }).id;
    assert.equal((await as('admin').reauthenticate()).status, 200);
    const self = await as('admin').request('POST', `/staff/v1/approvals/${adminApproval}/approve`, {});
    assert.equal(self.status, 403);
    assert.equal(code(self), 'approval_self_decision');
    assert.equal((await as('support_agent').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 403, 'support may not decide');
    assert.equal((await as('developer').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 403, 'developers may not decide');
    assert.equal((await server.stripe.refunds.list({ payment_intent: intent.id })).data.length, 1, 'refusals changed nothing');

    clock.offsetMs += 6 * 60_000;
    const stale = await finance.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(code(stale), 'reauthentication_required', 'approving needs a password and code from the last 5 minutes');
    assert.equal((await finance.reauthenticate()).status, 200);
    const approved = await finance.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(approved.status, 200, approved.body);
    assert.equal(approved.json.status, 'executed');
    const refunds = await server.stripe.refunds.list({ payment_intent: intent.id });
    assert.deepEqual(refunds.data.map((refund) => refund.amount).sort((a, b) => a - b), [1000, 8000]);
    const twice = await finance.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(code(twice), 'approval_unexpected_state');
    const trail = await db().selectFrom('audit_log').select(['action', 'actor_id', 'actor_type']).where('object_id', 'in', [approvalId, ...refunds.data.map((r) => r.id)]).execute();
    assert.ok(trail.some((row) => row.action === 'approval.request' && row.actor_id === support.userId));
    assert.ok(trail.some((row) => row.action === 'approval.approve' && row.actor_id === finance.userId));
    assert.ok(trail.some((row) => row.action === 'refund.create' && row.actor_type === 'staff' && row.actor_id === finance.userId));
    assert.ok((await db().selectFrom('audit_log').select('id').where('action', '=', 'approval.approve').where('outcome', '=', 'failure').where('actor_id', '=', as('admin').userId).execute()).length >= 1);
  });

  test('small refunds cannot add up past the threshold; two approvers at once refund once', async () => {
    await freshSessions();
    const intent = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const support = as('support_agent');
    for (const expected of [200, 200]) {
      assert.equal((await support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 2000 })).status, expected);
    }
    const third = await support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 2000 });
    assert.equal(third.status, 202, 'a third 2000 takes the refunded total to 6000, above 5000');
    assert.equal((third.json.approval as { summary?: string }).summary,
      `Refund 20.00 usd of ${intent.id} (60.00 usd refunded in all, above the four-eyes threshold of 50.00 usd)`, 'amounts as the approver reads them');
    assert.equal((await server.stripe.refunds.list({ payment_intent: intent.id })).data.length, 2);
    const approvalId = (third.json.approval as { id: string }).id;
    assert.equal((await as('finance').reauthenticate()).status, 200);
    assert.equal((await as('admin').reauthenticate()).status, 200);
    const answers = await Promise.all(['finance', 'admin'].map((role) => as(role as StaffRole).request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 400], answers.map((answer) => answer.body).join('\n'));
    assert.equal(answers.map(code).filter((value) => value !== undefined).join(), 'approval_unexpected_state');
    const refunds = await server.stripe.refunds.list({ payment_intent: intent.id });
    assert.deepEqual(refunds.data.map((refund) => refund.amount), [2000, 2000, 2000], 'the approved refund ran exactly once');
  });

  test('a refund that cannot be made is refused at once, above the threshold too: no approval is asked for', async () => {
    await freshSessions();
    const intent = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const support = as('support_agent');
    const approvalsBefore = await db().selectFrom('staff_approvals').select('id').execute();
    const tooMuch = await support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 9001 });
    assert.deepEqual([tooMuch.status, code(tooMuch)], [400, 'amount_too_large'], tooMuch.body);
    const uncaptured = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, capture_method: 'manual' });
    const notCaptured = await support.request('POST', '/staff/v1/refunds', { payment_intent: uncaptured.id });
    assert.deepEqual([notCaptured.status, code(notCaptured)], [400, 'charge_not_refundable'], notCaptured.body);
    await server.stripe.refunds.create({ payment_intent: intent.id });
    const nothingLeft = await support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id });
    assert.deepEqual([nothingLeft.status, code(nothingLeft)], [400, 'charge_already_refunded'], nothingLeft.body);
    assert.deepEqual(await db().selectFrom('staff_approvals').select('id').execute(), approvalsBefore, 'no approval was asked for');
    assert.equal((await server.stripe.refunds.list({ payment_intent: intent.id })).data.length, 1);
  });

  test('an approval whose action fails is closed as failed, with the reason; one past its time lists as expired', async () => {
    await freshSessions();
    const intent = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const asked = await as('support_agent').request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 6000 });
    assert.equal(asked.status, 202, asked.body);
    const approvalId = (asked.json.approval as { id: string }).id;
    // Meanwhile the merchant refunds most of the payment: what was asked for is no longer there.
    await server.stripe.refunds.create({ payment_intent: intent.id, amount: 5000 });
    const finance = as('finance');
    assert.equal((await finance.reauthenticate()).status, 200);
    const approved = await finance.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.deepEqual([approved.status, code(approved)], [400, 'amount_too_large'], approved.body);
    const failed = await finance.request('GET', '/staff/v1/approvals?status=failed');
    const listed = (failed.json.data as Array<{ id: string; status: string; decided_by: string; result: { error: { code: string } } }>).find((approval) => approval.id === approvalId);
    assert.deepEqual([listed?.status, listed?.decided_by, listed?.result.error.code], ['failed', finance.userId, 'amount_too_large']);
    const again = await as('admin').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(code(again), 'approval_unexpected_state', 'a failed request is closed');
    assert.equal((await server.stripe.refunds.list({ payment_intent: intent.id })).data.length, 1);

    const later = await as('support_agent').request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 4000 });
    assert.equal(later.status, 202, later.body);
    const laterId = (later.json.approval as { id: string }).id;
    const ids = async (status: string) => ((await as('finance').request('GET', `/staff/v1/approvals?status=${status}&limit=100`)).json.data as Array<{ id: string }>).map((approval) => approval.id);
    assert.ok((await ids('pending')).includes(laterId));
    assert.equal((await ids('expired')).includes(laterId), false);
    clock.offsetMs += 24 * 3_600_000 + 60_000;
    await freshSessions();
    assert.equal((await ids('pending')).includes(laterId), false);
    assert.ok((await ids('expired')).includes(laterId));
    const refused = await as('finance').request('GET', '/staff/v1/approvals?status=approved');
    assert.equal(refused.status, 400, 'a state no approval can be in is refused, not answered with nothing');
  });

  test('an approval refused only because refunds are still in progress stays pending; once they settle, it fails for good', async () => {
    await freshSessions();
    const intent = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const asked = await as('support_agent').request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 6000 });
    assert.equal(asked.status, 202, asked.body);
    const approvalId = (asked.json.approval as { id: string }).id;
    // The merchant refunds 5000 while the acquirer is slow: the refund stays pending, holding what it refunds.
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(2_500);
    const sent = await rawRequest(server, 'POST', '/v1/refunds', { key: server.secretKey, body: `payment_intent=${intent.id}&amount=5000` });
    assert.equal(sent.status, 503, 'no answer from the acquirer in time');
    assert.match(String((sent.json.error as { message: string }).message), /outcome of this refund is not known yet\. .*retrieve the refund later .*: it will never be refunded twice\.$/);
    const [inFlight] = (await server.stripe.refunds.list({ payment_intent: intent.id })).data;
    assert.deepEqual([inFlight?.amount, inFlight?.status], [5000, 'pending']);
    assert.ok(inFlight !== undefined);
    const finance = as('finance');
    assert.equal((await finance.reauthenticate()).status, 200);
    const refused = await finance.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.deepEqual([refused.status, code(refused)], [400, 'amount_too_large'], refused.body);
    assert.match(String((refused.json.error as { message: string }).message), /5000 more is held by refunds still in progress/);
    const pending = await finance.request('GET', '/staff/v1/approvals?status=pending&limit=100');
    assert.ok((pending.json.data as Array<{ id: string }>).some((approval) => approval.id === approvalId), 'the pending refund may still fail: the request waits');
    const audited = await db().selectFrom('audit_log').select(['outcome', 'details']).where('action', '=', 'approval.approve').where('object_id', '=', approvalId).execute();
    assert.deepEqual(audited.map((row) => [row.outcome, (row.details as { status?: string }).status]), [['failure', 'pending']]);

    // The refund succeeds: now the 6000 asked for is not there, and the request closes as failed.
    await new Promise((resolve) => setTimeout(resolve, 2_600));
    clock.offsetMs += limits.inFlightRecoveryAfterMs + 60_000;
    assert.equal(await recoverPendingRefunds(server.coffer.services), 1);
    assert.equal((await server.stripe.refunds.retrieve(inFlight.id)).status, 'succeeded');
    await freshSessions();
    assert.equal((await as('finance').reauthenticate()).status, 200);
    const again = await as('finance').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.deepEqual([again.status, code(again)], [400, 'amount_too_large'], again.body);
    const failed = await as('finance').request('GET', '/staff/v1/approvals?status=failed&limit=100');
    assert.ok((failed.json.data as Array<{ id: string }>).some((approval) => approval.id === approvalId));
    assert.deepEqual((await server.stripe.refunds.list({ payment_intent: intent.id })).data.map((refund) => refund.amount), [5000]);
  });

  test('the threshold is in US cents and holds in every currency: 50.00 USD is 7,500 yen', async () => {
    await freshSessions();
    const intent = await server.stripe.paymentIntents.create({ amount: 20_000, currency: 'jpy', payment_method: 'pm_card_visa', confirm: true });
    const support = as('support_agent');
    const under = await support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 7_000 });
    assert.equal(under.status, 200, `7,000 yen is under 50.00 USD: ${under.body}`);
    const over = await support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 1_000 });
    assert.equal(over.status, 202, 'a refunded total of 8,000 yen is above it');
    assert.match(String((over.json.approval as { summary?: string }).summary), /^Refund 1000 jpy of pi_\w+ \(8000 jpy refunded in all, above the four-eyes threshold of 7500 jpy\)$/);
    assert.deepEqual((await server.stripe.refunds.list({ payment_intent: intent.id })).data.map((refund) => refund.amount), [7_000]);
  });

  test('refunds sent at once cannot add up past the threshold either: decided on the locked charge', async () => {
    await freshSessions();
    const intent = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const support = as('support_agent');
    const answers = await Promise.all(Array.from({ length: 4 }, () => support.request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 2000 })));
    // 2000 + 2000 fit under 5000; a third would make 6000: however the four interleave, two run and two wait.
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 200, 202, 202], answers.map((answer) => answer.body).join('\n'));
    const refunds = await server.stripe.refunds.list({ payment_intent: intent.id });
    assert.equal(refunds.data.reduce((sum, refund) => sum + refund.amount, 0), 4000, 'no more than the threshold without a second person');
  });

  test('an approved refund whose acquirer answer never came is finished by the recovery job: an approval is never left undone', async () => {
    await freshSessions();
    const intent = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const asked = await as('support_agent').request('POST', '/staff/v1/refunds', { payment_intent: intent.id, amount: 7000 });
    assert.equal(asked.status, 202);
    const approvalId = (asked.json.approval as { id: string }).id;
    assert.equal((await as('finance').reauthenticate()).status, 200);
    // The acquirer answers after Coffer has stopped waiting: as if the process had stopped after the decision.
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(2_500);
    const approved = await as('finance').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(approved.status, 200, approved.body);
    assert.equal(approved.json.status, 'executed', 'the decision and the pending refund committed together');
    const refundId = (approved.json.result as { refund: string }).refund;
    assert.equal((await server.stripe.refunds.retrieve(refundId)).status, 'pending');

    await new Promise((resolve) => setTimeout(resolve, 2_600));
    clock.offsetMs += limits.inFlightRecoveryAfterMs + 60_000;
    assert.equal(await recoverPendingRefunds(server.coffer.services), 1);
    const settled = await server.stripe.refunds.retrieve(refundId);
    assert.equal(settled.status, 'succeeded');
    assert.equal((await server.stripe.charges.retrieve(intent.latest_charge as string)).amount_refunded, 7000);
    const atAcquirer = await db().selectFrom('sandbox_card_refunds').select('id').where('reference', '=', refundId).execute();
    assert.equal(atAcquirer.length, 1, 'refunded once at the acquirer');
  });

  test('an administrator adds a merchant; its keys are asked for and approved like any other; bad names change nothing', async () => {
    await freshSessions();
    const admin = as('admin');
    const merchants = async () => (await db().selectFrom('merchants').select('id').execute()).length;
    const before = await merchants();
    // Signing in counts as re-authenticating for five minutes.
    clock.offsetMs += 6 * 60_000;
    assert.equal(code(await admin.request('POST', '/staff/v1/merchants', { name: 'Third shop' })), 'reauthentication_required');
    assert.equal((await admin.reauthenticate()).status, 200);
    for (const body of [{}, { name: '' }, { name: '   ' }, { name: 'Line\nbreak' }, { name: 'x'.repeat(101) }, { name: 'Shop', country: 'US' }]) {
      const refused = await admin.request('POST', '/staff/v1/merchants', body);
      assert.equal(refused.status, 400, `${JSON.stringify(body)}: ${refused.body}`);
    }
    assert.equal((await as('developer').request('POST', '/staff/v1/merchants', { name: 'Third shop' })).status, 403);
    assert.equal(await merchants(), before, 'the refusals made no merchant');
    const made = await admin.request('POST', '/staff/v1/merchants', { name: ' Third shop ' });
    assert.equal(made.status, 200, made.body);
    assert.deepEqual([made.json.object, made.json.name], ['merchant', 'Third shop']);
    const merchantId = String(made.json.id);
    assert.match(merchantId, /^acct_/);
    const listed = await as('support_agent').request('GET', '/staff/v1/merchants?limit=100');
    assert.ok((listed.json.data as Array<{ id: string }>).some((merchant) => merchant.id === merchantId));
    const audited = await db().selectFrom('audit_log').select(['actor_id', 'merchant_id']).where('action', '=', 'merchant.create').where('object_id', '=', merchantId).execute();
    assert.deepEqual(audited, [{ actor_id: admin.userId, merchant_id: merchantId }]);

    const developer = as('developer');
    assert.equal((await developer.reauthenticate()).status, 200);
    const asked = await developer.request('POST', `/staff/v1/merchants/${merchantId}/api_keys`, { kind: 'secret', livemode: false });
    assert.equal(asked.status, 202, asked.body);
    const approved = await admin.request('POST', `/staff/v1/approvals/${(asked.json.approval as { id: string }).id}/approve`, {});
    assert.equal(approved.status, 200, approved.body);
    const secret = (asked.json.shown_once as { api_key: { secret: string } }).api_key.secret;
    const shop = stripeClient(server, secret);
    const paid = await shop.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    assert.equal(paid.status, 'succeeded');
    assert.deepEqual((await shop.paymentIntents.list()).data.map((intent) => intent.id), [paid.id], 'the new merchant sees its own payments only');
  });

  test('an approval expires after 24 hours', async () => {
    const intent = await server.stripe.paymentIntents.create({ amount: 9000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const asked = await as('support_agent').request('POST', '/staff/v1/refunds', { payment_intent: intent.id });
    assert.equal(asked.status, 202);
    clock.offsetMs += 24 * 3_600_000 + 60_000;
    await freshSessions();
    assert.equal((await as('finance').reauthenticate()).status, 200);
    const late = await as('finance').request('POST', `/staff/v1/approvals/${(asked.json.approval as { id: string }).id}/approve`, {});
    assert.equal(code(late), 'approval_unexpected_state');
    assert.equal((await server.stripe.refunds.list({ payment_intent: intent.id })).data.length, 0);
  });

  test('an API key asked for by a developer is given to the developer, works only once someone else approves it, and is never shown to the approver', async () => {
    await freshSessions();
    const developer = as('developer');
    assert.equal((await developer.reauthenticate()).status, 200);
    const keysBefore = await db().selectFrom('api_keys').select('id').where('merchant_id', '=', server.merchantId).execute();
    const asked = await developer.request('POST', `/staff/v1/merchants/${server.merchantId}/api_keys`, { kind: 'restricted', livemode: false, permissions: ['balance:read'] });
    assert.equal(asked.status, 202, asked.body);
    const given = (asked.json.shown_once as { api_key: { id: string; secret: string } }).api_key;
    const secret = given.secret;
    assert.match(secret, /^rk_test_/);
    assert.ok(!JSON.stringify(asked.json.approval).includes(secret.slice(8)), 'the approval does not carry the key');
    assert.ok(!JSON.stringify(asked.json.approval).includes('sha256'), 'nor its hash');
    await assert.rejects(stripeClient(server, secret).balance.retrieve(), (error: { statusCode?: number }) => error.statusCode === 401, 'the key does not work before the approval');
    const bad = await developer.request('POST', `/staff/v1/merchants/${server.merchantId}/api_keys`, { kind: 'restricted', livemode: false, permissions: ['nothing:write'] });
    assert.equal(bad.status, 400, 'an invalid permission is refused at once');
    assert.equal((await db().selectFrom('api_keys').select('id').where('merchant_id', '=', server.merchantId).execute()).length, keysBefore.length);
    const approvalId = (asked.json.approval as { id: string }).id;
    assert.equal((await developer.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 403);
    const admin = as('admin');
    assert.equal((await admin.reauthenticate()).status, 200);
    const pending = await admin.request('GET', '/staff/v1/approvals?status=pending');
    assert.ok(pending.body.includes(approvalId) && !pending.body.includes(secret.slice(8)) && !pending.body.includes('sha256'), 'the approver sees the request, not the key or its hash');
    const approved = await admin.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(approved.status, 200, approved.body);
    assert.equal(approved.json.shown_once, undefined, 'the approver is shown no key');
    assert.ok(!approved.body.includes(secret.slice(8)));
    assert.deepEqual(approved.json.result, { api_key: given.id });
    const balance = await stripeClient(server, secret).balance.retrieve();
    assert.equal(balance.object, 'balance');
    const listed = await admin.request('GET', '/staff/v1/approvals?status=executed');
    assert.equal(listed.status, 200);
    assert.ok(listed.body.includes(approvalId), 'the executed approval is listed');
    assert.ok(!listed.body.includes(secret), 'the key is not kept on the approval');
  });

  test('a key whose request is rejected never works; a request left from before keys went to the requester fails and makes no key', async () => {
    await freshSessions();
    const developer = as('developer');
    const admin = as('admin');
    assert.equal((await developer.reauthenticate()).status, 200);
    assert.equal((await admin.reauthenticate()).status, 200);
    const keys = async () => (await db().selectFrom('api_keys').select('id').where('merchant_id', '=', server.merchantId).execute()).length;
    const before = await keys();
    const path = `/staff/v1/merchants/${server.merchantId}/api_keys`;

    const asked = await developer.request('POST', path, { kind: 'secret', livemode: false });
    assert.equal(asked.status, 202, asked.body);
    const secret = (asked.json.shown_once as { api_key: { secret: string } }).api_key.secret;
    const rejected = await admin.request('POST', `/staff/v1/approvals/${(asked.json.approval as { id: string }).id}/reject`, {});
    assert.equal(rejected.json.status, 'rejected');
    await assert.rejects(stripeClient(server, secret).balance.retrieve(), (error: { statusCode?: number }) => error.statusCode === 401);
    assert.equal(await keys(), before, 'a rejected request makes no key');

    // As an earlier version stored it: no prepared key, so approving would have had to show a new key to the approver.
    const old = await developer.request('POST', path, { kind: 'secret', livemode: false });
    const oldId = (old.json.approval as { id: string }).id;
    const stored = await db().selectFrom('staff_approvals').select('params').where('id', '=', oldId).executeTakeFirstOrThrow();
    const { prepared_key: _dropped, ...earlier } = stored.params;
    await db().updateTable('staff_approvals').set({ params: JSON.stringify(earlier) }).where('id', '=', oldId).execute();
    const refused = await admin.request('POST', `/staff/v1/approvals/${oldId}/approve`, {});
    assert.equal(refused.status, 400, refused.body);
    assert.match(String((refused.json.error as { message: string }).message), /earlier version of Coffer.*ask again/);
    assert.equal(refused.body.includes('_test_'), false, 'no key is shown');
    const closed = await db().selectFrom('staff_approvals').select('status').where('id', '=', oldId).executeTakeFirstOrThrow();
    assert.equal(closed.status, 'failed');
    assert.equal(await keys(), before, 'and none is made');

    // The audit log keeps the requests, without the hashes of the secrets the requester was given.
    const audited = await db().selectFrom('audit_log').select('details').where('action', '=', 'approval.request').execute();
    assert.ok(audited.length > 0);
    assert.ok(audited.every((record) => !JSON.stringify(record.details).includes('sha256') && !JSON.stringify(record.details).includes('prepared_key')), 'no key or code hash in the audit log');

    // A requester disabled while the request waits does not get a working key from it: approving fails, no key.
    const pending = await developer.request('POST', path, { kind: 'secret', livemode: false });
    assert.equal(pending.status, 202, pending.body);
    const pendingSecret = (pending.json.shown_once as { api_key: { secret: string } }).api_key.secret;
    await db().updateTable('staff_users').set({ status: 'disabled' }).where('id', '=', developer.userId).execute();
    try {
      const late = await admin.request('POST', `/staff/v1/approvals/${(pending.json.approval as { id: string }).id}/approve`, {});
      assert.equal(late.status, 400, late.body);
      assert.match(String((late.json.error as { message: string }).message), /no longer active/);
      await assert.rejects(stripeClient(server, pendingSecret).balance.retrieve(), (error: { statusCode?: number }) => error.statusCode === 401);
      assert.equal(await keys(), before);
    } finally {
      await db().updateTable('staff_users').set({ status: 'active' }).where('id', '=', developer.userId).execute();
    }
  });

  test('a payment limit asked for by a risk analyst takes effect only once someone else approves it, and is then enforced', async () => {
    await freshSessions();
    const analyst = as('risk_analyst');
    assert.equal((await analyst.reauthenticate()).status, 200);
    const path = `/staff/v1/merchants/${server.merchantId}/limits`;
    const bad = await analyst.request('POST', path, { livemode: false, operation: 'create', subject: 'card', kind: 'amount_per_day', value: 100 });
    assert.equal(bad.status, 400, 'an amount limit without a currency is refused at once');
    assert.equal(code(bad), 'parameter_missing');
    const asked = await analyst.request('POST', path, { livemode: false, operation: 'create', subject: 'merchant', kind: 'amount_max', value: 7000, currency: 'usd' });
    assert.equal(asked.status, 202, asked.body);
    assert.equal((await db().selectFrom('payment_limits').select('id').where('merchant_id', '=', server.merchantId).execute()).length, 0, 'nothing changed yet');
    const approvalId = (asked.json.approval as { id: string }).id;
    const self = await analyst.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(code(self), 'approval_self_decision');
    assert.equal((await as('support_agent').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 403, 'support may not decide');
    assert.equal((await as('finance').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 403, 'finance may not change limits');
    const admin = as('admin');
    assert.equal((await admin.reauthenticate()).status, 200);
    const approved = await admin.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(approved.status, 200, approved.body);
    const listed = await analyst.request('GET', path);
    assert.equal((listed.json.data as Array<{ value: number }>)[0]?.value, 7000);
    await assert.rejects(server.stripe.paymentIntents.create({ amount: 7001, currency: 'usd', payment_method: 'pm_card_visa', confirm: true }),
      (error: { code?: string }) => error.code === 'payment_limit_exceeded');
    const audit = await db().selectFrom('audit_log').select(['action', 'actor_type', 'actor_id']).where('action', 'in', ['approval.request', 'approval.approve', 'payment_limit.create']).execute();
    assert.ok(audit.some((row) => row.action === 'payment_limit.create' && row.actor_type === 'staff' && row.actor_id === admin.userId), 'the change is audited as the approver\'s');
    // Removing it goes through approval too.
    const limitId = (listed.json.data as Array<{ id: string }>)[0]?.id ?? '';
    assert.equal((await analyst.reauthenticate()).status, 200);
    const removal = await analyst.request('POST', path, { livemode: false, operation: 'delete', limit: limitId });
    assert.equal(removal.status, 202);
    assert.equal((await admin.reauthenticate()).status, 200);
    assert.equal((await admin.request('POST', `/staff/v1/approvals/${(removal.json.approval as { id: string }).id}/approve`, {})).status, 200);
    await server.stripe.paymentIntents.create({ amount: 7001, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
  });

  test('a risk rule set asked for by a risk analyst becomes the current version only once someone else approves it', async () => {
    await freshSessions();
    const analyst = as('risk_analyst');
    assert.equal((await analyst.reauthenticate()).status, 200);
    const path = `/staff/v1/merchants/${server.merchantId}/rule_sets`;
    const bad = await analyst.request('POST', path, { livemode: false, rules: [{ id: 'x', text: 'block if :amount: >' }] });
    assert.equal(bad.status, 400, 'a set that could never be made is refused at once');
    const asked = await analyst.request('POST', path, { livemode: false, rules: [{ id: 'big', text: 'review if :amount_usd: > 2000' }] });
    assert.equal(asked.status, 202, asked.body);
    assert.equal((await db().selectFrom('risk_rule_sets').select('id').where('merchant_id', '=', server.merchantId).execute()).length, 0, 'nothing yet');
    const approvalId = (asked.json.approval as { id: string }).id;
    assert.equal(code(await analyst.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})), 'approval_self_decision');
    assert.equal((await as('finance').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 403, 'finance may not change rules');
    const admin = as('admin');
    assert.equal((await admin.reauthenticate()).status, 200);
    assert.equal((await admin.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 200);
    const listed = await as('auditor').request('GET', path);
    assert.equal(listed.status, 200);
    assert.equal((listed.json.data as Array<{ version: number }>)[0]?.version, 1);
    const audit = await db().selectFrom('audit_log').select(['actor_type', 'actor_id']).where('action', '=', 'risk_rule_set.create').execute();
    assert.ok(audit.some((row) => row.actor_type === 'staff' && row.actor_id === admin.userId));
  });

  test('role changes and invitations need a second approver; only an owner makes owners', async () => {
    await freshSessions();
    const admin = as('admin');
    const owner = as('owner');
    const auditor = as('auditor');
    assert.equal((await admin.reauthenticate()).status, 200);
    const toOwner = await admin.request('POST', `/staff/v1/users/${auditor.userId}/role`, { role: 'owner' });
    assert.equal(toOwner.status, 403, 'an admin cannot make an owner');
    const asked = await admin.request('POST', `/staff/v1/users/${auditor.userId}/role`, { role: 'finance' });
    assert.equal(asked.status, 202, asked.body);
    const approvalId = (asked.json.approval as { id: string }).id;
    const unchanged = await db().selectFrom('staff_users').select('role').where('id', '=', auditor.userId).executeTakeFirstOrThrow();
    assert.equal(unchanged.role, 'auditor');
    assert.equal((await admin.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 403);
    assert.equal((await as('finance').request('POST', `/staff/v1/approvals/${approvalId}/approve`, {})).status, 403, 'finance may not approve role changes');
    assert.equal((await owner.reauthenticate()).status, 200);
    const approved = await owner.request('POST', `/staff/v1/approvals/${approvalId}/approve`, {});
    assert.equal(approved.status, 200, approved.body);
    const me = await auditor.request('GET', '/staff/v1/session');
    assert.equal((me.json.user as { role: string }).role, 'finance', 'the new role applies to the running session');

    const invite = await admin.request('POST', '/staff/v1/users', { email: 'new.person@staff.example', name: 'New Person', role: 'support_agent' });
    assert.equal(invite.status, 202, invite.body);
    assert.equal(await db().selectFrom('staff_users').select('id').where('email', '=', 'new.person@staff.example').executeTakeFirst(), undefined);
    const rejected = await owner.request('POST', `/staff/v1/approvals/${(invite.json.approval as { id: string }).id}/reject`, {});
    assert.equal(rejected.json.status, 'rejected');
    assert.equal(await db().selectFrom('staff_users').select('id').where('email', '=', 'new.person@staff.example').executeTakeFirst(), undefined);

    const again = await admin.request('POST', '/staff/v1/users', { email: 'new.person@staff.example', name: 'New Person', role: 'support_agent' });
    assert.equal((await owner.reauthenticate()).status, 200);
    const invited = await owner.request('POST', `/staff/v1/approvals/${(again.json.approval as { id: string }).id}/approve`, {});
    assert.equal(invited.status, 200, invited.body);
    const shown = invited.json.shown_once as { enrollment_token: string; enrollment_url: string };
    assert.equal(shown.enrollment_url, `https://localhost:${server.coffer.internalPort}/staff/enroll#${shown.enrollment_token}`);
    const enrollmentCode = (again.json.shown_once as { enrollment_code: string }).enrollment_code;
    assert.match(enrollmentCode, /^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/, 'the requester was given the enrollment code when asking');
    assert.ok(!invited.body.includes(enrollmentCode) && !JSON.stringify(again.json.approval).includes('sha256'), 'the approver is not given the code, nor its hash');

    // The link alone (the approver's), or with a wrong code, enrolls nobody and changes nothing.
    const enrollment = () => db().selectFrom('staff_enrollments').innerJoin('staff_users', 'staff_users.id', 'staff_enrollments.user_id')
      .select(['staff_users.status', 'staff_enrollments.pending_totp_ciphertext', 'staff_enrollments.used_at']).where('staff_users.email', '=', 'new.person@staff.example').executeTakeFirstOrThrow();
    const intruder = new StaffClient(internalListener(server), clock);
    const linkAlone = await intruder.request('POST', '/staff/v1/enrollment/start', { token: shown.enrollment_token });
    assert.deepEqual([linkAlone.status, code(linkAlone), (linkAlone.json.error as { param?: string }).param], [400, 'parameter_missing', 'enrollment_code']);
    const wrong = await intruder.request('POST', '/staff/v1/enrollment/start', { token: shown.enrollment_token, enrollment_code: 'aaaaa-aaaaa-aaaaa-aaaaa' });
    assert.deepEqual([wrong.status, code(wrong)], [400, 'parameter_invalid']);
    const completeAlone = await intruder.request('POST', '/staff/v1/enrollment/complete', { token: shown.enrollment_token, password: strongPassword('rust'), code: '123456' });
    assert.equal(code(completeAlone), 'parameter_missing');
    assert.deepEqual(await enrollment(), { status: 'invited', pending_totp_ciphertext: null, used_at: null }, 'the refusals changed nothing');

    const newcomer = new StaffClient(internalListener(server), clock);
    // As typed by a person: case, spaces and hyphens do not matter.
    await enrollWithToken(newcomer, shown.enrollment_token, strongPassword('cobalt'), ` ${enrollmentCode.toUpperCase().replaceAll('-', ' ')} `);
    assert.equal((await newcomer.signIn()).status, 200, 'the link and the code together enroll the new person');
    assert.equal((await enrollment()).status, 'active');

    // An owner's invitation of another owner waits for an owner: an administrator's approval is refused and leaves it pending.
    assert.equal((await owner.reauthenticate()).status, 200);
    const ownerInvite = await owner.request('POST', '/staff/v1/users', { email: 'second.owner@staff.example', name: 'Second Owner', role: 'owner' });
    assert.equal(ownerInvite.status, 202, ownerInvite.body);
    assert.equal((await admin.reauthenticate()).status, 200);
    const byAdmin = await admin.request('POST', `/staff/v1/approvals/${(ownerInvite.json.approval as { id: string }).id}/approve`, {});
    assert.deepEqual([byAdmin.status, code(byAdmin)], [403, 'insufficient_permissions'], byAdmin.body);
    const waiting = await db().selectFrom('staff_approvals').select('status').where('id', '=', (ownerInvite.json.approval as { id: string }).id).executeTakeFirstOrThrow();
    assert.equal(waiting.status, 'pending');
    assert.equal(await db().selectFrom('staff_users').select('id').where('email', '=', 'second.owner@staff.example').executeTakeFirst(), undefined, 'no account was made');
  });
});
