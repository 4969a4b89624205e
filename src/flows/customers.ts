import { CofferError, resourceMissing } from '../domain/errors.ts';
import { customerBalanceTransfers } from '../domain/ledger.ts';
import { checkAmountStep, parseCurrency } from '../domain/money.ts';
import { limits } from '../limits.ts';
import { newId } from '../platform/random.ts';
import type { CustomerBalanceTransactionRow, CustomerRow, PaymentMethodRow } from '../store/database.ts';
import { checkSavable, resolvePaymentMethod, saveCheckedMethod } from './payment-methods.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { finishWithLedger } from './ledger-work.ts';
import { checkMetadataSize, emptyToNull, mergeMetadata } from './payment-intent-params.ts';
import { recordChange, type PaymentEvent } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

export interface CustomerParams {
  email?: string | '';
  name?: string | '';
  phone?: string | '';
  description?: string | '';
  address?: Record<string, string> | '';
  shipping?: Record<string, unknown> | '';
  metadata?: Record<string, string> | '';
  invoice_settings?: { default_payment_method?: string | '' };
  preferred_locales?: string[] | '';
  tax_exempt?: 'none' | 'exempt' | 'reverse' | '';
  /** At creation: a payment method to save to the new customer (a test id makes a new one), as Stripe's `payment_method`. */
  payment_method?: string;
}

export async function findCustomer(reader: Tx | Services['db'], ctx: RequestContext, id: string, options: { lock?: boolean; param?: string } = {}): Promise<CustomerRow> {
  let query = reader.selectFrom('customers').selectAll().where('id', '=', id)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
  if (options.lock === true) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('customer', id, options.param ?? 'customer');
  return row;
}

function requireLive(customer: CustomerRow): void {
  if (customer.deleted_at !== null) throw new CofferError('resource_missing', `No such customer: '${customer.id}'; it was deleted.`, { param: 'customer' });
}

/** A customer's contact details. They are personal data: logs never carry them (see platform/logger.ts). */
export async function createCustomer(services: Services, ctx: RequestContext, params: CustomerParams, respond?: Respond<CustomerRow>): Promise<CustomerRow> {
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const now = new Date(services.clock.nowMs());
  const defaultMethod = params.invoice_settings?.default_payment_method;
  if (defaultMethod !== undefined && defaultMethod !== '' && defaultMethod !== params.payment_method) {
    throw new CofferError('parameter_invalid', `The payment method ${defaultMethod} is not attached to this customer: a new customer's default can only be the payment_method it is created with.`,
      { param: 'invoice_settings[default_payment_method]' });
  }
  return inTransaction(services.db, async (tx) => {
    const method = params.payment_method === undefined ? undefined : await methodToSave(tx, services, ctx, params.payment_method, now);
    const id = newId('cus');
    const customer = await tx.insertInto('customers').values({
      id, merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now,
      email: params.email || null, name: params.name || null, phone: params.phone || null, description: params.description || null,
      address: JSON.stringify(params.address || null), shipping: JSON.stringify(params.shipping || null),
      metadata: JSON.stringify(metadata), balance_currency: null, deleted_at: null,
      preferred_locales: JSON.stringify(params.preferred_locales || []), tax_exempt: params.tax_exempt || 'none',
      default_payment_method_id: method !== undefined && defaultMethod !== undefined && defaultMethod !== '' ? method.id : null,
    }).returningAll().executeTakeFirstOrThrow();
    const events: PaymentEvent[] = [{ type: 'customer.created', customer: { after: customer } }];
    if (method !== undefined) {
      const saved = await saveCheckedMethod(tx, method, customer.id, 'payment_method');
      events.push({ type: 'payment_method.attached', paymentMethod: { after: saved } });
    }
    await recordChange(tx, requestTrail(ctx), ctx.actor,
      { action: 'customer.create', objectType: 'customer', objectId: customer.id, ...(method === undefined ? {} : { details: { payment_method: method.id } }) }, events, now);
    await respond?.(tx, customer);
    return customer;
  });
}

/**
 * The payment method a new customer is created with, locked: a test id (`pm_card_visa`) makes a new one; any
 * other must be this merchant's, saved to no customer, and savable (not a guest's card already used).
 */
async function methodToSave(tx: Tx, services: Services, ctx: RequestContext, id: string, now: Date): Promise<PaymentMethodRow> {
  const resolved = await resolvePaymentMethod(tx, services, ctx.actor, id, now);
  const method = await tx.selectFrom('payment_methods').selectAll().where('id', '=', resolved.id).forUpdate().executeTakeFirstOrThrow();
  if (method.customer_id !== null) {
    throw new CofferError('payment_method_unexpected_state', `The payment method ${id} is already attached to a customer; detach it first.`, { param: 'payment_method' });
  }
  await checkSavable(tx, method, 'payment_method');
  return method;
}

export async function updateCustomer(services: Services, ctx: RequestContext, id: string, params: CustomerParams, respond?: Respond<CustomerRow>): Promise<CustomerRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const customer = await findCustomer(tx, ctx, id, { lock: true });
    requireLive(customer);
    const metadata = mergeMetadata(customer.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    let defaultMethod = customer.default_payment_method_id;
    const requested = params.invoice_settings?.default_payment_method;
    if (requested !== undefined) {
      if (requested === '') defaultMethod = null;
      else {
        const method = await tx.selectFrom('payment_methods').select('id').where('id', '=', requested).where('customer_id', '=', customer.id).executeTakeFirst();
        if (method === undefined) {
          throw new CofferError('parameter_invalid', `The payment method ${requested} is not attached to customer ${customer.id}.`, { param: 'invoice_settings[default_payment_method]' });
        }
        defaultMethod = method.id;
      }
    }
    const after = await tx.updateTable('customers').set({
      email: emptyToNull(params.email, customer.email), name: emptyToNull(params.name, customer.name),
      phone: emptyToNull(params.phone, customer.phone), description: emptyToNull(params.description, customer.description),
      ...(params.address === undefined ? {} : { address: JSON.stringify(params.address || null) }),
      ...(params.shipping === undefined ? {} : { shipping: JSON.stringify(params.shipping || null) }),
      ...(params.preferred_locales === undefined ? {} : { preferred_locales: JSON.stringify(params.preferred_locales || []) }),
      ...(params.tax_exempt === undefined ? {} : { tax_exempt: params.tax_exempt || 'none' }),
      metadata: JSON.stringify(metadata), default_payment_method_id: defaultMethod,
    }).where('id', '=', customer.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'customer.update', objectType: 'customer', objectId: customer.id, details: { fields: Object.keys(params) } },
      [{ type: 'customer.updated', customer: { before: customer, after } }], now);
    await respond?.(tx, after);
    return after;
  });
}

/**
 * Deletes a customer: its payment methods are detached (they can no longer be charged), its record kept. Credit it
 * still held goes back to the merchant's available funds, as a last balance transaction: the ledger never keeps
 * money for a customer who no longer exists.
 */
export async function deleteCustomer(services: Services, ctx: RequestContext, id: string): Promise<CustomerRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const customer = await findCustomer(tx, ctx, id, { lock: true });
    requireLive(customer);
    const detached = await tx.updateTable('payment_methods').set({ customer_id: null, detached_at: now }).where('customer_id', '=', customer.id).returningAll().execute();
    const after = await tx.updateTable('customers').set({ deleted_at: now, default_payment_method_id: null, balance: 0n })
      .where('id', '=', customer.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'customer.delete', objectType: 'customer', objectId: customer.id, details: { detached: detached.map((method) => method.id) } }, [
      ...detached.map((method) => ({ type: 'payment_method.detached', paymentMethod: { before: { ...method, customer_id: customer.id }, after: method } })),
      { type: 'customer.deleted', customer: { after: customer } },
    ], now);
    if (customer.balance === 0n || customer.balance_currency === null) return after;
    const returned = { amount: -customer.balance, currency: customer.balance_currency, ending: 0n, reason: 'Credit returned to the merchant: the customer was deleted', metadata: {} };
    return writeBalanceTransaction(tx, ctx, customer, returned, [], now, () => after);
  });
}

/**
 * Writes a balance transaction of `customer` (whose row the caller has locked and updated), its audit record with
 * `events`, and, last (see `finishWithLedger`), its ledger transfers between available funds and customer credit.
 */
async function writeBalanceTransaction<T>(
  tx: Tx,
  ctx: RequestContext,
  customer: CustomerRow,
  entry: { amount: bigint; currency: string; ending: bigint; reason: string; metadata: Record<string, string> },
  events: PaymentEvent[],
  now: Date,
  finish: (transaction: CustomerBalanceTransactionRow) => Promise<T> | T,
): Promise<T> {
  const transaction = await tx.insertInto('customer_balance_transactions').values({
    id: newId('cbtxn'), merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now, customer_id: customer.id,
    amount: entry.amount, currency: entry.currency, ending_balance: entry.ending, description: entry.reason, metadata: JSON.stringify(entry.metadata), type: 'adjustment',
  }).returningAll().executeTakeFirstOrThrow();
  await recordChange(tx, requestTrail(ctx), ctx.actor,
    { action: 'customer.balance_adjust', objectType: 'customer_balance_transaction', objectId: transaction.id,
      details: { customer: customer.id, amount: entry.amount.toString(), currency: entry.currency, reason: entry.reason } },
    events, now);
  return finishWithLedger(tx, {
    context: { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode, currency: entry.currency, paymentIntentId: null, chargeId: null },
    transfers: customerBalanceTransfers(transaction.id, entry.amount),
  }, () => finish(transaction));
}

export interface BalanceTransactionParams {
  amount: number;
  currency: string;
  description: string;
  metadata?: Record<string, string> | '';
}

/**
 * Goodwill compensation: a negative amount credits the customer (the merchant pays it from its available funds,
 * into the ledger's customer credit), a positive one takes credit back, never more than the customer holds.
 * The description is the reason, and it is required: compensation without a reason cannot be audited.
 */
export async function adjustCustomerBalance(services: Services, ctx: RequestContext, id: string, params: BalanceTransactionParams, respond?: Respond<CustomerBalanceTransactionRow>): Promise<CustomerBalanceTransactionRow> {
  const currency = parseCurrency(params.currency);
  const reason = params.description.trim();
  if (reason === '') {
    throw new CofferError('parameter_missing', 'Missing required param: description (the reason for the adjustment).', { param: 'description' });
  }
  if (params.amount === 0) throw new CofferError('parameter_invalid_integer', 'The amount of an adjustment cannot be 0.', { param: 'amount' });
  checkAmountStep(BigInt(params.amount), currency, 'amount');
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const amount = BigInt(params.amount);
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const customer = await findCustomer(tx, ctx, id, { lock: true });
    requireLive(customer);
    if (customer.balance_currency !== null && customer.balance_currency !== currency.code && customer.balance !== 0n) {
      throw new CofferError('parameter_invalid', `The customer's balance is in ${customer.balance_currency}; adjust it in that currency.`, { param: 'currency' });
    }
    const ending = customer.balance + amount;
    if (ending > 0n) {
      throw new CofferError('parameter_invalid', `The customer holds ${-customer.balance} of credit; cannot take back ${amount}.`, { param: 'amount' });
    }
    const after = await tx.updateTable('customers').set({ balance: ending, balance_currency: currency.code }).where('id', '=', customer.id).returningAll().executeTakeFirstOrThrow();
    return writeBalanceTransaction(tx, ctx, customer, { amount, currency: currency.code, ending, reason, metadata },
      [{ type: 'customer.updated', customer: { before: customer, after } }], now, async (transaction) => {
        await respond?.(tx, transaction);
        return transaction;
      });
  });
}
