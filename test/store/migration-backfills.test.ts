import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import type Stripe from 'stripe';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

/** The backfill (UPDATE) statement of a migration file, to run again over rows made to look as they were before it. */
function backfillOf(file: string): string {
  const script = fs.readFileSync(path.join(import.meta.dirname, '../../src/store/migrations', file), 'utf8');
  const update = /^UPDATE[\s\S]*?;$/m.exec(script.split('\n').filter((line) => !line.startsWith('--')).join('\n'))?.[0];
  assert.ok(update !== undefined, `${file} has a backfill`);
  return update;
}

// Goal: the backfills of migrations 0039, 0040, 0042 and 0044 fill in what older rows did not record, and nothing else:
// cards detached before 0039 are detached (not one attached again since), charges made before 0038 take their
// PaymentIntent's customer while a guest's charge made since stays a guest's, and endpoints pinned to versions no
// longer served are labelled with the one whose shape they receive, and PaymentIntents held for review name it.
describe('migration backfills', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    // Loopback webhook URLs for 0042's endpoints, which are never sent anything.
    server = await startTestServer({ configEnv: { COFFER_WEBHOOKS_ALLOW_PRIVATE: 'true' } });
    stripe = server.stripe;
  });
  after(async () => {
    await server.close();
  });

  test('0039: cards detached before the migration are detached; a card attached again since is not', async () => {
    const db = server.database.db;
    const customer = await stripe.customers.create({ email: 'backfill@example.com' });
    const card = () => stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2031 } });
    const detached = await stripe.paymentMethods.attach((await card()).id, { customer: customer.id });
    await stripe.paymentMethods.detach(detached.id);
    const deletedOwner = await stripe.customers.create({ email: 'gone@example.com' });
    const orphaned = await stripe.paymentMethods.attach((await card()).id, { customer: deletedOwner.id });
    await stripe.customers.del(deletedOwner.id);
    const neverDetached = await stripe.paymentMethods.attach((await card()).id, { customer: customer.id });
    const guest = await card();
    // As before 0039, which recorded no detachment.
    const ids = [detached.id, orphaned.id, neverDetached.id, guest.id];
    await db.updateTable('payment_methods').set({ detached_at: null }).where('id', 'in', ids).execute();
    await sql.raw(backfillOf('0039-detached-payment-methods.sql')).execute(db);
    const rows = await db.selectFrom('payment_methods').select(['id', 'detached_at']).where('id', 'in', ids).execute();
    const isDetached = new Map(rows.map((row) => [row.id, row.detached_at !== null]));
    assert.deepEqual(ids.map((id) => isDetached.get(id)), [true, true, false, false]);
    await assert.rejects(stripe.paymentIntents.create({ amount: 900, currency: 'usd', payment_method: detached.id, confirm: true }),
      (error: Stripe.errors.StripeError) => /detached from its customer/.test(error.message));
  });

  test('0040: a charge from before 0038 takes its PaymentIntent\'s customer; a guest\'s charge made since stays a guest\'s', async () => {
    const db = server.database.db;
    const customer = await stripe.customers.create({ email: 'old-charge@example.com' });
    const old = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: customer.id, payment_method: 'pm_card_visa', confirm: true });
    const guest = await stripe.paymentIntents.create({ amount: 1100, currency: 'usd' });
    await assert.rejects(stripe.paymentIntents.confirm(guest.id, { payment_method: 'pm_card_chargeDeclined' }));
    await stripe.paymentIntents.update(guest.id, { customer: customer.id });
    const oldCharge = String(old.latest_charge);
    const guestCharge = String((await stripe.paymentIntents.retrieve(guest.id)).latest_charge);
    // As if 0038 had been applied between the two charges, and the old charge recorded no customer then.
    const guestMade = (await db.selectFrom('charges').select('created_at').where('id', '=', guestCharge).executeTakeFirstOrThrow()).created_at;
    const original = (await db.selectFrom('schema_migrations').select('applied_at').where('version', '=', 38).executeTakeFirstOrThrow()).applied_at;
    await db.updateTable('charges').set({ customer_id: null, created_at: new Date(guestMade.getTime() - 60_000) }).where('id', '=', oldCharge).execute();
    await db.updateTable('schema_migrations').set({ applied_at: new Date(guestMade.getTime() - 1_000) }).where('version', '=', 38).execute();
    try {
      await sql.raw(backfillOf('0040-charges-by-customer.sql')).execute(db);
    } finally {
      await db.updateTable('schema_migrations').set({ applied_at: original }).where('version', '=', 38).execute();
    }
    const rows = await db.selectFrom('charges').select(['id', 'customer_id']).where('id', 'in', [oldCharge, guestCharge]).execute();
    assert.deepEqual(Object.fromEntries(rows.map((row) => [row.id, row.customer_id])), { [oldCharge]: customer.id, [guestCharge]: null });
    assert.deepEqual((await stripe.charges.list({ customer: customer.id })).data.map((charge) => charge.id), [oldCharge]);
  });

  test('0042: endpoints pinned to a version no longer served are labelled with the oldest served, whose shape they get', async () => {
    const db = server.database.db;
    const endpoints = await Promise.all(['2024-04-10', '2024-04-10', '2024-04-10'].map((version) =>
      stripe.webhookEndpoints.create({ url: 'http://127.0.0.1:9/hooks', enabled_events: ['*'], api_version: version as Stripe.WebhookEndpointCreateParams.ApiVersion })));
    // As endpoints made before 0042, pinned to the two releases it stopped serving.
    const [oldest, older, kept] = endpoints.map((endpoint) => endpoint.id);
    await db.updateTable('webhook_endpoints').set({ api_version: '2020-08-27' }).where('id', '=', oldest as string).execute();
    await db.updateTable('webhook_endpoints').set({ api_version: '2022-08-01' }).where('id', '=', older as string).execute();
    await sql.raw(backfillOf('0042-endpoint-versions-served.sql')).execute(db);
    const rows = await db.selectFrom('webhook_endpoints').select(['id', 'api_version', 'api_shape']).where('id', 'in', [oldest, older, kept] as string[]).execute();
    const byId = new Map(rows.map((row) => [row.id, [row.api_version, row.api_shape]]));
    assert.deepEqual([oldest, older, kept].map((id) => byId.get(id as string)), [['2022-11-15', 'legacy'], ['2022-11-15', 'legacy'], ['2024-04-10', 'legacy']]);
    for (const endpoint of endpoints) await stripe.webhookEndpoints.del(endpoint.id);
  });
  test('0044: a PaymentIntent held for review before the migration names its review; one never held stays without', async () => {
    const db = server.database.db;
    const rules = await rawRequest(server, 'POST', '/v1/risk/rule_sets', { key: server.secretKey,
      body: JSON.stringify({ rules: [{ id: 'review_big', text: 'review if :amount: >= 50000' }] }), contentType: 'application/json' });
    assert.equal(rules.status, 200, rules.body);
    const [held, plain] = [await stripe.paymentIntents.create({ amount: 60_000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true }),
      await stripe.paymentIntents.create({ amount: 1_000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })];
    const review = (await db.selectFrom('charges').select('review_id').where('payment_intent_id', '=', held.id).executeTakeFirstOrThrow()).review_id;
    assert.match(String(review), /^prv_/);
    // As PaymentIntents made before 0044, which had no review column.
    await db.updateTable('payment_intents').set({ review_id: null }).where('id', 'in', [held.id, plain.id]).execute();
    await sql.raw(backfillOf('0044-payment-intent-review.sql')).execute(db);
    const rows = await db.selectFrom('payment_intents').select(['id', 'review_id']).where('id', 'in', [held.id, plain.id]).orderBy('amount', 'desc').execute();
    assert.deepEqual(rows.map((row) => [row.id, row.review_id]), [[held.id, review], [plain.id, null]]);
    await rawRequest(server, 'POST', '/v1/risk/rule_sets', { key: server.secretKey, body: JSON.stringify({ rules: [] }), contentType: 'application/json' });
  });
});
