import type { Kysely } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { checkAmountStep, parseCurrency } from '../domain/money.ts';
import { limits } from '../limits.ts';
import { newId } from '../platform/random.ts';
import type { Database, PriceRow, ProductRow } from '../store/database.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { checkMetadataSize, emptyToNull, mergeMetadata } from './payment-intent-params.ts';
import { recordChange, type PaymentEvent } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

/**
 * Stripe's catalogue: Products, and the one-time Prices they are sold at. A Checkout Session sells a price by its
 * id (`line_items[][price]`); the amount it charges is the price's when the session is made (decision 0049).
 * Coffer has no subscriptions, so a price is always one-time and per unit: `recurring`, tiers and custom amounts
 * are refused by name.
 */

export interface PriceAmountParams {
  currency: string;
  unit_amount?: number;
  unit_amount_decimal?: string;
  tax_behavior?: 'unspecified' | 'inclusive' | 'exclusive';
  recurring?: unknown;
}

export interface ProductParams {
  id?: string;
  name?: string;
  active?: boolean;
  type?: 'service' | 'good';
  description?: string | '';
  images?: string[] | '';
  marketing_features?: Array<{ name: string }> | '';
  metadata?: Record<string, string> | '';
  shippable?: boolean;
  statement_descriptor?: string | '';
  unit_label?: string | '';
  url?: string | '';
  /** At creation: a price made with the product and set as its default. */
  default_price_data?: PriceAmountParams & { metadata?: Record<string, string> };
  /** On update: one of the product's active prices, or `''` for none. */
  default_price?: string | '';
}

export interface PriceParams extends PriceAmountParams {
  product?: string;
  product_data?: { name: string; active?: boolean; id?: string; metadata?: Record<string, string>; statement_descriptor?: string; unit_label?: string };
  active?: boolean;
  metadata?: Record<string, string> | '';
  nickname?: string | '';
  lookup_key?: string | '';
  transfer_lookup_key?: boolean;
  billing_scheme?: 'per_unit';
}

function scopeOf(ctx: RequestContext) {
  return { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
}

type Reader = Tx | Kysely<Database>;

export async function findProduct(reader: Reader, ctx: RequestContext, id: string, options: { lock?: boolean; param?: string; live?: boolean } = {}): Promise<ProductRow> {
  let query = reader.selectFrom('products').selectAll().where('merchant_id', '=', ctx.actor.merchantId)
    .where('livemode', '=', ctx.actor.livemode).where('id', '=', id);
  if (options.lock === true) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  const param = options.param ?? 'product';
  if (row === undefined) throw resourceMissing('product', id, param);
  if (options.live === true && row.deleted_at !== null) throw new CofferError('resource_missing', `No such product: '${id}'; it was deleted.`, { param, missingId: id });
  return row;
}

export async function findPrice(reader: Reader, ctx: RequestContext, id: string, options: { lock?: boolean; param?: string } = {}): Promise<PriceRow> {
  let query = reader.selectFrom('prices').selectAll().where('id', '=', id)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
  if (options.lock === true) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('price', id, options.param ?? 'price');
  return row;
}

/**
 * A price's amount, checked before any transaction: a whole number of the currency's minor units (Coffer charges
 * nothing finer), valid for the currency, at most Coffer's largest amount. Zero is a price (a free item), as at
 * Stripe; a session's total must still reach the currency's minimum.
 */
function priceAmountOf(params: PriceAmountParams, prefix: string): { currency: string; unitAmount: bigint } {
  const at = (name: string) => (prefix === '' ? name : `${prefix}[${name}]`);
  if (params.recurring !== undefined) {
    throw new CofferError('parameter_invalid', 'Coffer has no subscriptions: its prices are one-time. Leave out recurring.', { param: at('recurring') });
  }
  const currency = parseCurrency(params.currency, at('currency'));
  if (params.unit_amount !== undefined && params.unit_amount_decimal !== undefined) {
    throw new CofferError('parameters_exclusive', `You may only specify one of these parameters: ${at('unit_amount')}, ${at('unit_amount_decimal')}.`, { param: at('unit_amount_decimal') });
  }
  let amount: bigint;
  if (params.unit_amount !== undefined) amount = BigInt(params.unit_amount);
  else if (params.unit_amount_decimal !== undefined) {
    const whole = /^([0-9]{1,15})(?:\.0*)?$/.exec(params.unit_amount_decimal);
    if (whole === null) {
      throw new CofferError('parameter_invalid', `${at('unit_amount_decimal')} must be a whole number of minor units (Coffer charges nothing smaller); got "${params.unit_amount_decimal}".`,
        { param: at('unit_amount_decimal') });
    }
    amount = BigInt(whole[1] ?? '0');
  } else {
    throw new CofferError('parameter_missing', `Missing required param: ${at('unit_amount')}. A price needs its amount (custom amounts are not supported).`, { param: at('unit_amount') });
  }
  const param = params.unit_amount_decimal !== undefined ? at('unit_amount_decimal') : at('unit_amount');
  if (amount > BigInt(limits.amountMinorMax)) {
    throw new CofferError('amount_too_large', `${param} must be no more than ${limits.amountMinorMax}.`, { param });
  }
  checkAmountStep(amount, currency, param);
  return { currency: currency.code, unitAmount: amount };
}

function checkMetadata(metadata: Record<string, string>, param = 'metadata'): Record<string, string> {
  checkMetadataSize(metadata, limits.metadataKeysMax, param);
  return metadata;
}

/** What the schema cannot say of a product (its `url` and `images` are checked there as http or https URLs). */
function checkProductParams(params: ProductParams): void {
  if (params.name !== undefined && params.name.trim() === '') throw new CofferError('parameter_invalid_empty', 'name cannot be empty.', { param: 'name' });
}

function newPriceRow(ctx: RequestContext, productId: string, amount: { currency: string; unitAmount: bigint }, rest: {
  active?: boolean; nickname?: string | null; lookupKey?: string | null; taxBehavior?: PriceRow['tax_behavior'] | undefined; metadata: Record<string, string>;
}, now: Date): Omit<PriceRow, 'seq'> {
  return {
    id: newId('price'), merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now, product_id: productId,
    active: rest.active ?? true, currency: amount.currency, unit_amount: amount.unitAmount, nickname: rest.nickname ?? null,
    lookup_key: rest.lookupKey ?? null, tax_behavior: rest.taxBehavior ?? 'unspecified', metadata: rest.metadata,
  };
}

async function insertPrice(tx: Tx, price: Omit<PriceRow, 'seq'>): Promise<PriceRow> {
  return tx.insertInto('prices').values({ ...price, metadata: JSON.stringify(price.metadata) }).returningAll().executeTakeFirstOrThrow();
}

async function insertProduct(tx: Tx, ctx: RequestContext, params: ProductParams & { name: string }, now: Date, param = 'id'): Promise<ProductRow> {
  const id = params.id ?? newId('prod');
  const product = await tx.insertInto('products').values({
    merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, id, created_at: now, updated_at: now,
    name: params.name.trim(), active: params.active ?? true, type: params.type ?? 'service',
    description: params.description || null, images: JSON.stringify(params.images || []),
    marketing_features: JSON.stringify(params.marketing_features || []), metadata: JSON.stringify(mergeMetadata({}, params.metadata)),
    default_price_id: null, shippable: params.shippable ?? null, statement_descriptor: params.statement_descriptor || null,
    unit_label: params.unit_label || null, url: params.url || null, deleted_at: null,
  }).onConflict((conflict) => conflict.columns(['merchant_id', 'livemode', 'id']).doNothing()).returningAll().executeTakeFirst();
  if (product === undefined) throw new CofferError('resource_already_exists', `A product with the id '${id}' already exists.`, { param });
  return product;
}

/** Runs `work` once more when a concurrent request took the same lookup key first: the second run sees it and answers by name. */
async function retryingLookupKeyRace<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if ((error as { code?: unknown; constraint?: unknown }).code !== '23505') throw error;
    return work();
  }
}

export async function createProduct(services: Services, ctx: RequestContext, params: ProductParams & { name: string }, respond?: Respond<ProductRow>): Promise<ProductRow> {
  checkProductParams(params);
  checkMetadata(mergeMetadata({}, params.metadata));
  const priceData = params.default_price_data;
  const amount = priceData === undefined ? undefined : priceAmountOf(priceData, 'default_price_data');
  const priceMetadata = checkMetadata(mergeMetadata({}, priceData?.metadata), 'default_price_data[metadata]');
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    let product = await insertProduct(tx, ctx, params, now);
    const events: PaymentEvent[] = [{ type: 'product.created', product: { after: product } }];
    if (amount !== undefined) {
      const price = await insertPrice(tx, newPriceRow(ctx, product.id, amount, { taxBehavior: priceData?.tax_behavior, metadata: priceMetadata }, now));
      product = await tx.updateTable('products').set({ default_price_id: price.id }).where('merchant_id', '=', product.merchant_id)
        .where('livemode', '=', product.livemode).where('id', '=', product.id).returningAll().executeTakeFirstOrThrow();
      events[0] = { type: 'product.created', product: { after: product } };
      events.push({ type: 'price.created', price: { after: price } });
    }
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'product.create', objectType: 'product', objectId: product.id,
      ...(product.default_price_id === null ? {} : { details: { default_price: product.default_price_id } }) }, events, now);
    await respond?.(tx, product);
    return product;
  });
}

export async function updateProduct(services: Services, ctx: RequestContext, id: string, params: ProductParams, respond?: Respond<ProductRow>): Promise<ProductRow> {
  checkProductParams(params);
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const product = await findProduct(tx, ctx, id, { lock: true, live: true, param: 'id' });
    const metadata = checkMetadata(mergeMetadata(product.metadata, params.metadata));
    let defaultPrice = product.default_price_id;
    if (params.default_price !== undefined) {
      if (params.default_price === '') defaultPrice = null;
      else {
        const price = await findPrice(tx, ctx, params.default_price, { param: 'default_price' });
        if (price.product_id !== product.id) {
          throw new CofferError('parameter_invalid', `The price ${price.id} belongs to product ${price.product_id}, not ${product.id}.`, { param: 'default_price' });
        }
        if (!price.active) throw new CofferError('parameter_invalid', `The price ${price.id} is archived (active=false); a product's default price must be active.`, { param: 'default_price' });
        defaultPrice = price.id;
      }
    }
    const after = await tx.updateTable('products').set({
      updated_at: now, metadata: JSON.stringify(metadata), default_price_id: defaultPrice,
      ...(params.name === undefined ? {} : { name: params.name.trim() }),
      ...(params.active === undefined ? {} : { active: params.active }),
      ...(params.images === undefined ? {} : { images: JSON.stringify(params.images || []) }),
      ...(params.marketing_features === undefined ? {} : { marketing_features: JSON.stringify(params.marketing_features || []) }),
      ...(params.shippable === undefined ? {} : { shippable: params.shippable }),
      description: emptyToNull(params.description, product.description),
      statement_descriptor: emptyToNull(params.statement_descriptor, product.statement_descriptor),
      unit_label: emptyToNull(params.unit_label, product.unit_label), url: emptyToNull(params.url, product.url),
    }).where('merchant_id', '=', product.merchant_id).where('livemode', '=', product.livemode).where('id', '=', product.id)
      .returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'product.update', objectType: 'product', objectId: product.id, details: { fields: Object.keys(params) } },
      [{ type: 'product.updated', product: { before: product, after } }], now);
    await respond?.(tx, after);
    return after;
  });
}

/**
 * Deletes a product that has no prices, as Stripe does; one with prices can only be archived (`active=false`),
 * since sessions and payments name its prices. The row stays: the id is never given to another product.
 */
export async function deleteProduct(services: Services, ctx: RequestContext, id: string): Promise<ProductRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const product = await findProduct(tx, ctx, id, { lock: true, live: true, param: 'id' });
    const price = await tx.selectFrom('prices').select('id').where('merchant_id', '=', product.merchant_id).where('livemode', '=', product.livemode)
      .where('product_id', '=', product.id).limit(1).executeTakeFirst();
    if (price !== undefined) {
      throw new CofferError('product_has_prices', `This product cannot be deleted because it has one or more prices (${price.id}); archive it instead (active=false).`, { param: 'id' });
    }
    const after = await tx.updateTable('products').set({ deleted_at: now, updated_at: now }).where('merchant_id', '=', product.merchant_id)
      .where('livemode', '=', product.livemode).where('id', '=', product.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'product.delete', objectType: 'product', objectId: product.id },
      [{ type: 'product.deleted', product: { after: product } }], now);
    return after;
  });
}

/**
 * Frees `lookupKey` for `priceId` in the caller's transaction: if another price holds it, it moves only when
 * `transfer` is asked (that price's `price.updated` is returned), and is refused by name otherwise.
 */
async function takeLookupKey(tx: Tx, ctx: RequestContext, lookupKey: string, priceId: string | null, transfer: boolean): Promise<PaymentEvent[]> {
  const holder = await tx.selectFrom('prices').selectAll().where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode)
    .where('lookup_key', '=', lookupKey).forUpdate().executeTakeFirst();
  if (holder === undefined || holder.id === priceId) return [];
  if (!transfer) {
    throw new CofferError('parameter_invalid', `The price ${holder.id} already uses the lookup key '${lookupKey}'. Pass transfer_lookup_key=true to move it to this price.`, { param: 'lookup_key' });
  }
  const moved = await tx.updateTable('prices').set({ lookup_key: null }).where('id', '=', holder.id).returningAll().executeTakeFirstOrThrow();
  return [{ type: 'price.updated', price: { before: holder, after: moved } }];
}

export async function createPrice(services: Services, ctx: RequestContext, params: PriceParams, respond?: Respond<PriceRow>): Promise<PriceRow> {
  const amount = priceAmountOf(params, '');
  if (params.product !== undefined && params.product_data !== undefined) {
    throw new CofferError('parameters_exclusive', 'You may only specify one of these parameters: product, product_data.', { param: 'product_data' });
  }
  if (params.product === undefined && params.product_data === undefined) {
    throw new CofferError('parameter_missing', 'Missing required param: product (or product_data to make one with the price).', { param: 'product' });
  }
  if (params.product_data !== undefined && params.product_data.name.trim() === '') {
    throw new CofferError('parameter_invalid_empty', 'product_data[name] cannot be empty.', { param: 'product_data[name]' });
  }
  if (params.transfer_lookup_key !== undefined && (params.lookup_key === undefined || params.lookup_key === '')) {
    throw new CofferError('parameter_missing', 'transfer_lookup_key needs the lookup_key to move.', { param: 'lookup_key' });
  }
  const metadata = checkMetadata(mergeMetadata({}, params.metadata));
  const productMetadata = checkMetadata(mergeMetadata({}, params.product_data?.metadata), 'product_data[metadata]');
  const now = new Date(services.clock.nowMs());
  return retryingLookupKeyRace(() => inTransaction(services.db, async (tx) => {
    const events: PaymentEvent[] = [];
    let productId: string;
    if (params.product_data !== undefined) {
      const data = params.product_data;
      const product = await insertProduct(tx, ctx, {
        name: data.name, metadata: productMetadata, ...(data.id === undefined ? {} : { id: data.id }), ...(data.active === undefined ? {} : { active: data.active }),
        ...(data.statement_descriptor === undefined ? {} : { statement_descriptor: data.statement_descriptor }),
        ...(data.unit_label === undefined ? {} : { unit_label: data.unit_label }),
      }, now, 'product_data[id]');
      events.push({ type: 'product.created', product: { after: product } });
      productId = product.id;
    } else {
      // Locked, so that a deletion of the product cannot pass its no-prices check while this price is written.
      productId = (await findProduct(tx, ctx, params.product ?? '', { live: true, lock: true })).id;
    }
    const lookupKey = params.lookup_key || null;
    const price = newPriceRow(ctx, productId, amount, {
      ...(params.active === undefined ? {} : { active: params.active }), nickname: params.nickname || null, lookupKey, taxBehavior: params.tax_behavior, metadata,
    }, now);
    if (lookupKey !== null) events.push(...await takeLookupKey(tx, ctx, lookupKey, null, params.transfer_lookup_key === true));
    const row = await insertPrice(tx, price);
    events.push({ type: 'price.created', price: { after: row } });
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'price.create', objectType: 'price', objectId: row.id,
      details: { product: productId, currency: row.currency, unit_amount: row.unit_amount.toString() } }, events, now);
    await respond?.(tx, row);
    return row;
  }));
}

export interface PriceUpdateParams {
  active?: boolean;
  metadata?: Record<string, string> | '';
  nickname?: string | '';
  lookup_key?: string | '';
  transfer_lookup_key?: boolean;
  tax_behavior?: 'inclusive' | 'exclusive' | 'unspecified';
}

/**
 * What may change on a price: whether it is sold, its labels, its lookup key, and its tax behaviour only while
 * unspecified (as at Stripe). Its amount and currency never change: a new amount is a new price.
 */
export async function updatePrice(services: Services, ctx: RequestContext, id: string, params: PriceUpdateParams, respond?: Respond<PriceRow>): Promise<PriceRow> {
  if (params.transfer_lookup_key !== undefined && (params.lookup_key === undefined || params.lookup_key === '')) {
    throw new CofferError('parameter_missing', 'transfer_lookup_key needs the lookup_key to move.', { param: 'lookup_key' });
  }
  const now = new Date(services.clock.nowMs());
  return retryingLookupKeyRace(() => inTransaction(services.db, async (tx) => {
    const price = await findPrice(tx, ctx, id, { lock: true, param: 'id' });
    const metadata = checkMetadata(mergeMetadata(price.metadata, params.metadata));
    if (params.tax_behavior !== undefined && params.tax_behavior !== price.tax_behavior && price.tax_behavior !== 'unspecified') {
      throw new CofferError('parameter_invalid', `This price's tax_behavior is already ${price.tax_behavior}; it can be set only once, while unspecified.`, { param: 'tax_behavior' });
    }
    if (params.active === false && price.active) {
      // Locked, so that the product cannot make this price its default while it is archived.
      const product = await findProduct(tx, ctx, price.product_id, { lock: true });
      if (product.default_price_id === price.id) {
        throw new CofferError('parameter_invalid', `This price cannot be archived because it is the default price of product ${product.id}; set another default_price on the product first.`,
          { param: 'active' });
      }
    }
    const events: PaymentEvent[] = [];
    const lookupKey = params.lookup_key === undefined ? price.lookup_key : params.lookup_key || null;
    if (lookupKey !== null && lookupKey !== price.lookup_key) events.push(...await takeLookupKey(tx, ctx, lookupKey, price.id, params.transfer_lookup_key === true));
    const after = await tx.updateTable('prices').set({
      metadata: JSON.stringify(metadata), lookup_key: lookupKey, nickname: emptyToNull(params.nickname, price.nickname),
      ...(params.active === undefined ? {} : { active: params.active }),
      ...(params.tax_behavior === undefined ? {} : { tax_behavior: params.tax_behavior }),
    }).where('id', '=', price.id).returningAll().executeTakeFirstOrThrow();
    events.push({ type: 'price.updated', price: { before: price, after } });
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'price.update', objectType: 'price', objectId: price.id, details: { fields: Object.keys(params) } }, events, now);
    await respond?.(tx, after);
    return after;
  }));
}
