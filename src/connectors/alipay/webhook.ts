import type { AlipaySdk } from 'alipay-sdk';
import { NotificationRejected } from '../connector.ts';
import type { IncomingNotification, WalletNotification } from '../wallet.ts';
import { alipayCurrency, fromAlipayTime, fromYuan, parseTradeStatus, toTradeState } from './transformers.ts';

/** More fields than Alipay's notifications carry (about 30) is refused before any work. */
const fieldsMax = 64;

function reject(reason: string): never {
  throw new NotificationRejected(`Alipay notification refused: ${reason}`);
}

/** The form's fields, each once: a repeated name could make the verified value and the used value differ. */
function formFields(incoming: IncomingNotification): Record<string, string> {
  const contentType = Object.entries(incoming.headers).find(([name]) => name.toLowerCase() === 'content-type')?.[1];
  if (contentType !== undefined && !contentType.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    reject(`content type ${contentType} is not a form`);
  }
  const fields: Record<string, string> = {};
  let count = 0;
  for (const [name, value] of new URLSearchParams(incoming.rawBody)) {
    count += 1;
    if (count > fieldsMax) reject('too many fields');
    if (Object.hasOwn(fields, name)) reject(`field ${name} appears twice`);
    fields[name] = value;
  }
  return fields;
}

function required(fields: Record<string, string>, name: string): string {
  const value = fields[name];
  if (value === undefined || value === '') reject(`${name} is missing`);
  return value;
}

/** An optional field that, when present, must parse; absent gives `fallback`. */
function optional<T>(fields: Record<string, string>, name: string, parse: (value: string) => T | undefined, fallback: T): T {
  const value = fields[name];
  if (value === undefined) return fallback;
  const parsed = parse(value);
  if (parsed === undefined) reject(`${name} ${value} is not valid`);
  return parsed;
}

/**
 * Verifies and parses a `trade_status_sync` notification. Nothing in it is believed before the RSA2 signature
 * (over the decoded fields without `sign` and `sign_type`) verifies with Alipay's public key, by the official
 * SDK's `checkNotifySignV2`; then it must be addressed to this app, and every amount, time and status must parse
 * strictly. Refund notifications are the trade's status with `refund_fee`: a fully refunded trade says
 * TRADE_CLOSED and is reported `paid` (refunds are learned from the refund answers, not from here).
 */
export function parseAlipayNotification(incoming: IncomingNotification, sdk: AlipaySdk, account: string): WalletNotification {
  const fields = formFields(incoming);
  let genuine: boolean;
  try {
    genuine = sdk.checkNotifySignV2(fields);
  } catch {
    genuine = false;
  }
  if (!genuine) reject('the signature does not verify with Alipay\'s public key');
  if (fields.notify_type !== 'trade_status_sync') reject(`notify_type ${String(fields.notify_type)} is not known`);
  const appId = required(fields, 'app_id');
  if (appId !== account) reject(`app_id ${appId} is not this account`);
  const status = parseTradeStatus(fields.trade_status);
  if (status === undefined) reject(`trade_status ${String(fields.trade_status)} is not known`);
  const totalMinor = fromYuan(required(fields, 'total_amount'));
  if (totalMinor === undefined || totalMinor <= 0n) reject(`total_amount ${String(fields.total_amount)} is not an amount`);
  const paidAt = optional(fields, 'gmt_payment', fromAlipayTime, null);
  const refundedMinor = optional(fields, 'refund_fee', fromYuan, 0n);
  if (refundedMinor > totalMinor) reject('refund_fee exceeds total_amount');
  const state = toTradeState({ status, tradeNo: required(fields, 'trade_no'), totalMinor, paidAt, refundedMinor });
  return {
    kind: 'payment',
    notificationId: required(fields, 'notify_id'),
    reference: required(fields, 'out_trade_no'),
    account: appId,
    state,
    totalMinor,
    currency: alipayCurrency,
  };
}
