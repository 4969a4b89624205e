import { NotificationRejected, type WalletProvider } from '../connectors/connector.ts';
import type { IncomingNotification, NotificationAnswer, WalletNotification } from '../connectors/wallet.ts';
import { recordAudit } from '../store/audit.ts';
import type { ChargeRow } from '../store/database.ts';
import type { Services, Tx } from './context.ts';
import { inTransaction } from './transaction.ts';
import { limits } from '../limits.ts';
import { recordWalletResolution, resolutionOf } from './wallet-payments.ts';
import { recordLatePayment } from './wallet-late-payments.ts';
import { jobTrail } from '../jobs/system-trail.ts';

/** A notification that was genuine but cannot be applied: refused (the provider sends it again) and audited. */
class NotificationRefused extends Error {
  override readonly name = 'NotificationRefused';
  constructor(readonly reason: string, readonly charge: ChargeRow | undefined) {
    super(reason);
  }
}

/** Coffer's references are ids like `ch_…`: anything else in a rejected notification is not worth looking up. */
function referenceHint(rawBody: string): string | undefined {
  return /\bch_[A-Za-z0-9]{8,40}\b/.exec(rawBody)?.[0];
}

/**
 * Applies a notification from Alipay or WeChat Pay, at most once, and says how to answer the provider. Only a
 * notification the connector has verified (signature, account, and for WeChat the decryption) is believed. One
 * that fails verification changes nothing: it is audited as a security event, and if it names one of Coffer's
 * pending payments, that payment is queried at the provider now instead (only the provider's own answer moves
 * it). A genuine one that does not match the payment (amount, currency) is refused and audited the same way.
 * The answer "received" is given only after the effect is committed.
 */
export async function handleWalletNotification(
  services: Services,
  provider: WalletProvider,
  livemode: boolean,
  incoming: IncomingNotification,
): Promise<NotificationAnswer> {
  const connector = services.connectors.wallet(provider, livemode);
  let notification: WalletNotification;
  try {
    notification = connector.parseNotification(incoming);
  } catch (error) {
    if (!(error instanceof NotificationRejected)) throw error;
    await refuseUnverified(services, provider, livemode, error.message, referenceHint(incoming.rawBody));
    return connector.notificationAnswer(false);
  }
  try {
    await inTransaction(services.db, (tx) => apply(tx, services, provider, livemode, notification));
  } catch (error) {
    if (!(error instanceof NotificationRefused)) throw error;
    await refuse(services, provider, livemode, error.reason, error.charge);
    return connector.notificationAnswer(false);
  }
  return connector.notificationAnswer(true);
}

/**
 * A notification that failed verification: nothing in it is believed, so the audit record names no merchant or
 * payment. The payments it may be about are asked about at the provider soon instead: the one it names (if any
 * pending one), else a bounded batch of this provider's pending payments; a payment already due within the
 * interval is left as it is, so that a flood of forgeries cannot make Coffer ask more than once per interval.
 */
async function refuseUnverified(services: Services, provider: WalletProvider, livemode: boolean, reason: string, hint: string | undefined): Promise<void> {
  const now = new Date(services.clock.nowMs());
  services.logger.warn({ provider, livemode, reason }, 'provider notification failed verification');
  await recordAudit(services.db, {
    merchantId: null, livemode, actorType: 'system', actorId: `${provider}-notification`, action: 'provider_notification.refuse',
    objectType: null, objectId: null, outcome: 'failure', requestId: null, origin: null,
    details: { provider, reason, security_event: true, verified: false }, occurredAt: now,
  });
  const soon = new Date(now.getTime() + limits.walletSyncFirstMs * 6);
  let due = services.db.selectFrom('charges').select('id').where('status', '=', 'pending').where('provider', '=', provider)
    .where('livemode', '=', livemode).where('provider_sync_at', '>', soon);
  if (hint !== undefined) due = due.where('id', '=', hint);
  await services.db.updateTable('charges').set({ provider_sync_at: now })
    .where('id', 'in', due.orderBy('created_at', 'desc').limit(limits.walletForgedNotificationBatchMax)).execute();
}

/** Audits a refused (genuine but not matching) notification and brings its payment's query at the provider forward. */
async function refuse(services: Services, provider: WalletProvider, livemode: boolean, reason: string, charge: ChargeRow | undefined): Promise<void> {
  const now = new Date(services.clock.nowMs());
  services.logger.warn({ provider, livemode, reason, charge: charge?.id }, 'provider notification refused');
  await recordAudit(services.db, {
    merchantId: charge?.merchant_id ?? null,
    livemode,
    actorType: 'system',
    actorId: `${provider}-notification`,
    action: 'provider_notification.refuse',
    objectType: charge === undefined ? null : 'charge',
    objectId: charge?.id ?? null,
    outcome: 'failure',
    requestId: null,
    origin: null,
    details: { provider, reason, security_event: true },
    occurredAt: now,
  });
  if (charge !== undefined) {
    await services.db.updateTable('charges').set({ provider_sync_at: now }).where('id', '=', charge.id).where('status', '=', 'pending').execute();
  }
}

async function apply(tx: Tx, services: Services, provider: WalletProvider, livemode: boolean, notification: WalletNotification): Promise<void> {
  const reference = notification.kind === 'payment' ? notification.reference : notification.refundReference;
  const first = await tx.insertInto('provider_notifications')
    .values({ provider, notification_id: notification.notificationId, livemode, reference })
    .onConflict((oc) => oc.doNothing()).returning('notification_id').executeTakeFirst();
  // Already applied: a duplicate delivery is answered as received and changes nothing.
  if (first === undefined) return;
  // Read without a lock: recording the outcome locks the PaymentIntent, then the charge, as every path does.
  const charge = await tx.selectFrom('charges').selectAll().where('id', '=', notification.reference)
    .where('provider', '=', provider).where('livemode', '=', livemode).executeTakeFirst();
  if (charge === undefined) throw new NotificationRefused(`no ${provider} payment ${notification.reference}`, undefined);
  if (notification.kind === 'refund') {
    // Refunds are settled by the refund's own answer or by the recovery job's query; the notification brings that forward.
    await tx.updateTable('refunds').set({ updated_at: new Date(0) }).where('id', '=', notification.refundReference)
      .where('charge_id', '=', charge.id).where('status', '=', 'pending').execute();
    return;
  }
  if (notification.totalMinor !== charge.amount || notification.currency.toLowerCase() !== charge.currency) {
    throw new NotificationRefused(
      `amount ${notification.totalMinor} ${notification.currency} does not match the payment's ${charge.amount} ${charge.currency}`,
      charge,
    );
  }
  const resolution = resolutionOf(notification.state);
  const now = new Date(services.clock.nowMs());
  // Not final yet (waiting for the shopper), or already recorded: statuses never move backwards.
  if (resolution !== undefined && charge.status === 'pending') {
    const trail = await jobTrail({ ...services, db: tx }, `${provider}-notification`, charge.merchant_id);
    await recordWalletResolution(tx, charge, resolution, trail, now);
  }
  // Paid, for an attempt Coffer recorded as failed (before this notification, or while it was being applied): the
  // money goes back to the shopper. Checked under the charge's lock, so a failure recorded meanwhile is seen.
  if (notification.state.status === 'paid') await recordLatePayment(tx, services, charge.id, notification.state.providerReference, now);
}
