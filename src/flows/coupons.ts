import { sql, type Kysely } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { checkAmountStep, parseCurrency } from '../domain/money.ts';
import { findCurrency } from '../domain/currency.ts';
import { limits } from '../limits.ts';
import { newId, randomIdCharacters } from '../platform/random.ts';
import type { CheckoutDiscount, CouponRow, Database, PromotionCodeRow } from '../store/database.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { recordChange } from './payment-intent-records.ts';
import { liveCustomer } from './payment-methods.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';
import { discountOf, type DiscountedItem } from '../checkout/discount-math.ts';

/**
 * Stripe's Coupons and Promotion Codes (decision 0062). A coupon takes a percentage or an amount off a Checkout
 * Session's items (some products' only, with `applies_to`); a promotion code is a word a shopper types on the page to
 * get a coupon, with limits of its own (an expiry, a number of uses, a customer, an order's least amount). Coffer has
 * no subscriptions: `duration` is kept as given and changes nothing. A redemption is taken by the payment that uses
 * it, when its attempt starts (migration 0069), and counted in `times_redeemed` when the session is paid.
 */

export interface CouponParams {
  id?: string;
  name?: string;
  percent_off?: number;
  amount_off?: number;
  currency?: string;
  duration?: 'once' | 'repeating' | 'forever';
  duration_in_months?: number;
  max_redemptions?: number;
  redeem_by?: number;
  applies_to?: { products?: string[] };
  metadata?: Record<string, string>;
  currency_options?: unknown;
}

export interface CouponUpdateParams {
  name?: string | '';
  metadata?: Record<string, string> | '';
  currency_options?: unknown;
}

export interface PromotionCodeParams {
  /** Since 2025-09-30: `{ type: 'coupon', coupon }`; before, the coupon's id alone (`coupon`). */
  promotion?: { type: 'coupon'; coupon?: string };
  coupon?: string;
  code?: string;
  active?: boolean;
  customer?: string;
  expires_at?: number;
  max_redemptions?: number;
  metadata?: Record<string, string>;
  restrictions?: { first_time_transaction?: boolean; minimum_amount?: number; minimum_amount_currency?: string; currency_options?: unknown };
}

export interface PromotionCodeUpdateParams {
  active?: boolean;
  metadata?: Record<string, string> | '';
  restrictions?: { currency_options?: unknown };
}

type Reader = Tx | Kysely<Database>;

function scopeOf(ctx: RequestContext) {
  return { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
}

function refuseCurrencyOptions(value: unknown, param: string): void {
  if (value === undefined) return;
  throw new CofferError('parameter_invalid', `A Checkout Session charges in one currency, so Coffer keeps one amount per coupon or code: leave out ${param} and make one for each currency.`, { param });
}

/** A percentage with at most two decimals, in hundredths (12.5 is 1250). */
function percentHundredths(value: number): number {
  const hundredths = Math.round(value * 100);
  if (!(value > 0 && value <= 100) || Math.abs(value * 100 - hundredths) > 1e-6) {
    throw new CofferError('parameter_invalid', `percent_off must be more than 0 and at most 100, with at most two decimals; got ${value}.`, { param: 'percent_off' });
  }
  return hundredths;
}

export async function findCoupon(reader: Reader, ctx: RequestContext, id: string, options: { lock?: boolean; param?: string; live?: boolean } = {}): Promise<CouponRow> {
  let query = reader.selectFrom('coupons').selectAll().where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).where('id', '=', id);
  if (options.lock === true) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  // A deleted coupon is gone from the API, as at Stripe; sessions and codes that took it still name it.
  if (row === undefined || (options.live !== false && row.deleted_at !== null)) throw resourceMissing('coupon', id, options.param ?? 'id');
  return row;
}

export async function createCoupon(services: Services, ctx: RequestContext, params: CouponParams, respond?: Respond<CouponRow>): Promise<CouponRow> {
  const now = new Date(services.clock.nowMs());
  refuseCurrencyOptions(params.currency_options, 'currency_options');
  if ((params.percent_off === undefined) === (params.amount_off === undefined)) {
    throw new CofferError(params.percent_off === undefined ? 'parameter_missing' : 'parameters_exclusive',
      'A coupon takes exactly one of percent_off (a percentage) and amount_off (an amount, with its currency).', { param: params.percent_off === undefined ? 'percent_off' : 'amount_off' });
  }
  let amountOff: bigint | null = null;
  let currency: string | null = null;
  if (params.amount_off !== undefined) {
    if (params.currency === undefined) throw new CofferError('parameter_missing', 'Missing required param: currency. An amount off is in a currency.', { param: 'currency' });
    const info = parseCurrency(params.currency, 'currency');
    amountOff = BigInt(params.amount_off);
    if (amountOff <= 0n) throw new CofferError('parameter_invalid', 'amount_off must be more than 0.', { param: 'amount_off' });
    if (amountOff > BigInt(limits.amountMinorMax)) throw new CofferError('amount_too_large', `amount_off must be no more than ${limits.amountMinorMax}.`, { param: 'amount_off' });
    checkAmountStep(amountOff, info, 'amount_off');
    currency = info.code;
  } else if (params.currency !== undefined) {
    throw new CofferError('parameter_invalid', 'currency goes with amount_off: a percentage off is in no currency.', { param: 'currency' });
  }
  const duration = params.duration ?? 'once';
  if ((duration === 'repeating') !== (params.duration_in_months !== undefined)) {
    throw new CofferError(duration === 'repeating' ? 'parameter_missing' : 'parameter_invalid', 'duration_in_months is required with duration=repeating, and taken only with it.', { param: 'duration_in_months' });
  }
  if (params.redeem_by !== undefined && params.redeem_by * 1000 <= now.getTime()) {
    throw new CofferError('parameter_invalid', 'redeem_by must be in the future.', { param: 'redeem_by' });
  }
  const name = params.name?.trim() ?? '';
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const products = params.applies_to?.products === undefined ? null : [...new Set(params.applies_to.products)];
  if (products !== null) {
    if (products.length === 0) throw new CofferError('parameter_invalid_empty', 'applies_to[products] needs at least one product (leave applies_to out for every item).', { param: 'applies_to[products]' });
    const found = await services.db.selectFrom('products').select('id').where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode)
      .where('id', 'in', products).where('deleted_at', 'is', null).execute();
    const missing = products.findIndex((id) => !found.some((row) => row.id === id));
    if (missing !== -1) throw resourceMissing('product', products[missing] ?? '', `applies_to[products][${missing}]`);
  }
  const percent = params.percent_off === undefined ? null : percentHundredths(params.percent_off);
  const id = params.id ?? randomIdCharacters(8);
  return inTransaction(services.db, async (tx) => {
    const row = await tx.insertInto('coupons').values({
      merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, id, created_at: now, name: name === '' ? null : name,
      percent_off_hundredths: percent, amount_off: amountOff, currency, duration, duration_in_months: params.duration_in_months ?? null,
      max_redemptions: params.max_redemptions ?? null, redeem_by: params.redeem_by === undefined ? null : new Date(params.redeem_by * 1000),
      applies_to_products: products === null ? null : JSON.stringify(products), metadata: JSON.stringify(metadata),
    }).onConflict((conflict) => conflict.columns(['merchant_id', 'livemode', 'id']).doNothing()).returningAll().executeTakeFirst();
    if (row === undefined) throw new CofferError('resource_already_exists', `A coupon with the id '${id}' already exists (a deleted one's id is not given again).`, { param: 'id' });
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'coupon.create', objectType: 'coupon', objectId: row.id,
      details: percent === null ? { amount_off: String(amountOff), currency } : { percent_off: percent / 100 } },
    [{ type: 'coupon.created', coupon: { after: row, nowMs: now.getTime() } }], now);
    await respond?.(tx, row);
    return row;
  });
}

/** A coupon's name and metadata may change; its terms never do, as at Stripe. */
export async function updateCoupon(services: Services, ctx: RequestContext, id: string, params: CouponUpdateParams, respond?: Respond<CouponRow>): Promise<CouponRow> {
  refuseCurrencyOptions(params.currency_options, 'currency_options');
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const coupon = await findCoupon(tx, ctx, id, { lock: true });
    const metadata = mergeMetadata(coupon.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    const name = params.name === undefined ? coupon.name : params.name.trim() === '' ? null : params.name.trim();
    const after = await tx.updateTable('coupons').set({ name, metadata: JSON.stringify(metadata) }).where('merchant_id', '=', coupon.merchant_id)
      .where('livemode', '=', coupon.livemode).where('id', '=', coupon.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'coupon.update', objectType: 'coupon', objectId: coupon.id, details: { fields: Object.keys(params) } },
      [{ type: 'coupon.updated', coupon: { before: coupon, after, nowMs: now.getTime() } }], now);
    await respond?.(tx, after);
    return after;
  });
}

/**
 * Deletes a coupon: nothing new can take it (its promotion codes are deactivated), while sessions that took it keep
 * their discount, as at Stripe. The row stays, so that its id is never given to another coupon.
 */
export async function deleteCoupon(services: Services, ctx: RequestContext, id: string, respond?: Respond<CouponRow>): Promise<CouponRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const coupon = await findCoupon(tx, ctx, id, { lock: true });
    const after = await tx.updateTable('coupons').set({ deleted_at: now }).where('merchant_id', '=', coupon.merchant_id)
      .where('livemode', '=', coupon.livemode).where('id', '=', coupon.id).returningAll().executeTakeFirstOrThrow();
    // Its codes stop with it, and their words are free for new codes.
    await tx.updateTable('promotion_codes').set({ active: false }).where('merchant_id', '=', coupon.merchant_id).where('livemode', '=', coupon.livemode)
      .where('coupon_id', '=', coupon.id).where('active', '=', true).execute();
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'coupon.delete', objectType: 'coupon', objectId: coupon.id },
      [{ type: 'coupon.deleted', coupon: { after: coupon, nowMs: now.getTime() } }], now);
    await respond?.(tx, after);
    return after;
  });
}

export async function findPromotionCode(reader: Reader, ctx: RequestContext, id: string, options: { lock?: boolean; param?: string } = {}): Promise<PromotionCodeRow> {
  let query = reader.selectFrom('promotion_codes').selectAll().where('id', '=', id).where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
  if (options.lock === true) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('promotion code', id, options.param ?? 'id');
  return row;
}

/** The coupon of a code, deleted or not (a code names its coupon for ever). */
export async function couponOfCode(reader: Reader, code: PromotionCodeRow, hold = false): Promise<CouponRow> {
  const query = reader.selectFrom('coupons').selectAll().where('merchant_id', '=', code.merchant_id).where('livemode', '=', code.livemode).where('id', '=', code.coupon_id);
  return (hold ? query.forShare() : query).executeTakeFirstOrThrow();
}

function wordTaken(code: string): CofferError {
  return new CofferError('resource_already_exists', `An active promotion code with the code '${code}' already exists for the same customers (codes are compared case aside).`, { param: 'code' });
}

function isWordTaken(error: unknown): boolean {
  return (error as { code?: unknown }).code === '23505';
}

/** A promotion code and its coupon, as the API renders it. */
export interface CodeWithCoupon {
  code: PromotionCodeRow;
  coupon: CouponRow;
}

export async function createPromotionCode(services: Services, ctx: RequestContext, params: PromotionCodeParams, respond?: Respond<CodeWithCoupon>): Promise<CodeWithCoupon> {
  const now = new Date(services.clock.nowMs());
  const restrictions = params.restrictions ?? {};
  refuseCurrencyOptions(restrictions.currency_options, 'restrictions[currency_options]');
  if (restrictions.first_time_transaction === true) {
    throw new CofferError('parameter_invalid', 'Coffer does not offer first-time-only codes: restrictions[first_time_transaction] must be false. Restrict the code to a customer, or to a number of uses, instead.',
      { param: 'restrictions[first_time_transaction]' });
  }
  if (params.promotion !== undefined && params.coupon !== undefined) {
    throw new CofferError('parameters_exclusive', 'You may only specify one of these parameters: promotion[coupon], coupon.', { param: 'coupon' });
  }
  const couponId = params.promotion?.coupon ?? params.coupon;
  const couponParam = params.coupon === undefined ? 'promotion[coupon]' : 'coupon';
  if (couponId === undefined) throw new CofferError('parameter_missing', 'Missing required param: promotion[coupon]. A promotion code gives a coupon.', { param: 'promotion[coupon]' });
  const coupon = await findCoupon(services.db, ctx, couponId, { param: couponParam });
  if (coupon.redeem_by !== null && coupon.redeem_by.getTime() <= now.getTime()) {
    throw new CofferError('parameter_invalid', `The coupon ${coupon.id} can no longer be redeemed (its redeem_by has passed).`, { param: couponParam });
  }
  const word = params.code ?? randomIdCharacters(8).toUpperCase();
  if (!/^[A-Za-z0-9-]{1,500}$/.test(word)) {
    throw new CofferError('parameter_invalid', `code may have only letters, digits and dashes (-), at most 500 of them; got "${word}".`, { param: 'code' });
  }
  if (params.expires_at !== undefined) {
    if (params.expires_at * 1000 <= now.getTime()) throw new CofferError('parameter_invalid', 'expires_at must be in the future.', { param: 'expires_at' });
    if (coupon.redeem_by !== null && params.expires_at * 1000 > coupon.redeem_by.getTime()) {
      throw new CofferError('parameter_invalid', `expires_at cannot be after the coupon's redeem_by (${Math.floor(coupon.redeem_by.getTime() / 1000)}).`, { param: 'expires_at' });
    }
  }
  if (params.max_redemptions !== undefined && coupon.max_redemptions !== null && params.max_redemptions > coupon.max_redemptions) {
    throw new CofferError('parameter_invalid', `max_redemptions (${params.max_redemptions}) cannot be more than the coupon's (${coupon.max_redemptions}).`, { param: 'max_redemptions' });
  }
  let minimum: { amount: bigint; currency: string } | null = null;
  if (restrictions.minimum_amount !== undefined || restrictions.minimum_amount_currency !== undefined) {
    if (restrictions.minimum_amount === undefined || restrictions.minimum_amount_currency === undefined) {
      throw new CofferError('parameter_missing', 'restrictions[minimum_amount] and restrictions[minimum_amount_currency] go together.',
        { param: restrictions.minimum_amount === undefined ? 'restrictions[minimum_amount]' : 'restrictions[minimum_amount_currency]' });
    }
    const info = parseCurrency(restrictions.minimum_amount_currency, 'restrictions[minimum_amount_currency]');
    const amount = BigInt(restrictions.minimum_amount);
    if (amount > BigInt(limits.amountMinorMax)) throw new CofferError('amount_too_large', `restrictions[minimum_amount] must be no more than ${limits.amountMinorMax}.`, { param: 'restrictions[minimum_amount]' });
    checkAmountStep(amount, info, 'restrictions[minimum_amount]');
    if (coupon.currency !== null && coupon.currency !== info.code) {
      throw new CofferError('parameter_invalid', `The coupon is an amount off in ${coupon.currency}; a least order in ${info.code} could never be met with it.`, { param: 'restrictions[minimum_amount_currency]' });
    }
    minimum = { amount, currency: info.code };
  }
  const customer = params.customer === undefined ? null : (await liveCustomer(services.db, ctx, params.customer)).id;
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  try {
    return await inTransaction(services.db, async (tx) => {
      // The coupon as it is now, held until the code is written: a deletion meanwhile waits, then deactivates it.
      const held = await tx.selectFrom('coupons').select('deleted_at').where('merchant_id', '=', coupon.merchant_id).where('livemode', '=', coupon.livemode)
        .where('id', '=', coupon.id).forShare().executeTakeFirstOrThrow();
      if (held.deleted_at !== null) throw resourceMissing('coupon', coupon.id, couponParam);
      const row = await tx.insertInto('promotion_codes').values({
        id: newId('promo'), merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now, coupon_id: coupon.id, code: word,
        active: params.active ?? true, customer_id: customer, expires_at: params.expires_at === undefined ? null : new Date(params.expires_at * 1000),
        max_redemptions: params.max_redemptions ?? null, minimum_amount: minimum?.amount ?? null, minimum_amount_currency: minimum?.currency ?? null,
        metadata: JSON.stringify(metadata),
      }).returningAll().executeTakeFirstOrThrow();
      await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'promotion_code.create', objectType: 'promotion_code', objectId: row.id,
        details: { coupon: coupon.id, code: row.code } }, [{ type: 'promotion_code.created', promotionCode: { after: row, coupon, nowMs: now.getTime() } }], now);
      await respond?.(tx, { code: row, coupon });
      return { code: row, coupon };
    });
  } catch (error) {
    if (isWordTaken(error)) throw wordTaken(word);
    throw error;
  }
}

/** A code may be turned off and on again (while no other active code has its word), and its metadata changed. */
export async function updatePromotionCode(services: Services, ctx: RequestContext, id: string, params: PromotionCodeUpdateParams, respond?: Respond<CodeWithCoupon>): Promise<CodeWithCoupon> {
  refuseCurrencyOptions(params.restrictions?.currency_options, 'restrictions[currency_options]');
  const now = new Date(services.clock.nowMs());
  try {
    return await inTransaction(services.db, async (tx) => {
      const code = await findPromotionCode(tx, ctx, id, { lock: true });
      const coupon = await couponOfCode(tx, code, true);
      if (params.active === true && !code.active && coupon.deleted_at !== null) {
        throw new CofferError('parameter_invalid', `The coupon ${coupon.id} was deleted; its codes cannot be made active again.`, { param: 'active' });
      }
      const metadata = mergeMetadata(code.metadata, params.metadata);
      checkMetadataSize(metadata, limits.metadataKeysMax);
      const after = await tx.updateTable('promotion_codes').set({ metadata: JSON.stringify(metadata), ...(params.active === undefined ? {} : { active: params.active }) })
        .where('id', '=', code.id).returningAll().executeTakeFirstOrThrow();
      await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'promotion_code.update', objectType: 'promotion_code', objectId: code.id, details: { fields: Object.keys(params) } },
        [{ type: 'promotion_code.updated', promotionCode: { before: code, after, coupon, nowMs: now.getTime() } }], now);
      await respond?.(tx, { code: after, coupon });
      return { code: after, coupon };
    });
  } catch (error) {
    if (isWordTaken(error)) {
      const code = await findPromotionCode(services.db, ctx, id);
      throw wordTaken(code.code);
    }
    throw error;
  }
}

/**
 * How many redemptions of a coupon (or of a code) are taken: by sessions paid, and by sessions whose payment is under
 * way or authorized. The attempt's statement counts the same way, under the coupon's lock (migration 0069).
 */
async function redemptionsTaken(reader: Reader, scope: { merchantId: string; livemode: boolean }, by: { coupon: string } | { code: string }, exceptSession: string | null): Promise<number> {
  let query = reader.selectFrom('checkout_sessions as s').innerJoin('payment_intents as i', 'i.id', 's.payment_intent_id')
    .select((eb) => eb.fn.countAll<string>().as('taken'))
    .where('s.merchant_id', '=', scope.merchantId).where('s.livemode', '=', scope.livemode)
    .where((eb) => eb.or([eb('s.status', '=', 'complete'), eb.and([eb('s.status', '=', 'open'), eb('i.status', 'in', ['processing', 'requires_action', 'requires_capture', 'succeeded'])])]));
  query = 'coupon' in by ? query.where('s.discount_coupon_id', '=', by.coupon) : query.where('s.discount_promotion_code_id', '=', by.code);
  if (exceptSession !== null) query = query.where('s.id', '<>', exceptSession);
  const row = await query.executeTakeFirstOrThrow();
  return Number(row.taken);
}

/** Why a discount cannot be taken by an order; the page says it in the shopper's language, the API in English. */
export type DiscountRefusal = 'codeUnknown' | 'codeExpired' | 'codeUsedUp' | 'codeNotForCustomer' | 'codeCurrency' | 'codeMinimum' | 'codeNoItems' | 'codeTooMuch';

const refusalText: Record<DiscountRefusal, string> = {
  codeUnknown: 'is not an active coupon or promotion code',
  codeExpired: 'can no longer be redeemed (it has expired)',
  codeUsedUp: 'has been redeemed as many times as it may be',
  codeNotForCustomer: 'is restricted to another customer',
  codeCurrency: 'is an amount off in another currency than the order\'s',
  codeMinimum: 'needs a larger order',
  codeNoItems: 'applies to none of the order\'s items',
  codeTooMuch: 'would take the order below the smallest payment in its currency',
};

export function discountRefusalText(refusal: DiscountRefusal): string {
  return refusalText[refusal];
}

/** The order a discount is checked against: its currency, customer, items (with their products), and shipping. */
export interface DiscountedOrder {
  currency: string;
  customerId: string | null;
  items: readonly DiscountedItem[];
  shipping: bigint;
}

/** The discount a coupon (and the code that gives it) makes of an order, as a session keeps it. */
export function discountSnapshot(coupon: CouponRow, code: PromotionCodeRow | null): CheckoutDiscount {
  return {
    coupon: {
      id: coupon.id, name: coupon.name, percent_off_hundredths: coupon.percent_off_hundredths, amount_off: coupon.amount_off === null ? null : Number(coupon.amount_off),
      products: coupon.applies_to_products,
    },
    promotion_code: code === null ? null : {
      id: code.id, code: code.code,
      minimum: code.minimum_amount === null || code.minimum_amount_currency === null ? null : { amount: Number(code.minimum_amount), currency: code.minimum_amount_currency },
    },
  };
}

/** The discount's terms, as the shared arithmetic takes them. */
export function discountTerms(discount: CheckoutDiscount) {
  return { percentOffHundredths: discount.coupon.percent_off_hundredths, amountOff: discount.coupon.amount_off, products: discount.coupon.products };
}

/**
 * What a discount takes off an order, or why the order cannot take it: an amount off in another currency, an order
 * below the code's least, no item it applies to, or a total below the currency's smallest payment. What depends on
 * the order only (not on the coupon's state) is checked here, also each time the shopper changes the order.
 */
export function discountForOrder(discount: CheckoutDiscount, order: DiscountedOrder): { amount: bigint } | { refused: DiscountRefusal } {
  const currency = findCurrency(order.currency);
  if (currency === undefined) return { refused: 'codeCurrency' };
  const subtotal = order.items.reduce((sum, item) => sum + BigInt(item.amount), 0n);
  const minimum = discount.promotion_code?.minimum ?? null;
  if (minimum !== null && (minimum.currency !== order.currency || subtotal < BigInt(minimum.amount))) return { refused: 'codeMinimum' };
  const { total } = discountOf(discountTerms(discount), order.items, currency.amountStep);
  if (total === 0 && subtotal > 0n) return { refused: 'codeNoItems' };
  if (subtotal - BigInt(total) + order.shipping < BigInt(currency.minimumMinor)) return { refused: 'codeTooMuch' };
  return { amount: BigInt(total) };
}

/**
 * A coupon, or a promotion code, checked for an order at the moment it is applied: it exists and can be redeemed now
 * (not deleted, expired or used up, for this customer), and the order can take it. `session`: the session it is
 * applied to, whose own hold on a redemption does not count against it.
 */
export async function checkDiscount(reader: Reader, scope: { merchantId: string; livemode: boolean }, found: { coupon: CouponRow; code: PromotionCodeRow | null },
  order: DiscountedOrder, nowMs: number, session: string | null): Promise<{ discount: CheckoutDiscount; amount: bigint } | { refused: DiscountRefusal }> {
  const { coupon, code } = found;
  if (coupon.deleted_at !== null || (code !== null && !code.active)) return { refused: 'codeUnknown' };
  if ((coupon.redeem_by !== null && coupon.redeem_by.getTime() <= nowMs) || (code !== null && code.expires_at !== null && code.expires_at.getTime() <= nowMs)) return { refused: 'codeExpired' };
  if (code !== null && code.customer_id !== null && code.customer_id !== order.customerId) return { refused: 'codeNotForCustomer' };
  if (coupon.currency !== null && coupon.currency !== order.currency) return { refused: 'codeCurrency' };
  if (coupon.max_redemptions !== null && await redemptionsTaken(reader, scope, { coupon: coupon.id }, session) >= coupon.max_redemptions) return { refused: 'codeUsedUp' };
  if (code !== null && code.max_redemptions !== null && await redemptionsTaken(reader, scope, { code: code.id }, session) >= code.max_redemptions) return { refused: 'codeUsedUp' };
  const discount = discountSnapshot(coupon, code);
  const taken = discountForOrder(discount, order);
  return 'refused' in taken ? taken : { discount, amount: taken.amount };
}

/**
 * The active promotion code a shopper typed, case aside: the customer's own first, else one for anyone. Undefined
 * when there is none: another customer's code is no code at all to this shopper, so that the page does not tell a
 * stranger that the word is someone's.
 */
export async function codeByWord(reader: Reader, scope: { merchantId: string; livemode: boolean }, word: string, customerId: string | null): Promise<CodeWithCoupon | undefined> {
  if (!/^[A-Za-z0-9-]{1,500}$/.test(word)) return undefined;
  const rows = await reader.selectFrom('promotion_codes').selectAll().where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode)
    .where('active', '=', true).where(sql<boolean>`lower(code) = ${word.toLowerCase()}`).execute();
  const code = rows.find((row) => row.customer_id !== null && row.customer_id === customerId) ?? rows.find((row) => row.customer_id === null);
  if (code === undefined) return undefined;
  return { code, coupon: await couponOfCode(reader, code) };
}

/**
 * Whether the session's discount has no use left for it (other sessions paid, or being paid, with it): its payment
 * would be refused, and the shopper may remove the discount to pay without it.
 */
export async function sessionDiscountUsedUp(reader: Reader, session: { id: string; merchant_id: string; livemode: boolean; discount_coupon_id: string | null; discount_promotion_code_id: string | null }): Promise<boolean> {
  if (session.discount_coupon_id === null) return false;
  const scope = { merchantId: session.merchant_id, livemode: session.livemode };
  const coupon = await reader.selectFrom('coupons').select('max_redemptions').where('merchant_id', '=', session.merchant_id).where('livemode', '=', session.livemode)
    .where('id', '=', session.discount_coupon_id).executeTakeFirst();
  const couponMax = coupon?.max_redemptions ?? null;
  if (couponMax !== null && await redemptionsTaken(reader, scope, { coupon: session.discount_coupon_id }, session.id) >= couponMax) return true;
  if (session.discount_promotion_code_id === null) return false;
  const code = await reader.selectFrom('promotion_codes').select('max_redemptions').where('id', '=', session.discount_promotion_code_id).executeTakeFirst();
  const codeMax = code?.max_redemptions ?? null;
  return codeMax !== null && await redemptionsTaken(reader, scope, { code: session.discount_promotion_code_id }, session.id) >= codeMax;
}

/** A paid session's discount counts as one redemption of its coupon and of its code, in the completion's transaction. */
export async function countRedemption(tx: Tx, session: { merchant_id: string; livemode: boolean; discount_coupon_id: string | null; discount_promotion_code_id: string | null }): Promise<void> {
  if (session.discount_coupon_id === null) return;
  await tx.updateTable('coupons').set((eb) => ({ times_redeemed: eb('times_redeemed', '+', 1) })).where('merchant_id', '=', session.merchant_id)
    .where('livemode', '=', session.livemode).where('id', '=', session.discount_coupon_id).execute();
  if (session.discount_promotion_code_id !== null) {
    await tx.updateTable('promotion_codes').set((eb) => ({ times_redeemed: eb('times_redeemed', '+', 1) })).where('id', '=', session.discount_promotion_code_id).execute();
  }
}
