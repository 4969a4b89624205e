import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { exportColumns, exportTrainingRows } from '../../src/flows/risk-export.ts';
import { parseCsv } from '../../src/risk/model/csv.ts';
import { extractSparkovFeatures, fitSparkovEncoding } from '../../src/risk/model/sparkov-features.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: every confirmation is decided by the risk engine before the acquirer is called. The decision (allow,
// step-up, review, block) shows in the charge's outcome as Radar's does (risk_score, risk_level, rule), is stored
// with everything it was made from, and replays identically; held payments form a review queue that approving
// (capture) or rejecting (cancel or refund) empties, leaving labels; a backtest says what a proposed rule set
// would have decided; and a failing model or counters never fail a payment.
describe('risk decisions in the payment flow', () => {
  let server: TestServer;
  let stripe: Stripe;
  before(async () => {
    server = await startTestServer();
    stripe = server.stripe;
  });
  after(async () => server.close());

  const json = (method: string, path: string, body?: unknown, key = server.secretKey) =>
    rawRequest(server, method, path, { key, ...(body === undefined ? {} : { body: JSON.stringify(body), contentType: 'application/json' }) });

  async function setRules(rules: Array<{ id: string; text: string; mode?: 'active' | 'shadow' }>): Promise<string> {
    const created = await json('POST', '/v1/risk/rule_sets', { rules });
    assert.equal(created.status, 200, created.body);
    return created.json.id as string;
  }

  async function pay(amount: number, paymentMethod = 'pm_card_visa', extra: Partial<Stripe.PaymentIntentCreateParams> = {}) {
    return stripe.paymentIntents.create({
      amount, currency: 'usd', payment_method: paymentMethod, confirm: true,
      return_url: 'https://shop.example/return', ...extra,
    });
  }

  async function chargeOf(intent: Stripe.PaymentIntent | string): Promise<Stripe.Charge> {
    const id = typeof intent === 'string' ? intent : intent.id;
    const retrieved = await stripe.paymentIntents.retrieve(id, { expand: ['latest_charge'] });
    return retrieved.latest_charge as Stripe.Charge;
  }

  async function decisionOf(chargeId: string): Promise<Record<string, unknown>> {
    const listed = await json('GET', `/v1/risk/decisions?charge=${chargeId}`);
    assert.equal(listed.status, 200, listed.body);
    const [decision] = listed.json.data as Array<Record<string, unknown>>;
    assert.ok(decision !== undefined, `a decision for ${chargeId}`);
    return decision;
  }

  test('an ordinary payment is scored by the model and allowed; the decision is stored with its inputs', async () => {
    const intent = await pay(2_500);
    assert.equal(intent.status, 'succeeded');
    const charge = await chargeOf(intent);
    const outcome = charge.outcome as Stripe.Charge.Outcome & { risk_score: number };
    assert.equal(outcome.type, 'authorized');
    assert.equal(outcome.risk_level, 'normal', JSON.stringify(await decisionOf(charge.id)));
    assert.ok(Number.isInteger(outcome.risk_score) && outcome.risk_score >= 0 && outcome.risk_score < 65, `score ${outcome.risk_score}`);
    const decision = await decisionOf(charge.id);
    assert.equal(decision.action, 'allow');
    assert.equal(decision.risk_score, outcome.risk_score);
    assert.equal(decision.degraded, false);
    assert.match(String(decision.model_version), /^sparkov-/);
    const inputs = decision.inputs as { attributes: Record<string, unknown>; features: number[] };
    assert.equal(inputs.attributes.amount, 2_500);
    assert.equal(inputs.attributes.amount_usd, 25);
    assert.equal(inputs.attributes.card_brand, 'visa');
    assert.equal(inputs.attributes.card_bin, '424242');
    assert.equal(inputs.attributes.ip_address, '127.0.0.1');
    assert.equal(inputs.attributes.ip_country, undefined, 'a loopback address has no country');
    assert.equal(inputs.features.length, 13);
    assert.equal(inputs.features[0], 25);
    const byId = await json('GET', `/v1/risk/decisions/${String(decision.id)}`);
    assert.equal(byId.json.charge, charge.id);
    assert.equal((await json('GET', `/v1/risk/decisions/${String(decision.id)}`, undefined, server.otherSecretKey)).status, 404);
  });

  test("test cards with a documented risk level: highest is blocked by Coffer's default rule before the acquirer", async () => {
    const error = await pay(3_000, 'pm_card_riskLevelHighest').then(() => undefined, (e: unknown) => e as Stripe.errors.StripeCardError);
    assert.ok(error !== undefined, 'the payment is refused');
    assert.equal(error.code, 'card_declined');
    assert.equal(error.decline_code, 'fraudulent');
    const intent = error.payment_intent as Stripe.PaymentIntent;
    assert.equal(intent.status, 'requires_payment_method');
    const charge = await chargeOf(intent.id);
    assert.equal(charge.status, 'failed');
    const outcome = charge.outcome as Stripe.Charge.Outcome & { risk_score: number };
    assert.equal(outcome.type, 'blocked');
    assert.equal(outcome.network_status, 'not_sent_to_network');
    assert.equal(outcome.reason, 'rule');
    assert.equal(outcome.rule, 'coffer_default_block_highest');
    assert.equal(outcome.risk_level, 'highest');
    const sent = await server.database.db.selectFrom('sandbox_card_payments').select('id').where('merchant_reference', '=', charge.id).execute();
    assert.equal(sent.length, 0, 'the acquirer never saw the blocked payment');
    const elevated = await pay(3_000, 'pm_card_riskLevelElevated');
    assert.equal(elevated.status, 'succeeded', 'elevated is not blocked by the default rules');
    assert.equal((await chargeOf(elevated)).outcome?.risk_level, 'elevated');
  });

  test('a rule blocks: the outcome names it, velocity counts the block, nothing reaches the acquirer', async () => {
    const other = stripeClient(server, server.otherSecretKey);
    const setOther = await rawRequest(server, 'POST', '/v1/risk/rule_sets', {
      key: server.otherSecretKey, contentType: 'application/json',
      body: JSON.stringify({ rules: [{ id: 'no_big_usd', text: 'block if :amount_usd: >= 900' }, { id: 'watch', text: 'review if :amount: > 0', mode: 'shadow' }] }),
    });
    assert.equal(setOther.status, 200, setOther.body);
    const refused = await other.paymentIntents.create({ amount: 95_000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
      .then(() => undefined, (e: unknown) => e as Stripe.errors.StripeCardError);
    assert.equal(refused?.decline_code, 'fraudulent');
    const charge = await other.charges.retrieve((refused?.payment_intent as Stripe.PaymentIntent).latest_charge as string);
    assert.equal(charge.outcome?.type, 'blocked');
    assert.equal(charge.outcome?.reason, 'rule');
    assert.equal((charge.outcome as { rule?: string }).rule, 'no_big_usd');
    const decisions = await rawRequest(server, 'GET', `/v1/risk/decisions?charge=${charge.id}`, { key: server.otherSecretKey });
    const [decision] = decisions.json.data as Array<{ result: { matched: string[]; shadow_matches: string[]; reasons: string[] } }>;
    assert.deepEqual(decision?.result.matched, ['no_big_usd']);
    assert.deepEqual(decision?.result.shadow_matches, ['watch'], 'the shadow rule was evaluated and logged, not deciding');
    assert.match(decision?.result.reasons[0] ?? '', /^rule no_big_usd: block if :amount_usd: >= 900/);
    const blocked = await server.database.db.selectFrom('velocity_entries').select('outcome').where('charge_id', '=', charge.id).execute();
    assert.ok(blocked.length > 0 && blocked.every((row) => row.outcome === 'blocked'));
    // The same merchant's smaller payment passes: the shadow rule decides nothing.
    const small = await other.paymentIntents.create({ amount: 500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    assert.equal(small.status, 'succeeded');
  });

  test('review: the payment is authorized and held; capture is refused until approved; approve captures; reject cancels', async () => {
    await setRules([{ id: 'review_big', text: 'review if :amount: >= 50000' }, { id: 'step_up_mid', text: 'request_step_up if :amount: >= 20000 and :amount: < 50000' }]);
    const held = await pay(60_000);
    assert.equal(held.status, 'requires_capture', 'automatic capture is held for the review');
    const charge = await chargeOf(held);
    assert.equal(charge.outcome?.type, 'manual_review');
    assert.equal(charge.outcome?.reason, 'rule');
    assert.equal(charge.captured, false);
    assert.match(String(charge.review), /^prv_/);
    assert.equal(held.review, charge.review, 'the PaymentIntent names its review, as the charge does');
    const queue = await stripe.reviews.list();
    const review = queue.data.find((entry) => entry.charge === charge.id);
    assert.ok(review !== undefined, 'the held payment is in the queue');
    assert.equal(review.open, true);
    assert.equal(review.reason, 'rule');
    assert.match(((review as unknown as { reasons: string[] }).reasons[0]) ?? '', /^rule review_big/);
    const early = await stripe.paymentIntents.capture(held.id).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(early?.code, 'payment_intent_unexpected_state');
    assert.match(early?.message ?? '', /held for review/);
    assert.equal((await stripe.paymentIntents.retrieve(held.id)).status, 'requires_capture', 'the refused capture changed nothing');
    const approved = await stripe.reviews.approve(review.id);
    assert.equal(approved.open, false);
    assert.equal(approved.closed_reason, 'approved');
    const captured = await stripe.paymentIntents.retrieve(held.id);
    assert.deepEqual([captured.status, captured.review], ['succeeded', review.id], 'approving captured it; the review stays named');
    const capturable = await stripe.events.list({ type: 'payment_intent.amount_capturable_updated' });
    assert.equal((capturable.data.find((event) => (event.data.object as { id: string }).id === held.id)?.data.object as Stripe.PaymentIntent | undefined)?.review, review.id,
      'the event carries it too');
    const again = await stripe.reviews.approve(review.id).then(() => undefined, (e: unknown) => e as Stripe.errors.StripeError);
    assert.equal(again?.code, 'review_closed');

    const rejected = await pay(70_000);
    const rejectedCharge = await chargeOf(rejected);
    const reject = await json('POST', `/v1/reviews/${String(rejectedCharge.review)}/reject`);
    assert.equal(reject.status, 200, reject.body);
    assert.equal(reject.json.closed_reason, 'canceled');
    const canceled = await stripe.paymentIntents.retrieve(rejected.id);
    assert.equal(canceled.status, 'canceled');
    assert.equal(canceled.cancellation_reason, 'fraudulent');
    const open = await stripe.reviews.list();
    assert.ok(!open.data.some((entry) => entry.id === review.id || entry.id === rejectedCharge.review), 'closed reviews leave the queue');
    const labels = await server.database.db.selectFrom('risk_labels').selectAll().where('charge_id', 'in', [charge.id, rejectedCharge.id]).execute();
    assert.deepEqual(labels.map((label) => [label.charge_id, label.fraud, label.source]).sort(), [[charge.id, false, 'review'], [rejectedCharge.id, true, 'review']].sort());
    const events = await server.database.db.selectFrom('events').select('type').where('type', 'in', ['review.opened', 'review.closed']).execute();
    assert.ok(events.filter((event) => event.type === 'review.opened').length >= 2);
    assert.ok(events.filter((event) => event.type === 'review.closed').length >= 2);

    // A held payment the merchant cancels itself: its review closes as canceled, with no label (nobody judged it).
    const dropped = await pay(80_000);
    const droppedCharge = await chargeOf(dropped);
    await stripe.paymentIntents.cancel(dropped.id);
    const droppedReview = await stripe.reviews.retrieve(String(droppedCharge.review));
    assert.equal(droppedReview.open, false);
    assert.equal(droppedReview.closed_reason, 'canceled');
    assert.equal((await server.database.db.selectFrom('risk_labels').select('charge_id').where('charge_id', '=', droppedCharge.id).execute()).length, 0);

    // Step-up: the card is sent for 3-D Secure (frictionless for this card), and the charge says so.
    const stepped = await pay(30_000);
    assert.equal(stepped.status, 'succeeded');
    const steppedCharge = await chargeOf(stepped);
    assert.equal(steppedCharge.payment_method_details?.card?.three_d_secure?.result, 'authenticated');
    assert.equal((await decisionOf(steppedCharge.id)).action, 'request_step_up');
    // Off session, nobody can be asked: the payment is held for review instead.
    const customer = await stripe.customers.create({ email: 'buyer@example.com' });
    const setup = await stripe.setupIntents.create({ customer: customer.id, payment_method: 'pm_card_visa', confirm: true, usage: 'off_session' });
    const offSession = await pay(30_000, setup.payment_method as string, { customer: customer.id, off_session: true });
    assert.equal(offSession.status, 'requires_capture');
    assert.equal((await chargeOf(offSession)).outcome?.type, 'manual_review');
    await setRules([]);
  });

  test('the backtest says what a proposed rule set would have decided over stored decisions; bad rules change nothing', async () => {
    const proposal = [{ id: 'block_mid', text: 'block if :amount: >= 20000' }, { id: 'allow_small', text: 'allow if :amount: < 1000' }];
    const backtest = await json('POST', '/v1/risk/rule_sets/backtest', { rules: proposal, limit: 500 });
    assert.equal(backtest.status, 200, backtest.body);
    const rows = await server.database.db.selectFrom('risk_decisions').select(['action', 'inputs']).where('merchant_id', '=', server.merchantId).where('livemode', '=', false).execute();
    assert.equal(backtest.json.decisions, rows.length);
    const expectedBlocks = rows.filter((row) => ((row.inputs as { attributes: { amount: number } }).attributes.amount) >= 20_000).length;
    assert.ok(expectedBlocks >= 3);
    assert.equal((backtest.json.actions as Record<string, number>).block, expectedBlocks);
    assert.equal((backtest.json.rules as Record<string, { decided: number }>).block_mid?.decided, expectedBlocks);
    assert.ok(Number(backtest.json.changed) > 0);
    const labelled = backtest.json.labelled as Record<string, number>;
    assert.equal(labelled.fraud, 1, 'the rejected review is a fraud label');
    assert.equal(labelled.fraud_stopped, 1, 'the proposal blocks it');
    assert.equal(labelled.legitimate_blocked, 1, 'and blocks the approved one too');
    const bad = await json('POST', '/v1/risk/rule_sets/backtest', { rules: [{ id: 'x', text: 'block if :amount: >' }] });
    assert.equal(bad.status, 400);
    assert.equal((bad.json.error as { param: string }).param, 'rules[0][text]');
  });

  test('the labelled history exports as a training file the trainer reads (rejected review = fraud, approved = not)', async () => {
    const exported = await exportTrainingRows(server.database.db, { livemode: false, merchantId: server.merchantId, minAgeDays: 0 });
    const matureOnly = await exportTrainingRows(server.database.db, { livemode: false, merchantId: server.merchantId });
    assert.equal(matureOnly.rows, 2, 'unlabelled payments younger than 30 days are left out; the two reviewed ones stay');
    const table = parseCsv(exported.csv);
    assert.deepEqual(table.header, [...exportColumns]);
    assert.equal(exported.rows, table.rows.length);
    const blocked = await server.database.db.selectFrom('risk_decisions').select('charge_id').where('merchant_id', '=', server.merchantId).where('action', '=', 'block').execute();
    assert.ok(blocked.length > 0 && blocked.every((row) => !exported.csv.includes(row.charge_id)), 'blocked payments are not training rows');
    const column = (name: string) => table.header.indexOf(name);
    const labelled = table.rows.filter((row) => row[column('label_source')] === 'review');
    assert.equal(labelled.length, 2);
    assert.deepEqual(labelled.map((row) => row[column('is_fraud')]).sort(), ['0', '1']);
    assert.equal(exported.frauds, 1);
    const encoding = fitSparkovEncoding(table, 'is_fraud', 1);
    const features = extractSparkovFeatures(table, encoding);
    assert.equal(features.rowCount, table.rows.length);
    assert.ok(Math.abs((features.x[4] as number) - 78.2) < 0.01, 'the imputed distance comes back from the coordinates');
  });

  test('every stored decision replays to the identical result', async () => {
    const replay = await json('POST', '/v1/risk/decisions/replay', { limit: 1_000 });
    assert.equal(replay.status, 200, replay.body);
    assert.ok(Number(replay.json.replayed) >= 7, replay.body);
    assert.equal(replay.json.identical, replay.json.replayed, JSON.stringify(replay.json.different));
  });

  test('settings: the merchant category feeds the model; a malformed one is refused and changes nothing', async () => {
    const bad = await json('POST', '/v1/risk/settings', { merchant_category: '59x9' });
    assert.equal(bad.status, 400);
    assert.equal((bad.json.error as { param: string }).param, 'merchant_category');
    assert.equal((await json('GET', '/v1/risk/settings')).json.merchant_category, null);
    const set = await json('POST', '/v1/risk/settings', { merchant_category: '5999' });
    assert.equal(set.json.merchant_category, '5999');
    const intent = await pay(1_200);
    const decision = await decisionOf((await chargeOf(intent)).id);
    assert.equal((decision.inputs as { attributes: Record<string, unknown> }).attributes.merchant_category, '5999');
    assert.ok(!(decision.inputs as { imputed: string[] }).imputed.includes('category_risk'));
  });

  // A rejection cancels the held payment, and the cancellation closes the review; one that stopped there (a crash, a
  // lost connection) is finished by its retry. So is a rejection of a review its payment's cancellation closed.
  test('rejecting a review its cancellation closed records the rejection and its label; approving it is refused', async () => {
    await setRules([{ id: 'review_big', text: 'review if :amount: >= 50000' }]);
    const held = await pay(85_000);
    const charge = await chargeOf(held);
    await stripe.paymentIntents.cancel(held.id);
    const review = String(charge.review);
    const labels = () => server.database.db.selectFrom('risk_labels').select(['fraud', 'source']).where('charge_id', '=', charge.id).execute();
    assert.deepEqual(await labels(), [], 'a cancellation alone judges nothing');
    assert.equal((await json('POST', `/v1/reviews/${review}/approve`)).status, 400, 'a closed review cannot be approved');
    const rejected = await json('POST', `/v1/reviews/${review}/reject`);
    assert.equal(rejected.status, 200, rejected.body);
    assert.deepEqual([rejected.json.open, rejected.json.closed_reason], [false, 'canceled']);
    assert.deepEqual((await labels()).map((label) => [label.fraud, label.source]), [[true, 'review']]);
    const recorded = await server.database.db.selectFrom('audit_log').select('action').where('object_id', '=', review).where('action', '=', 'review.reject').execute();
    assert.equal(recorded.length, 1);
  });

  test('a held payment whose card option asks for manual capture stays authorized when approved; the merchant captures it', async () => {
    await setRules([{ id: 'review_big', text: 'review if :amount: >= 50000' }]);
    const manual = await pay(65_000, 'pm_card_visa', { payment_method_options: { card: { capture_method: 'manual' } } });
    const review = String((await chargeOf(manual)).review);
    assert.match(review, /^prv_/);
    assert.equal((await stripe.reviews.approve(review)).closed_reason, 'approved');
    const authorized = await stripe.paymentIntents.retrieve(manual.id);
    assert.deepEqual([authorized.status, authorized.amount_capturable], ['requires_capture', 65_000], 'approving did not capture it');
    assert.equal((await stripe.paymentIntents.capture(manual.id)).status, 'succeeded', 'the merchant captures it');
  });
});

describe('risk decisions when the model or the counters fail', () => {
  for (const fault of ['model_fail', 'velocity_fail', 'velocity_slow'] as const) {
    test(`${fault}: the payment goes through, decided by the rules alone and marked degraded`, async () => {
      const server = await startTestServer({ env: { COFFER_RISK_FAULT: fault }, configEnv: { COFFER_RISK_VELOCITY_BUDGET_MS: '50' } });
      try {
        const rules = await rawRequest(server, 'POST', '/v1/risk/rule_sets', {
          key: server.secretKey, contentType: 'application/json',
          body: JSON.stringify({ rules: [{ id: 'big', text: 'block if :amount: > 100000' }, { id: 'score', text: 'block if :risk_score: >= 0' }, { id: 'velocity', text: 'block if :card_payments_24h: >= 0' }] }),
        });
        assert.equal(rules.status, 200, rules.body);
        const intent = await server.stripe.paymentIntents.create({ amount: 2_000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
          .catch((e: unknown) => (e as Stripe.errors.StripeCardError).payment_intent as Stripe.PaymentIntent);
        const charge = await server.stripe.charges.retrieve(intent.latest_charge as string);
        const rows = await server.database.db.selectFrom('risk_decisions').selectAll().where('charge_id', '=', charge.id).execute();
        const [row] = rows;
        assert.ok(row !== undefined);
        assert.equal(row.degraded, true);
        assert.equal((charge.outcome as { risk_level: string }).risk_level, 'not_assessed', 'no score without the model (or the card history it needs)');
        if (fault === 'model_fail') {
          // Counters were read: a velocity rule fires; the model rule cannot.
          assert.equal(intent.status, 'requires_payment_method');
          assert.equal(row.rule_id, 'velocity');
          assert.deepEqual((row.result as { degraded_reasons: string[] }).degraded_reasons, ['model_failed']);
        } else {
          assert.equal(intent.status, 'succeeded', 'neither the score rule nor the velocity rule can fire');
          assert.deepEqual((row.result as { degraded_reasons: string[] }).degraded_reasons, [fault === 'velocity_fail' ? 'velocity_failed' : 'velocity_over_budget']);
        }
        const big = await server.stripe.paymentIntents.create({ amount: 200_000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true })
          .then(() => undefined, (e: unknown) => e as Stripe.errors.StripeCardError);
        assert.equal(big?.decline_code, 'fraudulent', 'rules on what the payment itself says still decide');
        const replay = await rawRequest(server, 'POST', '/v1/risk/decisions/replay', { key: server.secretKey, contentType: 'application/json', body: '{}' });
        assert.equal(replay.status, 200, replay.body);
        assert.equal(replay.json.replayed, 2, replay.body);
        assert.equal(replay.json.identical, 2, 'degraded decisions replay as they were made');
      } finally {
        await server.close();
      }
    });
  }
});
