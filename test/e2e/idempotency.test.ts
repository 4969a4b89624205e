import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import Stripe from 'stripe';
import { claimIdempotencyKey } from '../../src/api/idempotency.ts';
import type { Actor } from '../../src/flows/context.ts';
import { parsePermissions } from '../../src/identity/api-keys.ts';
import { createApiKey } from '../../src/identity/merchants.ts';
import { currentApiVersion } from '../../src/objects/api-version.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: whatever a client retries, and however many copies arrive at once, a payment is created and charged at
// most once per Idempotency-Key, and every retry gets the first answer byte for byte.
describe('Idempotency-Key', () => {
  let server: TestServer;

  before(async () => {
    // A deadline a loaded machine's ordinary answer meets; the slow answers below are well past it.
    server = await startTestServer({ providerTimeoutMs: 2_000 });
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const post = (path: string, body: string, key?: string, secret = server.secretKey) =>
    rawRequest(server, 'POST', path, { key: secret, body, headers: key === undefined ? {} : { 'idempotency-key': key } });

  test('a retry replays the first response byte for byte and creates nothing more', async () => {
    const body = 'amount=2000&currency=usd&payment_method=pm_card_visa&confirm=true&metadata[order]=7';
    const first = await post('/v1/payment_intents', body, 'replay-1');
    assert.equal(first.status, 200);
    const before = await stateCounts(server.database.db);
    const second = await post('/v1/payment_intents', body, 'replay-1');
    assert.equal(second.status, 200);
    assert.equal(second.body, first.body);
    assert.equal(second.headers['idempotent-replayed'], 'true');
    assert.equal(second.headers['original-request'], first.headers['request-id']);
    assert.notEqual(second.headers['request-id'], first.headers['request-id']);
    assert.deepEqual(await stateCounts(server.database.db), before);
    // Answers with client secrets are kept by no cache, replayed or not, as Stripe's.
    for (const response of [first, second]) assert.equal(response.headers['cache-control'], 'no-cache, no-store');
  });

  test('a retry under another Stripe-Version gets the first response labelled with the version it was shaped for', async () => {
    const body = 'amount=2100&currency=usd&payment_method=pm_card_visa&confirm=true';
    const send = (version: string) => rawRequest(server, 'POST', '/v1/payment_intents', {
      key: server.secretKey, body, headers: { 'idempotency-key': 'version-replay-1', 'stripe-version': version },
    });
    const first = await send('2024-04-10');
    assert.equal(first.status, 200, first.body);
    assert.equal(first.headers['stripe-version'], '2024-04-10');
    const before = await stateCounts(server.database.db);
    const retry = await send(currentApiVersion);
    assert.equal(retry.headers['idempotent-replayed'], 'true');
    assert.equal(retry.body, first.body);
    assert.equal(retry.headers['stripe-version'], '2024-04-10', 'the body is the 2024-04-10 one, and says so');
    assert.deepEqual(await stateCounts(server.database.db), before);
  });

  test('parameters in another order or encoding are the same request', async () => {
    const first = await post('/v1/payment_intents', 'amount=100&currency=usd&metadata[a]=1&metadata[b]=2', 'order-1');
    const json = await rawRequest(server, 'POST', '/v1/payment_intents', {
      key: server.secretKey,
      body: JSON.stringify({ metadata: { b: '2', a: '1' }, currency: 'usd', amount: 100 }),
      contentType: 'application/json',
      headers: { 'idempotency-key': 'order-1' },
    });
    assert.equal(json.status, 200);
    assert.equal(json.body, first.body, 'the same parameters sent as JSON are the same request');
    const reordered = await post('/v1/payment_intents', 'metadata[b]=2&currency=usd&metadata[a]=1&amount=100', 'order-1');
    assert.equal(reordered.body, first.body);
  });

  test('the same key with other parameters is an idempotency error and changes nothing', async () => {
    const first = await post('/v1/payment_intents', 'amount=1000&currency=usd', 'reuse-1');
    assert.equal(first.status, 200);
    const before = await stateCounts(server.database.db);
    const second = await post('/v1/payment_intents', 'amount=1001&currency=usd', 'reuse-1');
    assert.equal(second.status, 400);
    const error = second.json.error as Record<string, unknown>;
    assert.equal(error.type, 'idempotency_error');
    assert.match(String(error.message), /Keys for idempotent requests can only be used with the same parameters/);
    assert.deepEqual(await stateCounts(server.database.db), before);
    await assert.rejects(
      server.stripe.paymentIntents.create({ amount: 1002, currency: 'usd' }, { idempotencyKey: 'reuse-1' }),
      (sdkError: Stripe.errors.StripeError) => sdkError.type === 'StripeIdempotencyError',
    );
    // On another endpoint, the message names both endpoints, as Stripe's does.
    const elsewhere = await post('/v1/customers', 'email=reuse@example.com', 'reuse-1');
    assert.equal(elsewhere.status, 400);
    assert.equal((elsewhere.json.error as { type?: string }).type, 'idempotency_error');
    assert.match(String((elsewhere.json.error as { message?: string }).message),
      /only be used for the same endpoint they were first used for \('POST \/v1\/payment_intents' vs 'POST \/v1\/customers'\)/);
    assert.deepEqual(await stateCounts(server.database.db), before);
  });

  test('a decline is replayed too, and the card is not tried again', async () => {
    const created = await server.stripe.paymentIntents.create({ amount: 1500, currency: 'usd' });
    const path = `/v1/payment_intents/${created.id}/confirm`;
    const first = await post(path, 'payment_method=pm_card_chargeDeclined', 'decline-1');
    assert.equal(first.status, 402);
    const attempts = await stateCounts(server.database.db);
    const second = await post(path, 'payment_method=pm_card_chargeDeclined', 'decline-1');
    assert.equal(second.status, 402);
    assert.equal(second.body, first.body);
    assert.equal((await stateCounts(server.database.db)).sandbox_card_payments, attempts.sandbox_card_payments);
  });

  test('a request refused by validation keeps no response: the key may be used again', async () => {
    const refused = await post('/v1/payment_intents', 'amount=abc&currency=usd', 'invalid-1');
    assert.equal(refused.status, 400);
    const fixed = await post('/v1/payment_intents', 'amount=1000&currency=usd', 'invalid-1');
    assert.equal(fixed.status, 200);
  });

  test('so does one whose parameters the flow refused before doing anything (an amount, a currency, a step), as at Stripe', async () => {
    const cases: Array<[string, string, string]> = [
      ['amount=-5&currency=usd', 'amount', 'parameter_invalid_integer'],
      ['amount=1000&currency=xyz', 'currency', 'currency_invalid'],
      ['amount=49&currency=usd', 'amount', 'amount_too_small'],
      ['amount=1005&currency=kwd', 'amount', 'invalid_charge_amount'],
    ];
    for (const [index, [body, param, code]] of cases.entries()) {
      const key = `refused-then-fixed-${index}`;
      const before = await stateCounts(server.database.db);
      const refused = await post('/v1/payment_intents', body, key);
      assert.deepEqual([refused.status, (refused.json.error as { code?: string; param?: string }).code, (refused.json.error as { param?: string }).param], [400, code, param], body);
      assert.deepEqual(await stateCounts(server.database.db), before, `${body}: nothing kept, not even the key`);
      const again = await post('/v1/payment_intents', body, key);
      assert.equal(again.headers['idempotent-replayed'], undefined, 'the same refused request is checked again, not replayed');
      const fixed = await post('/v1/payment_intents', 'amount=1000&currency=usd', key);
      assert.equal(fixed.status, 200, `${body}, then corrected with the same key: ${fixed.body}`);
      const replay = await post('/v1/payment_intents', 'amount=1000&currency=usd', key);
      assert.deepEqual([replay.headers['idempotent-replayed'], replay.body], ['true', fixed.body], 'the corrected request is the key\'s from then on');
    }
    // A refusal after the request did something (a decline, once the attempt was made) stays the key's answer.
    const declined = await post('/v1/payment_intents', 'amount=1000&currency=usd&payment_method=pm_card_chargeDeclined&confirm=true', 'declined-kept');
    assert.equal(declined.status, 402);
    const other = await post('/v1/payment_intents', 'amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true', 'declined-kept');
    assert.equal((other.json.error as { code?: string }).code, 'idempotency_key_reused');
  });

  test('a URL refused, or a key refused what it may not do, keeps nothing either; the corrected request may use the key', async () => {
    const restricted = (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: parsePermissions(['payment_intents:write']) })).key.reveal();
    const intent = await server.stripe.paymentIntents.create({ amount: 1200, currency: 'usd', payment_method: 'pm_card_visa' });
    const cases: Array<{ path: string; refused: string; fixed: string; code: string; key?: string; fixedKey?: string }> = [
      { path: '/v1/webhook_endpoints', refused: 'url=https%3A%2F%2F10.0.0.1%2Fhook&enabled_events[]=charge.succeeded', fixed: 'url=https%3A%2F%2F93.184.216.34%2Fhook&enabled_events[]=charge.succeeded', code: 'url_invalid' },
      { path: '/v1/payment_intents', refused: 'amount=1000&currency=usd&expand[]=latest_charge', fixed: 'amount=1000&currency=usd', code: 'insufficient_permissions', key: restricted },
      { path: `/v1/payment_intents/${intent.id}/confirm`, refused: '', fixed: `client_secret=${intent.client_secret ?? ''}`, code: 'secret_key_required', key: server.publishableKey },
    ];
    for (const [index, { path, refused, fixed, code, key }] of cases.entries()) {
      const idempotencyKey = `refused-before-work-${index}`;
      const before = await stateCounts(server.database.db);
      const answer = await post(path, refused, idempotencyKey, key);
      assert.equal((answer.json.error as { code?: string }).code, code, answer.body);
      // Only the audit record of a key refused what it may not do.
      const audited = code === 'insufficient_permissions' ? 1 : 0;
      assert.deepEqual(await stateCounts(server.database.db), { ...before, audit_log: before.audit_log + audited }, `${code}: nothing kept, not even the key`);
      const corrected = await post(path, fixed, idempotencyKey, key);
      assert.equal(corrected.status, 200, `${code}, then corrected with the same key: ${corrected.body}`);
    }
  });

  test('concurrent copies of a request the flow refuses get the refusal or 409, never a server error', async () => {
    for (let round = 0; round < 4; round += 1) {
      const answers = await Promise.all(Array.from({ length: 30 }, () => post('/v1/payment_intents', 'amount=1&currency=usd', `refused-at-once-${round}`)));
      const codes = new Set(answers.map((answer) => `${answer.status} ${(answer.json.error as { code?: string } | undefined)?.code ?? ''}`));
      for (const code of codes) assert.ok(['400 amount_too_small', '409 idempotency_key_in_use'].includes(code), [...codes].join(', '));
    }
  });

  test('keys outside printable ASCII are refused, naming the header', async () => {
    for (const key of ['évt-123', 'tab\there']) {
      const before = await stateCounts(server.database.db);
      const response = await rawRequest(server, 'POST', '/v1/payment_intents', { key: server.secretKey, body: 'amount=1000&currency=usd', headers: { 'idempotency-key': Buffer.from(key, 'utf8').toString('latin1') } });
      assert.equal(response.status, 400, response.body);
      assert.deepEqual([(response.json.error as { code?: string }).code, (response.json.error as { param?: string }).param], ['idempotency_key_invalid', 'Idempotency-Key']);
      assert.deepEqual(await stateCounts(server.database.db), before);
    }
  });

  test('keys longer than 255 characters are refused', async () => {
    const response = await post('/v1/payment_intents', 'amount=1000&currency=usd', 'k'.repeat(256));
    assert.equal(response.status, 400);
    assert.equal((response.json.error as Record<string, unknown>).code, 'idempotency_key_invalid');
  });

  test('keys belong to one merchant', async () => {
    const mine = await post('/v1/payment_intents', 'amount=1000&currency=usd', 'shared-key');
    const theirs = await post('/v1/payment_intents', 'amount=1000&currency=usd', 'shared-key', server.otherSecretKey);
    assert.equal(theirs.status, 200);
    assert.notEqual(theirs.json.id, mine.json.id);
  });

  test('100 concurrent copies of one request create one PaymentIntent and one authorization', async () => {
    const key = 'storm-1';
    const body = 'amount=4242&currency=usd&payment_method=pm_card_visa&confirm=true';
    const before = await stateCounts(server.database.db);
    const responses = await Promise.all(Array.from({ length: 100 }, () => post('/v1/payment_intents', body, key)));
    const ok = responses.filter((response) => response.status === 200);
    const busy = responses.filter((response) => response.status === 409);
    assert.equal(ok.length + busy.length, 100, `only 200 or 409: ${JSON.stringify(responses.map((r) => r.status))}`);
    assert.ok(ok.length >= 1);
    for (const response of busy) assert.equal((response.json.error as Record<string, unknown>).code, 'idempotency_key_in_use');
    assert.equal(new Set(ok.map((response) => response.body)).size, 1, 'every success is the same response');
    const after = await stateCounts(server.database.db);
    assert.equal(after.payment_intents - before.payment_intents, 1);
    assert.equal(after.sandbox_card_payments - before.sandbox_card_payments, 1);
    assert.equal(after.charges - before.charges, 1);
    const transfers = await server.database.db.selectFrom('ledger_transfers').select('id').where('payment_intent_id', '=', String(ok[0]?.json.id)).execute();
    assert.equal(transfers.length, 1);
  });

  test('concurrent SDK calls with one key all end with the same PaymentIntent (the SDK retries 409)', async () => {
    const stripe = stripeClient(server, server.secretKey, { maxNetworkRetries: 10 });
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        stripe.paymentIntents.create({ amount: 999, currency: 'usd', payment_method: 'pm_card_visa', confirm: true }, { idempotencyKey: 'sdk-storm' }),
      ),
    );
    assert.equal(new Set(results.map((intent) => intent.id)).size, 1);
    assert.ok(results.every((intent) => intent.status === 'succeeded'));
  });

  test('an acquirer that answers too late: 503, and the retry finishes the same attempt without charging twice', async () => {
    const created = await server.stripe.paymentIntents.create({ amount: 3300, currency: 'usd', payment_method: 'pm_card_visa' });
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(5_000);
    const path = `/v1/payment_intents/${created.id}/confirm`;
    const first = await post(path, '', 'slow-1');
    assert.equal(first.status, 503);
    assert.equal((first.json.error as Record<string, unknown>).code, 'service_unavailable');
    assert.equal(first.headers['stripe-should-retry'], 'true');
    const during = await server.stripe.paymentIntents.retrieve(created.id);
    assert.equal(during.status, 'processing');
    const retry = await post(path, '', 'slow-1');
    assert.equal(retry.status, 200);
    assert.equal(retry.json.status, 'succeeded');
    const authorizations = await server.database.db
      .selectFrom('sandbox_card_payments')
      .select('id')
      .where('merchant_reference', '=', String(retry.json.latest_charge))
      .execute();
    assert.equal(authorizations.length, 1, 'the acquirer authorized once');
    const third = await post(path, '', 'slow-1');
    assert.equal(third.body, retry.body, 'the finished response is now the one replayed');
  });

  test('another request cannot confirm a PaymentIntent whose attempt is in flight', async () => {
    const created = await server.stripe.paymentIntents.create({ amount: 3400, currency: 'usd', payment_method: 'pm_card_visa' });
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(5_000);
    const path = `/v1/payment_intents/${created.id}/confirm`;
    assert.equal((await post(path, '', 'inflight-a')).status, 503);
    const other = await post(path, '', 'inflight-b');
    assert.equal(other.status, 400);
    assert.equal((other.json.error as Record<string, unknown>).code, 'payment_intent_unexpected_state');
    assert.equal((await post(path, '', 'inflight-a')).json.status, 'succeeded');
  });
  // A request that stalls past the key's lock limit (90 s) loses the key to the client's retry. Whichever of the two
  // reaches its commit first, the change is made once, and the key keeps the answer of the request that holds it.
  test('a retry that took the key over from a stalled request: the change is made once', { skip: process.env.COFFER_TEST_DATABASE_URL ? false : 'needs a second connection to hold a lock' }, async () => {
    const customer = await server.stripe.customers.create({ email: 'stalled@example.com' });
    const body = 'metadata[tier]=gold';
    const key = 'stalled-update-1';
    const db = server.database.db;
    let releaseRow: () => void = () => undefined;
    let held: () => void = () => undefined;
    const rowHeld = new Promise<void>((resolve) => (held = resolve));
    // Another transaction holds the customer's row, so that the first request stalls inside its change.
    const holder = db.transaction().execute(async (tx) => {
      await tx.selectFrom('customers').select('id').where('id', '=', customer.id).forUpdate().execute();
      held();
      await new Promise<void>((resolve) => (releaseRow = resolve));
    });
    await rowHeld;
    const first = post(`/v1/customers/${customer.id}`, body, key);
    const claimed = async () => (await db.selectFrom('idempotency_keys').select('id').where('key', '=', key).execute()).length === 1;
    for (let tries = 0; !(await claimed()) && tries < 100; tries += 1) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 200)); // the first request now waits for the row
    // Ninety seconds pass (the lock is made to look that old): the client's retry takes the key over.
    await db.updateTable('idempotency_keys').set({ locked_at: new Date(Date.now() - 10 * 60_000) }).where('key', '=', key).execute();
    const retry = post(`/v1/customers/${customer.id}`, body, key);
    await new Promise((resolve) => setTimeout(resolve, 300));
    releaseRow();
    await holder;
    const answers = await Promise.all([first, retry]);
    const updates = await db.selectFrom('audit_log').select('seq').where('action', '=', 'customer.update').where('object_id', '=', customer.id).execute();
    assert.equal(updates.length, 1, 'one update recorded');
    const succeeded = answers.filter((answer) => answer.status === 200);
    assert.equal(succeeded.length, 1, answers.map((answer) => answer.body).join('\n'));
    const lost = answers.find((answer) => answer.status !== 200);
    assert.equal((lost?.json.error as { code?: string } | undefined)?.code, 'idempotency_key_in_use');
    const stored = await db.selectFrom('idempotency_keys').select(['response_body', 'locked_at']).where('key', '=', key).executeTakeFirstOrThrow();
    assert.equal(stored.response_body, succeeded[0]?.body, 'the key keeps the answer of the request that made the change');
    assert.equal(stored.locked_at, null);
    assert.equal((await post(`/v1/customers/${customer.id}`, body, key)).body, succeeded[0]?.body);
  });
  // A request that stalls past the key's lock limit may find its key taken over by the client's retry. From then on
  // it may make no change: not in a statement of its own, not in a transaction, not by naming an object to resume.
  test('a claim a retry took over can neither hold the key nor leave a recovery point; the retry can', async () => {
    const db = server.database.db;
    const actor = { merchantId: server.merchantId, livemode: false, keyKind: 'secret', apiVersion: { name: currentApiVersion } } as Actor;
    const claim = (requestId: string) => claimIdempotencyKey(db, 'flush_every_commit', actor, 'taken-over-1', 'hash-1', 'POST', '/v1/refunds', requestId);
    const first = await claim('req_first');
    assert.equal(first.kind, 'claimed');
    await db.updateTable('idempotency_keys').set({ locked_at: new Date(Date.now() - 10 * 60_000) }).where('key', '=', 'taken-over-1').execute();
    const retry = await claim('req_retry');
    assert.equal(retry.kind, 'claimed');
    if (first.kind !== 'claimed' || retry.kind !== 'claimed') return;
    const inUse = (error: unknown) => (error as { code?: string }).code === 'idempotency_key_in_use';
    await assert.rejects(db.transaction().execute((tx) => first.claim.hold(tx)), inUse);
    await assert.rejects(db.transaction().execute((tx) => first.claim.setRecoveryPoint(tx, 'pi_stalled')), inUse);
    await db.transaction().execute(async (tx) => {
      await retry.claim.hold(tx);
      await retry.claim.setRecoveryPoint(tx, 'pi_retry');
    });
    const row = await db.selectFrom('idempotency_keys').select('recovery_point').where('key', '=', 'taken-over-1').executeTakeFirstOrThrow();
    assert.equal(row.recovery_point, 'pi_retry');
  });

  test('a create or a refund whose key a retry took over while it stalled is made once', { skip: process.env.COFFER_TEST_DATABASE_URL ? false : 'needs a second connection to hold a lock' }, async () => {
    const db = server.database.db;
    const paid = await server.stripe.paymentIntents.create({ amount: 2000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const cases = [
      { name: 'create', table: 'payment_intents', path: '/v1/payment_intents', body: 'amount=1500&currency=usd&metadata[stall]=create' },
      { name: 'create and confirm', table: 'payment_intents', path: '/v1/payment_intents', body: 'amount=1600&currency=usd&payment_method=pm_card_visa&confirm=true&metadata[stall]=confirm' },
      { name: 'refund', table: 'refunds', path: '/v1/refunds', body: `payment_intent=${paid.id}&amount=500` },
    ] as const;
    for (const { name, table, path, body } of cases) {
      const key = `stalled-${name}`;
      let release: () => void = () => undefined;
      let locked: () => void = () => undefined;
      const tableLocked = new Promise<void>((resolve) => (locked = resolve));
      // Another transaction keeps rows from being written to the table, so that the first request stalls in its change.
      const holder = db.transaction().execute(async (tx) => {
        await sql`LOCK TABLE ${sql.table(table)} IN EXCLUSIVE MODE`.execute(tx);
        locked();
        await new Promise<void>((resolve) => (release = resolve));
      });
      await tableLocked;
      const first = post(path, body, key);
      const claimed = async () => (await db.selectFrom('idempotency_keys').select('id').where('key', '=', key).execute()).length === 1;
      for (let tries = 0; !(await claimed()) && tries < 100; tries += 1) await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise((resolve) => setTimeout(resolve, 200)); // the first request now waits for the table
      // Ninety seconds pass (the lock is made to look that old; a refund holds its key while it stalls, so this
      // waits for it): the client's retry takes the key over.
      const aged = db.updateTable('idempotency_keys').set({ locked_at: new Date(Date.now() - 10 * 60_000) }).where('key', '=', key).where('finished_at', 'is', null).execute();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const retry = aged.then(() => post(path, body, key));
      await new Promise((resolve) => setTimeout(resolve, 300));
      release();
      await holder;
      const answers = await Promise.all([first, retry]);
      const made = answers.filter((answer) => answer.status === 200).map((answer) => String(answer.json.id));
      assert.ok(made.length >= 1, `${name}: ${answers.map((answer) => answer.body).join('\n')}`);
      assert.equal(new Set(made).size, 1, `${name}: every answer names the same object`);
      for (const answer of answers.filter((each) => each.status !== 200)) {
        assert.equal((answer.json.error as { code?: string }).code, 'idempotency_key_in_use', `${name}: ${answer.body}`);
      }
      if (table === 'payment_intents') {
        const intents = await db.selectFrom('payment_intents').select('id').where(sql<boolean>`metadata->>'stall' = ${body.includes('confirm=true') ? 'confirm' : 'create'}`).execute();
        assert.deepEqual(intents.map((row) => row.id), made.slice(0, 1), `${name}: one PaymentIntent`);
        const charges = await db.selectFrom('charges').select('id').where('payment_intent_id', '=', made[0] ?? '').execute();
        assert.equal(charges.length, body.includes('confirm=true') ? 1 : 0, `${name}: charged ${charges.length} times`);
      } else {
        const refunds = await db.selectFrom('refunds').select(['id', 'status']).where('payment_intent_id', '=', paid.id).execute();
        assert.deepEqual(refunds.map((row) => row.id), made.slice(0, 1), 'one refund');
        const charge = await db.selectFrom('charges').select('amount_refunded').where('payment_intent_id', '=', paid.id).executeTakeFirstOrThrow();
        assert.equal(charge.amount_refunded, 500n);
      }
      // The key answers from now on with the object that was made.
      const replay = await post(path, body, key);
      assert.equal(replay.status, 200, replay.body);
      assert.equal(replay.json.id, made[0]);
    }
  });
});
