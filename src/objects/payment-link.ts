import type { LinkSessionParams } from '../flows/payment-links.ts';
import type { PaymentLinkRow } from '../store/database.ts';
import { consentCollectionObject, customFieldObjects, customTextObject } from '../checkout/presentation.ts';

/**
 * Stripe's Payment Link. What Coffer's links do not have (tax, subscriptions,
 * invoices, Connect) is shown as Stripe shows it unused. `line_items` is shown only when expanded, as at Stripe.
 */
export function paymentLinkObject(row: PaymentLinkRow): Record<string, unknown> {
  const kept = row.session_params as unknown as LinkSessionParams;
  const intentData = kept.payment_intent_data;
  return {
    id: row.id,
    object: 'payment_link',
    active: row.active,
    after_completion: row.after_completion.type === 'redirect'
      ? { type: 'redirect', redirect: row.after_completion.redirect }
      : { type: 'hosted_confirmation', hosted_confirmation: row.after_completion.hosted_confirmation },
    allow_promotion_codes: kept.allow_promotion_codes === true,
    application: null,
    application_fee_amount: null,
    application_fee_percent: null,
    automatic_tax: { enabled: false, liability: null },
    billing_address_collection: kept.billing_address_collection ?? 'auto',
    consent_collection: consentCollectionObject(kept.consent_collection),
    currency: row.currency,
    custom_fields: customFieldObjects(kept.custom_fields, undefined, false),
    custom_text: customTextObject(kept.custom_text),
    customer_creation: kept.customer_creation ?? 'if_required',
    inactive_message: row.inactive_message,
    invoice_creation: null,
    livemode: row.livemode,
    managed_payments: null,
    metadata: row.metadata,
    on_behalf_of: null,
    optional_items: kept.optional_items === undefined ? null : kept.optional_items.map((item) => ({
      adjustable_quantity: item.adjustable_quantity === undefined ? null : { enabled: item.adjustable_quantity.enabled, maximum: item.adjustable_quantity.maximum ?? null, minimum: item.adjustable_quantity.minimum ?? null },
      price: item.price, quantity: item.quantity,
    })),
    payment_intent_data: intentData === undefined ? null : {
      capture_method: intentData.capture_method ?? null, description: intentData.description ?? null, metadata: intentData.metadata ?? {},
      setup_future_usage: null, statement_descriptor: intentData.statement_descriptor ?? null,
      statement_descriptor_suffix: intentData.statement_descriptor_suffix ?? null, transfer_group: null,
    },
    payment_method_collection: 'always',
    payment_method_options: null,
    payment_method_types: kept.payment_method_types ?? null,
    phone_number_collection: { enabled: kept.phone_number_collection?.enabled === true },
    restrictions: row.completed_sessions_limit === null ? null : { completed_sessions: { count: row.completed_sessions, limit: row.completed_sessions_limit } },
    shipping_address_collection: kept.shipping_address_collection ?? null,
    shipping_options: (kept.shipping_options ?? []).map((option, index) => ({ shipping_amount: row.shipping_amounts[index] ?? 0, shipping_rate: option.shipping_rate })),
    submit_type: kept.submit_type ?? 'auto',
    subscription_data: null,
    tax_id_collection: { enabled: false, required: 'never' },
    transfer_data: null,
    url: row.url,
  };
}
