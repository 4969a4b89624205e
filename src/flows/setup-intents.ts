import type { AuthorizeResult } from '../connectors/connector.ts';
import { findCurrency, type CurrencyInfo } from '../domain/currency.ts';
import { CofferError, errorCatalog, resourceMissing } from '../domain/errors.ts';
import { setupTransition, type SetupIntentEvent, type SetupIntentStatus } from '../domain/setup-intent-machine.ts';
import { limits } from '../limits.ts';
import { assert } from '../platform/assert.ts';
import { newId, randomBase62 } from '../platform/random.ts';
import type { PaymentMethodRow, SetupIntentRow } from '../store/database.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { recordChange, recordEvents, type Scope } from './payment-intent-records.ts';
import { checkMethodBelongs, checkSavable, liveCustomer, resolvePaymentMethod, savableNow } from './payment-methods.ts';
import { cardAcquirerOf, neverSentDecline, outcomeUnknownError } from './record-attempt-outcome.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail, type Trail } from './trail.ts';
import { jobTrail } from '../jobs/system-trail.ts';
import { automaticPaymentMethodsByDefault } from '../objects/api-version.ts';
import { automaticPaymentMethodsOf } from './create-payment-intent.ts';
import { setupErrorMethodId } from '../objects/setup-intent.ts';
import { sql } from 'kysely';
import { storeCardSql } from '../vault/card-vault.ts';
import { paymentMethodInsert } from '../store/row-json.ts';
import { givenCardAudit, type GivenCard } from './saved-payment-methods.ts';

export interface SetupIntentParams {
  customer?: string;
  payment_method?: string;
  usage?: 'off_session' | 'on_session';
  description?: string;
  metadata?: Record<string, string> | '';
  confirm?: boolean;
  automatic_payment_methods?: { enabled: boolean; allow_redirects?: 'always' | 'never' };
  payment_method_types?: string[];
  /**
   * Where the shopper goes back to after a 3-D Secure challenge, with `setup_intent`, `setup_intent_client_secret`
   * and `redirect_status` added, as at Stripe. Without one, the challenge ends on a page of Coffer's own.
   */
  return_url?: string;
  /** The shopper's agreement to a mandate, with `confirm=true`: kept in the confirmation's audit record. */
  mandate_data?: { customer_acceptance: Record<string, unknown> };
  /** Stripe.js's handling of the next action: accepted, and changes nothing (Coffer has no Stripe.js). */
  use_stripe_sdk?: boolean;
}

/** What a confirmation takes besides the SetupIntent's id. */
export interface ConfirmSetupIntentParams {
  payment_method?: string;
  /**
   * A card given with the confirmation (`payment_method_data[type]=card`), sealed by the vault but not yet stored:
   * its PaymentMethod is written, and the card stored, by the confirmation's first transaction, so that a
   * confirmation refused before the verification stores nothing.
   */
  card?: GivenCard;
  return_url?: string;
  mandate_data?: { customer_acceptance: Record<string, unknown> };
}

export interface UpdateSetupIntentParams {
  description?: string | '';
  metadata?: Record<string, string> | '';
  payment_method?: string;
}

/** `automatic_payment_methods` as asked for, or as the API version gives by default (on from 2023-08-16). */
function automaticMethodsOf(params: SetupIntentParams, byDefault: boolean): SetupIntentRow['automatic_payment_methods'] {
  const automatic = params.automatic_payment_methods;
  if (params.payment_method_types !== undefined) {
    if (automatic?.enabled === true) {
      throw new CofferError('parameters_exclusive', 'You may only specify one of these parameters: automatic_payment_methods, payment_method_types.', { param: 'automatic_payment_methods' });
    }
    return null;
  }
  return automaticPaymentMethodsOf(automatic, byDefault);
}

function next(intent: SetupIntentRow, event: SetupIntentEvent): SetupIntentStatus {
  const status = setupTransition(intent.status, event);
  if (status === undefined) {
    throw new CofferError('setup_intent_unexpected_state', `This SetupIntent cannot ${event.replaceAll('_', ' ')} because it has a status of ${intent.status}.`);
  }
  return status;
}

async function lockSetupIntent(tx: Tx, scope: Scope, id: string): Promise<SetupIntentRow> {
  const row = await tx.selectFrom('setup_intents').selectAll().where('id', '=', id).where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).forUpdate().executeTakeFirst();
  if (row === undefined) throw resourceMissing('setup_intent', id, 'intent');
  return row;
}

async function changedBy(tx: Tx, trail: Trail, scope: Scope, before: SetupIntentRow | undefined, after: SetupIntentRow, types: string[], now: Date): Promise<void> {
  // The events show the card a setup error names whole, as the API does.
  const methodId = setupErrorMethodId(after);
  const errorPaymentMethod = methodId === undefined ? undefined : await tx.selectFrom('payment_methods').selectAll().where('id', '=', methodId).executeTakeFirst();
  await recordChange(tx, trail, scope, { action: `setup_intent.${after.status}`, objectType: 'setup_intent', objectId: after.id },
    types.map((type) => ({ type, setupIntent: { before, after, errorPaymentMethod } })), now);
}

async function changed(tx: Tx, ctx: RequestContext, before: SetupIntentRow | undefined, after: SetupIntentRow, types: string[], now: Date): Promise<void> {
  await changedBy(tx, requestTrail(ctx), ctx.actor, before, after, types, now);
}

/** Creates a SetupIntent (to save a card for later payments), and confirms it at once with `confirm`. */
export async function createSetupIntent(services: Services, ctx: RequestContext, params: SetupIntentParams, respond?: Respond<ConfirmedSetupIntent>): Promise<ConfirmedSetupIntent> {
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const automaticPaymentMethods = automaticMethodsOf(params, automaticPaymentMethodsByDefault(ctx.actor.apiVersion));
  // Refused before anything is written: a confirmation that cannot start must not leave a SetupIntent behind.
  if (params.confirm === true && params.payment_method === undefined) {
    throw new CofferError('parameter_missing', 'Missing required param: payment_method.', { param: 'payment_method' });
  }
  if (params.mandate_data !== undefined && params.confirm !== true) {
    throw new CofferError('parameter_invalid', 'mandate_data can only be given with confirm=true: it is the agreement the confirmation is made under; give it to confirm otherwise.', { param: 'mandate_data' });
  }
  const confirmParams: ConfirmSetupIntentParams = params.mandate_data === undefined ? {} : { mandate_data: params.mandate_data };
  // A retry (same Idempotency-Key) of a creation whose confirmation got no answer takes that SetupIntent up again.
  const recovered = ctx.idempotency?.recoveryPoint;
  if (params.confirm === true && recovered !== undefined && recovered !== null) return confirmSetupIntent(services, ctx, recovered, confirmParams, respond);
  const now = new Date(services.clock.nowMs());
  const created = await inTransaction(services.db, async (tx) => {
    const customer = params.customer === undefined ? undefined : await liveCustomer(tx, ctx, params.customer);
    let method: PaymentMethodRow | undefined;
    if (params.payment_method !== undefined) {
      method = await resolvePaymentMethod(tx, services, ctx.actor, params.payment_method, now);
      checkMethodBelongs(method, customer?.id ?? null);
      await checkSavable(tx, method, 'payment_method');
    }
    const id = newId('seti');
    const row = await tx.insertInto('setup_intents').values({
      id, merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now, updated_at: now,
      status: method === undefined ? 'requires_payment_method' : 'requires_confirmation', customer_id: customer?.id ?? null,
      payment_method_id: method?.id ?? null, usage: params.usage ?? 'off_session', client_secret: `${id}_secret_${randomBase62(25)}`,
      description: params.description ?? null, metadata: JSON.stringify(metadata), last_setup_error: JSON.stringify(null),
      cancellation_reason: null, verification_key: null, automatic_payment_methods: JSON.stringify(automaticPaymentMethods),
      return_url: params.return_url ?? null, next_action: JSON.stringify(null),
    }).returningAll().executeTakeFirstOrThrow();
    await changed(tx, ctx, undefined, row, ['setup_intent.created'], now);
    if (params.confirm === true) await ctx.idempotency?.setRecoveryPoint(tx, id);
    // A confirmation answers later, with the acquirer's answer recorded (a decline included).
    else await respond?.(tx, { intent: row, declined: false });
    return row;
  });
  return params.confirm === true ? confirmSetupIntent(services, ctx, created.id, confirmParams, respond) : { intent: created, declined: false };
}

/**
 * Updates a SetupIntent: its description and metadata at any time, its payment method while it waits for one or
 * for confirmation (as the state machine allows). Stripe sends no event for this; the audit log records it.
 */
export async function updateSetupIntent(services: Services, ctx: RequestContext, id: string, params: UpdateSetupIntentParams, respond?: Respond<SetupIntentRow>): Promise<SetupIntentRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockSetupIntent(tx, ctx.actor, id);
    const metadata = mergeMetadata(intent.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    let method: PaymentMethodRow | undefined;
    let status = intent.status;
    if (params.payment_method !== undefined) {
      status = next(intent, 'attach_payment_method');
      if (intent.customer_id !== null) await liveCustomer(tx, ctx, intent.customer_id);
      method = await resolvePaymentMethod(tx, services, ctx.actor, params.payment_method, now);
      checkMethodBelongs(method, intent.customer_id);
      await checkSavable(tx, method, 'payment_method');
    }
    const after = await tx.updateTable('setup_intents').set({
      status, payment_method_id: method?.id ?? intent.payment_method_id, metadata: JSON.stringify(metadata), updated_at: now,
      ...(method === undefined ? {} : { next_action: JSON.stringify(null) }),
      description: params.description === undefined ? intent.description : params.description || null,
    }).where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor,
      { action: 'setup_intent.update', objectType: 'setup_intent', objectId: intent.id, details: { fields: Object.keys(params) } }, [], now);
    await respond?.(tx, after);
    return after;
  });
}

/**
 * Confirms: the card is checked with the acquirer (a zero-amount verification, outside any transaction); on
 * success the payment method is saved to the customer, on a decline the SetupIntent waits for another card. An
 * issuer that wants the cardholder to authenticate first leaves the SetupIntent `requires_action`, with the
 * challenge page in `next_action`; the challenge's end settles it (see `settleSetupAuthentication`).
 * The customer must still exist: one deleted since the SetupIntent was created is refused before anything changes.
 * A confirmation whose verification got no answer (`processing`) is taken up again by the next confirm without a
 * new payment method, or by the recovery job: the acquirer is asked again under the same key, and answers once.
 */
export async function confirmSetupIntent(services: Services, ctx: RequestContext, id: string, params: ConfirmSetupIntentParams, respond?: Respond<ConfirmedSetupIntent>): Promise<ConfirmedSetupIntent> {
  const now = new Date(services.clock.nowMs());
  const started = await inTransaction(services.db, async (tx) => {
    let intent = await lockSetupIntent(tx, ctx.actor, id);
    if (intent.customer_id !== null) await liveCustomer(tx, ctx, intent.customer_id);
    const newMethod = params.payment_method !== undefined || params.card !== undefined;
    if (intent.status === 'processing' && intent.verification_key !== null && intent.payment_method_id !== null && !newMethod) {
      return { intent, methodId: intent.payment_method_id, key: intent.verification_key };
    }
    if (newMethod) {
      const status = next(intent, 'attach_payment_method');
      let method: PaymentMethodRow;
      if (params.card === undefined) {
        method = await resolvePaymentMethod(tx, services, ctx.actor, params.payment_method ?? '', now);
        checkMethodBelongs(method, intent.customer_id);
        await checkSavable(tx, method, 'payment_method');
      } else {
        method = await storeGivenCard(tx, ctx, params.card, now);
      }
      intent = await tx.updateTable('setup_intents').set({ status, payment_method_id: method.id, next_action: JSON.stringify(null) }).where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    }
    if (intent.payment_method_id === null) {
      throw new CofferError('setup_intent_unexpected_state', 'You cannot confirm this SetupIntent because it has no payment method.', { param: 'payment_method' });
    }
    const status = next(intent, 'confirm');
    // Refused before the verification is written when this mode has no card acquirer (live, until one is configured).
    services.connectors.card(ctx.actor.livemode);
    const key = newId('setatt');
    const after = await tx.updateTable('setup_intents').set({
      status, verification_key: key, last_setup_error: JSON.stringify(null), next_action: JSON.stringify(null), updated_at: now,
      ...(params.return_url === undefined ? {} : { return_url: params.return_url }),
    }).where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    if (params.mandate_data !== undefined) {
      await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'setup_intent.confirm', objectType: 'setup_intent', objectId: intent.id,
        details: { payment_method: intent.payment_method_id, customer_acceptance: params.mandate_data.customer_acceptance } }, [], now);
    }
    return { intent: after, methodId: intent.payment_method_id, key };
  });
  return verifyAndRecord(services, { scope: ctx.actor, trail: requestTrail(ctx), intentId: started.intent.id, methodId: started.methodId, key: started.key }, respond);
}

/**
 * Stores a card given with a confirmation as POST /v1/payment_methods would (its PaymentMethod a guest's, its
 * number in the vault, audited as `payment_method.create`), in the confirmation's transaction.
 */
async function storeGivenCard(tx: Tx, ctx: RequestContext, card: GivenCard, now: Date): Promise<PaymentMethodRow> {
  const method = await tx.insertInto('payment_methods').values(paymentMethodInsert(card.row)).returningAll().executeTakeFirstOrThrow();
  await sql`SELECT ${storeCardSql(card.vaultCardId, card.ciphertext)}`.execute(tx);
  const { id: _id, ...facts } = givenCardAudit(card);
  await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'payment_method.create', objectType: 'payment_method', objectId: method.id, details: facts }, [], now);
  return method;
}

interface Verification {
  scope: Scope;
  trail: Trail;
  intentId: string;
  methodId: string;
  /** The acquirer's idempotency key of this confirmation's verification. */
  key: string;
}

/** A confirmation's result: the SetupIntent, and whether the acquirer declined this confirmation's card. */
export interface ConfirmedSetupIntent {
  intent: SetupIntentRow;
  declined: boolean;
}

/**
 * Verifies the card at the acquirer (outside any transaction), then records the answer if the SetupIntent still
 * awaits it. The decline is this confirmation's if the SetupIntent still carries its key, whoever recorded it.
 */
async function verifyAndRecord(services: Services, verification: Verification, respond?: Respond<ConfirmedSetupIntent>): Promise<ConfirmedSetupIntent> {
  // The confirmation's answer is kept with the acquirer's answer, in the transaction that records it.
  const confirmed = (intent: SetupIntentRow): ConfirmedSetupIntent => ({
    intent, declined: intent.status === 'requires_payment_method' && intent.verification_key === verification.key && intent.last_setup_error !== null,
  });
  let answered: ConfirmedSetupIntent | undefined;
  await verifyAndRecordRow(services, verification, async (tx, intent) => {
    answered = confirmed(intent);
    await respond?.(tx, answered);
  });
  assert(answered !== undefined, 'the verification was recorded');
  return answered;
}

async function verifyAndRecordRow(services: Services, verification: Verification, recorded: Respond<SetupIntentRow>): Promise<SetupIntentRow> {
  const { scope, intentId, key } = verification;
  const acquirer = cardAcquirerOf(services, scope.livemode);
  // No acquirer serves this mode: a verification left `processing` by a live confirmation from before such
  // confirmations were refused was never sent, and now never will be. It fails as a PaymentIntent's attempt does
  // (`processing_error`, not sent to the network), before the card is read from the vault.
  if (acquirer === undefined) return recordVerification(services, verification, verification.methodId, neverSentDecline, recorded);
  const method = await services.db.selectFrom('payment_methods').selectAll().where('id', '=', verification.methodId).executeTakeFirstOrThrow();
  const card = await services.cardSource.cardFor(method);
  assert(card !== undefined, `payment method ${method.id} has a card to verify`);
  // The same request every time under one key (a retry, the recovery job): the acquirer answers it once.
  const result = await acquirer.verifyCard({
    idempotencyKey: key, reference: intentId, card, currency: verificationCurrency(),
    threeDSecure: { request: 'automatic', returnUrl: services.connectors.paymentReturnUrl(intentId), cardSetUp: false },
  });
  if (result.status === 'unknown') throw outcomeUnknownError('verification');
  return recordVerification(services, verification, method.id, result, recorded);
}

/** The zero-amount verification's currency (no money moves, so any would do; the acquirer's records show USD). */
function verificationCurrency(): CurrencyInfo {
  const currency = findCurrency('usd');
  assert(currency !== undefined, 'usd is a known currency');
  return currency;
}

/**
 * Records the acquirer's answer to a confirmation's verification if the SetupIntent still awaits it (`processing`,
 * or `requires_action` while its challenge runs, with this confirmation's key): the card saved, the card declined,
 * or a challenge for the cardholder first.
 */
async function recordVerification(services: Services, verification: Verification, methodId: string, result: Exclude<AuthorizeResult, { status: 'unknown' }>, recorded: Respond<SetupIntentRow>): Promise<SetupIntentRow> {
  const { scope, trail, intentId, key } = verification;
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockSetupIntent(tx, scope, intentId);
    const awaited = intent.verification_key === key && (intent.status === 'processing' || (intent.status === 'requires_action' && result.status !== 'requires_action'));
    if (!awaited) {
      await recorded(tx, intent);
      return intent;
    }
    // A challenge that ended goes on as the verification it was part of.
    const from: SetupIntentRow = intent.status === 'requires_action' ? { ...intent, status: next(intent, 'action_completed') } : intent;
    if (result.status === 'requires_action') {
      const after = await tx.updateTable('setup_intents').set({
        status: next(from, 'action_required'), updated_at: now,
        next_action: JSON.stringify({ type: 'redirect_to_url', redirect_to_url: { return_url: intent.return_url, url: result.redirectUrl } }),
      }).where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
      await changedBy(tx, trail, scope, intent, after, ['setup_intent.requires_action'], now);
      await recorded(tx, after);
      return after;
    }
    if (result.status === 'declined') {
      // Stripe names a failed authentication during setup for the SetupIntent.
      const code = result.code === 'payment_intent_authentication_failure' ? 'setup_intent_authentication_failure' : result.code;
      const after = await tx.updateTable('setup_intents').set({
        status: next(from, 'verification_failed'), payment_method_id: null, next_action: JSON.stringify(null), updated_at: now,
        last_setup_error: JSON.stringify({ code, decline_code: result.declineCode, message: result.message, type: errorCatalog[code].type, payment_method: { id: methodId } }),
      }).where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
      await changedBy(tx, trail, scope, intent, after, ['setup_intent.setup_failed'], now);
      await recorded(tx, after);
      return after;
    }
    await saveToCustomer(tx, trail, scope, intent, methodId, now);
    const after = await tx.updateTable('setup_intents').set({ status: next(from, 'verified'), next_action: JSON.stringify(null), updated_at: now })
      .where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    await changedBy(tx, trail, scope, intent, after, ['setup_intent.succeeded'], now);
    await recorded(tx, after);
    return after;
  });
}

/**
 * The cardholder's challenge for a SetupIntent ended (the shopper came back, or the acquirer said so): the acquirer
 * is asked what became of the verification (outside any transaction; the browser's arrival proves nothing), and a
 * final answer is recorded. A SetupIntent that no longer waits for that challenge (canceled, given another card,
 * settled already) is left as it is. Returns the SetupIntent as it then is, undefined if there is none (in `livemode`,
 * when given). `job` names who settles it in the audit trail.
 */
export async function settleSetupAuthentication(services: Services, intentId: string, job: string, livemode?: boolean): Promise<SetupIntentRow | undefined> {
  let read = services.db.selectFrom('setup_intents').selectAll().where('id', '=', intentId);
  if (livemode !== undefined) read = read.where('livemode', '=', livemode);
  const intent = await read.executeTakeFirst();
  if (intent === undefined || intent.status !== 'requires_action' || intent.verification_key === null || intent.payment_method_id === null) return intent;
  const found = await services.connectors.card(intent.livemode).syncPayment({
    idempotencyKey: intent.verification_key, reference: intent.id, amountMinor: 0n, currency: verificationCurrency(),
  });
  if (found.status !== 'authorized' && found.status !== 'captured' && found.status !== 'declined') return intent;
  const verification: Verification = {
    scope: { merchantId: intent.merchant_id, livemode: intent.livemode }, trail: await jobTrail(services, job, intent.merchant_id), intentId: intent.id, methodId: intent.payment_method_id, key: intent.verification_key,
  };
  return recordVerification(services, verification, intent.payment_method_id, found, async () => undefined);
}

/**
 * Saves the verified card to the SetupIntent's customer, with its `payment_method.attached` event. The customer's
 * row is locked first (as deleting a customer does), so a customer deleted during the verification gets no card:
 * the card was verified all the same, so the SetupIntent still succeeds.
 */
async function saveToCustomer(tx: Tx, trail: Trail, scope: Scope, intent: SetupIntentRow, methodId: string, now: Date): Promise<void> {
  if (intent.customer_id === null) return;
  const customer = await tx.selectFrom('customers').select(['id', 'deleted_at']).where('id', '=', intent.customer_id)
    .where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode).forUpdate().executeTakeFirst();
  if (customer === undefined || customer.deleted_at !== null) return;
  // A card a guest payment used meanwhile stays unsaved (decision 0023), unless that payment asked to keep it and was
  // authorized (as `checkSavable`): the SetupIntent verified it all the same.
  const saved = await tx.updateTable('payment_methods').set({ customer_id: customer.id }).where('id', '=', methodId).where('customer_id', 'is', null)
    .where(savableNow)
    .where('detached_at', 'is', null).returningAll().executeTakeFirst();
  if (saved !== undefined) await recordEvents(tx, trail, scope, [{ type: 'payment_method.attached', paymentMethod: { after: saved } }], now);
}

/**
 * SetupIntents left `processing` (the acquirer's answer never came, and nobody confirmed again): the acquirer is
 * asked again under the confirmation's key, which it answers once, and the answer is recorded; one in a mode no
 * acquirer serves fails as never sent (see `verifyAndRecordRow`). Rows are leased by moving `updated_at`, so
 * parallel workers skip them.
 */
export async function recoverSetupVerifications(services: Services): Promise<number> {
  const cutoff = new Date(services.clock.nowMs() - limits.inFlightRecoveryAfterMs);
  const claimed = await services.db.updateTable('setup_intents').set({ updated_at: new Date(services.clock.nowMs()) })
    .where('id', 'in', (eb) => eb.selectFrom('setup_intents').select('id')
      .where('status', '=', 'processing').where('updated_at', '<', cutoff)
      .where('verification_key', 'is not', null).where('payment_method_id', 'is not', null)
      .orderBy('updated_at').limit(limits.jobBatchSize).forUpdate().skipLocked())
    .returningAll().execute();
  for (const intent of claimed) {
    if (intent.verification_key === null || intent.payment_method_id === null) continue;
    try {
      const trail = await jobTrail(services, 'recover-setup-verifications', intent.merchant_id);
      await verifyAndRecord(services, {
        scope: { merchantId: intent.merchant_id, livemode: intent.livemode }, trail, intentId: intent.id, methodId: intent.payment_method_id, key: intent.verification_key,
      });
    } catch (error) {
      services.logger.warn({ err: error, setupIntent: intent.id }, 'setup intent verification still unanswered; asked again later');
    }
  }
  return claimed.length;
}

export async function cancelSetupIntent(services: Services, ctx: RequestContext, id: string, reason: string | undefined, respond?: Respond<SetupIntentRow>): Promise<SetupIntentRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockSetupIntent(tx, ctx.actor, id);
    const after = await tx.updateTable('setup_intents').set({ status: next(intent, 'cancel'), cancellation_reason: reason ?? null, next_action: JSON.stringify(null), updated_at: now })
      .where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    await changed(tx, ctx, intent, after, ['setup_intent.canceled'], now);
    await respond?.(tx, after);
    return after;
  });
}
