import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

// Goal: a merchant who detaches a saved card, or deletes its customer, while a payment with that card is under
// way stops that payment: the statement that records the attempt checks the card again, so the confirmation is
// refused whether or not the card was charged before. The risk engine is slowed (a test fault) to hold the
// confirmation between its read of the card and its write, and the detach lands in that gap.
describe('detaching a card while a payment with it is under way', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    server = await startTestServer({ env: { COFFER_RISK_FAULT: 'velocity_slow' }, configEnv: { COFFER_RISK_VELOCITY_BUDGET_MS: '1500' } });
    stripe = server.stripe;
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  for (const chargedBefore of [true, false]) {
    for (const how of ['detach', 'delete the customer'] as const) {
      test(`${how} during the confirmation of a card ${chargedBefore ? 'charged before' : 'never charged'}: refused, nothing charged`, async () => {
        const customer = await stripe.customers.create({ email: 'race@example.com' });
        const card = await stripe.paymentMethods.create({ type: 'card', card: { number: '4242424242424242', exp_month: 12, exp_year: 2031, cvc: '123' } });
        await stripe.paymentMethods.attach(card.id, { customer: customer.id });
        if (chargedBefore) {
          const first = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: customer.id, payment_method: card.id, confirm: true, off_session: true });
          assert.equal(first.status, 'succeeded');
        }
        const intent = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', customer: customer.id });
        const confirming = stripe.paymentIntents.confirm(intent.id, { payment_method: card.id, off_session: true })
          .then(() => undefined, (error: unknown) => error as Stripe.errors.StripeError);
        await new Promise((resolve) => setTimeout(resolve, 600));
        if (how === 'detach') await stripe.paymentMethods.detach(card.id);
        else await stripe.customers.del(customer.id);
        const refused = await confirming;
        assert.equal(refused?.code, 'payment_method_unexpected_state', String(refused?.message));
        assert.match(refused?.message ?? '', /detached from its customer/);
        const charges = await stripe.charges.list({ payment_intent: intent.id });
        assert.deepEqual(charges.data.filter((charge) => charge.status === 'succeeded'), [], 'nothing charged');
        assert.equal((await stripe.paymentIntents.retrieve(intent.id)).status, 'requires_payment_method');
      });
    }
  }
});
