import { payWordsKey } from './presentation.ts';
import type { DiscountTerms } from './discount-math.ts';
import { discountTerms } from '../flows/coupons.ts';
import { findCurrency } from '../domain/currency.ts';
import type { ChoiceRefusal, ShopperChoices } from '../flows/checkout-sessions.ts';
import { escapeHtml } from '../platform/html.ts';
import type { CheckoutSessionRow, CheckoutShippingOption, DeliveryEstimate, DeliveryEstimateBound } from '../store/database.ts';
import { formatMoney, localeOf, say, type Language, type StringKey } from './strings.ts';

/**
 * What the shopper may choose on the hosted page before paying: a shipping rate among those the session offers
 * (decision 0052) and the quantity of each adjustable item (decision 0053). The page's script recomputes the order
 * from the figures here when a choice changes (no request); the choices go to the server with the confirmation,
 * which sets them with the PaymentIntent's amount before confirming it for the amount the page showed.
 */

/** What the page's script needs to recompute the order (web/checkout/protocol.ts, `PageConfig.order`). */
export interface OrderView {
  locale: string;
  exponent: number;
  /** `optional`: an item the shopper may also leave out (0), whatever its least (decision 0061). */
  items: Array<{ unit: number; quantity: number; minimum?: number; maximum?: number; optional?: true; product?: string }>;
  shipping?: Array<{ rate: string; amount: number; line: string }>;
  /** The session's discount (decision 0062): its terms, recomputed as the order changes, in the currency's steps. */
  discount?: { terms: DiscountTerms; step: number };
  words: { pay: string; free: string; empty: string };
}

function boundText(bound: DeliveryEstimateBound, language: Language, count = String(bound.value)): string {
  const key = `unit_${bound.unit}${bound.value === 1 && count === '1' ? '' : 's'}` as StringKey;
  return say(language, key, { n: count });
}

/** "3–5 business days", "at least 2 days", "1 day to 2 weeks", in the page's language. */
export function deliveryText(estimate: DeliveryEstimate | null, language: Language): string {
  const { minimum, maximum } = estimate ?? {};
  if (minimum !== undefined && maximum !== undefined) {
    if (minimum.unit === maximum.unit) {
      return minimum.value === maximum.value ? boundText(maximum, language) : boundText(maximum, language, `${minimum.value}–${maximum.value}`);
    }
    return say(language, 'deliveryRange', { min: boundText(minimum, language), max: boundText(maximum, language) });
  }
  if (minimum !== undefined) return say(language, 'deliveryAtLeast', { min: boundText(minimum, language) });
  if (maximum !== undefined) return say(language, 'deliveryUpTo', { max: boundText(maximum, language) });
  return '';
}

function shippingAmountText(option: CheckoutShippingOption, currency: string, language: Language): string {
  return option.shipping_amount === 0 ? say(language, 'shippingFree') : formatMoney(option.shipping_amount, currency, language);
}

/** The chosen option (the first if none is, which a session with options never has). */
function chosenOption(session: CheckoutSessionRow): CheckoutShippingOption | undefined {
  const options = session.shipping_options ?? [];
  return options.find((option) => option.shipping_rate === session.shipping_rate_id) ?? options[0];
}

/** The figures and words the page's script recomputes the order with. */
export function orderView(session: CheckoutSessionRow, language: Language): OrderView {
  return {
    locale: localeOf(language), exponent: findCurrency(session.currency)?.apiExponent ?? 2,
    items: session.line_items.map((item) => ({
      unit: item.unit_amount, quantity: item.quantity,
      // A product's id reaches the page only when a coupon for some products needs it to recompute the discount.
      ...(item.product_id === undefined || (session.discount?.coupon.products ?? null) === null ? {} : { product: item.product_id }),
      ...(item.optional === undefined ? item.adjustable ?? {} : {
        minimum: item.adjustable?.minimum ?? item.optional.quantity, maximum: item.adjustable?.maximum ?? item.optional.quantity, optional: true as const,
      }),
    })),
    ...(session.shipping_options === null ? {} : {
      shipping: session.shipping_options.map((option) => ({ rate: option.shipping_rate, amount: option.shipping_amount, line: say(language, 'shippingLine', { name: option.display_name }) })),
    }),
    ...(session.discount === null ? {} : { discount: { terms: discountTerms(session.discount), step: findCurrency(session.currency)?.amountStep ?? 1 } }),
    words: { pay: say(language, payWordsKey(session)), free: say(language, 'shippingFree'), empty: say(language, 'orderEmpty') },
  };
}

/** A fixed quantity, in words ("Qty 2"). */
export function quantityWords(quantity: number, language: Language): string {
  return `<span class="qty">${escapeHtml(say(language, 'quantity', { n: String(quantity) }))}</span>`;
}

/** An item's quantity on the page: a number field within its bounds when the shopper may change it, else the words. */
export function quantityField(session: CheckoutSessionRow, index: number, language: Language): string {
  const item = session.line_items[index];
  if (item === undefined) return '';
  const label = escapeHtml(say(language, 'quantityOf', { name: item.name }));
  if (item.optional !== undefined) {
    const each = escapeHtml(say(language, 'optionalEach', { amount: formatMoney(item.unit_amount, session.currency, language) }));
    if (item.adjustable !== undefined) {
      return `<input class="qty-input" type="number" inputmode="numeric" autocomplete="off" id="quantity-${index}" data-item="${index}" data-choice="quantity.${index}" min="0" max="${item.adjustable.maximum}" step="1" value="${item.quantity}" aria-label="${label}"> <span class="qty">${each}</span>`;
    }
    // Added or not, with the quantity the merchant set.
    const words = escapeHtml(say(language, 'optionalAdd', { n: String(item.optional.quantity) }));
    return `<label class="qty"><input class="qty-input" type="checkbox" autocomplete="off" id="quantity-${index}" data-item="${index}" data-choice="quantity.${index}" value="${item.optional.quantity}"${item.quantity > 0 ? ' checked' : ''}> ${words} · ${each}</label>`;
  }
  if (item.adjustable === undefined) return quantityWords(item.quantity, language);
  return `<input class="qty-input" type="number" inputmode="numeric" autocomplete="off" id="quantity-${index}" data-item="${index}" data-choice="quantity.${index}" min="${item.adjustable.minimum}" max="${item.adjustable.maximum}" step="1" value="${item.quantity}" aria-label="${escapeHtml(say(language, 'quantityOf', { name: item.name }))}">`;
}

/**
 * The lines of the order summary above its total: the subtotal, the discount (with the button that removes a code the
 * shopper typed, or a discount that has no use left) and the shipping; nothing for a session with neither.
 */
export function totalsSummary(session: CheckoutSessionRow, language: Language, usedUp = false): string {
  const option = chosenOption(session);
  const discount = session.discount;
  if (option === undefined && discount === null) return '';
  const t = (text: string) => escapeHtml(text);
  const lines = [`<p class="subtotal"><span>${t(say(language, 'subtotal'))}</span><span id="subtotal">${t(formatMoney(session.amount_total - session.amount_shipping + session.amount_discount, session.currency, language))}</span></p>`];
  if (discount !== null) {
    const name = discount.promotion_code?.code ?? discount.coupon.name ?? discount.coupon.id;
    const remove = (session.allow_promotion_codes && discount.promotion_code !== null) || usedUp
      ? ` <button type="button" class="link-button" id="promotion-remove">${t(say(language, 'promotionCodeRemove'))}</button>` : '';
    lines.push(`<p class="subtotal discount"><span><span id="discount-line">${t(say(language, 'discountLine', { name }))}</span>${remove}</span><span id="discount-amount">−${t(formatMoney(session.amount_discount, session.currency, language))}</span></p>`);
  }
  if (option !== undefined) {
    lines.push(`<p class="subtotal"><span id="shipping-line">${t(say(language, 'shippingLine', { name: option.display_name }))}</span><span id="shipping-amount">${t(shippingAmountText(option, session.currency, language))}</span></p>`);
  }
  return lines.join('\n');
}

/**
 * Where the shopper types a promotion code (`allow_promotion_codes`), under the order, while none is applied. Its
 * refusal is shown under it, in the shopper's language.
 */
export function promotionCodeField(session: CheckoutSessionRow, language: Language): string {
  if (!session.allow_promotion_codes || session.discount !== null) return '';
  const t = (text: string) => escapeHtml(text);
  return `<form id="promotion-form" class="promotion" novalidate><label for="promotion-code">${t(say(language, 'promotionCode'))}</label>
<span class="promotion-row"><input id="promotion-code" name="promotion_code" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="500" data-choice="promotion_code"><button type="submit" id="promotion-apply" class="secondary">${t(say(language, 'promotionCodeApply'))}</button></span>
<span id="promotion-error" class="error" role="alert" hidden></span></form>`;
}

/** The shopper's choice of shipping method, above the payment method; nothing for a session without shipping. */
export function shippingFields(session: CheckoutSessionRow, language: Language): string {
  const chosen = chosenOption(session);
  if (chosen === undefined) return '';
  const radios = (session.shipping_options ?? []).map((option) => {
    const estimate = deliveryText(option.delivery_estimate, language);
    return `<label><input type="radio" name="shipping_rate" data-choice="shipping_rate" autocomplete="off" value="${escapeHtml(option.shipping_rate)}"${option === chosen ? ' checked' : ''}><span class="option"><span>${escapeHtml(option.display_name)}${
      estimate === '' ? '' : `<span class="desc">${escapeHtml(estimate)}</span>`}</span><span>${escapeHtml(shippingAmountText(option, session.currency, language))}</span></span></label>`;
  }).join('');
  return `<fieldset class="shipping-options"><legend>${escapeHtml(say(language, 'shippingMethod'))}</legend><div class="methods">${radios}</div></fieldset>`;
}

/**
 * The choices a confirmation carries, as the session allows them: the rate when it offers shipping (none sent is
 * none chosen, which is refused), and the quantities when an item is adjustable (none sent leaves them as they are).
 * Undefined when the session has nothing to choose.
 */
export function choicesSent(session: CheckoutSessionRow, body: { shipping_rate?: unknown; quantities?: unknown }): ShopperChoices | undefined {
  const shipping = session.shipping_options !== null;
  const adjustable = session.line_items.some((item) => item.adjustable !== undefined || item.optional !== undefined);
  if (!shipping && !adjustable) return undefined;
  const quantities = adjustable && Array.isArray(body.quantities) ? body.quantities.map((value) => (typeof value === 'number' ? value : Number.NaN)) : undefined;
  return {
    ...(shipping ? { shippingRate: typeof body.shipping_rate === 'string' ? body.shipping_rate : '' } : {}),
    ...(quantities === undefined ? {} : { quantities }),
  };
}

/** A refused choice, said to the shopper. */
export function choiceMessage(refusal: ChoiceRefusal, currency: string, language: Language): string {
  switch (refusal.reason) {
    case 'quantityOutOfRange':
      return say(language, 'quantityOutOfRange', { minimum: String(refusal.minimum), maximum: String(refusal.maximum) });
    case 'orderTooSmall':
      return say(language, 'orderTooSmall', { amount: formatMoney(refusal.minimum, currency, language) });
    default:
      return say(language, refusal.reason);
  }
}
