import { setupFutureUsageFor } from '../domain/card-payment-options.ts';
import { testCardExpiry, testCardsByNumber, testPaymentMethods } from '../connectors/card/test-cards.ts';
import { CofferError } from '../domain/errors.ts';
import { assert } from '../platform/assert.ts';
import { cardFingerprint } from '../platform/instance-secret.ts';
import { newId } from '../platform/random.ts';
import { Secret } from '../platform/secret.ts';
import type { ExpressionBuilder, Kysely } from 'kysely';
import type { CardFacts, CustomerRow, Database, PaymentMethodRow } from '../store/database.ts';
import { paymentMethodInsert } from '../store/row-json.ts';
import type { RequestContext, Services, Tx } from './context.ts';
import { findCustomer } from './customers.ts';
import type { Scope } from './payment-intent-records.ts';

function paymentMethodMissing(id: string): CofferError {
  return new CofferError('resource_missing', `No such PaymentMethod: '${id}'`, { param: 'payment_method', missingId: id });
}

/**
 * The payment method a request names: one of this merchant's, or, in test mode, one of Stripe's test ids
 * (`pm_card_visa`, …), for which a new PaymentMethod is created each time, as Stripe does.
 */
export async function resolvePaymentMethod(
  tx: Tx,
  services: Services,
  scope: Scope,
  id: string,
  now: Date,
): Promise<PaymentMethodRow> {
  const prepared = await preparePaymentMethod(tx, services, scope, id, now);
  if (prepared.isNew) await tx.insertInto('payment_methods').values(paymentMethodInsert(prepared.row)).execute();
  return prepared.row;
}

/**
 * Like `resolvePaymentMethod`, but a new PaymentMethod (for a test id) is returned unsaved, for the caller to
 * insert in the statement that uses it.
 */
export async function preparePaymentMethod(
  reader: Tx | Kysely<Database>,
  services: Services,
  scope: Scope,
  id: string,
  now: Date,
): Promise<{ row: PaymentMethodRow; isNew: boolean }> {
  const testNumber = testPaymentMethods[id];
  if (testNumber !== undefined) {
    if (scope.livemode) throw paymentMethodMissing(id);
    return { row: testPaymentMethod(services, scope, id, testNumber, now), isNew: true };
  }
  const row = await reader
    .selectFrom('payment_methods')
    .selectAll()
    .where('id', '=', id)
    .where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode)
    .executeTakeFirst();
  if (row === undefined) throw paymentMethodMissing(id);
  return { row, isNew: false };
}

function testPaymentMethod(services: Services, scope: Scope, alias: string, number: string, now: Date): PaymentMethodRow {
  const testCard = testCardsByNumber.get(number);
  assert(testCard !== undefined, `test payment method ${alias} names a known test card`);
  const card: CardFacts = {
    brand: testCard.brand,
    last4: number.slice(-4),
    exp_month: testCardExpiry.month,
    exp_year: testCardExpiry.year,
    country: testCard.country,
    funding: testCard.funding,
    fingerprint: cardFingerprint(services.fingerprintKey, new Secret(number)),
    networks: [testCard.brand],
    three_d_secure_supported: testCard.brand !== 'amex',
    bin: number.slice(0, 6),
  };
  return {
    id: newId('pm'),
    merchant_id: scope.merchantId,
    livemode: scope.livemode,
    seq: 0n,
    type: 'card',
    card,
    test_card: alias,
    vault_card_id: null,
    billing_details: {},
    customer_id: null,
    first_payment_intent_id: null,
    detached_at: null,
    allow_redisplay: 'unspecified',
    metadata: {},
    created_at: now,
  };
}

/** The customer a request names: this merchant's, and not deleted. */
export async function liveCustomer(reader: Tx | Kysely<Database>, ctx: RequestContext, id: string): Promise<CustomerRow> {
  const customer = await findCustomer(reader, ctx, id);
  if (customer.deleted_at !== null) throw new CofferError('resource_missing', `No such customer: '${id}'`, { param: 'customer' });
  return customer;
}

/** A PaymentIntent is paid only by the types it allows (`payment_method_types`), as at Stripe. */
export function checkTypeAllowed(allowed: readonly string[], type: string, param: string): void {
  if (allowed.includes(type)) return;
  throw new CofferError('parameter_invalid',
    `The payment method type ${type} is not allowed for this PaymentIntent; its payment_method_types are: ${allowed.join(', ')}.`, { param });
}

/** A payment method saved to one customer cannot be used to pay for another (or for nobody in particular). */
export function checkMethodBelongs(method: PaymentMethodRow, customerId: string | null): void {
  if (method.customer_id !== null && method.customer_id !== customerId) {
    throw new CofferError(
      'payment_method_unexpected_state',
      `The payment method ${method.id} belongs to customer ${method.customer_id}; pass that customer to use it.`,
      { param: 'payment_method' },
    );
  }
}

/**
 * A card that belongs to no customer was given for one payment: it may be tried again on the PaymentIntent that
 * first used it, and on no other (as at Stripe). Saved to a customer, it is the customer's to pay with again.
 */
export function checkSingleUse(method: PaymentMethodRow, intentId: string): void {
  checkNotDetached(method, 'payment_method');
  if (method.customer_id !== null || method.first_payment_intent_id === null || method.first_payment_intent_id === intentId) return;
  throw new CofferError('payment_method_unexpected_state',
    `The payment method ${method.id} was used with another PaymentIntent without a customer, so it may not be used again: a card given for one payment is not kept for others. ` +
    'Save a card to a customer (setup_future_usage on its first payment, or a SetupIntent) to pay with it again.', { param: 'payment_method' });
}

/** A card detached from its customer (or whose customer was deleted) pays for nothing more and is not saved again. */
function checkNotDetached(method: PaymentMethodRow, param: string): void {
  if (method.customer_id !== null || method.detached_at === null) return;
  throw new CofferError('payment_method_unexpected_state',
    `The payment method ${method.id} was detached from its customer, so it may not be used again: ask the shopper for the card again.`, { param });
}

/**
 * Nor may such a card be saved to a customer afterwards (attach, a SetupIntent): that would turn a card given for
 * one payment into one charged at will. A card is saved before or by its first payment; or after it, if that
 * payment asked to keep it (`setup_future_usage`, the shopper's consent, given without a customer) and the card
 * was authorized, as Stripe allows.
 */
export const savableStatuses = ['succeeded', 'requires_capture'] as const;

/**
 * `setupFutureUsageFor(intent, 'card') !== null` in SQL: the card's own option when given (`none` keeps nothing),
 * the top-level field otherwise.
 */
function keepsCard(eb: ExpressionBuilder<Database, 'payment_intents'>) {
  return eb.or([
    eb.and([eb('payment_intents.card_setup_future_usage', 'is', null), eb('payment_intents.setup_future_usage', 'is not', null)]),
    eb('payment_intents.card_setup_future_usage', 'in', ['on_session', 'off_session']),
  ]);
}

/**
 * The SQL form of the rule, for the statement that saves the card (so that a cancel or another card committed
 * between the check and the save cannot save a card the check would now refuse): a card never used, or one whose
 * first PaymentIntent asked to keep it and was authorized with this very card.
 */
export function savableNow(eb: ExpressionBuilder<Database, 'payment_methods'>) {
  return eb.or([
    eb('payment_methods.first_payment_intent_id', 'is', null),
    eb.exists(eb.selectFrom('payment_intents').select('payment_intents.id').whereRef('payment_intents.id', '=', 'payment_methods.first_payment_intent_id')
      .whereRef('payment_intents.payment_method_id', '=', 'payment_methods.id')
      .where(keepsCard).where('payment_intents.status', 'in', savableStatuses)),
  ]);
}

export async function checkSavable(tx: Tx, method: PaymentMethodRow, param: string): Promise<void> {
  checkNotDetached(method, param);
  if (method.customer_id !== null || method.first_payment_intent_id === null) return;
  const first = await tx.selectFrom('payment_intents').select(['setup_future_usage', 'card_setup_future_usage', 'status', 'payment_method_id'])
    .where('id', '=', method.first_payment_intent_id).executeTakeFirst();
  const authorized = first !== undefined && (savableStatuses as readonly string[]).includes(first.status);
  const asked = first !== undefined && setupFutureUsageFor(first, 'card') !== null;
  // Authorized with this card: a card declined there, and then replaced by one that paid, was not.
  if (asked && authorized && first.payment_method_id === method.id) return;
  const unasked = first?.card_setup_future_usage === 'none' ? 'with payment_method_options[card][setup_future_usage]=none' : 'without setup_future_usage';
  const why = !asked
    ? `${unasked}, so it cannot be saved to a customer now: save a card before or with its first payment (setup_future_usage)`
    : authorized
      ? 'with setup_future_usage, but that payment was made with another card, so this one cannot be saved from it'
      : `with setup_future_usage, but that payment is ${first.status}, not authorized, so the card cannot be saved from it`;
  throw new CofferError('payment_method_unexpected_state',
    `The payment method ${method.id} was used with PaymentIntent ${method.first_payment_intent_id} ${why}; or ask the shopper for the card again.`, { param });
}

/**
 * Saves a card checked by `checkSavable` to a customer, the rule checked again by the statement itself: a change
 * committed in between (the first PaymentIntent canceled) refuses the save with the check's own message.
 */
export async function saveCheckedMethod(tx: Tx, method: PaymentMethodRow, customerId: string, param: string): Promise<PaymentMethodRow> {
  const saved = await tx.updateTable('payment_methods').set({ customer_id: customerId }).where('id', '=', method.id).where(savableNow).returningAll().executeTakeFirst();
  if (saved !== undefined) return saved;
  await checkSavable(tx, method, param);
  throw new CofferError('payment_method_unexpected_state', `The payment method ${method.id} changed while it was being saved; try again.`, { param });
}
