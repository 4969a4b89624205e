import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { resourceMissing } from '../../domain/errors.ts';
import type { Services } from '../../flows/context.ts';
import { closeDispute, findDispute, updateDispute, type UpdateDisputeParams } from '../../flows/disputes.ts';
import { limits } from '../../limits.ts';
import { disputeEvidenceFields, disputeObject } from '../../objects/dispute.ts';
import { requestContext } from '../request-context.ts';
import { Expand, ListQuery, Metadata, ObjectId, emptyable, strictObject } from '../schemas.ts';
import { listObject, sendObject } from './common.ts';

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
  const now = () => services.clock.nowMs();
  app.get('/v1/disputes/:dispute', { config, schema: { params: DisputeParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const dispute = await findDispute(services.db, requestContext(request), (request.params as { dispute: string }).dispute);
    return sendObject(reply, disputeObject(dispute, now()));
  });

  app.post('/v1/disputes/:dispute', { config, schema: { params: DisputeParams, body: UpdateBody } }, async (request, reply) => {
    const { expand: _expand, ...params } = request.body as UpdateDisputeParams & { expand?: string[] };
    const dispute = await updateDispute(services, requestContext(request), (request.params as { dispute: string }).dispute, params);
    return sendObject(reply, disputeObject(dispute, now()));
  });

  app.post('/v1/disputes/:dispute/close', { config, schema: { params: DisputeParams, body: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const dispute = await closeDispute(services, requestContext(request), (request.params as { dispute: string }).dispute);
    return sendObject(reply, disputeObject(dispute, now()));
  });

  app.get('/v1/disputes', { config, schema: { querystring: ListDisputesQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as { limit?: number; starting_after?: string; ending_before?: string; charge?: string; payment_intent?: string };
    const limit = query.limit ?? limits.listLimitDefault;
    let select = services.db.selectFrom('disputes').selectAll().where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
    if (query.charge !== undefined) select = select.where('charge_id', '=', query.charge);
    if (query.payment_intent !== undefined) select = select.where('payment_intent_id', '=', query.payment_intent);
    const cursorId = query.starting_after ?? query.ending_before;
    if (cursorId !== undefined) {
      const cursor = await findDispute(services.db, ctx, cursorId).catch(() => {
        throw resourceMissing('dispute', cursorId, query.starting_after !== undefined ? 'starting_after' : 'ending_before');
      });
      select = query.starting_after !== undefined ? select.where('seq', '<', cursor.seq) : select.where('seq', '>', cursor.seq);
    }
    const ascending = query.ending_before !== undefined;
    const rows = await select.orderBy('seq', ascending ? 'asc' : 'desc').limit(limit + 1).execute();
    const page = rows.slice(0, limit);
    if (ascending) page.reverse();
    return sendObject(reply, listObject('/v1/disputes', page.map((row) => disputeObject(row, now())), rows.length > limit));
  });
}
