import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CofferError, resourceMissing } from '../../domain/errors.ts';
import type { Services } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import { limits } from '../../limits.ts';
import { requestContext } from '../request-context.ts';
import { ListQuery, NoParams, ObjectId, strictObject } from '../schemas.ts';
import { answerInChange, listObject, sendObject, sendOutcome } from './common.ts';
import { resendEvent } from '../../webhooks/resend.ts';
import { eventDeliveries } from '../../webhooks/deliveries.ts';
import { pendingWebhooksSql, withPendingWebhooks } from '../../store/events.ts';

const EventsQuery = strictObject({
  ...ListQuery,
  type: Type.Optional(Type.String({ maxLength: 100 })),
  types: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 20 })),
  delivery_success: Type.Optional(Type.Boolean()),
});

/**
 * Events as recorded with each change: the stored text, the same in every answer but for `pending_webhooks`, which
 * says how many of its webhooks are still to be received.
 */
export function registerEventRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.get('/v1/events/:id', { config, schema: { params: strictObject({ id: ObjectId }), querystring: NoParams } }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const ctx = requestContext(request);
    const row = await services.db
      .selectFrom('events')
      .select(['payload', pendingWebhooksSql.as('pending_webhooks')])
      .where('id', '=', id)
      .where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode)
      .executeTakeFirst();
    if (row === undefined) throw resourceMissing('event', id);
    return reply.type('application/json; charset=utf-8').send(withPendingWebhooks(row.payload as string, row.pending_webhooks));
  });

  // Coffer's extension: send an event again to its endpoints (all, or the one named), now.
  app.post('/v1/events/:id/resend', {
    config,
    schema: { params: strictObject({ id: ObjectId }), body: strictObject({ webhook_endpoint: Type.Optional(ObjectId) }) },
  }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const body = request.body as { webhook_endpoint?: string };
    const ctx = requestContext(request);
    // The event as stored (JSON that JSON.stringify wrote, which parsing and writing again gives back byte for byte).
    return sendOutcome(reply, await answerInChange(request, (respond) => resendEvent(services, ctx, id, body.webhook_endpoint, respond),
      (payload: string) => JSON.parse(payload) as unknown));
  });

  // Coffer's extension: the event's deliveries to each endpoint, with every attempt and why it failed.
  app.get('/v1/events/:id/deliveries', { config, schema: { params: strictObject({ id: ObjectId }), querystring: NoParams } }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const ctx = requestContext(request);
    // A restricted key needs webhook_endpoints read too (resourcesOfRoute: deliveries name endpoints).
    const data = await eventDeliveries(services.db, ctx, services.webhooks.secretKey, id);
    return sendObject(reply, listObject(`/v1/events/${id}/deliveries`, data, false));
  });

  app.get('/v1/events', { config, schema: { querystring: EventsQuery } }, async (request, reply) => {
    const query = request.query as {
      limit?: number; starting_after?: string; ending_before?: string; type?: string; types?: string[];
      created?: number | { gt?: number; gte?: number; lt?: number; lte?: number }; delivery_success?: boolean;
    };
    const ctx = requestContext(request);
    if (query.type !== undefined && query.types !== undefined) {
      throw new CofferError('parameter_invalid', 'You may pass either type or types, but not both.', { param: 'types' });
    }
    // A wildcard only at the end (`charge.*`): one elsewhere would match nothing, silently.
    if (query.type !== undefined && query.type.slice(0, -1).includes('*')) {
      throw new CofferError('parameter_invalid', `Invalid type: ${query.type}. A wildcard may only end the type, as in charge.*.`, { param: 'type' });
    }
    let select = services.db.selectFrom('events').select(['id', 'seq', 'payload', pendingWebhooksSql.as('pending_webhooks')]);
    // `*` alone is every type, as the endpoint's own `enabled_events` takes it.
    if (query.type !== undefined && query.type !== '*') {
      select = query.type.endsWith('.*')
        ? select.where('type', 'like', `${query.type.slice(0, -1)}%`)
        : select.where('type', '=', query.type);
    }
    if (query.types !== undefined) select = select.where('type', 'in', query.types);
    // delivery_success=false: events some endpoint has not (yet) received; true: every delivery succeeded.
    if (query.delivery_success === false) {
      select = select.where((eb) => eb.exists(eb.selectFrom('webhook_deliveries').select('webhook_deliveries.id')
        .whereRef('webhook_deliveries.event_id', '=', 'events.id').where('webhook_deliveries.status', '!=', 'succeeded')));
    } else if (query.delivery_success === true) {
      select = select.where((eb) => eb.not(eb.exists(eb.selectFrom('webhook_deliveries').select('webhook_deliveries.id')
        .whereRef('webhook_deliveries.event_id', '=', 'events.id').where('webhook_deliveries.status', '!=', 'succeeded'))));
    }
    const page = await listPage(services.db, ctx.actor, { table: 'events', kind: 'event', rows: select }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map((row) => JSON.parse(withPendingWebhooks(row.payload as string, row.pending_webhooks)) as unknown);
    return sendObject(reply, listObject('/v1/events', data, page.hasMore));
  });
}
