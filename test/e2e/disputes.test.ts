import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { runJobsOnce } from '../../src/jobs/job-runner.ts';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

class TestClock {
  offsetMs = 0;
  nowMs(): number {
    return Date.now() + this.offsetMs;
  }
}

// Goal: a disputed payment (Stripe's test card 4000000000000259) withdraws the amount and a fee from the
// merchant; the merchant answers with evidence or accepts; a won dispute gives both back, a lost one keeps them.
describe('disputes', () => {
  let server: TestServer;
  let stripe: Stripe;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ clock });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  async function disputedPayment(amount: number): Promise<{ intent: Stripe.PaymentIntent; dispute: Stripe.Dispute }> {
    const intent = await stripe.paymentIntents.create({ amount, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
    const disputes = await stripe.disputes.list({ payment_intent: intent.id });
    assert.equal(disputes.data.length, 1, 'the acquirer opened one dispute');
    return { intent, dispute: disputes.data[0] as Stripe.Dispute };
  }

  const pendingUsd = async () => (await stripe.balance.retrieve()).pending.find((item) => item.currency === 'usd')?.amount ?? 0;

  test('opening a dispute withdraws the amount and the fee; winning it gives both back', async () => {
    const before = await pendingUsd();
    const { intent, dispute } = await disputedPayment(6000);
    assert.equal(dispute.status, 'needs_response');
    assert.equal(dispute.amount, 6000);
    assert.equal(dispute.reason, 'fraudulent');
    assert.equal(dispute.charge, intent.latest_charge);
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

  test('a disputed charge cannot also be refunded, and notifications are applied once', async () => {
    const { intent, dispute } = await disputedPayment(2500);
    await assert.rejects(stripe.refunds.create({ payment_intent: intent.id }), (error: Stripe.errors.StripeError) => error.code === 'charge_disputed');
    const count = async () => (await server.database.db.selectFrom('disputes').select('id').where('charge_id', '=', intent.latest_charge as string).execute()).length;
    assert.equal(await count(), 1);
    await server.database.db.updateTable('sandbox_card_notifications').set({ delivered_at: null, due_at: new Date(0) }).execute();
    await runJobsOnce(server.coffer.services);
    assert.equal(await count(), 1, 'a notification delivered twice opens one dispute');
    assert.equal((await stripe.disputes.retrieve(dispute.id)).amount, 2500);
    await assertLedgerConsistent(server.database.db);
  });
});
