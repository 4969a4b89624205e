import { invalidParameter, type Refusal } from './gateway-request.ts';
import { parseAlipayTime, parseYuan } from './wire-format.ts';

/**
 * The fields of `biz_content` each method reads, checked by Alipay's rules (lengths, characters, amounts in yuan
 * with at most two decimals). Fields a method does not read are ignored, as Alipay ignores them. Pure.
 */

export interface OrderRequest {
  outTradeNo: string;
  totalCents: bigint;
  subject: string;
  productCode: string;
  timeExpireMs: number;
}

/** Alipay: at most 64 letters, digits and underscores. */
const outTradeNoPattern = /^[A-Za-z0-9_]{1,64}$/;
const outRequestNoPattern = /^[A-Za-z0-9_.-]{1,64}$/;
/** Alipay forbids these in a subject ("不可使用特殊字符，如 /，=，& 等"). */
const subjectForbidden = /[/=&]/;
const subjectLengthMax = 256;
/** How long an order stays payable when the request does not say: Alipay's default for a QR trade. */
const defaultPayableMs = 2 * 3_600_000;
const payableMsMax = 15 * 24 * 3_600_000;

const productCodes = {
  'alipay.trade.precreate': ['FACE_TO_FACE_PAYMENT', 'QR_CODE_OFFLINE'],
  'alipay.trade.page.pay': ['FAST_INSTANT_TRADE_PAY'],
} as const;

function text(biz: Record<string, unknown>, name: string): string | undefined {
  const value = biz[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** `timeout_express` (`90m`, `2h`, `1d`, `1c` = end of today in Beijing) or `time_expire` (`yyyy-MM-dd HH:mm:ss`). */
function payableUntil(biz: Record<string, unknown>, nowMs: number): number | Refusal {
  const timeExpire = text(biz, 'time_expire');
  if (timeExpire !== undefined) {
    const ms = parseAlipayTime(timeExpire);
    if (ms === undefined || ms <= nowMs || ms - nowMs > payableMsMax) return invalidParameter('time_expire 格式错误或不在 1m~15d 之内');
    return ms;
  }
  const timeout = text(biz, 'timeout_express');
  if (timeout === undefined) return nowMs + defaultPayableMs;
  const match = /^([1-9]\d{0,4})([mhdc])$/.exec(timeout);
  if (match === null) return invalidParameter('timeout_express 格式错误');
  const count = Number(match[1]);
  if (match[2] === 'c') {
    if (count !== 1) return invalidParameter('timeout_express 只支持 1c');
    const beijingDayMs = 24 * 3_600_000;
    const beijingNow = nowMs + 8 * 3_600_000;
    return beijingNow - (beijingNow % beijingDayMs) + beijingDayMs - 8 * 3_600_000;
  }
  const unitMs = { m: 60_000, h: 3_600_000, d: 24 * 3_600_000 }[match[2] as 'm' | 'h' | 'd'];
  const ms = count * unitMs;
  return ms > payableMsMax ? invalidParameter('timeout_express 不能超过 15d') : nowMs + ms;
}

export function parseOrder(biz: Record<string, unknown>, method: keyof typeof productCodes, nowMs: number): OrderRequest | Refusal {
  const outTradeNo = text(biz, 'out_trade_no');
  if (outTradeNo === undefined || !outTradeNoPattern.test(outTradeNo)) return invalidParameter('out_trade_no 必填，64 位以内的字母、数字、下划线');
  const totalCents = parseYuan(biz.total_amount);
  if (totalCents === undefined) return invalidParameter('total_amount 必填，单位为元，精确到小数点后两位，取值范围 [0.01,100000000]');
  const subject = text(biz, 'subject');
  if (subject === undefined || [...subject].length > subjectLengthMax || subjectForbidden.test(subject)) {
    return invalidParameter('subject 必填，256 个字符以内，不可使用特殊字符 / = &');
  }
  const allowed: readonly string[] = productCodes[method];
  const productCode = text(biz, 'product_code') ?? (method === 'alipay.trade.precreate' ? 'FACE_TO_FACE_PAYMENT' : undefined);
  if (productCode === undefined || !allowed.includes(productCode)) return invalidParameter(`product_code 必须为 ${allowed.join(' 或 ')}`);
  const timeExpireMs = payableUntil(biz, nowMs);
  if (typeof timeExpireMs !== 'number') return timeExpireMs;
  return { outTradeNo, totalCents, subject, productCode, timeExpireMs };
}

/** Which trade a request names: `trade_no` wins when both are given, as at Alipay. */
export type TradeKey = { tradeNo: string } | { outTradeNo: string };

export function parseTradeKey(biz: Record<string, unknown>): TradeKey | Refusal {
  const tradeNo = text(biz, 'trade_no');
  if (tradeNo !== undefined) return /^\d{1,64}$/.test(tradeNo) ? { tradeNo } : invalidParameter('trade_no 格式错误');
  const outTradeNo = text(biz, 'out_trade_no');
  if (outTradeNo === undefined) return invalidParameter('trade_no 和 out_trade_no 不能同时为空');
  return outTradeNoPattern.test(outTradeNo) ? { outTradeNo } : invalidParameter('out_trade_no 格式错误');
}

export interface RefundRequestFields {
  refundCents: bigint;
  /** Null when absent: the refund is then of the whole trade, keyed by its out_trade_no. */
  outRequestNo: string | null;
}

export function parseRefund(biz: Record<string, unknown>): RefundRequestFields | Refusal {
  const refundCents = parseYuan(biz.refund_amount);
  if (refundCents === undefined) return invalidParameter('refund_amount 必填，单位为元，精确到小数点后两位');
  const outRequestNo = text(biz, 'out_request_no') ?? null;
  if (outRequestNo !== null && !outRequestNoPattern.test(outRequestNo)) return invalidParameter('out_request_no 格式错误');
  return { refundCents, outRequestNo };
}

export interface RefundQueryFields {
  outRequestNo: string;
  wantsRefundTime: boolean;
}

export function parseRefundQuery(biz: Record<string, unknown>): RefundQueryFields | Refusal {
  const outRequestNo = text(biz, 'out_request_no');
  if (outRequestNo === undefined || !outRequestNoPattern.test(outRequestNo)) return invalidParameter('out_request_no 必填');
  const options = biz.query_options;
  const wantsRefundTime = Array.isArray(options) && options.includes('gmt_refund_pay');
  return { outRequestNo, wantsRefundTime };
}
