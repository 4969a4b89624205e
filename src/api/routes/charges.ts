import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { resourceMissing } from '../../domain/errors.ts';
import type { Services, Tx } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import { limits } from '../../limits.ts';
import { chargeObject } from '../../objects/charge.ts';
import { requestContext } from '../request-context.ts';
import { Description, Email, Expand, ListQuery, Metadata, ObjectId, SearchQuery, Shipping, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { answerInChange, expansionsFor, listObject, sendObject, sendOutcome } from './common.ts';
import { updateCharge, type UpdateChargeParams } from '../../flows/update-charge.ts';
import { currencies } from '../../domain/currency.ts';
import { countOf, parseSearchQuery, searchCondition, searchCursor, searchExpansions, searchResult, type SearchField } from '../search-query.ts';
import type { ChargeRow } from '../../store/database.ts';
import { expandObjects } from './expand.ts';

/** What it can expand, and the resource a restricted key needs to read each. */
const chargeExpandable = { balance_transaction: 'balance', customer: 'customers', payment_intent: 'payment_intents', refunds: 'refunds' } as const;

const ChargesQuery = strictObject({ ...ListQuery, payment_intent: Type.Optional(ObjectId), customer: Type.Optional(ObjectId) });
const UpdateBody = strictObject({
  description: Type.Optional(emptyable(Description)), metadata: Type.Optional(emptyable(Metadata)), expand: Type.Optional(Expand),
  receipt_email: Type.Optional(emptyable(Email)), shipping: Type.Optional(emptyable(Shipping)),
  fraud_details: Type.Optional(strictObject({ user_report: emptyable(Type.Union([Type.Literal('fraudulent'), Type.Literal('safe')])) })),
});
/** A card charge's detail, as the charge shows it in payment_method_details.card; null for other methods. */
const cardDetail = (name: string) => sql`CASE WHEN provider = 'card' THEN payment_method_details ->> ${name} END`;

/**
 * What a charge search may ask: the fields of Stripe's charge search. `refunded` is the charge's own: refunds and
 * the released part of an authorization together cover its whole amount (see chargeObject).
 */
const chargeSearchFields: Record<string, SearchField> = {
  amount: { kind: 'amount', column: 'amount' },
  'billing_details.address.postal_code': { kind: 'text', column: sql`billing_details -> 'address' ->> 'postal_code'` },
  created: { kind: 'created', column: 'created_at' },
  currency: { kind: 'enum', column: 'currency', values: [...currencies.keys()] },
  customer: { kind: 'exact', column: 'customer_id' },
  disputed: { kind: 'boolean', column: 'disputed' },
  metadata: { kind: 'metadata', column: 'metadata' },
  payment_intent: { kind: 'exact', column: 'payment_intent_id' },
  'payment_method_details.card.brand': { kind: 'text', column: cardDetail('brand') },
  'payment_method_details.card.exp_month': { kind: 'amount', column: sql`(${cardDetail('exp_month')})::bigint` },
  'payment_method_details.card.exp_year': { kind: 'amount', column: sql`(${cardDetail('exp_year')})::bigint` },
  'payment_method_details.card.fingerprint': { kind: 'exact', column: cardDetail('fingerprint') },
  'payment_method_details.card.last4': { kind: 'exact', column: cardDetail('last4') },
  refunded: { kind: 'boolean', column: sql`(amount_refunded + amount_released > 0 AND amount_refunded + amount_released = amount)` },
  status: { kind: 'enum', column: 'status', values: ['succeeded', 'pending', 'failed'] },
};

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

  app.get('/v1/charges/search', { config, schema: { querystring: SearchQuery } }, async (request, reply) => {
    const query = request.query as { query: string; limit?: number; page?: string; expand?: string[] };
    const ctx = requestContext(request);
    const asked = searchExpansions(query.expand);
    const expand = expansionsFor(ctx.actor, asked.expand, chargeExpandable, true);
    const search = parseSearchQuery(query.query, chargeSearchFields);
    const limit = query.limit ?? limits.listLimitDefault;
    const found = services.db.selectFrom('charges').where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode).where(searchCondition(search, chargeSearchFields));
    let select = found.selectAll();
    if (query.page !== undefined) select = select.where('seq', '<', searchCursor(query.page, '/v1/charges/search', query.query));
    const rows = await select.orderBy('seq', 'desc').limit(limit + 1).execute();
    const data = rows.slice(0, limit).map((row) => chargeObject(row, ctx.actor.apiVersion.shape));
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    const total = asked.totalCount ? await countOf(found) : undefined;
    return sendObject(reply, searchResult('/v1/charges/search', query.query, data, rows, limit, total));
  });

  app.post('/v1/charges/:charge', { config, schema: { params: strictObject({ charge: ObjectId }), body: UpdateBody } }, async (request, reply) => {
    const { charge } = request.params as { charge: string };
    const { expand: requested, ...params } = request.body as UpdateChargeParams & { expand?: string[] };
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, requested, chargeExpandable);
    return sendOutcome(reply, await answerInChange(request, (respond) => updateCharge(services, ctx, charge, params, respond), async (row: ChargeRow, tx: Tx) => {
      const object = chargeObject(row, ctx.actor.apiVersion.shape);
      await expandObjects(tx, ctx.actor, services.clock.nowMs(), [object], expand);
      return object;
    }));
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
