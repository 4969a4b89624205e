import type { Services } from '../flows/context.ts';
import { inTransaction } from '../flows/transaction.ts';
import { limits } from '../limits.ts';

/** Whether an endpoint's `enabled_events` asks for this event type (`*` is every type). */
export function wantsEvent(enabledEvents: readonly string[], type: string): boolean {
  return enabledEvents.includes('*') || enabledEvents.includes(type);
}

/**
 * The outbox relay: takes events not yet relayed (in order, skipping rows another worker holds), makes one
 * delivery per endpoint that wants each (enabled, created before the event), and marks them relayed, all in one
 * transaction. An event is therefore relayed exactly once, whatever crashes, and only if it was committed.
 */
export async function relayEvents(services: Services): Promise<number> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const events = await tx.selectFrom('events').select(['id', 'merchant_id', 'livemode', 'type', 'created_at'])
      .where('relayed', '=', false).orderBy('seq').limit(limits.jobBatchSize).forUpdate().skipLocked().execute();
    if (events.length === 0) return 0;
    const merchants = [...new Set(events.map((event) => event.merchant_id))];
    const endpoints = await tx.selectFrom('webhook_endpoints').select(['id', 'merchant_id', 'livemode', 'enabled_events', 'created_at'])
      .where('merchant_id', 'in', merchants).where('status', '=', 'enabled').where('deleted_at', 'is', null).execute();
    const deliveries = events.flatMap((event) =>
      endpoints
        .filter((endpoint) => endpoint.merchant_id === event.merchant_id && endpoint.livemode === event.livemode
          && endpoint.created_at <= event.created_at && wantsEvent(endpoint.enabled_events, event.type))
        .map((endpoint) => ({ event_id: event.id, endpoint_id: endpoint.id, merchant_id: event.merchant_id, status: 'pending' as const, next_attempt_at: now })),
    );
    if (deliveries.length > 0) {
      await tx.insertInto('webhook_deliveries').values(deliveries).onConflict((conflict) => conflict.columns(['event_id', 'endpoint_id']).doNothing()).execute();
    }
    await tx.updateTable('events').set({ relayed: true }).where('id', 'in', events.map((event) => event.id)).execute();
    return events.length;
  });
}
