import type { PaymentMethodRow } from '../store/database.ts';
import type { ApiShape } from './api-version.ts';
import { addressObject, emptyAddress, unixTime } from './common.ts';

export function billingDetailsObject(details: Record<string, unknown>, shape: ApiShape): Record<string, unknown> {
  const base: Record<string, unknown> = {
    // Every field of Stripe's address, null where none was given.
    address: addressObject(details.address) ?? emptyAddress,
    email: details.email ?? null,
    name: details.name ?? null,
    phone: details.phone ?? null,
  };
  if (shape === 'current') base.tax_id = details.tax_id ?? null;
  return base;
}

export function paymentMethodObject(row: PaymentMethodRow, shape: ApiShape): Record<string, unknown> {
  if (row.card === null) return walletPaymentMethodObject(row, shape);
  const card = row.card;
  const cardObject: Record<string, unknown> = {
    brand: card.brand,
    checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: null },
    country: card.country,
    display_brand: card.brand,
    exp_month: card.exp_month,
    exp_year: card.exp_year,
    fingerprint: card.fingerprint,
    funding: card.funding,
    generated_from: null,
    last4: card.last4,
    networks: { available: card.networks, preferred: null },
  };
  if (shape === 'current') cardObject.regulated_status = 'unregulated';
  cardObject.three_d_secure_usage = { supported: card.three_d_secure_supported };
  cardObject.wallet = null;
  return withCommonFields(row, shape, { card: cardObject });
}

/** The fields every payment method has, in Stripe's order, around the type's own (`card`, `alipay`, …). */
function withCommonFields(row: PaymentMethodRow, shape: ApiShape, typed: Record<string, unknown>): Record<string, unknown> {
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'payment_method',
    allow_redisplay: row.allow_redisplay ?? 'unspecified',
    billing_details: billingDetailsObject(row.billing_details, shape),
    ...typed,
    created: unixTime(row.created_at),
    customer: row.customer_id,
  };
  if (shape === 'current') object.customer_account = null;
  object.livemode = row.livemode;
  object.metadata = row.metadata;
  object.type = row.type;
  return object;
}

/** Alipay and WeChat Pay payment methods carry nothing of the shopper's account until a payment succeeds. */
function walletPaymentMethodObject(row: PaymentMethodRow, shape: ApiShape): Record<string, unknown> {
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'payment_method',
    allow_redisplay: row.allow_redisplay ?? 'unspecified',
    billing_details: billingDetailsObject(row.billing_details, shape),
    [row.type]: {},
    created: unixTime(row.created_at),
    customer: row.customer_id,
  };
  if (shape === 'current') object.customer_account = null;
  object.livemode = row.livemode;
  object.metadata = row.metadata;
  object.type = row.type;
  return object;
}
