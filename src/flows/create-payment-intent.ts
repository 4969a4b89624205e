import { CofferError } from '../domain/errors.ts';
import { parseAmount, parseCurrency } from '../domain/money.ts';
import { transition } from '../domain/payment-intent-machine.ts';
import { limits } from '../limits.ts';
import { assert } from '../platform/assert.ts';
import { newId, randomBase62 } from '../platform/random.ts';
import { confirmPaymentIntent, type ConfirmParams } from './confirm-payment-intent.ts';
import type { IdempotencyClaim, Outcome, RequestContext, Services, Tx } from './context.ts';
import { inTransaction } from './transaction.ts';
import {
  checkMetadataSize,
  keptOptionChanges,
  checkPaymentMethodTypes,
  mergeMetadata,
  type KeptOptions,
  type ShippingParams,
} from './payment-intent-params.ts';
import { changeRows, findPaymentIntent } from './payment-intent-records.ts';
import { checkMethodBelongs, checkSingleUse, checkTypeAllowed, liveCustomer, preparePaymentMethod } from './payment-methods.ts';
import { givenCard, givenCardAudit } from './saved-payment-methods.ts';
import { storeCardSql } from '../vault/card-vault.ts';
import { sql } from 'kysely';
import type { PaymentIntentRow } from '../store/database.ts';
import { paymentIntentInsert, paymentMethodInsert } from '../store/row-json.ts';
import { keyHeldBy, keyInUse } from '../store/idempotency-keys.ts';
import type { Respond } from './respond.ts';
import { requestTrail } from './trail.ts';
import { automaticPaymentMethodsByDefault, captureMethodByDefault } from '../objects/api-version.ts';

export interface CreateParams {
  amount: number;
  currency: string;
  automatic_payment_methods?: { enabled: boolean; allow_redirects?: 'always' | 'never' };
  capture_method?: 'automatic' | 'automatic_async' | 'manual';
  confirm?: boolean;
  confirmation_method?: 'automatic' | 'manual';
  customer?: string;
  /** The shopper is not present (a saved card charged later); accepted, and recorded in the audit trail. */
  off_session?: boolean;
  error_on_requires_action?: boolean;
  description?: string;
  metadata?: Record<string, string> | '';
  payment_method?: string;
  payment_method_types?: string[];
  allowed_payment_method_types?: string[];
  payment_method_data?: ConfirmParams['payment_method_data'];
  payment_method_options?: ConfirmParams['payment_method_options'];
  radar_options?: ConfirmParams['radar_options'];
  receipt_email?: string;
  return_url?: string;
  setup_future_usage?: 'on_session' | 'off_session';
  shipping?: ShippingParams;
  statement_descriptor?: string;
  statement_descriptor_suffix?: string;
  mandate_data?: ConfirmParams['mandate_data'];
  use_stripe_sdk?: boolean;
}

function paymentMethodTypes(params: CreateParams, automaticByDefault: boolean): { types: string[]; automatic: Record<string, unknown> | null } {
  if (params.payment_method_types !== undefined && params.allowed_payment_method_types !== undefined) {
    throw new CofferError(
      'parameters_exclusive',
      'You may pass payment_method_types or allowed_payment_method_types, not both.',
      { param: 'allowed_payment_method_types' },
    );
  }
  const listed = params.payment_method_types ?? params.allowed_payment_method_types;
  if (listed !== undefined) {
    if (params.automatic_payment_methods?.enabled === true) {
      throw new CofferError(
        'parameters_exclusive',
        'You may only specify one of these parameters: automatic_payment_methods, payment_method_types.',
        { param: 'automatic_payment_methods' },
      );
    }
    const param = params.payment_method_types !== undefined ? 'payment_method_types' : 'allowed_payment_method_types';
    return { types: checkPaymentMethodTypes(listed, param), automatic: null };
  }
  return { types: ['card'], automatic: automaticPaymentMethodsOf(params.automatic_payment_methods, automaticByDefault) };
}

/**
 * `automatic_payment_methods` as asked for, or as the API version gives by default: before 2023-08-16, an intent
 * made without them is a card payment without automatic payment methods. PaymentIntents and SetupIntents alike.
 */
export function automaticPaymentMethodsOf(
  asked: { enabled: boolean; allow_redirects?: 'always' | 'never' } | undefined,
  byDefault: boolean,
): { allow_redirects: 'always' | 'never'; enabled: true } | null {
  if (asked === undefined ? !byDefault : !asked.enabled) return null;
  return { allow_redirects: asked?.allow_redirects ?? 'always', enabled: true };
}

export interface NewPaymentIntent {
  amount: bigint;
  currency: string;
  status: PaymentIntentRow['status'];
  captureMethod: PaymentIntentRow['capture_method'];
  confirmationMethod: PaymentIntentRow['confirmation_method'];
  paymentMethodId: string | null;
  paymentMethodTypes: string[];
  automaticPaymentMethods: Record<string, unknown> | null;
  description: string | null;
  metadata: Record<string, string>;
  receiptEmail: string | null;
  customerId: string | null;
  statementDescriptor: string | null;
  statementDescriptorSuffix: string | null;
  setupFutureUsage: PaymentIntentRow['setup_future_usage'];
  /**
   * `payment_method_options` as kept: the card's overrides of the two fields above for card payments, and what a
   * confirmation applies (3-D Secure, WeChat Pay's client); those not given are null.
   */
  options: Partial<KeptOptions>;
  shipping: Record<string, unknown> | null;
  returnUrl: string | null;
}

/** A new PaymentIntent's row, before anything happened to it (a checkout session makes one too). */
export function newPaymentIntentRow(id: string, scope: { merchantId: string; livemode: boolean }, fields: NewPaymentIntent, now: Date): PaymentIntentRow {
  return {
    id,
    merchant_id: scope.merchantId,
    livemode: scope.livemode,
    seq: 0n,
    version: 0n,
    created_at: now,
    updated_at: now,
    amount: fields.amount,
    currency: fields.currency,
    status: fields.status,
    capture_method: fields.captureMethod,
    confirmation_method: fields.confirmationMethod,
    payment_method_id: fields.paymentMethodId,
    payment_method_types: fields.paymentMethodTypes,
    automatic_payment_methods: fields.automaticPaymentMethods,
    client_secret: `${id}_secret_${randomBase62(25)}`,
    description: fields.description,
    metadata: fields.metadata,
    receipt_email: fields.receiptEmail,
    customer_id: fields.customerId,
    statement_descriptor: fields.statementDescriptor,
    statement_descriptor_suffix: fields.statementDescriptorSuffix,
    setup_future_usage: fields.setupFutureUsage,
    card_capture_method: fields.options.card_capture_method ?? null,
    card_setup_future_usage: fields.options.card_setup_future_usage ?? null,
    card_request_three_d_secure: fields.options.card_request_three_d_secure ?? null,
    card_request_incremental_authorization: fields.options.card_request_incremental_authorization ?? null,
    wechat_pay_client: fields.options.wechat_pay_client ?? null,
    wechat_pay_openid: fields.options.wechat_pay_openid ?? null,
    shipping: fields.shipping,
    return_url: fields.returnUrl,
    amount_capturable: 0n,
    amount_received: 0n,
    canceled_at: null,
    cancellation_reason: null,
    last_payment_error: null,
    latest_charge_id: null,
    review_id: null,
    next_action: null,
    operation_in_flight: null,
    operation_started_at: null,
    operation_amount: null,
    operation_reason: null,
    operation_idempotency_key_id: null,
  };
}

/**
 * Creates a PaymentIntent, and confirms it at once when `confirm` is set. With confirmation the created id is
 * kept with the idempotency key in the same transaction, so a retry after a crash confirms that PaymentIntent
 * instead of creating another.
 */
export async function createPaymentIntent(
  services: Services,
  ctx: RequestContext,
  params: CreateParams,
  respond: Respond,
): Promise<Outcome> {
  const scope = { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
  // As at Stripe: whether the shopper is present is said of a confirmation, so only with one.
  if (params.off_session !== undefined && params.confirm !== true) {
    throw new CofferError('parameter_invalid', 'off_session can only be given with confirm=true: it says whether the customer is present during the payment attempt that confirm makes.', { param: 'off_session' });
  }
  if (params.error_on_requires_action !== undefined && params.confirm !== true) {
    throw new CofferError('parameter_invalid', 'error_on_requires_action can only be given with confirm=true: it says what the confirmation does when the shopper would have to act.', { param: 'error_on_requires_action' });
  }
  if (params.mandate_data !== undefined && params.confirm !== true) {
    throw new CofferError('parameter_invalid', 'mandate_data can only be given with confirm=true: it is the agreement the confirmation is made under; give it to confirm otherwise.', { param: 'mandate_data' });
  }
  if (params.return_url !== undefined && params.confirm !== true) {
    throw new CofferError('parameter_invalid', 'return_url can only be given with confirm=true: it is where the confirmation sends the shopper back; give it to confirm otherwise.', { param: 'return_url' });
  }
  const walletData = params.payment_method_data !== undefined && params.payment_method_data.type !== 'card' ? params.payment_method_data.type : undefined;
  if (params.error_on_requires_action === true && walletData !== undefined) {
    throw new CofferError('parameter_invalid', `error_on_requires_action cannot be used with ${walletData}: paying with it always needs the shopper to act.`, { param: 'error_on_requires_action' });
  }
  const confirmParams: ConfirmParams = {};
  if (params.return_url !== undefined) confirmParams.return_url = params.return_url;
  // A card given as payment_method_data is written with the PaymentIntent, bound to it (below); a wallet's is
  // created by the confirmation.
  const cardData = params.payment_method_data?.type === 'card' ? params.payment_method_data : undefined;
  if (params.payment_method_data !== undefined && cardData === undefined) confirmParams.payment_method_data = params.payment_method_data;
  if (params.payment_method_options !== undefined) confirmParams.payment_method_options = params.payment_method_options;
  if (params.radar_options !== undefined) confirmParams.radar_options = params.radar_options;
  if (params.mandate_data !== undefined) confirmParams.mandate_data = params.mandate_data;
  if (params.off_session !== undefined) confirmParams.off_session = params.off_session;
  if (params.error_on_requires_action !== undefined) confirmParams.error_on_requires_action = params.error_on_requires_action;
  const recovered = ctx.idempotency?.recoveryPoint;
  if (recovered !== undefined && recovered !== null) {
    const existing = await findPaymentIntent(services, scope, recovered);
    return confirmPaymentIntent(services, ctx, existing.id, confirmParams, respond);
  }
  const money = parseAmount(params.amount, parseCurrency(params.currency));
  const methods = paymentMethodTypes(params, automaticPaymentMethodsByDefault(ctx.actor.apiVersion));
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  if (params.payment_method_data !== undefined && params.payment_method !== undefined) {
    throw new CofferError('parameters_exclusive', 'You may pass payment_method or payment_method_data, not both.', { param: 'payment_method_data' });
  }
  // A card given without confirm=true is stored with the PaymentIntent and attached to it, as at Stripe; a wallet's
  // PaymentMethod is made by the confirmation that opens the trade, so it comes with confirm=true only.
  if (params.payment_method_data !== undefined && cardData === undefined && params.confirm !== true) {
    throw new CofferError('parameter_invalid', `payment_method_data[type]=${params.payment_method_data.type} can be passed only with confirm=true: the confirmation opens the trade that makes its PaymentMethod.`, { param: 'payment_method_data' });
  }
  if (params.payment_method_data !== undefined && params.payment_method_data.type !== 'card' && params.payment_method_data.card !== undefined) {
    throw new CofferError('parameter_invalid', `payment_method_data[card] can be given only with payment_method_data[type]=card, not ${params.payment_method_data.type}.`, { param: 'payment_method_data[card]' });
  }
  if (params.confirm === true && params.payment_method === undefined && params.payment_method_data === undefined) {
    throw new CofferError('parameter_missing', 'Missing required param: payment_method.', { param: 'payment_method' });
  }
  const now = new Date(services.clock.nowMs());
  const customer = params.customer === undefined ? undefined : await liveCustomer(services.db, ctx, params.customer);
  if (cardData !== undefined) checkTypeAllowed(methods.types, 'card', 'payment_method_data[type]');
  // A card given with the request is sealed now and stored with the PaymentIntent, bound to it, in one statement.
  const given = cardData === undefined ? undefined : await givenCard(services, ctx, cardData, now);
  const method =
    params.payment_method !== undefined
      ? await preparePaymentMethod(services.db, services, scope, params.payment_method, now)
      : given !== undefined
        ? { row: given.row, isNew: true }
        : undefined;
  const id = newId('pi');
  if (method !== undefined) {
    if (method.row.type === 'card') checkTypeAllowed(methods.types, 'card', 'payment_method');
    checkMethodBelongs(method.row, customer?.id ?? null);
    checkSingleUse(method.row, id);
  }
  const attached = transition('requires_payment_method', 'attach_payment_method');
  assert(attached.ok, 'a new PaymentIntent accepts a payment method');
  const row = newPaymentIntentRow(id, scope, {
    amount: money.amountMinor, currency: money.currency.code, status: method === undefined ? 'requires_payment_method' : attached.status,
    captureMethod: params.capture_method ?? captureMethodByDefault(ctx.actor.apiVersion), confirmationMethod: params.confirmation_method ?? 'automatic',
    paymentMethodId: method?.row.id ?? null, paymentMethodTypes: methods.types, automaticPaymentMethods: methods.automatic,
    description: params.description || null, metadata, receiptEmail: params.receipt_email || null, customerId: customer?.id ?? null,
    statementDescriptor: params.statement_descriptor || null, statementDescriptorSuffix: params.statement_descriptor_suffix || null,
    setupFutureUsage: params.setup_future_usage ?? null, options: keptOptionChanges(params.payment_method_options),
    shipping: (params.shipping ?? null) as Record<string, unknown> | null,
    returnUrl: params.return_url ?? null,
  }, now);
  const { eventRows, audit } = changeRows(
    requestTrail(ctx),
    scope,
    { action: 'payment_intent.create', objectType: 'payment_intent', objectId: id,
      details: { off_session: params.off_session === true, ...(given === undefined ? {} : { payment_method_created: givenCardAudit(given) }) } },
    [{ type: 'payment_intent.created', paymentIntent: { after: row } }],
    now,
  );
  // Without confirmation the response is final and is stored now; with it, the key remembers the new
  // PaymentIntent, so that a retry after a crash confirms this one instead of creating another.
  const claim = ctx.idempotency;
  if (params.confirm !== true && respond.rendersAfterChange === true) {
    // Expansions the walker reads (the customer): the PaymentIntent is written, then the response rendered and kept
    // with the key, in one transaction.
    return inTransaction(services.db, async (tx) => {
      await claim?.hold(tx);
      await creation(tx, undefined);
      return respond(tx, { paymentIntent: row });
    });
  }
  const outcome = params.confirm === true ? undefined : respond.render({ paymentIntent: row }, { paymentMethod: method?.row });
  await creation(services.db, claim === undefined ? undefined : { claim, outcome });
  if (claim !== undefined) {
    if (outcome === undefined) claim.recoveryPoint = id;
    else claim.completed = true;
  }
  const created = outcome === undefined ? { confirm: true as const, id } : { confirm: false as const, outcome };
  if (!created.confirm) return created.outcome;
  return confirmPaymentIntent(services, ctx, created.id, confirmParams, respond);

  /** The one statement that writes the PaymentIntent, its events and audit, a card made for it, and the key's state. */
  async function creation(executor: Tx | Services['db'], key: { claim: IdempotencyClaim; outcome: Outcome | undefined } | undefined): Promise<void> {
    let query = executor
      .with('intent_written', (db) => db.insertInto('payment_intents').values(paymentIntentInsert(row)).returning('id'))
      .with('events_written', (db) => db.insertInto('events').values(eventRows).returning('id'))
      .with('audit_written', (db) => db.insertInto('audit_log').values(audit).returning('seq'));
    if (method?.isNew === true) {
      // A card made for this PaymentIntent (a test card's id) is bound to it from the start (see checkSingleUse).
      const created = { ...method.row, first_payment_intent_id: id };
      query = query.with('method_written', (db) => db.insertInto('payment_methods').values(paymentMethodInsert(created)).returning('id')) as unknown as typeof query;
    }
    const storesCard = given === undefined ? [] : [storeCardSql(given.vaultCardId, given.ciphertext).as('card_stored')];
    if (key !== undefined) {
      const changes = key.outcome === undefined
        ? { recovery_point: id }
        : { response_status: key.outcome.statusCode, response_body: key.outcome.body, finished_at: sql<Date>`now()`, locked_at: null };
      query = query.with('key_written', (db) => db.updateTable('idempotency_keys').set(changes).where(keyHeldBy(key.claim)).returning('id')) as unknown as typeof query;
    }
    // A request whose key a retry took over (it stalled past the lock's limit) writes nothing: the retry answers.
    const keyHeld = key === undefined ? [] : [sql<boolean>`coffer_expect_rows((SELECT count(*) FROM key_written), 1)`.as('key_held')];
    try {
      await query.selectNoFrom([sql<number>`1`.as('written'), ...storesCard, ...keyHeld]).execute();
    } catch (error) {
      if (key !== undefined && (error as { code?: unknown } | null)?.code === '40001') throw keyInUse(key.claim.key);
      throw error;
    }
  }
}
