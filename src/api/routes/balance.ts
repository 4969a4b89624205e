import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Kysely, Selectable } from 'kysely';
import { balanceTransactionsById, listBalanceTransactions, retrieveBalanceTransaction } from '../../flows/balance-transactions.ts';
import { CofferError } from '../../domain/errors.ts';
import type { Actor, Services } from '../../flows/context.ts';
import { disputeObjects } from '../../flows/disputes.ts';
import { permits, type ApiResource } from '../../identity/api-keys.ts';
import type { Scope } from '../../flows/payment-intent-records.ts';
import { limits } from '../../limits.ts';
import type { ApiShape } from '../../objects/api-version.ts';
import { balanceObject } from '../../objects/balance.ts';
import { balanceTransactionObject } from '../../objects/balance-transaction.ts';
import { chargeObject } from '../../objects/charge.ts';
import { customerBalanceTransactionObject } from '../../objects/customer.ts';
import { refundObject } from '../../objects/refund.ts';
import type { Database } from '../../store/database.ts';
import { merchantAccounts } from '../../store/ledger.ts';
import { requestContext } from '../request-context.ts';
import { Currency, Expand, ListQuery, NoParams, ObjectId, strictObject, type ListQueryParams } from '../schemas.ts';
import { expansions, listObject, sendObject } from './common.ts';

const ListTransactionsQuery = strictObject({
  ...ListQuery,
  // Any of Stripe's types is accepted; those Coffer never records (payout, transfer, …) list nothing.
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 60, pattern: '^[a-z_]+$' })),
  source: Type.Optional(ObjectId),
  currency: Type.Optional(Currency),
});

/**
 * Replaces the `balance_transaction` ids of rendered charges or refunds with the transactions themselves
 * (`expand[]=balance_transaction`), read in one query.
 */
export async function expandBalanceTransactions(db: Kysely<Database>, scope: Scope, shape: ApiShape, objects: Array<Record<string, unknown>>): Promise<void> {
  const ids = objects.map((object) => object.balance_transaction).filter((id): id is string => typeof id === 'string');
  const rows = await balanceTransactionsById(db, scope, ids);
  for (const object of objects) {
    const row = typeof object.balance_transaction === 'string' ? rows.get(object.balance_transaction) : undefined;
    if (row !== undefined) object.balance_transaction = balanceTransactionObject(row, shape);
  }
}

type SourceTable = 'charges' | 'refunds' | 'disputes' | 'customer_balance_transactions';

/** A source's rows of one kind, within the actor's merchant and mode. */
async function sourceRows<T extends SourceTable>(db: Kysely<Database>, table: T, ids: string[], scope: Scope): Promise<Array<Selectable<Database[T]>>> {
  // As the union of the four tables (not the generic T), Kysely can check the columns they all have.
  const owned: SourceTable = table;
  const rows = await db.selectFrom(owned).selectAll().where('id', 'in', ids)
    .where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode).execute();
  return rows as Array<Selectable<Database[T]>>;
}

/**
 * The kinds of object a transaction's source can be, by its id's prefix: where each is read from, the permission
 * a restricted key needs to read it, and how its own endpoint renders it.
 */
const sourceKinds: Array<{ prefix: string; resource: ApiResource; load: (db: Kysely<Database>, ids: string[], actor: Actor, nowMs: number) => Promise<Array<Record<string, unknown>>> }> = [
  { prefix: 'ch_', resource: 'charges', load: async (db, ids, actor) => (await sourceRows(db, 'charges', ids, actor)).map((row) => chargeObject(row, actor.apiVersion.shape)) },
  { prefix: 're_', resource: 'refunds', load: async (db, ids, actor) => (await sourceRows(db, 'refunds', ids, actor)).map((row) => refundObject(row, actor.apiVersion.shape)) },
  { prefix: 'dp_', resource: 'disputes', load: async (db, ids, actor, nowMs) => disputeObjects(db, actor, actor.apiVersion.shape, await sourceRows(db, 'disputes', ids, actor), nowMs) },
  { prefix: 'cbtxn_', resource: 'customers', load: async (db, ids, actor) => (await sourceRows(db, 'customer_balance_transactions', ids, actor)).map(customerBalanceTransactionObject) },
];

/**
 * Replaces the `source` ids of rendered transactions with the objects themselves (`expand[]=source`): the charge,
 * refund, dispute or customer balance transaction, read with one query per kind. A restricted key needs read
 * permission on each kind it expands.
 */
async function expandSources(db: Kysely<Database>, actor: Actor, nowMs: number, objects: Array<Record<string, unknown>>): Promise<void> {
  const rendered = new Map<string, Record<string, unknown>>();
  for (const kind of sourceKinds) {
    const ids = objects.map((object) => object.source).filter((id): id is string => typeof id === 'string' && id.startsWith(kind.prefix));
    if (ids.length === 0) continue;
    if (actor.keyKind === 'restricted' && !permits(actor.permissions ?? {}, kind.resource, 'read')) {
      throw new CofferError('insufficient_permissions', `This restricted key does not have read permission on ${kind.resource}, which expanding source needs.`, { param: 'expand' });
    }
    for (const source of await kind.load(db, ids, actor, nowMs)) rendered.set(String(source.id), source);
  }
  for (const object of objects) {
    const source = typeof object.source === 'string' ? rendered.get(object.source) : undefined;
    if (source !== undefined) object.source = source;
  }
}

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
    if (expand.includes('source')) await expandSources(services.db, ctx.actor, services.clock.nowMs(), [object]);
    return sendObject(reply, object);
  });

  app.get('/v1/balance_transactions', { config: { ...config, expandable: ['source'] }, schema: { querystring: ListTransactionsQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { type?: string; source?: string; currency?: string };
    const expand = expansions(query.expand, ['source'], true);
    const page = await listBalanceTransactions(services.db, ctx.actor, { ...query, currency: query.currency?.toLowerCase(), limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map((row) => balanceTransactionObject(row, ctx.actor.apiVersion.shape));
    if (expand.includes('source')) await expandSources(services.db, ctx.actor, services.clock.nowMs(), data);
    return sendObject(reply, listObject('/v1/balance_transactions', data, page.hasMore));
  });
}
