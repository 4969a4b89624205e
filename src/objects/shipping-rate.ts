import type { DeliveryEstimate, ShippingRateRow } from '../store/database.ts';
import { amountOut, unixTime } from './common.ts';

/** A delivery estimate as Stripe shows it: both bounds, each null when not given. */
export function deliveryEstimateObject(estimate: DeliveryEstimate | null): Record<string, unknown> | null {
  if (estimate === null) return null;
  return { maximum: estimate.maximum ?? null, minimum: estimate.minimum ?? null };
}

/** Stripe's Shipping Rate, always `fixed_amount` in one currency. Coffer computes no tax: `tax_code` is null. */
export function shippingRateObject(row: ShippingRateRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'shipping_rate',
    active: row.active,
    created: unixTime(row.created_at),
    delivery_estimate: deliveryEstimateObject(row.delivery_estimate),
    display_name: row.display_name,
    fixed_amount: { amount: amountOut(row.amount), currency: row.currency },
    livemode: row.livemode,
    metadata: row.metadata,
    tax_behavior: row.tax_behavior,
    tax_code: null,
    type: 'fixed_amount',
  };
}
