import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { runJobsOnce } from '../../src/jobs/job-runner.ts';
import { NotificationRejected } from '../../src/connectors/connector.ts';
import { recordDisputeOpened } from '../../src/flows/disputes.ts';
import { assertLedgerConsistent, stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';
import { TestClock } from '../support/clock.ts';

// Goal: a disputed payment (Stripe's test card 4000000000000259) withdraws the amount and a fee from the
// merchant; the merchant answers with evidence or accepts; a won dispute gives both back, a lost one keeps them.
// An inquiry (4000000000001976) withdraws nothing unless the issuer escalates it to a chargeback.
describe('disputes', () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ clock, providerTimeoutMs: 1_500 });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  async function disputedPayment(amount: number, paymentMethod = 'pm_card_createDispute'): Promise<{ intent: Stripe.PaymentIntent; dispute: Stripe.Dispute }> {
    const intent = await stripe.paymentIntents.create({ amount, currency: 'usd', payment_method: paymentMethod, confirm: true });
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
    const disputes = await stripe.disputes.list({ payment_intent: intent.id });
    assert.equal(disputes.data.length, 1, 'the acquirer opened one dispute');
    return { intent, dispute: disputes.data[0] as Stripe.Dispute };
  }

  /** The acquirer's notifications due by now (and the deliveries they cause) are processed. */
  async function acquirerCatchesUp(): Promise<void> {
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
  }

  const eventTypes = async (disputeId: string) => (await stripe.events.list({ limit: 100 })).data
    .filter((event) => (event.data.object as { id?: string }).id === disputeId).map((event) => event.type as string).reverse();

  const pendingUsd = async () => (await stripe.balance.retrieve()).pending.find((item) => item.currency === 'usd')?.amount ?? 0;

  test('pm_card_createDisputeProductNotReceived is disputed for a product not received, Visa reason 13.1', async () => {
    const { dispute } = await disputedPayment(2500, 'pm_card_createDisputeProductNotReceived');
    assert.deepEqual([dispute.reason, dispute.status, dispute.amount], ['product_not_received', 'needs_response', 2500]);
    assert.equal(dispute.network_reason_code, '13.1');
  });

  test('opening a dispute withdraws the amount and the fee; winning it gives both back', async () => {
    const before = await pendingUsd();
    const { intent, dispute } = await disputedPayment(6000);
    assert.equal(dispute.status, 'needs_response');
    assert.equal(dispute.amount, 6000);
    assert.equal(dispute.reason, 'fraudulent');
    assert.equal(dispute.charge, intent.latest_charge);
    assert.deepEqual([dispute.payment_method_details?.card?.brand, dispute.payment_method_details?.card?.network], ['visa', 'visa'], 'the disputed charge\'s card');
    assert.deepEqual([dispute.evidence.receipt, dispute.evidence.enhanced_evidence, dispute.evidence_details.submission_method], [null, {}, 'not_submitted']);
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).disputed, true);
    assert.equal(await pendingUsd(), before + 6000 - 6000 - 1500, 'paid, then amount and fee withdrawn');
    const withEvidence = await stripe.disputes.update(dispute.id, { evidence: { customer_name: 'Ada', product_description: 'A lamp' } });
    assert.equal(withEvidence.status, 'needs_response');
    assert.equal(withEvidence.evidence.customer_name, 'Ada');
    assert.equal(withEvidence.evidence_details.has_evidence, true);
    const submitted = await stripe.disputes.update(dispute.id, { evidence: { uncategorized_text: 'Delivered, signed for.' }, submit: true });
    assert.equal(submitted.status, 'under_review');
    assert.equal(submitted.evidence.customer_name, 'Ada', 'evidence accumulates');
    assert.equal(submitted.evidence_details.submission_count, 1);
    assert.equal(submitted.evidence_details.submission_method, 'manual');
    await assert.rejects(stripe.disputes.update(dispute.id, { evidence: { customer_name: 'Bob' } }), (error: Stripe.errors.StripeError) => error.code === 'dispute_unexpected_state');
    const sandboxDispute = await server.database.db.selectFrom('disputes').select('provider_reference').where('id', '=', dispute.id).executeTakeFirstOrThrow();
    await server.coffer.services.connectors.sandboxes.card.decideDispute(sandboxDispute.provider_reference, 'won');
    await runJobsOnce(server.coffer.services);
    assert.equal((await stripe.disputes.retrieve(dispute.id)).status, 'won');
    assert.equal(await pendingUsd(), before + 6000, 'amount and fee reinstated');
    const types = (await stripe.events.list({ limit: 100 })).data.filter((event) => (event.data.object as { id?: string }).id === dispute.id).map((event) => event.type);
    for (const type of ['charge.dispute.created', 'charge.dispute.funds_withdrawn', 'charge.dispute.updated', 'charge.dispute.closed', 'charge.dispute.funds_reinstated']) {
      assert.ok((types as string[]).includes(type), type);
    }
    await assertLedgerConsistent(server.database.db);
  });

  test('a lost dispute keeps the funds withdrawn; accepting closes it as lost', async () => {
    const lost = await disputedPayment(3000);
    await stripe.disputes.update(lost.dispute.id, { submit: true, evidence: { uncategorized_text: 'x' } });
    const reference = await server.database.db.selectFrom('disputes').select('provider_reference').where('id', '=', lost.dispute.id).executeTakeFirstOrThrow();
    const before = await pendingUsd();
    await server.coffer.services.connectors.sandboxes.card.decideDispute(reference.provider_reference, 'lost');
    await runJobsOnce(server.coffer.services);
    assert.equal((await stripe.disputes.retrieve(lost.dispute.id)).status, 'lost');
    assert.equal(await pendingUsd(), before);

    const accepted = await disputedPayment(2000);
    const closed = await stripe.disputes.close(accepted.dispute.id);
    assert.equal(closed.status, 'lost');
    await assert.rejects(stripe.disputes.close(accepted.dispute.id), (error: Stripe.errors.StripeError) => error.code === 'dispute_unexpected_state');
  });

  test('evidence the acquirer refuses (it decided the dispute before Coffer heard) is not saved, nor the metadata sent with it', async () => {
    const { dispute } = await disputedPayment(1800);
    await stripe.disputes.update(dispute.id, { evidence: { customer_name: 'Ada' } });
    const reference = await server.database.db.selectFrom('disputes').select('provider_reference').where('id', '=', dispute.id).executeTakeFirstOrThrow();
    await server.coffer.services.connectors.sandboxes.card.decideDispute(reference.provider_reference, 'lost');
    const before = await stripe.disputes.retrieve(dispute.id);
    const eventsBefore = await eventTypes(dispute.id);
    await assert.rejects(stripe.disputes.update(dispute.id, { evidence: { customer_name: 'Mallory' }, metadata: { k: 'v' }, submit: true }), (error: Stripe.errors.StripeError) => {
      assert.equal(error.statusCode, 400);
      assert.equal(error.code, 'dispute_unexpected_state');
      assert.match(error.message, /acquirer refused the evidence/);
      return true;
    });
    const after = await stripe.disputes.retrieve(dispute.id);
    assert.equal(after.evidence.customer_name, 'Ada', 'the refused evidence was not saved');
    assert.deepEqual(after.metadata, before.metadata);
    assert.equal(after.evidence_details.submission_count, before.evidence_details.submission_count);
    assert.deepEqual(await eventTypes(dispute.id), eventsBefore, 'no event for a change that did not happen');
  });

  test('evidence sent while the acquirer does not answer is kept, since it may have taken it', async () => {
    const { dispute } = await disputedPayment(1900);
    server.coffer.services.connectors.sandboxes.card.controls.delayAnswers(2_500);
    const send = () => rawRequest(server, 'POST', `/v1/disputes/${dispute.id}`, { key: server.secretKey, body: 'evidence[customer_name]=Grace&submit=true' });
    const sent = await send();
    assert.equal(sent.status, 503, sent.body);
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // the acquirer's late answer lands
    const kept = await stripe.disputes.retrieve(dispute.id);
    assert.equal(kept.evidence.customer_name, 'Grace', 'what was sent is never lost');
    assert.equal(kept.status, 'needs_response', 'the review waits for the acquirer\'s word');
    // Other evidence, now that the acquirer has the dispute under review, is refused, and nothing is undone.
    const other = await rawRequest(server, 'POST', `/v1/disputes/${dispute.id}`, { key: server.secretKey, body: 'evidence[customer_name]=Mallory&submit=true' });
    assert.equal(other.status, 400, other.body);
    assert.match(String((other.json.error as { message?: string }).message), /under_review/);
    assert.equal((await stripe.disputes.retrieve(dispute.id)).evidence.customer_name, 'Grace');
    // The same submission again (the merchant's retry) gets the answer the first one lost: under review, once.
    const again = await send();
    assert.equal(again.status, 200, again.body);
    assert.equal(again.json.status, 'under_review');
    const reviewed = await stripe.disputes.retrieve(dispute.id);
    assert.deepEqual([reviewed.status, reviewed.evidence.customer_name], ['under_review', 'Grace']);
    const submissions = await server.database.db.selectFrom('disputes').select('submission_count').where('id', '=', dispute.id).executeTakeFirstOrThrow();
    assert.equal(submissions.submission_count, 1, 'one submission, counted once');
  });

  test('a disputed charge cannot also be refunded, and notifications are applied once', async () => {
    const { intent, dispute } = await disputedPayment(2500);
    await assert.rejects(stripe.refunds.create({ payment_intent: intent.id }), (error: Stripe.errors.StripeError) => error.code === 'charge_disputed');
    const count = async () => (await server.database.db.selectFrom('disputes').select('id').where('charge_id', '=', intent.latest_charge as string).execute()).length;
    assert.equal(await count(), 1);
    await server.database.db.updateTable('sandbox_card_notifications').set({ delivered_at: null, due_at: new Date(0) }).execute();
    await runJobsOnce(server.coffer.services);
    assert.equal(await count(), 1, 'a notification delivered twice opens one dispute');
    assert.equal((await stripe.disputes.retrieve(dispute.id)).amount, 2500);
    // Another notice for the same charge, under another reference (a faulty or replaying acquirer), is refused:
    // a charge is disputed once, and its money withdrawn once.
    const before = { counts: await stateCounts(server.database.db), pending: await pendingUsd() };
    const again = await anotherDisputeNotice(intent.latest_charge as string, 2500n);
    await assert.rejects(recordDisputeOpened(server.coffer.services, again), (error: unknown) => error instanceof NotificationRejected && /would then exceed the 2500 captured/.test(error.message));
    assert.deepEqual({ counts: await stateCounts(server.database.db), pending: await pendingUsd() }, before, 'the refused notice changed nothing');
    assert.equal(await count(), 1);
    await assertLedgerConsistent(server.database.db);
  });

  /** A dispute notice as a verified acquirer message would give it, for a charge, under a reference never used. */
  async function anotherDisputeNotice(chargeId: string, amountMinor: bigint) {
    const charge = await server.database.db.selectFrom('charges').select(['provider_reference', 'currency']).where('id', '=', chargeId).executeTakeFirstOrThrow();
    return {
      type: 'dispute.created' as const, notificationId: `ntf_${chargeId}_again`, chargeReference: chargeId, paymentReference: String(charge.provider_reference),
      providerReference: `dispute_again_${chargeId}`, amountMinor, currency: charge.currency, status: 'needs_response' as const, reason: 'fraudulent', networkReasonCode: null,
    };
  }

  // The card network sees a refund before a chargeback the issuer has not filed yet: a fully refunded payment
  // cannot be disputed, and a partly refunded one only for the rest, so the shopper is never paid back twice.
  test('a payment refunded before its dispute is filed: in full, no dispute; in part, a dispute for the rest', async () => {
    const before = await pendingUsd();
    const full = await stripe.paymentIntents.create({ amount: 4000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    assert.equal((await stripe.refunds.create({ payment_intent: full.id })).status, 'succeeded');
    const part = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    assert.equal((await stripe.refunds.create({ payment_intent: part.id, amount: 2000 })).status, 'succeeded');
    await acquirerCatchesUp();
    assert.deepEqual((await stripe.disputes.list({ payment_intent: full.id })).data, [], 'no dispute of a fully refunded payment');
    assert.equal((await stripe.charges.retrieve(full.latest_charge as string)).disputed, false);
    const [dispute] = (await stripe.disputes.list({ payment_intent: part.id })).data;
    assert.equal(dispute?.amount, 3000, 'disputed: what was not refunded');
    assert.equal(await pendingUsd(), before + 4000 - 4000 + 5000 - 2000 - 3000 - 1500, 'the refunded part is never withdrawn again');
    // A second notice for the partly refunded charge, under another reference, is refused too.
    const counts = await stateCounts(server.database.db);
    await assert.rejects(recordDisputeOpened(server.coffer.services, await anotherDisputeNotice(part.latest_charge as string, 3000n)),
      (error: unknown) => error instanceof NotificationRejected && /would then exceed the 5000 captured/.test(error.message));
    assert.deepEqual(await stateCounts(server.database.db), counts);
    // Once the dispute is filed, the acquirer refuses a refund too (Coffer refuses it first: charge_disputed).
    const charge = await server.database.db.selectFrom('charges').select('provider_reference').where('id', '=', part.latest_charge as string).executeTakeFirstOrThrow();
    const refused = await server.coffer.services.connectors.sandboxes.card.refund({
      idempotency_key: `after-dispute-${part.id}`, payment: String(charge.provider_reference), reference: `re_after_${part.id}`, amount: 1000,
    });
    assert.deepEqual(refused.ok ? 'refunded' : [refused.httpStatus, refused.error.code], [409, 'charge_disputed']);
    await assertLedgerConsistent(server.database.db);
  });

  // Once the dispute's notice is due it is filed, even if Coffer has not heard yet: a refund reaching the acquirer
  // then is refused there, so the shopper is never paid back twice (by the refund and by the chargeback).
  test('a refund sent after the dispute is filed but before Coffer hears of it is refused by the acquirer; the shopper is paid back once', async () => {
    const before = await pendingUsd();
    const intent = await stripe.paymentIntents.create({ amount: 3500, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    clock.offsetMs += 5_000; // the notice is due, not yet delivered
    const refund = await stripe.refunds.create({ payment_intent: intent.id }).then((created) => [created.status, created.failure_reason], (error: Stripe.errors.StripeError) => [error.code]);
    assert.deepEqual(refund, ['failed', 'charge_for_pending_refund_disputed'], 'the acquirer refused the refund, with Stripe\'s reason');
    await runJobsOnce(server.coffer.services);
    const [dispute] = (await stripe.disputes.list({ payment_intent: intent.id })).data;
    assert.equal(dispute?.amount, 3500);
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).amount_refunded, 0);
    assert.equal(await pendingUsd(), before + 3500 - 3500 - 1500, 'paid back once, by the chargeback');
    await assertLedgerConsistent(server.database.db);
  });

  test('the dispute fee is 15.00 US dollars in the charge\'s currency: 2,200 on a yen payment, not 1,500 yen', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'jpy', payment_method: 'pm_card_createDispute', confirm: true });
    await acquirerCatchesUp();
    const [dispute] = (await stripe.disputes.list({ payment_intent: intent.id })).data;
    const [withdrawal] = dispute?.balance_transactions ?? [];
    assert.deepEqual([withdrawal?.currency, withdrawal?.amount, withdrawal?.fee, withdrawal?.net], ['jpy', -1000, 2200, -3200]);
    await assertLedgerConsistent(server.database.db);
  });

  test('evidence marked winning_evidence or losing_evidence decides a chargeback, as in Stripe test mode', async () => {
    const won = await disputedPayment(1200);
    const before = await pendingUsd();
    const submitted = await stripe.disputes.update(won.dispute.id, { evidence: { uncategorized_text: 'winning_evidence' }, submit: true });
    assert.equal(submitted.status, 'under_review');
    await acquirerCatchesUp();
    assert.equal((await stripe.disputes.retrieve(won.dispute.id)).status, 'won');
    assert.equal(await pendingUsd(), before + 1200 + 1500, 'amount and fee reinstated');

    const lost = await disputedPayment(1300);
    const beforeLost = await pendingUsd();
    await stripe.disputes.update(lost.dispute.id, { evidence: { uncategorized_text: 'losing_evidence' }, submit: true });
    await acquirerCatchesUp();
    assert.equal((await stripe.disputes.retrieve(lost.dispute.id)).status, 'lost');
    assert.equal(await pendingUsd(), beforeLost, 'nothing comes back');
    await assertLedgerConsistent(server.database.db);
  });

  test('an inquiry (4000000000001976) withdraws nothing; answered with winning evidence it closes as warning_closed', async () => {
    const before = await pendingUsd();
    const { intent, dispute } = await disputedPayment(4000, 'pm_card_createDisputeInquiry');
    assert.equal(dispute.status, 'warning_needs_response');
    assert.equal(dispute.payment_method_details?.card?.case_type, 'inquiry');
    assert.equal(dispute.is_charge_refundable, false);
    assert.deepEqual(dispute.balance_transactions, [], 'an inquiry moves no money');
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).disputed, true);
    assert.equal(await pendingUsd(), before + 4000, 'paid; nothing withdrawn for an inquiry');
    await assert.rejects(stripe.refunds.create({ payment_intent: intent.id }), (error: Stripe.errors.StripeError) => error.code === 'charge_disputed');

    const submitted = await stripe.disputes.update(dispute.id, { evidence: { uncategorized_text: 'winning_evidence', customer_name: 'Ada' }, submit: true });
    assert.equal(submitted.status, 'warning_under_review');
    assert.equal(submitted.evidence_details.submission_count, 1);
    await assert.rejects(stripe.disputes.close(dispute.id), (error: Stripe.errors.StripeError) => error.code === 'dispute_unexpected_state');
    await acquirerCatchesUp();
    const closed = await stripe.disputes.retrieve(dispute.id);
    assert.equal(closed.status, 'warning_closed');
    assert.equal(closed.is_charge_refundable, true);
    assert.equal(await pendingUsd(), before + 4000, 'still nothing withdrawn, nothing reinstated');
    assert.deepEqual(await eventTypes(dispute.id), ['charge.dispute.created', 'charge.dispute.updated', 'charge.dispute.closed'], 'evidence saved and submitted: one change');
    const refund = await stripe.refunds.create({ payment_intent: intent.id, amount: 1000 });
    assert.equal(refund.status, 'succeeded', 'a charge whose inquiry closed can be refunded');
    await assertLedgerConsistent(server.database.db);
  });

  test('an inquiry the issuer escalates becomes a chargeback: funds withdrawn then, and reinstated when won', async () => {
    const before = await pendingUsd();
    const { dispute } = await disputedPayment(5000, 'pm_card_createDisputeInquiry');
    await stripe.disputes.update(dispute.id, { evidence: { uncategorized_text: 'losing_evidence' }, submit: true });
    await acquirerCatchesUp();
    const escalated = await stripe.disputes.retrieve(dispute.id);
    assert.equal(escalated.status, 'needs_response');
    assert.equal(escalated.payment_method_details?.card?.case_type, 'chargeback');
    assert.ok((escalated.evidence_details.due_by ?? 0) > (dispute.evidence_details.due_by ?? 0), 'a new deadline for the chargeback');
    assert.equal(await pendingUsd(), before + 5000 - 5000 - 1500, 'amount and fee withdrawn at escalation');
    const withdrawal = (await stripe.balanceTransactions.list({ source: dispute.id })).data;
    assert.deepEqual([withdrawal.length, withdrawal[0]?.net], [1, -6500]);
    assert.deepEqual(escalated.balance_transactions, withdrawal, 'the escalated dispute shows its withdrawal');
    const escalation = (await stripe.events.list({ type: 'charge.dispute.updated', limit: 100 })).data
      .find((event) => (event.data.object as Stripe.Dispute).id === dispute.id && (event.data.object as Stripe.Dispute).status === 'needs_response');
    assert.deepEqual((escalation?.data.object as Stripe.Dispute | undefined)?.balance_transactions, withdrawal, 'and so does the escalation event');
    assert.deepEqual((escalation?.data.previous_attributes as { balance_transactions?: unknown } | undefined)?.balance_transactions, [], 'which had none before');
    // The escalation notification delivered again changes nothing.
    await server.database.db.updateTable('sandbox_card_notifications').set({ delivered_at: null, due_at: new Date(0) }).execute();
    await acquirerCatchesUp();
    assert.equal(await pendingUsd(), before + 5000 - 5000 - 1500, 'withdrawn once');

    const submitted = await stripe.disputes.update(dispute.id, { evidence: { uncategorized_text: 'winning_evidence' }, submit: true });
    assert.equal(submitted.status, 'under_review');
    await acquirerCatchesUp();
    assert.equal((await stripe.disputes.retrieve(dispute.id)).status, 'won');
    assert.equal(await pendingUsd(), before + 5000, 'amount and fee reinstated');
    const types = await eventTypes(dispute.id);
    assert.equal(types.filter((type) => type === 'charge.dispute.funds_withdrawn').length, 1);
    assert.equal(types.filter((type) => type === 'charge.dispute.funds_reinstated').length, 1);
    await assertLedgerConsistent(server.database.db);
  });

  test('accepting an inquiry closes it as warning_closed with nothing withdrawn', async () => {
    const before = await pendingUsd();
    const { dispute } = await disputedPayment(700, 'pm_card_createDisputeInquiry');
    const closed = await stripe.disputes.close(dispute.id);
    assert.equal(closed.status, 'warning_closed');
    assert.equal(await pendingUsd(), before + 700);
    await assert.rejects(stripe.disputes.close(dispute.id), (error: Stripe.errors.StripeError) => error.code === 'dispute_unexpected_state');
    await assert.rejects(stripe.disputes.update(dispute.id, { evidence: { customer_name: 'x' } }), (error: Stripe.errors.StripeError) => error.code === 'dispute_unexpected_state');
    assert.equal((await stripe.disputes.retrieve(dispute.id)).status, 'warning_closed', 'the refused calls changed nothing');
  });
});

// The acquirer sandbox's side of a refund that crosses a dispute: a refund that changes a dispute's notice while
// the notice is being sent. The notice sent is the one the refund left, never the one it replaced. Its own server:
// the notices this test sends go to the test, not to Coffer.
describe('a dispute notice crossing a refund', () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ clock });
    stripe = server.stripe;
  });
  after(async () => server.close());

  test('a dispute notice changed by a refund while its delivery starts goes out as the refund left it', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 3000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    const db = server.database.db;
    const notice = await db.selectFrom('sandbox_card_notifications').select(['id', 'payload']).where('delivered_at', 'is', null)
      .where('payload', 'like', '%"dispute.created"%').orderBy('due_at', 'desc').executeTakeFirstOrThrow();
    const sandbox = server.coffer.services.connectors.sandboxes.card;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let locked: () => void = () => undefined;
    const holding = new Promise<void>((resolve) => { locked = resolve; });
    // A refund's transaction (as the sandbox's own would): the notice locked, its amount cut to what is left.
    const refund = db.transaction().execute(async (tx) => {
      const row = await tx.selectFrom('sandbox_card_notifications').select('payload').where('id', '=', notice.id).forUpdate().executeTakeFirstOrThrow();
      const body = JSON.parse(row.payload) as { dispute: { amount: number } };
      body.dispute.amount = 2000;
      await tx.updateTable('sandbox_card_notifications').set({ payload: JSON.stringify(body) }).where('id', '=', notice.id).execute();
      locked();
      await gate;
    });
    await holding;
    clock.offsetMs += 5_000;
    const sent: string[] = [];
    const delivery = sandbox.deliverDueNotifications(async (body) => { sent.push(body); }, 100);
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    await Promise.all([refund, delivery]);
    const mine = sent.map((body) => JSON.parse(body) as { type: string; dispute?: { amount: number; payment: string } }).filter((body) => body.type === 'dispute.created' && body.dispute !== undefined);
    assert.ok(mine.length >= 1, 'the notice was sent');
    assert.deepEqual(mine.filter((body) => body.dispute?.amount === 3000), [], 'the notice as the refund left it, never as it was before');
    assert.ok(mine.some((body) => body.dispute?.amount === 2000));
    // Coffer never heard of it (the deliveries went to this test): the charge stays as it was.
    assert.equal((await stripe.charges.retrieve(intent.latest_charge as string)).disputed, false);
  });
  test('a dispute notice whose delivery failed was filed all the same: a refund after it is refused, the notice unchanged', async () => {
    const intent = await stripe.paymentIntents.create({ amount: 2600, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    const db = server.database.db;
    const notice = async () => db.selectFrom('sandbox_card_notifications').select(['payload', 'attempts']).where('delivered_at', 'is', null)
      .where('payload', 'like', `%${intent.latest_charge as string}%`).where('payload', 'like', '%"dispute.created"%').executeTakeFirstOrThrow();
    clock.offsetMs += 5_000;
    // Coffer is unreachable: the delivery fails and is due again later.
    await server.coffer.services.connectors.sandboxes.card.deliverDueNotifications(async () => { throw new Error('unreachable'); }, 100);
    const failed = await notice();
    assert.equal(failed.attempts, 1);
    const refund = await stripe.refunds.create({ payment_intent: intent.id, amount: 600 });
    assert.deepEqual([refund.status, refund.failure_reason], ['failed', 'charge_for_pending_refund_disputed']);
    assert.equal((await notice()).payload, failed.payload, 'the notice Coffer may already have seen is not rewritten');
  });
});
