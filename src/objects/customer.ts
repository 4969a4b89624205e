import type { CustomerBalanceTransactionRow, CustomerRow } from '../store/database.ts';
import { addressObject, amountOut, shippingObject, unixTime } from './common.ts';

/** Stripe's Customer; a deleted one is only its id and `deleted: true`. */
export function customerObject(row: CustomerRow): Record<string, unknown> {
  if (row.deleted_at !== null) return { id: row.id, object: 'customer', deleted: true };
  return {
    id: row.id,
    object: 'customer',
    address: addressObject(row.address),
    balance: amountOut(row.balance),
    created: unixTime(row.created_at),
    currency: row.balance_currency,
    default_source: null,
    delinquent: false,
    description: row.description,
    discount: null,
    email: row.email,
    invoice_prefix: row.id.slice(4, 12).toUpperCase(),
    invoice_settings: { custom_fields: null, default_payment_method: row.default_payment_method_id, footer: null, rendering_options: null },
    livemode: row.livemode,
    metadata: row.metadata,
    name: row.name,
    next_invoice_sequence: 1,
    phone: row.phone,
    preferred_locales: row.preferred_locales,
    shipping: shippingObject(row.shipping, 'customer'),
    tax_exempt: row.tax_exempt,
    test_clock: null,
  };
}

export function customerBalanceTransactionObject(row: CustomerBalanceTransactionRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'customer_balance_transaction',
    amount: amountOut(row.amount),
    created: unixTime(row.created_at),
    credit_note: null,
    currency: row.currency,
    customer: row.customer_id,
    description: row.description,
    ending_balance: amountOut(row.ending_balance),
    invoice: null,
    livemode: row.livemode,
    metadata: row.metadata,
    type: row.type,
  };
}
