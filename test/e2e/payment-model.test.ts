import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type Stripe from 'stripe';
import { assertLedgerConsistent } from '../support/ledger.ts';
import { startTestServer, stripeClient, type TestServer } from '../support/server.ts';

type Card = 'pm_card_visa' | 'pm_card_chargeDeclined' | 'pm_card_bypassPending';

interface ModelIntent {
  id: string;
  status: string;
  amount: number;
  manual: boolean;
  capturable: number;
  received: number;
  /** The amount first authorized, and the tries to raise it (incremental authorization). */
  authorized: number;
  increments: number;
}

type Command =
  | { kind: 'create'; amount: number; manual: boolean; card: Card | null; confirm: boolean }
  | { kind: 'confirm'; target: number; card: Card }
  | { kind: 'capture'; target: number; share: number }
  | { kind: 'cancel'; target: number }
  | { kind: 'update'; target: number; amount: number }
  | { kind: 'increment'; target: number; factor: number };

const card = fc.constantFrom<Card>('pm_card_visa', 'pm_card_chargeDeclined', 'pm_card_bypassPending');
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), amount: fc.integer({ min: 50, max: 100_000 }), manual: fc.boolean(), card: fc.option(card, { nil: null }), confirm: fc.boolean() }),
  fc.record({ kind: fc.constant('confirm' as const), target: fc.nat(), card }),
  fc.record({ kind: fc.constant('capture' as const), target: fc.nat(), share: fc.double({ min: 0, max: 1.3, noNaN: true }) }),
  fc.record({ kind: fc.constant('cancel' as const), target: fc.nat() }),
  fc.record({ kind: fc.constant('update' as const), target: fc.nat(), amount: fc.integer({ min: 50, max: 100_000 }) }),
  fc.record({ kind: fc.constant('increment' as const), target: fc.nat(), factor: fc.double({ min: 0.8, max: 2.6, noNaN: true }) }),
);

/** The model's answer to an attempt with `card`: what Stripe documents for each test card. */
function attempt(intent: ModelIntent, chosen: Card): void {
  if (chosen === 'pm_card_chargeDeclined') {
    intent.status = 'requires_payment_method';
  } else if (intent.manual) {
    intent.status = 'requires_capture';
    intent.capturable = intent.amount;
    intent.authorized = intent.amount;
  } else {
    intent.status = 'succeeded';
    intent.received = intent.amount;
  }
}

async function settle<T>(call: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: Stripe.errors.StripeError }> {
  try {
    return { ok: true, value: await call };
  } catch (error) {
    return { ok: false, error: error as Stripe.errors.StripeError };
  }
}

// Goal: any sequence of API calls on any payments moves each PaymentIntent exactly as the model (Stripe's
// documented behaviour) says, refuses what the model refuses without changing anything, and leaves a ledger
// that verifies with refunded <= captured <= authorized on every charge.
describe('random sequences of payment operations', () => {
  let server: TestServer;
  let stripe: Stripe;

  before(async () => {
    server = await startTestServer();
    stripe = stripeClient(server, server.secretKey, { maxNetworkRetries: 0 });
  });
  after(async () => server.close());

  async function run(model: ModelIntent[], step: Command): Promise<void> {
    if (step.kind === 'create') {
      const confirm = step.confirm && step.card !== null;
      const result = await settle(stripe.paymentIntents.create({
        amount: step.amount,
        currency: 'usd',
        capture_method: step.manual ? 'manual' : 'automatic',
        // Every hold may be raised later (the sandbox's test cards here are Visa).
        ...(step.manual ? { payment_method_options: { card: { request_incremental_authorization: 'if_available' as const } } } : {}),
        ...(step.card === null ? {} : { payment_method: step.card }),
        ...(confirm ? { confirm: true } : {}),
      }));
      const id = result.ok ? result.value.id : result.error.payment_intent?.id;
      assert.ok(id !== undefined, 'a created PaymentIntent is returned, even when its first attempt is declined');
      const intent: ModelIntent = { id, status: step.card === null ? 'requires_payment_method' : 'requires_confirmation', amount: step.amount, manual: step.manual, capturable: 0, received: 0, authorized: 0, increments: 0 };
      if (confirm && step.card !== null) attempt(intent, step.card);
      assert.equal(result.ok, !(confirm && step.card === 'pm_card_chargeDeclined'));
      model.push(intent);
      return;
    }
    const intent = model[step.target % Math.max(model.length, 1)];
    if (intent === undefined) return;
    const expected = { ...intent };
    let allowed = false;
    let issuerDeclines = false;
    let call: Promise<unknown>;
    switch (step.kind) {
      case 'confirm':
        allowed = ['requires_payment_method', 'requires_confirmation'].includes(intent.status);
        if (allowed) attempt(expected, step.card);
        call = stripe.paymentIntents.confirm(intent.id, { payment_method: step.card });
        allowed &&= step.card !== 'pm_card_chargeDeclined';
        break;
      case 'capture': {
        const amount = Math.max(1, Math.floor(intent.capturable * step.share));
        // A capture below the currency's minimum (0.50 usd) is refused, as at Stripe.
        allowed = intent.status === 'requires_capture' && amount <= intent.capturable && amount >= 50;
        if (allowed) Object.assign(expected, { status: 'succeeded', received: amount, capturable: 0 });
        call = stripe.paymentIntents.capture(intent.id, { amount_to_capture: amount });
        break;
      }
      case 'cancel':
        allowed = ['requires_payment_method', 'requires_confirmation', 'requires_capture'].includes(intent.status);
        if (allowed) Object.assign(expected, { status: 'canceled', capturable: 0 });
        call = stripe.paymentIntents.cancel(intent.id);
        break;
      case 'increment': {
        // The new total: above the hold and within the tries, it reaches the issuer, which approves up to twice the
        // amount first authorized and declines (a try used, nothing else changed) beyond.
        const amount = Math.floor(intent.amount * step.factor);
        const sent = intent.status === 'requires_capture' && amount > intent.amount && intent.increments < 10;
        allowed = sent && amount <= 2 * intent.authorized;
        issuerDeclines = sent && !allowed;
        if (sent) expected.increments += 1;
        if (allowed) Object.assign(expected, { amount, capturable: amount });
        call = stripe.paymentIntents.incrementAuthorization(intent.id, { amount });
        break;
      }
      case 'update':
        allowed = ['requires_payment_method', 'requires_confirmation'].includes(intent.status);
        if (allowed) expected.amount = step.amount;
        call = stripe.paymentIntents.update(intent.id, { amount: step.amount });
        break;
    }
    const result = await settle(call);
    assert.equal(result.ok, allowed, `${step.kind} on ${intent.status}: ${result.ok ? 'accepted' : result.error.message}`);
    if (!result.ok && step.kind === 'confirm' && step.card === 'pm_card_chargeDeclined' && expected.status === 'requires_payment_method') {
      assert.equal(result.error.code, 'card_declined');
    }
    if (!result.ok && step.kind === 'increment') {
      assert.equal(result.error.code === 'card_declined', issuerDeclines, `increment refused with ${result.error.code}: ${result.error.message}`);
    }
    Object.assign(intent, expected);
    const actual = await stripe.paymentIntents.retrieve(intent.id);
    assert.deepEqual(
      { status: actual.status, amount: actual.amount, capturable: actual.amount_capturable, received: actual.amount_received },
      { status: intent.status, amount: intent.amount, capturable: intent.capturable, received: intent.received },
    );
  }

  test('the server follows the model and the ledger verifies', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 14 }), async (commands) => {
        const model: ModelIntent[] = [];
        for (const step of commands) await run(model, step);
        await assertLedgerConsistent(server.database.db);
      }),
      { numRuns: 25 },
    );
  });
});
