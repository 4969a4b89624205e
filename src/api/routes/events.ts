import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { resourceMissing } from '../../domain/errors.ts';
import type { Services } from '../../flows/context.ts';
import { limits } from '../../limits.ts';
import { requestContext } from '../request-context.ts';
import { ListQuery, ObjectId, strictObject } from '../schemas.ts';
import { listObject, sendObject } from './common.ts';
import { resendEvent } from '../../webhooks/resend.ts';

const EventsQuery = strictObject({
  ...ListQuery,
  type: Type.Optional(Type.String({ maxLength: 100 })),
  types: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 20 })),
  delivery_success: Type.Optional(Type.Boolean()),
});

/** Events as recorded with each change; the payload is the stored text, so it is the same in every answer. */
export function registerEventRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.get('/v1/events/:id', { config, schema: { params: strictObject({ id: ObjectId }), querystring: strictObject({}) } }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const ctx = requestContext(request);
    const row = await services.db
      .selectFrom('events')
      .select('payload')
      .where('id', '=', id)
      .where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode)
      .executeTakeFirst();
    if (row === undefined) throw resourceMissing('event', id);
    return reply.type('application/json; charset=utf-8').send(row.payload as string);
  });

  // Coffer's extension: send an event again to its endpoints (all, or the one named), now.
  app.post('/v1/events/:id/resend', {
    config,
    schema: { params: strictObject({ id: ObjectId }), body: strictObject({ webhook_endpoint: Type.Optional(ObjectId) }) },
  }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const body = request.body as { webhook_endpoint?: string };
    const ctx = requestContext(request);
    const resent = await resendEvent(services, ctx, id, body.webhook_endpoint);
    return reply.type('application/json; charset=utf-8').send(resent);
  });

  app.get('/v1/events', { config, schema: { querystring: EventsQuery } }, async (request, reply) => {
    const query = request.query as {
      limit?: number; starting_after?: string; ending_before?: string; type?: string; types?: string[];
      created?: number | { gt?: number; gte?: number; lt?: number; lte?: number }; delivery_success?: boolean;
    };
    const ctx = requestContext(request);
    const limit = query.limit ?? limits.listLimitDefault;
    let select = services.db
      .selectFrom('events')
      .select(['id', 'seq', 'payload'])
      .where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode);
    if (query.type !== undefined) {
      select = query.type.endsWith('.*')
        ? select.where('type', 'like', `${query.type.slice(0, -1)}%`)
        : select.where('type', '=', query.type);
    }
    if (query.types !== undefined) select = select.where('type', 'in', query.types);
    const created = query.created;
    if (typeof created === 'number') {
      select = select.where('created_at', '>=', new Date(created * 1000)).where('created_at', '<', new Date((created + 1) * 1000));
    } else if (created !== undefined) {
      if (created.gt !== undefined) select = select.where('created_at', '>=', new Date((created.gt + 1) * 1000));
      if (created.gte !== undefined) select = select.where('created_at', '>=', new Date(created.gte * 1000));
      if (created.lt !== undefined) select = select.where('created_at', '<', new Date(created.lt * 1000));
      if (created.lte !== undefined) select = select.where('created_at', '<', new Date((created.lte + 1) * 1000));
    }
    // delivery_success=false: events some endpoint has not (yet) received; true: every delivery succeeded.
    if (query.delivery_success === false) {
      select = select.where((eb) => eb.exists(eb.selectFrom('webhook_deliveries').select('webhook_deliveries.id')
        .whereRef('webhook_deliveries.event_id', '=', 'events.id').where('webhook_deliveries.status', '!=', 'succeeded')));
    } else if (query.delivery_success === true) {
      select = select.where((eb) => eb.not(eb.exists(eb.selectFrom('webhook_deliveries').select('webhook_deliveries.id')
        .whereRef('webhook_deliveries.event_id', '=', 'events.id').where('webhook_deliveries.status', '!=', 'succeeded'))));
    }
    const cursorId = query.starting_after ?? query.ending_before;
    if (cursorId !== undefined) {
      const cursor = await services.db.selectFrom('events').select('seq').where('id', '=', cursorId)
        .where('merchant_id', '=', ctx.actor.merchantId).executeTakeFirst();
      if (cursor === undefined) throw resourceMissing('event', cursorId, query.starting_after !== undefined ? 'starting_after' : 'ending_before');
      select = query.starting_after !== undefined ? select.where('seq', '<', cursor.seq) : select.where('seq', '>', cursor.seq);
    }
    const ascending = query.ending_before !== undefined;
    const rows = await select.orderBy('seq', ascending ? 'asc' : 'desc').limit(limit + 1).execute();
    const page = rows.slice(0, limit);
    if (ascending) page.reverse();
    const data = page.map((row) => JSON.parse(row.payload as string) as unknown);
    return sendObject(reply, listObject('/v1/events', data, rows.length > limit));
  });
}
