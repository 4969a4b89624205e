import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Stripe from 'stripe';
import { deliverDueWebhooks, startWebhookWorker } from '../../src/webhooks/deliverer.ts';
import { relayEvents } from '../../src/webhooks/relay.ts';
import { withPendingWebhooks } from '../../src/store/events.ts';
import { stateCounts } from '../support/ledger.ts';
import { WebhookReceiver } from '../support/receiver.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { TestClock } from '../support/clock.ts';
import { rawRequest } from '../support/server.ts';
import { createApiKey, createMerchant } from '../../src/identity/merchants.ts';
import { parsePermissions } from '../../src/identity/api-keys.ts';

/** Relays and delivers until nothing is due (bounded). */
async function drain(server: TestServer): Promise<void> {
  for (let round = 0; round < 50; round += 1) {
    const worked = (await relayEvents(server.coffer.services)) + (await deliverDueWebhooks(server.coffer.services));
    if (worked === 0) return;
  }
  throw new Error('deliveries did not drain');
}

// Goal: every committed event reaches each endpoint that wants it, signed so that Stripe's own
// `constructEvent` verifies it, retried until accepted, never to addresses a merchant must not reach, and
// listable and resendable when delivery fails.
describe('webhooks', () => {
  let server: TestServer;
  let stripe: Stripe;
  const receiver = new WebhookReceiver();
  let url = '';
  const clock = new TestClock();

  before(async () => {
    url = await receiver.start();
    server = await startTestServer({ clock, configEnv: { COFFER_WEBHOOKS_ALLOW_PRIVATE: 'true' } });
    stripe = server.stripe;
  });
  after(async () => {
    await server.close();
    await receiver.stop();
  });

  test('endpoints: create shows the secret once; retrieve, list, update, delete', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url, enabled_events: ['payment_intent.succeeded'], description: 'orders' });
    assert.match(endpoint.id, /^we_/);
    assert.match(endpoint.secret ?? '', /^whsec_[A-Za-z0-9]{32}$/);
    assert.equal(endpoint.status, 'enabled');
    const retrieved = await stripe.webhookEndpoints.retrieve(endpoint.id);
    assert.equal(retrieved.secret, undefined);
    const updated = await stripe.webhookEndpoints.update(endpoint.id, { enabled_events: ['*'], disabled: true });
    assert.deepEqual(updated.enabled_events, ['*']);
    assert.equal(updated.status, 'disabled');
    const listed = await stripe.webhookEndpoints.list();
    assert.ok(listed.data.some((item) => item.id === endpoint.id));
    const deleted = await stripe.webhookEndpoints.del(endpoint.id);
    assert.equal(deleted.deleted, true);
    await assert.rejects(stripe.webhookEndpoints.retrieve(endpoint.id), (error: Stripe.errors.StripeError) => error.statusCode === 404);
    const stored = await server.database.db.selectFrom('idempotency_keys').select('response_body').where('response_body', 'like', '%whsec_%').execute();
    assert.deepEqual(stored, [], 'a signing secret is never kept with an idempotency key');
  });

  test('deliveries are signed, verify with stripe.webhooks.constructEvent, and tampering fails', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url, enabled_events: ['payment_intent.succeeded', 'charge.succeeded'] });
    const secret = endpoint.secret ?? '';
    const intent = await stripe.paymentIntents.create({ amount: 1234, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    await drain(server);
    const mine = receiver.received.filter((item) => item.body.includes(intent.id));
    assert.deepEqual(mine.map((item) => item.type).sort(), ['charge.succeeded', 'payment_intent.succeeded']);
    for (const delivery of mine) {
      const event = stripe.webhooks.constructEvent(delivery.body, delivery.signature ?? '', secret);
      assert.equal(event.id, delivery.eventId);
      assert.throws(() => stripe.webhooks.constructEvent(delivery.body.replace('1234', '1235'), delivery.signature ?? '', secret), /No signatures found matching/);
      assert.throws(() => stripe.webhooks.constructEvent(delivery.body, delivery.signature ?? '', 'whsec_wrong'), /No signatures found matching/);
    }
    const succeeded = mine.find((item) => item.type === 'payment_intent.succeeded');
    assert.equal((JSON.parse(succeeded?.body ?? '{}') as Stripe.Event).data.object.object, 'payment_intent');
    await stripe.webhookEndpoints.del(endpoint.id);
  });

  test('each endpoint receives events in its own API version; no second rendering is kept when none asks for it', async () => {
    const db = server.database.db;
    const unasked = await stripe.paymentIntents.create({ amount: 300, currency: 'usd' });
    const unaskedEvent = await db.selectFrom('events').select(['other_shape', 'other_payload']).where('object_id', '=', unasked.id).executeTakeFirstOrThrow();
    assert.deepEqual(unaskedEvent, { other_shape: null, other_payload: null }, 'no endpoint asks for another shape: nothing extra is stored');

    const receivers = [new WebhookReceiver(), new WebhookReceiver(), new WebhookReceiver()];
    const urls = await Promise.all(receivers.map((item) => item.start()));
    const versions = ['2024-04-10', '2025-03-31.basil', undefined];
    const endpoints = await Promise.all(versions.map((version, index) => stripe.webhookEndpoints.create({
      url: urls[index] ?? '', enabled_events: ['payment_intent.succeeded'],
      ...(version === undefined ? {} : { api_version: version as Stripe.WebhookEndpointCreateParams.ApiVersion }),
    })));
    try {
      const intent = await stripe.paymentIntents.create({ amount: 4321, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
      await drain(server);
      const bodies = receivers.map((item, index) => {
        const delivery = item.received.find((received) => received.body.includes(intent.id));
        assert.ok(delivery !== undefined, `endpoint ${index} received the event`);
        const event = stripe.webhooks.constructEvent(delivery.body, delivery.signature ?? '', endpoints[index]?.secret ?? '');
        return { raw: delivery.body, event, object: event.data.object as unknown as Record<string, unknown> };
      });
      const [legacy, basil, plain] = bodies;
      assert.ok(legacy !== undefined && basil !== undefined && plain !== undefined);
      assert.equal(legacy.event.api_version, '2024-04-10');
      assert.equal(legacy.object.invoice, null, 'the 2024-04-10 shape has invoice');
      assert.equal('excluded_payment_method_types' in legacy.object, false);
      assert.equal(basil.event.api_version, '2025-03-31.basil');
      assert.equal('invoice' in basil.object, false, 'basil removed invoice');
      assert.equal(basil.object.excluded_payment_method_types, null);
      const stored = await db.selectFrom('events').select(['payload', 'api_version', 'other_shape']).where('id', '=', plain.event.id).executeTakeFirstOrThrow();
      assert.equal(stored.other_shape, 'legacy', 'the legacy rendering is kept while a legacy endpoint exists');
      // pending_webhooks says how many of the event's three deliveries were still to be received, this one included.
      const pending = Number(/"pending_webhooks":(\d+),"request":/.exec(plain.raw)?.[1]);
      assert.ok(pending >= 1 && pending <= 3, plain.raw);
      assert.equal(plain.raw, withPendingWebhooks(stored.payload as string, pending), 'an endpoint without a version gets the stored payload byte for byte, but for pending_webhooks');
      const shown = await stripe.events.retrieve(plain.event.id);
      assert.equal(shown.pending_webhooks, 0, 'every endpoint has received it');
      assert.equal(plain.event.api_version, stored.api_version);
      for (const item of bodies) assert.equal(item.event.id, plain.event.id, 'one event, three renderings');
      // An event older than the legacy endpoint was never rendered in its shape: resent to it, it goes as it was
      // rendered, under its own version, never the current shape under the old label.
      const before = await db.selectFrom('events').select(['id', 'api_version']).where('object_id', '=', unasked.id).executeTakeFirstOrThrow();
        const resent = await rawRequest(server, 'POST', `/v1/events/${before.id}/resend`, { key: server.secretKey, body: `webhook_endpoint=${endpoints[0]?.id ?? ''}` });
      assert.equal(resent.status, 200, resent.body);
      await drain(server);
      const old = receivers[0]?.received.find((received) => received.eventId === before.id);
      assert.ok(old !== undefined, 'the resent event arrived');
      assert.equal((JSON.parse(old.body) as { api_version: string }).api_version, before.api_version, 'labelled with the version it was rendered in');

      // An object the same in both shapes (a customer) still reaches each endpoint under the endpoint's version.
      const wantsCustomers = await stripe.webhookEndpoints.create({ url: urls[0] ?? '', enabled_events: ['customer.created'], api_version: '2024-04-10' as Stripe.WebhookEndpointCreateParams.ApiVersion });
      endpoints.push(wantsCustomers);
      const customer = await stripe.customers.create({ email: 'versions@example.com' });
      await drain(server);
      const customerEvent = receivers[0]?.received.find((received) => received.type === 'customer.created' && received.body.includes(customer.id));
      assert.ok(customerEvent !== undefined);
      const delivered = stripe.webhooks.constructEvent(customerEvent.body, customerEvent.signature ?? '', wantsCustomers.secret ?? '');
      assert.equal(delivered.api_version, '2024-04-10', 'the endpoint\'s version, though the object has the same shape in both');
      const kept = await db.selectFrom('events').select(['api_version', 'payload']).where('id', '=', delivered.id).executeTakeFirstOrThrow();
      assert.notEqual(kept.api_version, '2024-04-10');
      assert.deepEqual(delivered.data, (JSON.parse(kept.payload as string) as Stripe.Event).data, 'the same object');
    } finally {
      for (const endpoint of endpoints) await stripe.webhookEndpoints.del(endpoint.id);
      await Promise.all(receivers.map((item) => item.stop()));
    }
    const later = await stripe.paymentIntents.create({ amount: 301, currency: 'usd' });
    const laterEvent = await db.selectFrom('events').select('other_shape').where('object_id', '=', later.id).executeTakeFirstOrThrow();
    assert.equal(laterEvent.other_shape, null, 'once the legacy endpoint is gone, nothing extra is stored again');
  });

  test('a signature older than five minutes is refused by the verifier', async () => {
    clock.offsetMs = -10 * 60_000;
    const endpoint = await stripe.webhookEndpoints.create({ url, enabled_events: ['payment_intent.created'] });
    try {
      const intent = await stripe.paymentIntents.create({ amount: 500, currency: 'usd' });
      await drain(server);
      const delivery = receiver.received.find((item) => item.type === 'payment_intent.created' && item.body.includes(intent.id));
      assert.ok(delivery !== undefined);
      assert.throws(() => stripe.webhooks.constructEvent(delivery.body, delivery.signature ?? '', endpoint.secret ?? ''), /Timestamp outside the tolerance zone/);
    } finally {
      clock.offsetMs = 0;
      await stripe.webhookEndpoints.del(endpoint.id);
    }
  });

  test('a failing receiver is retried with backoff until it accepts; delivery_success=false lists it meanwhile', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url, enabled_events: ['payment_intent.canceled'] });
    receiver.failRate = 1;
    const intent = await stripe.paymentIntents.create({ amount: 700, currency: 'usd' });
    await stripe.paymentIntents.cancel(intent.id);
    const [queued] = (await stripe.events.list({ type: 'payment_intent.canceled', limit: 1 })).data;
    assert.equal((queued?.data.object as Stripe.PaymentIntent | undefined)?.id, intent.id);
    assert.equal(queued?.pending_webhooks, 1, 'before it is relayed, the one endpoint that wants it counts');
    await drain(server);
    const failing = await stripe.events.list({ delivery_success: false, type: 'payment_intent.canceled' });
    const event = failing.data.find((item) => (item.data.object as Stripe.PaymentIntent).id === intent.id);
    assert.ok(event !== undefined, 'the undelivered event is listed');
    assert.equal(event.pending_webhooks, 1, 'a delivery being retried is still to be received');
    assert.equal(JSON.parse(receiver.received.findLast((item) => item.eventId === event.id)?.body ?? '{}').pending_webhooks, 1, 'the delivery counts itself');
    const delivery = await server.database.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', event.id).executeTakeFirstOrThrow();
    assert.equal(delivery.status, 'pending');
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.last_status_code, 500);
    assert.ok(delivery.next_attempt_at.getTime() - Date.now() > 50_000, 'the next attempt waits about a minute');
    receiver.failRate = 0;
    clock.offsetMs += 2 * 60_000;
    await drain(server);
    clock.offsetMs = 0;
    const done = await server.database.db.selectFrom('webhook_deliveries').select(['status', 'attempts']).where('event_id', '=', event.id).executeTakeFirstOrThrow();
    assert.deepEqual(done, { status: 'succeeded', attempts: 2 });
    const attempts = await server.database.db.selectFrom('webhook_attempts').select('status_code').where('delivery_id', '=', delivery.id).orderBy('id').execute();
    assert.deepEqual(attempts.map((attempt) => attempt.status_code), [500, 200]);
    const remaining = await stripe.events.list({ delivery_success: false, type: 'payment_intent.canceled' });
    assert.equal(remaining.data.some((item) => item.id === event.id), false);
    assert.equal((await stripe.events.retrieve(event.id)).pending_webhooks, 0);
    await stripe.webhookEndpoints.del(endpoint.id);
  });

  // Stripe shows why a delivery failed only in its dashboard; a self-hosted merchant reads it from the API.
  test('why a delivery failed is readable per event and per endpoint: each attempt\'s status code or error', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const dead = await stripe.webhookEndpoints.create({ url: `http://127.0.0.1:${deadPort}/gone`, enabled_events: ['customer.created'] });
    const failing = await stripe.webhookEndpoints.create({ url, enabled_events: ['customer.created'] });
    receiver.failRate = 1;
    const customers: Stripe.Customer[] = [];
    for (let index = 0; index < 3; index += 1) customers.push(await stripe.customers.create({ email: `deliveries${index}@example.com` }));
    await drain(server);
    receiver.failRate = 0;
    const events = (await stripe.events.list({ type: 'customer.created', limit: 3 })).data;
    const event = events.find((item) => (item.data.object as Stripe.Customer).id === customers[2]?.id);
    assert.ok(event !== undefined);

    const byEvent = await rawRequest(server, 'GET', `/v1/events/${event.id}/deliveries`, { key: server.secretKey });
    assert.equal(byEvent.status, 200, byEvent.body);
    const deliveries = byEvent.json.data as Array<Record<string, unknown>>;
    assert.deepEqual(deliveries.map((item) => item.webhook_endpoint), [dead.id, failing.id], 'one delivery per endpoint, oldest first');
    const [toDead, toFailing] = deliveries;
    assert.equal(toDead?.status, 'pending');
    assert.equal(toDead?.attempt_count, 1);
    assert.equal(toDead?.last_status_code, null);
    assert.match(String(toDead?.last_error), /ECONNREFUSED/, 'a refused connection is named');
    assert.equal(typeof toDead?.next_attempt_at, 'number');
    assert.equal(toFailing?.last_status_code, 500);
    assert.equal(toFailing?.last_error, null);
    assert.equal(toFailing?.event, event.id);
    assert.equal(toFailing?.event_type, 'customer.created');
    assert.deepEqual((toFailing?.attempts as Array<Record<string, unknown>>).map((attempt) => attempt.status_code), [500]);

    // The next attempt succeeds: the list shows both attempts, newest first, and the delivery done.
    clock.offsetMs += 2 * 60_000;
    await drain(server);
    clock.offsetMs = 0;
    const later = await rawRequest(server, 'GET', `/v1/events/${event.id}/deliveries`, { key: server.secretKey });
    const done = (later.json.data as Array<Record<string, unknown>>).find((item) => item.webhook_endpoint === failing.id);
    assert.equal(done?.status, 'succeeded');
    assert.equal(done?.next_attempt_at, null);
    assert.equal(typeof done?.delivered_at, 'number');
    assert.deepEqual((done?.attempts as Array<Record<string, unknown>>).map((attempt) => attempt.status_code), [200, 500]);

    // Per endpoint: newest first, paged, filtered by status or event.
    const first = await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries?limit=2`, { key: server.secretKey });
    assert.equal(first.status, 200, first.body);
    const firstPage = first.json.data as Array<Record<string, unknown>>;
    assert.equal(first.json.has_more, true);
    assert.equal(first.json.url, `/v1/webhook_endpoints/${dead.id}/deliveries`);
    assert.deepEqual(firstPage.map((item) => item.event), [events[0]?.id, events[1]?.id]);
    const second = await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries?limit=2&starting_after=${String(firstPage[1]?.id)}`, { key: server.secretKey });
    assert.deepEqual((second.json.data as Array<Record<string, unknown>>).map((item) => item.event), [events[2]?.id]);
    assert.equal(second.json.has_more, false);
    const back = await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries?ending_before=${String((second.json.data as Array<{ id: string }>)[0]?.id)}`, { key: server.secretKey });
    assert.deepEqual((back.json.data as Array<Record<string, unknown>>).map((item) => item.event), [events[0]?.id, events[1]?.id]);
    const succeeded = await rawRequest(server, 'GET', `/v1/webhook_endpoints/${failing.id}/deliveries?status=succeeded&event=${event.id}`, { key: server.secretKey });
    assert.deepEqual((succeeded.json.data as Array<Record<string, unknown>>).map((item) => item.event), [event.id]);
    const pendingOnly = await rawRequest(server, 'GET', `/v1/webhook_endpoints/${failing.id}/deliveries?status=pending`, { key: server.secretKey });
    assert.ok((pendingOnly.json.data as Array<Record<string, unknown>>).every((item) => item.status === 'pending'));

    // Refusals name the problem.
    const badStatus = await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries?status=lost`, { key: server.secretKey });
    assert.equal(badStatus.status, 400);
    assert.equal((badStatus.json.error as { param: string }).param, 'status');
    const badCursor = await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries?starting_after=whdel_999999999`, { key: server.secretKey });
    assert.equal(badCursor.status, 404);
    assert.equal((badCursor.json.error as { param: string }).param, 'starting_after');
    // Ids are opaque: they tell nothing of how many deliveries the installation made, and a made-up one is no cursor.
    assert.match(String(firstPage[0]?.id), /^whdel_[A-Za-z0-9_-]{22}$/);
    const forged = `whdel_${Buffer.alloc(16).toString('base64url')}`;
    assert.equal((await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries?starting_after=${forged}`, { key: server.secretKey })).status, 404);
    const otherCursor = await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries?starting_after=${String(done?.id)}`, { key: server.secretKey });
    assert.equal(otherCursor.status, 404, 'a delivery of another endpoint is no cursor here');

    // Another merchant sees none of it; a restricted key needs the resource's read permission.
    const other = await createMerchant(server.database.db, 'Other deliveries merchant');
    const otherKey = (await createApiKey(server.database.db, other, 'secret', false)).key.reveal();
    assert.equal((await rawRequest(server, 'GET', `/v1/events/${event.id}/deliveries`, { key: otherKey })).status, 404);
    assert.equal((await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries`, { key: otherKey })).status, 404);
    const eventsOnly = (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: parsePermissions(['events:read']) })).key.reveal();
    assert.equal((await rawRequest(server, 'GET', `/v1/events/${event.id}/deliveries`, { key: eventsOnly })).status, 403, 'deliveries name endpoints: their permission too');
    assert.equal((await rawRequest(server, 'GET', `/v1/webhook_endpoints/${dead.id}/deliveries`, { key: eventsOnly })).status, 403);
    const both = (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: parsePermissions(['events:read', 'webhook_endpoints:read']) })).key.reveal();
    assert.equal((await rawRequest(server, 'GET', `/v1/events/${event.id}/deliveries`, { key: both })).status, 200);

    await stripe.webhookEndpoints.del(dead.id);
    await stripe.webhookEndpoints.del(failing.id);
    await server.database.db.updateTable('webhook_deliveries').set({ status: 'failed' }).where('endpoint_id', '=', dead.id).execute();
  });

  test('an answer that trickles in is cut off at the deadline and retried, so a delivery ends well within its lease', { timeout: 30_000 }, async () => {
    // Headers at once, then a byte every 300 ms, never the end: each byte would reset a socket's idle timeout.
    const trickle = http.createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => response.write(' '), 300);
      response.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => trickle.listen(0, '127.0.0.1', resolve));
    const port = (trickle.address() as AddressInfo).port;
    try {
      const endpoint = await stripe.webhookEndpoints.create({ url: `http://127.0.0.1:${port}/slow`, enabled_events: ['payment_intent.created'] });
      const intent = await stripe.paymentIntents.create({ amount: 810, currency: 'usd', metadata: { trickle: 'yes' } });
      await relayEvents(server.coffer.services);
      const started = Date.now();
      await deliverDueWebhooks(server.coffer.services);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 9_500 && elapsed < 12_000, `cut off at the 10 s deadline (${elapsed} ms)`);
      const delivery = await server.database.db.selectFrom('webhook_deliveries').innerJoin('events', 'events.id', 'webhook_deliveries.event_id')
        .select(['webhook_deliveries.id', 'webhook_deliveries.status', 'webhook_deliveries.attempts', 'webhook_deliveries.last_error'])
        .where('webhook_deliveries.endpoint_id', '=', endpoint.id).where('events.object_id', '=', intent.id).executeTakeFirstOrThrow();
      assert.deepEqual([delivery.status, delivery.attempts, delivery.last_error], ['pending', 1, 'no answer within 10000 ms'], 'a failure, to be retried');
      await stripe.webhookEndpoints.del(endpoint.id);
    } finally {
      trickle.closeAllConnections();
      await new Promise((resolve) => trickle.close(resolve));
    }
  });

  // A receiver that takes its whole deadline holds one delivery slot, not the worker: another endpoint's events
  // go out meanwhile (before, the worker waited for its whole batch, so one slow receiver delayed everyone's).
  test('the worker keeps delivering to other endpoints while one receiver holds its delivery open', { timeout: 30_000 }, async () => {
    const held: http.ServerResponse[] = [];
    const fast: string[] = [];
    const receivers = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (request.url === '/held') {
          held.push(response);
          return;
        }
        fast.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string }).type);
        response.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => receivers.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(receivers.address() as AddressInfo).port}`;
    const slow = await stripe.webhookEndpoints.create({ url: `${base}/held`, enabled_events: ['customer.created'] });
    const quick = await stripe.webhookEndpoints.create({ url: `${base}/fast`, enabled_events: ['payment_intent.created'] });
    const until = async (done: () => boolean, what: string) => {
      for (let waited = 0; !done(); waited += 50) {
        if (waited > 8_000) throw new Error(`not within 8 s: ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const worker = startWebhookWorker(server.coffer.services);
    try {
      await stripe.customers.create({ email: 'slow@example.com' });
      await until(() => held.length === 1, 'the slow receiver got its delivery');
      await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });
      await until(() => fast.includes('payment_intent.created'), 'the other endpoint got its event while the first is held');
      assert.equal(held.length, 1, 'still held');
    } finally {
      for (const response of held) response.writeHead(200).end('ok');
      await worker.stop();
      await stripe.webhookEndpoints.del(slow.id);
      await stripe.webhookEndpoints.del(quick.id);
      await new Promise((resolve) => receivers.close(resolve));
    }
    await drain(server);
  });

  test('after three days of failures a delivery is marked failed, and can still be resent by hand', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url, enabled_events: ['payment_intent.created'] });
    receiver.failRate = 1;
    const intent = await stripe.paymentIntents.create({ amount: 800, currency: 'usd' });
    for (let day = 0; day < 20; day += 1) {
      await drain(server);
      clock.offsetMs += 13 * 3_600_000;
    }
    clock.offsetMs = 0;
    const event = (await stripe.events.list({ type: 'payment_intent.created', limit: 100 })).data.find((item) => (item.data.object as Stripe.PaymentIntent).id === intent.id);
    assert.ok(event !== undefined);
    const delivery = await server.database.db.selectFrom('webhook_deliveries').select(['status', 'attempts']).where('event_id', '=', event.id).executeTakeFirstOrThrow();
    assert.equal(delivery.status, 'failed');
    assert.equal(delivery.attempts, 12);
    receiver.failRate = 0;
    const resent = await rawRequest(server, 'POST', `/v1/events/${event.id}/resend`, { key: server.secretKey, body: '', headers: { 'idempotency-key': `resend-${event.id}` } });
    assert.equal(resent.status, 200, resent.body);
    const shown = await rawRequest(server, 'GET', `/v1/events/${event.id}`, { key: server.secretKey });
    assert.equal(resent.body, shown.body, 'the resend answers with the event as stored, byte for byte');
    assert.equal(resent.json.pending_webhooks, 1, 'the delivery queued again is still to be received');
    const kept = await server.database.db.selectFrom('idempotency_keys').select('response_body').where('key', '=', `resend-${event.id}`).executeTakeFirstOrThrow();
    assert.equal(kept.response_body, resent.body, 'and keeps that answer for a retry');
    await drain(server);
    const after = await server.database.db.selectFrom('webhook_deliveries').select('status').where('event_id', '=', event.id).executeTakeFirstOrThrow();
    assert.equal(after.status, 'succeeded');
    await stripe.webhookEndpoints.del(endpoint.id);
  });

  // The SDK retries with the same Idempotency-Key when an answer is lost: the retry must give the secret itself.
  test('a replayed creation shows the endpoint\'s secret, which is not kept with the idempotency key', async () => {
    const body = `url=${encodeURIComponent(url)}&enabled_events[]=customer.created`;
    const create = () => rawRequest(server, 'POST', '/v1/webhook_endpoints', { key: server.secretKey, body, headers: { 'idempotency-key': 'endpoint-replay-1' } });
    const first = await create();
    const again = await create();
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.body, first.body, 'byte for byte, the secret included');
    assert.match(String(again.json.secret), /^whsec_/);
    const kept = await server.database.db.selectFrom('idempotency_keys').select('response_body').where('key', '=', 'endpoint-replay-1').executeTakeFirstOrThrow();
    assert.ok(!String(kept.response_body).includes(String(first.json.secret)), 'the kept response leaves the secret out');
    await stripe.webhookEndpoints.del(String(first.json.id));
  });

  test('a rolled secret: both signatures verify until the old one expires', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url, enabled_events: ['payment_intent.created'] });
    const rolled = await fetchJson(server, `/v1/webhook_endpoints/${endpoint.id}/roll_secret`, 'expires_in=3600');
    assert.notEqual(rolled.secret, endpoint.secret);
    await stripe.paymentIntents.create({ amount: 900, currency: 'usd', metadata: { roll: 'yes' } });
    await drain(server);
    const delivery = receiver.received.findLast((item) => item.body.includes('"roll":"yes"'));
    assert.ok(delivery !== undefined);
    assert.equal((delivery.signature?.match(/v1=/g) ?? []).length, 2);
    stripe.webhooks.constructEvent(delivery.body, delivery.signature ?? '', endpoint.secret ?? '');
    stripe.webhooks.constructEvent(delivery.body, delivery.signature ?? '', String(rolled.secret));
    // A second roll with an overlap would cut the first one's short: refused, and the secrets stay as they were.
    const again = await rawRequest(server, 'POST', `/v1/webhook_endpoints/${endpoint.id}/roll_secret`, { key: server.secretKey, body: 'expires_in=600' });
    assert.deepEqual([again.status, (again.json.error as { param?: string }).param], [400, 'expires_in'], again.body);
    await stripe.paymentIntents.create({ amount: 902, currency: 'usd', metadata: { roll: 'twice' } });
    await drain(server);
    const stillBoth = receiver.received.findLast((item) => item.body.includes('"roll":"twice"'));
    stripe.webhooks.constructEvent(stillBoth?.body ?? '', stillBoth?.signature ?? '', endpoint.secret ?? '');
    clock.offsetMs = 2 * 3_600_000;
    await stripe.paymentIntents.create({ amount: 901, currency: 'usd', metadata: { roll: 'later' } });
    await drain(server);
    clock.offsetMs = 0;
    const later = receiver.received.findLast((item) => item.body.includes('"roll":"later"'));
    assert.equal((later?.signature?.match(/v1=/g) ?? []).length, 1);
    await stripe.webhookEndpoints.del(endpoint.id);
  });

  test('URLs that reach loopback, private or metadata addresses are refused when not allowed, and nothing is stored', async () => {
    const strict = await startTestServer();
    try {
      const before = await stateCounts(strict.database.db);
      for (const bad of ['https://127.0.0.1/hook', 'https://localhost/hook', 'https://10.1.2.3/hook', 'https://169.254.169.254/latest',
        'https://[::1]/hook', 'https://[fd00::1]/hook', 'https://100.64.0.1/x', 'http://example.com/hook', 'https://user:pw@example.com/', 'not a url']) {
        await assert.rejects(strict.stripe.webhookEndpoints.create({ url: bad, enabled_events: ['*'] }), (error: Stripe.errors.StripeError) => {
          assert.equal(error.code, 'url_invalid', bad);
          assert.equal(error.param, 'url');
          return true;
        });
      }
      const { idempotency_keys: _a, ...countsBefore } = before;
      const { idempotency_keys: _b, ...countsAfter } = await stateCounts(strict.database.db);
      assert.deepEqual(countsAfter, countsBefore);
      const endpoints = await strict.database.db.selectFrom('webhook_endpoints').select('id').execute();
      assert.deepEqual(endpoints, []);
    } finally {
      await strict.close();
    }
  });

  test('refused requests write no event, so nothing is ever delivered for them', async () => {
    const endpoint = await stripe.webhookEndpoints.create({ url, enabled_events: ['*'] });
    await drain(server);
    const before = receiver.received.length;
    await assert.rejects(stripe.paymentIntents.create({ amount: 10, currency: 'usd' }));
    await assert.rejects(stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_nope', confirm: true }));
    await drain(server);
    assert.equal(receiver.received.length, before);
    await stripe.webhookEndpoints.del(endpoint.id);
  });
});

async function fetchJson(server: TestServer, path: string, body = ''): Promise<Record<string, unknown>> {
  const response = await rawRequest(server, 'POST', path, { key: server.secretKey, body });
  assert.equal(response.status, 200, response.body);
  return response.json;
}
