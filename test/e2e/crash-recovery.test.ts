import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { JobsFailed, runJobsOnce } from '../../src/jobs/job-runner.ts';
import { recoverInFlightOperations } from '../../src/jobs/recover-in-flight.ts';
import { createMigratedTestDatabaseUrl, openExistingTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { spawnCoffer, type CofferProcess } from '../support/process.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';
import { removeTree } from '../support/files.ts';

const homes: string[] = [];

/** A Coffer process armed to die (as by kill -9) at `faultPoint`, on a database this test can reopen. */
async function armedCoffer(faultPoint: string, env: NodeJS.ProcessEnv = {}): Promise<{ coffer: CofferProcess; home: string; reopen: () => Promise<TestDatabase> }> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-crash-'));
  homes.push(home);
  const url = await createMigratedTestDatabaseUrl();
  const coffer = await spawnCoffer(home, { COFFER_FAULT_POINT: faultPoint, COFFER_JOBS: 'false', ...env, ...(url === undefined ? {} : { DATABASE_URL: url }) });
  return { coffer, home, reopen: () => openExistingTestDatabase({ url, dataDir: path.join(home, 'db') }) };
}

const later = { nowMs: () => Date.now() + 5 * 60_000 };

async function ageIdempotencyLocks(database: TestDatabase): Promise<void> {
  // The crashed request's lock on its key is stale after 90 s of database time; pretend they have passed.
  await database.db.updateTable('idempotency_keys').set({ locked_at: new Date(Date.now() - 10 * 60_000) }).where('finished_at', 'is', null).execute();
}

// Goal: a process killed at the worst moments of a payment loses nothing and charges nothing twice: the
// client's retry with the same key, or the recovery job, finishes the work from what was persisted.
describe('crash recovery', { concurrency: false }, () => {
  after(() => {
    for (const home of homes) removeTree(home);
  });

  async function createIntent(coffer: CofferProcess, body: string): Promise<string> {
    const created = await rawRequest(coffer, 'POST', '/v1/payment_intents', { key: coffer.secretKey, body });
    assert.equal(created.status, 200, created.body);
    return String(created.json.id);
  }

  async function crashOn(coffer: CofferProcess, pathname: string, key: string): Promise<void> {
    await assert.rejects(rawRequest(coffer, 'POST', pathname, { key: coffer.secretKey, body: '', headers: { 'idempotency-key': key } }));
    const exit = await coffer.exited;
    assert.equal(exit.signal, 'SIGKILL', coffer.output());
  }

  test('killed after the acquirer authorized: the retry completes the same authorization', async () => {
    const { coffer, home, reopen } = await armedCoffer('confirm.after_provider_call');
    const id = await createIntent(coffer, 'amount=2600&currency=usd&payment_method=pm_card_visa');
    await crashOn(coffer, `/v1/payment_intents/${id}/confirm`, 'crash-confirm-1');
    const database = await reopen();
    // The same installation, started again: its database and its home (its keys).
    const server: TestServer = await startTestServer({ database, configEnv: { COFFER_HOME: home } });
    try {
      const stuck = await database.db.selectFrom('payment_intents').select('status').where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(stuck.status, 'processing');
      await ageIdempotencyLocks(database);
      const retry = await rawRequest(server, 'POST', `/v1/payment_intents/${id}/confirm`, { key: coffer.secretKey, body: '', headers: { 'idempotency-key': 'crash-confirm-1' } });
      assert.equal(retry.status, 200, retry.body);
      assert.equal(retry.json.status, 'succeeded');
      const authorizations = await database.db.selectFrom('sandbox_card_payments').select('id').where('merchant_reference', '=', String(retry.json.latest_charge)).execute();
      assert.equal(authorizations.length, 1);
      await assertLedgerConsistent(database.db);
    } finally {
      await server.close();
      await database.drop();
    }
  });

  test('killed after the acquirer authorized: the recovery job settles it, and a later retry gets that result', async () => {
    const { coffer, home, reopen } = await armedCoffer('confirm.after_provider_call');
    const id = await createIntent(coffer, 'amount=2700&currency=usd&payment_method=pm_card_visa&capture_method=manual');
    await crashOn(coffer, `/v1/payment_intents/${id}/confirm`, 'crash-confirm-2');
    const database = await reopen();
    const server = await startTestServer({ database, clock: later, configEnv: { COFFER_HOME: home } });
    try {
      const handled = await runJobsOnce(server.coffer.services);
      assert.equal(handled['recover-pending-attempts'], 1);
      const settled = await database.db.selectFrom('payment_intents').select(['status', 'amount_capturable']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(settled, { status: 'requires_capture', amount_capturable: 2700n });
      const events = await database.db.selectFrom('events').select('type').where('object_id', '=', id).orderBy('seq').execute();
      assert.deepEqual(events.map((event) => event.type), ['payment_intent.created', 'payment_intent.amount_capturable_updated']);
      await ageIdempotencyLocks(database);
      const retry = await rawRequest(server, 'POST', `/v1/payment_intents/${id}/confirm`, { key: coffer.secretKey, body: '', headers: { 'idempotency-key': 'crash-confirm-2' } });
      assert.equal(retry.status, 200, retry.body);
      assert.equal(retry.json.status, 'requires_capture');
      await assertLedgerConsistent(database.db);
    } finally {
      await server.close();
      await database.drop();
    }
  });

  test('killed before the acquirer heard of it: the attempt fails safely and the key at the acquirer is closed', async () => {
    const { coffer, home, reopen } = await armedCoffer('confirm.after_attempt_persisted');
    const id = await createIntent(coffer, 'amount=2800&currency=usd&payment_method=pm_card_visa');
    await crashOn(coffer, `/v1/payment_intents/${id}/confirm`, 'crash-confirm-3');
    const database = await reopen();
    const server = await startTestServer({ database, clock: later, configEnv: { COFFER_HOME: home } });
    try {
      await runJobsOnce(server.coffer.services);
      const failed = await database.db.selectFrom('payment_intents').select(['status', 'last_payment_error', 'latest_charge_id']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(failed.status, 'requires_payment_method');
      assert.equal((failed.last_payment_error as { code: string }).code, 'processing_error');
      const atAcquirer = await database.db.selectFrom('sandbox_card_payments').select('status').where('idempotency_key', '=', String(failed.latest_charge_id)).execute();
      assert.deepEqual(atAcquirer, [{ status: 'abandoned' }], 'nothing was charged, and the key can never charge later');
      await ageIdempotencyLocks(database);
      const retry = await rawRequest(server, 'POST', `/v1/payment_intents/${id}/confirm`, { key: coffer.secretKey, body: '', headers: { 'idempotency-key': 'crash-confirm-3' } });
      assert.equal(retry.status, 402);
      assert.equal((retry.json.error as Record<string, unknown>).code, 'processing_error');
      const again = await rawRequest(server, 'POST', `/v1/payment_intents/${id}/confirm`, { key: coffer.secretKey, body: 'payment_method=pm_card_visa' });
      assert.equal(again.json.status, 'succeeded', 'the shopper can simply pay again');
      await assertLedgerConsistent(database.db);
    } finally {
      await server.close();
      await database.drop();
    }
  });

  test('killed after the acquirer captured: the recovery job records the capture once', async () => {
    const { coffer, home, reopen } = await armedCoffer('capture.after_provider_call');
    const id = await createIntent(coffer, 'amount=2900&currency=usd&payment_method=pm_card_visa&capture_method=manual&confirm=true');
    await crashOn(coffer, `/v1/payment_intents/${id}/capture`, 'crash-capture-1');
    const database = await reopen();
    const server = await startTestServer({ database, clock: later, configEnv: { COFFER_HOME: home } });
    try {
      const handled = await runJobsOnce(server.coffer.services);
      assert.equal(handled['recover-in-flight-operations'], 1);
      const captured = await database.db.selectFrom('payment_intents').select(['status', 'amount_received', 'operation_in_flight']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(captured, { status: 'succeeded', amount_received: 2900n, operation_in_flight: null });
      const posts = await database.db.selectFrom('ledger_transfers').select('kind').where('payment_intent_id', '=', id).where('kind', '=', 'post_pending').execute();
      assert.equal(posts.length, 1);
      await ageIdempotencyLocks(database);
      const retry = await rawRequest(server, 'POST', `/v1/payment_intents/${id}/capture`, { key: coffer.secretKey, body: '', headers: { 'idempotency-key': 'crash-capture-1' } });
      assert.equal(retry.status, 200, retry.body);
      assert.equal(retry.json.status, 'succeeded');
      await assertLedgerConsistent(database.db);
    } finally {
      await server.close();
      await database.drop();
    }
  });

  test('killed after the acquirer raised the hold: the recovery job records the increment once, and the retry answers it', async () => {
    const { coffer, home, reopen } = await armedCoffer('increment.after_provider_call');
    const id = await createIntent(coffer, 'amount=2000&currency=usd&payment_method=pm_card_visa&capture_method=manual&confirm=true'
      + '&payment_method_options[card][request_incremental_authorization]=if_available');
    const pathname = `/v1/payment_intents/${id}/increment_authorization`;
    await assert.rejects(rawRequest(coffer, 'POST', pathname, { key: coffer.secretKey, body: 'amount=3000', headers: { 'idempotency-key': 'crash-increment-1' } }));
    assert.equal((await coffer.exited).signal, 'SIGKILL', coffer.output());
    const database = await reopen();
    const server = await startTestServer({ database, clock: later, configEnv: { COFFER_HOME: home } });
    try {
      const handled = await runJobsOnce(server.coffer.services);
      assert.equal(handled['recover-in-flight-operations'], 1);
      const raised = await database.db.selectFrom('payment_intents').select(['status', 'amount', 'amount_capturable', 'operation_in_flight']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(raised, { status: 'requires_capture', amount: 3000n, amount_capturable: 3000n, operation_in_flight: null });
      const increments = await database.db.selectFrom('sandbox_card_operations').select('kind').where('kind', '=', 'increment').execute();
      assert.equal(increments.length, 1, 'the acquirer raised the hold once');
      await ageIdempotencyLocks(database);
      const retry = await rawRequest(server, 'POST', pathname, { key: coffer.secretKey, body: 'amount=3000', headers: { 'idempotency-key': 'crash-increment-1' } });
      assert.equal(retry.status, 200, retry.body);
      assert.equal(retry.json.amount, 3000);
      const captured = await rawRequest(server, 'POST', `/v1/payment_intents/${id}/capture`, { key: coffer.secretKey, body: '' });
      assert.equal(captured.json.amount_received, 3000);
      await assertLedgerConsistent(database.db);
    } finally {
      await server.close();
      await database.drop();
    }
  });

  // Every change keeps its response in the commit that makes it (decision 0027): a process killed between that
  // commit and the response leaves a response for the retry to replay at once, never a change for it to repeat.
  test('killed after a change committed, before its response: the retry replays it and the change is made once', async () => {
    const cases: Array<{
      name: string;
      /** Requests made before the armed one (without a key, so they do not reach the fault point); returns its path and body. */
      prepare: (coffer: CofferProcess) => Promise<{ path: string; body: string }>;
      check: (database: TestDatabase, replay: Record<string, unknown>) => Promise<void>;
    }> = [
      {
        name: 'a customer',
        prepare: async () => ({ path: '/v1/customers', body: 'email=crash%40example.com&metadata[order]=41' }),
        check: async (database, replay) => {
          const rows = await database.db.selectFrom('customers').select('id').where('email', '=', 'crash@example.com').execute();
          assert.deepEqual(rows.map((row) => row.id), [replay.id], 'one customer, the one the replay shows');
        },
      },
      {
        name: 'a credit to a customer\'s balance',
        prepare: async (coffer) => {
          const customer = await rawRequest(coffer, 'POST', '/v1/customers', { key: coffer.secretKey, body: 'email=credit%40example.com' });
          assert.equal(customer.status, 200, customer.body);
          return { path: `/v1/customers/${String(customer.json.id)}/balance_transactions`, body: 'amount=-700&currency=usd&description=Late+delivery' };
        },
        check: async (database, replay) => {
          const rows = await database.db.selectFrom('customer_balance_transactions').select(['id', 'amount']).where('customer_id', '=', String(replay.customer)).execute();
          assert.deepEqual(rows.map((row) => [row.id, row.amount]), [[replay.id, -700n]], 'one credit, the one the replay shows');
          const customer = await database.db.selectFrom('customers').select('balance').where('id', '=', String(replay.customer)).executeTakeFirstOrThrow();
          assert.equal(customer.balance, -700n);
          await assertLedgerConsistent(database.db);
        },
      },
      {
        name: 'a SetupIntent\'s confirmation, answered with the acquirer\'s verification',
        prepare: async (coffer) => {
          const customer = await rawRequest(coffer, 'POST', '/v1/customers', { key: coffer.secretKey, body: 'email=saved%40example.com' });
          const intent = await rawRequest(coffer, 'POST', '/v1/setup_intents', { key: coffer.secretKey, body: `customer=${String(customer.json.id)}` });
          assert.equal(intent.status, 200, intent.body);
          return { path: `/v1/setup_intents/${String(intent.json.id)}/confirm`, body: 'payment_method=pm_card_visa' };
        },
        check: async (database, replay) => {
          assert.equal(replay.status, 'succeeded');
          const verifications = await database.db.selectFrom('sandbox_card_payments').select('id').where('merchant_reference', '=', String(replay.id)).execute();
          assert.equal(verifications.length, 1, 'the card was verified once');
          const saved = await database.db.selectFrom('payment_methods').select('customer_id').where('id', '=', String(replay.payment_method)).executeTakeFirstOrThrow();
          assert.equal(saved.customer_id, replay.customer);
        },
      },
      {
        name: 'a Checkout Session\'s expiry',
        prepare: async (coffer) => {
          const session = await rawRequest(coffer, 'POST', '/v1/checkout/sessions', {
            key: coffer.secretKey,
            body: 'mode=payment&success_url=https%3A%2F%2Fshop.example%2Fthanks&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=1999&line_items[0][price_data][product_data][name]=Tea&line_items[0][quantity]=1',
          });
          assert.equal(session.status, 200, session.body);
          return { path: `/v1/checkout/sessions/${String(session.json.id)}/expire`, body: '' };
        },
        check: async (database, replay) => {
          assert.equal(replay.status, 'expired');
          const expiries = await database.db.selectFrom('audit_log').select('seq').where('object_id', '=', String(replay.id)).where('action', '=', 'checkout_session.expire').execute();
          assert.equal(expiries.length, 1, 'expired once');
        },
      },
      {
        name: 'a webhook endpoint',
        prepare: async () => ({ path: '/v1/webhook_endpoints', body: 'url=https%3A%2F%2F127.0.0.1%3A9%2Fcrash&enabled_events[]=charge.succeeded' }),
        check: async (database, replay) => {
          const rows = await database.db.selectFrom('webhook_endpoints').select('id').where('url', '=', 'https://127.0.0.1:9/crash').execute();
          assert.deepEqual(rows.map((row) => row.id), [replay.id], 'one endpoint, the one the replay shows');
          // The secret is not kept with the key; the replay fills in the endpoint's own, which the client lost.
          assert.match(String(replay.secret), /^whsec_/);
          const kept = await database.db.selectFrom('idempotency_keys').select('id').where('response_body', 'like', `%${String(replay.secret)}%`).execute();
          assert.equal(kept.length, 0, 'the signing secret is not kept for replays');
        },
      },
    ];
    for (const { name, prepare, check } of cases) {
      // An endpoint on loopback, which only an installation that allows private addresses accepts.
      const { coffer, home, reopen } = await armedCoffer('request.before_response', { COFFER_WEBHOOKS_ALLOW_PRIVATE: 'true' });
      const { path: pathname, body } = await prepare(coffer);
      const key = `crash-change-${pathname}`;
      await assert.rejects(rawRequest(coffer, 'POST', pathname, { key: coffer.secretKey, body, headers: { 'idempotency-key': key } }), name);
      assert.equal((await coffer.exited).signal, 'SIGKILL', coffer.output());
      const database = await reopen();
      // Restarted with the same home: its instance secret opens what the first process sealed (a webhook secret).
      const server = await startTestServer({ database, configEnv: { COFFER_HOME: home } });
      try {
        // No waiting for the crashed request's lock to go stale: the key already holds the response.
        const retry = await rawRequest(server, 'POST', pathname, { key: coffer.secretKey, body, headers: { 'idempotency-key': key } });
        assert.equal(retry.status, 200, `${name}: ${retry.body}`);
        assert.equal(retry.headers['idempotent-replayed'], 'true', name);
        await check(database, retry.json);
      } finally {
        await server.close();
        await database.drop();
      }
    }
  });

  // Within a job, a row that cannot be finished must not stop the rows after it in its batch.
  test('a row its recovery cannot finish is left for later, and the rows after it are still recovered', async () => {
    const server = await startTestServer();
    try {
      const held = await Promise.all([0, 1].map(() => server.stripe.paymentIntents.create({ amount: 700, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true })));
      const [broken, fine] = held.map((intent) => intent.id) as [string, string];
      const db = server.database.db;
      // Both captures died in flight, the broken one first in line; its charge lost the acquirer's reference.
      for (const [id, startedAt] of [[broken, new Date(Date.now() - 600_000)], [fine, new Date(Date.now() - 300_000)]] as const) {
        await db.updateTable('payment_intents').set({ operation_in_flight: 'capture', operation_started_at: startedAt, operation_amount: 700n }).where('id', '=', id).execute();
      }
      await db.updateTable('charges').set({ provider_reference: null }).where('payment_intent_id', '=', broken).execute();
      assert.equal(await recoverInFlightOperations(server.coffer.services), 2, 'both claimed');
      const status = async (id: string) => (await db.selectFrom('payment_intents').select(['status', 'operation_in_flight']).where('id', '=', id).executeTakeFirstOrThrow());
      assert.deepEqual(await status(fine), { status: 'succeeded', operation_in_flight: null }, 'the row after the broken one was recovered');
      assert.deepEqual(await status(broken), { status: 'requires_capture', operation_in_flight: 'capture' }, 'the broken one is left for a later run');
    } finally {
      await server.close();
    }
  });

  // A job that keeps failing (a payment its recovery cannot finish) must not stop the jobs after it.
  test('a failing job is reported and the jobs after it still run', async () => {
    const server = await startTestServer();
    try {
      const ran: string[] = [];
      const list = [
        { name: 'first', runBatch: async () => { ran.push('first'); return 0; } },
        { name: 'broken', runBatch: async () => { ran.push('broken'); throw new Error('cannot finish this one'); } },
        { name: 'last', runBatch: async () => { ran.push('last'); return 0; } },
      ];
      await assert.rejects(runJobsOnce(server.coffer.services, list), (error: unknown) => {
        assert.ok(error instanceof JobsFailed);
        assert.deepEqual(error.jobs, ['broken']);
        assert.deepEqual(error.handled, { first: 0, broken: 0, last: 0 });
        return true;
      });
      assert.deepEqual(ran, ['first', 'broken', 'last']);
    } finally {
      await server.close();
    }
  });
});
