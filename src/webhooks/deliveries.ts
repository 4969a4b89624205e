import { resourceMissing } from '../domain/errors.ts';
import type { RequestContext, Services } from '../flows/context.ts';
import { checkOneCursor } from '../flows/list-page.ts';
import { deliveryRowId, webhookDeliveryObject, type WebhookAttemptRow } from '../objects/webhook-delivery.ts';
import type { WebhookDeliveryRow } from '../store/database.ts';
import type { Secret } from '../platform/secret.ts';
import { findEndpoint } from './endpoints.ts';

export type DeliveryStatus = WebhookDeliveryRow['status'];

export interface DeliveryListParams {
  limit: number;
  starting_after?: string;
  ending_before?: string;
  status?: DeliveryStatus;
  event?: string;
}

type Db = Services['db'];
/** The key delivery ids are encrypted under (`services.webhooks.secretKey`). */
type IdKey = Secret<Buffer>;

/** The attempts of the deliveries given, newest first, grouped by delivery. */
async function attemptsOf(db: Db, ctx: RequestContext, deliveryIds: readonly bigint[]): Promise<Map<bigint, WebhookAttemptRow[]>> {
  const byDelivery = new Map<bigint, WebhookAttemptRow[]>(deliveryIds.map((id) => [id, []]));
  if (deliveryIds.length === 0) return byDelivery;
  // Attempts have no merchant of their own: they are read through their delivery, which has.
  const rows = await db.selectFrom('webhook_attempts')
    .innerJoin('webhook_deliveries', 'webhook_deliveries.id', 'webhook_attempts.delivery_id')
    .selectAll('webhook_attempts')
    .where('webhook_attempts.delivery_id', 'in', deliveryIds)
    .where('webhook_deliveries.merchant_id', '=', ctx.actor.merchantId)
    .orderBy('webhook_attempts.id', 'desc')
    .execute();
  for (const row of rows) byDelivery.get(row.delivery_id)?.push(row);
  return byDelivery;
}

function deliveriesOfMode(db: Db, ctx: RequestContext) {
  return db.selectFrom('webhook_deliveries')
    .innerJoin('events', 'events.id', 'webhook_deliveries.event_id')
    .selectAll('webhook_deliveries')
    .select('events.type as event_type')
    .where('webhook_deliveries.merchant_id', '=', ctx.actor.merchantId)
    .where('events.merchant_id', '=', ctx.actor.merchantId)
    .where('events.livemode', '=', ctx.actor.livemode);
}

async function withAttempts(db: Db, ctx: RequestContext, key: IdKey, rows: ReadonlyArray<WebhookDeliveryRow & { event_type: string }>): Promise<Array<Record<string, unknown>>> {
  const attempts = await attemptsOf(db, ctx, rows.map((row) => row.id));
  return rows.map((row) => webhookDeliveryObject(row, attempts.get(row.id) ?? [], key));
}

/** Every delivery of one event, to each endpoint it was sent to (deleted endpoints included), oldest first. */
export async function eventDeliveries(db: Db, ctx: RequestContext, key: IdKey, eventId: string): Promise<Array<Record<string, unknown>>> {
  const event = await db.selectFrom('events').select('id').where('id', '=', eventId)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
  if (event === undefined) throw resourceMissing('event', eventId);
  const rows = await deliveriesOfMode(db, ctx).where('webhook_deliveries.event_id', '=', eventId).orderBy('webhook_deliveries.id').execute();
  return withAttempts(db, ctx, key, rows);
}

/**
 * One page of an endpoint's deliveries, newest first, as Stripe pages lists: `starting_after` towards older ones,
 * `ending_before` towards newer ones. `status` and `event` narrow the list.
 */
export async function endpointDeliveries(db: Db, ctx: RequestContext, key: IdKey, endpointId: string, params: DeliveryListParams): Promise<{ data: Array<Record<string, unknown>>; hasMore: boolean }> {
  checkOneCursor(params);
  const endpoint = await findEndpoint(db, ctx, endpointId);
  const cursorParam = params.starting_after !== undefined ? 'starting_after' : 'ending_before';
  const cursor = params.starting_after ?? params.ending_before;
  let rows = deliveriesOfMode(db, ctx).where('webhook_deliveries.endpoint_id', '=', endpoint.id);
  if (cursor !== undefined) {
    const cursorId = deliveryRowId(cursor, key);
    const found = cursorId === null ? undefined : await db.selectFrom('webhook_deliveries').select('id')
      .where('id', '=', cursorId).where('endpoint_id', '=', endpoint.id).where('merchant_id', '=', ctx.actor.merchantId).executeTakeFirst();
    if (found === undefined || cursorId === null) throw resourceMissing('webhook_delivery', cursor, cursorParam);
    rows = rows.where('webhook_deliveries.id', cursorParam === 'starting_after' ? '<' : '>', cursorId);
  }
  if (params.status !== undefined) rows = rows.where('webhook_deliveries.status', '=', params.status);
  if (params.event !== undefined) rows = rows.where('webhook_deliveries.event_id', '=', params.event);
  const page = await rows.orderBy('webhook_deliveries.id', cursorParam === 'ending_before' && cursor !== undefined ? 'asc' : 'desc')
    .limit(params.limit + 1).execute();
  const hasMore = page.length > params.limit;
  const kept = page.slice(0, params.limit);
  if (cursorParam === 'ending_before' && cursor !== undefined) kept.reverse();
  return { data: await withAttempts(db, ctx, key, kept), hasMore };
}

