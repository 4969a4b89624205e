import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { resourceMissing } from '../../domain/errors.ts';
import type { Services } from '../../flows/context.ts';
import { limits } from '../../limits.ts';
import { chargeObject } from '../../objects/charge.ts';
import { requestContext } from '../request-context.ts';
import { ListQuery, ObjectId, strictObject } from '../schemas.ts';
import { listObject, sendObject } from './common.ts';

const ChargesQuery = strictObject({ ...ListQuery, payment_intent: Type.Optional(ObjectId), customer: Type.Optional(ObjectId) });

export function registerChargeRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.get('/v1/charges/:charge', { config, schema: { params: strictObject({ charge: ObjectId }), querystring: strictObject({ expand: ListQuery.expand }) } }, async (request, reply) => {
    const { charge } = request.params as { charge: string };
    const ctx = requestContext(request);
    const row = await services.db.selectFrom('charges').selectAll().where('id', '=', charge)
      .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
    if (row === undefined) throw resourceMissing('charge', charge, 'charge');
    return sendObject(reply, chargeObject(row, ctx.actor.apiVersion.shape));
  });

  app.get('/v1/charges', { config, schema: { querystring: ChargesQuery } }, async (request, reply) => {
    const query = request.query as { limit?: number; starting_after?: string; payment_intent?: string };
    const ctx = requestContext(request);
    const limit = query.limit ?? limits.listLimitDefault;
    let select = services.db.selectFrom('charges').selectAll()
      .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
    if (query.payment_intent !== undefined) select = select.where('payment_intent_id', '=', query.payment_intent);
    if (query.starting_after !== undefined) {
      const cursor = await services.db.selectFrom('charges').select('seq').where('id', '=', query.starting_after)
        .where('merchant_id', '=', ctx.actor.merchantId).executeTakeFirst();
      if (cursor === undefined) throw resourceMissing('charge', query.starting_after, 'starting_after');
      select = select.where('seq', '<', cursor.seq);
    }
    const rows = await select.orderBy('seq', 'desc').limit(limit + 1).execute();
    const data = rows.slice(0, limit).map((row) => chargeObject(row, ctx.actor.apiVersion.shape));
    return sendObject(reply, listObject('/v1/charges', data, rows.length > limit));
  });
}
