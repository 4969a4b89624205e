import type { CurrencyInfo } from '../domain/currency.ts';
import type { ConnectorCapabilities, RefundRequest, RefundResult, RefundSyncResult } from './connector.ts';

/**
 * Providers where the shopper pays in the provider's own app or page (Alipay, WeChat Pay): Coffer creates a
 * trade, the shopper is sent to it (a redirect, a QR code, the in-app browser), and the outcome arrives later by
 * a signed notification or is learned by a query. Each connector maps its provider's statuses into these,
 * exhaustively: an unknown status is `unknown`, never a default. Amounts are converted only inside the connector,
 * and every amount the provider echoes is checked against what Coffer expects.
 */

/** How the shopper reaches the trade. Not every provider offers every flow (`flows` in the capabilities). */
export type WalletFlow = 'page' | 'qr' | 'jsapi' | 'h5';

export interface WalletCapabilities extends ConnectorCapabilities {
  flows: readonly WalletFlow[];
}

export interface WalletTradeRequest {
  /** Coffer's id of the attempt (the charge id): the provider's `out_trade_no`, so a retry never makes a second trade. */
  reference: string;
  amountMinor: bigint;
  currency: CurrencyInfo;
  /** What the shopper sees on the provider's page ("Order 1234 at Shop"). */
  subject: string;
  flow: WalletFlow;
  /** Where the provider sends its notifications. */
  notifyUrl: string;
  /** Where the provider sends the shopper back after paying (page and h5 flows). */
  returnUrl: string | null;
  /** After this the provider closes the unpaid trade. */
  expiresAt: Date;
  /** The shopper's id at the provider (WeChat's `openid`), for the in-app (jsapi) flow. */
  payerId?: string | undefined;
  /** The shopper's address, which WeChat's h5 flow requires. */
  clientIp?: string | undefined;
}

/** What the shopper needs to pay: exactly one of these is set, by flow. */
export interface WalletAction {
  /** page / h5: the URL to send the shopper's browser to. */
  redirectUrl: string | null;
  /** qr: the text to draw as a QR code (Alipay's `qr_code`, WeChat's `code_url`). */
  qrCode: string | null;
  /** jsapi: the signed parameters for the provider's in-app payment call. */
  appParameters: Record<string, string> | null;
}

export type WalletTradeResult =
  | { status: 'created'; action: WalletAction }
  | { status: 'failed'; code: string; message: string }
  | { status: 'unknown'; reason: string };

/** The provider's record of a trade, mapped into Coffer's terms. */
export type WalletTradeState =
  /** Waiting for the shopper (includes a QR trade that was never scanned and so does not exist yet). */
  | { status: 'pending' }
  /** Paid: the money is taken (refunds, if any, do not change this). */
  | { status: 'paid'; providerReference: string; amountMinor: bigint; paidAt: Date | null }
  /** Closed unpaid (expired, closed by Coffer, or canceled by the shopper). */
  | { status: 'closed' }
  /** The shopper's payment failed at the provider for good. */
  | { status: 'failed'; code: string; message: string }
  | { status: 'unknown'; reason: string };

/** Identifies a trade to query or close, with what Coffer expects of it (checked against the provider's echo). */
export interface WalletTradeRef {
  reference: string;
  amountMinor: bigint;
  currency: CurrencyInfo;
}

export type WalletCloseResult =
  | { status: 'closed' }
  /**
   * The provider has no such trade yet, so there was nothing to close: the shopper has not opened it (an Alipay
   * QR code not scanned, a cashier page not opened). It can still be opened, and paid, until the trade's own
   * expiry; Coffer watches it until then (src/flows/wallet-late-payments.ts).
   */
  | { status: 'not_opened' }
  /** Too late: the shopper paid first. The trade must then be recorded as paid (and refunded if unwanted). */
  | { status: 'paid'; providerReference: string; amountMinor: bigint; paidAt: Date | null }
  | { status: 'failed'; code: string; message: string }
  | { status: 'unknown'; reason: string };

/** An incoming HTTP request at Coffer's notification endpoint for this provider, as received. */
export interface IncomingNotification {
  headers: Record<string, string | undefined>;
  rawBody: string;
}

/** A verified, parsed notification. Amounts are already in minor units. */
export type WalletNotification =
  | {
      kind: 'payment';
      /** The provider's id of this notification (Alipay `notify_id`, WeChat `id`): deliveries are deduplicated on it. */
      notificationId: string;
      /** Coffer's reference (`out_trade_no`). */
      reference: string;
      /** The merchant account at the provider it is addressed to (Alipay `app_id`, WeChat `mchid`). */
      account: string;
      state: Exclude<WalletTradeState, { status: 'unknown' }>;
      /** The trade's total as the provider states it, to check against the order. */
      totalMinor: bigint;
      currency: string;
    }
  | {
      kind: 'refund';
      notificationId: string;
      /** Coffer's refund reference (`out_request_no` / `out_refund_no`). */
      refundReference: string;
      /** Coffer's payment reference (`out_trade_no`). */
      reference: string;
      account: string;
      status: 'succeeded' | 'failed' | 'pending';
      amountMinor: bigint;
      failureReason: string | null;
    };

/** How to answer the provider: its own words for "received" and "send it again". */
export interface NotificationAnswer {
  statusCode: number;
  contentType: string;
  body: string;
}

export interface WalletConnector {
  readonly name: 'alipay' | 'wechat_pay';
  readonly capabilities: WalletCapabilities;
  /** The merchant account at the provider (Alipay app id, WeChat mchid): notifications must name it. */
  readonly account: string;
  createTrade(request: WalletTradeRequest): Promise<WalletTradeResult>;
  queryTrade(trade: WalletTradeRef): Promise<WalletTradeState>;
  closeTrade(trade: WalletTradeRef): Promise<WalletCloseResult>;
  /** `request.paymentReference` is Coffer's payment reference (`out_trade_no`); the refund key is `idempotencyKey`. */
  refund(request: RefundRequest & { totalMinor: bigint }): Promise<RefundResult>;
  syncRefund(request: RefundRequest & { totalMinor: bigint }): Promise<RefundSyncResult>;
  /** Verifies and parses; throws `NotificationRejected` (naming the reason) when it is not genuine or not well-formed. */
  parseNotification(request: IncomingNotification): WalletNotification;
  /** The answer that tells the provider the notification was taken (`accepted`) or must be sent again. */
  notificationAnswer(accepted: boolean): NotificationAnswer;
}
