import { CofferError } from '../domain/errors.ts';
import type { PaymentIntentRow } from '../store/database.ts';

/** Parameters shared by create, update and confirm, after schema validation. */
export interface ShippingParams {
  name: string;
  address: Record<string, string>;
  phone?: string;
  carrier?: string;
  tracking_number?: string;
}

export const supportedPaymentMethodTypes = ['card', 'alipay', 'wechat_pay'] as const;

export function checkPaymentMethodTypes(types: readonly string[], param: string): string[] {
  if (types.length === 0) {
    throw new CofferError('parameter_invalid_empty', `You passed an empty list for '${param}'.`, { param });
  }
  for (const type of types) {
    if (!(supportedPaymentMethodTypes as readonly string[]).includes(type)) {
      throw new CofferError(
        'parameter_invalid',
        `The payment method type "${type}" is invalid. Supported types: ${supportedPaymentMethodTypes.join(', ')}.`,
        { param },
      );
    }
  }
  return [...new Set(types)];
}

/** Metadata on update: `''` for a key deletes it, an empty object or `''` for the whole clears it. */
export function mergeMetadata(
  current: Record<string, string>,
  update: Record<string, string> | '' | undefined,
): Record<string, string> {
  if (update === undefined) return current;
  if (update === '') return {};
  const merged: Record<string, string> = { ...current };
  for (const [key, value] of Object.entries(update)) {
    if (value === '') delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

export function checkMetadataSize(metadata: Record<string, string>, maxKeys: number, param = 'metadata'): void {
  if (Object.keys(metadata).length > maxKeys) {
    throw new CofferError('parameter_invalid', `Metadata can have at most ${maxKeys} keys.`, { param });
  }
}

/** `''` unsets a text field, as in Stripe's form encoding. */
export function emptyToNull(value: string | undefined, current: string | null): string | null {
  if (value === undefined) return current;
  return value === '' ? null : value;
}

/**
 * A card payment's statement shows the merchant's descriptor, with `statement_descriptor_suffix` after it: Stripe
 * refuses a whole `statement_descriptor` for card charges, and so does Coffer, so that an integration built here
 * does not break there.
 */
export function cardStatementDescriptorRefused(param: string): CofferError {
  return new CofferError('parameter_invalid',
    `${param} cannot be used for card payments: a card statement shows your account's descriptor. Set statement_descriptor_suffix instead` +
    `${param === 'statement_descriptor' ? ', and unset statement_descriptor with ""' : ''}.`, { param });
}

/**
 * `payment_method_options[card]` as create, update and confirm take it. `capture_method` and `setup_future_usage`
 * override the top-level fields for card payments (`captureMethodFor`, `setupFutureUsageFor`); `''` unsets one.
 * `request_three_d_secure` is what the confirmation asks the acquirer for; `automatic` is the default.
 */
export interface CardOptionsParams {
  capture_method?: 'manual' | '';
  setup_future_usage?: 'none' | 'on_session' | 'off_session' | '';
  request_three_d_secure?: 'automatic' | 'any' | 'challenge';
  request_incremental_authorization?: 'if_available' | 'never';
}

/**
 * `payment_method_options[wechat_pay]`: `web` (Stripe's) is a QR code to scan. Coffer's extensions: `mobile_web`,
 * WeChat's H5 payment in a phone's browser (a redirect); `jsapi`, inside WeChat's own browser, with the shopper's
 * `openid` for the merchant's app.
 */
export interface WeChatPayOptionsParams {
  client?: 'web' | 'mobile_web' | 'jsapi';
  openid?: string;
}

/**
 * `payment_method_options`, each payment method type's own options, as create, update and confirm take them. All
 * are kept with the PaymentIntent (decisions 0040 and 0044) and a confirmation applies what is kept; a wallet's
 * options as a whole take `''`, which unsets them (Alipay has none to keep).
 */
export interface PaymentMethodOptionsParams {
  card?: CardOptionsParams;
  wechat_pay?: WeChatPayOptionsParams | '';
  alipay?: Record<string, never> | '';
}

/** The PaymentIntent's columns that keep `payment_method_options` (migrations 0053 and 0054). */
export type KeptOptions = Pick<PaymentIntentRow,
  'card_capture_method' | 'card_setup_future_usage' | 'card_request_three_d_secure' | 'card_request_incremental_authorization' | 'wechat_pay_client' | 'wechat_pay_openid'>;

/** Each kept option's parameter, as Stripe names it (for errors and audit). */
const keptOptionParam: Record<keyof KeptOptions, string> = {
  card_capture_method: 'payment_method_options[card][capture_method]',
  card_setup_future_usage: 'payment_method_options[card][setup_future_usage]',
  card_request_three_d_secure: 'payment_method_options[card][request_three_d_secure]',
  card_request_incremental_authorization: 'payment_method_options[card][request_incremental_authorization]',
  wechat_pay_client: 'payment_method_options[wechat_pay][client]',
  wechat_pay_openid: 'payment_method_options[wechat_pay][openid]',
};

/** The kept options a request sets: only those it names, `''` as none. */
export function keptOptionChanges(options: PaymentMethodOptionsParams | undefined): Partial<KeptOptions> {
  const changes: Partial<KeptOptions> = {};
  const card = options?.card;
  if (card?.capture_method !== undefined) changes.card_capture_method = card.capture_method || null;
  if (card?.setup_future_usage !== undefined) changes.card_setup_future_usage = card.setup_future_usage || null;
  if (card?.request_three_d_secure !== undefined) changes.card_request_three_d_secure = card.request_three_d_secure;
  if (card?.request_incremental_authorization !== undefined) changes.card_request_incremental_authorization = card.request_incremental_authorization;
  const wechat = options?.wechat_pay;
  if (wechat === '') {
    changes.wechat_pay_client = null;
    changes.wechat_pay_openid = null;
  } else {
    if (wechat?.client !== undefined) changes.wechat_pay_client = wechat.client;
    if (wechat?.openid !== undefined) changes.wechat_pay_openid = wechat.openid;
  }
  return changes;
}

/** The parameters of the kept options a request sets (a wallet's `''` by the wallet's name). */
export function keptOptionParams(options: PaymentMethodOptionsParams | undefined): string[] {
  const params = Object.keys(keptOptionChanges(options)).map((column) => keptOptionParam[column as keyof KeptOptions]);
  return options?.wechat_pay === '' ? [...params.filter((param) => !param.startsWith('payment_method_options[wechat_pay]')), 'payment_method_options[wechat_pay]'] : params;
}
