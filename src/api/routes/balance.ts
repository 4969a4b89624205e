import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { listBalanceTransactions, retrieveBalanceTransaction } from '../../flows/balance-transactions.ts';
import type { Services } from '../../flows/context.ts';
import { limits } from '../../limits.ts';
import { balanceObject } from '../../objects/balance.ts';
import { balanceTransactionObject } from '../../objects/balance-transaction.ts';
import { merchantAccounts } from '../../store/ledger.ts';
import { requestContext } from '../request-context.ts';
import { Currency, Expand, ListQuery, NoParams, ObjectId, strictObject, type ListQueryParams } from '../schemas.ts';
import { expansions, listObject, sendObject } from './common.ts';
import { expandObjects } from './expand.ts';

const ListTransactionsQuery = strictObject({
  ...ListQuery,
  // Any of Stripe's types is accepted; those Coffer never records (payout, transfer, …) list nothing.
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 60, pattern: '^[a-z_]+$' })),
  source: Type.Optional(ObjectId),
  currency: Type.Optional(Currency),
});

export function registerBalanceRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  app.get('/v1/balance', { config, schema: { querystring: NoParams } }, async (request, reply) => {
    const ctx = requestContext(request);
    const accounts = await merchantAccounts(services.db, ctx.actor.merchantId, ctx.actor.livemode);
    return sendObject(reply, balanceObject(accounts, ctx.actor.livemode, ctx.actor.apiVersion.shape));
  });

  app.get('/v1/balance_transactions/:id', { config: { ...config, expandable: ['source'] }, schema: { params: strictObject({ id: ObjectId }), querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansions((request.query as { expand?: string[] }).expand, ['source']);
    const row = await retrieveBalanceTransaction(services.db, ctx.actor, (request.params as { id: string }).id);
    const object = balanceTransactionObject(row, ctx.actor.apiVersion.shape);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
  });

  app.get('/v1/balance_transactions', { config: { ...config, expandable: ['source'] }, schema: { querystring: ListTransactionsQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { type?: string; source?: string; currency?: string };
    const expand = expansions(query.expand, ['source'], true);
    const page = await listBalanceTransactions(services.db, ctx.actor, { ...query, currency: query.currency?.toLowerCase(), limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map((row) => balanceTransactionObject(row, ctx.actor.apiVersion.shape));
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/balance_transactions', data, page.hasMore));
  });
}
