/**
 * Rows of the Alipay sandbox's tables (migration 0018-alipay-sandbox.sql), as the `pg` driver and PGlite return
 * them in Coffer (int8 as bigint, timestamptz as Date). The sandbox reaches them with `sql` templates only, so it
 * runs on any Kysely instance and Coffer's `Database` type does not need to know them.
 */
export const tradeStatuses = ['WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_CLOSED', 'TRADE_FINISHED'] as const;
export type TradeStatus = (typeof tradeStatuses)[number];

export const tradeMethods = ['alipay.trade.precreate', 'alipay.trade.page.pay'] as const;
export type TradeMethod = (typeof tradeMethods)[number];

export interface SandboxAlipayTradeRow {
  trade_no: string;
  app_id: string;
  out_trade_no: string;
  method: TradeMethod;
  request_hash: string;
  product_code: string;
  subject: string;
  total_amount: string;
  total_cents: bigint;
  refund_fee_cents: bigint;
  notify_url: string | null;
  return_url: string | null;
  status: TradeStatus;
  scanned: boolean;
  qr_code: string | null;
  cashier_token: string;
  form_token: string;
  buyer_id: string | null;
  time_expire: Date;
  gmt_create: Date;
  gmt_payment: Date | null;
  gmt_close: Date | null;
  updated_at: Date;
}

export interface SandboxAlipayRefundRow {
  trade_no: string;
  out_request_no: string;
  refund_amount: string;
  refund_cents: bigint;
  /** The fields of the first answer, as JSON text. */
  response: string;
  gmt_refund: Date;
}

export interface SandboxAlipayNotificationRow {
  id: bigint;
  notify_id: string;
  trade_no: string;
  trade_status: TradeStatus;
  notify_url: string;
  body: string;
  held: boolean;
  next_attempt_at: Date | null;
  attempts: number;
  delivered: boolean;
  last_answer: string | null;
  created_at: Date;
  delivered_at: Date | null;
  given_up_at: Date | null;
}
