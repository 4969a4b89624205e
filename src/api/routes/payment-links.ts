import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import {
  createPaymentLink, findPaymentLink, updatePaymentLink, type LinkSessionParams, type PaymentLinkParams, type PaymentLinkUpdateParams,
} from '../../flows/payment-links.ts';
import { limits } from '../../limits.ts';
import { paymentLinkObject } from '../../objects/payment-link.ts';
import { priceObject } from '../../objects/product.ts';
import type { CheckoutLineItem, PaymentLinkRow } from '../../store/database.ts';
import { adjustableOf } from '../../flows/checkout-sessions.ts';
import { itemObjects } from '../../objects/checkout-session.ts';
import { requestContext } from '../request-context.ts';
import { Currency, Description, Expand, ListQuery, Metadata, ObjectId, StatementDescriptor, StatementDescriptorSuffix, Url, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { AdjustableQuantity, CollectionFields, CustomFields, OptionalItems, PresentationFields, ShippingAddressCollection } from './checkout-sessions.ts';
import { answerInChange, expansionsFor, listObject, positionalPage, PositionalQuery, sendObject, sendOutcome, withoutExpand, type PositionalQueryParams } from './common.ts';

const AfterCompletion = strictObject({
  type: Type.Union([Type.Literal('hosted_confirmation'), Type.Literal('redirect')]),
  hosted_confirmation: Type.Optional(strictObject({ custom_message: Type.Optional(Type.String({ maxLength: 500 })) })),
  redirect: Type.Optional(strictObject({ url: Url })),
});
const Restrictions = strictObject({ completed_sessions: strictObject({ limit: Type.Integer({ minimum: 1, maximum: 10_000 }) }) });
const InactiveMessage = Type.String({ maxLength: 500 });
const CreateBody = strictObject({
  line_items: Type.Array(strictObject({ price: ObjectId, quantity: Type.Integer({ minimum: 1, maximum: 9_999 }), adjustable_quantity: Type.Optional(AdjustableQuantity) }),
    { minItems: 1, maxItems: 20 }),
  after_completion: Type.Optional(AfterCompletion),
  ...CollectionFields,
  ...PresentationFields,
  optional_items: Type.Optional(OptionalItems),
  // `always`: each session makes a Customer of its shopper with the page's first try at the payment (decision 0058).
  customer_creation: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('if_required')])),
  allow_promotion_codes: Type.Optional(Type.Boolean()),
  shipping_options: Type.Optional(Type.Array(strictObject({ shipping_rate: ObjectId }), { maxItems: 5 })),
  payment_method_types: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { minItems: 1, maxItems: 3 })),
  payment_intent_data: Type.Optional(strictObject({
    capture_method: Type.Optional(Type.Union([Type.Literal('automatic'), Type.Literal('automatic_async'), Type.Literal('manual')])),
    description: Type.Optional(Description),
    metadata: Type.Optional(Metadata),
    statement_descriptor: Type.Optional(StatementDescriptor),
    statement_descriptor_suffix: Type.Optional(StatementDescriptorSuffix),
  })),
  currency: Type.Optional(Currency),
  metadata: Type.Optional(Metadata),
  inactive_message: Type.Optional(InactiveMessage),
  restrictions: Type.Optional(Restrictions),
  expand: Type.Optional(Expand),
});
const UpdateBody = strictObject({
  active: Type.Optional(Type.Boolean()),
  // The quantities of the items it sells, each named by its line item's id; which items, never.
  line_items: Type.Optional(Type.Array(strictObject({
    id: Type.String({ minLength: 1, maxLength: 100 }),
    quantity: Type.Optional(Type.Integer({ minimum: 1, maximum: 9_999 })),
    adjustable_quantity: Type.Optional(AdjustableQuantity),
  }), { minItems: 1, maxItems: 20 })),
  after_completion: Type.Optional(AfterCompletion),
  metadata: Type.Optional(emptyable(Metadata)),
  inactive_message: Type.Optional(emptyable(InactiveMessage)),
  restrictions: Type.Optional(emptyable(Restrictions)),
  // What later sessions are made with; sessions made already keep what they were made with.
  billing_address_collection: CollectionFields.billing_address_collection,
  shipping_address_collection: Type.Optional(emptyable(ShippingAddressCollection)),
  phone_number_collection: CollectionFields.phone_number_collection,
  payment_method_types: Type.Optional(emptyable(Type.Array(Type.String({ maxLength: 40 }), { minItems: 1, maxItems: 3 }))),
  custom_fields: Type.Optional(emptyable(CustomFields)),
  custom_text: PresentationFields.custom_text,
  submit_type: PresentationFields.submit_type,
  customer_creation: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('if_required')])),
  allow_promotion_codes: Type.Optional(Type.Boolean()),
  expand: Type.Optional(Expand),
});
const IdParams = strictObject({ id: ObjectId });
const LinkListQuery = strictObject({ ...ListQuery, active: Type.Optional(Type.Boolean()) });

/** Stripe's Payment Links (decision 0054): the official SDK's `paymentLinks` works against them. */
export function registerPaymentLinkRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };

  /**
   * A link's order as Stripe lists it, in the shape of a session's line items: each item with its catalogue price
   * as the catalogue has it now, and the product's name.
   */
  const lineItems = async (link: PaymentLinkRow): Promise<Array<Record<string, unknown>>> => {
    const kept = link.session_params as unknown as LinkSessionParams;
    const prices = await services.db.selectFrom('prices').selectAll().where('merchant_id', '=', link.merchant_id).where('livemode', '=', link.livemode)
      .where('id', 'in', kept.line_items.map((item) => item.price)).execute();
    const products = await services.db.selectFrom('products').select(['id', 'name']).where('merchant_id', '=', link.merchant_id).where('livemode', '=', link.livemode)
      .where('id', 'in', [...new Set(prices.map((price) => price.product_id)), '']).execute();
    const items = kept.line_items.map((item): CheckoutLineItem => {
      const price = prices.find((row) => row.id === item.price);
      const unit = Number(price?.unit_amount ?? 0n);
      const adjustable = adjustableOf(item, 'line_items');
      return {
        name: products.find((product) => product.id === price?.product_id)?.name ?? '', unit_amount: unit, quantity: item.quantity, amount_total: unit * item.quantity,
        price_id: item.price, ...(price === undefined ? {} : { product_id: price.product_id }), ...(adjustable === undefined ? {} : { adjustable }),
      };
    });
    return itemObjects(link, items, new Map(prices.map((price) => [price.id, priceObject(price)])));
  };
  const withLineItems = async (link: PaymentLinkRow, expand: readonly string[]) => {
    const object = paymentLinkObject(link);
    if (expand.includes('line_items')) object.line_items = listObject(`/v1/payment_links/${link.id}/line_items`, await lineItems(link), false);
    return object;
  };

  const linkConfig = { ...config, expandable: ['line_items'] };
  // A change answers with the link alone (its line items are read with `expand[]=line_items` or at /line_items).
  app.post('/v1/payment_links', { config, schema: { body: CreateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const body = withoutExpand(request.body as PaymentLinkParams & { expand?: string[] });
    return sendOutcome(reply, await answerInChange(request, (respond) => createPaymentLink(services, ctx, body, respond), paymentLinkObject));
  });
  app.get('/v1/payment_links', { config, schema: { querystring: LinkListQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { active?: boolean };
    let rows = services.db.selectFrom('payment_links').selectAll();
    if (query.active !== undefined) rows = rows.where('active', '=', query.active);
    const page = await listPage(services.db, ctx.actor, { table: 'payment_links', kind: 'payment link', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/payment_links', page.data.map(paymentLinkObject), page.hasMore));
  });
  app.get('/v1/payment_links/:id', { config: linkConfig, schema: { params: IdParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, { line_items: 'prices' });
    return sendObject(reply, await withLineItems(await findPaymentLink(services.db, ctx, (request.params as { id: string }).id), expand));
  });
  app.post('/v1/payment_links/:id', { config, schema: { params: IdParams, body: UpdateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const id = (request.params as { id: string }).id;
    const params = withoutExpand(request.body as PaymentLinkUpdateParams & { expand?: string[] });
    return sendOutcome(reply, await answerInChange(request, (respond) => updatePaymentLink(services, ctx, id, params, respond), paymentLinkObject));
  });
  app.get('/v1/payment_links/:id/line_items', { config, schema: { params: IdParams, querystring: PositionalQuery } }, async (request, reply) => {
    const link = await findPaymentLink(services.db, requestContext(request), (request.params as { id: string }).id);
    return sendObject(reply, positionalPage(`/v1/payment_links/${link.id}/line_items`, await lineItems(link), request.query as PositionalQueryParams));
  });
}
