import type { CurrencyInfo } from '../../domain/currency.ts';
import { assert, assertNever } from '../../platform/assert.ts';
import type { WalletTradeState } from '../wallet.ts';

/**
 * Conversions between Coffer's types and Alipay's wire (v2 gateway, snake_case fields): amounts are yuan strings
 * ("12.34") there and integer fen (CNY's minor unit) here, converted only in this file, exactly, with bigint.
 * Alipay's trade statuses are mapped exhaustively; one this code does not know is `unknown`, never a guess.
 */

/** The only currency Alipay's domestic v2 gateway takes. */
export const alipayCurrency = 'cny';
/** Alipay's range for an amount: 0.01 to 100000000 yuan. */
const fenMax = 100_000_000n * 100n;

export function isAlipayAmount(amountMinor: bigint): boolean {
  return amountMinor >= 1n && amountMinor <= fenMax;
}

/** Fen to Alipay's yuan string, with two decimals (`1234n` → `"12.34"`). */
export function toYuan(amountMinor: bigint, currency: CurrencyInfo): string {
  assert(currency.code === alipayCurrency && currency.apiExponent === 2, 'Alipay amounts are CNY, two decimals');
  assert(amountMinor >= 0n, 'amounts sent to Alipay are not negative');
  return `${amountMinor / 100n}.${(amountMinor % 100n).toString().padStart(2, '0')}`;
}

const yuanPattern = /^(0|[1-9]\d{0,9})(?:\.(\d{1,2}))?$/;

/**
 * A yuan amount Alipay sent, in fen; undefined unless it is exactly a plain decimal with at most two places (no
 * sign, exponent, spaces or a third decimal), so that an echo is compared as what it says, not as a float.
 */
export function fromYuan(value: unknown): bigint | undefined {
  if (typeof value !== 'string') return undefined;
  const match = yuanPattern.exec(value);
  if (match === null) return undefined;
  return BigInt(match[1] ?? '0') * 100n + BigInt((match[2] ?? '').padEnd(2, '0'));
}

const beijingOffsetMs = 8 * 3_600_000;

/** An instant as Alipay writes it: `yyyy-MM-dd HH:mm:ss`, Beijing time. */
export function toAlipayTime(date: Date): string {
  return new Date(date.getTime() + beijingOffsetMs).toISOString().slice(0, 19).replace('T', ' ');
}

const timePattern = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}))?$/;

/** The instant an Alipay time names (with optional milliseconds, as in `gmt_refund`); undefined if it is not one. */
export function fromAlipayTime(value: unknown): Date | undefined {
  if (typeof value !== 'string') return undefined;
  const match = timePattern.exec(value);
  if (match === null) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, Number(match[7] ?? '0')) - beijingOffsetMs;
  return toAlipayTime(new Date(ms)) === value.slice(0, 19) ? new Date(ms) : undefined;
}

/** Alipay refuses `/`, `=` and `&` in a subject and takes at most 256 characters. */
export function toSubject(subject: string): string {
  const cleaned = subject.replace(/[/=&]/g, ' ').trim();
  return [...(cleaned === '' ? 'Order' : cleaned)].slice(0, 256).join('');
}

export const alipayTradeStatuses = ['WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_FINISHED', 'TRADE_CLOSED'] as const;
export type AlipayTradeStatus = (typeof alipayTradeStatuses)[number];

export function parseTradeStatus(value: unknown): AlipayTradeStatus | undefined {
  return alipayTradeStatuses.find((known) => known === value);
}

/** What a trade's fields say about it, from a query answer or a notification. */
export interface TradeFacts {
  status: AlipayTradeStatus;
  tradeNo: string;
  totalMinor: bigint;
  /** When it was paid (`send_pay_date` in a query, `gmt_payment` in a notification); null if never. */
  paidAt: Date | null;
  /** Refunded so far (`refund_fee`); zero when absent. */
  refundedMinor: bigint;
}

/**
 * Alipay's status in Coffer's terms. TRADE_CLOSED means either closed unpaid or paid and then fully refunded:
 * a payment time or a refunded amount tells the second apart, which is still `paid` (refunds do not undo it).
 */
export function toTradeState(facts: TradeFacts): Exclude<WalletTradeState, { status: 'unknown' | 'failed' }> {
  const paid = { status: 'paid' as const, providerReference: facts.tradeNo, amountMinor: facts.totalMinor, paidAt: facts.paidAt };
  switch (facts.status) {
    case 'WAIT_BUYER_PAY':
      return { status: 'pending' };
    case 'TRADE_SUCCESS':
    case 'TRADE_FINISHED':
      return paid;
    case 'TRADE_CLOSED':
      return facts.paidAt !== null || facts.refundedMinor > 0n ? paid : { status: 'closed' };
    default:
      return assertNever(facts.status, 'Alipay trade status');
  }
}

/** How an Alipay answer's `code` reads: done; a business refusal; our request was wrong; or the outcome is unknown. */
export type AnswerKind =
  | { kind: 'success' }
  | { kind: 'business'; subCode: string; message: string }
  | { kind: 'invalid'; subCode: string; message: string }
  | { kind: 'unavailable'; reason: string };

export function classifyAnswer(fields: Record<string, unknown>): AnswerKind {
  const code = fields.code;
  const subCode = typeof fields.sub_code === 'string' ? fields.sub_code : '';
  const message = `${subCode} ${typeof fields.sub_msg === 'string' ? fields.sub_msg : String(fields.msg ?? '')}`.trim();
  switch (code) {
    case '10000':
      return { kind: 'success' };
    case '20000':
      return { kind: 'unavailable', reason: `Alipay is unavailable (20000 ${message})` };
    case '40004':
      // ACQ.SYSTEM_ERROR is Alipay's "try again, then query": nothing is known.
      return subCode === 'ACQ.SYSTEM_ERROR' || subCode === ''
        ? { kind: 'unavailable', reason: `Alipay answered 40004 ${message}` }
        : { kind: 'business', subCode, message };
    case '40001':
    case '40002':
    case '40003':
    case '40006':
      return { kind: 'invalid', subCode: subCode === '' ? String(code) : subCode, message };
    default:
      return { kind: 'unavailable', reason: `unrecognized Alipay answer code ${String(code)}` };
  }
}
