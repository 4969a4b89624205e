import { checkoutSessionObject } from '../objects/checkout-session.ts';
import { reviewObject } from '../objects/review.ts';
import { sql, type Insertable, type Updateable } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import {
  statusesAllowing,
  transition,
  type PaymentIntentEvent,
  type PaymentIntentStatus,
} from '../domain/payment-intent-machine.ts';
import { paymentIntentObject } from '../objects/payment-intent.ts';
import { chargeObject } from '../objects/charge.ts';
import { assert } from '../platform/assert.ts';
import { auditRow } from '../store/audit.ts';
import type { AuditLogTable, ChargeRow, CustomerRow, DisputeRow, EventsTable, PaymentIntentRow, PaymentIntentsTable, PaymentLimitRow, PaymentLimitsTable, PaymentMethodRow, PaymentMethodsTable, PaymentLinkRow, RefundRow, ReviewRow, SetupIntentRow, CheckoutSessionRow, CouponRow, PriceRow, ProductRow, PromotionCodeRow } from '../store/database.ts';
import type { MerchantPolicyRow } from './risk-decision.ts';
import { balanceTransactionObject, type BalanceTransactionRow } from '../objects/balance-transaction.ts';
import { disputeObject } from '../objects/dispute.ts';
import { setupIntentObject } from '../objects/setup-intent.ts';
import type { ApiShape } from '../objects/api-version.ts';
import { refundObject } from '../objects/refund.ts';
import { customerObject } from '../objects/customer.ts';
import { paymentMethodObject } from '../objects/payment-method.ts';
import { priceObject, productObject } from '../objects/product.ts';
import { paymentLinkObject } from '../objects/payment-link.ts';
import { couponObject, promotionCodeObject } from '../objects/coupon.ts';
import { eventRow, previousAttributes } from '../store/events.ts';
import type { Outcome, RequestContext, Services, Tx } from './context.ts';
import type { Respond } from './respond.ts';
import type { Trail } from './trail.ts';

export interface Scope {
  merchantId: string;
  livemode: boolean;
}

/** Reads and row-locks a PaymentIntent of this merchant and mode; another merchant's id is simply not found. */
export async function lockPaymentIntent(tx: Tx, scope: Scope, id: string): Promise<PaymentIntentRow> {
  const row = await tx
    .selectFrom('payment_intents')
    .selectAll()
    .where('id', '=', id)
    .where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode)
    .forUpdate()
    .executeTakeFirst();
  if (row === undefined) throw resourceMissing('payment_intent', id, 'intent');
  return row;
}

export async function findPaymentIntent(services: Services, scope: Scope, id: string): Promise<PaymentIntentRow> {
  const row = await services.db
    .selectFrom('payment_intents')
    .selectAll()
    .where('id', '=', id)
    .where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode)
    .executeTakeFirst();
  if (row === undefined) throw resourceMissing('payment_intent', id, 'intent');
  return row;
}

/** Every column of `payment_methods`: the compiler checks that none is missing. */
const paymentMethodColumns = [
  'id', 'merchant_id', 'livemode', 'seq', 'type', 'card', 'test_card', 'vault_card_id', 'billing_details', 'customer_id', 'metadata', 'created_at',
  'first_payment_intent_id', 'detached_at', 'allow_redisplay',
] as const;
type MissingPaymentMethodColumn = Exclude<keyof PaymentMethodsTable, (typeof paymentMethodColumns)[number]>;
const _everyPaymentMethodColumn: [MissingPaymentMethodColumn] extends [never] ? true : MissingPaymentMethodColumn = true;

/** Every column of `payment_limits`, checked the same way. */
const paymentLimitColumns = [
  'id', 'merchant_id', 'livemode', 'seq', 'subject', 'kind', 'currency', 'value', 'created_at', 'updated_at', 'deleted_at',
] as const;
type MissingPaymentLimitColumn = Exclude<keyof PaymentLimitsTable, (typeof paymentLimitColumns)[number]>;
const _everyPaymentLimitColumn: [MissingPaymentLimitColumn] extends [never] ? true : MissingPaymentLimitColumn = true;

/** Columns that JSON cannot carry exactly travel as text: bigints (beyond 2^53) and timestamps. */
const paymentLimitBigints: ReadonlySet<string> = new Set(['seq', 'value']);
const paymentLimitDates: ReadonlySet<string> = new Set(['created_at', 'updated_at', 'deleted_at']);
const paymentLimitFields = paymentLimitColumns
  .map((column) => `'${column}', pl.${column}${paymentLimitBigints.has(column) ? '::text' : ''}`)
  .join(', ');

/** A payment limit row from its JSON form, with the types a row read directly has. */
function paymentLimitFromJson(json: Record<string, unknown>): PaymentLimitRow {
  const row: Record<string, unknown> = {};
  for (const column of paymentLimitColumns) {
    const value = json[column];
    if (value === null || value === undefined) row[column] = null;
    else if (paymentLimitBigints.has(column)) row[column] = BigInt(value as string);
    else if (paymentLimitDates.has(column)) row[column] = new Date(value as string);
    else row[column] = value;
  }
  return row as unknown as PaymentLimitRow;
}

export interface ConfirmationInputs {
  intent: PaymentIntentRow;
  /** The attached PaymentMethod, of the same merchant and mode; undefined if it has none or it is not found. */
  paymentMethod: PaymentMethodRow | undefined;
  /** The merchant's policy: time zone, category, latest risk rules. */
  policy: MerchantPolicyRow;
  /** The merchant's payment limits in force in this mode. */
  limits: PaymentLimitRow[];
  /** The Checkout Session that made this PaymentIntent and takes its payment on its own page, if one did. */
  checkoutSession: string | undefined;
}

/**
 * What a confirmation reads before it decides, in one round trip: the PaymentIntent of this merchant and mode,
 * its attached PaymentMethod, the merchant's policy and its payment limits (gathered into one JSON array, so that
 * a merchant with many limits does not get the PaymentIntent once per limit).
 */
export async function readConfirmationInputs(services: Services, scope: Scope, id: string): Promise<ConfirmationInputs> {
  const rows = await services.db
    .selectFrom('payment_intents')
    .innerJoin('merchants', 'merchants.id', 'payment_intents.merchant_id')
    .leftJoin('merchant_risk_settings', (join) => join
      .onRef('merchant_risk_settings.merchant_id', '=', 'merchants.id')
      .on('merchant_risk_settings.livemode', '=', scope.livemode))
    .leftJoin('payment_methods', (join) => join
      .onRef('payment_methods.id', '=', 'payment_intents.payment_method_id')
      .on('payment_methods.merchant_id', '=', scope.merchantId)
      .on('payment_methods.livemode', '=', scope.livemode))
    .leftJoinLateral((eb) => eb.selectFrom('risk_rule_sets')
      .select(['risk_rule_sets.id', 'risk_rule_sets.rules'])
      .whereRef('risk_rule_sets.merchant_id', '=', 'merchants.id')
      .where('risk_rule_sets.livemode', '=', scope.livemode)
      .orderBy('risk_rule_sets.version', 'desc')
      .limit(1)
      .as('rule_set'), (join) => join.onTrue())
    .selectAll('payment_intents')
    .select(paymentMethodColumns.map((column) => sql.ref(`payment_methods.${column}`).as(`pm__${column}`)))
    .select(sql<unknown>`(
      SELECT coalesce(json_agg(json_build_object(${sql.raw(paymentLimitFields)}) ORDER BY pl.seq), '[]')
      FROM payment_limits pl WHERE pl.merchant_id = merchants.id AND pl.livemode = ${scope.livemode} AND pl.deleted_at IS NULL
    )`.as('limits_json'))
    .select(sql<string | null>`(
      SELECT cs.id FROM checkout_sessions cs WHERE cs.payment_intent_id = payment_intents.id AND cs.kind = 'checkout'
    )`.as('checkout_session'))
    .select([sql<string>`coalesce(merchant_risk_settings.time_zone, 'UTC')`.as('m__time_zone'), 'merchant_risk_settings.category as m__category',
      'rule_set.id as m__rule_set_id', 'rule_set.rules as m__rules'])
    .where('payment_intents.id', '=', id)
    .where('payment_intents.merchant_id', '=', scope.merchantId)
    .where('payment_intents.livemode', '=', scope.livemode)
    .execute();
  const [first] = rows as unknown as Array<Record<string, unknown>>;
  if (first === undefined) throw resourceMissing('payment_intent', id, 'intent');
  const intent: Record<string, unknown> = {};
  const method: Record<string, unknown> = {};
  const policy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(first)) {
    if (key.startsWith('pm__')) method[key.slice(4)] = value;
    else if (key.startsWith('m__')) policy[key.slice(3)] = value;
    else if (key !== 'limits_json' && key !== 'checkout_session') intent[key] = value;
  }
  if (typeof policy.rules === 'string') policy.rules = JSON.parse(policy.rules);
  const limitsJson = typeof first.limits_json === 'string' ? JSON.parse(first.limits_json) as unknown : first.limits_json;
  const limits = (limitsJson as Array<Record<string, unknown>>).map(paymentLimitFromJson);
  return {
    intent: intent as unknown as PaymentIntentRow,
    paymentMethod: method.id === null || method.id === undefined ? undefined : method as unknown as PaymentMethodRow,
    policy: policy as unknown as MerchantPolicyRow,
    limits,
    checkoutSession: typeof first.checkout_session === 'string' ? first.checkout_session : undefined,
  };
}

/** The Checkout Session (payment mode) that made a PaymentIntent, if one did; a session made for an existing PaymentIntent does not own it. */
export async function owningCheckoutSession(reader: Tx | Services['db'], scope: Scope, intentId: string): Promise<string | undefined> {
  const row = await reader.selectFrom('checkout_sessions').select('id').where('payment_intent_id', '=', intentId).where('kind', '=', 'checkout')
    .where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode).executeTakeFirst();
  return row?.id;
}

/**
 * A Checkout Session's PaymentIntent is paid on the session's page and ended by expiring the session, as at Stripe:
 * the API cannot confirm it, cancel it before it is authorized, or change what the shopper was shown.
 */
export function checkoutOwnsIntent(intentId: string, sessionId: string | undefined, what: string, param?: string): CofferError {
  return new CofferError(
    'payment_intent_unexpected_state',
    // A publishable key is not told the session's id: it opens the hosted page.
    `PaymentIntent ${intentId} belongs to ${sessionId === undefined ? 'a Checkout Session' : `Checkout Session ${sessionId}`}, so you cannot ${what}. The shopper pays it on the ` +
      "session's page; to stop the payment, expire the Checkout Session (POST /v1/checkout/sessions/:id/expire).",
    param === undefined ? {} : { param },
  );
}

const verbs: Record<PaymentIntentEvent, string> = {
  attach_payment_method: 'have its payment_method updated',
  confirm: 'be confirmed',
  authorized: 'be authorized',
  authorized_and_captured: 'be authorized',
  attempt_failed: 'fail',
  action_required: 'require action',
  action_completed: 'complete its action',
  increment_authorization: 'have its authorization incremented',
  capture: 'be captured',
  cancel: 'be canceled',
  authorization_expired: 'expire',
};

/** The status `event` leads to, or the `payment_intent_unexpected_state` error Stripe gives for it. */
export function nextStatus(row: PaymentIntentRow, event: PaymentIntentEvent): PaymentIntentStatus {
  const result = transition(row.status as PaymentIntentStatus, event);
  if (result.ok) return result.status;
  if (event === 'confirm' && row.status === 'succeeded') {
    throw new CofferError(
      'payment_intent_unexpected_state',
      'You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.',
    );
  }
  // A confirmation that brings a payment method attaches it first, so it also starts from the statuses that allow that.
  const allowed = (event === 'confirm' ? [...new Set([...statusesAllowing('attach_payment_method'), ...statusesAllowing('confirm')])] : statusesAllowing(event)).join(', ');
  throw new CofferError(
    'payment_intent_unexpected_state',
    `This PaymentIntent could not ${verbs[event]} because it has a status of ${row.status}. ` +
      `Only a PaymentIntent with one of the following statuses may ${verbs[event]}: ${allowed}.`,
  );
}

const operationInFlightWording: Record<NonNullable<PaymentIntentRow['operation_in_flight']>, string> = {
  capture: 'captured',
  cancel: 'canceled',
  increment: 'incremented',
};

/** A change that holds the PaymentIntent while a provider call is outstanding is refused until it ends. */
export function assertNoOperationInFlight(row: PaymentIntentRow): void {
  if (row.operation_in_flight !== null) {
    throw new CofferError(
      'lock_timeout',
      `This PaymentIntent is being ${operationInFlightWording[row.operation_in_flight]} by another request. Try again in a moment.`,
    );
  }
}

export type OperationStart =
  | { kind: 'finished'; outcome: Outcome }
  | { kind: 'start'; intent: PaymentIntentRow; charge: ChargeRow; resuming: boolean };

/**
 * The start every operation sent to the acquirer on a held payment shares (a capture, an increment), with both
 * rows locked: the retry of the request that started it gets its result once recorded (with `recordedError`, the
 * error of an outcome the PaymentIntent does not show), or resumes it (`resuming`:
 * send the same again) while it is still in flight; any other request must find no operation in flight and a
 * status that allows `event`.
 */
export async function startHeldOperation(
  tx: Tx, ctx: RequestContext, scope: Scope, id: string, respond: Respond, operation: 'capture' | 'increment', event: PaymentIntentEvent,
  recordedError?: (tx: Tx, intent: PaymentIntentRow) => Promise<CofferError | undefined>,
): Promise<OperationStart> {
  const intent = await lockPaymentIntent(tx, scope, id);
  const claim = ctx.idempotency;
  const ownOperation = claim !== undefined && intent.operation_idempotency_key_id === claim.rowId;
  if (ownOperation && intent.operation_in_flight === null) {
    const error = await recordedError?.(tx, intent);
    return { kind: 'finished', outcome: await respond(tx, { paymentIntent: intent, ...(error === undefined ? {} : { error }) }) };
  }
  const resuming = ownOperation && intent.operation_in_flight === operation;
  if (!resuming) {
    assertNoOperationInFlight(intent);
    nextStatus(intent, event);
  }
  assert(intent.latest_charge_id !== null, 'a held PaymentIntent has a charge');
  const charge = await lockCharge(tx, intent.latest_charge_id);
  if (resuming) assert(intent.operation_amount !== null, `a ${operation} in flight has an amount`);
  return { kind: 'start', intent, charge, resuming };
}

export async function updatePaymentIntentRow(
  tx: Tx,
  id: string,
  changes: Updateable<PaymentIntentsTable>,
  now: Date,
): Promise<PaymentIntentRow> {
  return tx
    .updateTable('payment_intents')
    .set({ ...changes, updated_at: now })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function lockCharge(tx: Tx, id: string): Promise<ChargeRow> {
  const row = await tx.selectFrom('charges').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
  assert(row !== undefined, `charge ${id} exists`);
  return row;
}

export interface PaymentEvent {
  type: string;
  paymentIntent?: { before?: PaymentIntentRow | undefined; after: PaymentIntentRow };
  /**
   * `balanceTransactionPending`: which side of the pair shows no balance transaction yet (an asynchronous capture's
   * `charge.succeeded` shows none, and its `charge.updated` announces it).
   */
  charge?: { before?: ChargeRow | undefined; after: ChargeRow; balanceTransactionPending?: 'before' | 'after' };
  refund?: { before?: RefundRow | undefined; after: RefundRow };
  /** With the dispute's balance transactions before and after the change (the same when it moved no money). */
  dispute?: { before?: DisputeRow | undefined; after: DisputeRow; transactions: { before: BalanceTransactionRow[]; after: BalanceTransactionRow[] } };
  /** With the payment method `last_setup_error` names, shown whole in the event as in the API. */
  setupIntent?: { before?: SetupIntentRow | undefined; after: SetupIntentRow; errorPaymentMethod?: PaymentMethodRow | undefined };
  review?: { before?: ReviewRow | undefined; after: ReviewRow };
  checkoutSession?: { before?: CheckoutSessionRow | undefined; after: CheckoutSessionRow };
  /** For `customer.deleted`, `after` is the customer as it was: the event carries the whole object, as Stripe's does. */
  customer?: { before?: CustomerRow | undefined; after: CustomerRow };
  paymentMethod?: { before?: PaymentMethodRow | undefined; after: PaymentMethodRow };
  /** For `product.deleted`, `after` is the product as it was, as for a customer. */
  product?: { before?: ProductRow | undefined; after: ProductRow };
  price?: { before?: PriceRow | undefined; after: PriceRow };
  paymentLink?: { before?: PaymentLinkRow | undefined; after: PaymentLinkRow };
  /** For `coupon.deleted`, `after` is the coupon as it was. `nowMs`: when the change was made (a coupon's `valid` depends on it). */
  coupon?: { before?: CouponRow | undefined; after: CouponRow; nowMs: number };
  promotionCode?: { before?: PromotionCodeRow | undefined; after: PromotionCodeRow; coupon: CouponRow; nowMs: number };
}

/** The event's object rendered in `shape`, and its previous attributes when the event has a before. */
function eventObject(event: PaymentEvent, shape: ApiShape): { object: Record<string, unknown> & { id: unknown }; previous?: Record<string, unknown> } {
  const render = <T>(pair: { before?: T | undefined; after: T }, to: (row: T, s: ApiShape) => Record<string, unknown>) => {
    const object = to(pair.after, shape) as Record<string, unknown> & { id: unknown };
    return pair.before === undefined ? { object } : { object, previous: previousAttributes(to(pair.before, shape), object) };
  };
  if (event.paymentIntent !== undefined) return render(event.paymentIntent, (row, s) => paymentIntentObject(row, s));
  if (event.charge !== undefined) {
    const { before, after, balanceTransactionPending: pending } = event.charge;
    const shown = (row: ChargeRow, hidden: boolean) => {
      const object = chargeObject(row, shape) as Record<string, unknown> & { id: unknown };
      if (hidden) object.balance_transaction = null;
      return object;
    };
    const object = shown(after, pending === 'after');
    return before === undefined ? { object } : { object, previous: previousAttributes(shown(before, pending === 'before'), object) };
  }
  if (event.refund !== undefined) return render(event.refund, refundObject);
  if (event.setupIntent !== undefined) {
    const method = event.setupIntent.errorPaymentMethod;
    return render(event.setupIntent, (row, s) => setupIntentObject(row, s, method));
  }
  if (event.review !== undefined) return render(event.review, (row) => reviewObject(row));
  if (event.checkoutSession !== undefined) return render(event.checkoutSession, (row, s) => checkoutSessionObject(row, null, s));
  if (event.customer !== undefined) return render(event.customer, (row) => customerObject(row));
  if (event.paymentMethod !== undefined) return render(event.paymentMethod, paymentMethodObject);
  if (event.product !== undefined) return render(event.product, (row) => productObject(row));
  if (event.price !== undefined) return render(event.price, (row) => priceObject(row));
  if (event.paymentLink !== undefined) return render(event.paymentLink, (row) => paymentLinkObject(row));
  if (event.coupon !== undefined) {
    const at = event.coupon.nowMs;
    return render(event.coupon, (row) => couponObject(row, at));
  }
  if (event.promotionCode !== undefined) {
    const { coupon, nowMs } = event.promotionCode;
    return render(event.promotionCode, (row, s) => promotionCodeObject(row, coupon, nowMs, s === 'legacy'));
  }
  assert(event.dispute !== undefined, 'an event describes a payment intent, a charge, a refund or a dispute');
  const { after, before, transactions } = event.dispute;
  const at = after.updated_at.getTime();
  const rendered = (rows: BalanceTransactionRow[]) => rows.map((row) => balanceTransactionObject(row, shape));
  const object = disputeObject(after, at, rendered(transactions.after)) as Record<string, unknown> & { id: unknown };
  return before === undefined ? { object } : { object, previous: previousAttributes(disputeObject(before, at, rendered(transactions.before)), object) };
}

export interface ChangeRecord {
  action: string;
  objectType: string;
  objectId: string;
  details?: Record<string, unknown>;
}

/** The rows describing a change: its events (`eventRowsOf`) and its audit record. */
export function changeRows(
  trail: Trail,
  scope: Scope,
  change: ChangeRecord,
  events: PaymentEvent[],
  now: Date,
): { eventRows: Array<Insertable<EventsTable>>; audit: Insertable<AuditLogTable> } {
  const eventRows = eventRowsOf(trail, scope, events, now);
  const audit = auditRow({
    merchantId: scope.merchantId,
    livemode: scope.livemode,
    actorType: trail.actorType,
    actorId: trail.actorId,
    action: change.action,
    objectType: change.objectType,
    objectId: change.objectId,
    outcome: 'success',
    requestId: trail.requestId,
    origin: trail.origin,
    ...(change.details === undefined ? {} : { details: change.details }),
    occurredAt: now,
  });
  return { eventRows, audit };
}

/** Records events and one audit record in the caller's transaction, in one statement. */
export async function recordChange(
  tx: Tx,
  trail: Trail,
  scope: Scope,
  change: ChangeRecord,
  events: PaymentEvent[],
  now: Date,
): Promise<void> {
  const { eventRows, audit } = changeRows(trail, scope, change, events, now);
  if (eventRows.length === 0) await tx.insertInto('audit_log').values(audit).execute();
  else await tx.with('recorded_events', (db) => db.insertInto('events').values(eventRows)).insertInto('audit_log').values(audit).execute();
}

/**
 * Event rows, rendered in the merchant's default API version (and in the other shape, which the database keeps
 * only for merchants with an endpoint that asks for it). Alone, for a change whose audit record is written apart.
 */
export function eventRowsOf(trail: Trail, scope: Scope, events: PaymentEvent[], now: Date): Array<Insertable<EventsTable>> {
  const shape = trail.eventApiVersion.shape;
  const otherShape = shape === 'current' ? 'legacy' : 'current';
  return events.flatMap((event) => {
    const { object, previous } = eventObject(event, shape);
    // An update that changed nothing the object shows is no event (Stripe sends `*.updated` only for a change).
    if (event.type.endsWith('.updated') && previous !== undefined && Object.keys(previous).length === 0) return [];
    // The other shape's rendering is kept even when it is the same object: an endpoint in that shape then gets it
    // under its own version's label. The database keeps it only while such an endpoint exists (migration 0010).
    const other = eventObject(event, otherShape);
    return eventRow({
      merchantId: scope.merchantId,
      livemode: scope.livemode,
      type: event.type,
      object,
      previousAttributes: previous,
      other: { shape: otherShape, object: other.object, previousAttributes: other.previous },
      apiVersion: trail.eventApiVersion.name,
      requestId: trail.requestId,
      idempotencyKey: trail.idempotencyKey,
      createdAt: now,
    });
  });
}

/** Events of a change whose audit record its caller writes with `recordChange` (one change, one audit record). */
export async function recordEvents(tx: Tx, trail: Trail, scope: Scope, events: PaymentEvent[], now: Date): Promise<void> {
  const rows = eventRowsOf(trail, scope, events, now);
  if (rows.length === 0) return;
  await tx.insertInto('events').values(rows).execute();
}
