import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../flows/context.ts';
import { decideReview, findReview, listOpenReviews } from '../../flows/reviews.ts';
import { limits } from '../../limits.ts';
import { reviewObject } from '../../objects/review.ts';
import { requestContext } from '../request-context.ts';
import { ListLimit, NoParams, ObjectId, strictObject } from '../schemas.ts';
import { answerInChange, listObject, sendObject, sendOutcome } from './common.ts';
import type { ReviewRow } from '../../store/database.ts';

const IdParams = strictObject({ id: ObjectId });
const ListQuery = strictObject({ limit: Type.Optional(ListLimit), starting_after: Type.Optional(ObjectId), ending_before: Type.Optional(ObjectId) });

/**
 * Stripe's Reviews: the open ones are the queue; approve captures the held payment. Reject (a Coffer extension:
 * Stripe rejects by refunding) cancels the authorization, or refunds money already taken, as fraud.
 */
export function registerReviewRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.get('/v1/reviews', { config, schema: { querystring: ListQuery } }, async (request, reply) => {
    const query = request.query as { limit?: number; starting_after?: string; ending_before?: string };
    const page = await listOpenReviews(services, requestContext(request), { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject('/v1/reviews', page.data.map(reviewObject), page.hasMore));
  });
  app.get('/v1/reviews/:id', { config, schema: { params: IdParams, querystring: NoParams } }, async (request, reply) =>
    sendObject(reply, reviewObject(await findReview(services.db, requestContext(request), (request.params as { id: string }).id))));
  for (const decision of ['approve', 'reject'] as const) {
    app.post(`/v1/reviews/:id/${decision}`, { config, schema: { params: IdParams, body: Type.Optional(NoParams) } }, async (request, reply) => {
      const ctx = requestContext(request);
      const id = (request.params as { id: string }).id;
      return sendOutcome(reply, await answerInChange(request, (respond) => decideReview(services, ctx, id, decision, respond), (review: ReviewRow) => reviewObject(review)));
    });
  }
}
