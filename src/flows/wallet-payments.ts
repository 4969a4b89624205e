import type { WalletAction, WalletCloseResult, WalletConnector, WalletTradeState } from '../connectors/wallet.ts';
import type { Decline } from '../connectors/connector.ts';
import { findCurrency, type CurrencyInfo } from '../domain/currency.ts';
import { CofferError } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import { assert } from '../platform/assert.ts';
import { qrCodePngDataUrl } from '../platform/qr-png.ts';
import { newId } from '../platform/random.ts';
import type { ChargeRow, PaymentIntentRow, PaymentMethodRow, PaymentMethodType } from '../store/database.ts';
import { chargeChanges as chargeChangesJson, paymentIntentChanges } from '../store/row-json.ts';
import type { Outcome, RequestContext, Services, Tx } from './context.ts';
import { lockCharge, lockPaymentIntent, nextStatus, recordChange, type Scope } from './payment-intent-records.ts';
import { checkTypeAllowed } from './payment-methods.ts';
import { outcomeUnknownError, recordAttemptOutcome, recordAttemptOutcomeIn, type AttemptResolution } from './record-attempt-outcome.ts';
import type { Respond } from './respond.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail, type Trail } from './trail.ts';
import { walletTradeOpenUntil, watchUnopenedTrade } from './wallet-late-payments.ts';

/** The payment method types paid at a provider's own page or app. */
export type WalletType = Exclude<PaymentMethodType, 'card'>;

export function isWalletType(type: string): type is WalletType {
  return type === 'alipay' || type === 'wechat_pay';
}

/** How the shopper pays WeChat Pay, by the client kept with the PaymentIntent (a QR code unless told otherwise). */
function walletFlow(type: WalletType, client: PaymentIntentRow['wechat_pay_client']): 'page' | 'qr' | 'h5' | 'jsapi' {
  if (type === 'alipay') return 'page';
  return client === 'mobile_web' ? 'h5' : client === 'jsapi' ? 'jsapi' : 'qr';
}

/** A new payment method of a wallet type, from `payment_method_data` (it holds nothing until the shopper pays). */
export function walletPaymentMethod(scope: Scope, type: WalletType, billingDetails: Record<string, unknown> | undefined, now: Date): PaymentMethodRow {
  return {
    id: newId('pm'),
    merchant_id: scope.merchantId,
    livemode: scope.livemode,
    seq: 0n,
    type,
    card: null,
    test_card: null,
    vault_card_id: null,
    billing_details: billingDetails ?? {},
    customer_id: null,
    first_payment_intent_id: null,
    detached_at: null,
    allow_redisplay: 'unspecified',
    metadata: {},
    created_at: now,
  };
}

/** What a wallet charge keeps: the provider's transaction id once paid (Stripe's `payment_method_details.<type>`). */
export function walletChargeDetails(type: WalletType): Record<string, unknown> {
  return type === 'alipay' ? { buyer_id: null, fingerprint: null, transaction_id: null } : { fingerprint: null, transaction_id: null };
}

/**
 * Refuses, before anything is written, a confirmation the provider could never take. `intent` is the PaymentIntent
 * with the options the confirmation keeps applied: what is kept applies, whichever request gave it.
 */
export function checkWalletConfirmable(
  intent: PaymentIntentRow, type: WalletType, returnUrl: string | null, captureMethod: string, connector: WalletConnector,
): void {
  const client = intent.wechat_pay_client;
  if (type === 'wechat_pay' && client === 'jsapi' && intent.wechat_pay_openid === null) {
    throw new CofferError('parameter_missing', "WeChat Pay inside WeChat's browser (client=jsapi) needs the shopper's openid.", { param: 'payment_method_options[wechat_pay][openid]' });
  }
  if (type === 'wechat_pay' && client === 'mobile_web' && returnUrl === null) {
    throw new CofferError('parameter_missing', 'WeChat Pay in a phone browser (client=mobile_web) needs a return_url: the shopper comes back to it.', { param: 'return_url' });
  }
  checkTypeAllowed(intent.payment_method_types, type, 'payment_method_data[type]');
  if (intent.currency !== 'cny') {
    throw new CofferError('parameter_invalid', `${providerName(type)} payments through Coffer are in CNY; this PaymentIntent is in ${intent.currency.toUpperCase()}.`, { param: 'currency' });
  }
  if (captureMethod === 'manual' && !connector.capabilities.manualCapture) {
    throw new CofferError('parameter_invalid', `${providerName(type)} does not support capture_method=manual: the payment is captured when the shopper pays.`, { param: 'capture_method' });
  }
  if (type === 'alipay' && returnUrl === null) {
    throw new CofferError('parameter_missing', 'A return_url is required to confirm an Alipay payment: the shopper comes back to it from Alipay.', { param: 'return_url' });
  }
}

function providerName(type: WalletType): string {
  return type === 'alipay' ? 'Alipay' : 'WeChat Pay';
}

export function currencyOf(code: string): CurrencyInfo {
  const currency = findCurrency(code);
  assert(currency !== undefined, 'a stored currency is known');
  return currency;
}

/** Stripe's `next_action` for each wallet (and Coffer's `wechat_pay_jsapi` for WeChat's in-app payment). */
function nextAction(type: WalletType, action: WalletAction, returnUrl: string | null): Record<string, unknown> {
  if (type === 'wechat_pay' && action.appParameters !== null) {
    return { type: 'wechat_pay_jsapi', wechat_pay_jsapi: action.appParameters };
  }
  if (type === 'wechat_pay' && action.redirectUrl !== null) {
    return { type: 'redirect_to_url', redirect_to_url: { return_url: returnUrl, url: action.redirectUrl } };
  }
  if (type === 'alipay') {
    assert(action.redirectUrl !== null, 'an Alipay page trade has a redirect URL');
    return {
      type: 'alipay_handle_redirect',
      alipay_handle_redirect: { native_data: null, native_url: null, return_url: returnUrl, url: action.redirectUrl },
    };
  }
  assert(action.qrCode !== null, 'a WeChat Pay native trade has a code URL');
  return {
    type: 'wechat_pay_display_qr_code',
    wechat_pay_display_qr_code: {
      data: action.qrCode,
      hosted_instructions_url: null,
      image_data_url: qrCodePngDataUrl(action.qrCode),
      image_url_png: null,
      image_url_svg: null,
    },
  };
}

export interface WalletAttempt {
  intent: PaymentIntentRow;
  charge: ChargeRow;
  paymentMethod: PaymentMethodRow;
}

/**
 * Phase 2 of a wallet confirmation: opens the trade at the provider (outside any transaction; the trade is keyed
 * by the charge id, so a retry never opens a second), then records that the shopper must act there.
 */
export async function sendWalletAttempt(
  services: Services, ctx: RequestContext, scope: Scope, attempt: WalletAttempt, respond: Respond,
): Promise<Outcome> {
  const type = attempt.paymentMethod.type;
  assert(isWalletType(type), 'a wallet attempt has a wallet payment method');
  const connector = services.connectors.wallet(type, scope.livemode);
  const now = new Date(services.clock.nowMs());
  // Fixed by the attempt, so that a retry sends the very same trade (a provider refuses the same number with other terms).
  const expiresAt = new Date(attempt.charge.created_at.getTime() + limits.walletPaymentWindowMs);
  const result = await connector.createTrade({
    reference: attempt.charge.id,
    amountMinor: attempt.charge.amount,
    currency: currencyOf(attempt.charge.currency),
    subject: attempt.intent.description ?? `Payment ${attempt.intent.id}`,
    // The options kept with the PaymentIntent, as this attempt wrote them (a retry sends the same).
    flow: walletFlow(type, attempt.intent.wechat_pay_client),
    payerId: attempt.intent.wechat_pay_openid ?? undefined,
    clientIp: attempt.charge.risk_facts?.client_address ?? undefined,
    notifyUrl: services.connectors.notificationUrl(type, scope.livemode),
    // The shopper comes back through Coffer, which asks the provider, then goes on to the merchant's return_url
    // with Stripe's parameters.
    returnUrl: attempt.intent.return_url === null ? null : services.connectors.paymentReturnUrl(attempt.charge.id),
    expiresAt,
  });
  services.faults.reach('confirm.after_provider_call');
  const trail = requestTrail(ctx);
  const refs = { scope, paymentIntentId: attempt.intent.id, chargeId: attempt.charge.id };
  if (result.status === 'unknown') throw outcomeUnknownError();
  if (result.status === 'failed') {
    const outcome = await recordAttemptOutcome(services, refs, providerDecline(result.code, result.message), trail, { respond, claim: ctx.idempotency });
    assert(outcome !== undefined, 'a request always gets a response');
    return outcome;
  }
  return inTransaction(services.db, async (tx) => {
    const intent = await lockPaymentIntent(tx, scope, attempt.intent.id);
    const charge = await lockCharge(tx, attempt.charge.id);
    // Already moved on (a notification or the sync worker was faster, or a retry recorded it): answer as it is.
    if (charge.status !== 'pending' || intent.status !== 'processing') return respond(tx, { paymentIntent: intent });
    const status = nextStatus(intent, 'action_required');
    const after: PaymentIntentRow = { ...intent, status, next_action: nextAction(type, result.action, intent.return_url), updated_at: now, version: intent.version + 1n };
    await tx.updateTable('payment_intents').set(paymentIntentChanges({ status, next_action: after.next_action, updated_at: now }))
      .where('id', '=', intent.id).execute();
    await tx.updateTable('charges').set(chargeChangesJson({ action_expires_at: expiresAt, provider_sync_at: new Date(now.getTime() + limits.walletSyncFirstMs), updated_at: now }))
      .where('id', '=', charge.id).execute();
    await recordChange(tx, trail, scope,
      { action: 'payment_intent.requires_action', objectType: 'payment_intent', objectId: intent.id, details: { charge: charge.id, provider: type } },
      [{ type: 'payment_intent.requires_action', paymentIntent: { before: intent, after } }], now);
    return respond(tx, { paymentIntent: after });
  });
}

/** A provider's refusal or the shopper's failed payment, as the attempt's decline. */
export function providerDecline(code: string, message: string): Decline {
  return {
    status: 'declined',
    providerReference: null,
    code: 'payment_method_provider_decline',
    declineCode: code.toLowerCase(),
    message: `The payment provider declined this payment: ${message}`,
    param: null,
    adviceCode: null,
    networkStatus: 'declined_by_network',
    blocked: false,
  };
}

/** The shopper did not pay in time or canceled at the provider; the trade is closed and nothing was taken. */
export const expiredAttempt: Decline = {
  status: 'declined',
  providerReference: null,
  code: 'payment_intent_payment_attempt_expired',
  declineCode: 'expired',
  message: 'The shopper did not complete the payment at the provider in time, or canceled it there. Nothing was taken.',
  param: null,
  adviceCode: 'try_again_later',
  networkStatus: 'not_sent_to_network',
  blocked: false,
};

/**
 * What a provider's final word on a trade means for the attempt; `undefined` while it is not final. A close the
 * provider refused is not a final word (the trade may still be payable): only a query's `failed` is.
 */
export function resolutionOf(state: WalletTradeState | WalletCloseResult, closing = false): AttemptResolution | undefined {
  switch (state.status) {
    case 'paid':
      return { status: 'wallet_paid', providerReference: state.providerReference };
    case 'closed':
    case 'not_opened':
      return expiredAttempt;
    case 'failed':
      return closing ? undefined : providerDecline(state.code, state.message);
    case 'pending':
    case 'unknown':
      return undefined;
  }
}

/** Records a provider's final word on a pending wallet attempt, in the caller's transaction; nothing if already recorded. */
export async function recordWalletResolution(tx: Tx, charge: ChargeRow, resolution: AttemptResolution, trail: Trail, now: Date): Promise<void> {
  await recordAttemptOutcomeIn(
    tx,
    { scope: { merchantId: charge.merchant_id, livemode: charge.livemode }, paymentIntentId: charge.payment_intent_id, chargeId: charge.id },
    resolution,
    trail,
    undefined,
    now,
  );
}

/** The provider's backoff: the first question after `walletSyncFirstMs`, doubling up to `walletSyncMaxMs`. */
export function nextSyncDelay(count: number): number {
  return Math.min(limits.walletSyncFirstMs * 2 ** Math.min(count, 20), limits.walletSyncMaxMs);
}

/**
 * Asks the provider about one pending wallet attempt and records what it says. A trade whose time is up (or
 * whose opening was never confirmed) is closed first, so that the shopper cannot pay it after Coffer records the
 * failure; a close that finds it paid records the payment instead. Otherwise the next question is scheduled
 * with backoff.
 */
export async function syncWalletAttempt(services: Services, charge: ChargeRow, trail: Trail): Promise<'resolved' | 'waiting'> {
  assert(isWalletType(charge.provider), 'a wallet attempt');
  const connector = services.connectors.wallet(charge.provider, charge.livemode);
  const now = new Date(services.clock.nowMs());
  const trade = { reference: charge.id, amountMinor: charge.amount, currency: currencyOf(charge.currency) };
  // No recorded action means the trade's opening never got a clear answer: close it rather than leave it payable.
  // Otherwise it is closed a little after the provider's own expiry, so that clocks apart cannot reopen it.
  const actionRecorded = charge.action_expires_at !== null;
  const windowEnd = walletTradeOpenUntil(charge).getTime();
  const timeIsUp = !actionRecorded || now.getTime() >= windowEnd;
  let state: WalletTradeState | WalletCloseResult = await connector.queryTrade(trade);
  let closing = false;
  if (state.status === 'pending' && timeIsUp) {
    state = await connector.closeTrade(trade);
    closing = true;
  }
  if (state.status === 'unknown' || (closing && state.status === 'failed')) {
    services.logger.warn({ charge: charge.id, status: state.status }, 'wallet payment outcome still unknown');
  }
  let resolution = resolutionOf(state, closing);
  // A trade whose opening no one ever got an answer for was never shown to a shopper (no code, no redirect), and
  // past its expiry it can no longer be opened: whatever the provider says (not found, no answer), nothing was paid.
  if (resolution === undefined && !actionRecorded && now.getTime() >= windowEnd && state.status !== 'pending') resolution = { status: 'lost' };
  if (resolution !== undefined) {
    await inTransaction(services.db, async (tx) => {
      await recordWalletResolution(tx, charge, resolution, trail, now);
      if (state.status === 'not_opened') await watchUnopenedTrade(tx, charge, now);
    });
    return 'resolved';
  }
  await services.db.updateTable('charges')
    .set({ provider_sync_at: new Date(now.getTime() + nextSyncDelay(charge.provider_sync_count)), provider_sync_count: charge.provider_sync_count + 1 })
    .where('id', '=', charge.id).where('status', '=', 'pending').execute();
  return 'waiting';
}

/**
 * Cancels a PaymentIntent whose shopper has not paid yet at the provider: the trade is closed there first
 * (outside any transaction). If the shopper paid meanwhile, the payment is recorded and the cancellation refused.
 */
export async function closeWalletAttemptForCancel(services: Services, ctx: RequestContext, charge: ChargeRow): Promise<void> {
  assert(isWalletType(charge.provider), 'a wallet attempt');
  const connector = services.connectors.wallet(charge.provider, charge.livemode);
  const result = await connector.closeTrade({ reference: charge.id, amountMinor: charge.amount, currency: currencyOf(charge.currency) });
  // Not closed for sure: the shopper could still pay, so nothing is recorded and the cancellation waits.
  if (result.status === 'unknown' || result.status === 'failed') throw outcomeUnknownError();
  const resolution = resolutionOf(result, true) ?? expiredAttempt;
  const now = new Date(services.clock.nowMs());
  await inTransaction(services.db, async (tx) => {
    await recordWalletResolution(tx, charge, resolution, requestTrail(ctx), now);
    // Nothing to close yet: the shopper could still open the trade and pay it. Watched until it cannot; paid, it is refunded.
    if (result.status === 'not_opened') await watchUnopenedTrade(tx, charge, now);
  });
  if (result.status === 'paid') {
    throw new CofferError(
      'payment_intent_unexpected_state',
      'This PaymentIntent could not be canceled because the shopper has already paid it. Refund it instead.',
    );
  }
}
