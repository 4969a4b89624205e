import { loggedSessionId } from '../platform/logger.ts';
import { assert } from '../platform/assert.ts';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { parseAmount, parseCurrency } from '../domain/money.ts';
import { formatAmount, findCurrency } from '../domain/currency.ts';
import { limits } from '../limits.ts';
import { newId, newSecretId, randomBase62 } from '../platform/random.ts';
import { sameSecretText } from '../platform/secret.ts';
import type { CheckoutCollected, CheckoutDiscount, CheckoutRecovery, CheckoutSavedMethodOptions, CouponRow, CheckoutLineItem, CheckoutPaymentMethodOptions, CheckoutSessionRow, CheckoutShippingOption, CustomerRow, PaymentIntentRow } from '../store/database.ts';
import { paymentIntentInsert } from '../store/row-json.ts';
import { cancelPaymentIntent } from './cancel-payment-intent.ts';
import { endOpenChallenge } from './confirm-payment-intent.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { newPaymentIntentRow } from './create-payment-intent.ts';
import { cardStatementDescriptorRefused, checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { changeRows, recordChange, updatePaymentIntentRow } from './payment-intent-records.ts';
import { liveCustomer } from './payment-methods.ts';
import { keepingResponder } from './respond.ts';
import { inTransaction } from './transaction.ts';
import { parseApiVersion, defaultApiVersion } from '../objects/api-version.ts';
import { requestTrail, systemTrail, type Trail } from './trail.ts';
import { addressObject } from '../objects/common.ts';
import type { checkoutLocales } from '../checkout/strings.ts';
import { presentationOf, type PresentationParams } from '../checkout/presentation.ts';
import { sql } from 'kysely';
import { listPage, type ListParams, type Page } from './list-page.ts';
import { checkShippingRate, insertShippingRate, type CheckedShippingRate, type ShippingRateParams } from './shipping-rates.ts';
import {
  checkDiscount, countRedemption, couponOfCode, discountForOrder, discountRefusalText, findCoupon, findPromotionCode,
  type CodeWithCoupon, type DiscountedOrder, type DiscountRefusal,
} from './coupons.ts';

/**
 * Stripe's Checkout Sessions in payment mode: the merchant describes the order, Coffer makes its PaymentIntent and
 * a hosted page (`/pay/<session>`) where the shopper pays by card, Alipay or WeChat Pay. The session completes when
 * its PaymentIntent is paid (`checkout.session.completed`, and a receipt to the shopper), and expires at
 * `expires_at` if it was not (`checkout.session.expired`; the PaymentIntent is canceled).
 */
export const checkoutMethodTypes = ['card', 'alipay', 'wechat_pay'] as const;
export type CheckoutMethodType = (typeof checkoutMethodTypes)[number];

export interface CheckoutLineItemParams {
  /** A catalogue price (flows/products.ts), or `price_data`: not both. */
  price?: string;
  price_data?: {
    currency: string;
    unit_amount: number;
    /** A catalogue product, or `product_data`: not both. */
    product?: string;
    product_data?: { name: string; description?: string; images?: string[] };
  };
  quantity: number;
  /** Whether, and within which bounds, the shopper may change the quantity on the page (decision 0053). */
  adjustable_quantity?: { enabled: boolean; minimum?: number; maximum?: number };
  metadata?: Record<string, string>;
}

export interface CreateCheckoutSessionParams extends PresentationParams {
  mode: 'payment';
  line_items: CheckoutLineItemParams[];
  /** Items the shopper may add on the page (decision 0061): a catalogue price each, none added at first. */
  optional_items?: Array<Pick<CheckoutLineItemParams, 'quantity' | 'adjustable_quantity'> & { price: string }>;
  currency?: string;
  success_url: string;
  cancel_url?: string;
  client_reference_id?: string;
  customer_email?: string;
  payment_method_types?: string[];
  metadata?: Record<string, string>;
  expires_at?: number;
  locale?: (typeof checkoutLocales)[number];
  /** An existing customer of the merchant: the session's PaymentIntent is made for them. */
  customer?: string;
  /** `always`: the page makes a Customer of the shopper with its confirmation's attempt (decision 0058). */
  customer_creation?: 'always' | 'if_required';
  payment_intent_data?: {
    capture_method?: 'automatic' | 'automatic_async' | 'manual';
    description?: string;
    metadata?: Record<string, string>;
    receipt_email?: string;
    setup_future_usage?: 'on_session' | 'off_session';
    statement_descriptor?: string;
    statement_descriptor_suffix?: string;
  };
  /** A card payment's own capture method and consent to keep the card, kept on the PaymentIntent (decision 0040). */
  payment_method_options?: CheckoutPaymentMethodOptions;
  /** What the page asks the shopper for besides the payment (decision 0051). */
  billing_address_collection?: 'auto' | 'required';
  shipping_address_collection?: { allowed_countries: string[] };
  phone_number_collection?: { enabled: boolean };
  /** The shipping rates offered, up to five: catalogue rates or new ones made with the session (decision 0052). */
  shipping_options?: Array<{ shipping_rate?: string; shipping_rate_data?: ShippingRateParams }>;
  /** A coupon or a promotion code applied by the merchant (decision 0062): one at most. */
  discounts?: Array<{ coupon?: string; promotion_code?: string }>;
  /** Whether the shopper may type a promotion code on the page; not with `discounts`. */
  allow_promotion_codes?: boolean;
  /** The shopper's own choice to save their card, and which saved cards the page shows (decision 0063). */
  saved_payment_method_options?: Omit<CheckoutSavedMethodOptions, 'payment_method_remove'> & { payment_method_remove?: 'enabled' | 'disabled' };
  /** A recovery address once it expires unpaid (decision 0064). */
  after_expiration?: { recovery?: { enabled: boolean; allow_promotion_codes?: boolean } };
}

/** How long a recovery address works once its session has expired, as at Stripe: 30 days. */
const recoveryLifetimeMs = 30 * 24 * 3_600_000;

const regionNames = new Intl.DisplayNames(['en'], { type: 'region', fallback: 'none' });
/**
 * Codes the Unicode data names that are no ISO 3166-1 country: groupings (EU, EZ, UN, QO), the unknown region,
 * pseudo-locales, and places ISO reserves apart (Ascension, Clipperton, Diego Garcia, Ceuta and Melilla, the Canary
 * Islands, Tristan da Cunha, Sark). Stripe's country lists leave them out too.
 */
const notCountries: ReadonlySet<string> = new Set(['EU', 'EZ', 'UN', 'QO', 'ZZ', 'XA', 'XB', 'AC', 'CP', 'DG', 'EA', 'IC', 'TA', 'CQ']);

/** Whether `code` is a country: an ISO 3166-1 alpha-2 code, upper case, that the platform's Unicode data names. */
export function isCountry(code: string): boolean {
  return /^[A-Z]{2}$/.test(code) && !notCountries.has(code) && regionNames.of(code) !== undefined;
}

/** The countries a session ships to, each checked, in the order given, without repeats. */
function shippingCountriesOf(params: CreateCheckoutSessionParams): string[] | null {
  const asked = params.shipping_address_collection?.allowed_countries;
  if (asked === undefined) return null;
  if (asked.length === 0) {
    throw new CofferError('parameter_missing', 'shipping_address_collection[allowed_countries] needs at least one country.', { param: 'shipping_address_collection[allowed_countries]' });
  }
  asked.forEach((code, index) => {
    if (!isCountry(code)) {
      throw new CofferError('parameter_invalid', `shipping_address_collection[allowed_countries][${index}]: "${code}" is not a two-letter country code (ISO 3166-1, upper case, such as US or CN).`,
        { param: `shipping_address_collection[allowed_countries][${index}]` });
    }
  });
  return [...new Set(asked)];
}

const expiryMinMs = 30 * 60_000;
const expiryMaxMs = 24 * 3_600_000;

function scopeOf(ctx: RequestContext) {
  return { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
}

export function checkUrl(value: string, param: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CofferError('url_invalid', `${param} must be an absolute http or https URL, such as https://shop.example/thanks; got "${value}".`, { param });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new CofferError('url_invalid', `${param} must be an http or https URL; got a ${url.protocol} URL.`, { param });
  }
  return value;
}

/** Stripe's default bounds of an adjustable quantity: none to 99. */
const adjustableDefaults = { minimum: 0, maximum: 99 };

/**
 * The bounds within which the shopper may change an item's quantity on the page, checked: the least no more than the
 * most, the quantity given between them (decision 0053). Undefined for an item whose quantity is fixed.
 */
export function adjustableOf(item: CheckoutLineItemParams, param: string): CheckoutLineItem['adjustable'] {
  const asked = item.adjustable_quantity;
  if (asked === undefined) return undefined;
  const at = `${param}[adjustable_quantity]`;
  if (!asked.enabled) {
    if (asked.minimum !== undefined || asked.maximum !== undefined) {
      throw new CofferError('parameter_invalid', `${at}[minimum] and [maximum] apply only with ${at}[enabled]=true.`, { param: `${at}[enabled]` });
    }
    return undefined;
  }
  const minimum = asked.minimum ?? adjustableDefaults.minimum;
  const maximum = asked.maximum ?? adjustableDefaults.maximum;
  if (minimum > maximum) throw new CofferError('parameter_invalid', `${at}[minimum] (${minimum}) is more than its maximum (${maximum}).`, { param: `${at}[minimum]` });
  if (item.quantity < minimum || item.quantity > maximum) {
    throw new CofferError('parameter_invalid', `${param}[quantity] (${item.quantity}) must be between the adjustable minimum (${minimum}) and maximum (${maximum}).`, { param: `${param}[quantity]` });
  }
  return { minimum, maximum };
}

/**
 * Validates the order: every line item in one currency, amounts valid for it, the total within Coffer's bounds.
 * An item is a catalogue price (`price`: active, its product too) or an amount given with the session
 * (`price_data`, for a catalogue product or a name). The amount charged is the price's now: a later change to the
 * catalogue does not change an order already made (decision 0049). The catalogue is read in two queries, before
 * the session's transaction; a price archived meanwhile is still sold by a session made from it, as at Stripe.
 */
async function lineItemsOf(services: Services, ctx: RequestContext, params: CreateCheckoutSessionParams): Promise<{ items: CheckoutLineItem[]; currency: string; total: bigint }> {
  if (params.line_items.length === 0) throw new CofferError('parameter_missing', 'line_items needs at least one item.', { param: 'line_items' });
  // The optional items are priced and checked as the others; each starts out of the order (quantity 0).
  const entries: Array<{ item: CheckoutLineItemParams; param: string; optional: boolean }> = [
    ...params.line_items.map((item, index) => ({ item, param: `line_items[${index}]`, optional: false })),
    ...(params.optional_items ?? []).map((item, index) => ({ item, param: `optional_items[${index}]`, optional: true })),
  ];
  entries.forEach(({ item, param }) => {
    if (item.price !== undefined && item.price_data !== undefined) {
      throw new CofferError('parameters_exclusive', `You may only specify one of these parameters: ${param}[price], ${param}[price_data].`, { param: `${param}[price_data]` });
    }
    if (item.price === undefined && item.price_data === undefined) {
      throw new CofferError('parameter_missing', `Missing required param: ${param}[price] (or ${param}[price_data]).`, { param: `${param}[price]` });
    }
    const data = item.price_data;
    if (data !== undefined && (data.product === undefined) === (data.product_data === undefined)) {
      throw new CofferError(data.product === undefined ? 'parameter_missing' : 'parameters_exclusive',
        `${param}[price_data] needs exactly one of product (a catalogue product) and product_data (a name for this item).`, { param: `${param}[price_data][product_data]` });
    }
  });
  const scope = scopeOf(ctx);
  const priceIds = [...new Set(entries.flatMap(({ item }) => (item.price === undefined ? [] : [item.price])))];
  const prices = priceIds.length === 0 ? [] : await services.db.selectFrom('prices').selectAll().where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).where('id', 'in', priceIds).execute();
  const productIds = [...new Set([...prices.map((price) => price.product_id), ...params.line_items.flatMap((item) => (item.price_data?.product === undefined ? [] : [item.price_data.product]))])];
  const products = productIds.length === 0 ? [] : await services.db.selectFrom('products').selectAll().where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).where('id', 'in', productIds).execute();
  const productOf = (id: string, param: string) => {
    const product = products.find((row) => row.id === id);
    if (product === undefined || product.deleted_at !== null) throw resourceMissing('product', id, param);
    if (!product.active) throw new CofferError('parameter_invalid', `The product ${id} is archived (active=false); a session sells only active products.`, { param });
    return product;
  };
  entries.forEach(({ item, param }) => {
    if (item.price !== undefined && !prices.some((row) => row.id === item.price)) {
      throw resourceMissing('price', item.price, `${param}[price]`);
    }
  });
  const firstCurrency = params.line_items[0]?.price_data?.currency ?? prices.find((price) => price.id === params.line_items[0]?.price)?.currency ?? '';
  const currency = parseCurrency(params.currency ?? firstCurrency, 'currency');
  let total = 0n;
  const items = entries.map(({ item, param, optional }): CheckoutLineItem => {
    let unitAmount: bigint;
    let itemCurrency: string;
    let currencyParam: string;
    let described: Pick<CheckoutLineItem, 'name' | 'price_id' | 'product_id' | 'description' | 'images' | 'adjustable' | 'metadata'>;
    if (item.price !== undefined) {
      const price = prices.find((row) => row.id === item.price);
      assert(price !== undefined, 'every price named was found (checked above)');
      if (!price.active) throw new CofferError('parameter_invalid', `The price ${price.id} is archived (active=false); a session sells only active prices.`, { param: `${param}[price]` });
      const product = productOf(price.product_id, `${param}[price]`);
      unitAmount = price.unit_amount;
      itemCurrency = price.currency;
      currencyParam = `${param}[price]`;
      described = { name: product.name, price_id: price.id, product_id: product.id, ...(product.description === null ? {} : { description: product.description }) };
    } else {
      const data = item.price_data;
      assert(data !== undefined, 'an item without a price has price_data (checked above)');
      itemCurrency = parseCurrency(data.currency, `${param}[price_data][currency]`).code;
      currencyParam = `${param}[price_data][currency]`;
      unitAmount = parseAmount(data.unit_amount, parseCurrency(data.currency), `${param}[price_data][unit_amount]`).amountMinor;
      if (data.product !== undefined) {
        const product = productOf(data.product, `${param}[price_data][product]`);
        described = { name: product.name, product_id: product.id, ...(product.description === null ? {} : { description: product.description }) };
      } else {
        const named = data.product_data;
        assert(named !== undefined, 'price_data has product or product_data (checked above)');
        if (named.name.trim() === '') throw new CofferError('parameter_invalid_empty', `${param}[price_data][product_data][name] cannot be empty.`, { param: `${param}[price_data][product_data][name]` });
        const description = named.description?.trim() ?? '';
        described = { name: named.name.trim(), ...(description === '' ? {} : { description }), ...(named.images === undefined ? {} : { images: named.images }) };
      }
    }
    const adjustable = adjustableOf(item, param);
    const metadata = mergeMetadata({}, item.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax, `${param}[metadata]`);
    if (adjustable !== undefined) described = { ...described, adjustable };
    if (Object.keys(metadata).length > 0) described = { ...described, metadata };
    if (itemCurrency !== currency.code) {
      throw new CofferError('parameter_invalid', `All line items must be in one currency: ${param} is in ${itemCurrency}, the session in ${currency.code}.`, { param: currencyParam });
    }
    if (optional) return { ...described, unit_amount: Number(unitAmount), quantity: 0, amount_total: 0, optional: { quantity: item.quantity } };
    const amount = unitAmount * BigInt(item.quantity);
    total += amount;
    return { ...described, unit_amount: Number(unitAmount), quantity: item.quantity, amount_total: Number(amount) };
  });
  if (total > BigInt(limits.amountMinorMax)) {
    throw new CofferError('amount_too_large', `The order's total (${total}) is above the largest amount Coffer takes (${limits.amountMinorMax}).`, { param: 'line_items' });
  }
  if (total < BigInt(currency.minimumMinor)) {
    throw new CofferError('amount_too_small', `The order's total (${formatAmount(total, currency)}) is below the smallest payment in ${currency.code}: ${formatAmount(currency.minimumMinor, currency)}.`, { param: 'line_items' });
  }
  return { items, currency: currency.code, total };
}

/** The methods the page offers: as asked, or card plus the wallets where the currency allows them (CNY). */
function methodTypesOf(params: CreateCheckoutSessionParams, currency: string): CheckoutMethodType[] {
  const asked = params.payment_method_types;
  // Alipay and WeChat Pay take the money at once: a session that captures later offers the card alone, and one
  // that asks for a wallet with it is refused rather than shown with a method that could never pay.
  const manual = params.payment_intent_data?.capture_method === 'manual';
  // Nor can Coffer keep a wallet to pay with later: a session asked to keep whatever pays (the top-level
  // setup_future_usage) offers the card alone, as Stripe's Checkout leaves out the methods that cannot be kept.
  const keeps = params.payment_intent_data?.setup_future_usage !== undefined;
  if (asked === undefined) return currency === 'cny' && !manual && !keeps ? ['card', 'alipay', 'wechat_pay'] : ['card'];
  const types: CheckoutMethodType[] = [];
  asked.forEach((type, index) => {
    const known = checkoutMethodTypes.find((candidate) => candidate === type);
    if (known === undefined) {
      throw new CofferError('parameter_invalid', `payment_method_types[${index}]: "${type}" is not offered on the hosted checkout; use card, alipay or wechat_pay.`, { param: `payment_method_types[${index}]` });
    }
    if (known !== 'card' && currency !== 'cny') {
      throw new CofferError('parameter_invalid', `${known} takes payments in CNY; this session is in ${currency.toUpperCase()}.`, { param: `payment_method_types[${index}]` });
    }
    if (known !== 'card' && manual) {
      throw new CofferError('parameter_invalid', `${known} does not support payment_intent_data[capture_method]=manual: it takes the payment at once. Offer card alone, or capture automatically.`, { param: `payment_method_types[${index}]` });
    }
    if (known !== 'card' && keeps) {
      throw new CofferError('parameter_invalid', `${known} cannot be kept for later payments, which payment_intent_data[setup_future_usage] asks of every method. Offer card alone, or keep cards only with payment_method_options[card][setup_future_usage].`, { param: `payment_method_types[${index}]` });
    }
    if (!types.includes(known)) types.push(known);
  });
  if (types.length === 0) throw new CofferError('parameter_missing', 'payment_method_types needs at least one type.', { param: 'payment_method_types' });
  return types;
}

/**
 * The shipping rates a session offers (decision 0052): each a rate of the merchant's (`shipping_rate`: active, in the
 * session's currency) or one made with the session (`shipping_rate_data`, written in the session's transaction), as
 * the page will show them. Read before the transaction; a rate archived meanwhile is still offered by a session made
 * from it, as at Stripe. The first is chosen until the shopper picks another.
 */
async function shippingOptionsOf(services: Services, ctx: RequestContext, params: CreateCheckoutSessionParams, currency: string, now: Date): Promise<{ options: CheckoutShippingOption[]; made: CheckedShippingRate[] } | null> {
  const asked = params.shipping_options;
  if (asked === undefined || asked.length === 0) return null;
  const scope = scopeOf(ctx);
  const ids = asked.flatMap((option) => (option.shipping_rate === undefined ? [] : [option.shipping_rate]));
  const rows = ids.length === 0 ? [] : await services.db.selectFrom('shipping_rates').selectAll().where('merchant_id', '=', scope.merchantId)
    .where('livemode', '=', scope.livemode).where('id', 'in', ids).execute();
  const made: CheckedShippingRate[] = [];
  const options = asked.map((option, index): CheckoutShippingOption => {
    const param = `shipping_options[${index}]`;
    if ((option.shipping_rate === undefined) === (option.shipping_rate_data === undefined)) {
      throw new CofferError(option.shipping_rate === undefined ? 'parameter_missing' : 'parameters_exclusive',
        `${param} needs exactly one of shipping_rate (a rate's id) and shipping_rate_data (a new rate).`, { param: `${param}[shipping_rate]` });
    }
    let rate: Omit<CheckedShippingRate, 'metadata'>;
    let currencyParam: string;
    if (option.shipping_rate !== undefined) {
      const id = option.shipping_rate;
      const row = rows.find((candidate) => candidate.id === id);
      if (row === undefined) throw resourceMissing('shipping rate', id, `${param}[shipping_rate]`);
      if (!row.active) throw new CofferError('parameter_invalid', `The shipping rate ${id} is archived (active=false); a session offers only active rates.`, { param: `${param}[shipping_rate]` });
      if (asked.slice(0, index).some((earlier) => earlier.shipping_rate === id)) {
        throw new CofferError('parameter_invalid', `The shipping rate ${id} is offered twice; offer each rate once.`, { param: `${param}[shipping_rate]` });
      }
      rate = row;
      currencyParam = `${param}[shipping_rate]`;
    } else {
      const data = option.shipping_rate_data;
      assert(data !== undefined, 'an option without a rate id has shipping_rate_data (checked above)');
      const checked = checkShippingRate(ctx, data, `${param}[shipping_rate_data]`, now);
      made.push(checked);
      rate = checked;
      currencyParam = `${param}[shipping_rate_data][fixed_amount][currency]`;
    }
    if (rate.currency !== currency) {
      throw new CofferError('parameter_invalid', `${param} is in ${rate.currency}, the session in ${currency}: a shipping rate must be in the session's currency.`, { param: currencyParam });
    }
    return { shipping_rate: rate.id, display_name: rate.display_name, shipping_amount: Number(rate.amount), delivery_estimate: rate.delivery_estimate };
  });
  return { options, made };
}

/** The order's total with the given shipping option, refused if the dearest option would take it past Coffer's largest amount. */
function withShipping(itemsTotal: bigint, shipping: { options: CheckoutShippingOption[] } | null): { total: bigint; shipping: bigint } {
  if (shipping === null) return { total: itemsTotal, shipping: 0n };
  const dearest = shipping.options.reduce((most, option) => Math.max(most, option.shipping_amount), 0);
  if (itemsTotal + BigInt(dearest) > BigInt(limits.amountMinorMax)) {
    throw new CofferError('amount_too_large', `The order's total with shipping (${itemsTotal + BigInt(dearest)}) is above the largest amount Coffer takes (${limits.amountMinorMax}).`, { param: 'shipping_options' });
  }
  const first = BigInt(shipping.options[0]?.shipping_amount ?? 0);
  return { total: itemsTotal + first, shipping: first };
}

/**
 * The discount the merchant applies with the session (`discounts`, decision 0062): one coupon or promotion code of
 * theirs, which can be redeemed now and which the order can take (with its first shipping option). Read before the
 * transaction; a payment with it takes one of its redemptions when its attempt starts.
 */
async function sessionDiscountOf(services: Services, ctx: RequestContext, params: CreateCheckoutSessionParams, order: DiscountedOrder, now: Date): Promise<{ discount: CheckoutDiscount; amount: bigint } | null> {
  const asked = params.discounts;
  if (asked === undefined || asked.length === 0) return null;
  if (params.allow_promotion_codes === true) {
    throw new CofferError('parameters_exclusive', 'You may only specify one of these parameters: allow_promotion_codes, discounts.', { param: 'discounts' });
  }
  if (asked.length > 1) throw new CofferError('parameter_invalid', 'A Checkout Session takes one discount: discounts may have one entry.', { param: 'discounts[1]' });
  const [entry] = asked;
  assert(entry !== undefined, 'one entry (checked above)');
  if ((entry.coupon === undefined) === (entry.promotion_code === undefined)) {
    throw new CofferError(entry.coupon === undefined ? 'parameter_missing' : 'parameters_exclusive', 'discounts[0] needs exactly one of coupon and promotion_code.', { param: 'discounts[0][coupon]' });
  }
  const scope = scopeOf(ctx);
  let found: CodeWithCoupon | { coupon: CouponRow; code: null };
  let param: string;
  if (entry.coupon !== undefined) {
    param = 'discounts[0][coupon]';
    found = { coupon: await findCoupon(services.db, ctx, entry.coupon, { param }), code: null };
  } else {
    param = 'discounts[0][promotion_code]';
    const code = await findPromotionCode(services.db, ctx, entry.promotion_code ?? '', { param });
    found = { code, coupon: await couponOfCode(services.db, code) };
  }
  const checked = await checkDiscount(services.db, scope, found, order, now.getTime(), null);
  if ('refused' in checked) {
    throw new CofferError('parameter_invalid', `${param}: ${entry.coupon ?? entry.promotion_code} ${discountRefusalText(checked.refused)}.`, { param });
  }
  return checked;
}

/** The order as a discount is checked against it: its items' amounts and products, and the shipping first offered. */
function discountedOrder(currency: string, customerId: string | null, items: readonly CheckoutLineItem[], shipping: bigint): DiscountedOrder {
  return { currency, customerId, items: items.map((item) => ({ amount: item.amount_total, product: item.product_id })), shipping };
}

/** A session made for a payment link (flows/payment-links.ts): its link, and no success URL for a hosted confirmation. */
export interface FromPaymentLink {
  paymentLinkId: string;
}

/**
 * Checks a session's parameters as its creation would, and writes nothing: a payment link is checked so when it is
 * made (its sessions are made later, from what it keeps). Returns the session's currency.
 */
export async function checkCheckoutParams(services: Services, ctx: RequestContext, params: CreateCheckoutSessionParams, link: FromPaymentLink): Promise<{ currency: string }> {
  const inputs = await sessionInputs(services, ctx, params, new Date(services.clock.nowMs()), link);
  return { currency: inputs.currency };
}

/** Everything a session is made from, checked; nothing written. */
async function sessionInputs(services: Services, ctx: RequestContext, params: CreateCheckoutSessionParams, now: Date, link: FromPaymentLink | undefined) {
  const { items, currency, total: itemsTotal } = await lineItemsOf(services, ctx, params);
  const shipping = await shippingOptionsOf(services, ctx, params, currency, now);
  const { total: undiscounted, shipping: amountShipping } = withShipping(itemsTotal, shipping);
  const types = methodTypesOf(params, currency);
  // A payment link's hosted confirmation is Coffer's own page: its sessions have no success URL.
  if (link === undefined || params.success_url !== '') checkUrl(params.success_url, 'success_url');
  if (params.cancel_url !== undefined) checkUrl(params.cancel_url, 'cancel_url');
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const expiresAt = params.expires_at === undefined ? new Date(now.getTime() + expiryMaxMs) : new Date(params.expires_at * 1000);
  const lead = expiresAt.getTime() - now.getTime();
  if (lead < expiryMinMs || lead > expiryMaxMs) {
    throw new CofferError('parameter_invalid', 'expires_at must be between 30 minutes and 24 hours from now.', { param: 'expires_at' });
  }
  const intentData = params.payment_intent_data ?? {};
  if (intentData.statement_descriptor !== undefined && types.includes('card')) throw cardStatementDescriptorRefused('payment_intent_data[statement_descriptor]');
  const intentMetadata = mergeMetadata({}, intentData.metadata);
  checkMetadataSize(intentMetadata, limits.metadataKeysMax, 'payment_intent_data[metadata]');
  const cardOptions = cardOptionsOf(params, types);
  const shippingCountries = shippingCountriesOf(params);
  const customer = await sessionCustomer(services, ctx, params);
  const presentation = presentationOf(params, shippingCountries !== null);
  const discount = await sessionDiscountOf(services, ctx, params, discountedOrder(currency, customer?.id ?? null, items, amountShipping), now);
  const total = undiscounted - (discount?.amount ?? 0n);
  const savedMethodOptions = savedMethodOptionsOf(params, types, cardOptions);
  return { items, currency, shipping, total, amountShipping, types, metadata, expiresAt, intentData, intentMetadata, cardOptions, shippingCountries, customer, presentation, discount, savedMethodOptions };
}

export async function createCheckoutSession(services: Services, ctx: RequestContext, params: CreateCheckoutSessionParams, respond?: Respond<CheckoutSessionRow>, link?: FromPaymentLink,
  recoveredFrom?: string): Promise<CheckoutSessionRow> {
  const scope = scopeOf(ctx);
  const now = new Date(services.clock.nowMs());
  const {
    items, currency, shipping, total, amountShipping, types, metadata, expiresAt, intentData, intentMetadata, cardOptions, shippingCountries, customer, presentation, discount,
    savedMethodOptions,
  } = await sessionInputs(services, ctx, params, now, link);
  const id = newSecretId(scope.livemode ? 'cs_live' : 'cs_test');
  const intent = newPaymentIntentRow(newId('pi'), scope, {
    amount: total, currency, status: 'requires_payment_method', captureMethod: intentData.capture_method ?? 'automatic', confirmationMethod: 'automatic',
    paymentMethodId: null, paymentMethodTypes: types, automaticPaymentMethods: null,
    description: intentData.description || orderDescription(items), metadata: intentMetadata,
    receiptEmail: intentData.receipt_email ?? params.customer_email ?? null, customerId: customer?.id ?? null,
    statementDescriptor: intentData.statement_descriptor || null, statementDescriptorSuffix: intentData.statement_descriptor_suffix || null,
    setupFutureUsage: intentData.setup_future_usage ?? null,
    options: {
      card_capture_method: cardOptions.card?.capture_method ?? null, card_setup_future_usage: cardOptions.card?.setup_future_usage ?? null,
      card_request_incremental_authorization: cardOptions.card?.request_incremental_authorization ?? null,
      card_request_three_d_secure: cardOptions.card?.request_three_d_secure ?? null,
    },
    shipping: null, returnUrl: null,
  }, now);
  const session: CheckoutSessionRow = {
    id, merchant_id: scope.merchantId, livemode: scope.livemode, seq: 0n, created_at: now, updated_at: now, expires_at: expiresAt,
    status: 'open', payment_status: 'unpaid', payment_intent_id: intent.id, amount_total: total, currency, line_items: items,
    success_url: params.success_url, cancel_url: params.cancel_url ?? null, customer_email: params.customer_email ?? null,
    payment_method_types: types, metadata, locale: params.locale === undefined || params.locale === 'auto' ? null : params.locale, completed_at: null,
    kind: 'checkout', wechat_openid: null, client_reference_id: params.client_reference_id ?? null, customer_details: null, step_up_identity_refusals: 0,
    customer_id: customer?.id ?? null, payment_method_options: cardOptions,
    billing_address_collection: params.billing_address_collection ?? null, shipping_countries: shippingCountries,
    phone_number_collection: params.phone_number_collection?.enabled === true, collected: null,
    shipping_options: shipping?.options ?? null, shipping_rate_id: shipping?.options[0]?.shipping_rate ?? null, amount_shipping: amountShipping,
    payment_link_id: link?.paymentLinkId ?? null, customer_creation: params.customer_creation ?? null, ...presentation,
    discount: discount?.discount ?? null, discount_coupon_id: discount?.discount.coupon.id ?? null, discount_promotion_code_id: discount?.discount.promotion_code?.id ?? null,
    amount_discount: discount?.amount ?? 0n, allow_promotion_codes: params.allow_promotion_codes === true, promotion_code_refusals: 0,
    saved_payment_method_options: savedMethodOptions,
    recovery: recoveryOf(params, link), recovery_token: null, recovery_url: null, recovery_expires_at: null, recovered_from: recoveredFrom ?? null,
  };
  const trail = requestTrail(ctx);
  const intentRows = changeRows(trail, scope, { action: 'payment_intent.create', objectType: 'payment_intent', objectId: intent.id, details: { checkout_session: id, ...(customer === undefined ? {} : { customer: customer.id }) } },
    [{ type: 'payment_intent.created', paymentIntent: { after: intent } }], now);
  await inTransaction(services.db, async (tx) => {
    for (const rate of shipping?.made ?? []) {
      await insertShippingRate(tx, rate);
      await recordChange(tx, trail, scope, { action: 'shipping_rate.create', objectType: 'shipping_rate', objectId: rate.id,
        details: { currency: rate.currency, amount: rate.amount.toString(), display_name: rate.display_name, checkout_session: id } }, [], now);
    }
    await tx.insertInto('payment_intents').values(paymentIntentInsert(intent)).execute();
    await tx.insertInto('events').values(intentRows.eventRows).execute();
    await tx.insertInto('audit_log').values(intentRows.audit).execute();
    await tx.insertInto('checkout_sessions').values(sessionInsert(session)).execute();
    await recordChange(tx, trail, scope, { action: 'checkout_session.create', objectType: 'checkout_session', objectId: id,
      details: {
        amount_total: total.toString(), currency, ...(customer === undefined ? {} : { customer: customer.id }), ...(link === undefined ? {} : { payment_link: link.paymentLinkId }),
        ...(shipping === null ? {} : { shipping_options: shipping.options.map((option) => option.shipping_rate) }),
        ...(discount === null ? {} : { discount: { coupon: discount.discount.coupon.id, promotion_code: discount.discount.promotion_code?.id ?? null, amount: discount.amount.toString() } }),
      } }, [], now);
    await respond?.(tx, session);
  });
  return session;
}

/**
 * The session's customer: an existing, not deleted customer of this merchant and mode. Stripe takes `customer` or
 * `customer_email`, not both (the customer's own email is the one used), and so does Coffer.
 */
async function sessionCustomer(services: Services, ctx: RequestContext, params: CreateCheckoutSessionParams): Promise<CustomerRow | undefined> {
  if (params.customer === undefined) return undefined;
  if (params.customer_creation !== undefined) {
    throw new CofferError('parameters_exclusive', 'You may only specify one of these parameters: customer, customer_creation. A session made for a customer creates none.', { param: 'customer_creation' });
  }
  if (params.customer_email !== undefined) {
    throw new CofferError('parameters_exclusive', 'You may only specify one of these parameters: customer, customer_email. The customer\'s own email is used for a session made for a customer.', { param: 'customer_email' });
  }
  return liveCustomer(services.db, ctx, params.customer);
}

/**
 * What a session recovering this one would be made with (`after_expiration[recovery][enabled]`, decision 0064): the
 * parameters as given, but for the expiry (a new session has its own) and the promotion codes (the recovery's say).
 * A payment link's sessions have none: the link itself is the address to come back to.
 */
function recoveryOf(params: CreateCheckoutSessionParams, link: FromPaymentLink | undefined): CheckoutRecovery | null {
  const recovery = params.after_expiration?.recovery;
  if (recovery?.enabled !== true) return null;
  if (link !== undefined) throw new CofferError('parameter_invalid', 'A payment link\'s sessions have no recovery: the link is the address to come back to.', { param: 'after_expiration' });
  // A recovered session has no recovery of its own: one address, not a chain of them.
  const { expires_at: _expires, allow_promotion_codes: _codes, after_expiration: _recovery, ...kept } = params;
  const allow = recovery.allow_promotion_codes === true;
  if (allow && params.discounts !== undefined && params.discounts.length > 0) {
    throw new CofferError('parameters_exclusive', 'after_expiration[recovery][allow_promotion_codes] cannot be used with discounts: the recovered session would take both.', { param: 'after_expiration[recovery][allow_promotion_codes]' });
  }
  return { allow_promotion_codes: allow, params: kept as unknown as Record<string, unknown> };
}

/**
 * `saved_payment_method_options` (decision 0063), checked: the shopper's own choice to save the card they pay with
 * needs a customer to save it to (the session's, or the one made of the shopper) and a card to save, and is refused
 * for a session that keeps the card whatever the shopper says (`setup_future_usage`). Removing saved cards from the
 * page is not offered.
 */
function savedMethodOptionsOf(params: CreateCheckoutSessionParams, types: readonly CheckoutMethodType[], cardOptions: CheckoutPaymentMethodOptions): CheckoutSavedMethodOptions | null {
  const asked = params.saved_payment_method_options;
  if (asked === undefined) return null;
  const at = 'saved_payment_method_options';
  if (asked.payment_method_remove === 'enabled') {
    throw new CofferError('parameter_invalid', `Coffer's page does not let shoppers remove saved cards: leave out ${at}[payment_method_remove] or set it to disabled.`, { param: `${at}[payment_method_remove]` });
  }
  if (asked.payment_method_save === 'enabled') {
    if (params.customer === undefined && params.customer_creation !== 'always') {
      throw new CofferError('parameter_invalid', `${at}[payment_method_save]=enabled needs a customer to save the card to: give the session a customer, or customer_creation=always.`,
        { param: `${at}[payment_method_save]` });
    }
    if (!types.includes('card')) throw new CofferError('parameter_invalid', `${at}[payment_method_save]=enabled saves cards, and this session offers none.`, { param: `${at}[payment_method_save]` });
    if (params.payment_intent_data?.setup_future_usage !== undefined || cardOptions.card?.setup_future_usage !== undefined) {
      throw new CofferError('parameter_invalid', `${at}[payment_method_save]=enabled lets the shopper choose whether to save the card; this session saves it already (setup_future_usage). Give one or the other.`,
        { param: `${at}[payment_method_save]` });
    }
  }
  return {
    ...(asked.payment_method_save === undefined ? {} : { payment_method_save: asked.payment_method_save }),
    ...(asked.payment_method_remove === undefined ? {} : { payment_method_remove: asked.payment_method_remove }),
    ...(asked.allow_redisplay_filters === undefined ? {} : { allow_redisplay_filters: [...new Set(asked.allow_redisplay_filters)] }),
  };
}

/** The card options as given, for a session that offers cards: they say what a card payment does, and only that. */
function cardOptionsOf(params: CreateCheckoutSessionParams, types: readonly CheckoutMethodType[]): CheckoutPaymentMethodOptions {
  const card = params.payment_method_options?.card;
  if (card === undefined || Object.keys(card).length === 0) return {};
  if (!types.includes('card')) {
    throw new CofferError('parameter_invalid', `payment_method_options[card] applies to card payments, and this session does not offer cards (payment_method_types: ${types.join(', ')}).`, { param: 'payment_method_options[card]' });
  }
  return {
    card: {
      ...(card.capture_method === undefined ? {} : { capture_method: card.capture_method }),
      ...(card.request_incremental_authorization === undefined ? {} : { request_incremental_authorization: card.request_incremental_authorization }),
      ...(card.setup_future_usage === undefined ? {} : { setup_future_usage: card.setup_future_usage }),
      ...(card.request_three_d_secure === undefined ? {} : { request_three_d_secure: card.request_three_d_secure }),
    },
  };
}

function sessionInsert(row: CheckoutSessionRow) {
  const { seq: _seq, ...rest } = row;
  return {
    ...rest, line_items: JSON.stringify(row.line_items), payment_method_types: JSON.stringify(row.payment_method_types), metadata: JSON.stringify(row.metadata),
    customer_details: row.customer_details === null ? null : JSON.stringify(row.customer_details), payment_method_options: JSON.stringify(row.payment_method_options),
    shipping_countries: row.shipping_countries === null ? null : JSON.stringify(row.shipping_countries), collected: row.collected === null ? null : JSON.stringify(row.collected),
    shipping_options: row.shipping_options === null ? null : JSON.stringify(row.shipping_options),
    custom_text: row.custom_text === null ? null : JSON.stringify(row.custom_text), consent_collection: row.consent_collection === null ? null : JSON.stringify(row.consent_collection),
    custom_fields: row.custom_fields === null ? null : JSON.stringify(row.custom_fields),
    discount: row.discount === null ? null : JSON.stringify(row.discount),
    saved_payment_method_options: row.saved_payment_method_options === null ? null : JSON.stringify(row.saved_payment_method_options),
    recovery: row.recovery === null ? null : JSON.stringify(row.recovery),
  };
}

/** `param`: the parameter that named it, which a not-found error names (a list's cursor, say). */
export async function findCheckoutSession(reader: Tx | Services['db'], ctx: RequestContext, id: string, param = 'session', lock = false): Promise<CheckoutSessionRow> {
  const scope = scopeOf(ctx);
  let query = reader.selectFrom('checkout_sessions').selectAll().where('id', '=', id).where('kind', '=', 'checkout')
    .where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode);
  if (lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('checkout.session', id, param);
  return row;
}

export interface CheckoutSessionListParams extends ListParams {
  payment_intent?: string;
  payment_link?: string;
  status?: CheckoutSessionRow['status'];
  customer?: string;
  customer_details?: { email: string };
}

/**
 * A page of the merchant's Checkout Sessions, newest first, as Stripe lists them (paging, `created` and cursors as
 * every list's), narrowed by payment, link, status, customer, or the shopper's email (as the session shows it in
 * `customer_details`, case aside).
 */
export async function listCheckoutSessions(services: Services, ctx: RequestContext, params: CheckoutSessionListParams): Promise<Page<CheckoutSessionRow>> {
  let rows = services.db.selectFrom('checkout_sessions').selectAll().where('kind', '=', 'checkout');
  if (params.payment_intent !== undefined) rows = rows.where('payment_intent_id', '=', params.payment_intent);
  if (params.payment_link !== undefined) rows = rows.where('payment_link_id', '=', params.payment_link);
  if (params.status !== undefined) rows = rows.where('status', '=', params.status);
  if (params.customer !== undefined) rows = rows.where('customer_id', '=', params.customer);
  if (params.customer_details !== undefined) {
    const email = params.customer_details.email.toLowerCase();
    rows = rows.where(sql<boolean>`lower(coalesce(customer_details->>'email', customer_email)) = ${email}`);
  }
  return listPage(services.db, scopeOf(ctx), { table: 'checkout_sessions', kind: 'checkout session', rows, cursorWhere: sql<boolean>`kind = 'checkout'` }, params);
}

/** The expired session a recovery address names (decision 0064), by its token alone (the token is the capability). */
export async function sessionForRecovery(services: Services, token: string): Promise<CheckoutSessionRow | undefined> {
  if (!/^[A-Za-z0-9]{32}$/.test(token)) return undefined;
  return services.db.selectFrom('checkout_sessions').selectAll().where('recovery_token', '=', token).executeTakeFirst();
}

/** Why a recovery address makes no session: past its 30 days, or its order paid through an earlier recovery. */
export async function recoveryClosed(services: Services, expired: CheckoutSessionRow): Promise<'expired' | 'paid' | undefined> {
  if (expired.recovery === null || expired.recovery_expires_at === null || expired.recovery_expires_at.getTime() <= services.clock.nowMs()) return 'expired';
  const paid = await services.db.selectFrom('checkout_sessions').select('id').where('recovered_from', '=', expired.id).where('status', '=', 'complete').executeTakeFirst();
  return paid === undefined ? undefined : 'paid';
}

/** The merchant's context for what a recovery address does: the merchant's, from the shopper's address. */
async function recoveryContext(services: Services, expired: CheckoutSessionRow, origin: string): Promise<RequestContext> {
  const merchant = await services.db.selectFrom('merchants').select('default_api_version').where('id', '=', expired.merchant_id).executeTakeFirstOrThrow();
  const version = parseApiVersion(merchant.default_api_version) ?? defaultApiVersion;
  return {
    actor: { merchantId: expired.merchant_id, livemode: expired.livemode, apiKeyId: 'checkout-recovery', keyKind: 'secret', apiVersion: version, eventApiVersion: version },
    shopperSession: expired.id, requestId: newId('req'), origin, idempotency: undefined,
  };
}

function recoveryParams(expired: CheckoutSessionRow): CreateCheckoutSessionParams {
  assert(expired.recovery !== null, 'a recovery address is given only to a session with recovery');
  return { ...expired.recovery.params, ...(expired.recovery.allow_promotion_codes ? { allow_promotion_codes: true } : {}) } as unknown as CreateCheckoutSessionParams;
}

/**
 * The order a recovery would make, as the new session would have it now (today's prices), checked as its creation
 * would be; nothing written. The address's page shows it, so that what the shopper is shown is what they pay.
 */
export async function recoveryOrder(services: Services, expired: CheckoutSessionRow): Promise<{ items: CheckoutLineItem[]; total: bigint; currency: string }> {
  const inputs = await sessionInputs(services, await recoveryContext(services, expired, 'coffer'), recoveryParams(expired), new Date(services.clock.nowMs()), undefined);
  return { items: inputs.items, total: inputs.total, currency: inputs.currency };
}

/**
 * A new session for the order an expired one left (decision 0064), made with the parameters the expired one was made
 * with (whatever is refused now, an archived price, a deleted customer, is refused as it would be to the merchant),
 * taking promotion codes if the recovery says so, and naming the session it recovers (`recovered_from`). Made as the
 * merchant's, with the shopper's address as its origin. A session made from the address and still open is given
 * again rather than another made, so that a second click does not make a second order to pay.
 */
export async function recoverSession(services: Services, expired: CheckoutSessionRow, origin: string): Promise<CheckoutSessionRow> {
  const open = await services.db.selectFrom('checkout_sessions').selectAll().where('recovered_from', '=', expired.id).where('status', '=', 'open')
    .where('expires_at', '>', new Date(services.clock.nowMs())).orderBy('seq', 'desc').executeTakeFirst();
  if (open !== undefined) return open;
  return createCheckoutSession(services, await recoveryContext(services, expired, origin), recoveryParams(expired), undefined, undefined, expired.id);
}

/** The session the hosted page shows, by its id alone (the id is the page's capability, as Stripe's is). */
export async function sessionForPage(services: Services, id: string): Promise<CheckoutSessionRow | undefined> {
  if (!/^cs_(test|live)_[A-Za-z0-9]{24}$/.test(id)) return undefined;
  return services.db.selectFrom('checkout_sessions').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * The hosted page for a PaymentIntent the merchant made through the API, opened with its client secret: a page
 * session of kind `payment_intent` (one per PaymentIntent, made on the first visit) that the Checkout Sessions API
 * does not show and that sends no checkout events; its order is the PaymentIntent's amount, kept up to date. The
 * secret is compared in constant time; undefined when it does not open a PaymentIntent the page can take.
 */
export async function pageForPaymentIntent(services: Services, clientSecret: string, returnUrl: string | undefined): Promise<CheckoutSessionRow | undefined> {
  const id = /^(pi_[A-Za-z0-9]{24})_secret_[A-Za-z0-9]{25}$/.exec(clientSecret)?.[1];
  if (id === undefined) return undefined;
  const intent = await services.db.selectFrom('payment_intents').selectAll().where('id', '=', id).executeTakeFirst();
  if (intent === undefined || !sameSecretText(clientSecret, intent.client_secret)) return undefined;
  if (returnUrl !== undefined) checkUrl(returnUrl, 'return_url');
  const existing = await services.db.selectFrom('checkout_sessions').selectAll().where('payment_intent_id', '=', intent.id).executeTakeFirst();
  if (existing !== undefined) return existing.kind === 'payment_intent' ? existing : undefined;
  // A page is made only for a PaymentIntent waiting for the shopper, that the merchant lets a client confirm.
  if (intent.confirmation_method !== 'automatic' || (intent.status !== 'requires_payment_method' && intent.status !== 'requires_confirmation')) return undefined;
  const types = pageMethodTypes(intent);
  if (types.length === 0) return undefined;
  const now = new Date(services.clock.nowMs());
  const scope = { merchantId: intent.merchant_id, livemode: intent.livemode };
  const session: CheckoutSessionRow = {
    id: newSecretId(scope.livemode ? 'cs_live' : 'cs_test'), merchant_id: scope.merchantId, livemode: scope.livemode, seq: 0n, created_at: now, updated_at: now,
    expires_at: new Date(now.getTime() + expiryMaxMs), status: 'open', payment_status: 'unpaid', payment_intent_id: intent.id, amount_total: intent.amount,
    currency: intent.currency, line_items: intentOrder(intent), success_url: returnUrl ?? intent.return_url ?? '', cancel_url: null,
    customer_email: intent.receipt_email, payment_method_types: types, metadata: {}, locale: null, completed_at: null, kind: 'payment_intent', wechat_openid: null, client_reference_id: null,
    customer_details: null, step_up_identity_refusals: 0, customer_id: null, payment_method_options: {}, customer_creation: null,
    billing_address_collection: null, shipping_countries: null, phone_number_collection: false, collected: null,
    shipping_options: null, shipping_rate_id: null, amount_shipping: 0n, payment_link_id: null, submit_type: null, custom_text: null, consent_collection: null, custom_fields: null,
    discount: null, discount_coupon_id: null, discount_promotion_code_id: null, amount_discount: 0n, allow_promotion_codes: false, promotion_code_refusals: 0, saved_payment_method_options: null,
    recovery: null, recovery_token: null, recovery_url: null, recovery_expires_at: null, recovered_from: null,
  };
  await inTransaction(services.db, async (tx) => {
    const inserted = await tx.insertInto('checkout_sessions').values({ ...sessionInsert(session), kind: 'payment_intent' })
      .onConflict((oc) => oc.column('payment_intent_id').doNothing()).returning('id').executeTakeFirst();
    if (inserted === undefined) return;
    const trail = await eventVersionOf(tx, scope.merchantId);
    await recordChange(tx, trail, scope, { action: 'checkout_session.create', objectType: 'checkout_session', objectId: session.id, details: { kind: 'payment_intent', payment_intent: intent.id } }, [], now);
  });
  return services.db.selectFrom('checkout_sessions').selectAll().where('payment_intent_id', '=', intent.id).where('kind', '=', 'payment_intent').executeTakeFirst();
}

/** The methods of a PaymentIntent the hosted page can take. */
function pageMethodTypes(intent: PaymentIntentRow): CheckoutMethodType[] {
  return checkoutMethodTypes.filter((type) => intent.payment_method_types.includes(type) && (type === 'card' || intent.currency === 'cny'));
}

function intentOrder(intent: PaymentIntentRow): CheckoutLineItem[] {
  const amount = Number(intent.amount);
  return [{ name: (intent.description ?? '').trim() === '' ? 'Payment' : (intent.description ?? '').slice(0, 200), unit_amount: amount, quantity: 1, amount_total: amount }];
}

/** What the shopper may choose on the hosted page before paying: a shipping rate, and adjustable quantities. */
export interface ShopperChoices {
  /** One of the rates the session offers. */
  shippingRate?: string;
  /** Every item's quantity, in the order's order: an adjustable one within its bounds, the others as they are. */
  quantities?: readonly number[];
}

/** Why the page's choices cannot be taken, and which field to mark; the page says it in the shopper's language. */
export type ChoiceRefusal =
  | { reason: 'chooseShipping'; field: 'shipping_rate' }
  | { reason: DiscountRefusal; field: 'promotion_code' }
  | { reason: 'quantityOutOfRange'; field: string; minimum: number; maximum: number }
  | { reason: 'orderEmpty' | 'orderTooLarge'; field: string }
  | { reason: 'orderTooSmall'; field: string; minimum: bigint };

/** The order a session's choices make: its items with their quantities, the shipping chosen, and the total. */
export interface ChosenOrder {
  items: CheckoutLineItem[];
  shippingRate: string | null;
  amountShipping: bigint;
  /** What the session's discount takes off these items (0 without one). */
  amountDiscount: bigint;
  total: bigint;
}

/**
 * The order `choices` make of `session`, or why they cannot be taken (decisions 0052, 0053): a rate the session does
 * not offer, a quantity outside its bounds or of an item that is not adjustable, nothing left in the order, or a
 * total outside what a payment in the currency may be.
 */
export function orderWith(session: CheckoutSessionRow, choices: ShopperChoices): { order: ChosenOrder } | { refused: ChoiceRefusal } {
  const options = session.shipping_options ?? [];
  const rate = choices.shippingRate ?? session.shipping_rate_id;
  const option = options.find((candidate) => candidate.shipping_rate === rate);
  if (options.length > 0 && option === undefined) return { refused: { reason: 'chooseShipping', field: 'shipping_rate' } };
  const given = choices.quantities;
  if (given !== undefined && given.length !== session.line_items.length) return { refused: { reason: 'orderEmpty', field: 'quantities' } };
  const items: CheckoutLineItem[] = [];
  let itemsTotal = 0n;
  for (const [index, item] of session.line_items.entries()) {
    const quantity = given?.[index] ?? item.quantity;
    // An optional item is out of the order (0) or in it, with the quantity it is added with or, adjustable, within its bounds.
    const fixed = item.optional?.quantity ?? item.quantity;
    const bounds = item.adjustable ?? { minimum: fixed, maximum: fixed };
    const left = item.optional !== undefined && quantity === 0;
    if (!Number.isSafeInteger(quantity) || (!left && (quantity < bounds.minimum || quantity > bounds.maximum))) {
      return { refused: { reason: 'quantityOutOfRange', field: `quantity.${index}`, minimum: bounds.minimum, maximum: bounds.maximum } };
    }
    const amount = BigInt(item.unit_amount) * BigInt(quantity);
    itemsTotal += amount;
    items.push({ ...item, quantity, amount_total: Number(amount) });
  }
  if (items.every((item) => item.quantity === 0)) return { refused: { reason: 'orderEmpty', field: 'quantity.0' } };
  const amountShipping = BigInt(option?.shipping_amount ?? 0);
  // The discount is recomputed for the order as it now is: a code's least order, or the currency's smallest payment,
  // may no longer be met.
  let amountDiscount = 0n;
  if (session.discount !== null) {
    const taken = discountForOrder(session.discount, discountedOrder(session.currency, session.customer_id, items, amountShipping));
    if ('refused' in taken) return { refused: { reason: taken.refused, field: 'promotion_code' } };
    amountDiscount = taken.amount;
  }
  const total = itemsTotal - amountDiscount + amountShipping;
  const currency = findCurrency(session.currency);
  assert(currency !== undefined, 'a session\'s currency is one Coffer knows (checked when it was made)');
  if (total > BigInt(limits.amountMinorMax)) return { refused: { reason: 'orderTooLarge', field: 'quantity.0' } };
  if (total < BigInt(currency.minimumMinor)) return { refused: { reason: 'orderTooSmall', field: 'quantity.0', minimum: BigInt(currency.minimumMinor) } };
  return { order: { items, shippingRate: option?.shipping_rate ?? null, amountShipping, amountDiscount, total } };
}

function changesOrder(session: CheckoutSessionRow, order: ChosenOrder, discountChanges = false): boolean {
  return discountChanges || order.shippingRate !== session.shipping_rate_id || order.items.some((item, index) => item.quantity !== session.line_items[index]?.quantity);
}

/** The discount the shopper applies on the page (a promotion code's, decision 0062), or removes (null). */
export interface DiscountChange {
  discount: CheckoutDiscount | null;
}

/** The session as it would be with the discount changed: the order is recomputed from it. */
export function withDiscount(session: CheckoutSessionRow, change: DiscountChange | undefined): CheckoutSessionRow {
  if (change === undefined) return session;
  return { ...session, discount: change.discount, discount_coupon_id: change.discount?.coupon.id ?? null, discount_promotion_code_id: change.discount?.promotion_code?.id ?? null };
}

/** The same coupon from the same code (or none): a discount's terms never change once it is made. */
function sameDiscount(a: CheckoutDiscount | null, b: CheckoutDiscount | null): boolean {
  return a?.coupon.id === b?.coupon.id && (a?.promotion_code?.id ?? null) === (b?.promotion_code?.id ?? null);
}

/**
 * A shopper who left a card's 3-D Secure challenge open and now pays for another order (another rate, other
 * quantities): the challenge is ended first, as a confirmation with another card would end it (no transaction is
 * open: the acquirer is called), so that the order can change. If it cannot be ended (a wallet payment under way, the
 * acquirer not answering), nothing changes, and the confirmation that follows answers for the payment under way.
 */
async function endChallengeForChoices(services: Services, session: CheckoutSessionRow, choices: ShopperChoices, origin: string, change: DiscountChange | undefined): Promise<void> {
  const intent = await services.db.selectFrom('payment_intents').selectAll().where('id', '=', session.payment_intent_id).executeTakeFirst();
  if (intent?.status !== 'requires_action' || session.status !== 'open') return;
  const chosen = orderWith(withDiscount(session, change), choices);
  if (!('order' in chosen) || !changesOrder(session, chosen.order, change !== undefined && !sameDiscount(change.discount, session.discount))) return;
  try {
    await endOpenChallenge(services, systemContext(session, 'checkout', true, origin), { merchantId: session.merchant_id, livemode: session.livemode }, intent, true);
  } catch (error) {
    if (!(error instanceof CofferError)) throw error;
  }
}

/**
 * The shopper's choices on the hosted page (a shipping rate, adjustable quantities, a promotion code), made with
 * their payment or with the code: the session's items, discount, shipping cost and total and its PaymentIntent's
 * amount change together, in one transaction. Made only while the PaymentIntent can still be confirmed and no
 * confirmation is under way; otherwise nothing changes, and the confirmation that follows is answered for the amount
 * that stands (the page sends the amount it shows). The caller checked the choices with `orderWith`, to name a
 * refusal in the shopper's language; an order the session, changed meanwhile (another tab), no longer allows is
 * left as it stands.
 */
export async function applyShopperChoices(services: Services, session: CheckoutSessionRow, choices: ShopperChoices, origin: string, change?: DiscountChange): Promise<CheckoutSessionRow> {
  await endChallengeForChoices(services, session, choices, origin, change);
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const locked = await tx.selectFrom('checkout_sessions').selectAll().where('id', '=', session.id).forUpdate().executeTakeFirstOrThrow();
    if (locked.status !== 'open') return locked;
    const discountChanges = change !== undefined && !sameDiscount(change.discount, locked.discount);
    const chosen = orderWith(withDiscount(locked, change), choices);
    if (!('order' in chosen)) return locked;
    const { order } = chosen;
    if (!changesOrder(locked, order, discountChanges)) return locked;
    const sameItems = order.items.every((item, index) => item.quantity === locked.line_items[index]?.quantity);
    const intent = await tx.selectFrom('payment_intents').selectAll().where('id', '=', locked.payment_intent_id).forUpdate().executeTakeFirstOrThrow();
    if ((intent.status !== 'requires_payment_method' && intent.status !== 'requires_confirmation') || intent.operation_in_flight !== null) return locked;
    assert(intent.amount === locked.amount_total, 'a session\'s PaymentIntent charges the session\'s total');
    // The payment's description follows the order when it is the one Coffer made of it (not the merchant's own).
    const described = !sameItems && intent.description === orderDescription(locked.line_items) ? { description: orderDescription(order.items) } : {};
    await updatePaymentIntentRow(tx, intent.id, { amount: order.total, ...described }, now);
    const discounted = withDiscount(locked, change);
    const after = await tx.updateTable('checkout_sessions').set({
      line_items: JSON.stringify(order.items), shipping_rate_id: order.shippingRate, amount_shipping: order.amountShipping, amount_discount: order.amountDiscount,
      amount_total: order.total, updated_at: now,
      ...(discountChanges ? {
        discount: discounted.discount === null ? null : JSON.stringify(discounted.discount), discount_coupon_id: discounted.discount_coupon_id,
        discount_promotion_code_id: discounted.discount_promotion_code_id,
      } : {}),
    }).where('id', '=', locked.id).returningAll().executeTakeFirstOrThrow();
    const scope = { merchantId: locked.merchant_id, livemode: locked.livemode };
    // The shopper's doing, from their address; no event (Stripe sends none for it).
    await recordChange(tx, { ...await eventVersionOf(tx, locked.merchant_id), actorType: 'shopper', actorId: locked.id, origin }, scope, {
      action: 'checkout_session.shopper_choice', objectType: 'checkout_session', objectId: locked.id,
      details: {
        ...(order.shippingRate === locked.shipping_rate_id ? {} : { shipping_rate: order.shippingRate, amount_shipping: order.amountShipping.toString() }),
        ...(sameItems ? {} : { quantities: order.items.map((item) => item.quantity) }),
        ...(discountChanges ? { promotion_code: discounted.discount_promotion_code_id, amount_discount: order.amountDiscount.toString() } : {}),
        amount_total: order.total.toString(), payment_intent: intent.id,
      },
    }, [], now);
    return after;
  });
}

/** What a session's PaymentIntent says it is for, unless the merchant said: the names of the items in the order. */
function orderDescription(items: CheckoutLineItem[]): string {
  return items.filter((item) => item.quantity > 0).map((item) => item.name).join(', ').slice(0, 1000);
}

/** The success URL with Stripe's `{CHECKOUT_SESSION_ID}` template filled in. */
export function successUrlOf(session: CheckoutSessionRow): string {
  return session.success_url.replaceAll('{CHECKOUT_SESSION_ID}', session.id);
}

/** The trail of a change no request made (the shopper's page, the expiry job): events in the merchant's version. */
async function eventVersionOf(tx: Tx, merchantId: string): Promise<Trail> {
  const merchant = await tx.selectFrom('merchants').select('default_api_version').where('id', '=', merchantId).executeTakeFirstOrThrow();
  return systemTrail('checkout', parseApiVersion(merchant.default_api_version) ?? defaultApiVersion);
}

/**
 * Brings a session up to date with its PaymentIntent: paid (or authorized) completes it, once, with its event and
 * the shopper's receipt in the same transaction; past its expiry and not being paid, it expires and its
 * PaymentIntent is canceled. Idempotent: the page, the return from a provider and the expiry job all call it.
 * `expiry`: a merchant's request to expire the session. It ends now (not at its `expires_at`) unless its payment is
 * under way or done, and `respond` is called, with the request's answer kept in that change, only if it did.
 */
export async function settleCheckoutSession(services: Services, id: string, expiry?: { ctx: RequestContext; respond: Respond<CheckoutSessionRow> }): Promise<CheckoutSessionRow> {
  const now = new Date(services.clock.nowMs());
  const settle = async (tx: Tx): Promise<{ session: CheckoutSessionRow; cancel: boolean; expiredNow?: true }> => {
    const session = await tx.selectFrom('checkout_sessions').selectAll().where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
    if (session.status !== 'open') return { session, cancel: false };
    const intent = await tx.selectFrom('payment_intents').selectAll().where('id', '=', session.payment_intent_id).executeTakeFirstOrThrow();
    const scope = { merchantId: session.merchant_id, livemode: session.livemode };
    // A merchant's expiry is that request's doing: its events name the request (and its key) that caused them.
    const trail = expiry === undefined ? await eventVersionOf(tx, session.merchant_id) : requestTrail(expiry.ctx);
    // A PaymentIntent's own page sends no checkout events: the PaymentIntent's events say it all.
    const ofIntent = session.kind === 'payment_intent';
    if (intent.status === 'succeeded' || intent.status === 'requires_capture') {
      // The shipping address is the one the paying confirmation gave its PaymentIntent, whatever a later try wrote.
      const collected = collectedAtPayment(session, intent);
      const after = await tx.updateTable('checkout_sessions').set({
        status: 'complete', payment_status: 'paid', completed_at: now, updated_at: now,
        customer_details: JSON.stringify(await customerDetailsOf(tx, { ...session, collected }, intent)),
        collected: collected === null ? null : JSON.stringify(collected),
      }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
      await recordChange(tx, trail, scope, { action: 'checkout_session.complete', objectType: 'checkout_session', objectId: id, details: { payment_intent: intent.id } },
        ofIntent ? [] : [{ type: 'checkout.session.completed', checkoutSession: { before: session, after } }], now);
      const receiptTo = session.customer_email ?? collected?.email ?? null;
      if (receiptTo !== null) await queueReceipt(tx, after, intent, now, receiptTo);
      await countLinkCompletion(tx, trail, scope, after, now);
      await countRedemption(tx, after);
      // The card the shopper asked to save (decision 0063) may be shown to them again; the merchant hears of it.
      if (collected?.save_payment_method === 'accepted' && intent.payment_method_id !== null && intent.customer_id !== null) {
        const method = await tx.selectFrom('payment_methods').selectAll().where('id', '=', intent.payment_method_id).where('customer_id', '=', intent.customer_id)
          .where('type', '=', 'card').where('allow_redisplay', '<>', 'always').forUpdate().executeTakeFirst();
        if (method !== undefined) {
          const shown = await tx.updateTable('payment_methods').set({ allow_redisplay: 'always' }).where('id', '=', method.id).returningAll().executeTakeFirstOrThrow();
          await recordChange(tx, trail, scope, { action: 'payment_method.update', objectType: 'payment_method', objectId: method.id,
            details: { allow_redisplay: 'always', checkout_session: id } }, [{ type: 'payment_method.updated', paymentMethod: { before: method, after: shown } }], now);
        }
      }
      return { session: after, cancel: false };
    }
    if (ofIntent) {
      if (intent.status === 'canceled') {
        const after = await tx.updateTable('checkout_sessions').set({ status: 'expired', updated_at: now }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
        return { session: after, cancel: false };
      }
      // The merchant may change the PaymentIntent's amount until it is confirmed: the page shows what will be charged.
      const types = pageMethodTypes(intent);
      if (session.amount_total !== intent.amount || session.currency !== intent.currency || JSON.stringify(types) !== JSON.stringify(session.payment_method_types)) {
        const after = await tx.updateTable('checkout_sessions').set({
          amount_total: intent.amount, currency: intent.currency, line_items: JSON.stringify(intentOrder(intent)), payment_method_types: JSON.stringify(types), updated_at: now,
        }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
        return { session: after, cancel: false };
      }
      return { session, cancel: false };
    }
    const paying = intent.status === 'processing' || intent.status === 'requires_action' || intent.operation_in_flight !== null;
    if ((session.expires_at.getTime() > now.getTime() && expiry === undefined) || paying) return { session, cancel: false };
    // A session with recovery gets its address now (decision 0064): the expired event carries it.
    const token = session.recovery === null ? null : randomBase62(32);
    const after = await tx.updateTable('checkout_sessions').set({
      status: 'expired', updated_at: now, ...(expiry === undefined ? {} : { expires_at: now }),
      ...(token === null ? {} : {
        recovery_token: token, recovery_url: `${services.connectors.publicUrl()}/pay/recover/${token}`, recovery_expires_at: new Date(now.getTime() + recoveryLifetimeMs),
      }),
    }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, trail, scope, { action: 'checkout_session.expire', objectType: 'checkout_session', objectId: id, details: {} },
      [{ type: 'checkout.session.expired', checkoutSession: { before: session, after } }], now);
    return { session: after, cancel: intent.status !== 'canceled', expiredNow: true };
  };
  const settled = await inTransaction(services.db, async (tx) => {
    const result = await settle(tx);
    // A merchant's expiry answers with the session as it ended, kept with that change; one that did not expire it
    // (still being paid, paid, or expired already by another request) is refused after the transaction.
    if (expiry !== undefined && result.expiredNow === true) await expiry.respond(tx, result.session);
    return result;
  });
  if (settled.cancel) await cancelSessionIntent(services, settled.session, expiry?.ctx);
  return settled.session;
}

/**
 * A session paid through a payment link counts toward the link's limit, and the link stops selling when it is
 * reached (decision 0054), in the completion's transaction with the link's row locked, so two completions cannot
 * both miss it; the completion that deactivates the link sends `payment_link.updated`.
 */
async function countLinkCompletion(tx: Tx, trail: Trail, scope: { merchantId: string; livemode: boolean }, session: CheckoutSessionRow, now: Date): Promise<void> {
  if (session.payment_link_id === null) return;
  const before = await tx.selectFrom('payment_links').selectAll().where('id', '=', session.payment_link_id).forUpdate().executeTakeFirstOrThrow();
  const completed = before.completed_sessions + 1;
  const reached = before.completed_sessions_limit !== null && completed >= before.completed_sessions_limit;
  const after = await tx.updateTable('payment_links').set({ completed_sessions: completed, active: before.active && !reached, updated_at: now })
    .where('id', '=', before.id).returningAll().executeTakeFirstOrThrow();
  // The sale that reached the limit deactivated the link: the merchant hears of it as of any change to `active`.
  if (before.active && !after.active) {
    await recordChange(tx, trail, scope, { action: 'payment_link.deactivate', objectType: 'payment_link', objectId: after.id,
      details: { reason: 'completed_sessions_limit', checkout_session: session.id } }, [{ type: 'payment_link.updated', paymentLink: { before, after } }], now);
  }
}

/**
 * The expired session's PaymentIntent is canceled as the merchant would (nothing was authorized: no provider call),
 * as part of the merchant's expiry request when there is one (its own idempotency key stays with the session).
 */
async function cancelSessionIntent(services: Services, session: CheckoutSessionRow, requested?: RequestContext): Promise<void> {
  const ctx = requested === undefined ? systemContext(session, 'checkout-expiry') : { ...requested, idempotency: undefined };
  try {
    await cancelPaymentIntent(services, ctx, session.payment_intent_id, { cancellation_reason: 'abandoned' }, keepingResponder().respond);
  } catch (error) {
    services.logger.warn({ err: error, session: loggedSessionId(session.id) }, 'checkout: the expired session\'s PaymentIntent could not be canceled');
  }
}

/** A request context acting for the merchant of a session: the shopper on the page, or a job. */
export function systemContext(session: CheckoutSessionRow, actor: string, shopper = false, origin = 'coffer'): RequestContext {
  const version = defaultApiVersion;
  return {
    actor: { merchantId: session.merchant_id, livemode: session.livemode, apiKeyId: actor, keyKind: 'secret', apiVersion: version, eventApiVersion: version },
    ...(shopper ? { shopperSession: session.id } : {}),
    requestId: newId('req'),
    origin,
    idempotency: undefined,
  };
}

async function queueReceipt(tx: Tx, session: CheckoutSessionRow, intent: PaymentIntentRow, now: Date, recipient: string): Promise<void> {
  const currency = findCurrency(session.currency);
  // `42.00 USD`: formatAmount names the currency already, in the API's lower case.
  const total = (currency === undefined ? `${session.amount_total} ${session.currency}` : formatAmount(session.amount_total, currency)).toUpperCase();
  const option = session.shipping_options?.find((candidate) => candidate.shipping_rate === session.shipping_rate_id);
  const shipping = option === undefined ? [] : [`  Shipping: ${option.display_name}, ${currency === undefined ? `${option.shipping_amount} ${session.currency}` : formatAmount(option.shipping_amount, currency).toUpperCase()}`];
  const money = (amount: bigint) => (currency === undefined ? `${amount} ${session.currency}` : formatAmount(amount, currency).toUpperCase());
  const discount = session.discount === null ? [] : [`  Discount: ${session.discount.promotion_code?.code ?? session.discount.coupon.name ?? session.discount.coupon.id}, -${money(session.amount_discount)}`];
  const lines = [...session.line_items.filter((item) => item.quantity > 0).map((item) => `  ${item.quantity} × ${item.name}`), ...discount, ...shipping].join('\n');
  await tx.insertInto('shopper_messages').values({
    id: newId('msg'), merchant_id: session.merchant_id, livemode: session.livemode, created_at: now, channel: 'email',
    recipient, subject: `Receipt ${session.id.slice(-8).toUpperCase()}`,
    body: `Thank you for your payment of ${total}.\n${lines}\nReceipt reference: ${intent.id}\nIf you did not make this payment, contact the shop at once.`,
    reference: session.id,
  }).onConflict((oc) => oc.doNothing()).execute();
}

export async function expireCheckoutSession(services: Services, ctx: RequestContext, id: string, respond?: Respond<CheckoutSessionRow>): Promise<CheckoutSessionRow> {
  const session = await findCheckoutSession(services.db, ctx, id);
  if (session.status !== 'open') {
    throw new CofferError('checkout_session_not_open', `This Checkout Session is ${session.status}; only an open session can be expired.`);
  }
  // Decided on the locked session: a refusal changes nothing (before, the session's expires_at was set first, and a
  // refused expiry still ended the session early).
  let expired = false;
  const settled = await settleCheckoutSession(services, id, { ctx, respond: async (tx, row) => {
    expired = true;
    await respond?.(tx, row);
  } });
  if (expired) return settled;
  throw new CofferError('checkout_session_not_open', settled.status === 'open'
    ? 'The shopper is paying this session right now; it cannot be expired until that ends.'
    : `This Checkout Session is ${settled.status}; only an open session can be expired.`);
}

/**
 * The merchant's metadata on a session, changed as Stripe's update changes it (`''` removes a key, or all of them), in
 * whatever state the session is: it is the merchant's own record, and the shopper sees none of it. The row is locked,
 * so that two updates merge one after the other; an audit record names the keys changed.
 */
export async function updateCheckoutSession(services: Services, ctx: RequestContext, id: string, params: { metadata?: Record<string, string> | '' }, respond?: Respond<CheckoutSessionRow>): Promise<CheckoutSessionRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const locked = await findCheckoutSession(tx, ctx, id, 'id', true);
    const metadata = mergeMetadata(locked.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    const row = await tx.updateTable('checkout_sessions').set({ metadata: JSON.stringify(metadata), updated_at: now }).where('id', '=', locked.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'checkout_session.update', objectType: 'checkout_session', objectId: id,
      details: { fields: Object.keys(params), ...(params.metadata === undefined || params.metadata === '' ? {} : { metadata_keys: Object.keys(params.metadata) }) } }, [], now);
    await respond?.(tx, row);
    return row;
  });
}

export function describeTotal(session: CheckoutSessionRow): string {
  const currency = findCurrency(session.currency);
  return currency === undefined ? String(session.amount_total) : formatAmount(session.amount_total, currency);
}

/**
 * What the page collected, as it stands when the session is paid: the shipping address and phone are taken from the
 * PaymentIntent, which the paying confirmation set in its own transaction. What the page kept for the session
 * before (with each try) could be a later, failed try's.
 */
function collectedAtPayment(session: CheckoutSessionRow, intent: PaymentIntentRow): CheckoutCollected | null {
  const collected = session.collected;
  if (collected === null || collected.shipping === undefined) return collected;
  const shipping = intent.shipping as { name?: unknown; address?: unknown; phone?: unknown } | null;
  if (shipping === null || typeof shipping.name !== 'string' || typeof shipping.address !== 'object' || shipping.address === null) return collected;
  const address = Object.fromEntries(Object.entries(shipping.address as Record<string, unknown>).filter((entry): entry is [string, string] => typeof entry[1] === 'string' && entry[1] !== ''));
  return { ...collected, shipping: { name: shipping.name, address }, ...(typeof shipping.phone === 'string' && shipping.phone !== '' ? { phone: shipping.phone } : {}) };
}

/**
 * What a completed session knows of its customer, as Stripe's `customer_details`: the email the session was made
 * with, or its customer's (unless the session made that customer), or else the page's, or the card's, and the name, phone and billing address the
 * card was given with.
 */
async function customerDetailsOf(tx: Tx, session: CheckoutSessionRow, intent: PaymentIntentRow): Promise<Record<string, unknown>> {
  const method = intent.payment_method_id === null ? undefined
    : await tx.selectFrom('payment_methods').select('billing_details').where('id', '=', intent.payment_method_id).executeTakeFirst();
  // A customer the session made of its shopper holds what they typed on an earlier try: the page's last word counts.
  const customer = session.customer_id === null || session.customer_creation === 'always' ? undefined
    : await tx.selectFrom('customers').select('email').where('id', '=', session.customer_id).executeTakeFirst();
  const billing = method?.billing_details ?? {};
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : null);
  // What the page asked the shopper for comes first: it is what they gave for this order.
  const collected = session.collected ?? {};
  return {
    address: addressObject(collected.billing?.address ?? billing.address), business_name: null,
    email: session.customer_email ?? text(customer?.email) ?? text(collected.email) ?? text(billing.email), individual_name: null,
    name: text(collected.billing?.name) ?? text(billing.name) ?? text(collected.shipping?.name), phone: text(collected.phone) ?? text(billing.phone), tax_exempt: 'none', tax_ids: [],
  };
}
