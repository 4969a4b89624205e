import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../flows/context.ts';
import {
  createCheckoutSession, expireCheckoutSession, findCheckoutSession, listCheckoutSessions, type CheckoutSessionListParams, updateCheckoutSession, settleCheckoutSession,
  type CreateCheckoutSessionParams,
} from '../../flows/checkout-sessions.ts';
import { limits } from '../../limits.ts';
import { findSupportCase, listSupportCases, supportCaseObject } from '../../flows/support-cases.ts';
import { checkoutSessionObject, lineItemObjects } from '../../objects/checkout-session.ts';
import { priceObject, productObject } from '../../objects/product.ts';
import type { CheckoutSessionRow } from '../../store/database.ts';
import { requestContext } from '../request-context.ts';
import { Currency, Description, Email, Expand, ListQuery as CommonListQuery, emptyable, type ListQueryParams, Metadata, NoParams, ObjectId, StatementDescriptor, StatementDescriptorSuffix, Url, strictObject } from '../schemas.ts';
import { answerInChange, expansionsFor, listObject, positionalPage, PositionalQuery, sendObject, sendOutcome, type PositionalQueryParams } from './common.ts';
import { expandObjects } from './expand.ts';
import { checkoutLocales } from '../../checkout/strings.ts';
import { ShippingRateData } from './shipping-rates.ts';

/** An adjustable quantity's bounds (decision 0053; Coffer's largest quantity is 9,999). */
export const AdjustableQuantity = strictObject({
  enabled: Type.Boolean(), minimum: Type.Optional(Type.Integer({ minimum: 0, maximum: 9_999 })), maximum: Type.Optional(Type.Integer({ minimum: 1, maximum: 9_999 })),
});
/** Items the shopper may add on the page (decision 0061): a catalogue price each, up to ten, as Stripe takes them. */
export const OptionalItems = Type.Array(strictObject({
  price: ObjectId, quantity: Type.Integer({ minimum: 1, maximum: 9_999 }), adjustable_quantity: Type.Optional(AdjustableQuantity),
}), { maxItems: 10 });
/** What a session (or a payment link) asks the shopper for besides the payment (decision 0051). */
export const ShippingAddressCollection = strictObject({ allowed_countries: Type.Array(Type.String({ minLength: 2, maxLength: 2 }), { maxItems: 250 }) });
export const CollectionFields = {
  billing_address_collection: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('required')])),
  shipping_address_collection: Type.Optional(ShippingAddressCollection),
  phone_number_collection: Type.Optional(strictObject({ enabled: Type.Boolean() })),
};
/** A message of the merchant's on the page: plain text, where `[words](https://…)` is a link (decision 0059). */
const CustomMessage = Type.Union([strictObject({ message: Type.String({ minLength: 1, maxLength: 1_200 }) }), Type.Literal('')]);
/** A text or numeric custom field's bounds (Stripe's: up to 255 characters or digits). */
const FieldBounds = strictObject({
  minimum_length: Type.Optional(Type.Integer({ minimum: 1, maximum: 255 })),
  maximum_length: Type.Optional(Type.Integer({ minimum: 1, maximum: 255 })),
  default_value: Type.Optional(Type.String({ maxLength: 255 })),
});
/** A field of the merchant's own on the page (decision 0060). */
const CustomField = strictObject({
  key: Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9]+$' }),
  label: strictObject({ type: Type.Literal('custom'), custom: Type.String({ minLength: 1, maxLength: 50 }) }),
  type: Type.Union([Type.Literal('dropdown'), Type.Literal('numeric'), Type.Literal('text')]),
  optional: Type.Optional(Type.Boolean()),
  dropdown: Type.Optional(strictObject({
    options: Type.Array(strictObject({ label: Type.String({ minLength: 1, maxLength: 100 }), value: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9]+$' }) }), { minItems: 1, maxItems: 200 }),
    default_value: Type.Optional(Type.String({ maxLength: 100 })),
  })),
  numeric: Type.Optional(FieldBounds),
  text: Type.Optional(FieldBounds),
});
export const CustomFields = Type.Array(CustomField, { maxItems: 3 });
/** What the page says besides the order: the pay button's verb, the merchant's messages, the consents it asks. */
export const PresentationFields = {
  custom_fields: Type.Optional(CustomFields),
  submit_type: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('book'), Type.Literal('donate'), Type.Literal('pay')])),
  custom_text: Type.Optional(strictObject({
    after_submit: Type.Optional(CustomMessage),
    shipping_address: Type.Optional(CustomMessage),
    submit: Type.Optional(CustomMessage),
    terms_of_service_acceptance: Type.Optional(CustomMessage),
  })),
  consent_collection: Type.Optional(strictObject({
    terms_of_service: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('required')])),
    promotions: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('none')])),
    payment_method_reuse_agreement: Type.Optional(strictObject({ position: Type.Union([Type.Literal('auto'), Type.Literal('hidden')]) })),
  })),
};
const LineItem = strictObject({
  // A catalogue price (`/v1/prices`), or price_data: the flow takes exactly one.
  price: Type.Optional(ObjectId),
  price_data: Type.Optional(strictObject({
    currency: Currency,
    unit_amount: Type.Integer({ minimum: 1 }),
    // A catalogue product (`/v1/products`), or product_data naming the item: the flow takes exactly one.
    product: Type.Optional(ObjectId),
    product_data: Type.Optional(strictObject({
      name: Type.String({ minLength: 1, maxLength: 250 }),
      description: Type.Optional(Type.String({ maxLength: 500 })),
      images: Type.Optional(Type.Array(Url, { maxItems: 8 })),
    })),
  })),
  quantity: Type.Integer({ minimum: 1, maximum: 9_999 }),
  // The shopper may change the quantity on the page, within these bounds (decision 0053; Coffer's largest is 9,999).
  adjustable_quantity: Type.Optional(AdjustableQuantity),
  metadata: Type.Optional(Metadata),
});
const CreateBody = strictObject({
  mode: Type.Literal('payment'),
  line_items: Type.Array(LineItem, { minItems: 1, maxItems: 100 }),
  optional_items: Type.Optional(OptionalItems),
  currency: Type.Optional(Currency),
  success_url: Type.String({ minLength: 1, maxLength: 2_048 }),
  cancel_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2_048 })),
  // Stripe's limit: up to 200 characters, letters, digits, dashes and underscores.
  client_reference_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$' })),
  customer_email: Type.Optional(Type.String({ pattern: '^[^\\s@]+@[^\\s@]+$', maxLength: 320 })),
  // An existing customer: the session's PaymentIntent is theirs, and a card it keeps is saved to them.
  customer: Type.Optional(ObjectId),
  // `always`: the page makes a Customer of the shopper when it confirms the payment (decision 0058).
  customer_creation: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('if_required')])),
  payment_method_types: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { minItems: 1, maxItems: 3 })),
  metadata: Type.Optional(Metadata),
  expires_at: Type.Optional(Type.Integer({ minimum: 0 })),
  locale: Type.Optional(Type.Union(checkoutLocales.map((locale) => Type.Literal(locale)))),
  // What the session's PaymentIntent is made with; the rest of it comes from the line items and the shopper.
  payment_intent_data: Type.Optional(strictObject({
    capture_method: Type.Optional(Type.Union([Type.Literal('automatic'), Type.Literal('automatic_async'), Type.Literal('manual')])),
    description: Type.Optional(Description),
    metadata: Type.Optional(Metadata),
    receipt_email: Type.Optional(Email),
    setup_future_usage: Type.Optional(Type.Union([Type.Literal('on_session'), Type.Literal('off_session')])),
    statement_descriptor: Type.Optional(StatementDescriptor),
    statement_descriptor_suffix: Type.Optional(StatementDescriptorSuffix),
  })),
  ...CollectionFields,
  ...PresentationFields,
  // The shipping rates offered (decision 0052): a rate's id, or a new rate made with the session.
  shipping_options: Type.Optional(Type.Array(strictObject({
    shipping_rate: Type.Optional(ObjectId),
    shipping_rate_data: Type.Optional(strictObject(ShippingRateData)),
  }), { maxItems: 5 })),
  // A coupon or promotion code of the merchant's, or the shopper's own code typed on the page (decision 0062).
  discounts: Type.Optional(Type.Array(strictObject({
    coupon: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    promotion_code: Type.Optional(ObjectId),
  }), { maxItems: 20 })),
  allow_promotion_codes: Type.Optional(Type.Boolean()),
  // An address that makes a new session for the order once this one expires unpaid (decision 0064).
  after_expiration: Type.Optional(strictObject({
    recovery: Type.Optional(strictObject({ enabled: Type.Boolean(), allow_promotion_codes: Type.Optional(Type.Boolean()) })),
  })),
  // The shopper's own choice to save their card, and which saved cards the page shows (decision 0063).
  saved_payment_method_options: Type.Optional(strictObject({
    payment_method_save: Type.Optional(Type.Union([Type.Literal('enabled'), Type.Literal('disabled')])),
    payment_method_remove: Type.Optional(Type.Union([Type.Literal('enabled'), Type.Literal('disabled')])),
    allow_redisplay_filters: Type.Optional(Type.Array(Type.Union([Type.Literal('always'), Type.Literal('limited'), Type.Literal('unspecified')]), { minItems: 1, maxItems: 3 })),
  })),
  // A card payment's own capture method and consent to keep the card (decision 0040), kept on the PaymentIntent.
  // The wallets' options, which a confirmation alone takes, are not taken here.
  payment_method_options: Type.Optional(strictObject({
    card: Type.Optional(strictObject({
      capture_method: Type.Optional(Type.Literal('manual')),
      setup_future_usage: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('on_session'), Type.Literal('off_session')])),
      // Whether the merchant may raise the hold before capture (decision 0056); with capture_method=manual.
      request_incremental_authorization: Type.Optional(Type.Union([Type.Literal('if_available'), Type.Literal('never')])),
      // When the card's bank is asked to authenticate the shopper: kept on the PaymentIntent, which the page cannot lower.
      request_three_d_secure: Type.Optional(Type.Union([Type.Literal('any'), Type.Literal('automatic'), Type.Literal('challenge')])),
    })),
  })),
});
const IdParams = strictObject({ id: ObjectId });
/** What a session read can expand, and the resource a restricted key needs to read each. */
const sessionExpandable = {
  line_items: 'checkout', 'line_items.data.price.product': ['checkout', 'products'], customer: 'customers', payment_intent: 'payment_intents', 'payment_intent.latest_charge': ['payment_intents', 'charges'],
  'payment_intent.payment_method': ['payment_intents', 'payment_methods'],
  'shipping_cost.shipping_rate': ['checkout', 'shipping_rates'], 'shipping_options.shipping_rate': ['checkout', 'shipping_rates'],
} as const;
// Stripe's list filters; `expand` is not taken here (a list of sessions expands nothing).
const { expand: _listExpand, ...listPaging } = CommonListQuery;
const ListQuery = strictObject({
  ...listPaging,
  payment_intent: Type.Optional(ObjectId), payment_link: Type.Optional(ObjectId), customer: Type.Optional(ObjectId),
  status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('complete'), Type.Literal('expired')])),
  customer_details: Type.Optional(strictObject({ email: Email })),
});

/** Support cases shoppers opened from the checkout's result page (a Coffer extension; the console comes later). */
export function registerSupportCaseRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.get('/v1/support_cases', { config, schema: { querystring: strictObject({ ...CommonListQuery, payment_intent: Type.Optional(ObjectId) }) } }, async (request, reply) => {
    const query = request.query as ListQueryParams & { payment_intent?: string };
    const page = await listSupportCases(services, requestContext(request), { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/support_cases', page.data.map(supportCaseObject), page.hasMore));
  });
  app.get('/v1/support_cases/:id', { config, schema: { params: IdParams, querystring: NoParams } }, async (request, reply) =>
    sendObject(reply, supportCaseObject(await findSupportCase(services, requestContext(request), (request.params as { id: string }).id))));
}

/** Checkout Sessions (payment mode), as Stripe's: the official SDK's `checkout.sessions` works against them. */
export function registerCheckoutSessionRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  /** The session in the request's API version: before 2025-03-31 its shipping address is `shipping_details`. */
  const renderFor = (request: FastifyRequest) => (row: CheckoutSessionRow) =>
    checkoutSessionObject(row, `${services.connectors.publicUrl()}/pay/${row.id}`, requestContext(request).actor.apiVersion.shape);
  /**
   * The session's items, with the catalogue prices they were sold from as the catalogue has them now (one query),
   * and with each price's product when asked (`price.product`): a product named only by `product_data` is no
   * catalogue product and stays an id.
   */
  const sessionLineItems = async (row: CheckoutSessionRow, withProducts: boolean) => {
    const ids = [...new Set(row.line_items.flatMap((item) => (item.price_id === undefined ? [] : [item.price_id])))];
    const rows = ids.length === 0 ? [] : await services.db.selectFrom('prices').selectAll().where('merchant_id', '=', row.merchant_id)
      .where('livemode', '=', row.livemode).where('id', 'in', ids).execute();
    const items = lineItemObjects(row, new Map(rows.map((price) => [price.id, priceObject(price)])));
    if (withProducts) {
      const actor = { merchantId: row.merchant_id, livemode: row.livemode };
      const productIds = [...new Set(items.map((item) => String((item.price as { product: unknown }).product)))];
      const products = await services.db.selectFrom('products').selectAll().where('merchant_id', '=', actor.merchantId)
        .where('livemode', '=', actor.livemode).where('id', 'in', productIds).execute();
      for (const item of items) {
        const price = item.price as Record<string, unknown>;
        const product = products.find((candidate) => candidate.id === price.product);
        if (product !== undefined) price.product = productObject(product);
      }
    }
    return items;
  };
  app.post('/v1/checkout/sessions', { config, schema: { body: CreateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    return sendOutcome(reply, await answerInChange(request, (respond) => createCheckoutSession(services, ctx, request.body as CreateCheckoutSessionParams, respond), renderFor(request)));
  });
  app.get('/v1/checkout/sessions', { config, schema: { querystring: ListQuery } }, async (request, reply) => {
    const query = request.query as Omit<CheckoutSessionListParams, 'limit'> & { limit?: number };
    const page = await listCheckoutSessions(services, requestContext(request), { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/checkout/sessions', page.data.map(renderFor(request)), page.hasMore));
  });
  // `expand[]=line_items` gives the order (as `/line_items` lists it) and `expand[]=payment_intent` its payment, as
  // Stripe's fulfilment guide reads them.
  const readConfig = { ...config, expandable: Object.keys(sessionExpandable) };
  app.get('/v1/checkout/sessions/:id', { config: readConfig, schema: { params: IdParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, sessionExpandable);
    const found = await findCheckoutSession(services.db, ctx, (request.params as { id: string }).id);
    // Brought up to date with its payment first: a session whose payment just finished reads as complete.
    const row = found.status === 'open' ? await settleCheckoutSession(services, found.id) : found;
    const object = renderFor(request)(row);
    if (expand.includes('line_items') || expand.includes('line_items.data.price.product')) {
      const items = await sessionLineItems(row, expand.includes('line_items.data.price.product'));
      object.line_items = listObject(`/v1/checkout/sessions/${row.id}/line_items`, items, false);
    }
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand.filter((path) => !path.startsWith('line_items')));
    return sendObject(reply, object);
  });
  const itemsConfig = { ...config, expandable: ['price.product'] };
  app.get('/v1/checkout/sessions/:id/line_items', {
    config: itemsConfig, schema: { params: IdParams, querystring: strictObject({ ...PositionalQuery.properties, expand: Type.Optional(Expand) }) },
  }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as PositionalQueryParams & { expand?: string[] };
    const expand = expansionsFor(ctx.actor, query.expand, { 'price.product': 'products' }, true);
    const found = await findCheckoutSession(services.db, ctx, (request.params as { id: string }).id);
    // The items in the order they were given.
    return sendObject(reply, positionalPage(`/v1/checkout/sessions/${found.id}/line_items`, await sessionLineItems(found, expand.length > 0), query));
  });
  // The merchant's metadata, in any state (Stripe's update of a hosted session changes only this).
  app.post('/v1/checkout/sessions/:id', { config, schema: { params: IdParams, body: strictObject({ metadata: Type.Optional(emptyable(Metadata)) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const id = (request.params as { id: string }).id;
    const params = (request.body ?? {}) as { metadata?: Record<string, string> | '' };
    return sendOutcome(reply, await answerInChange(request, (respond) => updateCheckoutSession(services, ctx, id, params, respond), renderFor(request)));
  });
  app.post('/v1/checkout/sessions/:id/expire', { config, schema: { params: IdParams, body: Type.Optional(NoParams) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => expireCheckoutSession(services, ctx, id, respond), renderFor(request)));
  });
}
