import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import {
  createShippingRate, findShippingRate, updateShippingRate, type ShippingRateParams, type ShippingRateUpdateParams,
} from '../../flows/shipping-rates.ts';
import { limits } from '../../limits.ts';
import { shippingRateObject } from '../../objects/shipping-rate.ts';
import { requestContext } from '../request-context.ts';
import { Currency, Expand, ListQuery, Metadata, ObjectId, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { answerInChange, listObject, sendObject, sendOutcome, withoutExpand } from './common.ts';

const TaxBehavior = Type.Union([Type.Literal('unspecified'), Type.Literal('inclusive'), Type.Literal('exclusive')]);
const EstimateBound = strictObject({
  unit: Type.Union([Type.Literal('business_day'), Type.Literal('day'), Type.Literal('hour'), Type.Literal('month'), Type.Literal('week')]),
  value: Type.Integer({ minimum: 1, maximum: 1_000 }),
});
// Taken so that the refusal can say why (one currency per session, no tax), rather than call them unknown parameters.
const CurrencyOptions = Type.Record(Type.String(), Type.Unknown());
const TaxCode = Type.String({ maxLength: 100 });

/** A new rate's parameters, as `POST /v1/shipping_rates` and a Checkout Session's `shipping_rate_data` take them. */
export const ShippingRateData = {
  display_name: Type.String({ minLength: 1, maxLength: 100 }),
  type: Type.Optional(Type.Literal('fixed_amount')),
  fixed_amount: Type.Optional(strictObject({ amount: Type.Integer({ minimum: 0 }), currency: Currency, currency_options: Type.Optional(CurrencyOptions) })),
  delivery_estimate: Type.Optional(strictObject({ minimum: Type.Optional(EstimateBound), maximum: Type.Optional(EstimateBound) })),
  metadata: Type.Optional(Metadata),
  tax_behavior: Type.Optional(TaxBehavior),
  tax_code: Type.Optional(TaxCode),
};
const CreateBody = strictObject({ ...ShippingRateData, expand: Type.Optional(Expand) });
const UpdateBody = strictObject({
  active: Type.Optional(Type.Boolean()),
  metadata: Type.Optional(emptyable(Metadata)),
  tax_behavior: Type.Optional(TaxBehavior),
  fixed_amount: Type.Optional(strictObject({ currency_options: Type.Optional(CurrencyOptions) })),
  expand: Type.Optional(Expand),
});
const IdParams = strictObject({ id: ObjectId });
const RateListQuery = strictObject({ ...ListQuery, active: Type.Optional(Type.Boolean()), currency: Type.Optional(Currency) });

/** Stripe's Shipping Rates (decision 0052): the official SDK's `shippingRates` works against them. Nothing in a rate expands (the server refuses `expand[]` paths before the route runs). */
export function registerShippingRateRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.post('/v1/shipping_rates', { config, schema: { body: CreateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const body = request.body as ShippingRateParams & { expand?: string[] };
    return sendOutcome(reply, await answerInChange(request, (respond) => createShippingRate(services, ctx, withoutExpand(body), respond), shippingRateObject));
  });
  app.get('/v1/shipping_rates/:id', { config, schema: { params: IdParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    return sendObject(reply, shippingRateObject(await findShippingRate(services.db, ctx, (request.params as { id: string }).id)));
  });
  app.post('/v1/shipping_rates/:id', { config, schema: { params: IdParams, body: UpdateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const body = request.body as ShippingRateUpdateParams & { expand?: string[] };
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => updateShippingRate(services, ctx, id, withoutExpand(body), respond), shippingRateObject));
  });
  app.get('/v1/shipping_rates', { config, schema: { querystring: RateListQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { active?: boolean; currency?: string };
    let rows = services.db.selectFrom('shipping_rates').selectAll();
    if (query.active !== undefined) rows = rows.where('active', '=', query.active);
    if (query.currency !== undefined) rows = rows.where('currency', '=', query.currency.toLowerCase());
    const page = await listPage(services.db, ctx.actor, { table: 'shipping_rates', kind: 'shipping rate', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/shipping_rates', page.data.map(shippingRateObject), page.hasMore));
  });
}
