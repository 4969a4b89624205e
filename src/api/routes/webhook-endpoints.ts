import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import { limits } from '../../limits.ts';
import { webhookEndpointObject } from '../../objects/webhook-endpoint.ts';
import { createEndpoint, deleteEndpoint, findEndpoint, rollEndpointSecret, updateEndpoint, type EndpointParams, type EndpointWithSecret } from '../../webhooks/endpoints.ts';
import { requestContext } from '../request-context.ts';
import { Description, Expand, ListLimit, ListQuery, Metadata, ObjectId, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { answerInChange, listObject, sendObject, sendOutcome } from './common.ts';
import type { WebhookEndpointRow } from '../../store/database.ts';
import { openSecret } from '../../platform/secret-box.ts';
import { endpointDeliveries, type DeliveryListParams } from '../../webhooks/deliveries.ts';

const EventType = Type.String({ maxLength: 100, pattern: '^(\\*|[a-z_]+(\\.[a-z_]+)+)$' });
const EnabledEvents = Type.Array(EventType, { minItems: 1, maxItems: 100 });
const Url = Type.String({ minLength: 1, maxLength: limits.webhookUrlLengthMax });
const CreateBody = strictObject({
  url: Url,
  enabled_events: EnabledEvents,
  api_version: Type.Optional(Type.String({ maxLength: 40 })),
  description: Type.Optional(Description),
  metadata: Type.Optional(emptyable(Metadata)),
  expand: Type.Optional(Expand),
});
const UpdateBody = strictObject({
  url: Type.Optional(Url),
  enabled_events: Type.Optional(EnabledEvents),
  description: Type.Optional(emptyable(Description)),
  metadata: Type.Optional(emptyable(Metadata)),
  disabled: Type.Optional(Type.Boolean()),
  expand: Type.Optional(Expand),
});
const EndpointParamsSchema = strictObject({ id: ObjectId });
const DeliveriesQuery = strictObject({
  limit: Type.Optional(ListLimit),
  starting_after: Type.Optional(ObjectId),
  ending_before: Type.Optional(ObjectId),
  status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('succeeded'), Type.Literal('failed')])),
  event: Type.Optional(ObjectId),
});

/** Webhook endpoints (Stripe's API), plus `roll_secret`, a Coffer extension for rotating the signing secret. */
export function registerWebhookEndpointRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  /**
   * A replay of a creation or a roll (the SDK retries with the same key when an answer is lost) shows the endpoint's
   * current secret: the kept response leaves it out, and a note in its place would be stored as the secret.
   */
  const replayRestore = async (request: FastifyRequest, body: string): Promise<string> => {
    const object = JSON.parse(body) as Record<string, unknown>;
    if (object.object !== 'webhook_endpoint' || typeof object.id !== 'string' || !('secret' in object)) return body;
    const current = await services.db.selectFrom('webhook_endpoints').select(['id', 'secret_ciphertext', 'deleted_at'])
      .where('id', '=', object.id).where('merchant_id', '=', requestContext(request).actor.merchantId).executeTakeFirst();
    if (current === undefined || current.deleted_at !== null) return body;
    try {
      object.secret = openSecret(services.webhooks.secretKey, current.id, current.secret_ciphertext).reveal();
    } catch (error) {
      // Sealed under another installation's secret (a database moved without its home): the replay keeps its note.
      request.log.warn({ err: error, endpoint: current.id }, 'webhook endpoint secret could not be opened for a replay');
      return body;
    }
    return JSON.stringify(object);
  };
  const secretConfig = { merchantApi: true, replayRedacts: ['secret'], replayRestore };
  app.post('/v1/webhook_endpoints', { config: secretConfig, schema: { body: CreateBody } }, async (request, reply) => {
    const { expand: _expand, ...params } = request.body as EndpointParams & { url: string; enabled_events: string[]; expand?: string[] };
    const ctx = requestContext(request);
    return sendOutcome(reply, await answerInChange(request, (respond) => createEndpoint(services, ctx, params, respond),
      (created: EndpointWithSecret) => webhookEndpointObject(created.endpoint, created.secret?.reveal())));
  });

  app.get('/v1/webhook_endpoints/:id', { config, schema: { params: EndpointParamsSchema, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const endpoint = await findEndpoint(services.db, requestContext(request), (request.params as { id: string }).id);
    return sendObject(reply, webhookEndpointObject(endpoint));
  });

  app.post('/v1/webhook_endpoints/:id', { config, schema: { params: EndpointParamsSchema, body: UpdateBody } }, async (request, reply) => {
    const { expand: _expand, ...params } = request.body as EndpointParams & { expand?: string[] };
    const ctx = requestContext(request);
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => updateEndpoint(services, ctx, id, params, respond),
      (endpoint: WebhookEndpointRow) => webhookEndpointObject(endpoint)));
  });

  app.delete('/v1/webhook_endpoints/:id', { config, schema: { params: EndpointParamsSchema } }, async (request, reply) => {
    const endpoint = await deleteEndpoint(services, requestContext(request), (request.params as { id: string }).id);
    return sendObject(reply, { id: endpoint.id, object: 'webhook_endpoint', deleted: true });
  });

  app.post('/v1/webhook_endpoints/:id/roll_secret', {
    config: secretConfig,
    schema: { params: EndpointParamsSchema, body: strictObject({ expires_in: Type.Optional(Type.Integer({ minimum: 0, maximum: limits.webhookSecretRollMaxMs / 1000 })) }) },
  }, async (request, reply) => {
    const body = request.body as { expires_in?: number };
    const ctx = requestContext(request);
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => rollEndpointSecret(services, ctx, id, body.expires_in ?? 24 * 3600, respond),
      (rolled: EndpointWithSecret) => webhookEndpointObject(rolled.endpoint, rolled.secret?.reveal())));
  });

  // Coffer's extension: the endpoint's deliveries, newest first, with every attempt and why it failed.
  app.get('/v1/webhook_endpoints/:id/deliveries', { config, schema: { params: EndpointParamsSchema, querystring: DeliveriesQuery } }, async (request, reply) => {
    const id = (request.params as { id: string }).id;
    const query = request.query as Partial<DeliveryListParams>;
    const page = await endpointDeliveries(services.db, requestContext(request), services.webhooks.secretKey, id, { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject(`/v1/webhook_endpoints/${id}/deliveries`, page.data, page.hasMore));
  });

  app.get('/v1/webhook_endpoints', { config, schema: { querystring: strictObject(ListQuery) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams;
    const rows = services.db.selectFrom('webhook_endpoints').selectAll().where('deleted_at', 'is', null);
    const page = await listPage(services.db, ctx.actor, { table: 'webhook_endpoints', kind: 'webhook_endpoint', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/webhook_endpoints', page.data.map((row) => webhookEndpointObject(row)), page.hasMore));
  });
}
