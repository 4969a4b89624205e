import type { CheckoutLineItem, CheckoutSessionRow } from '../store/database.ts';
import type { ApiShape } from './api-version.ts';
import { addressObject, amountOut, unixTime } from './common.ts';
import { discountOf } from '../checkout/discount-math.ts';
import { findCurrency } from '../domain/currency.ts';
import { consentCollectionObject, consentOf, customFieldObjects, customTextObject } from '../checkout/presentation.ts';

/**
 * Stripe's Checkout Session (payment mode, hosted). `url` is the hosted page while the session is open.
 * `customer_details` is what the session learned when it completed; before that (and for sessions completed
 * before Coffer kept it), only the email it was made with. `amount_subtotal` is the items' total; `amount_total` takes
 * off the discount (`discounts`, `total_details.amount_discount`) and adds the chosen shipping rate (`shipping_cost`).
 * `consent` is what the shopper accepted, once paid. Features Coffer's checkout does not have (tax, subscriptions,
 * invoices) are shown empty, as Stripe shows them unused.
 */
export function checkoutSessionObject(row: CheckoutSessionRow, pageUrl: string | null, shape: ApiShape = 'current'): Record<string, unknown> {
  const customerDetails = row.customer_details ?? (row.customer_email === null ? null : {
    address: null, business_name: null, email: row.customer_email, individual_name: null, name: null, phone: null, tax_exempt: 'none', tax_ids: null,
  });
  const shippingDetails = row.collected?.shipping === undefined ? null : { name: row.collected.shipping.name, address: addressObject(row.collected.shipping.address) };
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'checkout.session',
    adaptive_pricing: null,
    after_expiration: row.recovery === null ? null : {
      recovery: {
        allow_promotion_codes: row.recovery.allow_promotion_codes, enabled: true,
        expires_at: row.recovery_expires_at === null ? null : unixTime(row.recovery_expires_at), url: row.recovery_url,
      },
    },
    allow_promotion_codes: row.allow_promotion_codes ? true : null,
    allowed_payment_method_types: null,
    amount_subtotal: amountOut(row.amount_total - row.amount_shipping + row.amount_discount),
    amount_total: amountOut(row.amount_total),
    automatic_tax: { enabled: false, liability: null, provider: null, status: null },
    billing_address_collection: row.billing_address_collection,
    cancel_url: row.cancel_url,
    client_reference_id: row.client_reference_id,
    client_secret: null,
    collected_information: shippingDetails === null ? null : { business_name: null, individual_name: null, shipping_details: shippingDetails },
    consent: consentOf(row, row.collected),
    consent_collection: consentCollectionObject(row.consent_collection),
    created: unixTime(row.created_at),
    currency: row.currency,
    currency_conversion: null,
    // The values are the paying try's, shown once the session is paid.
    custom_fields: customFieldObjects(row.custom_fields, row.status === 'complete' ? row.collected?.custom_fields : undefined, true),
    custom_text: customTextObject(row.custom_text),
    customer: row.customer_id,
    customer_account: null,
    customer_creation: row.customer_creation ?? 'if_required',
    customer_details: customerDetails,
    customer_email: row.customer_email,
    discounts: row.discount === null ? [] : [{ coupon: row.discount.coupon.id, promotion_code: row.discount.promotion_code?.id ?? null }],
    expires_at: unixTime(row.expires_at),
    integration_identifier: null,
    invoice: null,
    invoice_creation: null,
    livemode: row.livemode,
    locale: row.locale,
    managed_payments: null,
    metadata: row.metadata,
    mode: 'payment',
    optional_items: optionalItemObjects(row.line_items),
    origin_context: null,
    payment_intent: row.payment_intent_id,
    payment_link: row.payment_link_id,
    payment_method_collection: 'if_required',
    payment_method_configuration_details: null,
    payment_method_options: row.payment_method_options,
    payment_method_types: row.payment_method_types,
    payment_status: row.payment_status,
    permissions: null,
    phone_number_collection: { enabled: row.phone_number_collection },
    recovered_from: row.recovered_from,
    saved_payment_method_options: row.saved_payment_method_options === null ? null : {
      allow_redisplay_filters: row.saved_payment_method_options.allow_redisplay_filters ?? (row.customer_id === null ? null : ['always']),
      payment_method_remove: row.saved_payment_method_options.payment_method_remove ?? null, payment_method_save: row.saved_payment_method_options.payment_method_save ?? null,
    },
    setup_intent: null,
    shipping_address_collection: row.shipping_countries === null ? null : { allowed_countries: row.shipping_countries },
    shipping_cost: row.shipping_rate_id === null ? null : {
      amount_subtotal: amountOut(row.amount_shipping), amount_tax: 0, amount_total: amountOut(row.amount_shipping), shipping_rate: row.shipping_rate_id,
    },
    shipping_options: (row.shipping_options ?? []).map((option) => ({ shipping_amount: option.shipping_amount, shipping_rate: option.shipping_rate })),
    status: row.status,
    submit_type: row.submit_type,
    subscription: null,
    // A payment link's hosted confirmation has no success URL (Coffer's own page follows the payment).
    success_url: row.success_url === '' ? null : row.success_url,
    total_details: { amount_discount: amountOut(row.amount_discount), amount_shipping: amountOut(row.amount_shipping), amount_tax: 0 },
    ui_mode: 'hosted',
    url: row.status === 'open' ? pageUrl : null,
    wallet_options: null,
  };
  // Before 2025-03-31 the shipping address was the session's own `shipping_details` (Stripe moved it then).
  if (shape === 'legacy') {
    delete object.collected_information;
    object.shipping_details = shippingDetails;
  }
  return object;
}

/**
 * The session's order, as Stripe lists it (`/v1/checkout/sessions/:id/line_items`). An item sold from the
 * catalogue shows its price as the catalogue has it now (`prices`, rendered by the caller; the amount charged is
 * the item's own, fixed when the session was made). An item given with `price_data` shows the price that made it:
 * inactive (Stripe's are too), with an id derived from the session and the item's place, and its catalogue product
 * if it named one. An item the shopper set to none on the page (an adjustable quantity down to 0) is not in the
 * order, as at Stripe; the others keep their ids.
 */
export function lineItemObjects(row: CheckoutSessionRow, prices: ReadonlyMap<string, Record<string, unknown>> = new Map()): Array<Record<string, unknown>> {
  return itemObjects(row, row.line_items, prices, discountShares(row));
}

/** What the session's discount takes off each of its items (decision 0062), none without one. */
export function discountShares(row: CheckoutSessionRow): number[] {
  if (row.discount === null) return row.line_items.map(() => 0);
  const terms = { percentOffHundredths: row.discount.coupon.percent_off_hundredths, amountOff: row.discount.coupon.amount_off, products: row.discount.coupon.products };
  return discountOf(terms, row.line_items.map((item) => ({ amount: item.amount_total, product: item.product_id })), findCurrency(row.currency)?.amountStep ?? 1).perItem;
}

/** Line items of an order that `owner` holds (a session, or a payment link's order), with ids derived from its id. */
export function itemObjects(owner: { id: string; currency: string; created_at: Date; livemode: boolean }, lineItems: readonly CheckoutLineItem[],
  prices: ReadonlyMap<string, Record<string, unknown>> = new Map(), discounts: readonly number[] = []): Array<Record<string, unknown>> {
  return lineItems.flatMap((item, index) => {
    if (item.quantity === 0) return [];
    const suffix = `${owner.id.slice(-20)}${String(index).padStart(3, '0')}`;
    const catalogued = item.price_id === undefined ? undefined : prices.get(item.price_id);
    return [{
      id: `li_${suffix}`,
      object: 'item',
      adjustable_quantity: item.adjustable === undefined ? null : { enabled: true, maximum: item.adjustable.maximum, minimum: item.adjustable.minimum },
      amount_discount: discounts[index] ?? 0,
      amount_subtotal: item.amount_total,
      amount_tax: 0,
      amount_total: item.amount_total - (discounts[index] ?? 0),
      currency: owner.currency,
      description: item.name,
      metadata: item.metadata ?? {},
      price: catalogued ?? {
        id: item.price_id ?? `price_${suffix}`, object: 'price', active: false, billing_scheme: 'per_unit', created: unixTime(owner.created_at), currency: owner.currency,
        custom_unit_amount: null, livemode: owner.livemode, lookup_key: null, metadata: {}, nickname: null, product: item.product_id ?? `prod_${suffix}`, recurring: null,
        tax_behavior: 'unspecified', tiers_mode: null, transform_quantity: null, type: 'one_time', unit_amount: item.unit_amount,
        unit_amount_decimal: String(item.unit_amount),
      },
      quantity: item.quantity,
    }];
  });
}

/**
 * The items the shopper could add, as they were offered (Stripe's `optional_items`); null when none were. Those
 * added are in the line items too, with the quantity chosen.
 */
export function optionalItemObjects(items: CheckoutLineItem[]): Array<Record<string, unknown>> | null {
  const offered = items.filter((item) => item.optional !== undefined);
  if (offered.length === 0) return null;
  return offered.map((item) => ({
    adjustable_quantity: item.adjustable === undefined ? null : { enabled: true, maximum: item.adjustable.maximum, minimum: item.adjustable.minimum },
    price: item.price_id ?? null, quantity: item.optional?.quantity ?? 0,
  }));
}
