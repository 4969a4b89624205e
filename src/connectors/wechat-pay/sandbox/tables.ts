/**
 * Rows of the WeChat Pay sandbox's tables (migration 0019-wechat-pay-sandbox.sql), as the `pg` driver and PGlite
 * return them in Coffer (int8 as bigint, timestamptz as Date). The sandbox reaches them with `sql` templates only,
 * so it runs on any Kysely instance and Coffer's `Database` type does not need to know them.
 */
export const tradeTypes = ['NATIVE', 'JSAPI', 'MWEB'] as const;
export type TradeType = (typeof tradeTypes)[number];

export const tradeStates = ['NOTPAY', 'USERPAYING', 'SUCCESS', 'CLOSED', 'REVOKED', 'PAYERROR', 'REFUND'] as const;
export type TradeState = (typeof tradeStates)[number];

export const refundStatuses = ['PROCESSING', 'SUCCESS', 'ABNORMAL', 'CLOSED'] as const;
export type RefundStatus = (typeof refundStatuses)[number];
export type RefundOutcome = Exclude<RefundStatus, 'PROCESSING'>;

export interface SandboxTransactionRow {
  transaction_id: string;
  mchid: string;
  appid: string;
  out_trade_no: string;
  trade_type: TradeType;
  trade_state: TradeState;
  request_hash: string;
  amount_total: bigint;
  currency: string;
  description: string;
  notify_url: string;
  attach: string | null;
  payer_openid: string | null;
  payer_client_ip: string | null;
  prepay_id: string | null;
  scan_token: string;
  form_token: string;
  time_expire: Date;
  success_time: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface SandboxRefundRow {
  refund_id: string;
  mchid: string;
  out_refund_no: string;
  transaction_id: string;
  request_hash: string;
  amount_refund: bigint;
  amount_total: bigint;
  currency: string;
  reason: string | null;
  notify_url: string | null;
  status: RefundStatus;
  settles_to: RefundOutcome;
  settles_at: Date;
  success_time: Date | null;
  created_at: Date;
}

export type CallbackTamper = 'ciphertext' | 'tag' | 'signature';

export interface SandboxCallbackRow {
  id: string;
  sequence: bigint;
  notification_id: string;
  url: string;
  body: string;
  probe: boolean;
  tamper: CallbackTamper | null;
  held: boolean;
  next_attempt_at: Date;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  given_up_at: Date | null;
  created_at: Date;
}
