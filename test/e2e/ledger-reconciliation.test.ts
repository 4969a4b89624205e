import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql, type Kysely, type Transaction } from 'kysely';
import { verifyLedger, type LedgerViolation } from '../../src/ops/ledger-verify.ts';
import type { Database } from '../../src/store/database.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { runJobsOnce } from '../../src/jobs/job-runner.ts';
import { TestClock } from '../support/clock.ts';

class Rollback extends Error {}

/** The violations `verifyLedger` finds after `tamper`, in a transaction that is then rolled back. */
async function violationsAfter(db: Kysely<Database>, tamper: (tx: Transaction<Database>) => Promise<unknown>): Promise<LedgerViolation[]> {
  let found: LedgerViolation[] = [];
  await assert.rejects(
    db.transaction().execute(async (tx) => {
      await tamper(tx);
      found = (await verifyLedger(tx)).violations;
      throw new Rollback();
    }),
    (error: unknown) => {
      if (error instanceof Rollback) return true;
      throw error;
    },
  );
  return found;
}

// Goal: `coffer ledger verify` finds money no payment explains. A transfer posted through ledger_apply (which the
// application's own database role may call) or rewritten by the database owner keeps the books balanced, so only
// reconciling each transfer with the charge, refund, dispute or customer balance transaction behind it shows it.
describe('ledger reconciliation', () => {
  let server: TestServer;
  let chargeId: string;
  let paymentIntentId: string;
  let lostDispute: { id: string; charge: string; intent: string };
  let declined: { charge: string; intent: string };
  let canceledCharge: string;
  let goodwill: string;
  const clock = new TestClock();

  before(async () => {
    server = await startTestServer({ clock });
    const { stripe } = server;
    // Every kind of transfer a merchant's ordinary day writes: automatic capture, immediate settlement, a partial
    // manual capture of a raised hold (its rest released), a refund, a canceled hold, goodwill credit.
    const paid = await stripe.paymentIntents.create({ amount: 4000, currency: 'usd', payment_method: 'pm_card_visa', confirm: true });
    await stripe.paymentIntents.create({ amount: 2500, currency: 'usd', payment_method: 'pm_card_bypassPending', confirm: true });
    const held = await stripe.paymentIntents.create({
      amount: 3000, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true,
      payment_method_options: { card: { request_incremental_authorization: 'if_available' } },
    });
    await stripe.paymentIntents.incrementAuthorization(held.id, { amount: 3500 });
    await stripe.paymentIntents.capture(held.id, { amount_to_capture: 1800 });
    await stripe.refunds.create({ payment_intent: paid.id, amount: 700 });
    const canceled = await stripe.paymentIntents.create({ amount: 900, currency: 'usd', payment_method: 'pm_card_visa', capture_method: 'manual', confirm: true });
    await stripe.paymentIntents.cancel(canceled.id);
    const customer = await stripe.customers.create({ email: 'goodwill@example.com' });
    const credit = await stripe.customers.createBalanceTransaction(customer.id, { amount: -300, currency: 'usd', description: 'Late parcel' });
    // A dispute the merchant lost (its amount and fee withdrawn), and a declined card (nothing moved).
    const disputed = await stripe.paymentIntents.create({ amount: 2000, currency: 'usd', payment_method: 'pm_card_createDispute', confirm: true });
    clock.offsetMs += 5_000;
    await runJobsOnce(server.coffer.services);
    const [dispute] = (await stripe.disputes.list({ payment_intent: disputed.id })).data;
    assert.ok(dispute !== undefined, 'the acquirer opened a dispute');
    await stripe.disputes.close(dispute.id);
    const refused = await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', payment_method: 'pm_card_chargeDeclined', confirm: true })
      .then(() => undefined, (error: { payment_intent?: { id: string; latest_charge: string } }) => error.payment_intent);
    assert.ok(refused !== undefined, 'the card was declined');
    paymentIntentId = paid.id;
    chargeId = String(paid.latest_charge);
    lostDispute = { id: dispute.id, charge: String(dispute.charge), intent: disputed.id };
    declined = { charge: refused.latest_charge, intent: refused.id };
    canceledCharge = String(canceled.latest_charge);
    goodwill = credit.id;
  });
  after(async () => {
    await server.close();
  });

  const apply = (tx: Transaction<Database>, command: Record<string, unknown>, charge: string | null = null, intent: string | null = null) =>
    sql`SELECT ledger_apply(${server.merchantId}, false, 'usd', ${JSON.stringify([command])}::jsonb, ${intent}, ${charge})`.execute(tx);
  const checks = (violations: LedgerViolation[]) => [...new Set(violations.map((violation) => violation.check))].sort();

  test('a ledger written only by payments, refunds and credits reconciles', async () => {
    const reasons = await server.database.db.selectFrom('ledger_transfers').select('reason').distinct().execute();
    assert.deepEqual(reasons.map((row) => row.reason).sort(),
      ['authorization', 'capture', 'customer_credit', 'dispute', 'dispute_fee', 'increment', 'refund', 'release', 'settlement'], 'the day wrote every ordinary kind of transfer');
    assert.deepEqual((await verifyLedger(server.database.db)).violations, []);
  });

  test('a capture with no charge, straight to available funds, is named twice', async () => {
    const violations = await violationsAfter(server.database.db, (tx) =>
      apply(tx, { kind: 'single', key: 'forged-1', debit: 'provider_clearing', credit: 'merchant_available', amount: 100000, reason: 'capture' }));
    assert.deepEqual(checks(violations), ['transfer_explained', 'transfer_purpose']);
    assert.ok(violations.some((v) => v.detail === 'transfer forged-1 (capture) is not explained: it names no charge'), JSON.stringify(violations));
    assert.ok(violations.some((v) => v.detail.startsWith('transfer forged-1: a single capture transfer from provider_clearing to merchant_available')));
    // The bookkeeping alone holds: the forgery is balanced.
    await violationsAfter(server.database.db, async (tx) => {
      await apply(tx, { kind: 'single', key: 'forged-1', debit: 'provider_clearing', credit: 'merchant_available', amount: 100000, reason: 'capture' });
      assert.deepEqual((await verifyLedger(tx, 'bookkeeping')).violations, []);
    });
  });

  test('well-shaped transfers that no object explains are each named', async () => {
    const cases: Array<[string, Record<string, unknown>, string | null, string]> = [
      ['a capture under a key that is not its charge\'s',
        { kind: 'single', key: 'forged-2', debit: 'provider_clearing', credit: 'merchant_incoming', amount: 500, reason: 'capture' }, 'charge',
        "its key is not its charge's for this kind of transfer"],
      ['a reservation under a key no increment makes',
        { kind: 'pending', key: 'CHARGE:authorization:x', debit: 'provider_clearing', credit: 'merchant_incoming', amount: 100, reason: 'authorization' }, 'charge',
        "its key is not its charge's for this kind of transfer"],
      ['a settlement under another key than its charge\'s',
        { kind: 'single', key: 'forged-settlement', debit: 'merchant_incoming', credit: 'merchant_available', amount: 100, reason: 'settlement' }, 'charge',
        'it is not its charge\'s settlement'],
      ['a refund no refund stands behind',
        { kind: 'single', key: 're_forged:refund', debit: 'merchant_incoming', credit: 'provider_clearing', amount: 100, reason: 'refund' }, 'charge',
        'no refund of its charge for this amount'],
      ['a dispute withdrawal no dispute stands behind',
        { kind: 'single', key: 'dp_forged:withdrawal', debit: 'merchant_incoming', credit: 'provider_clearing', amount: 100, reason: 'dispute' }, 'charge',
        'no dispute of its charge for this amount'],
      ['goodwill credit no customer balance transaction stands behind',
        { kind: 'single', key: 'cbtxn_forged:credit', debit: 'merchant_available', credit: 'customer_credit', amount: 100, reason: 'customer_credit' }, null,
        'no customer balance transaction of this merchant, currency and amount'],
      ['a charge of another PaymentIntent',
        { kind: 'single', key: 'CHARGE:release', debit: 'provider_clearing', credit: 'merchant_incoming', amount: 100, reason: 'capture' }, 'charge',
        'its charge belongs to another merchant, mode, currency or PaymentIntent'],
    ];
    for (const [name, command, charge, problem] of cases) {
      const key = String(command.key).replace('CHARGE', chargeId);
      const intent = name === 'a charge of another PaymentIntent' ? null : paymentIntentId;
      const violations = await violationsAfter(server.database.db, (tx) =>
        apply(tx, { ...command, key }, charge === null ? null : chargeId, charge === null ? null : intent));
      const named = violations.filter((v) => v.check === 'transfer_explained');
      assert.deepEqual(named.map((v) => v.detail), [`transfer ${key} (${String(command.reason)}) is not explained: ${problem}`], `${name}: ${JSON.stringify(violations)}`);
    }
  });

  // Goal: transfers the serving role can post through ledger_apply, well formed and balanced, that repeat or invent
  // money an object's state does not make: each is named, by its key and by what the object says it should be.
  test('repeated or invented transfers of a real dispute, balance transaction or declined charge are named', async () => {
    const { db } = server.database;
    const posted = (commands: Array<Record<string, unknown>>, charge: string | null, intent: string | null) => violationsAfter(db, async (tx) => {
      for (const command of commands) await apply(tx, command, charge, intent);
    });
    // The lost dispute's amount and fee given back three times, under keys of its own making.
    const reinstated = await posted([1, 2, 3].flatMap((n) => [
      { kind: 'single', key: `${lostDispute.id}:reinstatement-x${n}`, debit: 'provider_clearing', credit: 'merchant_incoming', amount: 2000, reason: 'dispute_reinstatement' },
      { kind: 'single', key: `${lostDispute.id}:fee_reinstatement-x${n}`, debit: 'fees', credit: 'merchant_incoming', amount: 1500, reason: 'dispute_fee_reinstatement' },
    ]), lostDispute.charge, lostDispute.intent);
    assert.deepEqual(checks(reinstated), ['objects_match_ledger', 'transfer_explained'], JSON.stringify(reinstated));
    assert.ok(reinstated.some((v) => v.detail === `transfer ${lostDispute.id}:reinstatement-x1 (dispute_reinstatement) is not explained: its key is not its dispute's`));
    // Under its own keys, but the dispute was lost: nothing comes back.
    const ownKeys = await posted([
      { kind: 'single', key: `${lostDispute.id}:reinstatement`, debit: 'provider_clearing', credit: 'merchant_incoming', amount: 2000, reason: 'dispute_reinstatement' },
    ], lostDispute.charge, lostDispute.intent);
    assert.deepEqual(ownKeys.map((v) => v.detail),
      [`transfer ${lostDispute.id}:reinstatement of 2000 should not exist: no dispute or customer balance transaction in its state makes it`]);
    // The goodwill credit taken back three times under new keys.
    const replayed = await posted([1, 2, 3].map((n) =>
      ({ kind: 'single', key: `${goodwill}:debit-x${n}`, debit: 'customer_credit', credit: 'merchant_available', amount: 300, reason: 'customer_debit' })), null, null);
    assert.deepEqual(checks(replayed), ['objects_match_ledger', 'transfer_explained'], JSON.stringify(replayed));
    // A capture on the declined charge, under that charge's own key.
    const onDeclined = await posted([
      { kind: 'single', key: `${declined.charge}:authorization`, debit: 'provider_clearing', credit: 'merchant_incoming', amount: 5000, reason: 'capture' },
    ], declined.charge, declined.intent);
    assert.deepEqual(checks(onDeclined), ['charges_match_ledger', 'transfer_explained'], JSON.stringify(onDeclined));
    assert.ok(onDeclined.some((v) => v.detail === `transfer ${declined.charge}:authorization (capture) is not explained: its charge did not succeed, so it moved no money`));
  });

  // Goal: what the database owner can do behind the triggers, with the account counters recounted so that the
  // bookkeeping balances: each deletion or double resolution is still named.
  test('transfers deleted or resolved twice by the database owner, counters recounted, are named', async () => {
    const { db } = server.database;
    const recount = sql`UPDATE ledger_accounts a SET
        debits_posted = coalesce((SELECT sum(amount) FROM ledger_transfers WHERE debit_account_id = a.id AND kind IN ('single', 'post_pending')), 0),
        credits_posted = coalesce((SELECT sum(amount) FROM ledger_transfers WHERE credit_account_id = a.id AND kind IN ('single', 'post_pending')), 0),
        debits_pending = coalesce((SELECT sum(amount) FROM ledger_transfers p WHERE debit_account_id = a.id AND kind = 'pending'
          AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id)), 0),
        credits_pending = coalesce((SELECT sum(amount) FROM ledger_transfers p WHERE credit_account_id = a.id AND kind = 'pending'
          AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id)), 0)`;
    const behindTriggers = (change: (tx: Transaction<Database>) => Promise<unknown>) => violationsAfter(db, async (tx) => {
      await sql`ALTER TABLE ledger_transfers DISABLE TRIGGER USER`.execute(tx);
      await change(tx);
      await sql`ALTER TABLE ledger_transfers ENABLE TRIGGER USER`.execute(tx);
      await sql`SELECT set_config('coffer.ledger_writer', 'on', true)`.execute(tx);
      await recount.execute(tx);
    });
    const deleted = (keys: string[]) => behindTriggers((tx) => tx.deleteFrom('ledger_transfers').where('transfer_key', 'in', keys).execute());
    const kept = await deleted([`${lostDispute.id}:withdrawal`, `${lostDispute.id}:fee`]);
    assert.deepEqual(kept.map((v) => v.detail).sort(), [
      `transfer ${lostDispute.id}:fee of 1500 is missing: its dispute or customer balance transaction says it was made`,
      `transfer ${lostDispute.id}:withdrawal of 2000 is missing: its dispute or customer balance transaction says it was made`,
    ]);
    const unreleased = await deleted([`${canceledCharge}:release`]);
    assert.deepEqual(checks(unreleased), ['charges_match_ledger'], JSON.stringify(unreleased));
    assert.deepEqual(checks(await deleted([`${goodwill}:credit`])), ['objects_match_ledger']);
    // The partial capture's reservation voided as well as posted, with the index that forbids it dropped.
    const twice = await behindTriggers(async (tx) => {
      await sql`DROP INDEX ledger_transfers_resolved_once`.execute(tx);
      const capture = await tx.selectFrom('ledger_transfers').select(['pending_id', 'charge_id', 'payment_intent_id', 'merchant_id', 'livemode', 'currency', 'debit_account_id', 'credit_account_id', 'created_at'])
        .where('kind', '=', 'post_pending').where('reason', '=', 'capture').executeTakeFirstOrThrow();
      const pending = await tx.selectFrom('ledger_transfers').select('amount').where('id', '=', capture.pending_id as bigint).executeTakeFirstOrThrow();
      await tx.insertInto('ledger_transfers').values({ ...capture, transfer_key: `${String(capture.charge_id)}:release`, kind: 'void_pending', reason: 'release', amount: pending.amount } as never).execute();
    });
    assert.ok(checks(twice).includes('pending_resolved_once'), JSON.stringify(twice));
    const noAccounts = await violationsAfter(db, async (tx) => {
      await sql`SET LOCAL session_replication_role = replica`.execute(tx);
      await tx.deleteFrom('ledger_accounts').execute();
    });
    assert.ok(checks(noAccounts).includes('transfer_accounts_exist'), JSON.stringify(noAccounts));
  });

  // Goal: a settlement must move exactly what its charge left pending, in either direction, and only once the charge
  // has settled: anything else leaves money pending for good, or makes available money the charge never left.
  test('a raised hold whose chain of reservations does not match its charge is named', async () => {
    const { db } = server.database;
    const raised = await db.selectFrom('charges').select('id').where('authorization_increments', '=', 1).executeTakeFirstOrThrow();
    const violations = await violationsAfter(db, (tx) => tx.updateTable('charges').set({ increment_attempts: 2, authorization_increments: 2 }).where('id', '=', raised.id).execute());
    assert.deepEqual(violations.filter((v) => v.check === 'increments_chained').map((v) => v.detail), [`charge ${raised.id}: 1 increment voids for 2 raises`]);
  });

  test('a settlement that does not clear what its charge left pending, or of a charge not settled, is named', async () => {
    const settle = (amount: number, debit: string, credit: string) =>
      ({ kind: 'single', key: `${chargeId}:settlement`, debit, credit, amount, reason: 'settlement' });
    const named = async (command: Record<string, unknown>, settled: boolean) => (await violationsAfter(server.database.db, async (tx) => {
      if (settled) await tx.updateTable('charges').set({ settled: true }).where('id', '=', chargeId).execute();
      await apply(tx, command, chargeId, paymentIntentId);
    })).filter((v) => v.check === 'settlement_clears_charge').map((v) => v.detail);
    // The charge captured 4000 and refunded 700 before settling: 3300 is what it left pending.
    assert.deepEqual(await named(settle(3300, 'merchant_incoming', 'merchant_available'), true), [], 'the right settlement');
    assert.deepEqual(await named(settle(9000, 'merchant_incoming', 'merchant_available'), true), [`charge ${chargeId} has settled but leaves -5700 in the merchant's pending funds`]);
    assert.deepEqual(await named(settle(100, 'merchant_available', 'merchant_incoming'), true), [`charge ${chargeId} has settled but leaves 3400 in the merchant's pending funds`]);
    assert.deepEqual(await named(settle(3300, 'merchant_incoming', 'merchant_available'), false), [`charge ${chargeId} has not settled but has a settlement transfer`]);
    const settledUntouched = await violationsAfter(server.database.db, (tx) => tx.updateTable('charges').set({ settled: true }).where('id', '=', chargeId).execute());
    assert.deepEqual(settledUntouched.map((v) => v.detail), [`charge ${chargeId} has settled but leaves 3300 in the merchant's pending funds`], 'marked settled without moving its funds');
  });

  test('a transfer rewritten by the database owner to pay out uncleared funds is named', async () => {
    const violations = await violationsAfter(server.database.db, async (tx) => {
      const transfer = await tx.selectFrom('ledger_transfers').select(['id', 'credit_account_id', 'amount'])
        .where('transfer_key', '=', `${chargeId}:authorization`).executeTakeFirstOrThrow();
      const available = await tx.selectFrom('ledger_accounts').select('id')
        .where('merchant_id', '=', server.merchantId).where('livemode', '=', false).where('currency', '=', 'usd').where('code', '=', 'merchant_available')
        .executeTakeFirstOrThrow();
      await sql`ALTER TABLE ledger_transfers DISABLE TRIGGER USER`.execute(tx);
      await sql`UPDATE ledger_transfers SET credit_account_id = ${available.id} WHERE id = ${transfer.id}`.execute(tx);
      await sql`ALTER TABLE ledger_transfers ENABLE TRIGGER USER`.execute(tx);
      await sql`SELECT set_config('coffer.ledger_writer', 'on', true)`.execute(tx);
      await sql`UPDATE ledger_accounts SET credits_posted = credits_posted + CASE WHEN id = ${available.id} THEN 1 ELSE -1 END * ${transfer.amount}::bigint
                WHERE id IN (${available.id}, ${transfer.credit_account_id})`.execute(tx);
    });
    assert.deepEqual(checks(violations), ['transfer_purpose'], JSON.stringify(violations));
    assert.equal(violations[0]?.detail, `transfer ${chargeId}:authorization: a single capture transfer from provider_clearing to merchant_available is not one the chart of accounts allows`);
  });
});
