import type { Connector, Decline } from '../connectors/connector.ts';
import { decideAttempt, heldForReview, riskBlockDecline } from './risk-decision.ts';
import type { CurrencyInfo } from '../domain/currency.ts';
import { CofferError } from '../domain/errors.ts';
import { findCurrency } from '../domain/currency.ts';
import type { ChargeCardDetails } from '../objects/charge.ts';
import { assert } from '../platform/assert.ts';
import { newId } from '../platform/random.ts';
import { cardFactsOf, type ChargeRisk, type ChargeRow, type CheckoutCollected, type CustomerRow, type PaymentIntentRow, type PaymentMethodRow } from '../store/database.ts';
import { sql } from 'kysely';
import { chargeInsert, customerInsert, paymentIntentChanges, paymentMethodInsert } from '../store/row-json.ts';
import type { Outcome, RequestContext, Services } from './context.ts';
import { cardStatementDescriptorRefused, emptyToNull, keptOptionChanges, type PaymentMethodOptionsParams, type ShippingParams } from './payment-intent-params.ts';
import { captureMethodFor, checkShopperThreeDSecure } from '../domain/card-payment-options.ts';
import { assertNoOperationInFlight, changeRows, checkoutOwnsIntent, readConfirmationInputs, nextStatus, type Scope } from './payment-intent-records.ts';
import { checkMethodBelongs, checkSingleUse, checkTypeAllowed, preparePaymentMethod } from './payment-methods.ts';
import { givenCard, givenCardAudit, type CardParams, type GivenCard } from './saved-payment-methods.ts';
import { storeCardSql } from '../vault/card-vault.ts';
import { abandonedChallenge, attemptError, outcomeUnknownError, recordAttemptOutcome, velocityKeys, type AttemptResolution } from './record-attempt-outcome.ts';
import type { Respond } from './respond.ts';
import { requestTrail } from './trail.ts';
import { limits } from '../limits.ts';
import { checkLimits, describeLimit, type CounterTake } from '../risk/limits.ts';
import type { PaymentLimitRow, ShopperStepUpMethod } from '../store/database.ts';
import { checkWalletConfirmable, isWalletType, sendWalletAttempt, walletChargeDetails, walletPaymentMethod, type WalletType } from './wallet-payments.ts';

export interface ConfirmParams {
  payment_method?: string;
  /**
   * A new payment method, as Stripe takes it: of a type that needs no details up front (Alipay, WeChat Pay), or a
   * card with its details, which the vault seals and the attempt's statement stores (decision 0026).
   */
  payment_method_data?: { type: WalletType | 'card'; card?: Omit<CardParams, 'token'>; billing_details?: Record<string, unknown> };
  payment_method_options?: PaymentMethodOptionsParams;
  /** Stripe's Radar session: the shopper's device, for limits and risk (`radar_options[session]`). */
  radar_options?: { session?: string };
  receipt_email?: string;
  return_url?: string;
  setup_future_usage?: 'on_session' | 'off_session' | '';
  shipping?: ShippingParams | '';
  capture_method?: 'automatic' | 'automatic_async' | 'manual';
  off_session?: boolean;
  /** Decline rather than ask the shopper to act (3-D Secure): the attempt fails `authentication_required`. */
  error_on_requires_action?: boolean;
  /** The shopper's agreement to a mandate: kept in the confirmation's audit record. */
  mandate_data?: { customer_acceptance: Record<string, unknown> };
  /** Stripe.js's handling of the next action: accepted, and changes nothing here (Coffer has no Stripe.js). */
  use_stripe_sdk?: boolean;
  /** Set by the hosted checkout only (never from the API): the shopper's own step-up, already verified. */
  shopperStepUp?: ShopperStepUpMethod;
  /**
   * Set by the hosted checkout only: when the risk engine asks for a step-up on a wallet payment and the shopper
   * has not given one, refuse with `shopper_step_up_required` before anything is written, so that the page asks
   * the shopper (a card gets 3-D Secure instead).
   */
  askShopperForStepUp?: boolean;
  /**
   * Set by the hosted checkout only: the amount and currency the shopper was shown. A PaymentIntent changed since
   * is refused (`checkout_payment_changed`) in the same read that the version-guarded write relies on.
   */
  expectedAmount?: { amount: bigint; currency: string };
  /**
   * Set by the hosted checkout only, for a session made with `customer_creation=always` (decision 0058): what the
   * shopper gave, from which the attempt's own statement makes them a Customer of the merchant and the session and
   * its PaymentIntent theirs. None is made when the PaymentIntent has a customer already (an earlier try made it).
   * The session is the one that owns the PaymentIntent, as the confirmation reads it.
   */
  newCustomer?: NewCustomerDetails;
  /**
   * Set by the hosted checkout only: what the shopper answered with this try besides the payment (their consents,
   * the merchant's own fields). The attempt's statement keeps it with the session, so that a paid session shows the
   * paying try's answers, and its audit record keeps the consents.
   */
  pageAnswers?: Pick<CheckoutCollected, 'terms_of_service' | 'promotions' | 'custom_fields' | 'save_payment_method'>;
}

/** What a Customer made by a Checkout Session holds: what its shopper gave on the page. */
export type NewCustomerDetails = Pick<CustomerRow, 'email' | 'name' | 'phone' | 'address' | 'shipping' | 'preferred_locales'>;

function newCustomerRow(scope: Scope, details: NewCustomerDetails, now: Date): CustomerRow {
  return {
    ...details, id: newId('cus'), merchant_id: scope.merchantId, livemode: scope.livemode, seq: 0n, created_at: now, description: null, metadata: {},
    balance: 0n, balance_currency: null, default_payment_method_id: null, deleted_at: null, tax_exempt: 'none',
  };
}

interface Attempt {
  intent: PaymentIntentRow;
  charge: ChargeRow;
  paymentMethod: PaymentMethodRow;
  currency: CurrencyInfo;
}

function chargeCardDetails(paymentMethod: PaymentMethodRow): ChargeCardDetails {
  const card = cardFactsOf(paymentMethod);
  return {
    brand: card.brand,
    last4: card.last4,
    exp_month: card.exp_month,
    exp_year: card.exp_year,
    country: card.country,
    funding: card.funding,
    fingerprint: card.fingerprint,
    network: card.brand,
    ...(card.bin === undefined ? {} : { bin: card.bin }),
    authorization_code: null,
    network_transaction_id: null,
    cvc_check: null,
  };
}

/**
 * How a step-up is carried out: 3-D Secure for a card with the shopper present; a wallet authenticates its payer
 * itself (password, fingerprint in the wallet app); off session nobody can be asked, so the payment is authorized
 * and held for review instead.
 */
function stepUpHandling(action: ChargeRisk['action'], paymentMethod: PaymentMethodRow, offSession: boolean): Pick<ChargeRisk, 'step_up'> {
  if (action !== 'request_step_up') return {};
  if (isWalletType(paymentMethod.type)) return { step_up: 'provider_authentication' };
  return { step_up: offSession ? 'held_for_review' : 'three_d_secure' };
}

type Started = { kind: 'send'; attempt: Attempt } | { kind: 'finished'; outcome: Outcome };

/**
 * The merchant's limits this payment falls under: per-payment bounds refuse it now; the counters to take are
 * taken in the statement that starts the attempt (see 0022-payment-limits.sql).
 */
function limitCounters(
  configured: PaymentLimitRow[], timeZone: string, scope: Scope, intent: PaymentIntentRow, paymentMethod: PaymentMethodRow, charge: ChargeRow, now: Date,
): CounterTake[] {
  if (configured.length === 0) return [];
  const check = checkLimits(configured, {
    merchantId: scope.merchantId,
    amountMinor: intent.amount,
    currency: intent.currency,
    customerId: intent.customer_id,
    cardFingerprint: paymentMethod.card?.fingerprint ?? null,
    deviceId: charge.risk_facts?.device ?? null,
    clientAddress: charge.risk_facts?.client_address ?? null,
    timeZone,
    at: now,
  });
  if (!check.ok) throw limitError(check.limit);
  return check.takes;
}

function exceededLimit(error: unknown, takes: readonly CounterTake[]): PaymentLimitRow | undefined {
  const message = (error as { message?: unknown } | null)?.message;
  const id = typeof message === 'string' ? /coffer_limit_exceeded (\S+)/.exec(message)?.[1] : undefined;
  return id === undefined ? undefined : takes.find((take) => take.limit.id === id)?.limit;
}

/** The attempt's statement found the session's discount used up (migration 0069). */
function discountUsedUp(error: unknown): boolean {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message.includes('coffer_discount_refused');
}

function limitError(limit: PaymentLimitRow): CofferError {
  return new CofferError('payment_limit_exceeded', `This payment would exceed ${describeLimit(limit)}. Nothing was charged.`);
}

/**
 * A card authenticated by a SetupIntent for later payments (some issuers then skip 3-D Secure). Such a card is
 * saved to a customer, so a guest's card is answered without a query; the lookup is by index (migration 0026).
 */
async function cardWasSetUp(services: Services, paymentMethod: PaymentMethodRow): Promise<boolean> {
  if (paymentMethod.customer_id === null) return false;
  const found = await services.db.selectFrom('setup_intents').select('id').where('payment_method_id', '=', paymentMethod.id)
    .where('status', '=', 'succeeded').limit(1).executeTakeFirst();
  return found !== undefined;
}

/** A challenge the shopper left to pay another way: nothing was charged, and the attempt keeps its acquirer reference. */
const replacedChallenge: Decline = {
  ...abandonedChallenge,
  message: 'The cardholder left 3-D Secure authentication to pay another way. Nothing was charged.',
  adviceCode: null,
};

/**
 * A new confirmation cannot start while the shopper may still be paying at a provider: a second attempt could then
 * be charged too. An open wallet trade is refused. A 3-D Secure challenge is ended first, as at Stripe, where the
 * shopper who closed the challenge may confirm again with another card: the acquirer closes the attempt's key, so
 * the challenge can no longer authorize, and the attempt is recorded as abandoned. If the shopper finished the
 * challenge just before, the acquirer answers with that outcome instead, which is recorded, and the confirmation
 * then meets a PaymentIntent that has been paid. Returns true when it recorded an outcome (read the PaymentIntent
 * again).
 */
export async function endOpenChallenge(services: Services, ctx: RequestContext, scope: Scope, intent: PaymentIntentRow, mayEnd: boolean): Promise<boolean> {
  if (intent.status !== 'requires_action' || intent.latest_charge_id === null) return false;
  const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', intent.latest_charge_id).executeTakeFirst();
  if (charge?.status !== 'pending') return false;
  if (isWalletType(charge.provider)) {
    throw new CofferError('payment_intent_unexpected_state',
      'This PaymentIntent is waiting for the shopper to finish paying at the provider. Cancel it, or wait until the payment ends.');
  }
  if (!mayEnd) {
    throw new CofferError('payment_intent_unexpected_state',
      'This PaymentIntent is waiting for the cardholder to finish 3-D Secure authentication. Confirm it with another payment method to end the authentication, cancel it, or wait until it ends.');
  }
  const currency = findCurrency(charge.currency);
  assert(currency !== undefined, 'a stored currency is known');
  const found = await services.connectors.card(charge.livemode).abandonAttempt({
    idempotencyKey: charge.provider_idempotency_key, reference: charge.id, amountMinor: charge.amount, currency,
  });
  // The acquirer could not say: nothing is kept under the request's key, and the client retries (503, as a cancel).
  if (found.status === 'unknown') throw outcomeUnknownError();
  const stillOpen = new CofferError('payment_intent_unexpected_state',
    'This PaymentIntent is waiting for the cardholder to finish 3-D Secure authentication, and the acquirer could not end it. Try again, or cancel it.');
  if (found.status === 'requires_action') throw stillOpen;
  let resolution: AttemptResolution;
  if (found.status === 'not_found') {
    if (charge.provider_reference === null) throw stillOpen;
    resolution = { ...replacedChallenge, providerReference: charge.provider_reference };
  } else {
    resolution = found;
  }
  await recordAttemptOutcome(services, { scope, paymentIntentId: intent.id, chargeId: charge.id }, resolution, requestTrail(ctx), undefined);
  return true;
}

/** Rounds of read-and-compare-and-set before a confirmation that keeps colliding gives up with 409. */
const startRoundsMax = 3;

/**
 * The attempt this same idempotent request started before (it crashed, or the acquirer did not answer): still
 * pending, it is sent again with its own acquirer key; already settled (by the recovery job), its outcome is
 * answered as the first run would have.
 */
async function earlierAttempt(
  services: Services,
  ctx: RequestContext,
  intent: PaymentIntentRow,
  respond: Respond,
): Promise<Started | undefined> {
  const claim = ctx.idempotency;
  if (claim === undefined || intent.latest_charge_id === null) return undefined;
  const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', intent.latest_charge_id).executeTakeFirst();
  if (charge === undefined || charge.idempotency_key_id !== claim.rowId) return undefined;
  if (charge.status !== 'pending') {
    const error = charge.status === 'failed' ? attemptError(charge) : undefined;
    return { kind: 'finished', outcome: await respond(services.db, { paymentIntent: intent, ...(error === undefined ? {} : { error }) }) };
  }
  const paymentMethod = await services.db
    .selectFrom('payment_methods')
    .selectAll()
    .where('id', '=', charge.payment_method_id)
    .executeTakeFirstOrThrow();
  const currency = findCurrency(intent.currency);
  assert(currency !== undefined, 'a stored currency is known');
  return { kind: 'send', attempt: { intent, charge, paymentMethod, currency } };
}

function newCharge(ctx: RequestContext, scope: Scope, intent: PaymentIntentRow, paymentMethod: PaymentMethodRow, params: ConfirmParams, now: Date): ChargeRow {
  const id = newId('ch');
  const wallet = isWalletType(paymentMethod.type) ? paymentMethod.type : undefined;
  return {
    id,
    merchant_id: scope.merchantId,
    livemode: scope.livemode,
    seq: 0n,
    created_at: now,
    updated_at: now,
    payment_intent_id: intent.id,
    payment_method_id: paymentMethod.id,
    provider: paymentMethod.type,
    provider_idempotency_key: id,
    provider_reference: null,
    idempotency_key_id: ctx.idempotency?.reference() ?? null,
    amount: intent.amount,
    currency: intent.currency,
    status: 'pending',
    amount_authorized: 0n,
    amount_captured: 0n,
    amount_released: 0n,
    amount_refunded: 0n,
    amount_refunding: 0n,
    captured: false,
    capture_before: null,
    increment_attempts: 0,
    authorization_increments: 0,
    increment_try: null,
    payment_method_details: wallet === undefined ? chargeCardDetails(paymentMethod) as unknown as Record<string, unknown> : walletChargeDetails(wallet),
    outcome: null,
    failure_code: null,
    failure_message: null,
    decline_code: null,
    description: intent.description,
    metadata: {},
    receipt_email: emptyToNull(params.receipt_email, intent.receipt_email),
    statement_descriptor: intent.statement_descriptor,
    statement_descriptor_suffix: intent.statement_descriptor_suffix,
    available_on: null,
    settled: false,
    disputed: false,
    fraud_user_report: null,
    // A wallet attempt whose trade is never confirmed open (a crash, no answer) is found and closed by the sync worker.
    provider_sync_at: wallet === undefined ? null : new Date(now.getTime() + limits.inFlightRecoveryAfterMs),
    provider_sync_count: 0,
    action_expires_at: null,
    risk_facts: {
      client_address: ctx.origin,
      device: params.radar_options?.session ?? null,
      email: emptyToNull(params.receipt_email, intent.receipt_email) ?? (typeof paymentMethod.billing_details.email === 'string' ? paymentMethod.billing_details.email : null),
    },
    risk: null,
    review_id: null,
    customer_id: intent.customer_id,
    billing_details: paymentMethod.billing_details,
    shipping: params.shipping === undefined ? intent.shipping : (params.shipping || null) as Record<string, unknown> | null,
  };
}

/**
 * Phase 1: read, validate, then persist the attempt (a pending charge) and move the PaymentIntent to
 * `processing` in one statement that applies only if the PaymentIntent is still the version read. A collision
 * reads again (bounded); nothing is sent to the acquirer before this is committed.
 */
async function startAttempt(
  services: Services,
  ctx: RequestContext,
  scope: Scope,
  id: string,
  params: ConfirmParams,
  respond: Respond,
  now: Date,
): Promise<Started> {
  let challengeEnded = false;
  // A card given with the request is sealed by the vault once, whatever the rounds below; it is stored only by the
  // statement that records the attempt.
  let given: GivenCard | undefined;
  for (let round = 1; ; round += 1) {
    // The attached payment method, the merchant's risk policy and its limits come with the PaymentIntent: one round
    // trip for what every confirmation needs.
    const { intent, paymentMethod: attached, policy, limits: configuredLimits, checkoutSession } = await readConfirmationInputs(services, scope, id);
    const earlier = await earlierAttempt(services, ctx, intent, respond);
    if (earlier !== undefined) return earlier;
    if (checkoutSession !== undefined && ctx.shopperSession !== checkoutSession) throw checkoutOwnsIntent(intent.id, ctx.actor.keyKind === 'publishable' ? undefined : checkoutSession, 'confirm it through the API');
    assertNoOperationInFlight(intent);
    // The options this confirmation gives are kept with the PaymentIntent by the statement that starts the attempt,
    // and what is then kept is what the attempt applies. A shopper's page may not lower the merchant's 3-D Secure
    // request: checked against the row that statement writes only if unchanged, so a raise made meanwhile holds.
    const kept = keptOptionChanges(params.payment_method_options);
    if (ctx.actor.keyKind === 'publishable') checkShopperThreeDSecure(intent.card_request_three_d_secure, params.payment_method_options?.card?.request_three_d_secure);
    if (params.expectedAmount !== undefined && (intent.amount !== params.expectedAmount.amount || intent.currency !== params.expectedAmount.currency)) {
      throw new CofferError('checkout_payment_changed', 'The PaymentIntent changed after the shopper saw it; nothing was confirmed.');
    }
    let status = intent.status;
    let prepared: { row: PaymentMethodRow; isNew: boolean } | undefined;
    if (params.payment_method_data !== undefined) {
      if (params.payment_method !== undefined) {
        throw new CofferError('parameters_exclusive', 'You may pass payment_method or payment_method_data, not both.', { param: 'payment_method_data' });
      }
      status = nextStatus(intent, 'attach_payment_method');
      const data = params.payment_method_data;
      if (data.type === 'card') {
        // Refusals that need no card come first, so that a bad card is not what a shopper hears about.
        nextStatus({ ...intent, status }, 'confirm');
        checkTypeAllowed(intent.payment_method_types, 'card', 'payment_method_data[type]');
        given ??= await givenCard(services, ctx, data, now);
        prepared = { row: given.row, isNew: true };
      } else {
        if (data.card !== undefined) {
          throw new CofferError('parameter_invalid', `payment_method_data[card] can be given only with payment_method_data[type]=card, not ${data.type}.`, { param: 'payment_method_data[card]' });
        }
        prepared = { row: walletPaymentMethod(scope, data.type, data.billing_details, now), isNew: true };
      }
    } else if (params.payment_method !== undefined) {
      status = nextStatus(intent, 'attach_payment_method');
      prepared = await preparePaymentMethod(services.db, services, scope, params.payment_method, now);
    } else if (intent.payment_method_id === null) {
      // A PaymentIntent past the point of confirming (canceled, say) says so, whatever else it lacks.
      if (intent.status !== 'requires_payment_method') nextStatus(intent, 'confirm');
      throw new CofferError(
        'payment_intent_unexpected_state',
        "You cannot confirm this PaymentIntent because it's missing a payment method. Update the PaymentIntent " +
          'with a payment method and then confirm it again.',
        { param: 'payment_method' },
      );
    }
    status = nextStatus({ ...intent, status }, 'confirm');
    const method = prepared ?? (attached !== undefined && attached.id === intent.payment_method_id
      ? { row: attached, isNew: false }
      : await preparePaymentMethod(services.db, services, scope, intent.payment_method_id ?? '', now));
    const paymentMethod = method.row;
    checkMethodBelongs(paymentMethod, intent.customer_id);
    checkSingleUse(paymentMethod, intent.id);
    // A card given as payment_method_data was checked before it was sealed.
    if (paymentMethod.type === 'card') {
      checkTypeAllowed(intent.payment_method_types, 'card', 'payment_method');
      if (intent.statement_descriptor !== null) throw cardStatementDescriptorRefused('statement_descriptor');
      // Refused before the attempt is written when this mode has no card acquirer (live, until one is configured).
      services.connectors.card(scope.livemode);
    }
    if (isWalletType(paymentMethod.type)) {
      if (params.error_on_requires_action === true) {
        throw new CofferError('parameter_invalid', `error_on_requires_action cannot be used with ${paymentMethod.type}: paying with it always needs the shopper to act.`, { param: 'error_on_requires_action' });
      }
      checkWalletConfirmable({ ...intent, ...kept }, paymentMethod.type, params.return_url ?? intent.return_url,
        params.capture_method ?? intent.capture_method, services.connectors.wallet(paymentMethod.type, scope.livemode));
    }
    // Only now, with the new payment method found valid, is an open challenge ended (once per request): a
    // confirmation that is refused, or that brings no new payment method, leaves the shopper's challenge alone.
    if (await endOpenChallenge(services, ctx, scope, intent, prepared !== undefined && !challengeEnded)) {
      challengeEnded = true;
      continue;
    }
    const currency = findCurrency(intent.currency);
    assert(currency !== undefined, 'a stored currency is known');
    // Made with the attempt, or not at all: a confirmation refused above leaves no Customer behind. The attempt is
    // the new customer's from the start (its charge, its limits, its risk decision).
    const customer = params.newCustomer !== undefined && checkoutSession !== undefined && intent.customer_id === null ? newCustomerRow(scope, params.newCustomer, now) : undefined;
    const payer = customer === undefined ? intent : { ...intent, customer_id: customer.id };
    const charge = newCharge(ctx, scope, payer, paymentMethod, params, now);
    const limitTakes = limitCounters(configuredLimits, policy.time_zone, scope, payer, paymentMethod, charge, now);
    const shipping = params.shipping === undefined ? intent.shipping : (params.shipping || null) as Record<string, unknown> | null;
    const risk = await decideAttempt(services, {
      scope, intent: payer, paymentMethod, charge, shipping, velocityKeys: velocityKeys(payer, charge), now, policy,
    });
    if (params.askShopperForStepUp === true && params.shopperStepUp === undefined && risk.summary.action === 'request_step_up' && isWalletType(paymentMethod.type)) {
      throw new CofferError('shopper_step_up_required', 'The risk engine asks the shopper to confirm this payment first; nothing was sent to the provider.');
    }
    charge.risk = {
      ...risk.summary,
      // The shopper's own step-up never replaces the one the risk engine asks for (3-D Secure for a card).
      ...stepUpHandling(risk.summary.action, paymentMethod, params.off_session === true),
      ...(params.shopperStepUp === undefined ? {} : { shopper_step_up: params.shopperStepUp }),
    };
    const changes: Partial<PaymentIntentRow> = {
      status,
      payment_method_id: paymentMethod.id,
      latest_charge_id: charge.id,
      last_payment_error: null,
      next_action: null,
      receipt_email: emptyToNull(params.receipt_email, intent.receipt_email),
      return_url: params.return_url ?? intent.return_url,
      capture_method: params.capture_method ?? intent.capture_method,
      updated_at: now,
      ...(params.setup_future_usage === undefined ? {} : { setup_future_usage: params.setup_future_usage || null }),
      ...kept,
      ...(params.shipping === undefined ? {} : { shipping: (params.shipping || null) as Record<string, unknown> | null }),
      ...(customer === undefined ? {} : { customer_id: customer.id }),
    };
    const { custom_fields: _fields, ...consent } = params.pageAnswers ?? {};
    // A card given with this request is created by it: the attempt's record says so (there is no record of its own).
    const createdMethod = given !== undefined && paymentMethod.id === given.row.id ? { payment_method_created: givenCardAudit(given) } : {};
    const { audit } = changeRows(requestTrail(ctx), scope,
      { action: 'payment_intent.confirm', objectType: 'payment_intent', objectId: intent.id, details: {
        charge: charge.id, ...createdMethod, ...(params.mandate_data === undefined ? {} : { customer_acceptance: params.mandate_data.customer_acceptance }),
        ...(Object.keys(consent).length === 0 ? {} : { consent }),
      } }, [], now);
    const made = customer === undefined ? undefined
      : changeRows(requestTrail(ctx), scope, { action: 'customer.create', objectType: 'customer', objectId: customer.id, details: { checkout_session: checkoutSession, payment_intent: intent.id } },
        [{ type: 'customer.created', customer: { after: customer } }], now);
    try {
      let query = services.db
        .with('intent_written', (db) => db.updateTable('payment_intents').set(paymentIntentChanges(changes))
          .where('id', '=', intent.id).where('version', '=', intent.version).returning('id'))
        .with('audit_written', (db) => db.insertInto('audit_log').values(made === undefined ? [audit] : [made.audit, audit]).returning('seq'));
      // The session's row is written once (a statement cannot change a row twice: PostgreSQL would apply one of the
      // two): what the page answered with this try, merged into what the session keeps of the page (the addresses
      // are kept apart, before the attempt), and the customer made of its shopper, if it has none yet (the
      // PaymentIntent's version guards the rest).
      const answered = params.pageAnswers !== undefined && Object.keys(params.pageAnswers).length > 0 ? params.pageAnswers : undefined;
      if (checkoutSession !== undefined && (customer !== undefined || answered !== undefined)) {
        query = query.with('session_written', (db) => {
          let update = db.updateTable('checkout_sessions').set({
            ...(customer === undefined ? {} : { customer_id: customer.id }),
            ...(answered === undefined ? {} : {
              collected: sql<string>`(CASE WHEN jsonb_typeof(collected) = 'object' THEN collected ELSE '{}'::jsonb END) || ${JSON.stringify(answered)}::jsonb`,
            }),
            updated_at: now,
          }).where('id', '=', checkoutSession).where('payment_intent_id', '=', intent.id);
          if (customer !== undefined) update = update.where('customer_id', 'is', null);
          return update.returning('id');
        }) as unknown as typeof query;
      }
      if (customer !== undefined && made !== undefined) {
        query = query.with('customer_written', (db) => db.insertInto('customers').values(customerInsert(customer)).returning('id'))
          .with('customer_events', (db) => db.insertInto('events').values(made.eventRows).returning('id')) as unknown as typeof query;
      }
      // Every card is bound to the PaymentIntent of its first attempt. Saved to a customer, the binding does not
      // restrict it (checkSingleUse); it does once the card belongs to no customer (a guest's, or one detached
      // meanwhile). If another PaymentIntent bound it first, the statement fails as a concurrent change and the
      // next round reads the card again.
      const binds = paymentMethod.first_payment_intent_id === null;
      if (method.isNew) {
        const row = { ...paymentMethod, first_payment_intent_id: intent.id };
        query = query.with('method_written', (db) => db.insertInto('payment_methods').values(paymentMethodInsert(row)).returning('id')) as unknown as typeof query;
      } else if (binds) {
        query = query.with('method_bound', (db) => db.updateTable('payment_methods').set({ first_payment_intent_id: intent.id })
          .where('id', '=', paymentMethod.id).where('first_payment_intent_id', 'is', null).where('detached_at', 'is', null)
          .where(sql<boolean>`customer_id IS NOT DISTINCT FROM ${paymentMethod.customer_id}::text`).returning('id')) as unknown as typeof query;
      }
      // A card given with this request goes into the vault with the attempt that uses it, or not at all.
      const storesCard = given !== undefined && paymentMethod.id === given.row.id ? [storeCardSql(given.vaultCardId, given.ciphertext).as('card_stored')] : [];
      // A card already used is checked again in the statement: detached, or moved to another customer, since it was
      // read, it is refused on the next round. A share lock, so that a detach waits for the payment (or the payment
      // sees the detach), while concurrent payments with one saved card do not queue behind each other.
      const stillHeld = !method.isNew && !binds
        ? [sql<boolean>`coffer_expect_rows((SELECT count(*) FROM (SELECT 1 FROM payment_methods WHERE id = ${paymentMethod.id}
            AND customer_id IS NOT DISTINCT FROM ${paymentMethod.customer_id}::text AND detached_at IS NULL FOR SHARE) AS held), 1)`.as('held')]
        : [];
      await query
        .with('charge_written', (db) => db.insertInto('charges').values(chargeInsert(charge)).returning('id'))
        .with('decision_written', (db) => db.insertInto('risk_decisions').values(risk.row).returning('id'))
        .selectNoFrom([
          sql<boolean>`coffer_expect_rows((SELECT count(*) FROM intent_written), 1)`.as('written'),
          ...(customer === undefined ? [] : [sql<boolean>`coffer_expect_rows((SELECT count(*) FROM session_written), 1)`.as('linked')]),
          // A hosted checkout's discount takes one of its redemptions with the attempt, or the attempt is not made.
          ...(checkoutSession === undefined ? [] : [sql<boolean>`coffer_discount_take(${checkoutSession})`.as('discount')]),
          ...(!method.isNew && binds ? [sql<boolean>`coffer_expect_rows((SELECT count(*) FROM method_bound), 1)`.as('bound')] : []),
          ...stillHeld,
          ...storesCard,
          ...limitTakes.map((take, index) => sql<boolean>`coffer_limit_take(${take.limit.id}, ${take.subjectKey}, ${take.windowKey},
            ${scope.merchantId}, ${charge.id}, ${charge.amount}, ${take.maxAmount}, ${take.maxCount})`.as(`limit_${index}`)),
        ])
        .execute();
    } catch (error) {
      const exceeded = exceededLimit(error, limitTakes);
      if (exceeded !== undefined) throw limitError(exceeded);
      if (discountUsedUp(error)) {
        throw new CofferError('checkout_discount_used_up', 'The session\'s coupon or promotion code has been redeemed as many times as it may be. Nothing was charged.', { param: 'discounts' });
      }
      if ((error as { code?: unknown }).code !== '40001') throw error;
      if (round >= startRoundsMax) {
        throw new CofferError('lock_timeout', 'This PaymentIntent is being changed by another request. Try again in a moment.');
      }
      continue;
    }
    return { kind: 'send', attempt: { intent: { ...intent, ...changes, version: intent.version + 1n }, charge, paymentMethod, currency } };
  }
}

/**
 * Confirms a PaymentIntent: persist the attempt, send it to the acquirer with the attempt's own idempotency key
 * (outside any transaction), then record the outcome. A retry of the same request after a crash or a timeout
 * resends the same attempt, which the acquirer answers without authorizing twice.
 */
export async function confirmPaymentIntent(
  services: Services,
  ctx: RequestContext,
  id: string,
  params: ConfirmParams,
  respond: Respond,
): Promise<Outcome> {
  const scope = { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
  const now = new Date(services.clock.nowMs());
  const started = await startAttempt(services, ctx, scope, id, params, respond, now);
  if (started.kind === 'finished') return started.outcome;
  const attempt = started.attempt;
  services.faults.reach('confirm.after_attempt_persisted');
  if (attempt.charge.risk?.action === 'block') {
    const blocked = await recordAttemptOutcome(services, { scope, paymentIntentId: attempt.intent.id, chargeId: attempt.charge.id },
      riskBlockDecline(attempt.charge), requestTrail(ctx), { respond, claim: ctx.idempotency }, attempt);
    assert(blocked !== undefined, 'a request always gets a response');
    return blocked;
  }
  if (isWalletType(attempt.paymentMethod.type)) return sendWalletAttempt(services, ctx, scope, attempt, respond);
  const connector: Connector = services.connectors.card(scope.livemode);
  const card = await services.cardSource.cardFor(attempt.paymentMethod);
  assert(card !== undefined, `payment method ${attempt.paymentMethod.id} has a card to charge`);
  const result = await connector.authorize({
    idempotencyKey: attempt.charge.provider_idempotency_key,
    reference: attempt.charge.id,
    amountMinor: attempt.charge.amount,
    currency: attempt.currency,
    // Held for review: authorized only, captured when a person approves.
    capture: captureMethodFor(attempt.intent, attempt.paymentMethod.type) !== 'manual' && !heldForReview(attempt.charge.risk),
    // A hold the merchant captures itself, and asked to be able to raise.
    incrementalAuthorization: captureMethodFor(attempt.intent, attempt.paymentMethod.type) === 'manual' && attempt.intent.card_request_incremental_authorization === 'if_available',
    card,
    statementDescriptor: attempt.intent.statement_descriptor,
    // Off-session payments cannot ask the cardholder anything: the issuer decides without them (a card set up for
    // later payments may pass; one that needs the shopper is declined authentication_required).
    threeDSecure: {
      // What the PaymentIntent keeps, this confirmation's own value included (a retry sends the same).
      request: attempt.charge.risk?.step_up === 'three_d_secure' ? 'any' : (attempt.intent.card_request_three_d_secure ?? 'automatic'),
      returnUrl: services.connectors.paymentReturnUrl(attempt.charge.id),
      cardSetUp: await cardWasSetUp(services, attempt.paymentMethod),
      ...(params.off_session === true ? { offSession: true } : {}),
      ...(params.error_on_requires_action === true ? { noChallenge: true } : {}),
    },
  });
  services.faults.reach('confirm.after_provider_call');
  if (result.status === 'unknown') throw outcomeUnknownError();
  const outcome = await recordAttemptOutcome(
    services,
    { scope, paymentIntentId: attempt.intent.id, chargeId: attempt.charge.id },
    result,
    requestTrail(ctx),
    { respond, claim: ctx.idempotency },
    attempt,
  );
  assert(outcome !== undefined, 'a request always gets a response');
  return outcome;
}
