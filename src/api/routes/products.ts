import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { SelectQueryBuilder } from 'kysely';
import type { Services, Tx } from '../../flows/context.ts';
import { listPage } from '../../flows/list-page.ts';
import {
  createPrice, createProduct, deleteProduct, findPrice, findProduct, updatePrice, updateProduct,
  type PriceParams, type PriceUpdateParams, type ProductParams,
} from '../../flows/products.ts';
import type { ApiResource } from '../../identity/api-keys.ts';
import { limits } from '../../limits.ts';
import { priceObject, productObject } from '../../objects/product.ts';
import type { Database, PriceRow, ProductRow } from '../../store/database.ts';
import { requestContext } from '../request-context.ts';
import {
  Currency, Description, Expand, ListQuery, Metadata, ObjectId, SearchQuery, StatementDescriptor, Url, emptyable, strictObject, type ListQueryParams,
} from '../schemas.ts';
import { countOf, parseSearchQuery, searchCondition, searchCursor, searchExpansions, searchResult, type SearchField } from '../search-query.ts';
import { answerInChange, expansionsFor, listObject, sendObject, sendOutcome, withoutExpand } from './common.ts';
import { expandObjects } from './expand.ts';

type Rendered = Record<string, unknown>;

const productExpandable = { default_price: 'prices' } as const;
const priceExpandable = { product: 'products' } as const;

// A product's own id: letters, digits, `_`, `-` and `.`, as a path segment can carry it unescaped.
const ProductId = Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9_.-]+$' });
const ProductName = Type.String({ minLength: 1, maxLength: 250 });
const UnitLabel = Type.String({ maxLength: 12 });
const Images = Type.Array(Url, { maxItems: 8 });
const MarketingFeatures = Type.Array(strictObject({ name: Type.String({ minLength: 1, maxLength: 80 }) }), { maxItems: 15 });
const TaxBehavior = Type.Union([Type.Literal('unspecified'), Type.Literal('inclusive'), Type.Literal('exclusive')]);
const LookupKey = Type.String({ minLength: 1, maxLength: 200 });
// Taken so that the refusal can say why (Coffer has no subscriptions), rather than call it an unknown parameter.
const Recurring = Type.Record(Type.String(), Type.Unknown());
const PriceAmount = {
  currency: Currency,
  unit_amount: Type.Optional(Type.Integer({ minimum: 0 })),
  unit_amount_decimal: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
  tax_behavior: Type.Optional(TaxBehavior),
  recurring: Type.Optional(Recurring),
};

const ProductFields = {
  active: Type.Optional(Type.Boolean()),
  description: Type.Optional(emptyable(Description)),
  images: Type.Optional(emptyable(Images)),
  marketing_features: Type.Optional(emptyable(MarketingFeatures)),
  metadata: Type.Optional(emptyable(Metadata)),
  shippable: Type.Optional(Type.Boolean()),
  statement_descriptor: Type.Optional(emptyable(StatementDescriptor)),
  unit_label: Type.Optional(emptyable(UnitLabel)),
  url: Type.Optional(emptyable(Url)),
  expand: Type.Optional(Expand),
};
const CreateProductBody = strictObject({
  ...ProductFields,
  name: ProductName,
  id: Type.Optional(ProductId),
  type: Type.Optional(Type.Union([Type.Literal('service'), Type.Literal('good')])),
  default_price_data: Type.Optional(strictObject({ ...PriceAmount, metadata: Type.Optional(Metadata) })),
});
const UpdateProductBody = strictObject({ ...ProductFields, name: Type.Optional(ProductName), default_price: Type.Optional(emptyable(ObjectId)) });
const ProductIdParams = strictObject({ id: ObjectId });
const ProductListQuery = strictObject({
  ...ListQuery,
  active: Type.Optional(Type.Boolean()),
  ids: Type.Optional(Type.Array(ObjectId, { maxItems: limits.listLimitMax })),
  shippable: Type.Optional(Type.Boolean()),
  type: Type.Optional(Type.Union([Type.Literal('service'), Type.Literal('good')])),
  url: Type.Optional(Type.String({ maxLength: 2048 })),
});

const CreatePriceBody = strictObject({
  ...PriceAmount,
  product: Type.Optional(ObjectId),
  product_data: Type.Optional(strictObject({
    name: ProductName, active: Type.Optional(Type.Boolean()), id: Type.Optional(ProductId), metadata: Type.Optional(Metadata),
    statement_descriptor: Type.Optional(StatementDescriptor), unit_label: Type.Optional(UnitLabel),
  })),
  active: Type.Optional(Type.Boolean()),
  billing_scheme: Type.Optional(Type.Literal('per_unit')),
  metadata: Type.Optional(emptyable(Metadata)),
  nickname: Type.Optional(emptyable(Type.String({ maxLength: 250 }))),
  lookup_key: Type.Optional(emptyable(LookupKey)),
  transfer_lookup_key: Type.Optional(Type.Boolean()),
  expand: Type.Optional(Expand),
});
const UpdatePriceBody = strictObject({
  active: Type.Optional(Type.Boolean()),
  metadata: Type.Optional(emptyable(Metadata)),
  nickname: Type.Optional(emptyable(Type.String({ maxLength: 250 }))),
  lookup_key: Type.Optional(emptyable(LookupKey)),
  transfer_lookup_key: Type.Optional(Type.Boolean()),
  tax_behavior: Type.Optional(TaxBehavior),
  expand: Type.Optional(Expand),
});
const PriceIdParams = strictObject({ price: ObjectId });
const PriceListQuery = strictObject({
  ...ListQuery,
  active: Type.Optional(Type.Boolean()),
  currency: Type.Optional(Currency),
  product: Type.Optional(ObjectId),
  type: Type.Optional(Type.Union([Type.Literal('one_time'), Type.Literal('recurring')])),
  lookup_keys: Type.Optional(Type.Array(LookupKey, { maxItems: 10 })),
});

/** What a product search may ask, as Stripe's product search takes it. */
const productSearchFields: Record<string, SearchField> = {
  active: { kind: 'boolean', column: 'active' },
  description: { kind: 'text', column: 'description' },
  metadata: { kind: 'metadata', column: 'metadata' },
  name: { kind: 'text', column: 'name' },
  shippable: { kind: 'boolean', column: 'shippable' },
  url: { kind: 'text', column: 'url' },
  created: { kind: 'created', column: 'created_at' },
};
/** What a price search may ask: `type` is always one_time, since Coffer's prices are. */
const priceSearchFields: Record<string, SearchField> = {
  active: { kind: 'boolean', column: 'active' },
  currency: { kind: 'text', column: 'currency' },
  lookup_key: { kind: 'text', column: 'lookup_key' },
  metadata: { kind: 'metadata', column: 'metadata' },
  product: { kind: 'exact', column: 'product_id' },
  created: { kind: 'created', column: 'created_at' },
};


/** Stripe's Products and one-time Prices (decision 0049): the official SDK's `products` and `prices` work against them. */
export function registerProductRoutes(app: FastifyInstance, services: Services): void {
  const config = { merchantApi: true };
  const nowMs = () => services.clock.nowMs();

  /** A change's response rendered in its transaction, with the expansions checked before the change. */
  function changed<R>(request: FastifyRequest, expandable: Readonly<Record<string, ApiResource>>, toObject: (row: R) => Rendered) {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.body as { expand?: string[] } | undefined)?.expand, expandable);
    return async (row: R, tx: Tx) => {
      const object = toObject(row);
      await expandObjects(tx, ctx.actor, nowMs(), [object], expand);
      return object;
    };
  }

  /** A search over one table, newest first, with Stripe's pages (`next_page`) and `total_count` when asked. */
  async function search<T extends 'products' | 'prices', R extends { seq: bigint }>(request: FastifyRequest, table: T, url: string, fields: Record<string, SearchField>,
    expandable: Readonly<Record<string, ApiResource>>, narrow: (rows: SelectQueryBuilder<Database, T, object>) => SelectQueryBuilder<Database, T, object>, toObject: (row: R) => Rendered) {
    const ctx = requestContext(request);
    const query = request.query as { query: string; limit?: number; page?: string; expand?: string[] };
    const asked = searchExpansions(query.expand);
    const expand = expansionsFor(ctx.actor, asked.expand, expandable, true);
    const parsed = parseSearchQuery(query.query, fields);
    const limit = query.limit ?? limits.listLimitDefault;
    const owned: 'products' | 'prices' = table;
    const found = narrow(services.db.selectFrom(owned).where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode)
      .where(searchCondition(parsed, fields)) as unknown as SelectQueryBuilder<Database, T, object>);
    let select = found.selectAll() as unknown as SelectQueryBuilder<Database, 'products' | 'prices', R>;
    if (query.page !== undefined) select = select.where('seq', '<', searchCursor(query.page, url, query.query));
    const rows = await select.orderBy('seq', 'desc').limit(limit + 1).execute();
    const data = rows.slice(0, limit).map(toObject);
    await expandObjects(services.db, ctx.actor, nowMs(), data, expand);
    const total = asked.totalCount ? await countOf(found) : undefined;
    return searchResult(url, query.query, data, rows, limit, total);
  }

  const productConfig = { ...config, expandable: Object.keys(productExpandable) };
  app.post('/v1/products', { config: productConfig, schema: { body: CreateProductBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(request, productExpandable, productObject);
    const params = withoutExpand(request.body as ProductParams & { name: string; expand?: string[] });
    return sendOutcome(reply, await answerInChange(request, (respond) => createProduct(services, ctx, params, respond), render));
  });
  app.get('/v1/products/search', { config: productConfig, schema: { querystring: SearchQuery } }, async (request, reply) =>
    sendObject(reply, await search<'products', ProductRow>(request, 'products', '/v1/products/search', productSearchFields, productExpandable,
      (rows) => rows.where('deleted_at', 'is', null), productObject)));
  app.get('/v1/products/:id', { config: productConfig, schema: { params: ProductIdParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, productExpandable);
    const object = productObject(await findProduct(services.db, ctx, (request.params as { id: string }).id, { param: 'id', live: true }));
    await expandObjects(services.db, ctx.actor, nowMs(), [object], expand);
    return sendObject(reply, object);
  });
  app.post('/v1/products/:id', { config: productConfig, schema: { params: ProductIdParams, body: UpdateProductBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(request, productExpandable, productObject);
    const params = withoutExpand(request.body as ProductParams & { expand?: string[] });
    const id = (request.params as { id: string }).id;
    return sendOutcome(reply, await answerInChange(request, (respond) => updateProduct(services, ctx, id, params, respond), render));
  });
  app.delete('/v1/products/:id', { config, schema: { params: ProductIdParams } }, async (request, reply) =>
    sendObject(reply, productObject(await deleteProduct(services, requestContext(request), (request.params as { id: string }).id))));
  app.get('/v1/products', { config: productConfig, schema: { querystring: ProductListQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { active?: boolean; ids?: string[]; shippable?: boolean; type?: 'service' | 'good'; url?: string };
    let rows = services.db.selectFrom('products').selectAll().where('deleted_at', 'is', null);
    if (query.active !== undefined) rows = rows.where('active', '=', query.active);
    if (query.ids !== undefined) rows = query.ids.length === 0 ? rows.where('id', 'is', null) : rows.where('id', 'in', query.ids);
    if (query.shippable !== undefined) rows = rows.where('shippable', '=', query.shippable);
    if (query.type !== undefined) rows = rows.where('type', '=', query.type);
    if (query.url !== undefined) rows = rows.where('url', '=', query.url);
    const expand = expansionsFor(ctx.actor, query.expand, productExpandable, true);
    const page = await listPage(services.db, ctx.actor, { table: 'products', kind: 'product', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map(productObject);
    await expandObjects(services.db, ctx.actor, nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/products', data, page.hasMore));
  });

  const priceConfig = { ...config, expandable: Object.keys(priceExpandable) };
  app.post('/v1/prices', { config: priceConfig, schema: { body: CreatePriceBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(request, priceExpandable, priceObject);
    const params = withoutExpand(request.body as PriceParams & { expand?: string[] });
    return sendOutcome(reply, await answerInChange(request, (respond) => createPrice(services, ctx, params, respond), render));
  });
  app.get('/v1/prices/search', { config: priceConfig, schema: { querystring: SearchQuery } }, async (request, reply) =>
    sendObject(reply, await search<'prices', PriceRow>(request, 'prices', '/v1/prices/search', priceSearchFields, priceExpandable, (rows) => rows, priceObject)));
  app.get('/v1/prices/:price', { config: priceConfig, schema: { params: PriceIdParams, querystring: strictObject({ expand: Type.Optional(Expand) }) } }, async (request, reply) => {
    const ctx = requestContext(request);
    const expand = expansionsFor(ctx.actor, (request.query as { expand?: string[] }).expand, priceExpandable);
    const object = priceObject(await findPrice(services.db, ctx, (request.params as { price: string }).price));
    await expandObjects(services.db, ctx.actor, nowMs(), [object], expand);
    return sendObject(reply, object);
  });
  app.post('/v1/prices/:price', { config: priceConfig, schema: { params: PriceIdParams, body: UpdatePriceBody } }, async (request, reply) => {
    const ctx = requestContext(request);
    const render = changed(request, priceExpandable, priceObject);
    const params = withoutExpand(request.body as PriceUpdateParams & { expand?: string[] });
    const id = (request.params as { price: string }).price;
    return sendOutcome(reply, await answerInChange(request, (respond) => updatePrice(services, ctx, id, params, respond), render));
  });
  app.get('/v1/prices', { config: priceConfig, schema: { querystring: PriceListQuery } }, async (request, reply) => {
    const ctx = requestContext(request);
    const query = request.query as ListQueryParams & { active?: boolean; currency?: string; product?: string; type?: 'one_time' | 'recurring'; lookup_keys?: string[] };
    let rows = services.db.selectFrom('prices').selectAll();
    if (query.active !== undefined) rows = rows.where('active', '=', query.active);
    if (query.currency !== undefined) rows = rows.where('currency', '=', query.currency.toLowerCase());
    if (query.product !== undefined) rows = rows.where('product_id', '=', query.product);
    // Every price is one-time: a list of recurring ones is empty.
    if (query.type === 'recurring') rows = rows.where('id', 'is', null);
    if (query.lookup_keys !== undefined) rows = query.lookup_keys.length === 0 ? rows.where('id', 'is', null) : rows.where('lookup_key', 'in', query.lookup_keys);
    const expand = expansionsFor(ctx.actor, query.expand, priceExpandable, true);
    const page = await listPage(services.db, ctx.actor, { table: 'prices', kind: 'price', rows }, { ...query, limit: query.limit ?? limits.listLimitDefault });
    const data = page.data.map(priceObject);
    await expandObjects(services.db, ctx.actor, nowMs(), data, expand);
    return sendObject(reply, listObject('/v1/prices', data, page.hasMore));
  });
}
