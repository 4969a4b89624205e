import { captureMethodFor } from '../domain/card-payment-options.ts';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import type { ChargeRow, PaymentIntentRow, ReviewRow } from '../store/database.ts';
import { cancelPaymentIntent } from './cancel-payment-intent.ts';
import { capturePaymentIntent } from './capture-payment-intent.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { prepareRefund, sendRefund } from './create-refund.ts';
import { lockCharge, recordChange } from './payment-intent-records.ts';
import { keepingResponder } from './respond.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail, type Trail } from './trail.ts';

/**
 * The review queue: payments the risk engine held (authorized, not captured; or, for wallets, paid) until a person
 * decides. Approving captures what was held; rejecting cancels the authorization, or refunds a payment whose
 * money was already taken. The provider is called first, outside any transaction; the review is closed after,
 * with its label for the next training run, so that a retry after a failure finds the review still open and
 * the payment where it was left (cancel and capture are idempotent at the provider).
 */
export type ReviewDecision = 'approve' | 'reject';

function scopeOf(ctx: RequestContext) {
  return { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
}

/** `param`: the parameter that named it, which a not-found error names (a list's cursor, say). */
export async function findReview(reader: Tx | Services['db'], ctx: RequestContext, id: string, lock = false, param = 'review'): Promise<ReviewRow> {
  const scope = scopeOf(ctx);
  let query = reader.selectFrom('reviews').selectAll().where('id', '=', id).where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode);
  if (lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('review', id, param);
  return row;
}

export interface ListReviewsParams {
  limit: number;
  starting_after?: string;
  ending_before?: string;
}

/** Open reviews, newest first (Stripe lists the open ones). */
export async function listOpenReviews(services: Services, ctx: RequestContext, params: ListReviewsParams): Promise<{ data: ReviewRow[]; hasMore: boolean }> {
  const scope = scopeOf(ctx);
  let query = services.db.selectFrom('reviews').selectAll().where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode)
    .where('open', '=', true);
  const cursorId = params.starting_after ?? params.ending_before;
  if (cursorId !== undefined) {
    const cursor = await findReview(services.db, ctx, cursorId, false, params.starting_after !== undefined ? 'starting_after' : 'ending_before');
    query = query.where('seq', params.starting_after !== undefined ? '<' : '>', cursor.seq);
  }
  const rows = await query.orderBy('seq', params.ending_before !== undefined ? 'asc' : 'desc').limit(params.limit + 1).execute();
  const hasMore = rows.length > params.limit;
  const data = rows.slice(0, params.limit);
  if (params.ending_before !== undefined) data.reverse();
  return { data, hasMore };
}

async function readPayment(services: Services, review: ReviewRow): Promise<{ intent: PaymentIntentRow; charge: ChargeRow }> {
  const intent = await services.db.selectFrom('payment_intents').selectAll().where('id', '=', review.payment_intent_id).executeTakeFirstOrThrow();
  const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', review.charge_id).executeTakeFirstOrThrow();
  return { intent, charge };
}

/** Approves (captures) or rejects (cancels or refunds) a held payment, then closes its review with a label. */
export async function decideReview(services: Services, ctx: RequestContext, id: string, decision: ReviewDecision, respond?: Respond<ReviewRow>): Promise<ReviewRow> {
  const review = await findReview(services.db, ctx, id);
  // A rejection whose cancellation closed the review, but which stopped before recording itself (a crash, a lost
  // connection), is finished by its retry: the rejection and its label are recorded below.
  const closedByCancel = !review.open && decision === 'reject' && review.closed_reason === 'canceled';
  if (!review.open && !closedByCancel) {
    throw new CofferError('review_closed', `This review was already closed (${review.closed_reason ?? 'closed'}).`);
  }
  const { intent, charge } = await readPayment(services, review);
  // The payment operations run as their own work, without this request's idempotency key (which keeps the review).
  const inner: RequestContext = { ...ctx, idempotency: undefined };
  const quiet = keepingResponder();
  let closedReason: NonNullable<ReviewRow['closed_reason']>;
  let refundTaken = false;
  if (decision === 'approve') {
    closedReason = 'approved';
    if (intent.status === 'requires_capture' && captureMethodFor(intent, charge.provider) !== 'manual') {
      await capturePaymentIntent(services, inner, intent.id, {}, quiet.respond, { approvingReview: review.id });
    } else if (intent.status === 'canceled') {
      throw new CofferError('payment_intent_unexpected_state', `The payment ${intent.id} was canceled; reject the review instead.`);
    }
  } else if (intent.status === 'requires_capture') {
    closedReason = 'canceled';
    await cancelPaymentIntent(services, inner, intent.id, { cancellation_reason: 'fraudulent' }, quiet.respond);
  } else if (intent.status === 'canceled') {
    closedReason = 'canceled';
  } else {
    // The money was taken (a wallet pays at once): refunded, decided below on the locked charge.
    closedReason = 'refunded_as_fraud';
    refundTaken = charge.amount_captured > 0n;
  }
  const failure = quiet.last()?.error;
  if (failure !== undefined) throw failure;
  const now = new Date(services.clock.nowMs());
  const { closed, refund } = await inTransaction(services.db, async (tx) => {
    // The charge first, then the review: the order refunds lock in.
    const locked = refundTaken ? await lockCharge(tx, review.charge_id) : undefined;
    const current = await findReview(tx, ctx, id, true);
    // Rejecting an authorized payment cancels it, and the cancellation closes the review: the rejection is recorded all the same.
    const closedByCancel = !current.open && decision === 'reject' && current.closed_reason === 'canceled';
    if (!current.open && !closedByCancel) throw new CofferError('review_closed', `This review was already closed (${current.closed_reason ?? 'closed'}).`);
    const refundable = locked === undefined ? 0n : locked.amount_captured - locked.amount_refunded - locked.amount_refunding;
    if (locked !== undefined && refundable <= 0n && locked.amount_refunding > 0n) {
      // A refund already under way may still fail: the review stays open until the money is surely back.
      throw new CofferError('payment_intent_unexpected_state', 'A refund of this payment is in progress; reject the review again when it has ended.');
    }
    const after = closedByCancel ? current : await tx.updateTable('reviews')
      .set({ open: false, closed_reason: closedReason, closed_at: now, closed_by: ctx.staffUserId ?? ctx.actor.apiKeyId })
      .where('id', '=', id).returningAll().executeTakeFirstOrThrow();
    await tx.insertInto('risk_labels').values({
      charge_id: review.charge_id, source: 'review', merchant_id: review.merchant_id, livemode: review.livemode, fraud: decision === 'reject', labeled_at: now,
    }).onConflict((oc) => oc.columns(['charge_id', 'source']).doUpdateSet({ fraud: decision === 'reject', labeled_at: now })).execute();
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx),
      { action: `review.${decision}`, objectType: 'review', objectId: id, details: { charge: review.charge_id, closed_reason: closedReason } },
      closedByCancel ? [] : [{ type: 'review.closed', review: { before: current, after } }], now);
    // The refund of money already taken is decided with the review, and sent after the commit (or by recovery).
    const prepared = locked === undefined || refundable <= 0n ? undefined : await prepareRefund(tx, inner, { charge: locked.id, amount: Number(refundable), reason: 'fraudulent' }, now);
    // The answer is the closed review, whatever the refund's call to the acquirer then says (recovery finishes it).
    await respond?.(tx, after);
    return { closed: after, refund: prepared };
  });
  // The review is closed and its answer kept: a refund the provider has not settled yet (WeChat Pay settles later)
  // or could not be sent now stays pending, and the recovery job finishes it. The answer is the same either way,
  // for this request and for its retry.
  if (refund !== undefined) {
    await sendRefund(services, inner, refund.refund, refund.charge, undefined).catch((error: unknown) => {
      // An outcome not known yet or an operating error; anything else is a bug, and stops the process as bugs do.
      if (!(error instanceof CofferError)) throw error;
      services.logger.warn({ err: error, refund: refund.refund.id, review: id }, 'refund of a rejected review not finished; recovery will finish it');
    });
  }
  return closed;
}

/**
 * A held payment canceled other than through its review (by the merchant, or its authorization expired): its
 * review has nothing left to decide and is closed as canceled, in the cancellation's transaction.
 */
export async function closeReviewOfCanceled(tx: Tx, chargeId: string, trail: Trail, now: Date): Promise<void> {
  const open = await tx.selectFrom('reviews').selectAll().where('charge_id', '=', chargeId).where('open', '=', true).forUpdate().executeTakeFirst();
  if (open === undefined) return;
  const after = await tx.updateTable('reviews').set({ open: false, closed_reason: 'canceled', closed_at: now, closed_by: trail.actorId })
    .where('id', '=', open.id).returningAll().executeTakeFirstOrThrow();
  await recordChange(tx, trail, { merchantId: open.merchant_id, livemode: open.livemode },
    { action: 'review.close', objectType: 'review', objectId: open.id, details: { charge: chargeId, closed_reason: 'canceled' } },
    [{ type: 'review.closed', review: { before: open, after } }], now);
}

/** The refusal of a capture while the payment's review is open (the engine held it for a person). */
export async function refuseCaptureInReview(tx: Tx, charge: ChargeRow, approvingReview: string | undefined, what: 'capture' | 'increment' = 'capture'): Promise<void> {
  if (charge.review_id === null || charge.review_id === approvingReview) return;
  const review = await tx.selectFrom('reviews').select(['id', 'open']).where('id', '=', charge.review_id).executeTakeFirst();
  if (review?.open === true) {
    throw new CofferError(
      'payment_intent_unexpected_state',
      what === 'capture'
        ? `This payment is held for review (${review.id}): approve the review to capture it, or reject it.`
        // The reviewer decides on the amount they see: it cannot change under them.
        : `This payment is held for review (${review.id}): its authorization cannot be incremented until the review is closed.`,
    );
  }
}
