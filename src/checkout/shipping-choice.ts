import type { CheckoutSessionRow, CheckoutShippingOption, DeliveryEstimate, DeliveryEstimateBound } from '../store/database.ts';
import { escapeHtml } from '../platform/html.ts';
import { formatMoney, say, type Language, type StringKey } from './strings.ts';

/**
 * The shipping rates a Checkout Session offers, on the hosted page (decision 0052): a choice the shopper makes
 * before paying, each with its delivery estimate and amount. The page changes the total it shows when the choice
 * changes, from the figures here (no request); the choice goes to the server with the confirmation, which sets the
 * PaymentIntent's amount before confirming it for the amount the page showed.
 */

/** What the page's script needs of each option: the total it makes and the words that show it. */
export interface ShippingOptionView {
  rate: string;
  /** The order's total with this option, in minor units: what the page sends as the amount it shows. */
  amount: string;
  total: string;
  line: string;
  shipping: string;
  pay: string;
}

function boundText(bound: DeliveryEstimateBound, language: Language, count = String(bound.value)): string {
  const key = `unit_${bound.unit}${bound.value === 1 && count === '1' ? '' : 's'}` as StringKey;
  return say(language, key, { n: count });
}

/** "3 to 5 business days", "at least 2 days", "1 day to 2 weeks", in the page's language. */
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
export function chosenOption(session: CheckoutSessionRow): CheckoutShippingOption | undefined {
  const options = session.shipping_options ?? [];
  return options.find((option) => option.shipping_rate === session.shipping_rate_id) ?? options[0];
}

/** The figures the page's script swaps in when the shopper picks another option. */
export function shippingViews(session: CheckoutSessionRow, language: Language): ShippingOptionView[] {
  const items = session.amount_total - session.amount_shipping;
  return (session.shipping_options ?? []).map((option) => {
    const total = items + BigInt(option.shipping_amount);
    const totalText = formatMoney(total, session.currency, language);
    return {
      rate: option.shipping_rate, amount: total.toString(), total: totalText, line: say(language, 'shippingLine', { name: option.display_name }),
      shipping: shippingAmountText(option, session.currency, language), pay: say(language, 'pay', { amount: totalText }),
    };
  });
}

/** The subtotal and shipping lines of the order summary, above its total; nothing for a session without shipping. */
export function shippingSummary(session: CheckoutSessionRow, language: Language): string {
  const option = chosenOption(session);
  if (option === undefined) return '';
  const t = (text: string) => escapeHtml(text);
  return `<p class="subtotal"><span>${t(say(language, 'subtotal'))}</span><span>${t(formatMoney(session.amount_total - session.amount_shipping, session.currency, language))}</span></p>
<p class="subtotal"><span id="shipping-line">${t(say(language, 'shippingLine', { name: option.display_name }))}</span><span id="shipping-amount">${t(shippingAmountText(option, session.currency, language))}</span></p>`;
}

/** The shopper's choice of shipping method, above the payment method; nothing for a session without shipping. */
export function shippingFields(session: CheckoutSessionRow, language: Language): string {
  const chosen = chosenOption(session);
  if (chosen === undefined) return '';
  const radios = (session.shipping_options ?? []).map((option) => {
    const estimate = deliveryText(option.delivery_estimate, language);
    return `<label><input type="radio" name="shipping_rate" value="${escapeHtml(option.shipping_rate)}"${option === chosen ? ' checked' : ''}><span class="option"><span>${escapeHtml(option.display_name)}${
      estimate === '' ? '' : `<span class="desc">${escapeHtml(estimate)}</span>`}</span><span>${escapeHtml(shippingAmountText(option, session.currency, language))}</span></span></label>`;
  }).join('');
  return `<fieldset class="shipping-options"><legend>${escapeHtml(say(language, 'shippingMethod'))}</legend><div class="methods">${radios}</div></fieldset>`;
}
