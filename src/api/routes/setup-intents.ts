import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CofferError, errorCatalog, resourceMissing, type ErrorCode } from '../../domain/errors.ts';
import type { Services, Tx } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import { cancelSetupIntent, confirmSetupIntent, createSetupIntent, updateSetupIntent, type ConfirmedSetupIntent, type SetupIntentParams, type UpdateSetupIntentParams } from '../../flows/setup-intents.ts';
import type { RequestContext } from '../../flows/context.ts';
import { paymentMethodObject } from '../../objects/payment-method.ts';
import { limits } from '../../limits.ts';
import { setupIntentObjects } from '../../objects/setup-intent.ts';
import { assert } from '../../platform/assert.ts';
import { requestContext } from '../request-context.ts';
import { Description, Expand, ListQuery, Metadata, ObjectId, Url, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { answerInChange, expansionsFor, listObject, sameSecret, sendObject, sendOutcome } from './common.ts';
import type { SetupIntentRow } from '../../store/database.ts';
import { expandObjects } from './expand.ts';

/** What a SetupIntent read can expand, and the resource a restricted key needs to read each. */
const setupIntentExpandable = { customer: 'customers', payment_method: 'payment_methods' } as const;

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
  expand: Type.Optional(Expand),
});
const UpdateBody = strictObject({
  description: Type.Optional(emptyable(Description)),
  metadata: Type.Optional(emptyable(Metadata)),
  payment_method: Type.Optional(ObjectId),
  expand: Type.Optional(Expand),
});
const IntentParams = strictObject({ intent: ObjectId });

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
    const [object] = await setupIntentObjects(tx, [result.intent], ctx.actor.apiVersion.shape);
    assert(object !== undefined, 'one SetupIntent rendered');
    if (!result.declined) {
      await expandObjects(tx, ctx.actor, services.clock.nowMs(), [object], expand);
      return object;
    }
    const error = result.intent.last_setup_error as SetupError;
    const methodId = error.payment_method?.id;
    const method = methodId === undefined ? undefined
      : await tx.selectFrom('payment_methods').selectAll().where('id', '=', methodId).where('merchant_id', '=', ctx.actor.merchantId).executeTakeFirst();
    const code: ErrorCode = error.code !== undefined && error.code in errorCatalog ? (error.code as ErrorCode) : 'card_declined';
    throw new CofferError(code, error.message ?? 'Your card was declined.', {
      declineCode: error.decline_code ?? undefined,
      ...(method === undefined ? {} : { paymentMethodObject: paymentMethodObject(method, ctx.actor.apiVersion.shape) }),
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

  app.get('/v1/setup_intents/:intent', { config: readConfig, schema: { params: IntentParams, querystring: strictObject({ expand: Type.Optional(Expand), client_secret: Type.Optional(Type.String({ maxLength: 200 })) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, setupIntentExpandable);
    const id = (request.params as { intent: string }).intent;
    const row = await services.db.selectFrom('setup_intents').selectAll().where('id', '=', id).where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
    if (row === undefined) throw resourceMissing('setup_intent', id, 'intent');
    // As for a PaymentIntent: a client secret that does not match is refused whatever the key.
    const clientSecret = (request.query as { client_secret?: string }).client_secret;
    if (clientSecret !== undefined && !sameSecret(clientSecret, row.client_secret)) {
      throw new CofferError('parameter_invalid', 'The client_secret provided does not match the client_secret associated with the SetupIntent.', { param: 'client_secret' });
    }
    const [object] = await setupIntentObjects(services.db, [row], ctx.actor.apiVersion.shape);
    assert(object !== undefined, 'one SetupIntent rendered');
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
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
  app.post('/v1/setup_intents/:intent/confirm', { config: readConfig, schema: { params: IntentParams, body: strictObject({ payment_method: Type.Optional(ObjectId), return_url: Type.Optional(Url), expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const { expand: requested, ...params } = request.body as { payment_method?: string; return_url?: string; expand?: string[] };
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, requested, setupIntentExpandable);
    const id = (request.params as { intent: string }).intent;
    return sendOutcome(reply, await answerInChange(request,
      (respond) => confirmSetupIntent(services, ctx, id, params, respond),
      (result: ConfirmedSetupIntent, tx: Tx) => confirmed(ctx, result, tx, expand)));
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
