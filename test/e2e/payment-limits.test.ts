import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { readConfirmationInputs } from '../../src/flows/payment-intent-records.ts';
import { createApiKey } from '../../src/identity/merchants.ts';
import { localWindows } from '../../src/risk/limits.ts';
import { readVelocity } from '../../src/risk/velocity.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: a merchant's payment limits (per payment, per day, per hour; by merchant, customer, card, device or client
// address; days in the merchant's time zone) are set through the API with clear validation errors, and enforced
// atomically: concurrent payments pass exactly as far as the limit allows, a refused payment changes no counter
// and nothing else, and a failed attempt gives back what it took.
describe('payment limits', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const api = (method: string, path: string, body?: Record<string, string | number>) =>
    rawRequest(server, method, path, {
      key: server.secretKey,
      ...(body === undefined ? {} : { body: new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString() }),
    });
  const limitIds: string[] = [];
  async function setLimit(body: Record<string, string | number>): Promise<string> {
    const created = await api('POST', '/v1/risk/limits', body);
    assert.equal(created.status, 200, created.body);
    limitIds.push(String(created.json.id));
    return String(created.json.id);
  }
  async function clearLimits(): Promise<void> {
    for (const id of limitIds.splice(0)) assert.equal((await api('DELETE', `/v1/risk/limits/${id}`)).status, 200);
  }
  const pay = (amount: number, options: Partial<Stripe.PaymentIntentCreateParams> = {}) =>
    stripe.paymentIntents.create({ amount, currency: 'usd', payment_method: 'pm_card_visa', confirm: true, ...options });
  const counters = () => server.database.db.selectFrom('payment_limit_counters').selectAll().execute();

  test('limits are created, listed, changed and deleted; bad ones are refused naming the parameter, creating nothing', async () => {
    const id = await setLimit({ subject: 'card', kind: 'amount_per_day', value: 1000, currency: 'usd' });
    assert.match(id, /^plim_/);
    const listed = await api('GET', '/v1/risk/limits');
    assert.deepEqual((listed.json.data as Array<{ id: string }>).map((limit) => limit.id), [id]);
    const changed = await api('POST', `/v1/risk/limits/${id}`, { value: 2000 });
    assert.equal(changed.json.value, 2000);
    const refusals: Array<[Record<string, string | number>, string]> = [
      [{ subject: 'card', kind: 'amount_per_day', value: 10 }, 'currency'],
      [{ subject: 'card', kind: 'count_per_day', value: 10, currency: 'usd' }, 'currency'],
      [{ subject: 'planet', kind: 'count_per_day', value: 10 }, 'subject'],
      [{ subject: 'card', kind: 'count_per_week', value: 10 }, 'kind'],
      [{ subject: 'card', kind: 'count_per_day', value: -1 }, 'value'],
      [{ subject: 'card', kind: 'amount_max', value: 10, currency: 'xyz' }, 'currency'],
    ];
    for (const [body, param] of refusals) {
      const refused = await api('POST', '/v1/risk/limits', body);
      assert.equal(refused.status, 400, JSON.stringify(body));
      assert.equal((refused.json.error as { param?: string }).param, param, JSON.stringify(body));
    }
    assert.equal(((await api('GET', '/v1/risk/limits')).json.data as unknown[]).length, 1, 'nothing was created');
    const zone = await api('POST', '/v1/risk/settings', { time_zone: 'Mars/Olympus' });
    assert.equal(zone.status, 400);
    assert.equal((zone.json.error as { param?: string }).param, 'time_zone');
    // Another merchant cannot see or change it.
    const foreign = await rawRequest(server, 'POST', `/v1/risk/limits/${id}`, { key: server.otherSecretKey, body: 'value=1' });
    assert.equal(foreign.status, 404);
    await clearLimits();
    assert.equal((await api('GET', `/v1/risk/limits/${id}`)).status, 404);
  });

  test('20 concurrent payments of 60 against a daily limit of 500: exactly 8 pass; the refused change nothing', async () => {
    await setLimit({ subject: 'merchant', kind: 'amount_per_day', value: 500, currency: 'usd' });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => pay(60)));
    const passed = results.filter((result) => result.status === 'fulfilled');
    const refused = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
    assert.equal(passed.length, 8);
    for (const result of refused) {
      const error = result.reason as Stripe.errors.StripeError;
      assert.equal(error.code, 'payment_limit_exceeded');
      assert.match(error.message, /amount per day of 500 usd, by merchant/);
    }
    const [counter] = await counters();
    assert.equal(counter?.amount, 480n);
    assert.equal(counter?.count, 8);
    await clearLimits();
  });

  test('a per-payment bound refuses before anything is written; a declined attempt gives back what it took', async () => {
    await setLimit({ subject: 'merchant', kind: 'amount_min', value: 100, currency: 'usd' });
    const cardCount = await setLimit({ subject: 'card', kind: 'count_per_hour', value: 2 });
    const small = await stripe.paymentIntents.create({ amount: 99, currency: 'usd', payment_method: 'pm_card_visa' });
    const before = await stateCounts(server.database.db);
    const countersBefore = await counters();
    await assert.rejects(stripe.paymentIntents.confirm(small.id), (error: Stripe.errors.StripeError) =>
      error.code === 'payment_limit_exceeded' && /minimum amount per payment/.test(error.message));
    const afterRefusal = await stateCounts(server.database.db);
    // Nothing written but the audit record of the refusal and the stored response for the idempotency key.
    assert.deepEqual({ ...afterRefusal, audit_log: before.audit_log, idempotency_keys: before.idempotency_keys }, before);
    assert.deepEqual(await counters(), countersBefore, 'and changed no counter');
    assert.equal((await stripe.paymentIntents.retrieve(small.id)).status, 'requires_confirmation');
    // Two declines of the same card: each took from the hourly count and gave it back.
    for (let i = 0; i < 2; i += 1) {
      await assert.rejects(pay(150, { payment_method: 'pm_card_chargeDeclined' }), (error: Stripe.errors.StripeError) => error.code === 'card_declined');
    }
    const counted = (await counters()).filter((row) => row.limit_id === cardCount);
    assert.ok(counted.every((row) => row.count === 0), 'declines keep nothing counted');
    await pay(150);
    await pay(150);
    await assert.rejects(pay(150), (error: Stripe.errors.StripeError) => error.code === 'payment_limit_exceeded' && /payments per hour of 2, by card/.test(error.message));
    // Another card is counted apart.
    await pay(150, { payment_method: 'pm_card_mastercard' });
    await clearLimits();
  });

  test('by device (radar_options[session]) and by client address', async () => {
    await setLimit({ subject: 'device', kind: 'count_per_day', value: 1 });
    await pay(200, { radar_options: { session: 'device-a' } });
    await assert.rejects(pay(200, { radar_options: { session: 'device-a' } }), (error: Stripe.errors.StripeError) => error.code === 'payment_limit_exceeded');
    await pay(200, { radar_options: { session: 'device-b' } });
    await pay(200); // no device given: the device limit does not apply
    await clearLimits();
    await setLimit({ subject: 'client_address', kind: 'count_per_day', value: 1 });
    await pay(300);
    await assert.rejects(pay(300), (error: Stripe.errors.StripeError) => error.code === 'payment_limit_exceeded' && /by client address/.test(error.message));
    await clearLimits();
  });

  test('each outcome is counted for velocity in the statement that records it: by card, BIN, customer, email, device, address', async () => {
    const customer = await stripe.customers.create({ email: 'velocity@example.com' });
    const options = { customer: customer.id, receipt_email: 'Velocity@Example.com', radar_options: { session: 'device-v' } };
    const paid = await pay(1000, options);
    await assert.rejects(pay(2000, { ...options, payment_method: 'pm_card_chargeDeclined' }));
    await assert.rejects(pay(3000, { ...options, payment_method: 'pm_card_radarBlock' }));
    const scope = { merchantId: server.merchantId, livemode: false };
    const at = new Date(Date.now() + 1_000);
    const byCustomer = await readVelocity(server.database.db, scope, 'customer', customer.id, 'usd', at);
    assert.deepEqual(byCustomer.h1.total, { count: 3, amount: 6000n });
    assert.deepEqual(byCustomer.h1.declined, { count: 1, amount: 2000n });
    assert.deepEqual(byCustomer.h1.blocked, { count: 1, amount: 3000n });
    for (const [dimension, key] of [['email', 'velocity@example.com'], ['device', 'device-v'], ['bin', '424242']] as const) {
      assert.ok((await readVelocity(server.database.db, scope, dimension, key, 'usd', at)).h1.total.count >= 1, dimension);
    }
    const fingerprint = (await stripe.paymentMethods.retrieve(paid.payment_method as string)).card?.fingerprint ?? '';
    assert.ok((await readVelocity(server.database.db, scope, 'card', fingerprint, 'usd', at)).d7.total.count >= 1);
  });

  test('days are counted in the merchant\'s time zone', async () => {
    assert.deepEqual(localWindows(new Date('2026-11-26T16:30:00Z'), 'Asia/Shanghai'), { day: '2026-11-27', hour: '2026-11-27T00' });
    assert.deepEqual(localWindows(new Date('2026-11-26T16:30:00Z'), 'America/New_York'), { day: '2026-11-26', hour: '2026-11-26T11' });
    assert.equal((await api('POST', '/v1/risk/settings', { time_zone: 'Asia/Shanghai' })).json.time_zone, 'Asia/Shanghai');
    const id = await setLimit({ subject: 'merchant', kind: 'count_per_day', value: 100 });
    await pay(400);
    const shanghaiToday = new Date().toLocaleDateString('en-CA', { timeZone: 'Asia/Shanghai' });
    const counted = (await counters()).find((row) => row.limit_id === id);
    assert.equal(counted?.window_key, shanghaiToday);
    await clearLimits();
  });
  // As its limits and rule sets: a test key changes how test payments are decided, never live ones.
  test('risk settings belong to one mode: a test key changes test mode\'s and live mode keeps its own', async () => {
    const live = (await createApiKey(server.database.db, server.merchantId, 'secret', true)).key.reveal();
    const settings = (key: string, body?: string) => rawRequest(server, body === undefined ? 'GET' : 'POST', '/v1/risk/settings', { key, ...(body === undefined ? {} : { body }) });
    const liveBefore = await settings(live, 'time_zone=Europe/Paris&merchant_category=5411&step_up_above_usd=50');
    assert.deepEqual(liveBefore.json, { object: 'risk_settings', time_zone: 'Europe/Paris', merchant_category: '5411', step_up_above_usd: 50 }, liveBefore.body);
    const changed = await settings(server.secretKey, 'time_zone=Pacific/Kiritimati&merchant_category=7995&step_up_above_usd=');
    assert.deepEqual(changed.json, { object: 'risk_settings', time_zone: 'Pacific/Kiritimati', merchant_category: '7995', step_up_above_usd: null }, changed.body);
    assert.deepEqual((await settings(live)).json, liveBefore.json, 'live mode kept its settings');
    assert.deepEqual((await settings(server.secretKey)).json, changed.json);
    // A confirmation reads its own mode's: a test PaymentIntent is decided with test mode's time zone and category.
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: 'pm_card_visa' });
    const inputs = await readConfirmationInputs(server.coffer.services, { merchantId: server.merchantId, livemode: false }, intent.id);
    assert.deepEqual([inputs.policy.time_zone, inputs.policy.category], ['Pacific/Kiritimati', '7995']);
    await settings(server.secretKey, 'time_zone=UTC&merchant_category=');
  });
});
