import { findCurrency } from '../domain/currency.ts';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { setupTransition, type SetupIntentEvent, type SetupIntentStatus } from '../domain/setup-intent-machine.ts';
import { limits } from '../limits.ts';
import { assert } from '../platform/assert.ts';
import { newId, randomBase62 } from '../platform/random.ts';
import type { PaymentMethodRow, SetupIntentRow } from '../store/database.ts';
import type { RequestContext, Services, Tx } from './context.ts';
import { checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { recordChange } from './payment-intent-records.ts';
import { checkMethodBelongs, liveCustomer, resolvePaymentMethod } from './payment-methods.ts';
import { outcomeUnknownError } from './record-attempt-outcome.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

export interface SetupIntentParams {
  customer?: string;
  payment_method?: string;
  usage?: 'off_session' | 'on_session';
  description?: string;
  metadata?: Record<string, string> | '';
  confirm?: boolean;
}

function next(intent: SetupIntentRow, event: SetupIntentEvent): SetupIntentStatus {
  const status = setupTransition(intent.status, event);
  if (status === undefined) {
    throw new CofferError('setup_intent_unexpected_state', `This SetupIntent cannot ${event.replaceAll('_', ' ')} because it has a status of ${intent.status}.`);
  }
  return status;
}

async function lockSetupIntent(tx: Tx, ctx: RequestContext, id: string): Promise<SetupIntentRow> {
  const row = await tx.selectFrom('setup_intents').selectAll().where('id', '=', id).where('merchant_id', '=', ctx.actor.merchantId)
    .where('livemode', '=', ctx.actor.livemode).forUpdate().executeTakeFirst();
  if (row === undefined) throw resourceMissing('setup_intent', id, 'intent');
  return row;
}

async function changed(tx: Tx, ctx: RequestContext, before: SetupIntentRow | undefined, after: SetupIntentRow, types: string[], now: Date): Promise<void> {
  await recordChange(tx, requestTrail(ctx), ctx.actor, { action: `setup_intent.${after.status}`, objectType: 'setup_intent', objectId: after.id },
    types.map((type) => ({ type, setupIntent: { before, after } })), now);
}

/** Creates a SetupIntent (to save a card for later payments), and confirms it at once with `confirm`. */
export async function createSetupIntent(services: Services, ctx: RequestContext, params: SetupIntentParams): Promise<SetupIntentRow> {
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const now = new Date(services.clock.nowMs());
  const created = await inTransaction(services.db, async (tx) => {
    const customer = params.customer === undefined ? undefined : await liveCustomer(tx, ctx, params.customer);
    let method: PaymentMethodRow | undefined;
    if (params.payment_method !== undefined) {
      method = await resolvePaymentMethod(tx, services, ctx.actor, params.payment_method, now);
      checkMethodBelongs(method, customer?.id ?? null);
    }
    const id = newId('seti');
    const row = await tx.insertInto('setup_intents').values({
      id, merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now, updated_at: now,
      status: method === undefined ? 'requires_payment_method' : 'requires_confirmation', customer_id: customer?.id ?? null,
      payment_method_id: method?.id ?? null, usage: params.usage ?? 'off_session', client_secret: `${id}_secret_${randomBase62(25)}`,
      description: params.description ?? null, metadata: JSON.stringify(metadata), last_setup_error: JSON.stringify(null),
      cancellation_reason: null, verification_key: null,
    }).returningAll().executeTakeFirstOrThrow();
    await changed(tx, ctx, undefined, row, ['setup_intent.created'], now);
    return row;
  });
  return params.confirm === true ? confirmSetupIntent(services, ctx, created.id, {}) : created;
}

/**
 * Confirms: the card is checked with the acquirer (a zero-amount verification, outside any transaction); on
 * success the payment method is saved to the customer, on a decline the SetupIntent waits for another card.
 */
export async function confirmSetupIntent(services: Services, ctx: RequestContext, id: string, params: { payment_method?: string }): Promise<SetupIntentRow> {
  const now = new Date(services.clock.nowMs());
  const started = await inTransaction(services.db, async (tx) => {
    let intent = await lockSetupIntent(tx, ctx, id);
    if (params.payment_method !== undefined) {
      const status = next(intent, 'attach_payment_method');
      const method = await resolvePaymentMethod(tx, services, ctx.actor, params.payment_method, now);
      checkMethodBelongs(method, intent.customer_id);
      intent = await tx.updateTable('setup_intents').set({ status, payment_method_id: method.id }).where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    }
    if (intent.payment_method_id === null) {
      throw new CofferError('setup_intent_unexpected_state', 'You cannot confirm this SetupIntent because it has no payment method.', { param: 'payment_method' });
    }
    const status = next(intent, 'confirm');
    const key = newId('setatt');
    const after = await tx.updateTable('setup_intents').set({ status, verification_key: key, last_setup_error: JSON.stringify(null), updated_at: now })
      .where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    const method = await tx.selectFrom('payment_methods').selectAll().where('id', '=', intent.payment_method_id).executeTakeFirstOrThrow();
    return { intent: after, method, key };
  });
  const card = await services.cardSource.cardFor(started.method);
  assert(card !== undefined, `payment method ${started.method.id} has a card to verify`);
  const currency = findCurrency('usd');
  assert(currency !== undefined, 'usd is a known currency');
  const result = await services.connectors.card(ctx.actor.livemode).verifyCard({ idempotencyKey: started.key, reference: started.intent.id, card, currency });
  if (result.status === 'unknown') throw outcomeUnknownError();
  return inTransaction(services.db, async (tx) => {
    const intent = await lockSetupIntent(tx, ctx, id);
    if (intent.status !== 'processing' || intent.verification_key !== started.key) return intent;
    if (result.status === 'declined') {
      const after = await tx.updateTable('setup_intents').set({
        status: next(intent, 'verification_failed'), payment_method_id: null, updated_at: now,
        last_setup_error: JSON.stringify({ code: result.code, decline_code: result.declineCode, message: result.message, type: 'card_error', payment_method: { id: started.method.id } }),
      }).where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
      await changed(tx, ctx, intent, after, ['setup_intent.setup_failed'], now);
      return after;
    }
    if (intent.customer_id !== null) {
      await tx.updateTable('payment_methods').set({ customer_id: intent.customer_id }).where('id', '=', started.method.id).where('customer_id', 'is', null).execute();
    }
    const after = await tx.updateTable('setup_intents').set({ status: next(intent, 'verified'), updated_at: now }).where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    await changed(tx, ctx, intent, after, ['setup_intent.succeeded'], now);
    return after;
  });
}

export async function cancelSetupIntent(services: Services, ctx: RequestContext, id: string, reason: string | undefined): Promise<SetupIntentRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockSetupIntent(tx, ctx, id);
    const after = await tx.updateTable('setup_intents').set({ status: next(intent, 'cancel'), cancellation_reason: reason ?? null, updated_at: now })
      .where('id', '=', intent.id).returningAll().executeTakeFirstOrThrow();
    await changed(tx, ctx, intent, after, ['setup_intent.canceled'], now);
    return after;
  });
}
