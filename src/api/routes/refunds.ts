import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { CofferError, resourceMissing } from '../../domain/errors.ts';
import type { RequestContext, Services, Tx } from '../../flows/context.ts';
import { createRefund, type CreateRefundParams, type RespondRefund } from '../../flows/create-refund.ts';
import { listPage } from '../../flows/list-page.ts';
import { checkMetadataSize, mergeMetadata } from '../../flows/payment-intent-params.ts';
import { recordChange } from '../../flows/payment-intent-records.ts';
import { inTransaction } from '../../flows/transaction.ts';
import { requestTrail } from '../../flows/trail.ts';
import { limits } from '../../limits.ts';
import { refundObject } from '../../objects/refund.ts';
import type { Kysely } from 'kysely';
import type { Database, RefundRow } from '../../store/database.ts';
import { requestContext } from '../request-context.ts';
import { Amount, Expand, ListQuery, Metadata, ObjectId, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { expansionsFor, listObject, sendObject, sendOutcome } from './common.ts';
import { expandObjects } from './expand.ts';

/** What it can expand, and the resource a restricted key needs to read each. */
const refundExpandable = { balance_transaction: 'balance', charge: 'charges', payment_intent: 'payment_intents' } as const;

const Reason = Type.Union([Type.Literal('duplicate'), Type.Literal('fraudulent'), Type.Literal('requested_by_customer')]);
const CreateBody = strictObject({
  payment_intent: Type.Optional(ObjectId),
  charge: Type.Optional(ObjectId),
  amount: Type.Optional(Amount),
  reason: Type.Optional(Reason),
  metadata: Type.Optional(emptyable(Metadata)),
  expand: Type.Optional(Expand),
});
const UpdateBody = strictObject({ metadata: Type.Optional(emptyable(Metadata)), expand: Type.Optional(Expand) });
const RefundParams = strictObject({ refund: ObjectId });
const ListRefundsQuery = strictObject({ ...ListQuery, charge: Type.Optional(ObjectId), payment_intent: Type.Optional(ObjectId) });


function refundResponder(services: Services, ctx: RequestContext, expand: readonly string[] = []): RespondRefund {
  const respond = async (tx: Tx, refund: RefundRow) => {
    const object = refundObject(refund, ctx.actor.apiVersion.shape);
    await expandObjects(tx, ctx.actor, services.clock.nowMs(), [object], expand);
    const outcome = { statusCode: 200, body: JSON.stringify(object) };
    if (ctx.idempotency !== undefined) await ctx.idempotency.complete(tx, outcome);
    return outcome;
  };
  return Object.assign(respond, { rendersAfterChange: expand.includes('balance_transaction') });
}

async function findRefund(reader: Tx | Kysely<Database>, ctx: RequestContext, id: string, lock = false): Promise<RefundRow> {
  let query = reader.selectFrom('refunds').selectAll().where('id', '=', id)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
  if (lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('refund', id, 'refund');
  return row;
}

export function registerRefundRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  // Reads and changes alike expand the refund's balance transaction, charge and PaymentIntent, read in the change's
  // own transaction (so they show the refund); a change asked for the balance transaction writes the ledger first.
  const expandConfig = { ...config, expandable: Object.keys(refundExpandable) };
  app.post('/v1/refunds', { config: expandConfig, schema: { body: CreateBody } }, async (request, reply) => {
    const { expand, ...params } = request.body as CreateRefundParams & { expand?: string[] };
    const ctx = requestContext(request);
    const responder = refundResponder(services, ctx, expansionsFor(ctx.actor, expand, refundExpandable));
    return sendOutcome(reply, await createRefund(services, ctx, params, responder));
  });

  app.get('/v1/refunds/:refund', { config: expandConfig, schema: { params: RefundParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, refundExpandable);
    const refund = await findRefund(services.db, ctx, (request.params as { refund: string }).refund);
    const object = refundObject(refund, ctx.actor.apiVersion.shape);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
  });

  app.post('/v1/refunds/:refund', { config: expandConfig, schema: { params: RefundParams, body: UpdateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const id = (request.params as { refund: string }).refund;
    const body = request.body as { metadata?: Record<string, string> | ''; expand?: string[] };
    const responder = refundResponder(services, ctx, expansionsFor(ctx.actor, body.expand, refundExpandable));
    const now = new Date(services.clock.nowMs());
    const outcome = await inTransaction(services.db, async (tx) => {
      // Inside the transaction, every read goes through it: the embedded database has one connection.
      const refund = await findRefund(tx, ctx, id, true);
      const metadata = mergeMetadata(refund.metadata, body.metadata);
      checkMetadataSize(metadata, limits.metadataKeysMax);
      const after = await tx.updateTable('refunds').set({ metadata: JSON.stringify(metadata), updated_at: now })
        .where('id', '=', refund.id).returningAll().executeTakeFirstOrThrow();
      await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'refund.update', objectType: 'refund', objectId: refund.id },
        [{ type: 'refund.updated', refund: { before: refund, after } }], now);
      return responder(tx, after);
    });
    return sendOutcome(reply, outcome);
  });

  app.post('/v1/refunds/:refund/cancel', { config, schema: { params: RefundParams, body: strictObject({ expand: Type.Optional(Expand) }) } }, async (request) => {
    const ctx = requestContext(request);
    const refund = await findRefund(services.db, ctx, (request.params as { refund: string }).refund);
    // Card refunds never wait for the shopper (requires_action), so there is never one to cancel.
    throw new CofferError(
      'refund_unexpected_state',
      `This refund cannot be canceled because it has a status of ${refund.status}. Only a refund with a status of requires_action can be canceled.`,
    );
  });

  // A charge's refunds at the address its `refunds` list names (the charge's list in versions before 2022-11-15), as
  // Stripe still serves it: list, retrieve, and create for that charge. A restricted key needs charges and refunds.
  const ChargeParams = strictObject({ charge: ObjectId });
  const chargeOf = async (ctx: RequestContext, id: string) => {
    const row = await services.db.selectFrom('charges').select('id').where('id', '=', id)
      .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
    if (row === undefined) throw resourceMissing('charge', id, 'charge');
    return row.id;
  };
  app.get('/v1/charges/:charge/refunds', { config: expandConfig, schema: { params: ChargeParams, querystring: strictObject(ListQuery) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const charge = await chargeOf(ctx, (request.params as { charge: string }).charge);
    const query = request.query as ListQueryParams;
    const expand = expansionsFor(ctx.actor, query.expand, refundExpandable, true);
    const rows = services.db.selectFrom('refunds').selectAll().where('charge_id', '=', charge);
    const page = await listPage(services.db, ctx.actor, { table: 'refunds', kind: 'refund', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map((row) => refundObject(row, ctx.actor.apiVersion.shape));
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return sendObject(reply, listObject(`/v1/charges/${charge}/refunds`, data, page.hasMore));
  });
  app.get('/v1/charges/:charge/refunds/:refund', {
    config: expandConfig, schema: { params: strictObject({ charge: ObjectId, refund: ObjectId }), querystring: strictObject({ expand: Type.Optional(Expand) }) },
  }, async (request, reply) => {
    const ctx = requestContext(request);
    const params = request.params as { charge: string; refund: string };
    const charge = await chargeOf(ctx, params.charge);
    const refund = await findRefund(services.db, ctx, params.refund);
    // Another charge's refund is not at this address: the same answer as an unknown one.
    if (refund.charge_id !== charge) throw resourceMissing('refund', params.refund, 'refund');
    const object = refundObject(refund, ctx.actor.apiVersion.shape);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, refundExpandable));
    return sendObject(reply, object);
  });
  const { charge: _charge, payment_intent: _paymentIntent, ...chargeRefundFields } = CreateBody.properties;
  app.post('/v1/charges/:charge/refunds', { config: expandConfig, schema: { params: ChargeParams, body: strictObject(chargeRefundFields) } }, async (request, reply) => {
    const { expand, ...params } = request.body as Omit<CreateRefundParams, 'charge' | 'payment_intent'> & { expand?: string[] };
    const ctx = requestContext(request);
    const responder = refundResponder(services, ctx, expansionsFor(ctx.actor, expand, refundExpandable));
    return sendOutcome(reply, await createRefund(services, ctx, { ...params, charge: (request.params as { charge: string }).charge }, responder));
  });

  app.get('/v1/refunds', { config: expandConfig, schema: { querystring: ListRefundsQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { charge?: string; payment_intent?: string };
    const expand = expansionsFor(ctx.actor, query.expand, refundExpandable, true);
    let rows = services.db.selectFrom('refunds').selectAll();
    if (query.charge !== undefined) rows = rows.where('charge_id', '=', query.charge);
    if (query.payment_intent !== undefined) rows = rows.where('payment_intent_id', '=', query.payment_intent);
    const page = await listPage(services.db, ctx.actor, { table: 'refunds', kind: 'refund', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map((row) => refundObject(row, ctx.actor.apiVersion.shape));
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/refunds', data, page.hasMore));
  });
}
