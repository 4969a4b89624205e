import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services, Tx } from '../../flows/context.ts';
import { closeDispute, disputeObjects, disputeStateObject, findDispute, updateDispute, type DisputeState, type UpdateDisputeParams } from '../../flows/disputes.ts';
import { listPage } from '../../flows/list-page.ts';
import { limits } from '../../limits.ts';
import { disputeEvidenceFields } from '../../objects/dispute.ts';
import type { DisputeRow } from '../../store/database.ts';
import { requestContext } from '../request-context.ts';
import { Expand, ListQuery, Metadata, ObjectId, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { answerInChange, expansionsFor, listObject, sendObject, sendOutcome } from './common.ts';
import { expandObjects } from './expand.ts';

/** What a dispute read can expand, and the resource a restricted key needs to read each. */
const disputeExpandable = { charge: 'charges', payment_intent: 'payment_intents' } as const;

const Evidence = strictObject(Object.fromEntries(disputeEvidenceFields.map((field) => [field, Type.Optional(Type.String({ maxLength: 20_000 }))])));
const UpdateBody = strictObject({
  evidence: Type.Optional(Evidence),
  submit: Type.Optional(Type.Boolean()),
  metadata: Type.Optional(emptyable(Metadata)),
  expand: Type.Optional(Expand),
});
const DisputeParams = strictObject({ dispute: ObjectId });
const ListDisputesQuery = strictObject({ ...ListQuery, charge: Type.Optional(ObjectId), payment_intent: Type.Optional(ObjectId) });

export function registerDisputeRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  /** The disputes as the response shows them, with their balance transactions. */
  const render = (request: FastifyRequest, rows: DisputeRow[]) => {
    const actor = requestContext(request).actor;
    return disputeObjects(services.db, actor, actor.apiVersion.shape, rows, services.clock.nowMs());
  };
  const one = async (request: FastifyRequest, row: DisputeRow) => (await render(request, [row]))[0];
  /** A change's result, rendered with the transactions read in its own transaction. */
  const changed = (request: FastifyRequest, state: DisputeState) => disputeStateObject(state, requestContext(request).actor.apiVersion.shape, services.clock.nowMs());
  const readConfig = { ...config, expandable: Object.keys(disputeExpandable) };
  app.get('/v1/disputes/:dispute', { config: readConfig, schema: { params: DisputeParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, disputeExpandable);
    const dispute = await findDispute(services.db, ctx, (request.params as { dispute: string }).dispute);
    const object = await one(request, dispute);
    if (object !== undefined) await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
  });

  // A change's response expands as a read does: the paths are checked before the change (a restricted key may lack
  // what they read), and read in the change's own transaction, which keeps the response (decision 0027).
  const expanded = (request: FastifyRequest) => {
    const actor = requestContext(request).actor;
    const expand = expansionsFor(actor, (request.body as { expand?: string[] } | undefined)?.expand, disputeExpandable);
    return async (state: DisputeState, tx: Tx) => {
      const object = changed(request, state);
      await expandObjects(tx, actor, services.clock.nowMs(), [object], expand);
      return object;
    };
  };
  app.post('/v1/disputes/:dispute', { config: readConfig, schema: { params: DisputeParams, body: UpdateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = expanded(request);
    const { expand: _expand, ...params } = request.body as UpdateDisputeParams & { expand?: string[] };
    const id = (request.params as { dispute: string }).dispute;
    return sendOutcome(reply, await answerInChange(request, (respond) => updateDispute(services, ctx, id, params, respond), render));
  });

  app.post('/v1/disputes/:dispute/close', { config: readConfig, schema: { params: DisputeParams, body: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = expanded(request);
    const id = (request.params as { dispute: string }).dispute;
    return sendOutcome(reply, await answerInChange(request, (respond) => closeDispute(services, ctx, id, respond), render));
  });

  app.get('/v1/disputes', { config: readConfig, schema: { querystring: ListDisputesQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { charge?: string; payment_intent?: string };
    const expand = expansionsFor(ctx.actor, query.expand, disputeExpandable, true);
    let rows = services.db.selectFrom('disputes').selectAll();
    if (query.charge !== undefined) rows = rows.where('charge_id', '=', query.charge);
    if (query.payment_intent !== undefined) rows = rows.where('payment_intent_id', '=', query.payment_intent);
    const page = await listPage(services.db, ctx.actor, { table: 'disputes', kind: 'dispute', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = await render(request, page.data);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/disputes', data, page.hasMore));
  });
}
