import type { PriceRow, ProductRow } from '../store/database.ts';
import { amountOut, unixTime } from './common.ts';

/**
 * Stripe's Product. A deleted one is only its id and `deleted: true`. What Coffer does not have (Stripe Tax's
 * codes, package dimensions) is shown null, as Stripe shows it unset.
 */
export function productObject(row: ProductRow): Record<string, unknown> {
  if (row.deleted_at !== null) return { id: row.id, object: 'product', deleted: true };
  return {
    id: row.id,
    object: 'product',
    active: row.active,
    created: unixTime(row.created_at),
    default_price: row.default_price_id,
    description: row.description,
    images: row.images,
    livemode: row.livemode,
    marketing_features: row.marketing_features,
    metadata: row.metadata,
    name: row.name,
    package_dimensions: null,
    shippable: row.shippable,
    statement_descriptor: row.statement_descriptor,
    tax_code: null,
    type: row.type,
    unit_label: row.unit_label,
    updated: unixTime(row.updated_at),
    url: row.url,
  };
}

/** Stripe's Price, one-time and per unit: the only kind Coffer has (it has no subscriptions). */
export function priceObject(row: PriceRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'price',
    active: row.active,
    billing_scheme: 'per_unit',
    created: unixTime(row.created_at),
    currency: row.currency,
    custom_unit_amount: null,
    livemode: row.livemode,
    lookup_key: row.lookup_key,
    metadata: row.metadata,
    nickname: row.nickname,
    product: row.product_id,
    recurring: null,
    tax_behavior: row.tax_behavior,
    tiers_mode: null,
    transform_quantity: null,
    type: 'one_time',
    unit_amount: amountOut(row.unit_amount),
    unit_amount_decimal: row.unit_amount.toString(),
  };
}
