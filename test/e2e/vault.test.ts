import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql, type Kysely, type Transaction } from 'kysely';
import Stripe from 'stripe';
import { requestHash } from '../../src/api/idempotency.ts';
import { rotateVaultKeys } from '../../src/ops/rotate-keys.ts';
import { systemClock } from '../../src/platform/clock.ts';
import type { Database } from '../../src/store/database.ts';
import { scanOutsideIdentifiers } from '../support/card-scan.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type RawResponse, type TestServer } from '../support/server.ts';

// Goal: card numbers enter Coffer only through the vault (publishable keys may give them, nothing else), are
// stored encrypted where the application's database role cannot read them, are decrypted only to authorize
// (and audited when they are), survive key rotation, and appear in no row, response or log in clear.
describe('the card vault', () => {
  let server: TestServer;
  let stripe: Stripe;
  let publishable: Stripe;
  const responses: string[] = [];

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
    publishable = stripeClient(server, server.publishableKey);
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const post = async (key: string, pathname: string, body: string): Promise<RawResponse> => {
    const response = await rawRequest(server, 'POST', pathname, { key, body });
    responses.push(response.body);
    return response;
  };
  const cardBody = (number: string, extra = '') => `type=card&card[number]=${number}&card[exp_month]=12&card[exp_year]=2031&card[cvc]=314${extra}`;
  const cardData = (number: string, extra = '') =>
    `payment_method_data[type]=card&payment_method_data[card][number]=${number}&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=2031&payment_method_data[card][cvc]=314${extra}`;
  const vaultCards = async () => Number((await sql<{ n: bigint }>`SELECT count(*) AS n FROM vault.cards`.execute(server.database.db)).rows[0]?.n);

  test('a publishable key turns card details into a PaymentMethod; the secret key charges it', async () => {
    const method = await publishable.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2031, cvc: '314' } });
    assert.match(method.id, /^pm_/);
    assert.equal(method.card?.brand, 'visa');
    assert.equal(method.card?.last4, '4242');
    assert.equal(method.card?.exp_year, 2031);
    assert.equal(method.card?.country, 'US');
    const intent = await stripe.paymentIntents.create({ amount: 4100, currency: 'usd', payment_method: method.id, confirm: true, expand: ['latest_charge'] });
    assert.equal(intent.status, 'succeeded');
    assert.equal((intent.latest_charge as Stripe.Charge).payment_method_details?.card?.fingerprint, method.card?.fingerprint);
    const decryptions = await server.database.db.selectFrom('audit_log').select(['actor_id', 'object_id']).where('action', '=', 'vault.decrypt').where('object_id', '=', method.id).execute();
    assert.deepEqual(decryptions, [{ actor_id: 'vault', object_id: method.id }], 'the decryption for the authorization is audited');
    await assert.rejects(publishable.paymentIntents.create({ amount: 100, currency: 'usd' }), (error: Stripe.errors.StripeError) => error.code === 'secret_key_required');
    const declined = await publishable.paymentMethods.create({ type: 'card', card: { number: '4000000000000002', exp_month: 1, exp_year: 2030 } });
    await assert.rejects(stripe.paymentIntents.create({ amount: 500, currency: 'usd', payment_method: declined.id, confirm: true }), (error: Stripe.errors.StripeError) => error.code === 'card_declined');
  });

  test('bad card details are refused as Stripe does, naming the field, and nothing is stored', async () => {
    const vaultCards = async () => Number((await sql<{ n: bigint }>`SELECT count(*) AS n FROM vault.cards`.execute(server.database.db)).rows[0]?.n);
    const before = await stateCounts(server.database.db);
    const cardsBefore = await vaultCards();
    for (const [body, code, param] of [
      [cardBody('4242424242424241'), 'incorrect_number', 'number'],
      ['type=card&card[number]=4242424242424242&card[exp_month]=13&card[exp_year]=2031', 'invalid_expiry_month', 'exp_month'],
      ['type=card&card[number]=4242424242424242&card[exp_month]=1&card[exp_year]=2020', 'invalid_expiry_year', 'exp_year'],
      ['type=card&card[number]=4242424242424242&card[exp_month]=1&card[exp_year]=2031&card[cvc]=12a', 'invalid_cvc', 'cvc'],
    ] as const) {
      const response = await post(server.publishableKey, '/v1/payment_methods', body);
      assert.equal(response.status, 402, response.body);
      const error = response.json.error as Record<string, unknown>;
      assert.deepEqual([error.type, error.code, error.param], ['card_error', code, param]);
    }
    assert.deepEqual(await stateCounts(server.database.db), before);
    assert.equal(await vaultCards(), cardsBefore);
  });

  test('tokens are single use', async () => {
    const token = await publishable.tokens.create({ card: { number: '5555555555554444', exp_month: '3', exp_year: '2032', cvc: '123' } });
    assert.match(token.id, /^tok_/);
    assert.equal(token.card?.last4, '4444');
    const method = await stripe.paymentMethods.create({ type: 'card', card: { token: token.id } });
    assert.equal(method.card?.brand, 'mastercard');
    await assert.rejects(stripe.paymentMethods.create({ type: 'card', card: { token: token.id } }), /more than once/);
  });

  test('a token keeps the cardholder\'s name and address, and gives them to its PaymentMethod and charge', async () => {
    const token = await publishable.tokens.create({ card: {
      number: '4242424242424242', exp_month: '4', exp_year: '2033', cvc: '314', name: 'Jenny Rosen',
      address_line1: '1 Main St', address_city: 'Springfield', address_zip: '94103', address_country: 'US',
    } });
    const card = token.card as Stripe.Card;
    assert.deepEqual([card.name, card.address_line1, card.address_line2, card.address_city, card.address_zip, card.address_country], ['Jenny Rosen', '1 Main St', null, 'Springfield', '94103', 'US']);
    assert.deepEqual([card.address_line1_check, card.address_zip_check], ['unchecked', 'unchecked']);
    assert.deepEqual(await stripe.tokens.retrieve(token.id), token);
    const method = await stripe.paymentMethods.create({ type: 'card', card: { token: token.id } });
    assert.deepEqual(method.billing_details, {
      address: { city: 'Springfield', country: 'US', line1: '1 Main St', line2: null, postal_code: '94103', state: null }, email: null, name: 'Jenny Rosen', phone: null, tax_id: null,
    });
    const paid = await stripe.paymentIntents.create({ amount: 900, currency: 'usd', payment_method: method.id, confirm: true, expand: ['latest_charge'] });
    assert.equal((paid.latest_charge as Stripe.Charge).billing_details.name, 'Jenny Rosen');
    assert.equal((paid.latest_charge as Stripe.Charge).billing_details.address?.postal_code, '94103');

    // billing_details given with the PaymentMethod is what it keeps; a token made without a name or address has none.
    const named = await publishable.tokens.create({ card: { number: '4242424242424242', exp_month: '4', exp_year: '2033', name: 'On Token' } });
    const overridden = await stripe.paymentMethods.create({ type: 'card', card: { token: named.id }, billing_details: { name: 'Given Here' } });
    assert.equal(overridden.billing_details.name, 'Given Here');
    const bare = await publishable.tokens.create({ card: { number: '4242424242424242', exp_month: '4', exp_year: '2033' } });
    assert.deepEqual([bare.card?.name, bare.card?.address_line1_check, bare.card?.address_zip_check], [null, null, null]);
    assert.equal((await stripe.paymentMethods.create({ type: 'card', card: { token: bare.id } })).billing_details.name, null);

    const before = await vaultCards();
    await assert.rejects(publishable.tokens.create({ card: { number: '4242424242424242', exp_month: '4', exp_year: '2033', address_zip: 'x'.repeat(21) } }),
      (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.param === 'card[address_zip]');
    assert.equal(await vaultCards(), before, 'a refused token stores no card');
  });

  test('Stripe\'s test tokens (tok_visa …) make PaymentMethods of their test cards, each use a new one, in test mode', async () => {
    const cardsBefore = await vaultCards();
    const visa = await stripe.paymentMethods.create({ type: 'card', card: { token: 'tok_visa' }, metadata: { from: 'token' } });
    const again = await stripe.paymentMethods.create({ type: 'card', card: { token: 'tok_visa' } });
    assert.notEqual(visa.id, again.id);
    assert.deepEqual([visa.card?.brand, visa.card?.last4, visa.metadata], ['visa', '4242', { from: 'token' }]);
    const declined = await stripe.paymentMethods.create({ type: 'card', card: { token: 'tok_chargeDeclined' } });
    await assert.rejects(stripe.paymentIntents.create({ amount: 800, currency: 'usd', payment_method: declined.id, confirm: true }),
      (error: Stripe.errors.StripeCardError) => error.code === 'card_declined' && error.decline_code === 'generic_decline');
    const paid = await stripe.paymentIntents.create({ amount: 800, currency: 'usd', payment_method: visa.id, confirm: true });
    assert.equal(paid.status, 'succeeded');
    assert.equal(await vaultCards(), cardsBefore, 'test cards are not vaulted');
    await assert.rejects(stripe.paymentMethods.create({ type: 'card', card: { token: 'tok_nosuchcard' } }),
      (error: Stripe.errors.StripeError) => error.statusCode === 404 && error.param === 'card[token]');
  });

  test('customers keep cards: attach, list, detach; off-session payments; SetupIntents', async () => {
    const customer = await stripe.customers.create({ email: 'saved@example.com' });
    const method = await publishable.paymentMethods.create({ type: 'card', card: { number: '4000056655665556', exp_month: 6, exp_year: 2033 } });
    const setup = await stripe.setupIntents.create({ customer: customer.id, payment_method: method.id, confirm: true, usage: 'off_session' });
    assert.equal(setup.status, 'succeeded');
    const listed = await stripe.paymentMethods.list({ customer: customer.id, type: 'card' });
    assert.deepEqual(listed.data.map((item) => item.id), [method.id]);
    const later = await stripe.paymentIntents.create({ amount: 1999, currency: 'usd', customer: customer.id, payment_method: method.id, off_session: true, confirm: true });
    assert.equal(later.status, 'succeeded');
    const stranger = await stripe.customers.create({ email: 'other@example.com' });
    await assert.rejects(stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: stranger.id, payment_method: method.id, confirm: true }),
      (error: Stripe.errors.StripeError) => error.code === 'payment_method_unexpected_state');
    const refused = await publishable.paymentMethods.create({ type: 'card', card: { number: '4000000000009995', exp_month: 6, exp_year: 2033 } });
    // A decline is Stripe's 402 card error, carrying the SetupIntent back at requires_payment_method.
    const declined = await stripe.setupIntents.create({ customer: customer.id, payment_method: refused.id, confirm: true }).then(
      () => assert.fail('a declined SetupIntent confirmation answers 402'),
      (error: Stripe.errors.StripeError) => error,
    );
    assert.equal(declined.type, 'StripeCardError');
    assert.equal(declined.statusCode, 402);
    assert.equal(declined.code, 'card_declined');
    assert.equal(declined.decline_code, 'insufficient_funds');
    assert.deepEqual([declined.payment_method?.id, declined.payment_method?.card?.last4], [refused.id, '9995'], 'the declined card, whole');
    const failing = declined.setup_intent;
    assert.ok(failing !== undefined, 'the error carries the SetupIntent');
    assert.equal(failing.status, 'requires_payment_method');
    assert.equal(failing.last_setup_error?.decline_code, 'insufficient_funds');
    assert.deepEqual([failing.last_setup_error?.payment_method?.object, failing.last_setup_error?.payment_method?.card?.last4], ['payment_method', '9995'], 'the declined card whole, as Stripe embeds it');
    assert.deepEqual([failing.allowed_payment_method_types, failing.excluded_payment_method_types], [null, null]);
    assert.deepEqual(await stripe.setupIntents.retrieve(failing.id), failing, 'the error carries the SetupIntent as stored');
    const failedEvent = (await stripe.events.list({ type: 'setup_intent.setup_failed' })).data.find((event) => (event.data.object as Stripe.SetupIntent).id === failing.id);
    assert.deepEqual(failedEvent?.data.object, failing, 'the event carries it as the API shows it');
    // Confirming it again with a good card succeeds.
    const good = await publishable.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 6, exp_year: 2033 } });
    const retried = await stripe.setupIntents.confirm(failing.id, { payment_method: good.id });
    assert.equal(retried.status, 'succeeded');
    assert.equal(retried.last_setup_error, null);
    await stripe.paymentMethods.detach(good.id);
    assert.equal((await stripe.paymentMethods.retrieve(refused.id)).customer, null, 'a declined card is not saved');
    const detached = await stripe.paymentMethods.detach(method.id);
    assert.equal(detached.customer, null);
    assert.deepEqual((await stripe.paymentMethods.list({ customer: customer.id, type: 'card' })).data, []);
    const saving = await stripe.paymentIntents.create({ amount: 700, currency: 'usd', customer: customer.id, payment_method: 'pm_card_visa', setup_future_usage: 'off_session', confirm: true });
    assert.equal((await stripe.paymentMethods.retrieve(saving.payment_method as string)).customer, customer.id, 'setup_future_usage saves the card');
  });

  test('the serving role (coffer_app) cannot read the vault tables; only the vault functions reach them', async () => {
    const db = server.database.db;
    const card = await sql<{ id: string }>`SELECT id FROM vault.cards LIMIT 1`.execute(db);
    const cardId = card.rows[0]?.id ?? '';
    await asProbe(db, async (tx) => assert.rejects(sql`SELECT ciphertext FROM vault.cards`.execute(tx), /permission denied/));
    await asProbe(db, async (tx) => assert.rejects(sql`SELECT wrapped FROM vault.data_keys`.execute(tx), /permission denied/));
    await asProbe(db, async (tx) => assert.rejects(sql`UPDATE vault.cards SET ciphertext = ''::bytea`.execute(tx), /permission denied/));
    await asProbe(db, async (tx) => {
      const through = await sql<{ c: Uint8Array | null }>`SELECT vault.card_ciphertext(${cardId}) AS c`.execute(tx);
      assert.ok((through.rows[0]?.c?.length ?? 0) > 16, 'the vault function hands out the ciphertext');
      const payments = await sql`SELECT id FROM payment_intents LIMIT 1`.execute(tx);
      assert.equal(payments.rows.length, 1, 'the role still reads the application tables');
    });
  });

  test('key rotation re-wraps data keys only; cards from before and after both still pay', async () => {
    const before = await publishable.paymentMethods.create({ type: 'card', card: { number: '378282246310005', exp_month: 9, exp_year: 2030 } });
    const ciphertextBefore = await sql<{ c: Uint8Array }>`SELECT ciphertext AS c FROM vault.cards ORDER BY created_at`.execute(server.database.db);
    const report = await rotateVaultKeys(server.database.db, { kind: 'local' }, homeOf(server), 'embedded', systemClock);
    assert.equal(report.rewrap.failed, 0);
    assert.ok(report.rewrap.finished);
    assert.ok(report.rewrap.rewrapped >= 1);
    const kekIds = await sql<{ kek_id: string }>`SELECT DISTINCT kek_id FROM vault.data_keys`.execute(server.database.db);
    assert.deepEqual(kekIds.rows.map((row) => row.kek_id), [report.currentKekId]);
    const ciphertextAfter = await sql<{ c: Uint8Array }>`SELECT ciphertext AS c FROM vault.cards ORDER BY created_at`.execute(server.database.db);
    assert.deepEqual(ciphertextAfter.rows.map((row) => Buffer.from(row.c).toString('hex')), ciphertextBefore.rows.map((row) => Buffer.from(row.c).toString('hex')), 'card ciphertexts untouched');
    server.coffer.services.vault.forget();
    const after = await publishable.paymentMethods.create({ type: 'card', card: { number: '6011111111111117', exp_month: 9, exp_year: 2030 } });
    for (const method of [before, after]) {
      const intent = await stripe.paymentIntents.create({ amount: 1500, currency: 'usd', payment_method: method.id, confirm: true });
      assert.equal(intent.status, 'succeeded');
    }
  });

  // An installation whose KEK is elsewhere (an HSM left out of the configuration, key files lost) must not make a
  // new kek_1 beside the data keys wrapped under the real one: every saved card would then fail, one payment at a time.
  test('a KEK store without a key, on a vault holding data keys, is refused at start and by rotation; nothing is created', async () => {
    await publishable.paymentMethods.create({ type: 'card', card: { number: '4000056655665556', exp_month: 3, exp_year: 2031 } });
    const elsewhere = fs.mkdtempSync(path.join(path.dirname(homeOf(server)), 'coffer-no-kek-'));
    try {
      const refused = (error: unknown) => {
        assert.equal((error as { code?: string }).code, 'kek_missing', String(error));
        assert.match((error as Error).message, /holds no key-encryption key, but the vault holds data keys wrapped under one: if the KEK is in an HSM, set COFFER_KEK_PKCS11_MODULE/);
        return true;
      };
      // A home with the installation's other keys, but no KEK (an HSM installation started without its variables).
      fs.mkdirSync(path.join(elsewhere, 'keys'), { mode: 0o700 });
      for (const file of ['instance.key', 'audit-signing.key']) {
        const from = path.join(homeOf(server), 'keys', file);
        if (fs.existsSync(from)) fs.copyFileSync(from, path.join(elsewhere, 'keys', file));
      }
      await assert.rejects(startTestServer({ database: server.database, configEnv: { COFFER_HOME: elsewhere } }), refused);
      await assert.rejects(rotateVaultKeys(server.database.db, { kind: 'local' }, elsewhere, 'embedded', systemClock), refused);
      assert.deepEqual(walk(elsewhere).filter((file) => file.includes(`${path.sep}kek${path.sep}`)), [], 'no KEK file was made');
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test('a ciphertext copied onto another card does not decrypt', async () => {
    const a = await publishable.paymentMethods.create({ type: 'card', card: { number: '3566002020360505', exp_month: 2, exp_year: 2031 } });
    const b = await publishable.paymentMethods.create({ type: 'card', card: { number: '6200000000000005', exp_month: 2, exp_year: 2031 } });
    const rows = await server.database.db.selectFrom('payment_methods').select(['id', 'vault_card_id']).where('id', 'in', [a.id, b.id]).execute();
    const vaultA = rows.find((row) => row.id === a.id)?.vault_card_id ?? '';
    const vaultB = rows.find((row) => row.id === b.id)?.vault_card_id ?? '';
    await sql`UPDATE vault.cards SET ciphertext = (SELECT ciphertext FROM vault.cards WHERE id = ${vaultA}) WHERE id = ${vaultB}`.execute(server.database.db);
    server.coffer.services.vault.forget();
    const response = await post(server.secretKey, '/v1/payment_intents', `amount=1000&currency=usd&payment_method=${b.id}&confirm=true`);
    assert.equal(response.status, 500);
    const pending = await server.database.db.selectFrom('sandbox_card_payments').select('id').where('test_card', '=', '0505').execute();
    assert.equal(pending.length, 0, 'card A was never charged in place of B');
  });

  // Stripe takes a card's details with the payment itself (`payment_method_data[type]=card`): a server that collects
  // cards, or a page confirming with the publishable key and client secret as Stripe.js's confirmCardPayment does.
  test('card details given with the payment: stored by the vault as a PaymentMethod for this payment, refusals store nothing', async () => {
    // The secret key creates and confirms in one request.
    const created = await post(server.secretKey, '/v1/payment_intents', `amount=2300&currency=usd&confirm=true&${cardData('5555555555554444')}&expand[]=latest_charge`);
    assert.equal(created.status, 200, created.body);
    assert.equal(created.json.status, 'succeeded');
    const method = await stripe.paymentMethods.retrieve(String(created.json.payment_method));
    assert.deepEqual([method.card?.brand, method.card?.last4, method.customer], ['mastercard', '4444', null]);
    // The request's own audit record names the PaymentMethod it made.
    const createdRecord = await server.database.db.selectFrom('audit_log').select('details').where('action', '=', 'payment_intent.create')
      .where('object_id', '=', String(created.json.id)).executeTakeFirstOrThrow();
    assert.deepEqual(createdRecord.details.payment_method_created, { id: method.id, brand: 'mastercard', last4: '4444' });
    const charge = created.json.latest_charge as { payment_method: string; payment_method_details: { card: { last4: string; checks: { cvc_check: string } } } };
    assert.deepEqual([charge.payment_method, charge.payment_method_details.card.last4, charge.payment_method_details.card.checks.cvc_check], [method.id, '4444', 'pass']);
    // A card given for one payment pays for no other.
    await assert.rejects(stripe.paymentIntents.create({ amount: 100, currency: 'usd', payment_method: method.id, confirm: true }),
      (error: Stripe.errors.StripeError) => error.code === 'payment_method_unexpected_state');

    // Without confirm=true the card is stored and attached, bound to its PaymentIntent, which a later confirmation pays.
    const cardsBeforeAttach = await vaultCards();
    const attached = await post(server.secretKey, '/v1/payment_intents', `amount=1400&currency=usd&${cardData('4000056655665556')}&expand[]=payment_method`);
    assert.equal(attached.status, 200, attached.body);
    const attachedMethod = attached.json.payment_method as { id: string; card: { brand: string; last4: string } };
    assert.deepEqual([attached.json.status, attachedMethod.card.brand, attachedMethod.card.last4], ['requires_confirmation', 'visa', '5556']);
    assert.equal(await vaultCards(), cardsBeforeAttach + 1, 'the card is stored with the PaymentIntent');
    await assert.rejects(stripe.paymentIntents.create({ amount: 100, currency: 'usd', payment_method: attachedMethod.id, confirm: true }),
      (error: Stripe.errors.StripeError) => error.code === 'payment_method_unexpected_state', 'it pays for its own PaymentIntent only');
    const confirmedLater = await stripe.paymentIntents.confirm(String(attached.json.id));
    assert.deepEqual([confirmedLater.status, confirmedLater.payment_method], ['succeeded', attachedMethod.id]);

    // The shopper's page confirms with the publishable key and the client secret: first a decline, then another card.
    const intent = await stripe.paymentIntents.create({ amount: 1800, currency: 'eur', metadata: { order: 'private-9' } });
    const confirmPath = `/v1/payment_intents/${intent.id}/confirm`;
    const declined = await post(server.publishableKey, confirmPath, `client_secret=${intent.client_secret ?? ''}&${cardData('4000000000000002')}`);
    assert.equal(declined.status, 402, declined.body);
    const declineError = declined.json.error as { code: string; decline_code: string; payment_intent: Record<string, unknown>; payment_method: { id: string; card: { last4: string } } };
    assert.deepEqual([declineError.code, declineError.decline_code, declineError.payment_method.card.last4], ['card_declined', 'generic_decline', '0002']);
    assert.equal('metadata' in declineError.payment_intent, false, 'the page sees only the shopper\'s fields');
    const paid = await post(server.publishableKey, confirmPath, `client_secret=${intent.client_secret ?? ''}&${cardData('4242424242424242')}`);
    assert.equal(paid.status, 200, paid.body);
    assert.equal(paid.json.status, 'succeeded');
    assert.notEqual(paid.json.payment_method, declineError.payment_method.id, 'each card given is a PaymentMethod of its own');
    const confirmRecords = await server.database.db.selectFrom('audit_log').select('details').where('action', '=', 'payment_intent.confirm')
      .where('object_id', '=', intent.id).orderBy('seq').execute();
    assert.deepEqual(confirmRecords.map((record) => (record.details.payment_method_created as { id: string } | undefined)?.id),
      [declineError.payment_method.id, String(paid.json.payment_method)], 'each confirmation records the card it was given');
    // Retried with the same Idempotency-Key, the request is answered from the first response, storing no card again.
    const keyed = await stripe.paymentIntents.create({ amount: 900, currency: 'usd' });
    const cardsBeforeRetry = await vaultCards();
    const first = await rawRequest(server, 'POST', `/v1/payment_intents/${keyed.id}/confirm`, { key: server.secretKey, body: cardData('4242424242424242'), headers: { 'idempotency-key': `card-data-${keyed.id}` } });
    const again = await rawRequest(server, 'POST', `/v1/payment_intents/${keyed.id}/confirm`, { key: server.secretKey, body: cardData('4242424242424242'), headers: { 'idempotency-key': `card-data-${keyed.id}` } });
    responses.push(first.body, again.body);
    assert.equal(first.status, 200, first.body);
    assert.equal(again.body, first.body, 'replayed byte for byte');
    assert.equal(await vaultCards(), cardsBeforeRetry + 1, 'one card stored for the two');
    // The key remembers the request by a hash in which the number and the security code are keyed digests: not
    // even a plain digest of the card is stored.
    const remembered = await server.database.db.selectFrom('idempotency_keys').select('request_hash').where('key', '=', `card-data-${keyed.id}`).executeTakeFirstOrThrow();
    const sent = { payment_method_data: { type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2031, cvc: '314' } } };
    assert.notEqual(remembered.request_hash, requestHash('POST', `/v1/payment_intents/${keyed.id}/confirm`, sent));
    const keyedDigests = structuredClone(sent);
    keyedDigests.payment_method_data.card.number = `hmac:${createHmac('sha256', server.coffer.services.fingerprintKey.reveal()).update('4242424242424242').digest('hex')}`;
    keyedDigests.payment_method_data.card.cvc = `hmac:${createHmac('sha256', server.coffer.services.fingerprintKey.reveal()).update('314').digest('hex')}`;
    assert.equal(remembered.request_hash, requestHash('POST', `/v1/payment_intents/${keyed.id}/confirm`, keyedDigests));
    const otherCard = await rawRequest(server, 'POST', `/v1/payment_intents/${keyed.id}/confirm`, { key: server.secretKey, body: cardData('5555555555554444'), headers: { 'idempotency-key': `card-data-${keyed.id}` } });
    responses.push(otherCard.body);
    assert.equal(otherCard.status, 400, 'another card under the same key is another request');
    assert.equal((otherCard.json.error as { type: string }).type, 'idempotency_error');

    // Refusals name the parameter as it was sent, and store no card and change nothing.
    const canceled = await stripe.paymentIntents.cancel((await stripe.paymentIntents.create({ amount: 700, currency: 'usd' })).id);
    const alipayOnly = (await post(server.secretKey, '/v1/payment_intents', 'amount=700&currency=cny&payment_method_types[]=alipay')).json as { id: string };
    const open = await stripe.paymentIntents.create({ amount: 700, currency: 'usd' });
    const before = await stateCounts(server.database.db);
    const cardsBefore = await vaultCards();
    const refusals: Array<[string, string, string, number, string, string]> = [
      [server.secretKey, '/v1/payment_intents', `amount=700&currency=usd&confirm=true&${cardData('4242424242424241')}`, 402, 'incorrect_number', 'payment_method_data[card][number]'],
      [server.secretKey, `/v1/payment_intents/${open.id}/confirm`, cardData('4242424242424241'), 402, 'incorrect_number', 'payment_method_data[card][number]'],
      [server.secretKey, `/v1/payment_intents/${open.id}/confirm`, cardData('4242424242424242').replace('[exp_month]=12', '[exp_month]=13'), 402, 'invalid_expiry_month', 'payment_method_data[card][exp_month]'],
      [server.secretKey, `/v1/payment_intents/${open.id}/confirm`, 'payment_method_data[type]=card&payment_method_data[card][number]=4242424242424242&payment_method_data[card][exp_year]=2031', 400, 'parameter_missing', 'payment_method_data[card][exp_month]'],
      [server.secretKey, `/v1/payment_intents/${open.id}/confirm`, 'payment_method_data[type]=card', 400, 'parameter_missing', 'payment_method_data[card]'],
      [server.secretKey, `/v1/payment_intents/${open.id}/confirm`, cardData('4242424242424242').replace('[type]=card', '[type]=alipay'), 400, 'parameter_invalid', 'payment_method_data[card]'],
      [server.secretKey, `/v1/payment_intents/${open.id}/confirm`, `payment_method=pm_card_visa&${cardData('4242424242424242')}`, 400, 'parameters_exclusive', 'payment_method_data'],
      [server.secretKey, `/v1/payment_intents/${canceled.id}/confirm`, cardData('4242424242424242'), 400, 'payment_intent_unexpected_state', ''],
      [server.secretKey, `/v1/payment_intents/${alipayOnly.id}/confirm`, cardData('4242424242424242'), 400, 'parameter_invalid', 'payment_method_data[type]'],
      [server.secretKey, '/v1/payment_intents', `amount=700&currency=usd&confirm=true&payment_method=pm_card_visa&${cardData('4242424242424242')}`, 400, 'parameters_exclusive', 'payment_method_data'],
      [server.secretKey, '/v1/payment_intents', 'amount=700&currency=cny&payment_method_types[]=alipay&payment_method_data[type]=alipay', 400, 'parameter_invalid', 'payment_method_data'],
      [server.secretKey, '/v1/payment_intents', `amount=700&currency=usd&confirm=true&payment_method_types[]=alipay&${cardData('4242424242424242')}`, 400, 'parameter_invalid', 'payment_method_data[type]'],
      [server.secretKey, '/v1/payment_intents', `amount=-1&currency=usd&confirm=true&${cardData('4242424242424242')}`, 400, 'parameter_invalid_integer', 'amount'],
      [server.secretKey, '/v1/payment_intents', `amount=700&currency=usd&confirm=true&customer=cus_nobody&${cardData('4242424242424242')}`, 404, 'resource_missing', 'customer'],
      [server.publishableKey, `/v1/payment_intents/${open.id}/confirm`, `client_secret=${open.id}_secret_wrong&${cardData('4242424242424242')}`, 400, 'parameter_invalid', 'client_secret'],
    ];
    for (const [key, pathname, body, status, code, param] of refusals) {
      const response = await post(key, pathname, body);
      const error = response.json.error as { code: string; param?: string } | undefined;
      assert.deepEqual([response.status, error?.code, error?.param ?? ''], [status, code, param], `${pathname} ${body}: ${response.body}`);
      assert.deepEqual(await stateCounts(server.database.db), before, `${body} changed nothing`);
      assert.equal(await vaultCards(), cardsBefore, `${body} stored no card`);
    }
    assert.equal((await stripe.paymentIntents.retrieve(open.id)).status, 'requires_payment_method');

    // Of the wrong type, a security code or a number (even one that is no card's) is not repeated in the error.
    for (const body of [
      `{"payment_method_data":{"type":"card","card":{"number":"4242424242424242","exp_month":12,"exp_year":2031,"cvc":9731}}}`,
      `{"payment_method_data":{"type":"card","card":{"number":97319731973197,"exp_month":12,"exp_year":2031}}}`,
      `{"payment_method_data":{"type":"card","card":"9731973197319731"}}`,
    ]) {
      const response = await rawRequest(server, 'POST', `/v1/payment_intents/${open.id}/confirm`, { key: server.secretKey, contentType: 'application/json', body });
      responses.push(response.body);
      assert.equal(response.status, 400, response.body);
      assert.match((response.json.error as { message: string }).message, /\(not shown\)/);
      assert.equal(response.body.includes('9731'), false, response.body);
    }
    // A card number sent as a parameter's name is masked in the error's param as in its message.
    for (const [key, pathname, body] of <Array<[string, string, string]>>[[server.publishableKey, '/v1/payment_methods', 'type=card&card[4000056655665556]=1'], [server.secretKey, `/v1/payment_intents/${open.id}`, 'shipping[address][4000056655665556]=1']]) {
      const response = await post(key, pathname, body);
      responses.push(response.body);
      assert.equal(response.status, 400, response.body);
      const error = response.json.error as { message: string; param?: string };
      assert.match(error.param ?? '', /\*{12}5556/, response.body);
      assert.equal(response.body.includes('4000056655665556'), false, response.body);
    }

    // Refused after the card was checked (a payment limit; an open wallet trade, below): the card is stored only
    // by the statement that records the attempt, so nothing is.
    const limit = await post(server.secretKey, '/v1/risk/limits', 'subject=merchant&kind=amount_max&value=500&currency=gbp');
    assert.equal(limit.status, 200, limit.body);
    const overLimit = await stripe.paymentIntents.create({ amount: 1000, currency: 'gbp' });
    const afterChecks = await stateCounts(server.database.db);
    const cardsAfterChecks = await vaultCards();
    const refused = await post(server.publishableKey, `/v1/payment_intents/${overLimit.id}/confirm`, `client_secret=${overLimit.client_secret ?? ''}&${cardData('4242424242424242')}`);
    assert.equal(refused.status, 400, refused.body);
    assert.equal((refused.json.error as { code: string }).code, 'payment_limit_exceeded', refused.body);
    assert.deepEqual(await stateCounts(server.database.db), afterChecks, 'the refusal changed nothing');
    assert.equal(await vaultCards(), cardsAfterChecks, 'the refusal stored no card');
    // Created and then refused: the card is stored with its PaymentIntent and bound to it, so it pays for no other.
    const createdOver = await post(server.secretKey, '/v1/payment_intents', `amount=1000&currency=gbp&confirm=true&${cardData('4242424242424242')}`);
    assert.equal((createdOver.json.error as { code: string }).code, 'payment_limit_exceeded', createdOver.body);
    const left = (await stripe.paymentIntents.list({ limit: 1 })).data[0];
    assert.deepEqual([left?.amount, left?.currency, left?.status], [1000, 'gbp', 'requires_confirmation']);
    await assert.rejects(stripe.paymentIntents.create({ amount: 100, currency: 'usd', payment_method: String(left?.payment_method), confirm: true }),
      (error: Stripe.errors.StripeError) => error.code === 'payment_method_unexpected_state');
    assert.equal((await rawRequest(server, 'DELETE', `/v1/risk/limits/${String(limit.json.id)}`, { key: server.secretKey })).status, 200);
    const paidLater = await stripe.paymentIntents.confirm(left?.id ?? '');
    assert.equal(paidLater.status, 'succeeded', 'the PaymentIntent pays with its own card once the limit is lifted');
  });

  test('no card number appears anywhere: database, API responses', async () => {
    const numbers = ['4242424242424242', '5555555555554444', '4000000000009995', '378282246310005'];
    for (const number of numbers) {
      const response = await post(server.publishableKey, '/v1/payment_methods', cardBody(number));
      assert.equal(response.status, 200, response.body);
      await post(server.secretKey, '/v1/payment_intents', `amount=1000&currency=usd&payment_method=${String(response.json.id)}&confirm=true`);
    }
    const dump = await databaseRows(server);
    // Digests, ciphertexts and UUIDs are set aside for the scan (the exact numbers are searched for in everything below).
    const inDatabase = scanOutsideIdentifiers(dump);
    const context = inDatabase.matches.slice(0, 5).map((match) => dump.slice(Math.max(0, match.offset - 120), match.offset + match.length + 40));
    assert.deepEqual(inDatabase.matches.map((match) => match.masked), [], `no card number in any row; found in: ${JSON.stringify(context)}`);
    // The rows do hold what may be kept, so the scan read the data it should have.
    for (const number of numbers) assert.ok(dump.includes(`"last4": "${number.slice(-4)}"`), `the rows hold the last four digits of ${number.slice(-4)}`);
    for (const number of numbers) assert.equal(dump.includes(number), false, `no row holds ${number.slice(-4)} in full`);
    // The files under the data directory (tables, indexes, write-ahead log, catalog) never hold the digits either.
    // PostgreSQL's own catalog prints byte arrays as lists of small numbers, which the scanner would report, so
    // here the search is for the exact numbers submitted.
    for (const file of dataFiles(server)) {
      const content = fs.readFileSync(file).toString('latin1');
      for (const number of numbers) assert.equal(content.includes(number), false, `${file} holds a submitted card number`);
    }
    const inResponses = scanOutsideIdentifiers(responses.join('\n'));
    assert.deepEqual(inResponses.matches.map((match) => match.masked), [], 'no card number in any response');
    // The security code (314 in every request here) is kept nowhere: no field holds it, in rows or responses.
    assert.doesNotMatch(dump, cvcField, 'no row has a security code field');
    assert.doesNotMatch(responses.join('\n'), cvcField, 'no response has a security code field');
  });

  // After the scan above: the Alipay sandbox's app id is sixteen digits, which the scan would take for a card number.
  test('card details sent while an Alipay trade is open: refused after the card was checked, storing nothing', async () => {
    const mixed = (await post(server.secretKey, '/v1/payment_intents', 'amount=700&currency=cny&payment_method_types[]=card&payment_method_types[]=alipay')).json as { id: string };
    const trade = await post(server.secretKey, `/v1/payment_intents/${mixed.id}/confirm`, 'payment_method_data[type]=alipay&return_url=https://shop.example/back');
    assert.equal(trade.json.status, 'requires_action', trade.body);
    const before = await stateCounts(server.database.db);
    const cardsBefore = await vaultCards();
    const refused = await post(server.secretKey, `/v1/payment_intents/${mixed.id}/confirm`, cardData('4242424242424242'));
    assert.equal(refused.status, 400, refused.body);
    assert.equal((refused.json.error as { code: string }).code, 'payment_intent_unexpected_state', refused.body);
    assert.deepEqual(await stateCounts(server.database.db), before, 'the refusal changed nothing');
    assert.equal(await vaultCards(), cardsBefore, 'the refusal stored no card');
  });
});

/** A security code as a field or a parameter (`"cvc": …`, `card[cvc]=…`); `cvc_check` is the issuer's verdict, allowed. */
const cvcField = /"cvc"\s*:|cvc\]?=/i;

/**
 * Runs `probe` in a transaction as `coffer_app`, the serving role of migration 0034, then rolls
 * the transaction back (on PostgreSQL a refused statement aborts it anyway).
 */
async function asProbe(db: Kysely<Database>, probe: (tx: Transaction<Database>) => Promise<void>): Promise<void> {
  const rolledBack = new Error('rolled back');
  await assert.rejects(db.transaction().execute(async (tx) => {
    await sql`SET LOCAL ROLE coffer_app`.execute(tx);
    await probe(tx);
    throw rolledBack;
  }), (error) => error === rolledBack);
}

function homeOf(server: TestServer): string {
  const certFile = server.coffer.certFile ?? '';
  return path.dirname(path.dirname(certFile));
}

/** Every row of every table in Coffer's schemas, as text: what a dump holds. */
async function databaseRows(server: TestServer): Promise<string> {
  const tables = await sql<{ schema: string; name: string }>`SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
    WHERE table_schema IN ('public', 'vault') AND table_type = 'BASE TABLE'`.execute(server.database.db);
  const parts: string[] = [];
  for (const table of tables.rows) {
    const rows = await sql<{ row: string }>`SELECT row_to_json(t)::text AS row FROM ${sql.table(`${table.schema}.${table.name}`)} t`.execute(server.database.db);
    parts.push(...rows.rows.map((row) => row.row));
  }
  return parts.join('\n');
}

/** The embedded database's files; none for an external PostgreSQL server, whose files this process cannot read. */
function dataFiles(server: TestServer): string[] {
  return server.database.dataDir === undefined ? [] : walk(server.database.dataDir);
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]);
}
