import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CofferError, errorCatalog, resourceMissing, type ErrorCode } from '../../domain/errors.ts';
import type { Services, Tx } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import { cancelSetupIntent, confirmSetupIntent, createSetupIntent, updateSetupIntent, type ConfirmedSetupIntent, type SetupIntentParams, type UpdateSetupIntentParams } from '../../flows/setup-intents.ts';
import type { RequestContext } from '../../flows/context.ts';
import { paymentMethodObject } from '../../objects/payment-method.ts';
import { publishablePaymentMethod } from '../../objects/payment-intent.ts';
import { givenCard, type CardParams } from '../../flows/saved-payment-methods.ts';
import { limits } from '../../limits.ts';
import { publishableSetupIntentObject, setupIntentObjects } from '../../objects/setup-intent.ts';
import { assert } from '../../platform/assert.ts';
import { requestContext } from '../request-context.ts';
import { BillingDetails, CardDetails, Description, Expand, ListQuery, Metadata, ObjectId, Url, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { answerInChange, expansions, expansionsFor, listObject, sameSecret, sendObject, sendOutcome } from './common.ts';
import type { SetupIntentRow } from '../../store/database.ts';
import { expandObjects } from './expand.ts';

/** What a SetupIntent read can expand, and the resource a restricted key needs to read each. */
const setupIntentExpandable = { customer: 'customers', payment_method: 'payment_methods' } as const;

/** The shopper's agreement to a mandate, as Stripe takes it with a confirmation: kept in the confirmation's audit record. */
const MandateData = strictObject({
  customer_acceptance: strictObject({
    type: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
    accepted_at: Type.Optional(Type.Integer({ minimum: 0 })),
    online: Type.Optional(strictObject({
      ip_address: Type.Optional(Type.String({ maxLength: 45 })),
      user_agent: Type.Optional(Type.String({ maxLength: 1000 })),
      infer_from_client: Type.Optional(Type.Boolean()),
    })),
    offline: Type.Optional(strictObject({})),
  }),
});

const CreateBody = strictObject({
  customer: Type.Optional(ObjectId),
  payment_method: Type.Optional(ObjectId),
  usage: Type.Optional(Type.Union([Type.Literal('off_session'), Type.Literal('on_session')])),
  description: Type.Optional(Description),
  metadata: Type.Optional(emptyable(Metadata)),
  confirm: Type.Optional(Type.Boolean()),
  payment_method_types: Type.Optional(Type.Array(Type.Literal('card'), { maxItems: 1 })),
  automatic_payment_methods: Type.Optional(strictObject({
    enabled: Type.Boolean(),
    allow_redirects: Type.Optional(Type.Union([Type.Literal('always'), Type.Literal('never')])),
  })),
  return_url: Type.Optional(Url),
  mandate_data: Type.Optional(MandateData),
  use_stripe_sdk: Type.Optional(Type.Boolean()),
  expand: Type.Optional(Expand),
});
const UpdateBody = strictObject({
  description: Type.Optional(emptyable(Description)),
  metadata: Type.Optional(emptyable(Metadata)),
  payment_method: Type.Optional(ObjectId),
  expand: Type.Optional(Expand),
});
const IntentParams = strictObject({ intent: ObjectId });

/** A card given with a confirmation (Stripe.js's `confirmCardSetup`): made into a PaymentMethod as POST /v1/payment_methods does, its number to the vault. */
const PaymentMethodData = strictObject({
  type: Type.Literal('card'),
  card: Type.Omit(CardDetails, ['token'], { additionalProperties: false }),
  billing_details: Type.Optional(BillingDetails),
});

const ConfirmBody = strictObject({
  client_secret: Type.Optional(Type.String({ maxLength: 200 })),
  payment_method: Type.Optional(ObjectId),
  payment_method_data: Type.Optional(PaymentMethodData),
  return_url: Type.Optional(Url),
  mandate_data: Type.Optional(MandateData),
  // Stripe.js's own handling of the next action; Coffer has no Stripe.js, so the next action is the same either way.
  use_stripe_sdk: Type.Optional(Type.Boolean()),
  expand: Type.Optional(Expand),
});

/** What a publishable key may expand: the card, which the page shows; never the customer. */
const publishableExpansions = ['payment_method'];

/** A card's number and security code never reach an idempotency key's request hash as given. */
const sensitiveParams = [['payment_method_data', 'card', 'number'], ['payment_method_data', 'card', 'cvc']] as const;

/**
 * The SetupIntent a request names, read after checking its client secret: a publishable key must send it, and a
 * secret that does not match is refused whatever the key (as for a PaymentIntent).
 */
async function withClientSecret(services: Services, ctx: RequestContext, id: string, clientSecret: string | undefined): Promise<SetupIntentRow> {
  if (ctx.actor.keyKind === 'publishable' && clientSecret === undefined) {
    throw new CofferError('secret_key_required', 'This API call cannot be made with a publishable API key without the client_secret of the SetupIntent.', { param: 'client_secret' });
  }
  const row = await services.db.selectFrom('setup_intents').selectAll().where('id', '=', id).where('merchant_id', '=', ctx.actor.merchantId)
    .where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
  if (row === undefined) throw resourceMissing('setup_intent', id, 'intent');
  if (clientSecret !== undefined && !sameSecret(clientSecret, row.client_secret)) {
    throw new CofferError('parameter_invalid', 'The client_secret provided does not match the client_secret associated with the SetupIntent.', { param: 'client_secret' });
  }
  return row;
}

interface SetupError {
  code?: string;
  decline_code?: string | null;
  message?: string;
  payment_method?: { id?: string };
}

export function registerSetupIntentRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };

  /**
   * The answer to a confirmation: the SetupIntent, or, when the acquirer declined this confirmation's card,
   * Stripe's 402 card error carrying the SetupIntent (back at `requires_payment_method`, with `last_setup_error`)
   * and the declined PaymentMethod.
   */
  const confirmed = async (ctx: RequestContext, result: ConfirmedSetupIntent, tx: Tx, expand: readonly string[] = []): Promise<Record<string, unknown>> => {
    const [full] = await setupIntentObjects(tx, [result.intent], ctx.actor.apiVersion.shape);
    assert(full !== undefined, 'one SetupIntent rendered');
    const publishable = ctx.actor.keyKind === 'publishable';
    if (!result.declined) {
      await expandObjects(tx, ctx.actor, services.clock.nowMs(), [full], expand);
      return publishable ? publishableSetupIntentObject(full) : full;
    }
    const object = publishable ? publishableSetupIntentObject(full) : full;
    const error = result.intent.last_setup_error as SetupError;
    const methodId = error.payment_method?.id;
    const method = methodId === undefined ? undefined
      : await tx.selectFrom('payment_methods').selectAll().where('id', '=', methodId).where('merchant_id', '=', ctx.actor.merchantId).executeTakeFirst();
    const code: ErrorCode = error.code !== undefined && error.code in errorCatalog ? (error.code as ErrorCode) : 'card_declined';
    throw new CofferError(code, error.message ?? 'Your card was declined.', {
      declineCode: error.decline_code ?? undefined,
      ...(method === undefined ? {} : { paymentMethodObject: publishable ? publishablePaymentMethod(paymentMethodObject(method, ctx.actor.apiVersion.shape)) as Record<string, unknown> : paymentMethodObject(method, ctx.actor.apiVersion.shape) }),
      setupIntentObject: object,
    });
  };
  // Every answer that is a SetupIntent expands as a read does.
  const readConfig = { ...config, expandable: Object.keys(setupIntentExpandable) };
  app.post('/v1/setup_intents', { config: readConfig, schema: { body: CreateBody } }, async (request, reply) => {
    const { expand: requested, ...params } = request.body as SetupIntentParams & { expand?: string[] };
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, requested, setupIntentExpandable);
    // With confirm=true the answer is the confirmation's (a decline is a 402 carrying the SetupIntent), kept with the
    // acquirer's answer; without, the new SetupIntent.
    return sendOutcome(reply, await answerInChange(request, (respond) => createSetupIntent(services, ctx, params, respond),
      (created: ConfirmedSetupIntent, tx: Tx) => confirmed(ctx, created, tx, expand)));
  });

  // A publishable key may read a SetupIntent given its client secret (the shopper's page following the card's set-up).
  app.get('/v1/setup_intents/:intent', { config: { ...readConfig, publishableAllowed: true }, schema: { params: IntentParams, querystring: strictObject({ expand: Type.Optional(Expand), client_secret: Type.Optional(Type.String({ maxLength: 200 })) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as { expand?: string[]; client_secret?: string };
    const publishable = ctx.actor.keyKind === 'publishable';
    const expand = publishable ? expansions(query.expand, publishableExpansions) : expansionsFor(ctx.actor, query.expand, setupIntentExpandable);
    const row = await withClientSecret(services, ctx, (request.params as { intent: string }).intent, query.client_secret);
    const [object] = await setupIntentObjects(services.db, [row], ctx.actor.apiVersion.shape);
    assert(object !== undefined, 'one SetupIntent rendered');
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, publishable ? publishableSetupIntentObject(object) : object);
  });

  app.post('/v1/setup_intents/:intent', { config: readConfig, schema: { params: IntentParams, body: UpdateBody } }, async (request, reply) => {
    const { expand: requested, ...params } = request.body as UpdateSetupIntentParams & { expand?: string[] };
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, requested, setupIntentExpandable);
    const id = (request.params as { intent: string }).intent;
    return sendOutcome(reply, await answerInChange(request, (respond) => updateSetupIntent(services, ctx, id, params, respond),
      (intent: SetupIntentRow, tx: Tx) => confirmed(ctx, { intent, declined: false }, tx, expand)));
  });

  // `return_url`: where the shopper goes back to after a 3-D Secure challenge (kept from creation when not given).
  // A publishable key may confirm with the SetupIntent's client secret, as Stripe.js's confirmCardSetup does: with a
  // card it made (`payment_method`) or the card's details (`payment_method_data`), which go to the vault.
  app.post('/v1/setup_intents/:intent/confirm', { config: { ...readConfig, publishableAllowed: true, sensitiveParams }, schema: { params: IntentParams, body: ConfirmBody } }, async (request, reply) => {
    const body = request.body as {
      client_secret?: string; payment_method?: string; payment_method_data?: { type: 'card'; card: Omit<CardParams, 'token'>; billing_details?: Record<string, unknown> };
      return_url?: string; mandate_data?: { customer_acceptance: Record<string, unknown> }; use_stripe_sdk?: boolean; expand?: string[];
    };
    const ctx = requestContext(request);
    const publishable = ctx.actor.keyKind === 'publishable';
    const expand = publishable ? expansions(body.expand, publishableExpansions) : expansionsFor(ctx.actor, body.expand, setupIntentExpandable);
    const id = (request.params as { intent: string }).intent;
    if (publishable || body.client_secret !== undefined) await withClientSecret(services, ctx, id, body.client_secret);
    if (body.payment_method !== undefined && body.payment_method_data !== undefined) {
      throw new CofferError('parameters_exclusive', 'You may pass payment_method or payment_method_data, not both.', { param: 'payment_method_data' });
    }
    return sendOutcome(reply, await answerInChange(request, async (respond) => {
      // The card's details are checked and sealed by the vault first (a refusal names them as sent), and stored with
      // their PaymentMethod by the confirmation's first transaction: a confirmation refused before the verification
      // stores nothing. The card is saved to the SetupIntent's customer only once the acquirer has verified it.
      const data = body.payment_method_data;
      const card = data === undefined ? undefined : await givenCard(services, ctx, data, new Date(services.clock.nowMs()));
      return confirmSetupIntent(services, ctx, id, {
        ...(body.payment_method === undefined ? {} : { payment_method: body.payment_method }),
        ...(card === undefined ? {} : { card }),
        ...(body.return_url === undefined ? {} : { return_url: body.return_url }),
        ...(body.mandate_data === undefined ? {} : { mandate_data: body.mandate_data }),
      }, respond);
    }, (result: ConfirmedSetupIntent, tx: Tx) => confirmed(ctx, result, tx, expand)));
  });

  app.post('/v1/setup_intents/:intent/cancel', {
    config,
    schema: { params: IntentParams, body: strictObject({ cancellation_reason: Type.Optional(Type.Union([Type.Literal('abandoned'), Type.Literal('duplicate'), Type.Literal('requested_by_customer')])), expand: Type.Optional(Expand) }) },
  }, async (request, reply) => {
    const body = request.body as { cancellation_reason?: string };
    const ctx = requestContext(request);
    const id = (request.params as { intent: string }).intent;
    return sendOutcome(reply, await answerInChange(request, (respond) => cancelSetupIntent(services, ctx, id, body.cancellation_reason, respond),
      (intent: SetupIntentRow, tx: Tx) => confirmed(ctx, { intent, declined: false }, tx)));
  });

  app.get('/v1/setup_intents', { config: readConfig, schema: { querystring: strictObject({ ...ListQuery, customer: Type.Optional(ObjectId) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { customer?: string };
    const expand = expansionsFor(ctx.actor, query.expand, setupIntentExpandable, true);
    let rows = services.db.selectFrom('setup_intents').selectAll();
    if (query.customer !== undefined) rows = rows.where('customer_id', '=', query.customer);
    const page = await listPage(services.db, ctx.actor, { table: 'setup_intents', kind: 'setup_intent', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = await setupIntentObjects(services.db, page.data, ctx.actor.apiVersion.shape);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/setup_intents', data, page.hasMore));
  });
}
