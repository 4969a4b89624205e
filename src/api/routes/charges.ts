import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { resourceMissing } from '../../domain/errors.ts';
import type { Services } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import { limits } from '../../limits.ts';
import { chargeObject } from '../../objects/charge.ts';
import { requestContext } from '../request-context.ts';
import { ListQuery, ObjectId, strictObject, type ListQueryParams } from '../schemas.ts';
import { expansionsFor, listObject, sendObject } from './common.ts';
import { expandObjects } from './expand.ts';

/** What it can expand, and the resource a restricted key needs to read each. */
const chargeExpandable = { balance_transaction: 'balance', customer: 'customers', payment_intent: 'payment_intents', refunds: 'refunds' } as const;

const ChargesQuery = strictObject({ ...ListQuery, payment_intent: Type.Optional(ObjectId), customer: Type.Optional(ObjectId) });

export function registerChargeRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true, expandable: Object.keys(chargeExpandable) };
  app.get('/v1/charges/:charge', { config, schema: { params: strictObject({ charge: ObjectId }), querystring: strictObject({ expand: ListQuery.expand }) } }, async (request, reply) => {
    const { charge } = request.params as { charge: string };
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, chargeExpandable);
    const row = await services.db.selectFrom('charges').selectAll().where('id', '=', charge)
      .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
    if (row === undefined) throw resourceMissing('charge', charge, 'charge');
    const object = chargeObject(row, ctx.actor.apiVersion.shape);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
  });

  app.get('/v1/charges', { config, schema: { querystring: ChargesQuery } }, async (request, reply) => {
    const query = request.query as ListQueryParams & { payment_intent?: string; customer?: string };
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, query.expand, chargeExpandable, true);
    let rows = services.db.selectFrom('charges').selectAll();
    if (query.payment_intent !== undefined) rows = rows.where('payment_intent_id', '=', query.payment_intent);
    // The customer the charge was made for, as recorded with the attempt (a PaymentIntent's customer may change later).
    if (query.customer !== undefined) rows = rows.where('customer_id', '=', query.customer);
    const page = await listPage(services.db, ctx.actor, { table: 'charges', kind: 'charge', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map((row) => chargeObject(row, ctx.actor.apiVersion.shape));
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/charges', data, page.hasMore));
  });
}
