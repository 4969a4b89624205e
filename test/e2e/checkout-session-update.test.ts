import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';
import { createApiKey, createMerchant } from '../../src/identity/merchants.ts';

// Goal: a Checkout Session's metadata is the merchant's to change at any time, as Stripe's update changes it (a key
// set, a key removed with '', all removed with ''); anything else is refused by name and changes nothing; another
// merchant's session is not found; each change is audited.
describe('updating a Checkout Session', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
  });
  after(() => server.close());

  const make = (metadata: Record<string, string> = {}) => stripe.checkout.sessions.create({
    mode: 'payment', success_url: 'https://shop.example/ok', metadata,
    line_items: [{ price_data: { currency: 'usd', unit_amount: 900, product_data: { name: 'Tea' } }, quantity: 1 }],
  });

  test('metadata is merged, removed by key or whole, in any state; each change audited', async () => {
    const session = await make({ order: '1001', channel: 'web' });
    const changed = await stripe.checkout.sessions.update(session.id, { metadata: { order: '1002', note: 'gift' } });
    assert.deepEqual(changed.metadata, { order: '1002', channel: 'web', note: 'gift' });
    assert.deepEqual((await stripe.checkout.sessions.update(session.id, { metadata: { channel: '' } })).metadata, { order: '1002', note: 'gift' });
    const expired = await stripe.checkout.sessions.expire(session.id);
    const emptied = await stripe.checkout.sessions.update(expired.id, { metadata: '' as unknown as Record<string, string> });
    assert.deepEqual([emptied.status, emptied.metadata], ['expired', {}], 'an expired session\'s metadata changes too');
    assert.deepEqual((await stripe.checkout.sessions.retrieve(session.id)).metadata, {});
    const audited = await server.database.db.selectFrom('audit_log').select('details').where('action', '=', 'checkout_session.update').where('object_id', '=', session.id).execute();
    assert.equal(audited.length, 3);
  });

  test('anything else is refused by name and changes nothing; another merchant\'s session is not found', async () => {
    const session = await make({ order: '7' });
    for (const [body, param] of [
      ['success_url=https%3A%2F%2Fshop.example%2Felsewhere', 'success_url'],
      ['metadata[k]=' + 'x'.repeat(501), 'metadata[k]'],
      ['expand[]=line_items', 'expand'],
    ] as const) {
      const refused = await rawRequest(server, 'POST', `/v1/checkout/sessions/${session.id}`, { key: server.secretKey, body });
      assert.equal(refused.status, 400, refused.body);
      assert.equal((refused.json.error as { param?: string }).param, param, refused.body);
    }
    const tooMany = Object.fromEntries(Array.from({ length: 50 }, (_, index) => [`k${index}`, 'v']));
    const overflow = await stripe.checkout.sessions.update(session.id, { metadata: tooMany }).then(() => undefined, (error: Stripe.errors.StripeError) => error);
    assert.equal(overflow?.param, 'metadata');
    assert.deepEqual((await stripe.checkout.sessions.retrieve(session.id)).metadata, { order: '7' }, 'nothing changed');

    const other = await createMerchant(server.database.db, 'Other shop');
    const theirs = stripeClient(server, (await createApiKey(server.database.db, other, 'secret', false)).key.reveal());
    const missing = await theirs.checkout.sessions.update(session.id, { metadata: { order: '8' } }).then(() => undefined, (error: Stripe.errors.StripeError) => error);
    assert.equal(missing?.statusCode, 404);
    assert.deepEqual((await stripe.checkout.sessions.retrieve(session.id)).metadata, { order: '7' });
  });
});
