import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Selectable } from 'kysely';
import { resourceMissing } from '../../domain/errors.ts';
import type { RequestContext, Services, Tx } from '../../flows/context.ts';
import { findCustomer } from '../../flows/customers.ts';
import { listPage } from '../../flows/list-page.ts';
import {
  attachPaymentMethod,
  createCardPaymentMethod,
  createCardToken,
  detachPaymentMethod,
  findPaymentMethod,
  updatePaymentMethod,
  type CreatePaymentMethodParams,
  type TokenCardParams,
} from '../../flows/saved-payment-methods.ts';
import { limits } from '../../limits.ts';
import { unixTime } from '../../objects/common.ts';
import { paymentMethodObject } from '../../objects/payment-method.ts';
import type { ApiShape } from '../../objects/api-version.ts';
import { cardFactsOf, type AllowRedisplay, type PaymentMethodRow, type TokensTable } from '../../store/database.ts';
import { requestContext } from '../request-context.ts';
import { BillingDetails, CardDetails, Expand, ListQuery, Metadata, ObjectId, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { answerInChange, expansionsFor, listObject, sendObject, sendOutcome } from './common.ts';
import { expandObjects } from './expand.ts';

/** What a PaymentMethod read can expand, and the resource a restricted key needs to read each. */
const paymentMethodExpandable = { customer: 'customers' } as const;

const CreateBody = strictObject({
  type: Type.Literal('card'),
  card: CardDetails,
  billing_details: Type.Optional(BillingDetails),
  metadata: Type.Optional(emptyable(Metadata)),
  expand: Type.Optional(Expand),
});
const UpdateBody = strictObject({
  billing_details: Type.Optional(BillingDetails),
  card: Type.Optional(strictObject({ exp_month: Type.Optional(Type.Integer()), exp_year: Type.Optional(Type.Integer()) })),
  metadata: Type.Optional(emptyable(Metadata)),
  // Whether the card may be shown to its customer again on the hosted page (decision 0063).
  allow_redisplay: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('limited'), Type.Literal('unspecified')])),
  expand: Type.Optional(Expand),
});
/** A token's card: the card's details and, as Stripe's older forms send them, the cardholder's name and address. */
const TokenCard = strictObject({
  ...CardDetails.properties,
  name: Type.Optional(Type.String({ maxLength: 256 })),
  address_line1: Type.Optional(Type.String({ maxLength: 200 })),
  address_line2: Type.Optional(Type.String({ maxLength: 200 })),
  address_city: Type.Optional(Type.String({ maxLength: 200 })),
  address_state: Type.Optional(Type.String({ maxLength: 200 })),
  address_zip: Type.Optional(Type.String({ maxLength: 20 })),
  address_country: Type.Optional(Type.String({ maxLength: 2 })),
});
const TokenBody = strictObject({ card: TokenCard, expand: Type.Optional(Expand) });
const MethodParams = strictObject({ id: ObjectId });

function tokenObject(token: Selectable<TokensTable>, shape: ApiShape): Record<string, unknown> {
  const card = cardFactsOf({ id: token.id, type: 'card', card: token.card });
  const address = token.billing_details?.address ?? {};
  const given = (value: string | undefined) => value ?? null;
  return {
    id: token.id,
    object: 'token',
    card: {
      id: `card_${token.id.slice(4)}`, object: 'card',
      address_city: given(address.city), address_country: given(address.country), address_line1: given(address.line1),
      // Checked when a payment uses the card, as Stripe's token says until then.
      address_line1_check: address.line1 === undefined ? null : 'unchecked', address_line2: given(address.line2),
      address_state: given(address.state), address_zip: given(address.postal_code), address_zip_check: address.postal_code === undefined ? null : 'unchecked',
      brand: card.brand, country: card.country,
      exp_month: card.exp_month, exp_year: card.exp_year, fingerprint: card.fingerprint, funding: card.funding,
      last4: card.last4, name: given(token.billing_details?.name), ...(shape === 'current' ? { regulated_status: 'unregulated' } : {}),
    },
    client_ip: token.client_ip,
    created: unixTime(token.created_at),
    livemode: token.livemode,
    type: 'card',
    used: token.used,
  };
}

/**
 * PaymentMethods and tokens. Creating either takes card data, which goes straight to the vault; publishable
 * keys may do that (a checkout page collects cards with one), and nothing else.
 */
/** The payment method types Stripe has, which a list may filter by (only cards are ever saved in Coffer). */
const StripeMethodType = Type.Union([
  'acss_debit', 'affirm', 'afterpay_clearpay', 'alipay', 'amazon_pay', 'au_becs_debit', 'bacs_debit', 'bancontact', 'blik', 'boleto', 'card',
  'cashapp', 'customer_balance', 'eps', 'fpx', 'giropay', 'grabpay', 'ideal', 'klarna', 'konbini', 'link', 'mobilepay', 'multibanco', 'oxxo',
  'p24', 'paynow', 'paypal', 'pix', 'promptpay', 'revolut_pay', 'sepa_debit', 'sofort', 'swish', 'twint', 'us_bank_account', 'wechat_pay', 'zip',
].map((type) => Type.Literal(type)));

export function registerPaymentMethodRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  const collecting = { merchantApi: true, publishableAllowed: true, sensitiveParams: [['card', 'number'], ['card', 'cvc']] };
  app.post('/v1/payment_methods', { config: collecting, schema: { body: CreateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const { expand: _expand, ...params } = request.body as CreatePaymentMethodParams & { expand?: string[] };
    return sendOutcome(reply, await answerInChange(request, (respond) => createCardPaymentMethod(services, ctx, params as CreatePaymentMethodParams, respond),
      (method: PaymentMethodRow) => paymentMethodObject(method, ctx.actor.apiVersion.shape)));
  });

  app.post('/v1/tokens', { config: collecting, schema: { body: TokenBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const card = (request.body as { card: TokenCardParams }).card;
    return sendOutcome(reply, await answerInChange(request, (respond) => createCardToken(services, ctx, card, respond),
      (token: Selectable<TokensTable>) => tokenObject(token, ctx.actor.apiVersion.shape)));
  });

  app.get('/v1/tokens/:id', { config, schema: { params: MethodParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const id = (request.params as { id: string }).id;
    const token = await services.db.selectFrom('tokens').selectAll().where('id', '=', id).where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
    if (token === undefined) throw resourceMissing('token', id);
    return sendObject(reply, tokenObject(token, ctx.actor.apiVersion.shape));
  });

  const readConfig = { ...config, expandable: Object.keys(paymentMethodExpandable) };
  app.get('/v1/payment_methods/:id', { config: readConfig, schema: { params: MethodParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, paymentMethodExpandable);
    const method = await findPaymentMethod(services.db, ctx, (request.params as { id: string }).id);
    const object = paymentMethodObject(method, ctx.actor.apiVersion.shape);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
  });

  // A change's response expands as a read does: the paths are checked before the change (a restricted key may lack
  // what they read), and read in the change's own transaction, which keeps the response (decision 0027).
  const changed = (ctx: RequestContext, body: unknown) => {
    const expand = expansionsFor(ctx.actor, (body as { expand?: string[] } | undefined)?.expand, paymentMethodExpandable);
    return async (method: PaymentMethodRow, tx: Tx) => {
      const object = paymentMethodObject(method, ctx.actor.apiVersion.shape);
      await expandObjects(tx, ctx.actor, services.clock.nowMs(), [object], expand);
      return object;
    };
  };

  app.post('/v1/payment_methods/:id', { config: readConfig, schema: { params: MethodParams, body: UpdateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(ctx, request.body);
    const { expand: _expand, ...params } = request.body as { expand?: string[]; metadata?: Record<string, string> | ''; billing_details?: Record<string, unknown>; card?: { exp_month?: number; exp_year?: number }; allow_redisplay?: AllowRedisplay };
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => updatePaymentMethod(services, ctx, id, params, respond), render));
  });

  app.post('/v1/payment_methods/:id/attach', { config: readConfig, schema: { params: MethodParams, body: strictObject({ customer: ObjectId, expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(ctx, request.body);
    const id = (request.params as { id: string }).id;
    const customer = (request.body as { customer: string }).customer;
    return sendOutcome(reply, await answerInChange(request, (respond) => attachPaymentMethod(services, ctx, id, customer, respond), render));
  });

  app.post('/v1/payment_methods/:id/detach', { config: readConfig, schema: { params: MethodParams, body: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(ctx, request.body);
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => detachPaymentMethod(services, ctx, id, respond), render));
  });

  // Both routes list one customer's PaymentMethods, newest first; `url` is the route's own, as Stripe echoes it.
  const listForCustomer = async (ctx: ReturnType<typeof requestContext>, customerId: string, query: ListQueryParams & { type?: string }, url: string) => {
    const customer = await findCustomer(services.db, ctx, customerId);
    // Only cards are saved to customers: any other type Stripe has lists nothing.
    if (query.type !== undefined && query.type !== 'card') return listObject(url, [], false);
    const rows = services.db.selectFrom('payment_methods').selectAll().where('customer_id', '=', customer.id);
    const expand = expansionsFor(ctx.actor, query.expand, paymentMethodExpandable, true);
    const page = await listPage(services.db, ctx.actor, { table: 'payment_methods', kind: 'payment_method', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map((row) => paymentMethodObject(row, ctx.actor.apiVersion.shape));
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return listObject(url, data, page.hasMore);
  };

  app.get('/v1/payment_methods', { config: readConfig, schema: { querystring: strictObject({ ...ListQuery, customer: ObjectId, type: Type.Optional(StripeMethodType) }) } }, async (request, reply) => {
    const query = request.query as ListQueryParams & { customer: string; type?: string };
    return sendObject(reply, await listForCustomer(requestContext(request), query.customer, query, '/v1/payment_methods'));
  });

  app.get('/v1/customers/:customer/payment_methods', { config: readConfig, schema: { params: strictObject({ customer: ObjectId }), querystring: strictObject({ ...ListQuery, type: Type.Optional(StripeMethodType) }) } }, async (request, reply) => {
    const customerId = (request.params as { customer: string }).customer;
    return sendObject(reply, await listForCustomer(requestContext(request), customerId, request.query as ListQueryParams & { type?: string }, `/v1/customers/${customerId}/payment_methods`));
  });

  // One of the customer's saved payment methods (Stripe's "retrieve a customer's PaymentMethod"): another's is missing.
  app.get('/v1/customers/:customer/payment_methods/:payment_method', {
    config: readConfig,
    schema: { params: strictObject({ customer: ObjectId, payment_method: ObjectId }), querystring: strictObject({ expand: Type.Optional(Expand) }) },
  }, async (request, reply) => {
    const ctx = requestContext(request);
    const params = request.params as { customer: string; payment_method: string };
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, paymentMethodExpandable);
    const customer = await findCustomer(services.db, ctx, params.customer);
    const method = await findPaymentMethod(services.db, ctx, params.payment_method);
    if (method.customer_id !== customer.id) throw resourceMissing('PaymentMethod', params.payment_method, 'payment_method');
    const object = paymentMethodObject(method, ctx.actor.apiVersion.shape);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
  });
}
