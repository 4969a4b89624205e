import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import type Stripe from 'stripe';
import { createApiKey } from '../../src/identity/merchants.ts';
import { addChargeLists } from '../../src/objects/charge-lists.ts';
import { deliverDueWebhooks } from '../../src/webhooks/deliverer.ts';
import { relayEvents } from '../../src/webhooks/relay.ts';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { WebhookReceiver } from '../support/receiver.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

type Json = Record<string, unknown>;
interface ListJson { object: string; data: Json[]; has_more: boolean; total_count: number; url: string }

/** The object as its endpoint answered it, without the SDK's lastResponse. */
function plain(object: object): Json {
  const { lastResponse: _ignored, ...rest } = object as Json;
  return rest;
}

/** Counts the statements a Kysely instance runs (each has one result; a subquery is transformed, not run, alone). */
class StatementCounter implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    this.count += 1;
    return args.result;
  }
}

// Goal: an integration pinned to a Stripe version before 2022-11-15 (Saleor's plugin and many PHP ones send
// 2020-08-27) is served in that version's shape: its PaymentIntents carry their charges (`charges`, no
// `latest_charge`) and its Charges their refunds, everywhere such an object is shown (answers to changes, reads,
// lists, searches, errors, webhook deliveries), read with one query per kind; other versions are unchanged.
describe('API versions before 2022-11-15', () => {
  let server: TestServer;
  let stripe: Stripe;
  let old: Stripe;
  let legacy: Stripe;
  const receiver = new WebhookReceiver();
  let receiverUrl = '';

  before(async () => {
    receiverUrl = await receiver.start();
    server = await startTestServer({ configEnv: { COFFER_WEBHOOKS_ALLOW_PRIVATE: 'true' } });
    stripe = server.stripe;
    old = stripeClient(server, server.secretKey, { apiVersion: '2020-08-27' as never });
    legacy = stripeClient(server, server.secretKey, { apiVersion: '2024-04-10' as never });
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
    await receiver.stop();
  });

  async function drain(): Promise<void> {
    for (let round = 0; round < 50; round += 1) {
      const worked = (await relayEvents(server.coffer.services)) + (await deliverDueWebhooks(server.coffer.services));
      if (worked === 0) return;
    }
    throw new Error('deliveries did not drain');
  }

  /** What the 2024-04-10 shape shows of the same object, turned into the older shape by hand. */
  function asOlder(object: Json, charges: ListJson): Json {
    const { latest_charge: _latest, ...rest } = object;
    return { ...rest, charges };
  }

  test('a payment created, confirmed and partly refunded shows its charge, and the charge its refund, in every read', async () => {
    const created = plain(await old.paymentIntents.create({ amount: 2000, currency: 'usd', metadata: { order: 'V-2020' } }));
    assert.deepEqual(created.charges, { object: 'list', data: [], has_more: false, total_count: 0, url: `/v1/charges?payment_intent=${String(created.id)}` });
    assert.equal('latest_charge' in created, false, 'the version has no latest_charge');
    const id = String(created.id);
    const confirmed = plain(await old.paymentIntents.confirm(id, { payment_method: 'pm_card_visa' }));
    assert.equal(confirmed.status, 'succeeded');
    const charges = confirmed.charges as ListJson;
    assert.equal(charges.data.length, 1);
    assert.equal(charges.total_count, 1);
    const chargeId = String(charges.data[0]?.id);
    assert.match(chargeId, /^ch_/);
    assert.deepEqual(Object.keys(confirmed).slice(Object.keys(confirmed).indexOf('capture_method'), Object.keys(confirmed).indexOf('capture_method') + 3),
      ['capture_method', 'charges', 'client_secret'], 'in Stripe\'s order');

    const refund = await old.refunds.create({ payment_intent: id, amount: 500 });
    const retrieved = plain(await old.paymentIntents.retrieve(id));
    const listedCharge = (retrieved.charges as ListJson).data[0] ?? {};
    const refunds = listedCharge.refunds as ListJson;
    assert.deepEqual({ ...refunds, data: refunds.data.map((item) => item.id) },
      { object: 'list', data: [refund.id], has_more: false, total_count: 1, url: `/v1/charges/${chargeId}/refunds` });
    assert.equal(listedCharge.amount_refunded, 500);

    // Everything else is the 2024-04-10 shape, exactly.
    const legacyIntent = plain(await legacy.paymentIntents.retrieve(id));
    const legacyCharge = plain(await legacy.charges.retrieve(chargeId));
    const legacyRefund = plain(await legacy.refunds.retrieve(refund.id));
    const chargeWithRefunds = { ...legacyCharge, refunds: { ...refunds, data: [legacyRefund] } };
    assert.deepEqual(retrieved, asOlder(legacyIntent, { object: 'list', data: [chargeWithRefunds], has_more: false, total_count: 1, url: `/v1/charges?payment_intent=${id}` }));
    assert.equal(legacyIntent.latest_charge, chargeId);
    assert.equal('charges' in legacyIntent, false, '2024-04-10 is unchanged');
    assert.equal('refunds' in legacyCharge, false);
    const current = plain(await stripe.paymentIntents.retrieve(id));
    assert.equal('charges' in current, false, 'the current version is unchanged');
    assert.equal(current.latest_charge, chargeId);

    // The Charge's own reads carry the refunds too.
    assert.deepEqual(plain(await old.charges.retrieve(chargeId)), chargeWithRefunds);
    const chargeList = await old.charges.list({ payment_intent: id });
    assert.deepEqual(chargeList.data.map((item) => plain(item)), [chargeWithRefunds]);
    // Lists and searches of PaymentIntents, and the other objects that expand one.
    const listed = await old.paymentIntents.list({ limit: 3 });
    const mine = listed.data.find((item) => item.id === id);
    assert.deepEqual(mine === undefined ? undefined : plain(mine), retrieved);
    for (const item of listed.data) assert.equal((item as unknown as Json).object === 'payment_intent' && 'charges' in item && !('latest_charge' in item), true);
    const found = await old.paymentIntents.search({ query: "metadata['order']:'V-2020'" });
    assert.deepEqual(found.data.map((item) => plain(item)), [retrieved]);
    const expanded = await old.refunds.retrieve(refund.id, { expand: ['charge', 'payment_intent'] });
    assert.deepEqual(expanded.charge, chargeWithRefunds);
    assert.deepEqual(expanded.payment_intent, retrieved);
    // An explicit expand[]=refunds changes nothing: the version shows them already.
    assert.deepEqual(plain(await old.charges.retrieve(chargeId, { expand: ['refunds'] })), chargeWithRefunds);
    // latest_charge is not a field of the version: it cannot be expanded.
    await assert.rejects(old.paymentIntents.retrieve(id, { expand: ['latest_charge'] }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && /a PaymentIntent has no latest_charge in API version 2020-08-27/.test(error.message));
    // The other release before 2022-11-15 has the same shape.
    const other = stripeClient(server, server.secretKey, { apiVersion: '2022-08-01' as never });
    assert.deepEqual(plain(await other.paymentIntents.retrieve(id)), retrieved);
  });

  test('a decline\'s error carries the PaymentIntent with its failed charge; a capture and a cancel answer with their charges', async () => {
    const failing = await old.paymentIntents.create({ amount: 1200, currency: 'usd' });
    const declined = await old.paymentIntents.confirm(failing.id, { payment_method: 'pm_card_chargeDeclined' }).then(() => undefined, (error: unknown) => error as Stripe.errors.StripeCardError);
    assert.ok(declined !== undefined, 'the confirmation is declined');
    const inError = declined.raw as { payment_intent?: Json; charge?: string };
    const listed = inError.payment_intent?.charges as ListJson;
    assert.equal(listed.data.length, 1);
    assert.equal(listed.data[0]?.id, inError.charge);
    assert.equal(listed.data[0]?.status, 'failed');
    assert.deepEqual(listed.data[0]?.refunds, { object: 'list', data: [], has_more: false, total_count: 0, url: `/v1/charges/${String(inError.charge)}/refunds` });
    // Tried again with a good card: both attempts, newest first.
    const paid = plain(await old.paymentIntents.confirm(failing.id, { payment_method: 'pm_card_visa' }));
    const both = paid.charges as ListJson;
    assert.deepEqual([both.total_count, both.data[0]?.status, both.data[1]?.id], [2, 'succeeded', inError.charge]);

    const held = plain(await old.paymentIntents.create({ amount: 900, currency: 'usd', capture_method: 'manual', payment_method: 'pm_card_visa', confirm: true }));
    assert.equal(held.status, 'requires_capture');
    const captured = plain(await old.paymentIntents.capture(String(held.id), { amount_to_capture: 600 }));
    assert.equal(((captured.charges as ListJson).data[0] ?? {}).amount_captured, 600);
    const released = plain(await old.paymentIntents.create({ amount: 700, currency: 'usd', capture_method: 'manual', payment_method: 'pm_card_visa', confirm: true }));
    const canceled = plain(await old.paymentIntents.cancel(String(released.id)));
    assert.equal(((canceled.charges as ListJson).data[0] ?? {}).amount_refunded, 700, 'the released authorization, as Stripe reports it');
  });

  test('reading lists of objects costs one query for their charges and one for their refunds', async () => {
    const ids: string[] = [];
    for (let index = 0; index < 3; index += 1) {
      const paid = await stripe.paymentIntents.create({ amount: 1000 + index, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
      await stripe.refunds.create({ payment_intent: paid.id, amount: 100 });
      ids.push(paid.id);
    }
    const objects = [];
    for (const id of ids) objects.push(plain(await legacy.paymentIntents.retrieve(id)));
    const counter = new StatementCounter();
    await addChargeLists(server.database.db.withPlugin(counter), { merchantId: server.merchantId, livemode: false, shape: 'legacy' }, [{ object: 'list', data: objects }]);
    assert.equal(counter.count, 2, 'one statement for the charges, one for the refunds');
    for (const object of objects) {
      const charge = (object.charges as ListJson).data[0] ?? {};
      assert.equal((charge.refunds as ListJson).total_count, 1);
    }
    const none = new StatementCounter();
    await addChargeLists(server.database.db.withPlugin(none), { merchantId: server.merchantId, livemode: false, shape: 'legacy' }, [{ object: 'customer', id: 'cus_x' }]);
    assert.equal(none.count, 0, 'nothing to list, nothing read');
    // Another merchant's charges are never listed, whatever the ids.
    const foreign = plain(await legacy.paymentIntents.retrieve(ids[0] ?? ''));
    await addChargeLists(server.database.db, { merchantId: 'acct_other', livemode: false, shape: 'legacy' }, [foreign]);
    assert.equal((foreign.charges as ListJson).total_count, 0);
  });

  test('a restricted key needs to read charges and refunds to see them listed', async () => {
    const paid = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const intentsOnly = (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { payment_intents: 'read' } })).key.reveal();
    const refused = await rawRequest(server, 'GET', `/v1/payment_intents/${paid.id}`, { key: intentsOnly, headers: { 'stripe-version': '2020-08-27' } });
    assert.equal(refused.status, 403, refused.body);
    assert.match(refused.body, /does not have read permission on charges, which API version 2020-08-27 shows/);
    const reader = (await createApiKey(server.database.db, server.merchantId, 'restricted', false, { permissions: { payment_intents: 'read', charges: 'read', refunds: 'read' } })).key.reveal();
    const shown = await rawRequest(server, 'GET', `/v1/payment_intents/${paid.id}`, { key: reader, headers: { 'stripe-version': '2020-08-27' } });
    assert.equal(shown.status, 200, shown.body);
    assert.equal((JSON.parse(shown.body) as { charges: ListJson }).charges.total_count, 1);
  });

  test('a webhook endpoint pinned to 2020-08-27 receives PaymentIntents with their charges and Charges with their refunds', async () => {
    const endpoint = await stripe.webhookEndpoints.create({
      url: receiverUrl, enabled_events: ['payment_intent.succeeded', 'charge.refunded'], api_version: '2020-08-27' as Stripe.WebhookEndpointCreateParams.ApiVersion,
    });
    const plainEndpoint = await stripe.webhookEndpoints.create({ url: receiverUrl, enabled_events: ['payment_intent.succeeded'] });
    try {
      assert.equal(endpoint.api_version, '2020-08-27');
      const paid = await stripe.paymentIntents.create({ amount: 3100, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
      const chargeId = String(paid.latest_charge);
      // Refunded before anything is delivered: the payment's event lists what existed when it happened.
      await stripe.refunds.create({ payment_intent: paid.id, amount: 1000 });
      await drain();
      const received = receiver.received.filter((item) => item.body.includes(paid.id));
      const succeeded = received.filter((item) => item.type === 'payment_intent.succeeded').map((item) => ({ item, event: JSON.parse(item.body) as { api_version: string; data: { object: Json } } }));
      assert.equal(succeeded.length, 2, 'one for each endpoint');
      const pinned = succeeded.find(({ event }) => event.api_version === '2020-08-27');
      assert.ok(pinned !== undefined);
      stripe.webhooks.constructEvent(pinned.item.body, pinned.item.signature ?? '', endpoint.secret ?? '');
      const object = pinned.event.data.object;
      assert.equal('latest_charge' in object, false);
      const charges = object.charges as ListJson;
      assert.deepEqual([charges.total_count, charges.data[0]?.id, charges.url], [1, chargeId, `/v1/charges?payment_intent=${paid.id}`]);
      assert.deepEqual((charges.data[0]?.refunds as ListJson).data, [], 'as of the event: the refund came later');
      assert.equal(charges.data[0]?.amount_refunded, 1000, 'each listed charge as it is when the delivery is sent');
      const other = succeeded.find(({ event }) => event.api_version !== '2020-08-27');
      assert.ok(other !== undefined);
      assert.equal('charges' in other.event.data.object, false, 'an endpoint in the current version gets the object unchanged');
      assert.equal(other.event.data.object.latest_charge, chargeId);

      const refunded = received.find((item) => item.type === 'charge.refunded');
      assert.ok(refunded !== undefined);
      const charge = (JSON.parse(refunded.body) as { data: { object: Json } }).data.object;
      const refunds = charge.refunds as ListJson;
      assert.deepEqual([refunds.total_count, refunds.data[0]?.amount, refunds.url], [1, 1000, `/v1/charges/${chargeId}/refunds`]);
    } finally {
      await stripe.webhookEndpoints.del(endpoint.id);
      await stripe.webhookEndpoints.del(plainEndpoint.id);
    }
  });

  test('versions Stripe never released, or released before 2020-08-27, stay refused', async () => {
    for (const version of ['2019-12-03', '2021-01-01', '2022-11-14', '2020-08-27.acacia']) {
      const answered = await rawRequest(server, 'GET', '/v1/payment_intents?limit=1', { key: server.secretKey, headers: { 'stripe-version': version } });
      assert.equal(answered.status, 400, version);
      assert.match(answered.body, /"code":"api_version_invalid"/);
      const endpoint = await rawRequest(server, 'POST', '/v1/webhook_endpoints', { key: server.secretKey, body: `url=${encodeURIComponent(receiverUrl)}&enabled_events[]=*&api_version=${version}` });
      assert.equal(endpoint.status, 400, endpoint.body);
    }
    const served = await rawRequest(server, 'GET', '/v1/payment_intents?limit=1', { key: server.secretKey, headers: { 'stripe-version': '2022-08-01' } });
    assert.equal(served.status, 200);
    assert.equal(served.headers['stripe-version'], '2022-08-01');
  });
});
