import { Type } from '@sinclair/typebox';
import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import {
  couponOfCode, createCoupon, createPromotionCode, deleteCoupon, findCoupon, findPromotionCode, updateCoupon, updatePromotionCode,
  type CodeWithCoupon, type CouponParams, type CouponUpdateParams, type PromotionCodeParams, type PromotionCodeUpdateParams,
} from '../../flows/coupons.ts';
import { listPage } from '../../flows/list-page.ts';
import { limits } from '../../limits.ts';
import { couponObject, deletedCouponObject, promotionCodeObject } from '../../objects/coupon.ts';
import type { CouponRow } from '../../store/database.ts';
import { promotionCodeShowsCoupon, type ApiVersion } from '../../objects/api-version.ts';
import { requestContext } from '../request-context.ts';
import { Currency, Expand, ListQuery, Metadata, ObjectId, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { answerInChange, listObject, sendObject, sendOutcome, withoutExpand } from './common.ts';

// A coupon's own id: letters, digits, `_`, `-` and `.`, as a path segment carries it unescaped (as a product's).
const CouponId = Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9_.-]+$' });
// Taken so that the refusal can say why (one currency per session), rather than call them unknown parameters.
const CurrencyOptions = Type.Record(Type.String(), Type.Unknown());
const Timestamp = Type.Integer({ minimum: 1, maximum: 253_402_300_799 });
const Redemptions = Type.Integer({ minimum: 1, maximum: 1_000_000_000 });

const CouponBody = strictObject({
  id: Type.Optional(CouponId),
  name: Type.Optional(Type.String({ maxLength: 40 })),
  percent_off: Type.Optional(Type.Number()),
  amount_off: Type.Optional(Type.Integer({ minimum: 1 })),
  currency: Type.Optional(Currency),
  duration: Type.Optional(Type.Union([Type.Literal('once'), Type.Literal('repeating'), Type.Literal('forever')])),
  duration_in_months: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_200 })),
  max_redemptions: Type.Optional(Redemptions),
  redeem_by: Type.Optional(Timestamp),
  applies_to: Type.Optional(strictObject({ products: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 100 })) })),
  metadata: Type.Optional(Metadata),
  currency_options: Type.Optional(CurrencyOptions),
  expand: Type.Optional(Expand),
});
const CouponUpdateBody = strictObject({
  name: Type.Optional(emptyable(Type.String({ maxLength: 40 }))),
  metadata: Type.Optional(emptyable(Metadata)),
  currency_options: Type.Optional(CurrencyOptions),
  expand: Type.Optional(Expand),
});
const CodeWord = Type.String({ minLength: 1, maxLength: 500 });
const PromotionCodeBody = strictObject({
  promotion: Type.Optional(strictObject({ type: Type.Literal('coupon'), coupon: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) })),
  coupon: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  code: Type.Optional(CodeWord),
  active: Type.Optional(Type.Boolean()),
  customer: Type.Optional(ObjectId),
  expires_at: Type.Optional(Timestamp),
  max_redemptions: Type.Optional(Redemptions),
  metadata: Type.Optional(Metadata),
  restrictions: Type.Optional(strictObject({
    first_time_transaction: Type.Optional(Type.Boolean()),
    minimum_amount: Type.Optional(Type.Integer({ minimum: 0 })),
    minimum_amount_currency: Type.Optional(Currency),
    currency_options: Type.Optional(CurrencyOptions),
  })),
  expand: Type.Optional(Expand),
});
const PromotionCodeUpdateBody = strictObject({
  active: Type.Optional(Type.Boolean()),
  metadata: Type.Optional(emptyable(Metadata)),
  restrictions: Type.Optional(strictObject({ currency_options: Type.Optional(CurrencyOptions) })),
  expand: Type.Optional(Expand),
});
const IdParams = strictObject({ id: ObjectId });
const ExpandQuery = strictObject({ expand: Type.Optional(Expand) });
const CodeListQuery = strictObject({
  ...ListQuery,
  active: Type.Optional(Type.Boolean()),
  code: Type.Optional(CodeWord),
  coupon: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  customer: Type.Optional(ObjectId),
});

/**
 * Stripe's Coupons and Promotion Codes (decision 0062): the official SDK's `coupons` and `promotionCodes` work against
 * them. Only a coupon's `applies_to` may be asked to expand (it is always shown); the server refuses any other path.
 */
export function registerCouponRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  // Stripe shows a coupon's `applies_to` only when expanded; Coffer always shows it, and takes the expansion.
  const couponConfig = { merchantApi: true, expandable: ['applies_to'] };
  const nowMs = () => services.clock.nowMs();
  const coupon = (row: CouponRow) => couponObject(row, nowMs());
  const codeObject = (made: CodeWithCoupon, version: ApiVersion) => promotionCodeObject(made.code, made.coupon, nowMs(), promotionCodeShowsCoupon(version));

  app.post('/v1/coupons', { config: couponConfig, schema: { body: CouponBody } }, async (request, reply) => {
    const body = withoutExpand(request.body as CouponParams & { expand?: string[] });
    return sendOutcome(reply, await answerInChange(request, (respond) => createCoupon(services, requestContext(request), body, respond), coupon));
  });
  app.get('/v1/coupons/:id', { config: couponConfig, schema: { params: IdParams, querystring: ExpandQuery } }, async (request, reply) =>
    sendObject(reply, coupon(await findCoupon(services.db, requestContext(request), (request.params as { id: string }).id))));
  app.post('/v1/coupons/:id', { config: couponConfig, schema: { params: IdParams, body: CouponUpdateBody } }, async (request, reply) => {
    const body = withoutExpand(request.body as CouponUpdateParams & { expand?: string[] });
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => updateCoupon(services, requestContext(request), id, body, respond), coupon));
  });
  app.delete('/v1/coupons/:id', { config, schema: { params: IdParams } }, async (request, reply) => {
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => deleteCoupon(services, requestContext(request), id, respond), deletedCouponObject));
  });
  app.get('/v1/coupons', { config: couponConfig, schema: { querystring: strictObject(ListQuery) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams;
    const rows = services.db.selectFrom('coupons').selectAll().where('deleted_at', 'is', null);
    const page = await listPage(services.db, ctx.actor, { table: 'coupons', kind: 'coupon', rows, cursorWhere: sqlNotDeleted }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/coupons', page.data.map(coupon), page.hasMore));
  });

  app.post('/v1/promotion_codes', { config, schema: { body: PromotionCodeBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const body = withoutExpand(request.body as PromotionCodeParams & { expand?: string[] });
    return sendOutcome(reply, await answerInChange(request, (respond) => createPromotionCode(services, ctx, body, respond), (made: CodeWithCoupon) => codeObject(made, ctx.actor.apiVersion)));
  });
  app.get('/v1/promotion_codes/:id', { config, schema: { params: IdParams, querystring: ExpandQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const code = await findPromotionCode(services.db, ctx, (request.params as { id: string }).id);
    return sendObject(reply, codeObject({ code, coupon: await couponOfCode(services.db, code) }, ctx.actor.apiVersion));
  });
  app.post('/v1/promotion_codes/:id', { config, schema: { params: IdParams, body: PromotionCodeUpdateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const body = withoutExpand(request.body as PromotionCodeUpdateParams & { expand?: string[] });
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => updatePromotionCode(services, ctx, id, body, respond), (made: CodeWithCoupon) => codeObject(made, ctx.actor.apiVersion)));
  });
  app.get('/v1/promotion_codes', { config, schema: { querystring: CodeListQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { active?: boolean; code?: string; coupon?: string; customer?: string };
    let rows = services.db.selectFrom('promotion_codes').selectAll();
    // Active as the object shows it: the code's own flag, and its coupon still valid.
    if (query.active !== undefined) {
      const valid = sql<boolean>`EXISTS (SELECT 1 FROM coupons c WHERE c.merchant_id = promotion_codes.merchant_id AND c.livemode = promotion_codes.livemode
        AND c.id = promotion_codes.coupon_id AND c.deleted_at IS NULL AND (c.redeem_by IS NULL OR c.redeem_by > ${new Date(nowMs())})
        AND (c.max_redemptions IS NULL OR c.times_redeemed < c.max_redemptions))`;
      rows = rows.where(sql<boolean>`(promotion_codes.active AND ${valid}) = ${query.active}`);
    }
    if (query.code !== undefined) rows = rows.where(sql<boolean>`lower(code) = ${query.code.toLowerCase()}`);
    if (query.coupon !== undefined) rows = rows.where('coupon_id', '=', query.coupon);
    if (query.customer !== undefined) rows = rows.where('customer_id', '=', query.customer);
    const page = await listPage(services.db, ctx.actor, { table: 'promotion_codes', kind: 'promotion code', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const coupons = page.data.length === 0 ? [] : await services.db.selectFrom('coupons').selectAll().where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode).where('id', 'in', [...new Set(page.data.map((row) => row.coupon_id))]).execute();
    const data = page.data.flatMap((row) => {
      const of = coupons.find((candidate) => candidate.id === row.coupon_id);
      return of === undefined ? [] : [codeObject({ code: row, coupon: of }, ctx.actor.apiVersion)];
    });
    return sendObject(reply, listObject('/v1/promotion_codes', data, page.hasMore));
  });
}

const sqlNotDeleted = sql<boolean>`deleted_at IS NULL`;
