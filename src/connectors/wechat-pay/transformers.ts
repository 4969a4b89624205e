import type { CurrencyInfo } from '../../domain/currency.ts';
import { assert, assertNever } from '../../platform/assert.ts';
import type { RefundResult } from '../connector.ts';
import type { WalletTradeRequest, WalletTradeState } from '../wallet.ts';
import { weChatTime, type H5Order, type JsapiOrder, type NativeOrder, type RefundResource, type TransactionResource } from './wire.ts';

/**
 * Conversions between Coffer's types and WeChat Pay's wire. WeChat takes CNY only, in integer fen; Coffer's CNY
 * amounts are in the same unit (ISO and API exponent 2), so the conversion is a check and a change of type, done
 * here and nowhere else. Every status WeChat documents is mapped by an exhaustive switch; one it adds later is
 * `unknown`, never guessed.
 */
export const weChatCurrency = 'cny';

/** WeChat's `amount.total` is a signed 32-bit integer. */
const fenMax = 2_147_483_647n;

export function toFen(amountMinor: bigint, currency: CurrencyInfo): number {
  assert(currency.code === weChatCurrency, 'WeChat Pay amounts are CNY (the connector refuses others before converting)');
  assert(currency.apiExponent === 2 && currency.isoExponent === 2, 'CNY has two decimals in the currency table');
  assert(amountMinor > 0n && amountMinor <= fenMax, 'a WeChat Pay amount is between 1 fen and the 32-bit maximum');
  return Number(amountMinor);
}

export function fromFen(fen: number): bigint {
  assert(Number.isSafeInteger(fen), 'WeChat amounts are integers (checked by the wire schema)');
  return BigInt(fen);
}

/** Cuts text to at most `bytesMax` bytes of UTF-8 without splitting a character (WeChat counts bytes). */
export function truncateUtf8(text: string, bytesMax: number): string {
  let bytes = 0;
  let out = '';
  for (const char of text) {
    bytes += Buffer.byteLength(char, 'utf8');
    if (bytes > bytesMax) break;
    out += char;
  }
  return out;
}

/** The order as WeChat's native, jsapi and h5 calls take it. The flow and its fields were checked by the caller. */
export function toOrder(
  request: WalletTradeRequest,
  account: { appid: string; mchid: string },
): NativeOrder | JsapiOrder | H5Order {
  const common = {
    appid: account.appid,
    mchid: account.mchid,
    // WeChat allows 127 bytes; a longer subject is cut rather than refused.
    description: truncateUtf8(request.subject, 127) || request.reference,
    out_trade_no: request.reference,
    time_expire: weChatTime(request.expiresAt.getTime()),
    notify_url: request.notifyUrl,
    amount: { total: toFen(request.amountMinor, request.currency), currency: 'CNY' as const },
  };
  if (request.flow === 'jsapi') return { ...common, payer: { openid: request.payerId ?? '' } };
  if (request.flow === 'h5') return { ...common, scene_info: { payer_client_ip: request.clientIp ?? '', h5_info: { type: 'Wap' } } };
  return common;
}

/** WeChat's trade states, as documented for the query and the TRANSACTION.* callbacks. */
const tradeStates = ['NOTPAY', 'USERPAYING', 'SUCCESS', 'REFUND', 'CLOSED', 'REVOKED', 'PAYERROR'] as const;
type TradeState = (typeof tradeStates)[number];

/**
 * Maps a trade's state. REFUND means the trade was paid and then (partly) refunded: the payment stands. A paid
 * trade must carry WeChat's transaction id, or it is not believed.
 */
export function mapTradeState(resource: TransactionResource): WalletTradeState {
  const state: TradeState | undefined = tradeStates.find((known) => known === resource.trade_state);
  if (state === undefined) return { status: 'unknown', reason: `unrecognized WeChat Pay trade_state ${resource.trade_state}` };
  switch (state) {
    case 'NOTPAY':
    case 'USERPAYING':
      return { status: 'pending' };
    case 'SUCCESS':
    case 'REFUND': {
      if (resource.transaction_id === undefined) return { status: 'unknown', reason: `trade_state ${state} without a transaction_id` };
      const paidAtMs = resource.success_time === undefined ? Number.NaN : Date.parse(resource.success_time);
      return {
        status: 'paid',
        providerReference: resource.transaction_id,
        amountMinor: fromFen(resource.amount.total),
        paidAt: Number.isFinite(paidAtMs) ? new Date(paidAtMs) : null,
      };
    }
    case 'CLOSED':
    case 'REVOKED':
      return { status: 'closed' };
    case 'PAYERROR':
      return { status: 'failed', code: 'PAYERROR', message: resource.trade_state_desc ?? 'the payment failed at WeChat Pay' };
    default:
      return assertNever(state, 'WeChat Pay trade state');
  }
}

/** What Coffer expects WeChat to echo about a trade. */
export interface ExpectedTrade {
  reference: string;
  account: string;
  amountMinor: bigint;
}

/** Maps a queried trade after checking it is the one we asked about, for the amount we expect. */
export function toTradeState(resource: TransactionResource, expected: ExpectedTrade): WalletTradeState {
  const mismatch = tradeMismatch(resource, expected);
  return mismatch === null ? mapTradeState(resource) : { status: 'unknown', reason: mismatch };
}

export function tradeMismatch(resource: TransactionResource, expected: ExpectedTrade): string | null {
  if (resource.out_trade_no !== expected.reference) return `WeChat Pay answered about out_trade_no ${resource.out_trade_no}, not ${expected.reference}`;
  if (resource.mchid !== expected.account) return `WeChat Pay answered for mchid ${resource.mchid}, not ${expected.account}`;
  if (fromFen(resource.amount.total) !== expected.amountMinor) {
    return `amount mismatch: WeChat Pay says amount.total ${resource.amount.total} fen, Coffer expects ${expected.amountMinor}`;
  }
  if (resource.amount.currency !== undefined && resource.amount.currency !== 'CNY') {
    return `currency mismatch: WeChat Pay says ${resource.amount.currency}, Coffer expects CNY`;
  }
  return null;
}

/** WeChat's refund statuses. */
const refundStatuses = ['PROCESSING', 'SUCCESS', 'ABNORMAL', 'CLOSED'] as const;
export type WeChatRefundStatus = (typeof refundStatuses)[number];

export function findRefundStatus(status: string): WeChatRefundStatus | undefined {
  return refundStatuses.find((known) => known === status);
}

export interface ExpectedRefund {
  outRefundNo: string;
  outTradeNo: string;
  amountMinor: bigint;
  totalMinor: bigint;
}

/**
 * Maps a refund after checking WeChat echoes the refund we asked for. PROCESSING has no place in a refund result:
 * it is `unknown` ("refund processing"), so that recovery asks again until it settles. ABNORMAL (the shopper's
 * account cannot take the money back; the merchant must act at WeChat) and CLOSED are failures.
 */
export function toRefundResult(resource: RefundResource, expected: ExpectedRefund): RefundResult {
  if (resource.out_refund_no !== expected.outRefundNo || resource.out_trade_no !== expected.outTradeNo) {
    return { status: 'unknown', reason: `WeChat Pay answered about refund ${resource.out_refund_no} of ${resource.out_trade_no}` };
  }
  if (fromFen(resource.amount.refund) !== expected.amountMinor || fromFen(resource.amount.total) !== expected.totalMinor
    || resource.amount.currency !== 'CNY') {
    return {
      status: 'unknown',
      reason: `amount mismatch: WeChat Pay says refund ${resource.amount.refund} of ${resource.amount.total} ${resource.amount.currency}, `
        + `Coffer expects ${expected.amountMinor} of ${expected.totalMinor} CNY`,
    };
  }
  const status = findRefundStatus(resource.status);
  if (status === undefined) return { status: 'unknown', reason: `unrecognized WeChat Pay refund status ${resource.status}` };
  switch (status) {
    case 'PROCESSING':
      return { status: 'unknown', reason: 'refund processing' };
    case 'SUCCESS':
      return { status: 'succeeded', providerReference: resource.refund_id };
    case 'ABNORMAL':
      // The money has left the merchant's balance but did not reach the shopper (a closed card): it is finished by
      // hand on WeChat's merchant platform. Not a failure: releasing the amount could refund the shopper twice.
      return { status: 'unknown', reason: 'refund abnormal: finish it on the WeChat Pay merchant platform' };
    case 'CLOSED':
      return { status: 'failed', providerReference: resource.refund_id, failureReason: status };
    default:
      return assertNever(status, 'WeChat Pay refund status');
  }
}
