import { sql } from 'kysely';
import type { SyncResult } from '../connectors/connector.ts';
import { findCurrency } from '../domain/currency.ts';
import { captureKey, recordCaptureOutcome } from '../flows/capture-payment-intent.ts';
import { recordCancelOutcome, voidKey } from '../flows/cancel-payment-intent.ts';
import { incrementKey, recordIncrementOutcome } from '../flows/increment-authorization.ts';
import type { Services } from '../flows/context.ts';
import { abandonedChallenge, cardAcquirerOf, recordAttemptOutcome, type AttemptResolution } from '../flows/record-attempt-outcome.ts';
import { limits } from '../limits.ts';
import { riskBlockDecline } from '../flows/risk-decision.ts';
import { assert } from '../platform/assert.ts';
import type { ChargeRow, PaymentIntentRow } from '../store/database.ts';
import { handleEach } from './handle-each.ts';
import { jobTrail } from './system-trail.ts';


function cutoff(services: Services): Date {
  return new Date(services.clock.nowMs() - limits.inFlightRecoveryAfterMs);
}

/** Decides an attempt's fate from the provider's record; `undefined` while the provider cannot say. */
export async function resolveAttempt(services: Services, charge: ChargeRow): Promise<AttemptResolution | undefined> {
  const currency = findCurrency(charge.currency);
  assert(currency !== undefined, 'a stored currency is known');
  const connector = cardAcquirerOf(services, charge.livemode);
  // No acquirer serves this mode (live, none configured): the attempt was never sent, and now never will be.
  if (connector === undefined) return { status: 'lost' };
  const ref = { idempotencyKey: charge.provider_idempotency_key, reference: charge.id, amountMinor: charge.amount, currency };
  let found: SyncResult = await connector.syncPayment(ref);
  // A 3-D Secure challenge the shopper has had long enough to finish is ended, as if never sent.
  const challengeOver = services.clock.nowMs() - charge.created_at.getTime() > limits.threeDSecureWindowMs;
  if (found.status === 'not_found' || (found.status === 'requires_action' && challengeOver)) {
    // Close the key first, so that a request still in transit cannot authorize after we record the failure.
    found = await connector.abandonAttempt(ref);
  }
  switch (found.status) {
    case 'not_found':
      return found.status === 'not_found' && charge.provider_reference !== null ? abandonedChallenge : { status: 'lost' };
    case 'requires_action':
      return undefined;
    case 'unknown':
      services.logger.warn({ charge: charge.id, reason: found.reason }, 'attempt outcome still unknown');
      return undefined;
    default:
      return found;
  }
}

/**
 * Attempts left `pending` (the process crashed, or the acquirer did not answer) are settled by asking the
 * acquirer, never by guessing. Rows are leased by touching `updated_at`, so parallel workers skip them.
 */
export async function recoverPendingAttempts(services: Services): Promise<number> {
  const claimed = await services.db
    .updateTable('charges')
    .set({ updated_at: sql`now()` })
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('charges')
        .select('id')
        .where('status', '=', 'pending')
        .where('provider', '=', 'card')
        .where('updated_at', '<', cutoff(services))
        .orderBy('updated_at')
        .limit(limits.jobBatchSize)
        .forUpdate()
        .skipLocked(),
    )
    .returningAll()
    .execute();
  return handleEach(services, claimed, { what: 'charge', failed: 'recovering a pending attempt failed' }, async (charge) => {
    // Blocked by the risk engine, and the process stopped before recording it: it never reaches the acquirer.
    const resolution = charge.risk?.action === 'block' ? riskBlockDecline(charge) : await resolveAttempt(services, charge);
    if (resolution === undefined) return;
    await recordAttemptOutcome(
      services,
      { scope: { merchantId: charge.merchant_id, livemode: charge.livemode }, paymentIntentId: charge.payment_intent_id, chargeId: charge.id },
      resolution,
      await jobTrail(services, 'recover-pending-attempts', charge.merchant_id),
      undefined,
    );
  });
}

/** Captures, increments and cancellations whose request died after marking them in flight are driven to completion. */
export async function recoverInFlightOperations(services: Services): Promise<number> {
  const claimed = await services.db
    .updateTable('payment_intents')
    .set({ operation_started_at: sql`now()` })
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('payment_intents')
        .select('id')
        .where('operation_in_flight', 'is not', null)
        .where('operation_started_at', '<', cutoff(services))
        .orderBy('operation_started_at')
        .limit(limits.jobBatchSize)
        .forUpdate()
        .skipLocked(),
    )
    .returningAll()
    .execute();
  return handleEach(services, claimed, { what: 'paymentIntent', failed: 'recovering an operation in flight failed' }, (intent) => recoverOperation(services, intent));
}

async function recoverOperation(services: Services, intent: PaymentIntentRow): Promise<void> {
  assert(intent.latest_charge_id !== null, 'an operation in flight has a charge');
  const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', intent.latest_charge_id).executeTakeFirstOrThrow();
  assert(charge.provider_reference !== null, 'an authorized charge has the acquirer reference');
  const currency = findCurrency(intent.currency);
  assert(currency !== undefined, 'a stored currency is known');
  const scope = { merchantId: intent.merchant_id, livemode: intent.livemode };
  const trail = await jobTrail(services, 'recover-in-flight-operations', intent.merchant_id);
  const connector = services.connectors.card(intent.livemode);
  if (intent.operation_in_flight === 'capture') {
    assert(intent.operation_amount !== null, 'an in-flight capture has an amount');
    const result = await connector.capture({
      idempotencyKey: captureKey(charge.id),
      providerReference: charge.provider_reference,
      amountMinor: intent.operation_amount,
      currency,
    });
    if (result.status !== 'unknown') await recordCaptureOutcome(services, scope, intent.id, result, trail, undefined);
  } else if (intent.operation_in_flight === 'increment') {
    // The try the charge records, with its own key and amount: the acquirer answers it once, whatever became of the
    // first sending. Recorded only if that try is still the one in flight (a newer one may have started meanwhile).
    const tried = charge.increment_try;
    const attempt = charge.increment_attempts;
    assert(tried !== null, 'an increment in flight is recorded with its charge');
    const result = await connector.incrementAuthorization({
      idempotencyKey: incrementKey(charge.id, attempt),
      providerReference: charge.provider_reference,
      amountMinor: BigInt(tried.amount),
      currency,
    });
    if (result.status !== 'unknown') await recordIncrementOutcome(services, scope, intent.id, attempt, result, trail, undefined);
  } else {
    const result = await connector.void({ idempotencyKey: voidKey(charge.id), providerReference: charge.provider_reference });
    if (result.status !== 'unknown') await recordCancelOutcome(services, scope, intent.id, result, trail, undefined);
  }
}
