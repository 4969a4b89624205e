import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { createApiKey, setLiveRawCardData } from '../../src/identity/merchants.ts';
import { stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: card numbers reach the live API from the shopper's page (the publishable key), not from the merchant's
// servers: a secret or restricted key sending card details in live mode is refused with raw_card_data_refused,
// naming the parameter, changing nothing, keeping no idempotency key and leaving an audit record, until the
// operator allows that merchant (decision 0050). Test mode, the publishable key, and requests without card details
// are not concerned.
describe('raw card data in live mode', { concurrency: false }, () => {
  let server: TestServer;
  let liveSecret: string;
  let liveRestricted: string;
  let livePublishable: string;
  const card = { number: '4242424242424242', exp_month: 12, exp_year: new Date().getFullYear() + 2, cvc: '123' };

  before(async () => {
    server = await startTestServer();
    const db = server.database.db;
    liveSecret = (await createApiKey(db, server.merchantId, 'secret', true)).key.reveal();
    liveRestricted = (await createApiKey(db, server.merchantId, 'restricted', true, { permissions: { payment_methods: 'write', tokens: 'write', payment_intents: 'write', setup_intents: 'write' } })).key.reveal();
    livePublishable = (await createApiKey(db, server.merchantId, 'publishable', true)).key.reveal();
  });
  after(async () => server.close());

  const refusedAudits = async () => (await server.database.db.selectFrom('audit_log').select('action')
    .where('action', '=', 'api_request.raw_card_data_refused').where('merchant_id', '=', server.merchantId).execute()).length;

  test('a secret or restricted key sending card details is refused by name, and nothing changes', async () => {
    const intent = await stripeClient(server, liveSecret).paymentIntents.create({ amount: 1000, currency: 'usd' });
    const seti = await stripeClient(server, liveSecret).setupIntents.create({});
    const cases: Array<[string, string, string, string]> = [
      ['/v1/payment_methods', `type=card&card[number]=${card.number}&card[exp_month]=12&card[exp_year]=${card.exp_year}&card[cvc]=123`, liveSecret, 'card[number]'],
      ['/v1/tokens', `card[number]=${card.number}&card[exp_month]=12&card[exp_year]=${card.exp_year}`, liveSecret, 'card[number]'],
      ['/v1/payment_methods', `type=card&card[cvc]=123&card[exp_month]=12&card[exp_year]=${card.exp_year}`, liveRestricted, 'card[cvc]'],
      ['/v1/payment_intents', `amount=1000&currency=usd&confirm=true&payment_method_data[type]=card&payment_method_data[card][number]=${card.number}&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=${card.exp_year}`, liveSecret, 'payment_method_data[card][number]'],
      [`/v1/payment_intents/${intent.id}/confirm`, `payment_method_data[type]=card&payment_method_data[card][number]=${card.number}&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=${card.exp_year}`, liveRestricted, 'payment_method_data[card][number]'],
      [`/v1/setup_intents/${seti.id}/confirm`, `payment_method_data[type]=card&payment_method_data[card][number]=${card.number}&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=${card.exp_year}`, liveSecret, 'payment_method_data[card][number]'],
    ];
    for (const [url, body, key, param] of cases) {
      const before = await stateCounts(server.database.db);
      const audits = await refusedAudits();
      const answer = await rawRequest(server, 'POST', url, { key, body, headers: { 'idempotency-key': `raw-${url}-${param}` } });
      const error = answer.json.error as { code?: string; param?: string; message?: string; type?: string };
      assert.deepEqual([answer.status, error.code, error.param, error.type], [403, 'raw_card_data_refused', param, 'invalid_request_error'], `${url}: ${answer.body}`);
      assert.match(error.message ?? '', /PCI DSS scope.*publishable key.*coffer merchants raw-card-data/);
      assert.equal(answer.body.includes(card.number), false, 'the answer never repeats the number');
      assert.deepEqual(await stateCounts(server.database.db), { ...before, audit_log: before.audit_log + 1 }, `${url}: only the refusal was recorded (no idempotency key kept)`);
      assert.equal(await refusedAudits(), audits + 1, `${url}: audited`);
    }
    // Without card details the same endpoints work as ever (a saved card, a test id is not a card number).
    const unchanged = await rawRequest(server, 'POST', `/v1/payment_intents/${intent.id}`, { key: liveSecret, body: 'metadata[order]=1' });
    assert.equal(unchanged.status, 200, unchanged.body);
  });

  test('the publishable key, test mode, and an allowed merchant are taken', async () => {
    const fromPage = await stripeClient(server, livePublishable).paymentMethods.create({ type: 'card', card });
    assert.equal(fromPage.card?.last4, '4242', 'the shopper\'s page sends card numbers in live mode');
    const testMode = await server.stripe.paymentMethods.create({ type: 'card', card });
    assert.equal(testMode.card?.last4, '4242', 'test mode takes them from servers: test cards are no card data');
    await assert.rejects(stripeClient(server, liveSecret).paymentMethods.create({ type: 'card', card }), (error: Stripe.errors.StripeError) => error.code === 'raw_card_data_refused');
    // Another merchant allowed does not allow this one.
    const other = await server.database.db.selectFrom('api_keys').select('merchant_id').where('merchant_id', '!=', server.merchantId).executeTakeFirstOrThrow();
    await setLiveRawCardData(server.database.db, other.merchant_id, true);
    await assert.rejects(stripeClient(server, liveSecret).paymentMethods.create({ type: 'card', card }), (error: Stripe.errors.StripeError) => error.code === 'raw_card_data_refused');
    const changed = await setLiveRawCardData(server.database.db, server.merchantId, true);
    assert.deepEqual(changed, { before: false, after: true });
    const audit = await server.database.db.selectFrom('audit_log').select(['details', 'actor_id']).where('action', '=', 'merchant.live_raw_card_data')
      .where('object_id', '=', server.merchantId).executeTakeFirstOrThrow();
    assert.deepEqual(audit.details, { before: false, after: true });
    const fromServer = await stripeClient(server, liveSecret).paymentMethods.create({ type: 'card', card });
    assert.equal(fromServer.card?.last4, '4242', 'allowed: the merchant\'s server may send them');
    assert.deepEqual(await setLiveRawCardData(server.database.db, server.merchantId, true), { before: true, after: true }, 'setting it again changes nothing');
    await setLiveRawCardData(server.database.db, server.merchantId, false);
    await assert.rejects(stripeClient(server, liveSecret).paymentMethods.create({ type: 'card', card }), (error: Stripe.errors.StripeError) => error.code === 'raw_card_data_refused', 'refused again once withdrawn');
  });
});
