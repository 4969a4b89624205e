import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { rawRequest, startTestServer, type TestServer } from '../support/server.ts';

// Goal: when requests race on one payment, exactly one of the conflicting changes wins, the loser is told so, and
// the money (acquirer, charge, ledger) reflects the winner only.
describe('concurrent changes to one payment', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await assertLedgerConsistent(server.database.db);
    await server.close();
  });

  const post = (path: string, body = '', key?: string) =>
    rawRequest(server, 'POST', path, { key: server.secretKey, body, headers: key === undefined ? {} : { 'idempotency-key': key } });

  async function authorized(amount: number): Promise<string> {
    const intent = await server.stripe.paymentIntents.create({ amount, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
    assert.equal(intent.status, 'requires_capture');
    return intent.id;
  }

  test('capture and cancel of one authorization: exactly one wins, 20 times over', async () => {
    const outcomes = { captured: 0, canceled: 0 };
    for (let round = 0; round < 20; round += 1) {
      const id = await authorized(5000);
      const [capture, cancel] = await Promise.all([post(`/v1/payment_intents/${id}/capture`), post(`/v1/payment_intents/${id}/cancel`)]);
      const winners = [capture, cancel].filter((response) => response.status === 200);
      assert.equal(winners.length, 1, `round ${round}: ${capture.status} ${capture.body.slice(0, 200)} / ${cancel.status} ${cancel.body.slice(0, 200)}`);
      const loser = capture.status === 200 ? cancel : capture;
      assert.ok([400, 429].includes(loser.status));
      assert.ok(['lock_timeout', 'payment_intent_unexpected_state'].includes(String((loser.json.error as Record<string, unknown>).code)));
      if (loser.status === 429) assert.equal(loser.headers['stripe-should-retry'], 'true', 'the SDKs retry a lock timeout');
      const final = await server.stripe.paymentIntents.retrieve(id);
      const sandbox = await server.database.db.selectFrom('sandbox_card_payments').select(['status', 'amount_captured'])
        .where('merchant_reference', '=', String(final.latest_charge)).executeTakeFirstOrThrow();
      const resolutions = await server.database.db.selectFrom('ledger_transfers').select('kind')
        .where('payment_intent_id', '=', id).where('kind', 'in', ['post_pending', 'void_pending']).execute();
      assert.equal(resolutions.length, 1, 'the hold is resolved exactly once in the ledger');
      if (capture.status === 200) {
        outcomes.captured += 1;
        assert.equal(final.status, 'succeeded');
        assert.equal(sandbox.status, 'captured');
        assert.equal(resolutions[0]?.kind, 'post_pending');
      } else {
        outcomes.canceled += 1;
        assert.equal(final.status, 'canceled');
        assert.equal(sandbox.status, 'voided');
        assert.equal(resolutions[0]?.kind, 'void_pending');
      }
    }
    assert.equal(outcomes.captured + outcomes.canceled, 20);
  });

  test('two captures with different keys capture once', async () => {
    const id = await authorized(6000);
    const responses = await Promise.all([
      post(`/v1/payment_intents/${id}/capture`, 'amount_to_capture=6000', 'cap-a'),
      post(`/v1/payment_intents/${id}/capture`, 'amount_to_capture=6000', 'cap-b'),
    ]);
    assert.equal(responses.filter((response) => response.status === 200).length, 1);
    const posts = await server.database.db.selectFrom('ledger_transfers').select('amount')
      .where('payment_intent_id', '=', id).where('kind', '=', 'post_pending').execute();
    assert.deepEqual(posts, [{ amount: 6000n }]);
  });

  test('ten confirmations of one PaymentIntent with different keys authorize once', async () => {
    const created = await server.stripe.paymentIntents.create({ amount: 2100, currency: 'usd', payment_method: 'pm_card_visa' });
    const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => post(`/v1/payment_intents/${created.id}/confirm`, '', `confirm-${i}`)));
    assert.equal(responses.filter((response) => response.status === 200).length, 1);
    for (const response of responses.filter((r) => r.status !== 200)) {
      assert.equal(response.status, 400);
      assert.equal((response.json.error as Record<string, unknown>).code, 'payment_intent_unexpected_state');
    }
    const charges = await server.database.db.selectFrom('charges').select('id').where('payment_intent_id', '=', created.id).execute();
    assert.equal(charges.length, 1);
  });

  test('200 payments at once for one merchant (its ledger accounts are hot) all succeed, without deadlock', async () => {
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        post('/v1/payment_intents', `amount=${1000 + i}&currency=usd&payment_method=pm_card_visa&confirm=true`, `hot-${i}`),
      ),
    );
    const failures = responses.filter((response) => response.status !== 200);
    assert.deepEqual(failures.map((response) => response.body), []);
    const expected = responses.reduce((sum, _response, i) => sum + 1000 + i, 0);
    const incoming = await server.database.db.selectFrom('ledger_accounts').select('credits_posted')
      .where('merchant_id', '=', server.merchantId).where('code', '=', 'merchant_incoming').where('currency', '=', 'usd').executeTakeFirstOrThrow();
    assert.ok(incoming.credits_posted >= BigInt(expected));
    await assertLedgerConsistent(server.database.db);
  });
});
