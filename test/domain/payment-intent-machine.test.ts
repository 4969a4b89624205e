import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { renderStateDocs } from '../../src/domain/payment-intent-docs.ts';
import {
  isTerminal,
  paymentIntentEvents,
  paymentIntentStatuses,
  paymentIntentTransitions,
  statusesAllowing,
  transition,
  type PaymentIntentStatus,
} from '../../src/domain/payment-intent-machine.ts';

// Goal: the PaymentIntent state machine is exactly Stripe's, closed, and documented from the same table.
describe('PaymentIntent state machine', () => {
  test('random event sequences only ever move along the table, and terminal states absorb everything', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...paymentIntentEvents), { maxLength: 40 }), (events) => {
        let status: PaymentIntentStatus = 'requires_payment_method';
        for (const event of events) {
          const result = transition(status, event);
          const expected: PaymentIntentStatus | undefined = paymentIntentTransitions[status][event];
          if (expected === undefined) {
            assert.equal(result.ok, false);
          } else {
            assert.deepEqual(result, { ok: true, status: expected });
            status = expected;
          }
          assert.ok(paymentIntentStatuses.includes(status));
        }
      }),
      { numRuns: 500 },
    );
  });

  test('every status is reachable from a new PaymentIntent, and only succeeded and canceled are terminal', () => {
    const seen = new Set<PaymentIntentStatus>(['requires_payment_method']);
    const queue: PaymentIntentStatus[] = ['requires_payment_method'];
    while (queue.length > 0) {
      const from = queue.shift() as PaymentIntentStatus;
      for (const to of Object.values(paymentIntentTransitions[from])) {
        if (to !== undefined && !seen.has(to)) {
          seen.add(to);
          queue.push(to);
        }
      }
    }
    assert.deepEqual([...seen].sort(), [...paymentIntentStatuses].sort());
    assert.deepEqual(paymentIntentStatuses.filter(isTerminal), ['succeeded', 'canceled']);
  });

  test('money moves only on the transitions Stripe allows', () => {
    assert.deepEqual(statusesAllowing('capture'), ['requires_capture']);
    assert.deepEqual(statusesAllowing('confirm'), ['requires_confirmation']);
    assert.deepEqual(statusesAllowing('cancel'), ['requires_payment_method', 'requires_confirmation', 'requires_action', 'requires_capture']);
    assert.equal(transition('succeeded', 'cancel').ok, false);
    assert.equal(transition('canceled', 'confirm').ok, false);
    assert.equal(transition('processing', 'capture').ok, false);
  });

  test('docs/payment-intent-states.md is generated from the table', () => {
    const onDisk = fs.readFileSync(new URL('../../docs/payment-intent-states.md', import.meta.url), 'utf8');
    assert.equal(onDisk, renderStateDocs(), 'run `npm run docs:states` after changing the table');
  });
});
