import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createFirstOwner } from '../../src/identity/staff.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { enrollWithToken, internalListener, StaffClient, strongPassword } from '../support/staff.ts';
import { TestClock } from '../support/clock.ts';

// Goal: four-eyes approval cannot be got around by one person. Only the very first invitation of a second
// approver runs at once (bootstrap); after that, an invitation waits for someone else, even when the only other
// approver has not enrolled yet or was disabled: otherwise an owner could disable the other administrator, invite
// an account of their own at once, and approve their own requests with it. An installation left without a second
// approver gets one from its host.
describe('staff bootstrap cannot be used to approve one\'s own requests', { concurrency: false }, () => {
  const clock = new TestClock();
  const servers: TestServer[] = [];
  after(async () => {
    for (const server of servers) await server.close();
  });

  /** A new installation whose first owner, made from the host, has enrolled and signed in, ready for four-eyes actions. */
  async function soleOwner(name: string): Promise<{ server: TestServer; owner: StaffClient }> {
    const server = await startTestServer({ clock });
    servers.push(server);
    const first = await createFirstOwner(server.database.db, `${name}.owner@bootstrap.example`, name, new Date(clock.nowMs()));
    const owner = new StaffClient(internalListener(server), clock);
    await enrollWithToken(owner, first.enrollmentToken.reveal(), strongPassword(`${name}-key`));
    assert.equal((await owner.signIn()).status, 200);
    assert.equal((await owner.reauthenticate()).status, 200);
    return { server, owner };
  }

  test('bootstrap once; then invitations wait for a second person, even after the other approver is disabled', async () => {
    const { server, owner } = await soleOwner('first');
    const db = () => server.database.db;
    const actions = async (action: string) => (await db().selectFrom('audit_log').select('action').where('action', '=', action).execute()).length;

    // Nobody else could approve yet: the first administrator's invitation runs at once, on record.
    const invited = await owner.request('POST', '/staff/v1/users', { email: 'admin@bootstrap.example', name: 'Admin', role: 'admin' });
    assert.equal(invited.status, 200, invited.body);
    assert.equal(invited.json.object, 'staff_invitation');
    assert.equal(await actions('approval.bootstrap'), 1);

    // The administrator has not enrolled yet, but will approve: the next invitation waits for them.
    const early = await owner.request('POST', '/staff/v1/users', { email: 'early@bootstrap.example', name: 'Early', role: 'support_agent' });
    assert.equal(early.status, 202, early.body);
    const admin = new StaffClient(internalListener(server), clock);
    // A bootstrap invitation has no second person, so no enrollment code: its link alone enrolls, and a code is refused.
    assert.equal(invited.json.enrollment_code, undefined);
    const withCode = await admin.request('POST', '/staff/v1/enrollment/start', { token: invited.json.enrollment_token, enrollment_code: 'aaaaa-aaaaa-aaaaa-aaaaa' });
    assert.deepEqual([withCode.status, (withCode.json.error as { code: string; param: string }).param], [400, 'enrollment_code']);
    await enrollWithToken(admin, invited.json.enrollment_token as string, strongPassword('second'));
    assert.equal((await admin.signIn()).status, 200);
    assert.equal((await admin.reauthenticate()).status, 200);
    const approvedEarly = await admin.request('POST', `/staff/v1/approvals/${(early.json.approval as { id: string }).id}/approve`, {});
    assert.equal(approvedEarly.status, 200, approvedEarly.body);

    // The owner asks for a live key, disables the only other approver, and invites an administrator of their own.
    assert.equal((await owner.reauthenticate()).status, 200);
    const key = await owner.request('POST', `/staff/v1/merchants/${server.merchantId}/api_keys`, { kind: 'secret', livemode: true });
    assert.equal(key.status, 202, key.body);
    const disabled = await owner.request('POST', `/staff/v1/users/${admin.userId}/disable`, {});
    assert.equal(disabled.status, 200, disabled.body);
    const puppet = await owner.request('POST', '/staff/v1/users', { email: 'puppet@bootstrap.example', name: 'Puppet', role: 'admin' });
    assert.equal(puppet.status, 202, `the invitation waits for a second person: ${puppet.body}`);
    assert.equal(puppet.json.object, 'approval_required');
    assert.equal(await db().selectFrom('staff_users').select('id').where('email', '=', 'puppet@bootstrap.example').executeTakeFirst(), undefined, 'no account was made');
    assert.equal(await actions('approval.bootstrap'), 1, 'no second bootstrap');
    // Nobody can approve the key: not its requester, and the other approver is gone.
    assert.equal((await owner.request('POST', `/staff/v1/approvals/${(key.json.approval as { id: string }).id}/approve`, {})).status, 403);
    const stillPending = await db().selectFrom('staff_approvals').select('status').where('id', '=', (key.json.approval as { id: string }).id).executeTakeFirstOrThrow();
    assert.equal(stillPending.status, 'pending');
    assert.equal(await db().selectFrom('api_keys').select('id').where('merchant_id', '=', server.merchantId).where('livemode', '=', true).executeTakeFirst(), undefined);

    // The way out is the host's: `coffer admin create` adds a second owner while fewer than two approvers remain.
    const rescue = await createFirstOwner(db(), 'rescue@bootstrap.example', 'Rescue', new Date(clock.nowMs()));
    const rescued = await db().selectFrom('staff_users').select(['role', 'status']).where('id', '=', rescue.userId).executeTakeFirstOrThrow();
    assert.deepEqual(rescued, { role: 'owner', status: 'invited' });
    await assert.rejects(createFirstOwner(db(), 'more@bootstrap.example', 'More', new Date(clock.nowMs())), /Two owners or administrators already exist/);
  });

  test('invitations sent at once by the only owner: only one of them is the bootstrap; the others wait for a second person', async () => {
    const { server, owner } = await soleOwner('sole');
    const answers = await Promise.all(['one', 'two', 'three'].map((name) =>
      owner.request('POST', '/staff/v1/users', { email: `${name}@bootstrap.example`, name, role: 'admin' })));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 202, 202], answers.map((answer) => answer.body).join('\n'));
    const made = await server.database.db.selectFrom('staff_users').select('email').where('email', 'like', '%@bootstrap.example').execute();
    assert.equal(made.length, 2, 'the owner and one invitee');
  });
});
