import { handleEach } from './handle-each.ts';
import { sql } from 'kysely';
import { recordCancelOutcome, voidKey } from '../flows/cancel-payment-intent.ts';
import type { Services } from '../flows/context.ts';
import { limits } from '../limits.ts';
import { assert } from '../platform/assert.ts';
import { jobTrail } from './system-trail.ts';

/**
 * Authorizations not captured before their hold lapses are released: the PaymentIntent is marked as being
 * canceled (reason `automatic`), the acquirer voids the hold, and the ledger releases the reservation.
 */
export async function expireAuthorizations(services: Services): Promise<number> {
  const now = new Date(services.clock.nowMs());
  const claimed = await services.db
    .updateTable('payment_intents')
    .set({ operation_in_flight: 'cancel', operation_started_at: sql`now()`, operation_reason: 'automatic', operation_idempotency_key_id: null })
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('payment_intents')
        .innerJoin('charges', 'charges.id', 'payment_intents.latest_charge_id')
        .select('payment_intents.id')
        .where('payment_intents.status', '=', 'requires_capture')
        .where('payment_intents.operation_in_flight', 'is', null)
        .where('charges.capture_before', '<=', now)
        .limit(limits.jobBatchSize)
        .forUpdate()
        .skipLocked(),
    )
    .returningAll()
    .execute();
  // Marked in flight: a hold that fails here is finished by recover-in-flight-operations.
  return handleEach(services, claimed, { what: 'paymentIntent', failed: 'expiring an authorization failed' }, async (intent) => {
    assert(intent.latest_charge_id !== null, 'an authorized PaymentIntent has a charge');
    const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', intent.latest_charge_id).executeTakeFirstOrThrow();
    assert(charge.provider_reference !== null, 'an authorized charge has the acquirer reference');
    const result = await services.connectors
      .card(intent.livemode)
      .void({ idempotencyKey: voidKey(charge.id), providerReference: charge.provider_reference });
    if (result.status === 'unknown') return;
    const trail = await jobTrail(services, 'expire-authorizations', intent.merchant_id);
    await recordCancelOutcome(services, { merchantId: intent.merchant_id, livemode: intent.livemode }, intent.id, result, trail, undefined);
  });
}
