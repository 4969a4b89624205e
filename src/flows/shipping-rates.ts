import type { Kysely } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { checkAmountStep, parseCurrency } from '../domain/money.ts';
import { limits } from '../limits.ts';
import { newId } from '../platform/random.ts';
import type { Database, DeliveryEstimate, DeliveryEstimateBound, ShippingRateRow } from '../store/database.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

/**
 * Stripe's Shipping Rates: a fixed amount for sending an order, in one currency, with a name and a delivery
 * estimate the shopper is shown. Checkout Sessions offer them (`shipping_options`) and the shopper picks one on the
 * hosted page (decision 0052). What makes a rate (its name, amount, currency, estimate) never changes once it exists;
 * it can be archived (`active=false`), and its metadata and, while unspecified, its tax behaviour can change.
 * Coffer computes no tax, so `tax_code` and per-currency amounts (`currency_options`) are refused by name.
 */

export type TaxBehavior = 'unspecified' | 'inclusive' | 'exclusive';

export interface ShippingRateParams {
  display_name: string;
  type?: 'fixed_amount';
  fixed_amount?: { amount: number; currency: string; currency_options?: unknown };
  delivery_estimate?: DeliveryEstimate;
  metadata?: Record<string, string>;
  tax_behavior?: TaxBehavior;
  tax_code?: string;
}

export interface ShippingRateUpdateParams {
  active?: boolean;
  metadata?: Record<string, string> | '';
  tax_behavior?: TaxBehavior;
  fixed_amount?: { currency_options?: unknown };
}

/** A rate checked and ready to be written, with its id already chosen (a session names it before it is written). */
export type CheckedShippingRate = Omit<ShippingRateRow, 'seq'>;

/** Rough lengths, in hours, to tell an estimate whose least is more than its most (a business day is a day at least). */
const unitHours: Record<DeliveryEstimateBound['unit'], number> = { hour: 1, day: 24, business_day: 24, week: 168, month: 720 };

function refuseTaxAndCurrencies(params: { tax_code?: string; fixed_amount?: { currency_options?: unknown } }, at: (name: string) => string): void {
  if (params.tax_code !== undefined) {
    throw new CofferError('parameter_invalid', `Coffer computes no tax, so it takes no tax codes: leave out ${at('tax_code')}.`, { param: at('tax_code') });
  }
  if (params.fixed_amount?.currency_options !== undefined) {
    throw new CofferError('parameter_invalid',
      `A Checkout Session charges in one currency, so a rate has one amount: leave out ${at('fixed_amount')}[currency_options] and make a rate for each currency.`,
      { param: `${at('fixed_amount')}[currency_options]` });
  }
}

/**
 * A new rate's parameters, checked before any transaction. `prefix` is where they were given (`shipping_options[0]
 * [shipping_rate_data]` for a session's own rate), so that a refusal names the parameter as sent.
 */
export function checkShippingRate(ctx: RequestContext, params: ShippingRateParams, prefix: string, now: Date): CheckedShippingRate {
  const at = (name: string) => (prefix === '' ? name : `${prefix}[${name}]`);
  refuseTaxAndCurrencies(params, at);
  const displayName = params.display_name.trim();
  if (displayName === '') throw new CofferError('parameter_invalid_empty', `${at('display_name')} cannot be empty: it is the name the shopper chooses by.`, { param: at('display_name') });
  const fixed = params.fixed_amount;
  if (fixed === undefined) {
    throw new CofferError('parameter_missing', `Missing required param: ${at('fixed_amount')}. A rate of type fixed_amount needs its amount and currency.`, { param: at('fixed_amount') });
  }
  const currency = parseCurrency(fixed.currency, `${at('fixed_amount')}[currency]`);
  const amount = BigInt(fixed.amount);
  if (amount > BigInt(limits.amountMinorMax)) {
    throw new CofferError('amount_too_large', `${at('fixed_amount')}[amount] must be no more than ${limits.amountMinorMax}.`, { param: `${at('fixed_amount')}[amount]` });
  }
  checkAmountStep(amount, currency, `${at('fixed_amount')}[amount]`);
  const estimate = params.delivery_estimate;
  if (estimate?.minimum !== undefined && estimate.maximum !== undefined
    && estimate.minimum.value * unitHours[estimate.minimum.unit] > estimate.maximum.value * unitHours[estimate.maximum.unit]) {
    throw new CofferError('parameter_invalid',
      `${at('delivery_estimate')}[minimum] (${estimate.minimum.value} ${estimate.minimum.unit}) is longer than its maximum (${estimate.maximum.value} ${estimate.maximum.unit}).`,
      { param: `${at('delivery_estimate')}[minimum]` });
  }
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax, at('metadata'));
  const bounds = estimate === undefined || (estimate.minimum === undefined && estimate.maximum === undefined) ? null : {
    ...(estimate.minimum === undefined ? {} : { minimum: { unit: estimate.minimum.unit, value: estimate.minimum.value } }),
    ...(estimate.maximum === undefined ? {} : { maximum: { unit: estimate.maximum.unit, value: estimate.maximum.value } }),
  };
  return {
    id: newId('shr'), merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now, active: true, display_name: displayName,
    currency: currency.code, amount, delivery_estimate: bounds, tax_behavior: params.tax_behavior ?? 'unspecified', metadata,
  };
}

export async function insertShippingRate(tx: Tx, rate: CheckedShippingRate): Promise<ShippingRateRow> {
  return tx.insertInto('shipping_rates').values({
    ...rate, delivery_estimate: rate.delivery_estimate === null ? null : JSON.stringify(rate.delivery_estimate), metadata: JSON.stringify(rate.metadata),
  }).returningAll().executeTakeFirstOrThrow();
}

export async function findShippingRate(reader: Tx | Kysely<Database>, ctx: RequestContext, id: string, options: { lock?: boolean; param?: string } = {}): Promise<ShippingRateRow> {
  let query = reader.selectFrom('shipping_rates').selectAll().where('id', '=', id)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
  if (options.lock === true) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('shipping rate', id, options.param ?? 'id');
  return row;
}

export async function createShippingRate(services: Services, ctx: RequestContext, params: ShippingRateParams, respond?: Respond<ShippingRateRow>): Promise<ShippingRateRow> {
  const now = new Date(services.clock.nowMs());
  const checked = checkShippingRate(ctx, params, '', now);
  return inTransaction(services.db, async (tx) => {
    const row = await insertShippingRate(tx, checked);
    await recordChange(tx, requestTrail(ctx), { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode }, {
      action: 'shipping_rate.create', objectType: 'shipping_rate', objectId: row.id,
      details: { currency: row.currency, amount: row.amount.toString(), display_name: row.display_name },
    }, [], now);
    await respond?.(tx, row);
    return row;
  });
}

/**
 * What may change on a rate: whether it is offered to new sessions, its metadata, and its tax behaviour only while
 * unspecified (as at Stripe). Sessions that already offer it keep offering it, as at Stripe.
 */
export async function updateShippingRate(services: Services, ctx: RequestContext, id: string, params: ShippingRateUpdateParams, respond?: Respond<ShippingRateRow>): Promise<ShippingRateRow> {
  refuseTaxAndCurrencies(params, (name) => name);
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const rate = await findShippingRate(tx, ctx, id, { lock: true });
    const metadata = mergeMetadata(rate.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    if (params.tax_behavior !== undefined && params.tax_behavior !== rate.tax_behavior && rate.tax_behavior !== 'unspecified') {
      throw new CofferError('parameter_invalid', `This shipping rate's tax_behavior is already ${rate.tax_behavior}; it can be set only once, while unspecified.`, { param: 'tax_behavior' });
    }
    const after = await tx.updateTable('shipping_rates').set({
      metadata: JSON.stringify(metadata),
      ...(params.active === undefined ? {} : { active: params.active }),
      ...(params.tax_behavior === undefined ? {} : { tax_behavior: params.tax_behavior }),
    }).where('id', '=', rate.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode }, {
      action: 'shipping_rate.update', objectType: 'shipping_rate', objectId: rate.id, details: { fields: Object.keys(params) },
    }, [], now);
    await respond?.(tx, after);
    return after;
  });
}
