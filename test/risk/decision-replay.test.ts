import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RequestContext } from '../../src/flows/context.ts';
import { decideAttempt, type MerchantPolicyRow } from '../../src/flows/risk-decision.ts';
import { replayDecisions } from '../../src/flows/risk-history.ts';
import { velocityKeys } from '../../src/flows/record-attempt-outcome.ts';
import { newId } from '../../src/platform/random.ts';
import { RiskEngine } from '../../src/risk/risk-engine.ts';
import { seededRandom } from '../../src/risk/model/seeded-random.ts';
import { velocityEntries, type VelocityOutcome } from '../../src/risk/velocity.ts';
import type { ChargeRow, PaymentIntentRow, PaymentMethodRow } from '../../src/store/database.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

// Goal: every decision is stored with what it was made from, and replaying 1,000 stored decisions with the same
// rule set and model versions gives identical results. The decisions are made by the engine's own gathering
// (counters read from the database, the model, three rule-set versions, live and test mode, many currencies,
// public client addresses with countries); and a stored decision that was altered is caught by the replay.
describe('stored risk decisions replay identically', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => server.close());

  const ruleVersions = [
    [{ id: 'big', text: 'block if :amount_usd: > 3000', mode: 'active' }, { id: 'busy_card', text: 'review if :card_payments_24h: >= 3', mode: 'active' }],
    [{ id: 'foreign', text: "request_step_up if :ip_country: != :card_country: and :amount_usd: > 200", mode: 'active' },
      { id: 'score', text: 'block if :risk_score: >= 72', mode: 'active' }, { id: 'trusted', text: "allow if :email_domain: = 'trusted.example'", mode: 'active' },
      { id: 'shadow_declines', text: 'block if :card_declined_payments_7d: > 0', mode: 'shadow' }],
    [{ id: 'elevated', text: "review if :risk_level: = 'elevated'", mode: 'active' }, { id: 'night', text: 'request_step_up if :hour_of_day: < 5', mode: 'active' }],
  ] as const;
  const addresses = ['8.8.8.8', '81.2.69.160', '1.0.1.5', '114.114.114.114', '2001:218:2000:52::1', '127.0.0.1', '203.0.113.7'];
  const currencies = ['usd', 'eur', 'cny', 'jpy', 'gbp', 'xof'];
  const brands = [{ brand: 'visa', bin: '424242', country: 'US' }, { brand: 'mastercard', bin: '555555', country: 'GB' }, { brand: 'unionpay', bin: '620000', country: 'CN' }];

  test('1,000 decisions made by the engine replay to identical results; an altered one is caught', async () => {
    const services = server.coffer.services;
    const merchantId = server.merchantId;
    const random = seededRandom(20261126);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
    // A fixed time of day (yesterday, noon UTC): the rules include one on the hour of day, which at night would
    // turn every decision of the last rule set into a step-up, whatever the hour the test runs at.
    const now = Math.floor(services.clock.nowMs() / 86_400_000) * 86_400_000 - 12 * 3_600_000;
    const cards = Array.from({ length: 40 }, (_, i) => ({ ...pick(brands), fingerprint: `fp_${i}`, last4: String(1000 + i) }));
    // History for the counters: earlier outcomes of some cards, emails and addresses in both modes.
    const history = [];
    for (let i = 0; i < 400; i += 1) {
      const card = pick(cards);
      history.push(...velocityEntries({
        merchantId, livemode: random() < 0.5, chargeId: newId('ch'), amount: BigInt(100 + Math.floor(random() * 90_000)), currency: pick(currencies),
        outcome: pick<VelocityOutcome>(['succeeded', 'succeeded', 'declined', 'blocked']), at: new Date(now - Math.floor(random() * 8 * 86_400_000)),
      }, { card: card.fingerprint, bin: card.bin, email: `shopper${i % 30}@example.com`, client_address: pick(addresses) }));
    }
    await services.db.insertInto('velocity_entries').values(history).execute();

    const engine = services.risk;
    const modelFailing = new RiskEngine({ ...engine.options, fault: 'model_fail' });
    const countersLate = new RiskEngine({ ...engine.options, fault: 'velocity_slow', velocityBudgetMs: 5 });
    let made = 0;
    // The demo merchant has no risk settings of its own in either mode: the defaults.
    const merchant = { time_zone: 'UTC', category: null };
    for (const [version, rules] of ruleVersions.entries()) {
      // The policy a confirmation would read: the merchant's, with the rule set just made current in each mode.
      const policies = new Map<boolean, MerchantPolicyRow>();
      for (const livemode of [false, true]) {
        const id = newId('rset');
        await services.db.insertInto('risk_rule_sets').values({
          id, merchant_id: merchantId, livemode, version: version + 1, rules: JSON.stringify(rules), created_at: new Date(now), created_by: 'test',
        }).execute();
        policies.set(livemode, { ...merchant, rule_set_id: id, rules: rules.map((rule) => ({ ...rule })) });
      }
      const count = version === ruleVersions.length - 1 ? 1_000 - made : 333;
      for (let i = 0; i < count; i += 1) {
        const livemode = random() < 0.6;
        const card = pick(cards);
        const wallet = random() < 0.1;
        const currency = pick(currencies);
        const email = random() < 0.1 ? 'vip@trusted.example' : `shopper${Math.floor(random() * 40)}@example.com`;
        const at = new Date(now + i * 1_000 + Math.floor(random() * 3_600_000));
        const intent = { id: newId('pi'), customer_id: random() < 0.5 ? `cus_${Math.floor(random() * 20)}` : null, shipping: null } as unknown as PaymentIntentRow;
        const paymentMethod = {
          id: newId('pm'), type: wallet ? 'alipay' : 'card', billing_details: { address: { country: pick(['US', 'CN', 'FR', '']) } },
          card: wallet ? null : {
            brand: card.brand, last4: card.last4, exp_month: 12, exp_year: 2030, country: card.country, funding: 'credit', fingerprint: card.fingerprint,
            networks: [card.brand], three_d_secure_supported: true, bin: card.bin,
          },
        } as unknown as PaymentMethodRow;
        const charge = {
          id: newId('ch'), amount: BigInt(1 + Math.floor(random() ** 3 * 800_000)), currency, provider: paymentMethod.type,
          payment_method_details: wallet ? {} : { fingerprint: card.fingerprint, bin: card.bin },
          risk_facts: { client_address: pick(addresses), device: random() < 0.5 ? `dev_${Math.floor(random() * 30)}` : null, email },
        } as unknown as ChargeRow;
        const scope = { merchantId, livemode };
        // Some decisions are made while the model fails or the counters run late: degraded, and replayable all the same.
        services.risk = i % 25 === 0 ? modelFailing : i % 25 === 1 ? countersLate : engine;
        const policy = policies.get(livemode) as MerchantPolicyRow;
        const risk = await decideAttempt(services, {
          scope, intent, paymentMethod, charge, shipping: random() < 0.3 ? { address: { country: 'JP' } } : null, velocityKeys: velocityKeys(intent, charge), now: at, policy,
        });
        await services.db.insertInto('risk_decisions').values({ ...risk.row, payment_intent_id: intent.id }).execute();
        made += 1;
      }
    }
    assert.equal(made, 1_000);
    // Replayed by an engine that has compiled nothing yet, as on another machine after a restart.
    services.risk = new RiskEngine(engine.options);
    const stored = await services.db.selectFrom('risk_decisions').select(['action', 'degraded', 'risk_level', 'model_version']).where('merchant_id', '=', merchantId).execute();
    assert.equal(stored.length, 1_000);
    const actions = new Set(stored.map((row) => row.action));
    assert.deepEqual([...actions].sort(), ['allow', 'block', 'request_step_up', 'review'], 'every action occurs');
    assert.ok(stored.some((row) => row.risk_level === 'elevated'));
    assert.ok(stored.filter((row) => row.model_version !== null).length > 700, 'the model scored most of them');
    assert.ok(stored.filter((row) => row.degraded).length >= 40, 'some were degraded');

    const ctxFor = (livemode: boolean) => ({ actor: { merchantId, livemode } }) as unknown as RequestContext;
    const live = await replayDecisions(services, ctxFor(true), 1_000);
    const test = await replayDecisions(services, ctxFor(false), 1_000);
    assert.equal(live.replayed + test.replayed, 1_000);
    assert.equal(live.skipped + test.skipped, 0);
    assert.deepEqual(live.different, []);
    assert.deepEqual(test.different, []);
    assert.equal(live.identical + test.identical, 1_000);

    // An altered stored decision no longer matches its replay.
    const victim = await services.db.selectFrom('risk_decisions').select(['id', 'result']).where('merchant_id', '=', merchantId)
      .where('livemode', '=', true).where('risk_score', 'is not', null).limit(1).executeTakeFirstOrThrow();
    const altered = { ...(victim.result as Record<string, unknown>), risk_score: Number((victim.result as { risk_score: number }).risk_score) + 1 };
    await services.db.updateTable('risk_decisions').set({ result: JSON.stringify(altered) }).where('id', '=', victim.id).execute();
    const caught = await replayDecisions(services, ctxFor(true), 1_000);
    assert.deepEqual(caught.different.map((entry) => entry.decision), [victim.id]);
  });
});
