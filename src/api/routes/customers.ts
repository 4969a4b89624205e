import { Type } from '@sinclair/typebox';
import { sql } from 'kysely';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CofferError, resourceMissing } from '../../domain/errors.ts';
import { permits } from '../../identity/api-keys.ts';
import type { Services, Tx } from '../../flows/context.ts';
import {
  adjustCustomerBalance,
  createCustomer,
  deleteCustomer,
  findCustomer,
  updateCustomer,
  type BalanceTransactionParams,
  type CustomerParams,
} from '../../flows/customers.ts';
import { listPage } from '../../flows/list-page.ts';
import { limits } from '../../limits.ts';
import { customerBalanceTransactionObject, customerObject } from '../../objects/customer.ts';
import type { CustomerBalanceTransactionRow, CustomerRow } from '../../store/database.ts';
import { requestContext } from '../request-context.ts';
import { Address, Currency, Description, Email, Expand, ListQuery, Metadata, ObjectId, SearchQuery, Shipping, emptyable, strictObject, type ListQueryParams } from '../schemas.ts';
import { countOf, parseSearchQuery, searchCondition, searchCursor, searchExpansions, searchResult, type SearchField } from '../search-query.ts';
import { answerInChange, expansionsFor, listObject, sendObject, sendOutcome, withoutExpand } from './common.ts';
import { expandObjects } from './expand.ts';

/** What a customer read can expand, and the resource a restricted key needs to read each. */
const customerExpandable = { 'invoice_settings.default_payment_method': 'payment_methods' } as const;

const CustomerBody = {
  email: Type.Optional(emptyable(Email)),
  name: Type.Optional(emptyable(Type.String({ maxLength: 256 }))),
  phone: Type.Optional(emptyable(Type.String({ maxLength: 40 }))),
  description: Type.Optional(emptyable(Description)),
  address: Type.Optional(emptyable(Address)),
  shipping: Type.Optional(emptyable(Shipping)),
  metadata: Type.Optional(emptyable(Metadata)),
  // A language tag each (`en`, `zh-CN`, `pt-BR`), most preferred first, as Stripe's; `''` clears the list.
  preferred_locales: Type.Optional(emptyable(Type.Array(Type.String({ minLength: 2, maxLength: 35, pattern: '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$' }), { maxItems: limits.preferredLocalesMax }))),
  tax_exempt: Type.Optional(emptyable(Type.Union([Type.Literal('none'), Type.Literal('exempt'), Type.Literal('reverse')]))),
  expand: Type.Optional(Expand),
};
const UpdateBody = strictObject({
  ...CustomerBody,
  invoice_settings: Type.Optional(strictObject({ default_payment_method: Type.Optional(emptyable(ObjectId)) })),
});
const CreateBody = strictObject({
  ...CustomerBody,
  payment_method: Type.Optional(ObjectId),
  // At creation the default can only be the payment method the customer is created with.
  invoice_settings: Type.Optional(strictObject({ default_payment_method: Type.Optional(emptyable(ObjectId)) })),
});
const CustomerParamsSchema = strictObject({ customer: ObjectId });
const BalanceBody = strictObject({
  amount: Type.Integer({ minimum: -limits.amountMinorMax, maximum: limits.amountMinorMax }),
  currency: Currency,
  // Required, unlike Stripe's: the reason for moving the merchant's money to a customer is what its audit says.
  description: Description,
  metadata: Type.Optional(emptyable(Metadata)),
  expand: Type.Optional(Expand),
});


/** What a customer search may ask, as Stripe's customer search takes it. */
const customerSearchFields: Record<string, SearchField> = {
  email: { kind: 'text', column: 'email' },
  name: { kind: 'text', column: 'name' },
  phone: { kind: 'text', column: 'phone' },
  metadata: { kind: 'metadata', column: 'metadata' },
  created: { kind: 'created', column: 'created_at' },
};

export function registerCustomerRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  const readConfig = { ...config, expandable: Object.keys(customerExpandable) };
  /**
   * A change's response, rendered in the change's transaction: the expansions it asks for are checked before the
   * change (a restricted key may lack what they read) and read in that transaction.
   */
  const changed = (request: FastifyRequest) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.body as { expand?: string[] } | undefined)?.expand, customerExpandable);
    return async (customer: CustomerRow, tx: Tx) => {
      const object = customerObject(customer);
      await expandObjects(tx, ctx.actor, services.clock.nowMs(), [object], expand);
      return object;
    };
  };
  app.post('/v1/customers', { config: readConfig, schema: { body: CreateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(request);
    const params = withoutExpand(request.body as CustomerParams & { expand?: string[] });
    // Saving a card to the new customer changes a PaymentMethod: a restricted key needs that too.
    if (params.payment_method !== undefined && ctx.actor.keyKind === 'restricted' && !permits(ctx.actor.permissions ?? {}, 'payment_methods', 'write')) {
      throw new CofferError('insufficient_permissions', 'This restricted key does not have write permission on payment_methods, which payment_method needs.', { param: 'payment_method' });
    }
    return sendOutcome(reply, await answerInChange(request, (respond) => createCustomer(services, ctx, params, respond), render));
  });

  app.get('/v1/customers/search', { config: readConfig, schema: { querystring: SearchQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as { query: string; limit?: number; page?: string; expand?: string[] };
    const asked = searchExpansions(query.expand);
    const expand = expansionsFor(ctx.actor, asked.expand, customerExpandable, true);
    const search = parseSearchQuery(query.query, customerSearchFields);
    const limit = query.limit ?? limits.listLimitDefault;
    const found = services.db.selectFrom('customers').where('merchant_id', '=', ctx.actor.merchantId)
      .where('livemode', '=', ctx.actor.livemode).where('deleted_at', 'is', null).where(searchCondition(search, customerSearchFields));
    let select = found.selectAll();
    if (query.page !== undefined) select = select.where('seq', '<', searchCursor(query.page, '/v1/customers/search', query.query));
    const rows = await select.orderBy('seq', 'desc').limit(limit + 1).execute();
    const data = rows.slice(0, limit).map(customerObject);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    const total = asked.totalCount ? await countOf(found) : undefined;
    return sendObject(reply, searchResult('/v1/customers/search', query.query, data, rows, limit, total));
  });

  app.get('/v1/customers/:customer', { config: readConfig, schema: { params: CustomerParamsSchema, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, customerExpandable);
    const object = customerObject(await findCustomer(services.db, ctx, (request.params as { customer: string }).customer));
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), [object], expand);
    return sendObject(reply, object);
  });

  app.post('/v1/customers/:customer', { config: readConfig, schema: { params: CustomerParamsSchema, body: UpdateBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(request);
    const id = (request.params as { customer: string }).customer;
    const params = withoutExpand(request.body as CustomerParams & { expand?: string[] });
    return sendOutcome(reply, await answerInChange(request, (respond) => updateCustomer(services, ctx, id, params, respond), render));
  });

  app.delete('/v1/customers/:customer', { config, schema: { params: CustomerParamsSchema } }, async (request, reply) => {
    const customer = await deleteCustomer(services, requestContext(request), (request.params as { customer: string }).customer);
    return sendObject(reply, customerObject(customer));
  });

  app.get('/v1/customers', { config: readConfig, schema: { querystring: strictObject({ ...ListQuery, email: Type.Optional(Type.String({ maxLength: 512 })) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { email?: string };
    let rows = services.db.selectFrom('customers').selectAll().where('deleted_at', 'is', null);
    // Both sides lower-cased by the database, as search compares text.
    // Case-sensitive, as Stripe's filter is; the lower-case comparison first lets the index on lower(email) find it.
    if (query.email !== undefined) rows = rows.where(sql<boolean>`lower(email) = lower(${query.email})`).where('email', '=', query.email);
    const expand = expansionsFor(ctx.actor, query.expand, customerExpandable, true);
    const page = await listPage(services.db, ctx.actor, { table: 'customers', kind: 'customer', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map(customerObject);
    await expandObjects(services.db, ctx.actor, services.clock.nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/customers', data, page.hasMore));
  });

  app.post('/v1/customers/:customer/balance_transactions', { config, schema: { params: CustomerParamsSchema, body: BalanceBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const id = (request.params as { customer: string }).customer;
    const params = withoutExpand(request.body as BalanceTransactionParams & { expand?: string[] });
    return sendOutcome(reply, await answerInChange(request, (respond) => adjustCustomerBalance(services, ctx, id, params, respond),
      (transaction: CustomerBalanceTransactionRow) => customerBalanceTransactionObject(transaction)));
  });

  app.get('/v1/customers/:customer/balance_transactions', { config, schema: { params: CustomerParamsSchema, querystring: strictObject(ListQuery) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const customer = await findCustomer(services.db, ctx, (request.params as { customer: string }).customer);
    const query = request.query as ListQueryParams;
    const rows = services.db.selectFrom('customer_balance_transactions').selectAll().where('customer_id', '=', customer.id);
    const page = await listPage(services.db, ctx.actor, { table: 'customer_balance_transactions', kind: 'customer_balance_transaction', rows, customerId: customer.id },
      { ...query, limit: query.limit ?? limits.listLimitDefault });
    return sendObject(reply, listObject(`/v1/customers/${customer.id}/balance_transactions`, page.data.map(customerBalanceTransactionObject), page.hasMore));
  });

  app.get('/v1/customers/:customer/balance_transactions/:transaction', {
    config, schema: { params: strictObject({ customer: ObjectId, transaction: ObjectId }), querystring: strictObject({ expand: Type.Optional(Expand) }) },
  }, async (request, reply) => {
    const ctx = requestContext(request);
    const params = request.params as { customer: string; transaction: string };
    const customer = await findCustomer(services.db, ctx, params.customer);
    const row = await services.db.selectFrom('customer_balance_transactions').selectAll().where('id', '=', params.transaction)
      .where('customer_id', '=', customer.id).executeTakeFirst();
    if (row === undefined) throw resourceMissing('customer_balance_transaction', params.transaction, 'transaction');
    return sendObject(reply, customerBalanceTransactionObject(row));
  });
}
