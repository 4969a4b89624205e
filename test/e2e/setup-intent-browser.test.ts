import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import type Stripe from 'stripe';
import { requestHash } from '../../src/api/idempotency.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: Stripe.js's save-a-card flow works against Coffer. The shopper's page reads the SetupIntent and confirms it
// with the publishable key and the SetupIntent's client secret, giving a card it made or the card's details; the
// card is saved to the merchant's customer once verified. The page sees nothing of the merchant's own, may not
// confirm without the secret, and a card's number never reaches the idempotency key's record.
describe('SetupIntents confirmed from the shopper\'s page', () => {
  let server: TestServer;
  let stripe: Stripe;
  let shopper: Stripe;
  const returnUrl = 'https://shop.example/account/cards';
  const year = new Date().getUTCFullYear() + 3;

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
    shopper = stripeClient(server, server.publishableKey);
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const counts = async () => {
    const db = server.database.db;
    const setupIntents = Number((await db.selectFrom('setup_intents').select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n);
    const paymentMethods = Number((await db.selectFrom('payment_methods').select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow()).n);
    const vaultCards = Number((await sql<{ n: bigint }>`SELECT count(*) AS n FROM vault.cards`.execute(db)).rows[0]?.n);
    const audited = Number((await db.selectFrom('audit_log').select((eb) => eb.fn.countAll<bigint>().as('n')).where('outcome', '=', 'success').executeTakeFirstOrThrow()).n);
    return { ...(await stateCounts(db)), setup_intents: setupIntents, payment_methods: paymentMethods, vault_cards: vaultCards, audited };
  };
  // The SDK sends an Idempotency-Key with every POST, under which a refusal is kept as its answer: nothing else is written.
  const countsBesidesKeys = async () => {
    const { idempotency_keys: _keys, ...rest } = await counts();
    return rest;
  };
  const newSetup = async (email: string) => {
    const customer = await stripe.customers.create({ email });
    const setup = await stripe.setupIntents.create({ customer: customer.id, usage: 'off_session', metadata: { account: email }, description: 'card for later' });
    return { customer, setup };
  };
  const cardData = (number: string) => ({ type: 'card' as const, card: { number, exp_month: 12, exp_year: year, cvc: '314' }, billing_details: { name: 'Jenny Rosen' } });

  test('the page reads the SetupIntent with its client secret, and sees nothing of the merchant\'s own', async () => {
    const { setup } = await newSetup('read@example.com');
    const read = await shopper.setupIntents.retrieve(setup.id, { client_secret: setup.client_secret ?? '' } as Stripe.SetupIntentRetrieveParams);
    assert.deepEqual([read.id, read.status, read.client_secret, read.usage], [setup.id, 'requires_payment_method', setup.client_secret, 'off_session']);
    for (const field of ['customer', 'metadata', 'description']) assert.equal(field in read, false, `${field} is the merchant's`);
    const missing = await rawRequest(server, 'GET', `/v1/setup_intents/${setup.id}`, { key: server.publishableKey });
    assert.deepEqual([missing.status, (missing.json.error as { code?: string }).code], [401, 'secret_key_required'], missing.body);
    const wrong = await rawRequest(server, 'GET', `/v1/setup_intents/${setup.id}?client_secret=${setup.id}_secret_wrong`, { key: server.publishableKey });
    assert.deepEqual([wrong.status, (wrong.json.error as { param?: string }).param], [400, 'client_secret'], wrong.body);
    const expanded = await rawRequest(server, 'GET', `/v1/setup_intents/${setup.id}?client_secret=${setup.client_secret}&expand[]=customer`, { key: server.publishableKey });
    assert.deepEqual([expanded.status, (expanded.json.error as { param?: string }).param], [400, 'expand'], 'the customer is not the page\'s to expand');
    // The secret key reads the whole SetupIntent, with or without the client secret (which must match if given).
    assert.equal((await stripe.setupIntents.retrieve(setup.id)).customer, setup.customer);
  });

  test('confirmed with the card\'s details: the card is verified and saved to the customer; its number is not kept with the key', async () => {
    const { customer, setup } = await newSetup('saved@example.com');
    const key = `setup-${setup.id}`;
    const body = new URLSearchParams({
      client_secret: setup.client_secret ?? '', 'payment_method_data[type]': 'card', 'payment_method_data[card][number]': '4242424242424242',
      'payment_method_data[card][exp_month]': '12', 'payment_method_data[card][exp_year]': String(year), 'payment_method_data[card][cvc]': '314',
      'payment_method_data[billing_details][name]': 'Jenny Rosen', return_url: returnUrl, use_stripe_sdk: 'true',
    }).toString();
    const confirmed = await rawRequest(server, 'POST', `/v1/setup_intents/${setup.id}/confirm`, { key: server.publishableKey, body, headers: { 'idempotency-key': key } });
    assert.equal(confirmed.status, 200, confirmed.body);
    assert.equal(confirmed.json.status, 'succeeded');
    assert.equal('customer' in confirmed.json, false);
    const again = await rawRequest(server, 'POST', `/v1/setup_intents/${setup.id}/confirm`, { key: server.publishableKey, body, headers: { 'idempotency-key': key } });
    assert.equal(again.body, confirmed.body, 'a retry replays the answer, and makes no second card');
    const saved = await stripe.paymentMethods.list({ customer: customer.id, type: 'card' });
    assert.deepEqual(saved.data.map((method) => [method.id, method.card?.last4, method.billing_details.name]), [[confirmed.json.payment_method, '4242', 'Jenny Rosen']]);
    const remembered = await server.database.db.selectFrom('idempotency_keys').selectAll().where('key', '=', key).executeTakeFirstOrThrow();
    assert.doesNotMatch(JSON.stringify(remembered, (_field, value: unknown) => (typeof value === 'bigint' ? String(value) : value)), /4242424242424242/, 'the number is nowhere in the key\'s row');
    const keyRows = await sql<{ row: string }>`SELECT row_to_json(idempotency_keys)::text AS row FROM idempotency_keys`.execute(server.database.db);
    assert.ok(keyRows.rows.length > 0 && keyRows.rows.every((row) => !row.row.includes('4242424242424242')), 'nor in any row of the table');
    const digest = (value: string) => `hmac:${createHmac('sha256', server.coffer.services.fingerprintKey.reveal()).update(value).digest('hex')}`;
    const hashed = Object.fromEntries(new URLSearchParams(body));
    const keyed = {
      client_secret: hashed.client_secret, payment_method_data: { type: 'card', card: { number: digest('4242424242424242'), exp_month: 12, exp_year: year, cvc: digest('314') }, billing_details: { name: 'Jenny Rosen' } },
      return_url: returnUrl, use_stripe_sdk: true,
    };
    assert.equal(remembered.request_hash, requestHash('POST', `/v1/setup_intents/${setup.id}/confirm`, keyed, { keyKind: 'publishable' }), 'the number and code are kept as keyed digests only');
    // An off-session payment with the saved card needs nobody.
    const paid = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', customer: customer.id, payment_method: String(confirmed.json.payment_method), off_session: true, confirm: true });
    assert.equal(paid.status, 'succeeded');
  });

  test('a card whose issuer wants the cardholder gets the challenge; a declined card is a 402 carrying the SetupIntent', async () => {
    const { setup } = await newSetup('challenged@example.com');
    const challenged = await shopper.setupIntents.confirm(setup.id, { client_secret: setup.client_secret ?? '', payment_method_data: cardData('4000002500003155'), return_url: returnUrl } as Stripe.SetupIntentConfirmParams);
    assert.equal(challenged.status, 'requires_action');
    assert.equal(challenged.next_action?.type, 'redirect_to_url');
    const declinedSetup = (await newSetup('declined@example.com')).setup;
    await assert.rejects(shopper.setupIntents.confirm(declinedSetup.id, { client_secret: declinedSetup.client_secret ?? '', payment_method_data: cardData('4000000000000002') } as Stripe.SetupIntentConfirmParams),
      (error: Stripe.errors.StripeCardError) => error.statusCode === 402 && error.code === 'card_declined' && (error.raw as { setup_intent?: { id?: string; customer?: unknown } }).setup_intent?.id === declinedSetup.id
        && !('customer' in ((error.raw as { setup_intent?: object }).setup_intent ?? {})));
    assert.equal((await stripe.setupIntents.retrieve(declinedSetup.id)).status, 'requires_payment_method');
  });

  test('without the client secret, with a wrong one, with what only the merchant sets, or with a bad card, nothing is confirmed or changed', async () => {
    const { customer, setup } = await newSetup('refused@example.com');
    const before = [await counts(), await stripe.setupIntents.retrieve(setup.id)];
    const secret = `client_secret=${setup.client_secret}`;
    const card = `payment_method_data[type]=card&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=${year}&payment_method_data[card][cvc]=314`;
    const attempts: Array<[string, number, string]> = [
      ['payment_method=pm_card_visa', 401, 'secret_key_required'],
      [`client_secret=${setup.id}_secret_nope&payment_method=pm_card_visa`, 400, 'client_secret'],
      [`client_secret=${setup.id}_secret_nope&${card}&payment_method_data[card][number]=4242424242424242`, 400, 'client_secret'],
      [`${secret}&payment_method=pm_card_visa&usage=on_session`, 400, 'usage'],
      [`${secret}&payment_method=pm_card_visa&customer=${customer.id}`, 400, 'customer'],
      [`${secret}&payment_method=pm_card_visa&metadata[x]=y`, 400, 'metadata'],
      [`${secret}&payment_method=pm_card_visa&description=mine`, 400, 'description'],
      [`${secret}&${card}&payment_method_data[card][number]=4242424242424242&usage=on_session`, 400, 'usage'],
      [`${secret}&payment_method=pm_card_visa&payment_method_data[type]=card&payment_method_data[card][number]=4242424242424242`, 400, 'payment_method_data'],
      [`${secret}&${card}&payment_method_data[card][number]=4242424242424241`, 402, 'payment_method_data[card][number]'],
      [`${secret}&payment_method_data[type]=card&payment_method_data[card][number]=4242424242424242&payment_method_data[card][exp_year]=${year}`, 400, 'payment_method_data[card][exp_month]'],
      [`${secret}&${card}&payment_method_data[card][number]=4242424242424242&mandate_data[customer_acceptance][type]=sometimes`, 400, 'mandate_data[customer_acceptance][type]'],
    ];
    for (const [body, status, named] of attempts) {
      const refused = await rawRequest(server, 'POST', `/v1/setup_intents/${setup.id}/confirm`, { key: server.publishableKey, body });
      const error = refused.json.error as { code?: string; param?: string };
      assert.equal(refused.status, status, `${body}: ${refused.body}`);
      assert.ok(error.code === named || error.param === named, `${named}: ${refused.body}`);
      assert.doesNotMatch(refused.body, /424242424242424[12]/);
    }
    assert.deepEqual([await counts(), await stripe.setupIntents.retrieve(setup.id)], before, 'nothing was written');
    // Another merchant does not find it at all (the attempt is audited as a security event, and changes nothing else).
    const other = await rawRequest(server, 'POST', `/v1/setup_intents/${setup.id}/confirm`, { key: server.otherSecretKey, body: `${secret}&payment_method=pm_card_visa` });
    assert.equal(other.status, 404, other.body);
    assert.equal((await stripe.setupIntents.retrieve(setup.id)).status, 'requires_payment_method');
    assert.deepEqual((await stripe.paymentMethods.list({ customer: customer.id, type: 'card' })).data, []);
  });

  test('a card given to a SetupIntent that cannot take it is not stored', async () => {
    const { setup } = await newSetup('canceled@example.com');
    await stripe.setupIntents.cancel(setup.id);
    const before = await countsBesidesKeys();
    await assert.rejects(shopper.setupIntents.confirm(setup.id, { client_secret: setup.client_secret ?? '', payment_method_data: cardData('4242424242424242') } as Stripe.SetupIntentConfirmParams),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'setup_intent_unexpected_state' && !/4242424242424242/.test(JSON.stringify(error.raw)));
    assert.deepEqual(await countsBesidesKeys(), before, 'no PaymentMethod, no card in the vault');
  });

  test('confirmed with a card the page made with the publishable key; another customer\'s card is refused', async () => {
    const { customer, setup } = await newSetup('by-id@example.com');
    const made = await shopper.paymentMethods.create({ type: 'card', card: { number: '5555555555554444', exp_month: 11, exp_year: year, cvc: '123' } } as Stripe.PaymentMethodCreateParams);
    const confirmed = await shopper.setupIntents.confirm(setup.id, { client_secret: setup.client_secret ?? '', payment_method: made.id, use_stripe_sdk: true, expand: ['payment_method'] } as Stripe.SetupIntentConfirmParams);
    assert.equal(confirmed.status, 'succeeded');
    const shown = confirmed.payment_method as Stripe.PaymentMethod;
    assert.deepEqual([shown.id, shown.card?.last4, 'customer' in shown, 'metadata' in shown], [made.id, '4444', false, false], 'the card is shown without the merchant\'s own');
    assert.equal((await stripe.paymentMethods.retrieve(made.id)).customer, customer.id, 'saved to the customer, as the secret key sees it');
    // That card is now this customer's: the page of another customer's SetupIntent cannot take it.
    const { setup: otherSetup } = await newSetup('other@example.com');
    const before = [await countsBesidesKeys(), await stripe.setupIntents.retrieve(otherSetup.id)];
    await assert.rejects(shopper.setupIntents.confirm(otherSetup.id, { client_secret: otherSetup.client_secret ?? '', payment_method: made.id } as Stripe.SetupIntentConfirmParams),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'payment_method_unexpected_state' && error.param === 'payment_method');
    assert.deepEqual([await countsBesidesKeys(), await stripe.setupIntents.retrieve(otherSetup.id)], before);
  });

  test('use_stripe_sdk is taken and changes nothing; mandate_data is kept in the confirmation\'s audit record, on create and on confirm', async () => {
    const customer = await stripe.customers.create({ email: 'mandate@example.com' });
    const acceptance = { type: 'online' as const, online: { ip_address: '198.51.100.4', user_agent: 'Mozilla/5.0 (account page)' } };
    const setup = await stripe.setupIntents.create({ customer: customer.id, payment_method: 'pm_card_visa', confirm: true, use_stripe_sdk: true, mandate_data: { customer_acceptance: acceptance } } as Stripe.SetupIntentCreateParams);
    assert.equal(setup.status, 'succeeded');
    const audit = (id: string) => server.database.db.selectFrom('audit_log').select('details').where('object_id', '=', id).where('action', '=', 'setup_intent.confirm').execute();
    assert.deepEqual((await audit(setup.id)).map((row) => (row.details as { customer_acceptance?: unknown }).customer_acceptance), [acceptance]);
    // From the page, with the publishable key: a 3-D Secure card's next action is the challenge page with or without use_stripe_sdk.
    const offline = { type: 'offline' as const, accepted_at: 1_767_225_600 };
    const pending = await stripe.setupIntents.create({ customer: customer.id, use_stripe_sdk: true } as Stripe.SetupIntentCreateParams);
    assert.equal(pending.status, 'requires_payment_method');
    const challenged = await shopper.setupIntents.confirm(pending.id, {
      client_secret: pending.client_secret ?? '', payment_method_data: cardData('4000002500003155'), use_stripe_sdk: true, mandate_data: { customer_acceptance: offline }, return_url: returnUrl,
    } as Stripe.SetupIntentConfirmParams);
    assert.deepEqual([challenged.status, challenged.next_action?.type, challenged.next_action?.redirect_to_url?.return_url], ['requires_action', 'redirect_to_url', returnUrl]);
    assert.deepEqual((await audit(pending.id)).map((row) => (row.details as { customer_acceptance?: unknown }).customer_acceptance), [offline]);
    const before = await counts();
    await assert.rejects(stripe.setupIntents.create({ customer: customer.id, mandate_data: { customer_acceptance: acceptance } } as Stripe.SetupIntentCreateParams),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'mandate_data');
    await assert.rejects(stripe.setupIntents.create({ customer: customer.id, use_stripe_sdk: 'yes' } as unknown as Stripe.SetupIntentCreateParams),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'use_stripe_sdk');
    assert.deepEqual(await counts(), before);
  });
});
