import type { NotificationFaults } from '../../sandbox-faults.ts';
import type { SandboxAlipayTradeRow } from './tables.ts';
import { alipayTime, alipayTimeWithMs, formatYuan, rsa2Sign, signContent } from './wire-format.ts';

/**
 * The form Alipay posts to a merchant's notify_url (`notify_type=trade_status_sync`), built from the trade as it
 * stands. Fields without a value are left out, never sent empty: the SDK's `checkNotifySignV2` signs whatever
 * keys it receives, so an empty field would break verification. A refund's notification keeps the trade's
 * status (TRADE_SUCCESS, or TRADE_CLOSED once fully refunded) and adds `refund_fee` (cumulative), `gmt_refund`
 * and `out_biz_no` (the refund's out_request_no).
 */
export interface NotificationContent {
  trade: SandboxAlipayTradeRow;
  sellerId: string;
  notifyId: string;
  nowMs: number;
  refund?: { outRequestNo: string; gmtRefundMs: number } | undefined;
}

export function notificationParams(content: NotificationContent): Record<string, string> {
  const { trade } = content;
  const total = formatYuan(trade.total_cents);
  const params: Record<string, string> = {
    notify_time: alipayTime(content.nowMs),
    notify_type: 'trade_status_sync',
    notify_id: content.notifyId,
    app_id: trade.app_id,
    auth_app_id: trade.app_id,
    charset: 'utf-8',
    version: '1.0',
    sign_type: 'RSA2',
    trade_no: trade.trade_no,
    out_trade_no: trade.out_trade_no,
    seller_id: content.sellerId,
    trade_status: trade.status,
    total_amount: total,
    subject: trade.subject,
    gmt_create: alipayTime(trade.gmt_create.getTime()),
  };
  if (trade.buyer_id !== null) params.buyer_id = trade.buyer_id;
  if (trade.gmt_payment !== null) {
    Object.assign(params, {
      gmt_payment: alipayTime(trade.gmt_payment.getTime()),
      receipt_amount: total,
      invoice_amount: total,
      buyer_pay_amount: total,
      point_amount: '0.00',
      fund_bill_list: JSON.stringify([{ amount: total, fundChannel: 'ALIPAYACCOUNT' }]),
    });
  }
  if (trade.gmt_close !== null) params.gmt_close = alipayTime(trade.gmt_close.getTime());
  if (content.refund !== undefined) {
    Object.assign(params, {
      refund_fee: formatYuan(trade.refund_fee_cents),
      gmt_refund: alipayTimeWithMs(content.refund.gmtRefundMs),
      out_biz_no: content.refund.outRequestNo,
    });
  }
  return params;
}

/** A different base64 character at the same place: the signature is then wrong by one byte. */
function flipFirstCharacter(signature: string): string {
  return `${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
}

/** The last digit of the amount changed (one byte): what an attacker raising or lowering an amount would do. */
function alterAmount(amount: string): string {
  const last = Number(amount.at(-1));
  return `${amount.slice(0, -1)}${(last + 1) % 10}`;
}

/**
 * The form body as sent: signed over the sorted parameters without `sign` and `sign_type`, then, when a test asks,
 * tampered after signing. For Alipay, whose notifications carry no ciphertext, WeChat's `ciphertext` and `tag`
 * tampering spoil the signature instead, so that any requested tampering makes the notification not genuine.
 */
export function signedNotificationBody(params: Record<string, string>, alipayPrivateKeyPem: string, tamper: NotificationFaults['tamper']): string {
  const signature = rsa2Sign(signContent(params, ['sign', 'sign_type']), alipayPrivateKeyPem);
  const sent: Record<string, string> = { ...params, sign: signature };
  switch (tamper) {
    case undefined:
      break;
    case 'amount':
      sent.total_amount = alterAmount(params.total_amount ?? '0.00');
      break;
    case 'signature':
    case 'ciphertext':
    case 'tag':
      sent.sign = flipFirstCharacter(signature);
      break;
  }
  return new URLSearchParams(sent).toString();
}
