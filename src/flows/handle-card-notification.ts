import { NotificationRejected, type ProviderNotification } from '../connectors/connector.ts';
import { chargeFunds, refundFailureTransfers } from '../domain/ledger.ts';
import { defaultApiVersion, parseApiVersion } from '../objects/api-version.ts';
import type { Services } from './context.ts';
import { finishWithLedger } from './ledger-work.ts';
import { lockCharge, recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { systemTrail } from './trail.ts';
import { recordDisputeClosed, recordDisputeEscalated, recordDisputeOpened } from './disputes.ts';
import { recordAttemptOutcome } from './record-attempt-outcome.ts';
import { jobTrail } from '../jobs/system-trail.ts';
import { resolveAttempt } from '../jobs/recover-in-flight.ts';
import { settleSetupAuthentication } from './setup-intents.ts';

/**
 * Handles a notification from the card acquirer (test mode: its sandbox): verified and parsed by the connector,
 * then applied at most once. A refund that fails after it had succeeded gives the money back to the merchant's
 * account it came from; a notification for a refund Coffer does not know, or that does not match it, is refused.
 */
export async function handleCardNotification(services: Services, livemode: boolean, rawBody: string, signature: string | undefined): Promise<void> {
  const notification = services.connectors.card(livemode).parseNotification(rawBody, signature);
  switch (notification.type) {
    case 'payment.authentication_ended':
      await recordAuthenticationEnded(services, livemode, notification);
      return;
    case 'refund.failed':
      await recordRefundFailure(services, notification);
      return;
    case 'dispute.created':
      await recordDisputeOpened(services, notification);
      return;
    case 'dispute.updated':
      await recordDisputeEscalated(services, notification);
      return;
    case 'dispute.closed':
      await recordDisputeClosed(services, notification);
      return;
  }
}

/**
 * The cardholder finished a challenge: the attempt is settled from the acquirer's own record of the payment (asked
 * now, outside any transaction, as the recovery job asks), as the shopper's return would settle it. An attempt already settled (the shopper
 * came back first) is left as it is; one the acquirer cannot speak for yet is left to the shopper or the recovery job.
 */
async function recordAuthenticationEnded(
  services: Services,
  livemode: boolean,
  notification: Extract<ProviderNotification, { type: 'payment.authentication_ended' }>,
): Promise<void> {
  // A SetupIntent's verification: its outcome is asked of the acquirer by the SetupIntent's own key.
  if (notification.chargeReference.startsWith('seti_')) {
    const intent = await settleSetupAuthentication(services, notification.chargeReference, 'card-acquirer-notification', livemode);
    if (intent === undefined) throw new NotificationRejected(`no SetupIntent ${notification.chargeReference}`);
    return;
  }
  const charge = await services.db.selectFrom('charges').selectAll().where('id', '=', notification.chargeReference)
    .where('provider', '=', 'card').where('livemode', '=', livemode).executeTakeFirst();
  if (charge === undefined) throw new NotificationRejected(`no card charge ${notification.chargeReference}`);
  if (charge.provider_reference !== null && charge.provider_reference !== notification.paymentReference) {
    throw new NotificationRejected(`charge ${charge.id} is not the acquirer's payment ${notification.paymentReference}`);
  }
  if (charge.status !== 'pending') return;
  const resolution = await resolveAttempt(services, charge);
  if (resolution === undefined) return;
  await recordAttemptOutcome(services, { scope: { merchantId: charge.merchant_id, livemode }, paymentIntentId: charge.payment_intent_id, chargeId: charge.id },
    resolution, await jobTrail(services, 'card-acquirer-notification', charge.merchant_id), undefined);
}

async function recordRefundFailure(services: Services, notification: Extract<ProviderNotification, { type: 'refund.failed' }>): Promise<void> {
  const now = new Date(services.clock.nowMs());
  await inTransaction(services.db, async (tx) => {
    const found = await tx.selectFrom('refunds').innerJoin('merchants', 'merchants.id', 'refunds.merchant_id')
      .select(['refunds.charge_id', 'merchants.default_api_version']).where('refunds.id', '=', notification.reference).executeTakeFirst();
    if (found === undefined) throw new NotificationRejected(`no refund ${notification.reference}`);
    const charge = await lockCharge(tx, found.charge_id);
    const refund = await tx.selectFrom('refunds').selectAll().where('id', '=', notification.reference).forUpdate().executeTakeFirstOrThrow();
    if (refund.amount !== notification.amountMinor || refund.currency !== notification.currency
        || (refund.provider_reference !== null && refund.provider_reference !== notification.providerReference)) {
      throw new NotificationRejected(`notification does not match refund ${refund.id}`);
    }
    if (refund.status === 'failed') return;
    const wasSucceeded = refund.status === 'succeeded';
    const scope = { merchantId: refund.merchant_id, livemode: refund.livemode };
    const refundAfter = await tx.updateTable('refunds').set({
      status: 'failed', failure_reason: notification.failureReason, provider_reference: notification.providerReference, updated_at: now,
    }).where('id', '=', refund.id).returningAll().executeTakeFirstOrThrow();
    const chargeAfter = await tx.updateTable('charges').set(
      wasSucceeded
        ? { amount_refunded: charge.amount_refunded - refund.amount, updated_at: now }
        : { amount_refunding: charge.amount_refunding - refund.amount, updated_at: now },
    ).where('id', '=', charge.id).returningAll().executeTakeFirstOrThrow();
    const trail = systemTrail('card-acquirer-notification', parseApiVersion(found.default_api_version) ?? defaultApiVersion);
    await recordChange(tx, trail, scope,
      { action: 'refund.fail', objectType: 'refund', objectId: refund.id, details: { failure_reason: notification.failureReason, notification: notification.notificationId } },
      [
        { type: 'refund.updated', refund: { before: refund, after: refundAfter } },
        { type: 'refund.failed', refund: { after: refundAfter } },
        { type: 'charge.refund.updated', refund: { before: refund, after: refundAfter } },
        ...(wasSucceeded ? [{ type: 'charge.updated', charge: { before: charge, after: chargeAfter } }] : []),
      ],
      now);
    if (!wasSucceeded || refund.debited_account === null) return;
    await finishWithLedger(tx, {
      context: { ...scope, currency: refund.currency, paymentIntentId: refund.payment_intent_id, chargeId: charge.id },
      // Back to where the charge's money is now (a refund made before settlement and failed after it pays into the
      // available funds).
      transfers: refundFailureTransfers(refund.id, refund.amount, chargeFunds(charge)),
    }, () => undefined);
  });
}
