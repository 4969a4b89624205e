import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { generateAlipaySandboxCredentials } from '../../src/connectors/alipay/sandbox/credentials.ts';
import { createApiKey, setLiveRawCardData } from '../../src/identity/merchants.ts';
import { recoverSetupVerifications } from '../../src/flows/setup-intents.ts';
import { resolveAttempt } from '../../src/jobs/recover-in-flight.ts';
import { limits } from '../../src/limits.ts';
import { syncWalletPayments } from '../../src/jobs/sync-wallet-payments.ts';
import { ConfigError, loadConfig } from '../../src/platform/config.ts';
import { startTestServer, stripeClient, type TestServer } from '../support/server.ts';
import { TestClock } from '../support/clock.ts';

// Goal: live mode differs from test mode only in endpoint and credentials. The operator's Alipay account is
// configured all together or refused at start, with private key files kept private; a live payment goes to the
// configured gateway, signed with the configured key (here a gateway that does not answer: nothing is guessed), and a provider with
// no account refuses live payments with flow_not_supported, writing nothing; a live card payment or setup left
// waiting by an older version is settled as never sent.
describe('live wallet accounts', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-live-'));
  const keys = generateAlipaySandboxCredentials();
  const privateKey = path.join(dir, 'alipay-app.pem');
  const publicKey = path.join(dir, 'alipay-public.pem');
  fs.writeFileSync(privateKey, keys.appPrivateKeyPem, { mode: 0o600 });
  fs.writeFileSync(publicKey, keys.alipayPublicKeyPem, { mode: 0o644 });
  const alipayEnv = {
    COFFER_ALIPAY_APP_ID: keys.appId,
    COFFER_ALIPAY_PRIVATE_KEY_FILE: privateKey,
    COFFER_ALIPAY_PUBLIC_KEY_FILE: publicKey,
    // Nothing listens here: a live call's outcome is unknown.
    COFFER_ALIPAY_GATEWAY: 'https://127.0.0.1:9/gateway.do',
  };
  let server: TestServer;
  let live: Stripe;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ configEnv: alipayEnv, providerTimeoutMs: 1_000, clock });
    const key = await createApiKey(server.database.db, server.merchantId, 'secret', true);
    // These payments send card numbers from the merchant's server, which live mode takes only once allowed.
    await setLiveRawCardData(server.database.db, server.merchantId, true);
    live = stripeClient(server, key.key.reveal(), { maxNetworkRetries: 0 });
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the configuration: all or nothing, private key files private, https gateways', () => {
    assert.equal(loadConfig({ ...alipayEnv, COFFER_HOME: dir }).liveAccounts.alipay?.appId, keys.appId);
    assert.equal(loadConfig({ COFFER_HOME: dir }).liveAccounts.alipay, undefined);
    assert.throws(() => loadConfig({ COFFER_HOME: dir, COFFER_ALIPAY_APP_ID: keys.appId }),
      (error: Error) => error instanceof ConfigError && /missing COFFER_ALIPAY_PRIVATE_KEY_FILE, COFFER_ALIPAY_PUBLIC_KEY_FILE/.test(error.message));
    const loose = path.join(dir, 'loose.pem');
    fs.writeFileSync(loose, keys.appPrivateKeyPem, { mode: 0o644 });
    fs.chmodSync(loose, 0o644);
    assert.throws(() => loadConfig({ ...alipayEnv, COFFER_HOME: dir, COFFER_ALIPAY_PRIVATE_KEY_FILE: loose }), /can be read by group or others/);
    assert.throws(() => loadConfig({ ...alipayEnv, COFFER_HOME: dir, COFFER_ALIPAY_GATEWAY: 'http://openapi.alipay.com/gateway.do' }), /must be an https URL/);
    assert.throws(() => loadConfig({ ...alipayEnv, COFFER_HOME: dir, COFFER_ALIPAY_PRIVATE_KEY_FILE: path.join(dir, 'absent.pem') }), /cannot read .*ENOENT/);
  });

  test('a live Alipay payment is signed with the configured key for the configured gateway; an unreachable Alipay is never guessed', async () => {
    const intent = await live.paymentIntents.create({ amount: 1000, currency: 'cny', allowed_payment_method_types: ['alipay'] });
    assert.equal(intent.livemode, true);
    const confirmed = await live.paymentIntents.confirm(intent.id, { payment_method_data: { type: 'alipay' }, return_url: 'https://shop.example/done' });
    assert.equal(confirmed.status, 'requires_action');
    const url = new URL(confirmed.next_action?.alipay_handle_redirect?.url ?? '');
    assert.equal(`${url.origin}${url.pathname}`, 'https://127.0.0.1:9/gateway.do');
    assert.equal(url.searchParams.get('app_id'), keys.appId);
    assert.equal(url.searchParams.get('notify_url'), `${server.url}/hooks/alipay/live`);
    // Alipay's RSA2 over the sorted parameters, verified with the app's public key: the configured private key signed it.
    const params = [...url.searchParams.entries()].filter(([name, value]) => name !== 'sign' && value !== '').sort(([a], [b]) => (a < b ? -1 : 1));
    const content = params.map(([name, value]) => `${name}=${value}`).join('&');
    assert.equal(crypto.verify('RSA-SHA256', Buffer.from(content), keys.appPublicKeyPem, Buffer.from(url.searchParams.get('sign') ?? '', 'base64')), true);
    // The sync worker cannot reach Alipay: the payment stays as it is.
    clock.offsetMs += 10 * 60_000;
    await syncWalletPayments(server.coffer.services);
    assert.equal((await live.paymentIntents.retrieve(intent.id)).status, 'requires_action');
  });

  test('WeChat Pay without a live account: flow_not_supported, nothing written', async () => {
    const intent = await live.paymentIntents.create({ amount: 1000, currency: 'cny', allowed_payment_method_types: ['wechat_pay'] });
    const charges = await server.database.db.selectFrom('charges').select('id').execute();
    await assert.rejects(live.paymentIntents.confirm(intent.id, { payment_method_data: { type: 'wechat_pay' } }), (error: Stripe.errors.StripeError) => {
      assert.equal(error.statusCode, 400);
      assert.equal(error.code, 'flow_not_supported');
      return true;
    });
    assert.equal((await live.paymentIntents.retrieve(intent.id)).status, 'requires_payment_method');
    assert.equal((await server.database.db.selectFrom('charges').select('id').execute()).length, charges.length);
  });

  test('a live card payment or card setup without a card acquirer: flow_not_supported before anything is written; an attempt left pending is settled as never sent', async () => {
    const card = { number: '4242424242424242', exp_month: 12, exp_year: new Date().getFullYear() + 2, cvc: '123' };
    const method = await live.paymentMethods.create({ type: 'card', card });
    const intent = await live.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: method.id });
    const setup = await live.setupIntents.create({ payment_method: method.id });
    const counts = async () => Object.fromEntries(await Promise.all(['charges', 'events', 'ledger_transfers'].map(async (table) =>
      [table, Number((await server.database.db.selectFrom(table as 'charges').select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow()).n)])));
    const before = await counts();
    const refusedAsNoAcquirer = (error: Stripe.errors.StripeError) => error.statusCode === 400 && error.code === 'flow_not_supported' && /live card/.test(error.message);
    await assert.rejects(live.paymentIntents.confirm(intent.id), refusedAsNoAcquirer);
    await assert.rejects(live.setupIntents.confirm(setup.id), refusedAsNoAcquirer);
    const { status, latest_charge } = await live.paymentIntents.retrieve(intent.id);
    assert.deepEqual({ status, latest_charge }, { status: 'requires_confirmation', latest_charge: null }, 'not left processing with a pending charge');
    assert.equal((await live.setupIntents.retrieve(setup.id)).status, 'requires_confirmation');
    assert.deepEqual(await counts(), before, 'no charge, event or transfer');
    assert.equal((await live.paymentIntents.cancel(intent.id)).status, 'canceled', 'the PaymentIntent can still be canceled');
    // Created and confirmed at once: the PaymentIntent is created, its confirmation refused, no charge written.
    await assert.rejects(live.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method_data: { type: 'card', card }, confirm: true } as Stripe.PaymentIntentCreateParams), refusedAsNoAcquirer);
    assert.equal((await counts()).charges, before.charges);
    // A live card attempt written before this refusal existed never reached an acquirer: recovery settles it as lost.
    const paid = await server.stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    const charge = await server.database.db.selectFrom('charges').selectAll().where('id', '=', String(paid.latest_charge)).executeTakeFirstOrThrow();
    assert.deepEqual(await resolveAttempt(server.coffer.services, { ...charge, livemode: true, status: 'pending' }), { status: 'lost' });
  });

  test('a live card setup left processing without a card acquirer is settled as never sent, as a failed setup, and not asked about again', async () => {
    const method = await live.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: new Date().getFullYear() + 2, cvc: '123' } });
    const setup = await live.setupIntents.create({ payment_method: method.id });
    // As a live confirmation written before such confirmations were refused left it: processing, past the in-flight grace.
    const key = `setatt_${crypto.randomBytes(12).toString('hex')}`;
    await server.database.db.updateTable('setup_intents')
      .set({ status: 'processing', verification_key: key, updated_at: new Date(clock.nowMs() - limits.inFlightRecoveryAfterMs - 1_000) })
      .where('id', '=', setup.id).execute();
    const decryptions = async () => (await server.database.db.selectFrom('audit_log').select('id').where('action', '=', 'vault.decrypt').execute()).length;
    const decryptedBefore = await decryptions();
    assert.equal(await recoverSetupVerifications(server.coffer.services), 1);
    const settled = await live.setupIntents.retrieve(setup.id);
    assert.deepEqual({ status: settled.status, payment_method: settled.payment_method }, { status: 'requires_payment_method', payment_method: null });
    assert.deepEqual({ code: settled.last_setup_error?.code, decline_code: settled.last_setup_error?.decline_code, type: settled.last_setup_error?.type },
      { code: 'processing_error', decline_code: 'processing_error', type: 'card_error' });
    assert.match(settled.last_setup_error?.message ?? '', /No money was taken/);
    assert.equal(settled.last_setup_error?.payment_method?.id, method.id, 'the error names the card that was not verified');
    const events = await server.database.db.selectFrom('events').select('type').where('object_id', '=', setup.id).execute();
    assert.ok(events.some((event) => event.type === 'setup_intent.setup_failed'), JSON.stringify(events));
    assert.equal(await decryptions(), decryptedBefore, 'the card was not read from the vault for a verification that cannot be sent');
    assert.equal((await server.database.db.selectFrom('payment_methods').select('customer_id').where('id', '=', method.id).executeTakeFirstOrThrow()).customer_id, null, 'no card saved');
    // Settled: the next runs find nothing left processing, so nothing is retried or logged again.
    clock.offsetMs += limits.inFlightRecoveryAfterMs + 1_000;
    assert.equal(await recoverSetupVerifications(server.coffer.services), 0);
    // The merchant can give it another card and try again, as after any failed setup.
    assert.equal((await live.setupIntents.update(setup.id, { payment_method: method.id })).status, 'requires_confirmation');
  });
});
