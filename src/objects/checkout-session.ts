import type { CheckoutSessionRow } from '../store/database.ts';
import { amountOut, unixTime } from './common.ts';

/** Stripe's Checkout Session (payment mode). `url` is the hosted page while the session is open. */
export function checkoutSessionObject(row: CheckoutSessionRow, pageUrl: string | null): Record<string, unknown> {
  return {
    id: row.id,
    object: 'checkout.session',
    amount_subtotal: amountOut(row.amount_total),
    amount_total: amountOut(row.amount_total),
    cancel_url: row.cancel_url,
    client_reference_id: row.client_reference_id,
    created: unixTime(row.created_at),
    currency: row.currency,
    customer: null,
    customer_email: row.customer_email,
    expires_at: unixTime(row.expires_at),
    livemode: row.livemode,
    locale: row.locale,
    metadata: row.metadata,
    mode: 'payment',
    payment_intent: row.payment_intent_id,
    payment_method_types: row.payment_method_types,
    payment_status: row.payment_status,
    status: row.status,
    success_url: row.success_url,
    url: row.status === 'open' ? pageUrl : null,
  };
}

/** The session's order, as Stripe lists it (`/v1/checkout/sessions/:id/line_items`). */
export function lineItemObjects(row: CheckoutSessionRow): Array<Record<string, unknown>> {
  return row.line_items.map((item, index) => ({
    id: `li_${row.id.slice(-20)}${String(index).padStart(3, '0')}`,
    object: 'item',
    amount_discount: 0,
    amount_subtotal: item.amount_total,
    amount_tax: 0,
    amount_total: item.amount_total,
    currency: row.currency,
    description: item.name,
    price: { object: 'price', currency: row.currency, unit_amount: item.unit_amount, type: 'one_time' },
    quantity: item.quantity,
  }));
}
