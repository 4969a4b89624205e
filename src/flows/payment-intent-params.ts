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
 * are kept with the PaymentIntent and override the top-level fields for card payments (`captureMethodFor`,
 * `setupFutureUsageFor`); `''` unsets one. `request_three_d_secure` applies to the confirmation it is sent with.
 */
export interface CardOptionsParams {
  capture_method?: 'manual' | '';
  setup_future_usage?: 'none' | 'on_session' | 'off_session' | '';
  request_three_d_secure?: 'automatic' | 'any' | 'challenge';
}

/** The stored card options a request sets: only those it names, `''` as none. */
export function cardOptionChanges(card: CardOptionsParams | undefined): Partial<Pick<PaymentIntentRow, 'card_capture_method' | 'card_setup_future_usage'>> {
  const changes: Partial<Pick<PaymentIntentRow, 'card_capture_method' | 'card_setup_future_usage'>> = {};
  if (card?.capture_method !== undefined) changes.card_capture_method = card.capture_method || null;
  if (card?.setup_future_usage !== undefined) changes.card_setup_future_usage = card.setup_future_usage || null;
  return changes;
}

/** The names of the stored card options a request sets, as Stripe names the parameters (for errors and audit). */
export function cardOptionParams(card: CardOptionsParams | undefined): string[] {
  return Object.keys(cardOptionChanges(card)).map((column) => `payment_method_options[card][${column.slice('card_'.length)}]`);
}
