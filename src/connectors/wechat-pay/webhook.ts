import type { KeyObject } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { Aes, Formatter, Rsa } from 'wechatpay-axios-plugin';
import { assertNever } from '../../platform/assert.ts';
import type { Secret } from '../../platform/secret.ts';
import { NotificationRejected } from '../connector.ts';
import type { IncomingNotification, WalletNotification } from '../wallet.ts';
import { findRefundStatus, fromFen, mapTradeState, weChatCurrency } from './transformers.ts';
import {
  CallbackEnvelope, RefundNotice, TransactionResource, probeSignaturePrefix, signatureHeaders, signatureSkewSecondsMax,
} from './wire.ts';

/**
 * Verifies and parses a WeChat Pay callback. Nothing in it is believed before the signature over the exact bytes
 * received checks out with the WeChat Pay public key that `Wechatpay-Serial` names, its timestamp is recent, and
 * the resource decrypts and authenticates with the APIv3 key (AES-256-GCM: a changed byte of ciphertext or tag
 * fails). WeChat's deliberate probe signatures (`WECHATPAY/SIGNTEST/…`) are refused, as WeChat expects. Then the
 * callback must name our merchant, and every field used is checked for type; an unknown event is refused.
 */
export interface NotificationKeys {
  account: string;
  platformPublicKeyId: string;
  platformPublicKey: KeyObject;
  apiV3Key: Secret<string>;
}

function header(headers: Record<string, string | undefined>, name: string): string | undefined {
  const found = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
  return found?.[1];
}

export function parseWeChatPayNotification(request: IncomingNotification, keys: NotificationKeys, nowSeconds: number): WalletNotification {
  verifySignature(request, keys, nowSeconds);
  let body: unknown;
  try {
    body = JSON.parse(request.rawBody);
  } catch {
    throw new NotificationRejected('WeChat Pay notification is not JSON');
  }
  if (!Value.Check(CallbackEnvelope, body)) throw new NotificationRejected('WeChat Pay notification has an unexpected shape');
  const resource = decrypt(body, keys.apiV3Key);
  if (body.event_type === 'TRANSACTION.SUCCESS') return paymentNotification(body, resource, keys.account);
  if (body.event_type === 'REFUND.SUCCESS' || body.event_type === 'REFUND.ABNORMAL' || body.event_type === 'REFUND.CLOSED') {
    return refundNotification(body, resource, keys.account);
  }
  throw new NotificationRejected(`WeChat Pay notification event_type ${body.event_type} is not known`);
}

function verifySignature(request: IncomingNotification, keys: NotificationKeys, nowSeconds: number): void {
  const timestamp = header(request.headers, signatureHeaders.timestamp);
  const nonce = header(request.headers, signatureHeaders.nonce);
  const signature = header(request.headers, signatureHeaders.signature);
  const serial = header(request.headers, signatureHeaders.serial);
  if (timestamp === undefined || nonce === undefined || signature === undefined || serial === undefined) {
    throw new NotificationRejected('WeChat Pay notification lacks its Wechatpay-* signature headers');
  }
  if (signature.startsWith(probeSignaturePrefix)) throw new NotificationRejected('WeChat Pay signature probe (WECHATPAY/SIGNTEST/) refused');
  if (serial !== keys.platformPublicKeyId) throw new NotificationRejected(`WeChat Pay notification signed by unknown key ${serial}`);
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > signatureSkewSecondsMax) {
    throw new NotificationRejected('WeChat Pay notification timestamp is more than five minutes from now');
  }
  let valid = false;
  try {
    valid = Rsa.verify(Formatter.response(timestamp, nonce, request.rawBody), signature, keys.platformPublicKey);
  } catch {
    valid = false;
  }
  if (!valid) throw new NotificationRejected('WeChat Pay notification signature is not valid');
}

function decrypt(envelope: CallbackEnvelope, apiV3Key: Secret<string>): unknown {
  const { ciphertext, nonce, associated_data: associatedData } = envelope.resource;
  let plaintext: string;
  try {
    plaintext = Aes.AesGcm.decrypt(ciphertext, Buffer.from(apiV3Key.reveal(), 'utf8'), nonce, associatedData ?? '');
  } catch {
    throw new NotificationRejected('WeChat Pay notification resource does not decrypt with the APIv3 key (tampered or wrong key)');
  }
  try {
    return JSON.parse(plaintext);
  } catch {
    throw new NotificationRejected('WeChat Pay notification resource is not JSON');
  }
}

function paymentNotification(envelope: CallbackEnvelope, resource: unknown, account: string): WalletNotification {
  if (envelope.resource.original_type !== 'transaction' || !Value.Check(TransactionResource, resource)) {
    throw new NotificationRejected('WeChat Pay TRANSACTION notification resource has an unexpected shape');
  }
  if (resource.mchid !== account) throw new NotificationRejected(`WeChat Pay notification is for mchid ${resource.mchid}, not ${account}`);
  if (resource.amount.currency !== undefined && resource.amount.currency !== 'CNY') {
    throw new NotificationRejected(`WeChat Pay notification currency ${resource.amount.currency} is not CNY`);
  }
  const state = mapTradeState(resource);
  if (state.status === 'unknown') throw new NotificationRejected(`WeChat Pay notification: ${state.reason}`);
  return {
    kind: 'payment',
    notificationId: envelope.id,
    reference: resource.out_trade_no,
    account: resource.mchid,
    state,
    totalMinor: fromFen(resource.amount.total),
    currency: weChatCurrency,
  };
}

function refundNotification(envelope: CallbackEnvelope, resource: unknown, account: string): WalletNotification {
  if (envelope.resource.original_type !== 'refund' || !Value.Check(RefundNotice, resource)) {
    throw new NotificationRejected('WeChat Pay REFUND notification resource has an unexpected shape');
  }
  if (resource.mchid !== account) throw new NotificationRejected(`WeChat Pay notification is for mchid ${resource.mchid}, not ${account}`);
  const status = findRefundStatus(resource.refund_status);
  if (status === undefined || envelope.event_type !== `REFUND.${status}`) {
    throw new NotificationRejected(`WeChat Pay ${envelope.event_type} notification says refund_status ${resource.refund_status}`);
  }
  const common = {
    kind: 'refund' as const,
    notificationId: envelope.id,
    refundReference: resource.out_refund_no,
    reference: resource.out_trade_no,
    account: resource.mchid,
    amountMinor: fromFen(resource.amount.refund),
  };
  switch (status) {
    case 'SUCCESS':
      return { ...common, status: 'succeeded', failureReason: null };
    case 'ABNORMAL':
      // Not final (see transformers.ts): the refund stays pending at Coffer until it is finished by hand.
      return { ...common, status: 'pending', failureReason: null };
    case 'CLOSED':
      return { ...common, status: 'failed', failureReason: status };
    case 'PROCESSING':
      return { ...common, status: 'pending', failureReason: null };
    default:
      return assertNever(status, 'WeChat Pay refund status');
  }
}
