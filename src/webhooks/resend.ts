import { resourceMissing } from '../domain/errors.ts';
import type { RequestContext, Respond, Services } from '../flows/context.ts';
import { inTransaction } from '../flows/transaction.ts';
import { auditRow } from '../store/audit.ts';
import { pendingWebhooksSql, withPendingWebhooks } from '../store/events.ts';
import { findEndpoint } from './endpoints.ts';
import { wantsEvent } from './relay.ts';

/**
 * Queues an event for delivery again, now, to the endpoint named or to every endpoint that wants it (a new
 * delivery where there was none, for an endpoint created after the event). Returns the event's payload, its
 * `pending_webhooks` counting the deliveries just queued.
 */
export async function resendEvent(services: Services, ctx: RequestContext, eventId: string, endpointId: string | undefined, respond?: Respond<string>): Promise<string> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const event = await tx.selectFrom('events').select(['id', 'type', 'payload', 'merchant_id']).where('id', '=', eventId)
      .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
    if (event === undefined) throw resourceMissing('event', eventId);
    const endpoints = endpointId !== undefined
      ? [await findEndpoint(tx, ctx, endpointId)]
      : (await tx.selectFrom('webhook_endpoints').selectAll().where('merchant_id', '=', ctx.actor.merchantId)
          .where('livemode', '=', ctx.actor.livemode).where('status', '=', 'enabled').where('deleted_at', 'is', null).execute())
          .filter((endpoint) => wantsEvent(endpoint.enabled_events, event.type));
    for (const endpoint of endpoints) {
      await tx.insertInto('webhook_deliveries')
        .values({ event_id: event.id, endpoint_id: endpoint.id, merchant_id: event.merchant_id, status: 'pending', next_attempt_at: now })
        .onConflict((conflict) => conflict.columns(['event_id', 'endpoint_id']).doUpdateSet({ status: 'pending', next_attempt_at: now }))
        .execute();
    }
    await tx.insertInto('audit_log').values(auditRow({
      merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode, actorType: 'api_key', actorId: ctx.actor.apiKeyId,
      action: 'event.resend', objectType: 'event', objectId: event.id, outcome: 'success', requestId: ctx.requestId, origin: ctx.origin,
      details: { endpoints: endpoints.map((endpoint) => endpoint.id) }, occurredAt: now,
    })).execute();
    const pending = await tx.selectFrom('events').select(pendingWebhooksSql.as('n')).where('id', '=', event.id).executeTakeFirstOrThrow();
    const payload = withPendingWebhooks(event.payload as string, pending.n);
    await respond?.(tx, payload);
    return payload;
  });
}
