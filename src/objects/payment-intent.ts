import type { Kysely, Transaction } from 'kysely';
import type { ChargeRow, Database, PaymentIntentRow, PaymentMethodRow } from '../store/database.ts';
import type { ApiShape } from './api-version.ts';
import { chargeObject } from './charge.ts';
import { errorDocUrl } from '../domain/errors.ts';
import { amountOut, shippingObject, unixTime, unixTimeOrNull } from './common.ts';
import { paymentMethodObject } from './payment-method.ts';

/** What `last_payment_error` keeps; the payment method is embedded whole when rendered, as Stripe does. */
export interface StoredPaymentError {
  type: string;
  code: string;
  decline_code?: string;
  message: string;
  param?: string;
  charge?: string;
  payment_method_id?: string;
  advice_code?: string | null;
}

export interface PaymentIntentRelated {
  latestCharge?: ChargeRow | undefined;
  paymentMethod?: PaymentMethodRow | undefined;
  errorPaymentMethod?: PaymentMethodRow | undefined;
}

export const paymentIntentExpandable = ['latest_charge', 'payment_method'] as const;

function lastPaymentErrorObject(
  error: StoredPaymentError | null,
  paymentMethod: PaymentMethodRow | undefined,
  shape: ApiShape,
): Record<string, unknown> | null {
  if (error === null) return null;
  const object: Record<string, unknown> = {};
  // Present when the issuer gave advice, as Stripe's type declares it (a string, or absent).
  if (shape === 'current' && error.advice_code !== undefined && error.advice_code !== null) object.advice_code = error.advice_code;
  if (error.charge !== undefined) object.charge = error.charge;
  object.code = error.code;
  if (error.decline_code !== undefined) object.decline_code = error.decline_code;
  const docUrl = errorDocUrl(error.code);
  if (docUrl !== undefined) object.doc_url = docUrl;
  object.message = error.message;
  if (error.param !== undefined) object.param = error.param;
  if (paymentMethod !== undefined) object.payment_method = paymentMethodObject(paymentMethod, shape);
  object.type = error.type;
  return object;
}

/**
 * What a publishable key may read of a PaymentIntent (with its client secret), as Stripe marks the fields
 * "retrievable with publishable key": enough for a payment page to follow the payment, nothing of the merchant's
 * own (metadata, customer, charges).
 */
export const publishablePaymentIntentFields = [
  'id', 'object', 'amount', 'automatic_payment_methods', 'canceled_at', 'cancellation_reason', 'capture_method',
  'client_secret', 'confirmation_method', 'created', 'currency', 'description', 'last_payment_error', 'livemode',
  'next_action', 'payment_method', 'payment_method_configuration_details', 'payment_method_types', 'processing',
  'receipt_email', 'setup_future_usage', 'shipping', 'status',
] as const;

/** What a PaymentMethod shown to a publishable key leaves out: the merchant's own (its metadata, its customer). */
const merchantPaymentMethodFields = new Set(['metadata', 'customer', 'customer_account']);

export function publishablePaymentMethod(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).filter(([field]) => !merchantPaymentMethodFields.has(field)));
}

export function publishablePaymentIntentObject(full: Record<string, unknown>): Record<string, unknown> {
  const shown = Object.fromEntries(publishablePaymentIntentFields.filter((field) => field in full).map((field) => [field, full[field]]));
  // The payment methods it embeds (expanded, or the one a failed attempt used) are cut the same way.
  shown.payment_method = publishablePaymentMethod(shown.payment_method);
  const error = shown.last_payment_error;
  if (typeof error === 'object' && error !== null && 'payment_method' in error) {
    shown.last_payment_error = { ...error, payment_method: publishablePaymentMethod(error.payment_method) };
  }
  return shown;
}

/**
 * `payment_method_options.card`: the card's own capture method and consent to keep the card are shown when they
 * were given, as the SDK declares them (optional keys), in Stripe's key order; the 3-D Secure request always, as
 * kept (`automatic` unless set).
 */
function cardOptionsObject(row: PaymentIntentRow): Record<string, unknown> {
  return {
    ...(row.card_capture_method === null ? {} : { capture_method: row.card_capture_method }),
    installments: null,
    mandate_options: null,
    network: null,
    ...(row.card_request_incremental_authorization === null ? {} : { request_incremental_authorization: row.card_request_incremental_authorization }),
    request_three_d_secure: row.card_request_three_d_secure ?? 'automatic',
    ...(row.card_setup_future_usage === null ? {} : { setup_future_usage: row.card_setup_future_usage }),
  };
}

/**
 * `payment_method_options`: the card's always (as Coffer has always shown it), WeChat Pay's when the PaymentIntent
 * takes WeChat Pay or keeps a client for it, as Stripe's object has it (`app_id` is for Stripe's apps; Coffer has
 * none). The shopper's openid is not shown: Stripe's object has no such field, and it identifies the shopper.
 */
function paymentMethodOptionsObject(row: PaymentIntentRow): Record<string, unknown> {
  const options: Record<string, unknown> = { card: cardOptionsObject(row) };
  if (row.payment_method_types.includes('wechat_pay') || row.wechat_pay_client !== null) {
    options.wechat_pay = { app_id: null, client: row.wechat_pay_client };
  }
  return options;
}

export function paymentIntentObject(
  row: PaymentIntentRow,
  shape: ApiShape,
  related: PaymentIntentRelated = {},
): Record<string, unknown> {
  const object: Record<string, unknown> = { id: row.id, object: 'payment_intent' };
  if (shape === 'current') object.allowed_payment_method_types = null;
  Object.assign(object, {
    amount: amountOut(row.amount),
    amount_capturable: amountOut(row.amount_capturable),
    amount_details: { tip: {} },
    amount_received: amountOut(row.amount_received),
    application: null,
    application_fee_amount: null,
    automatic_payment_methods: row.automatic_payment_methods,
    canceled_at: unixTimeOrNull(row.canceled_at),
    cancellation_reason: row.cancellation_reason,
    capture_method: row.capture_method,
    client_secret: row.client_secret,
    confirmation_method: row.confirmation_method,
    created: unixTime(row.created_at),
    currency: row.currency,
    customer: row.customer_id,
  });
  if (shape === 'current') object.customer_account = null;
  object.description = row.description;
  if (shape === 'current') object.excluded_payment_method_types = null;
  if (shape === 'legacy') object.invoice = null;
  object.last_payment_error = lastPaymentErrorObject(
    row.last_payment_error as StoredPaymentError | null,
    related.errorPaymentMethod,
    shape,
  );
  object.latest_charge =
    related.latestCharge !== undefined ? chargeObject(related.latestCharge, shape) : row.latest_charge_id;
  object.livemode = row.livemode;
  if (shape === 'current') object.managed_payments = null;
  Object.assign(object, {
    metadata: row.metadata,
    next_action: row.next_action,
    on_behalf_of: null,
    payment_method:
      related.paymentMethod !== undefined ? paymentMethodObject(related.paymentMethod, shape) : row.payment_method_id,
    payment_method_configuration_details: null,
    payment_method_options: paymentMethodOptionsObject(row),
    payment_method_types: row.payment_method_types,
  });
  if (shape === 'current') object.payment_record = null;
  Object.assign(object, {
    processing: null,
    receipt_email: row.receipt_email,
    review: row.review_id ?? null,
    setup_future_usage: row.setup_future_usage,
    shipping: shippingObject(row.shipping),
    source: null,
    statement_descriptor: row.statement_descriptor,
    statement_descriptor_suffix: row.statement_descriptor_suffix,
    status: row.status,
    transfer_data: null,
    transfer_group: null,
  });
  return object;
}

type Reader = Kysely<Database> | Transaction<Database>;

/** Loads what the object embeds (the failed attempt's payment method) and what `expand` asks for, then renders. */
export async function renderPaymentIntent(
  db: Reader,
  row: PaymentIntentRow,
  shape: ApiShape,
  expand: readonly string[] = [],
): Promise<Record<string, unknown>> {
  const related: PaymentIntentRelated = {};
  const error = row.last_payment_error as StoredPaymentError | null;
  const methodIds = new Set<string>();
  if (error?.payment_method_id !== undefined) methodIds.add(error.payment_method_id);
  if (expand.includes('payment_method') && row.payment_method_id !== null) methodIds.add(row.payment_method_id);
  if (methodIds.size > 0) {
    const methods = await db.selectFrom('payment_methods').selectAll().where('id', 'in', [...methodIds]).execute();
    const byId = new Map(methods.map((method) => [method.id, method]));
    if (error?.payment_method_id !== undefined) related.errorPaymentMethod = byId.get(error.payment_method_id);
    if (expand.includes('payment_method') && row.payment_method_id !== null) {
      related.paymentMethod = byId.get(row.payment_method_id);
    }
  }
  if (expand.includes('latest_charge') && row.latest_charge_id !== null) {
    related.latestCharge = await db
      .selectFrom('charges')
      .selectAll()
      .where('id', '=', row.latest_charge_id)
      .executeTakeFirst();
  }
  return paymentIntentObject(row, shape, related);
}
