import type { Updateable } from 'kysely';
import { CofferError } from '../domain/errors.ts';
import { parseAmount, parseCurrency } from '../domain/money.ts';
import { limits } from '../limits.ts';
import type { PaymentIntentRow, PaymentIntentsTable } from '../store/database.ts';
import type { Outcome, RequestContext, Services, Tx } from './context.ts';
import { endOpenChallenge } from './confirm-payment-intent.ts';
import {
  checkMetadataSize,
  checkPaymentMethodTypes,
  emptyToNull,
  keptOptionChanges,
  keptOptionParams,
  mergeMetadata,
  type PaymentMethodOptionsParams,
  type ShippingParams,
} from './payment-intent-params.ts';
import {
  assertNoOperationInFlight,
  checkoutOwnsIntent,
  lockPaymentIntent,
  owningCheckoutSession,
  nextStatus,
  recordChange,
  updatePaymentIntentRow,
} from './payment-intent-records.ts';
import { liveCustomer, resolvePaymentMethod } from './payment-methods.ts';
import type { Respond } from './respond.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';

export interface UpdateParams {
  amount?: number;
  customer?: string | '';
  currency?: string;
  capture_method?: 'automatic' | 'automatic_async' | 'manual';
  description?: string;
  metadata?: Record<string, string> | '';
  payment_method?: string;
  payment_method_types?: string[];
  allowed_payment_method_types?: string[];
  receipt_email?: string;
  setup_future_usage?: 'on_session' | 'off_session' | '';
  /** Kept with the PaymentIntent; the next confirmation applies them (decision 0044). */
  payment_method_options?: PaymentMethodOptionsParams;
  shipping?: ShippingParams | '';
  statement_descriptor?: string;
  statement_descriptor_suffix?: string;
}

/** What a Checkout Session decided for its PaymentIntent from its line items and options; the rest (metadata, description…) stays the merchant's. */
const checkoutShapedFields = ['amount', 'currency', 'payment_method', 'payment_method_types', 'allowed_payment_method_types', 'capture_method', 'customer', 'setup_future_usage', 'payment_method_options'] as const;

/** Fields that shape the payment itself can change only before it is confirmed, as Stripe allows. */
const beforeConfirmation = ['requires_payment_method', 'requires_confirmation', 'requires_action'];

function requireUnconfirmed(intent: PaymentIntentRow, field: string): void {
  if (!beforeConfirmation.includes(intent.status)) {
    throw new CofferError(
      'payment_intent_unexpected_state',
      `This PaymentIntent's ${field} could not be updated because it has a status of ${intent.status}. You may only ` +
        `update the ${field} of a PaymentIntent with one of the following statuses: ${beforeConfirmation.join(', ')}.`,
      { param: field },
    );
  }
}

export async function updatePaymentIntent(
  services: Services,
  ctx: RequestContext,
  id: string,
  params: UpdateParams,
  respond: Respond,
): Promise<Outcome> {
  const scope = { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
  // A Checkout Session's PaymentIntent is the session's, for good: checked before anything is done.
  const shaping = checkoutShapedFields.find((field) => params[field] !== undefined);
  if (shaping !== undefined && ctx.shopperSession === undefined) {
    const session = await owningCheckoutSession(services.db, scope, id);
    if (session !== undefined) throw checkoutOwnsIntent(id, session, `change its ${shaping}`, shaping);
  }
  const reshapes = params.amount !== undefined || params.currency !== undefined || params.payment_method !== undefined;
  // A card's 3-D Secure challenge is for the amount and card it was opened with. An update that changes them and is
  // otherwise valid (checked first: a refused update changes nothing) ends the challenge at the acquirer, outside
  // any transaction, as a confirmation with another card does, and is then made. A wallet's trade cannot be ended so.
  for (let round = 1; ; round += 1) {
    try {
      return await updateOnce(services, ctx, scope, id, params, respond, reshapes ? round : undefined);
    } catch (error) {
      if (!(error instanceof ChallengeToEnd)) throw error;
      await endOpenChallenge(services, ctx, scope, error.intent, true);
    }
  }
}

/** Thrown, rolling the update back, when it is valid but a challenge must be ended before it is made. */
class ChallengeToEnd extends Error {
  constructor(readonly intent: PaymentIntentRow) {
    super('a 3-D Secure challenge is open');
  }
}

async function updateOnce(
  services: Services,
  ctx: RequestContext,
  scope: { merchantId: string; livemode: boolean },
  id: string,
  params: UpdateParams,
  respond: Respond,
  reshapingRound: number | undefined,
): Promise<Outcome> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const intent = await lockPaymentIntent(tx, scope, id);
    assertNoOperationInFlight(intent);
    const changes: Updateable<PaymentIntentsTable> = { last_payment_error: JSON.stringify(null) };
    if (params.amount !== undefined || params.currency !== undefined) {
      requireUnconfirmed(intent, params.amount !== undefined ? 'amount' : 'currency');
      const currency = parseCurrency(params.currency ?? intent.currency);
      const money = parseAmount(params.amount ?? Number(intent.amount), currency);
      changes.amount = money.amountMinor;
      changes.currency = currency.code;
    }
    if (params.capture_method !== undefined) {
      requireUnconfirmed(intent, 'capture_method');
      changes.capture_method = params.capture_method;
    }
    const types = params.payment_method_types ?? params.allowed_payment_method_types;
    if (types !== undefined) {
      requireUnconfirmed(intent, 'payment_method_types');
      const param = params.payment_method_types !== undefined ? 'payment_method_types' : 'allowed_payment_method_types';
      changes.payment_method_types = JSON.stringify(checkPaymentMethodTypes(types, param));
    }
    if (params.payment_method !== undefined) {
      requireUnconfirmed(intent, 'payment_method');
      if (params.payment_method === '') {
        changes.payment_method_id = null;
        changes.status = 'requires_payment_method';
      } else {
        changes.status = nextStatus(intent, 'attach_payment_method');
        changes.payment_method_id = (await resolvePaymentMethod(tx, services, scope, params.payment_method, now)).id;
      }
    }
    if (params.customer !== undefined) {
      changes.customer_id = params.customer === '' ? null : (await liveCustomer(tx, ctx, params.customer)).id;
    }
    const metadata = mergeMetadata(intent.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    changes.metadata = JSON.stringify(metadata);
    changes.description = emptyToNull(params.description, intent.description);
    changes.receipt_email = emptyToNull(params.receipt_email, intent.receipt_email);
    changes.statement_descriptor = emptyToNull(params.statement_descriptor, intent.statement_descriptor);
    changes.statement_descriptor_suffix = emptyToNull(params.statement_descriptor_suffix, intent.statement_descriptor_suffix);
    if (params.setup_future_usage !== undefined) {
      // The shopper's consent to keep the card is part of what they confirm: not given or withdrawn after it.
      requireUnconfirmed(intent, 'setup_future_usage');
      changes.setup_future_usage = params.setup_future_usage || null;
    }
    // The card's own capture method and consent override the fields above for a card, under the same rule; what a
    // confirmation applies (3-D Secure, WeChat Pay's client) is for the confirmation still to come.
    const options = params.payment_method_options;
    for (const param of keptOptionParams(options)) requireUnconfirmed(intent, param);
    Object.assign(changes, keptOptionChanges(options));
    if (params.shipping !== undefined) changes.shipping = JSON.stringify(params.shipping || null);
    if (reshapingRound !== undefined && intent.status === 'requires_action' && await attemptStillOpen(tx, intent)) {
      if (reshapingRound === 1) throw new ChallengeToEnd(intent);
      // Another attempt opened since the challenge was ended (a confirmation raced this update): the shopper may be
      // paying it right now, for the amount it was opened with.
      throw new CofferError(
        'payment_intent_unexpected_state',
        'This PaymentIntent is waiting for the shopper to finish paying, so its amount, currency and ' +
          'payment method cannot change now. Cancel it and create another, or wait for the payment to end.',
        { param: params.amount !== undefined ? 'amount' : params.currency !== undefined ? 'currency' : 'payment_method' },
      );
    }
    const after = await updatePaymentIntentRow(tx, intent.id, changes, now);
    await recordChange(
      tx,
      requestTrail(ctx),
      scope,
      { action: 'payment_intent.update', objectType: 'payment_intent', objectId: intent.id, details: { fields: Object.keys(params) } },
      [],
      now,
    );
    return respond(tx, { paymentIntent: after });
  });
}

async function attemptStillOpen(tx: Tx, intent: PaymentIntentRow): Promise<boolean> {
  if (intent.latest_charge_id === null) return false;
  const charge = await tx.selectFrom('charges').select('status').where('id', '=', intent.latest_charge_id).executeTakeFirst();
  return charge?.status === 'pending';
}
