import { refundFailureReason } from './transformers.ts';
import type { Secret } from '../../platform/secret.ts';
import { verifySignatureHeader } from '../../platform/timestamped-signature.ts';
import { disputeStatuses, NotificationRejected, type ProviderNotification } from '../connector.ts';
import type { AcquirerNotification } from './wire.ts';
import { findCurrency } from '../../domain/currency.ts';
import { fromAcquirerAmount } from './transformers.ts';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Verifies and parses a notification from the card acquirer. Nothing in it is trusted before the signature
 * over the exact bytes received checks out and is recent; then every field Coffer uses is checked for type.
 * An unknown notification type is refused, never guessed at.
 */
export function parseCardNotification(
  rawBody: string,
  signature: string | undefined,
  secret: Secret<string>,
  nowSeconds: number,
  toleranceSeconds: number,
): ProviderNotification {
  const check = verifySignatureHeader(secret.reveal(), rawBody, signature, nowSeconds, toleranceSeconds);
  if (!check.ok) throw new NotificationRejected(`card notification refused: ${check.reason}`);
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch {
    throw new NotificationRejected('card notification is not JSON');
  }
  if (!isRecord(body) || typeof body.id !== 'string' || typeof body.type !== 'string') {
    throw new NotificationRejected('card notification has an unexpected shape');
  }
  const notification = body as unknown as AcquirerNotification;
  switch (notification.type) {
    case 'payment.authentication_ended': {
      const payment = notification.payment;
      if (!isRecord(payment) || typeof payment.id !== 'string' || typeof payment.reference !== 'string') {
        throw new NotificationRejected('card notification payment has an unexpected shape');
      }
      return { type: 'payment.authentication_ended', notificationId: notification.id, chargeReference: payment.reference, paymentReference: payment.id };
    }
    case 'refund.failed':
      return refundFailed(notification);
    case 'dispute.created':
    case 'dispute.updated':
    case 'dispute.closed':
      return disputeChanged(notification, notification.type);
    default:
      throw new NotificationRejected(`card notification type ${String(notification.type)} is not known`);
  }
}

function refundFailed(notification: AcquirerNotification): ProviderNotification {
  const refund = notification.refund;
  if (!isRecord(refund) || typeof refund.reference !== 'string' || typeof refund.id !== 'string' || !Number.isSafeInteger(refund.amount)
      || typeof refund.currency !== 'string') {
    throw new NotificationRejected('card notification refund has an unexpected shape');
  }
  const currency = findCurrency(refund.currency);
  if (currency === undefined) throw new NotificationRejected('card notification names an unknown currency');
  return {
    type: 'refund.failed',
    notificationId: notification.id,
    reference: refund.reference,
    providerReference: refund.id,
    amountMinor: fromAcquirerAmount(refund.amount, currency),
    currency: refund.currency,
    failureReason: refundFailureReason(typeof refund.failure_reason === 'string' ? refund.failure_reason : 'unknown'),
  };
}

function disputeChanged(notification: AcquirerNotification, type: 'dispute.created' | 'dispute.updated' | 'dispute.closed'): ProviderNotification {
  const dispute = notification.dispute;
  if (!isRecord(dispute) || typeof dispute.id !== 'string' || typeof dispute.reference !== 'string' || typeof dispute.payment !== 'string'
      || !Number.isSafeInteger(dispute.amount) || typeof dispute.currency !== 'string' || typeof dispute.reason !== 'string') {
    throw new NotificationRejected('card notification dispute has an unexpected shape');
  }
  const status = disputeStatuses.find((known) => known === dispute.status);
  if (status === undefined) throw new NotificationRejected(`card notification dispute status ${String(dispute.status)} is not known`);
  const currency = findCurrency(dispute.currency);
  if (currency === undefined) throw new NotificationRejected('card notification names an unknown currency');
  return {
    type,
    notificationId: notification.id,
    chargeReference: dispute.reference,
    paymentReference: dispute.payment,
    providerReference: dispute.id,
    amountMinor: fromAcquirerAmount(dispute.amount, currency),
    currency: dispute.currency,
    status,
    reason: dispute.reason,
    networkReasonCode: typeof dispute.network_reason_code === 'string' ? dispute.network_reason_code : null,
  };
}
