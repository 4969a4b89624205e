import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Services } from '../../src/flows/context.ts';
import type { Scope } from '../../src/flows/payment-intent-records.ts';
import { findPaymentIntent, readConfirmationInputs } from '../../src/flows/payment-intent-records.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

// A confirmation reads its PaymentIntent, payment method, the merchant's policy and limits in one statement; what
// it reads must be exactly what the separate reads give, whatever the merchant has configured.
describe('what a confirmation reads in one statement', () => {
  let server: TestServer;
  let services: Services;
  before(async () => {
    server = await startTestServer();
    services = server.coffer.services;
  });
  after(async () => server.close());

  /** What the tables hold, read one by one, as the expectation. */
  async function separately(scope: Scope) {
    const settings = await services.db.selectFrom('merchant_risk_settings').select(['time_zone', 'category']).where('merchant_id', '=', scope.merchantId)
      .where('livemode', '=', scope.livemode).executeTakeFirst();
    const merchant = settings ?? { time_zone: 'UTC', category: null };
    const ruleSet = await services.db.selectFrom('risk_rule_sets').select(['id', 'rules']).where('merchant_id', '=', scope.merchantId)
      .where('livemode', '=', scope.livemode).orderBy('version', 'desc').limit(1).executeTakeFirst();
    const rules = typeof ruleSet?.rules === 'string' ? JSON.parse(ruleSet.rules) as unknown : ruleSet?.rules ?? null;
    const limits = await services.db.selectFrom('payment_limits').selectAll().where('merchant_id', '=', scope.merchantId)
      .where('livemode', '=', scope.livemode).where('deleted_at', 'is', null).orderBy('seq').execute();
    return { policy: { ...merchant, rule_set_id: ruleSet?.id ?? null, rules }, limits };
  }

  const limitRow = (merchantId: string, livemode: boolean, n: number, value: bigint, deleted: boolean) => ({
    id: `plim_${livemode ? 'live' : 'test'}${String(n).padStart(20, '0')}`, merchant_id: merchantId, livemode, subject: 'merchant' as const,
    kind: 'amount_per_day' as const, currency: 'usd', value, created_at: new Date(Date.UTC(2026, 10, 1, 12, 0, n, 123)),
    updated_at: new Date(Date.UTC(2026, 10, 2, 12, 0, n, 456)), deleted_at: deleted ? new Date(Date.UTC(2026, 10, 3)) : null,
  });

  test('no limits and no rules: an empty list and no rule set, the PaymentIntent and payment method as read alone', async () => {
    const created = await server.stripe.paymentIntents.create({ amount: 1_000, currency: 'usd', payment_method: 'pm_card_visa' });
    const scope = { merchantId: server.merchantId, livemode: false };
    const inputs = await readConfirmationInputs(services, scope, created.id);
    assert.deepEqual(inputs.intent, await findPaymentIntent(services, scope, created.id));
    assert.equal(inputs.paymentMethod?.id, inputs.intent.payment_method_id);
    assert.deepEqual(inputs.limits, []);
    assert.equal(inputs.policy.rule_set_id, null);
    assert.deepEqual(inputs.policy, (await separately(scope)).policy);
  });

  test('limits as the separate read gives them: exact beyond 2^53, dates as dates, deleted and other-mode ones left out; rules parsed', async () => {
    const scope = { merchantId: server.merchantId, livemode: false };
    const huge = 2n ** 53n + 1n;
    await services.db.insertInto('payment_limits').values([
      limitRow(server.merchantId, false, 1, huge, false),
      limitRow(server.merchantId, false, 2, 500n, false),
      limitRow(server.merchantId, false, 3, 700n, true),
      limitRow(server.merchantId, true, 4, 900n, false),
    ]).execute();
    await services.db.insertInto('risk_rule_sets').values({
      id: 'rrs_00000000000000000000001', merchant_id: server.merchantId, livemode: false, version: 1,
      rules: JSON.stringify([{ id: 'r1', text: 'block if :amount: > 100000', mode: 'active' }]), created_at: new Date(), created_by: 'test',
    }).execute();
    const created = await server.stripe.paymentIntents.create({ amount: 1_000, currency: 'usd', payment_method: 'pm_card_visa' });
    const inputs = await readConfirmationInputs(services, scope, created.id);
    const separate = await separately(scope);
    assert.deepEqual(inputs.limits.map((limit) => limit.value), [huge, 500n]);
    assert.ok(inputs.limits.every((limit) => limit.created_at instanceof Date && limit.deleted_at === null));
    assert.deepEqual(inputs.limits, separate.limits);
    assert.deepEqual(inputs.policy, separate.policy);
    assert.equal(inputs.policy.rules?.[0]?.id, 'r1');
    // The other merchant's read of the same PaymentIntent is the 404 of an unknown id.
    const other = await server.coffer.services.db.selectFrom('api_keys').select('merchant_id').where('merchant_id', '!=', server.merchantId).executeTakeFirstOrThrow();
    await assert.rejects(readConfirmationInputs(services, { merchantId: other.merchant_id, livemode: false }, created.id), /No such payment_intent/);
  });
});
