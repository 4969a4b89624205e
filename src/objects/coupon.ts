import type { CouponRow, PromotionCodeRow } from '../store/database.ts';
import { amountOut, unixTime } from './common.ts';

/** Stripe's Coupon. `valid`: it can still be redeemed (not deleted, not past `redeem_by`, redemptions left). */
export function couponObject(row: CouponRow, nowMs: number): Record<string, unknown> {
  return {
    id: row.id,
    object: 'coupon',
    amount_off: row.amount_off === null ? null : amountOut(row.amount_off),
    ...(row.applies_to_products === null ? {} : { applies_to: { products: row.applies_to_products } }),
    created: unixTime(row.created_at),
    currency: row.currency,
    duration: row.duration,
    duration_in_months: row.duration_in_months,
    livemode: row.livemode,
    max_redemptions: row.max_redemptions,
    metadata: row.metadata,
    name: row.name,
    percent_off: row.percent_off_hundredths === null ? null : row.percent_off_hundredths / 100,
    redeem_by: row.redeem_by === null ? null : unixTime(row.redeem_by),
    times_redeemed: row.times_redeemed,
    valid: couponValid(row, nowMs),
  };
}

export function couponValid(row: CouponRow, nowMs: number): boolean {
  return row.deleted_at === null && (row.redeem_by === null || row.redeem_by.getTime() > nowMs)
    && (row.max_redemptions === null || row.times_redeemed < row.max_redemptions);
}

/** What a deleted coupon's DELETE answers, as Stripe's. */
export function deletedCouponObject(row: CouponRow): Record<string, unknown> {
  return { id: row.id, object: 'coupon', deleted: true };
}

/**
 * Stripe's Promotion Code. Since 2025-09-30 it names its coupon under `promotion` (`{ type: 'coupon', coupon }`);
 * before, it has the whole coupon as `coupon` (`wholeCoupon`, see `promotionCodeShowsCoupon`). `active`, as at Stripe, is the code's own and its coupon's validity.
 */
export function promotionCodeObject(row: PromotionCodeRow, coupon: CouponRow, nowMs: number, wholeCoupon = false): Record<string, unknown> {
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'promotion_code',
    active: row.active && couponValid(coupon, nowMs),
    code: row.code,
    created: unixTime(row.created_at),
    customer: row.customer_id,
    customer_account: null,
    expires_at: row.expires_at === null ? null : unixTime(row.expires_at),
    livemode: row.livemode,
    max_redemptions: row.max_redemptions,
    metadata: row.metadata,
    promotion: { coupon: coupon.id, type: 'coupon' },
    restrictions: {
      currency_options: {},
      first_time_transaction: false,
      minimum_amount: row.minimum_amount === null ? null : amountOut(row.minimum_amount),
      minimum_amount_currency: row.minimum_amount_currency,
    },
    times_redeemed: row.times_redeemed,
  };
  if (wholeCoupon) {
    delete object.promotion;
    delete object.customer_account;
    object.coupon = couponObject(coupon, nowMs);
  }
  return object;
}
