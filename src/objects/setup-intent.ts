import type { Kysely, Transaction } from 'kysely';
import type { Database, PaymentMethodRow, SetupIntentRow } from '../store/database.ts';
import type { ApiShape } from './api-version.ts';
import { unixTime } from './common.ts';
import { publishablePaymentMethod } from './payment-intent.ts';
import { paymentMethodObject } from './payment-method.ts';

/** The payment method a SetupIntent's `last_setup_error` names, if it has one. */
export function setupErrorMethodId(row: SetupIntentRow): string | undefined {
  const method = (row.last_setup_error as { payment_method?: { id?: unknown } } | null)?.payment_method?.id;
  return typeof method === 'string' ? method : undefined;
}

/**
 * Stripe's SetupIntent. `last_setup_error.payment_method` is the declined card whole, as Stripe embeds it, when its
 * row is given (`errorPaymentMethod`); otherwise only its id.
 */
export function setupIntentObject(row: SetupIntentRow, shape: ApiShape, errorPaymentMethod?: PaymentMethodRow): Record<string, unknown> {
  const error = row.last_setup_error;
  const lastSetupError = error !== null && errorPaymentMethod !== undefined && errorPaymentMethod.id === setupErrorMethodId(row)
    ? { ...error, payment_method: paymentMethodObject(errorPaymentMethod, shape) }
    : error;
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'setup_intent',
  };
  if (shape === 'current') object.allowed_payment_method_types = null;
  Object.assign(object, {
    application: null,
    automatic_payment_methods: row.automatic_payment_methods,
    cancellation_reason: row.cancellation_reason,
    client_secret: row.client_secret,
    created: unixTime(row.created_at),
    customer: row.customer_id,
    description: row.description,
  });
  if (shape === 'current') object.excluded_payment_method_types = null;
  Object.assign(object, {
    flow_directions: null,
    last_setup_error: lastSetupError,
    latest_attempt: null,
    livemode: row.livemode,
    mandate: null,
    metadata: row.metadata,
    // Only while the shopper has something to do: a SetupIntent canceled or given another card has no challenge left.
    next_action: row.status === 'requires_action' ? row.next_action : null,
    on_behalf_of: null,
    payment_method: row.payment_method_id,
    payment_method_configuration_details: null,
    payment_method_options: { card: { mandate_options: null, network: null, request_three_d_secure: 'automatic' } },
    payment_method_types: ['card'],
    single_use_mandate: null,
    status: row.status,
    usage: row.usage,
  });
  return object;
}

/**
 * What a publishable key may read of a SetupIntent (with its client secret), as for a PaymentIntent: enough for the
 * shopper's page to follow the card's set-up, nothing of the merchant's own (customer, metadata, and the description,
 * which the merchant writes for itself about the set-up and the page does not need; decision 0046).
 */
const publishableSetupIntentFields = [
  'id', 'object', 'automatic_payment_methods', 'cancellation_reason', 'client_secret', 'created', 'last_setup_error',
  'livemode', 'next_action', 'payment_method', 'payment_method_configuration_details', 'payment_method_types', 'status', 'usage',
] as const;

export function publishableSetupIntentObject(full: Record<string, unknown>): Record<string, unknown> {
  const shown = Object.fromEntries(publishableSetupIntentFields.filter((field) => field in full).map((field) => [field, full[field]]));
  shown.payment_method = publishablePaymentMethod(shown.payment_method);
  const error = shown.last_setup_error;
  if (typeof error === 'object' && error !== null && 'payment_method' in error) {
    shown.last_setup_error = { ...error, payment_method: publishablePaymentMethod(error.payment_method) };
  }
  return shown;
}

/** SetupIntents as the API shows them, with the payment methods their errors name (read in one query). */
export async function setupIntentObjects(db: Kysely<Database> | Transaction<Database>, rows: SetupIntentRow[], shape: ApiShape): Promise<Array<Record<string, unknown>>> {
  const ids = [...new Set(rows.map(setupErrorMethodId).filter((id) => id !== undefined))];
  const methods = ids.length === 0 ? [] : await db.selectFrom('payment_methods').selectAll().where('id', 'in', ids).execute();
  const byId = new Map(methods.map((method) => [method.id, method]));
  return rows.map((row) => {
    const id = setupErrorMethodId(row);
    return setupIntentObject(row, shape, id === undefined ? undefined : byId.get(id));
  });
}
