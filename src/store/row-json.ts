import type { Insertable, Updateable } from 'kysely';
import type { ChargeRow, ChargesTable, CustomerRow, CustomersTable, PaymentIntentRow, PaymentIntentsTable, PaymentMethodRow, PaymentMethodsTable } from './database.ts';

/**
 * Rows as flows see them hold parsed JSON; the database takes those columns as JSON text. These convert a row,
 * or the part of one that changes, to what Kysely inserts or updates.
 */
const jsonColumns = {
  payment_intents: ['payment_method_types', 'automatic_payment_methods', 'metadata', 'shipping', 'last_payment_error', 'next_action'],
  charges: ['payment_method_details', 'outcome', 'metadata', 'risk_facts', 'risk', 'billing_details', 'shipping'],
  payment_methods: ['card', 'billing_details', 'metadata'],
  customers: ['address', 'shipping', 'metadata', 'preferred_locales'],
} as const;

function toDb(values: Record<string, unknown>, columns: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    // A null JSON column is SQL NULL (not the JSON value null), so that constraints on it see it as missing.
    out[key] = columns.includes(key) && value !== null ? JSON.stringify(value) : value;
  }
  return out;
}

export function paymentIntentChanges(changes: Partial<PaymentIntentRow>): Updateable<PaymentIntentsTable> {
  const { id: _id, seq: _seq, version: _version, ...rest } = changes;
  return toDb(rest, jsonColumns.payment_intents) as Updateable<PaymentIntentsTable>;
}

export function paymentIntentInsert(row: PaymentIntentRow): Insertable<PaymentIntentsTable> {
  const { seq: _seq, version: _version, ...rest } = row;
  return toDb(rest, jsonColumns.payment_intents) as Insertable<PaymentIntentsTable>;
}

export function chargeChanges(changes: Partial<ChargeRow>): Updateable<ChargesTable> {
  const { id: _id, seq: _seq, ...rest } = changes;
  return toDb(rest, jsonColumns.charges) as Updateable<ChargesTable>;
}

export function chargeInsert(row: ChargeRow): Insertable<ChargesTable> {
  const { seq: _seq, ...rest } = row;
  return toDb(rest, jsonColumns.charges) as Insertable<ChargesTable>;
}

export function paymentMethodInsert(row: PaymentMethodRow): Insertable<PaymentMethodsTable> {
  const { seq: _seq, ...rest } = row;
  return toDb(rest, jsonColumns.payment_methods) as Insertable<PaymentMethodsTable>;
}

export function customerInsert(row: CustomerRow): Insertable<CustomersTable> {
  const { seq: _seq, ...rest } = row;
  return toDb(rest, jsonColumns.customers) as Insertable<CustomersTable>;
}
