import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import {
  createCheckoutSession, expireCheckoutSession, findCheckoutSession, listCheckoutSessions, settleCheckoutSession,
  type CreateCheckoutSessionParams,
} from '../../flows/checkout-sessions.ts';
import { limits } from '../../limits.ts';
import { findSupportCase, listSupportCases, supportCaseObject } from '../../flows/support-cases.ts';
import { checkoutSessionObject, lineItemObjects } from '../../objects/checkout-session.ts';
import type { CheckoutSessionRow } from '../../store/database.ts';
import { requestContext } from '../request-context.ts';
import { Currency, Description, Email, Expand, ListLimit, ListQuery as CommonListQuery, type ListQueryParams, Metadata, NoParams, ObjectId, StatementDescriptor, StatementDescriptorSuffix, strictObject } from '../schemas.ts';
import { answerInChange, expansionsFor, listObject, sendObject, sendOutcome } from './common.ts';
import { expandObjects } from './expand.ts';
import { checkoutLocales } from '../../checkout/strings.ts';

const LineItem = strictObject({
  price_data: strictObject({
    currency: Currency,
    unit_amount: Type.Integer({ minimum: 1 }),
    product_data: strictObject({ name: Type.String({ minLength: 1, maxLength: 250 }) }),
  }),
  quantity: Type.Integer({ minimum: 1, maximum: 9_999 }),
});
const CreateBody = strictObject({
  mode: Type.Literal('payment'),
  line_items: Type.Array(LineItem, { minItems: 1, maxItems: 100 }),
  currency: Type.Optional(Currency),
  success_url: Type.String({ minLength: 1, maxLength: 2_048 }),
  cancel_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2_048 })),
  // Stripe's limit: up to 200 characters, letters, digits, dashes and underscores.
  client_reference_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$' })),
  customer_email: Type.Optional(Type.String({ pattern: '^[^\\s@]+@[^\\s@]+$', maxLength: 320 })),
  // An existing customer: the session's PaymentIntent is theirs, and a card it keeps is saved to them.
  customer: Type.Optional(ObjectId),
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
  // A card payment's own capture method and consent to keep the card (decision 0040), kept on the PaymentIntent.
  // The options a confirmation alone takes (request_three_d_secure, the wallets') are not taken here.
  payment_method_options: Type.Optional(strictObject({
    card: Type.Optional(strictObject({
      capture_method: Type.Optional(Type.Literal('manual')),
      setup_future_usage: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('on_session'), Type.Literal('off_session')])),
    })),
  })),
});
const IdParams = strictObject({ id: ObjectId });
/** What a session read can expand, and the resource a restricted key needs to read each. */
const sessionExpandable = {
  line_items: 'checkout', customer: 'customers', payment_intent: 'payment_intents', 'payment_intent.latest_charge': ['payment_intents', 'charges'],
  'payment_intent.payment_method': ['payment_intents', 'payment_methods'],
} as const;
const ListQuery = strictObject({ limit: Type.Optional(ListLimit), starting_after: Type.Optional(ObjectId), payment_intent: Type.Optional(ObjectId) });

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
  const render = (row: CheckoutSessionRow) => checkoutSessionObject(row, `${services.connectors.publicUrl()}/pay/${row.id}`);
  app.post('/v1/checkout/sessions', { config, schema: { body: CreateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    return sendOutcome(reply, await answerInChange(request, (respond) => createCheckoutSession(services, ctx, request.body as CreateCheckoutSessionParams, respond), render));
  });
  app.get('/v1/checkout/sessions', { config, schema: { querystring: ListQuery } }, async (request, reply) => {
    const query = request.query as { limit?: number; starting_after?: string; payment_intent?: string };
    const page = await listCheckoutSessions(services, requestContext(request), { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/checkout/sessions', page.data.map(render), page.hasMore));
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
    const object = render(row);
    if (expand.includes('line_items')) object.line_items = listObject(`/v1/checkout/sessions/${row.id}/line_items`, lineItemObjects(row), false);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand.filter((path) => path !== 'line_items'));
    return sendObject(reply, object);
  });
  app.get('/v1/checkout/sessions/:id/line_items', { config, schema: { params: IdParams, querystring: NoParams } }, async (request, reply) => {
    const found = await findCheckoutSession(services.db, requestContext(request), (request.params as { id: string }).id);
    return sendObject(reply, listObject(`/v1/checkout/sessions/${found.id}/line_items`, lineItemObjects(found), false));
  });
  app.post('/v1/checkout/sessions/:id/expire', { config, schema: { params: IdParams, body: Type.Optional(NoParams) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => expireCheckoutSession(services, ctx, id, respond), render));
  });
}
