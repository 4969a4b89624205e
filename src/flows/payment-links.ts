import { CofferError, resourceMissing } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import { defaultApiVersion, parseApiVersion } from '../objects/api-version.ts';
import { newId } from '../platform/random.ts';
import type { PaymentLinkAfterCompletion, PaymentLinkRow } from '../store/database.ts';
import { adjustableOf, checkCheckoutParams, checkUrl, createCheckoutSession, type CheckoutLineItemParams, type CreateCheckoutSessionParams } from './checkout-sessions.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';
import type { CheckoutSessionRow } from '../store/database.ts';

/**
 * Stripe's Payment Links (decision 0054): an address the merchant shares that sells a fixed order from the
 * catalogue. Each shopper who opens it and goes on gets a Checkout Session of their own, made from what the link
 * keeps, so everything a session does (shipping rates, adjustable quantities, addresses, wallets) a link does too.
 * The link's parameters are checked as a session's would be when it is made; a price archived later makes the link
 * unavailable, not wrong.
 */

/** The Checkout Session parameters a link keeps and makes each session with. */
export interface LinkSessionParams {
  line_items: Array<Pick<CheckoutLineItemParams, 'quantity' | 'adjustable_quantity'> & { price: string }>;
  billing_address_collection?: 'auto' | 'required';
  shipping_address_collection?: { allowed_countries: string[] };
  phone_number_collection?: { enabled: boolean };
  shipping_options?: Array<{ shipping_rate: string }>;
  payment_method_types?: string[];
  payment_intent_data?: CreateCheckoutSessionParams['payment_intent_data'];
  /** What each session's page says besides the order (decision 0059), and whether it makes its shopper a Customer. */
  submit_type?: CreateCheckoutSessionParams['submit_type'];
  custom_text?: CreateCheckoutSessionParams['custom_text'];
  consent_collection?: CreateCheckoutSessionParams['consent_collection'];
  customer_creation?: CreateCheckoutSessionParams['customer_creation'];
  custom_fields?: CreateCheckoutSessionParams['custom_fields'];
  optional_items?: CreateCheckoutSessionParams['optional_items'];
  /** Whether each session's shopper may type a promotion code (decision 0062). */
  allow_promotion_codes?: boolean;
}

export interface PaymentLinkParams extends LinkSessionParams {
  after_completion?: AfterCompletionParams;
  currency?: string;
  metadata?: Record<string, string>;
  inactive_message?: string;
  restrictions?: { completed_sessions: { limit: number } };
}

export interface AfterCompletionParams {
  type: 'hosted_confirmation' | 'redirect';
  hosted_confirmation?: { custom_message?: string };
  redirect?: { url: string };
}

export interface PaymentLinkUpdateParams {
  active?: boolean;
  /** New quantities (and bounds) for the items the link sells, each named by its line item's id. */
  line_items?: Array<{ id: string; quantity?: number; adjustable_quantity?: CheckoutLineItemParams['adjustable_quantity'] }>;
  after_completion?: AfterCompletionParams;
  metadata?: Record<string, string> | '';
  inactive_message?: string | '';
  restrictions?: { completed_sessions: { limit: number } } | '';
  /** What the link's later sessions are made with (decision 0054): each replaces what the link keeps, `''` removes it. */
  billing_address_collection?: LinkSessionParams['billing_address_collection'];
  shipping_address_collection?: LinkSessionParams['shipping_address_collection'] | '';
  phone_number_collection?: LinkSessionParams['phone_number_collection'];
  payment_method_types?: string[] | '';
  custom_fields?: LinkSessionParams['custom_fields'] | '';
  custom_text?: LinkSessionParams['custom_text'];
  submit_type?: LinkSessionParams['submit_type'];
  customer_creation?: LinkSessionParams['customer_creation'];
  allow_promotion_codes?: boolean;
}

/** The session-shaping fields a link's update may change. */
const updatableSessionKeys = [
  'billing_address_collection', 'shipping_address_collection', 'phone_number_collection', 'payment_method_types', 'custom_fields', 'custom_text', 'submit_type', 'customer_creation',
  'allow_promotion_codes',
] as const;

const sessionKeys = [
  'line_items', 'billing_address_collection', 'shipping_address_collection', 'phone_number_collection', 'shipping_options', 'payment_method_types', 'payment_intent_data',
  'submit_type', 'custom_text', 'consent_collection', 'customer_creation', 'custom_fields', 'optional_items', 'allow_promotion_codes',
] as const;

/** What the shopper sees once paid, checked: Coffer's confirmation page by default, or the merchant's page. */
function afterCompletionOf(given: AfterCompletionParams | undefined): PaymentLinkAfterCompletion {
  if (given === undefined) return { type: 'hosted_confirmation', hosted_confirmation: { custom_message: null } };
  if (given.type === 'redirect') {
    if (given.redirect === undefined) throw new CofferError('parameter_missing', 'Missing required param: after_completion[redirect][url] (with after_completion[type]=redirect).', { param: 'after_completion[redirect][url]' });
    if (given.hosted_confirmation !== undefined) {
      throw new CofferError('parameter_invalid', 'after_completion[hosted_confirmation] applies only with after_completion[type]=hosted_confirmation.', { param: 'after_completion[hosted_confirmation]' });
    }
    return { type: 'redirect', redirect: { url: checkUrl(given.redirect.url, 'after_completion[redirect][url]') } };
  }
  if (given.redirect !== undefined) throw new CofferError('parameter_invalid', 'after_completion[redirect] applies only with after_completion[type]=redirect.', { param: 'after_completion[redirect]' });
  const message = given.hosted_confirmation?.custom_message?.trim() ?? '';
  return { type: 'hosted_confirmation', hosted_confirmation: { custom_message: message === '' ? null : message } };
}

/** The session parameters a link makes each session with, and its success URL (none for Coffer's own confirmation). */
export function sessionParamsOf(row: Pick<PaymentLinkRow, 'session_params' | 'after_completion'>): CreateCheckoutSessionParams {
  const kept = row.session_params as unknown as LinkSessionParams;
  const after = row.after_completion;
  return { ...kept, mode: 'payment', success_url: after.type === 'redirect' ? after.redirect.url : '' };
}

function scopeOf(ctx: RequestContext) {
  return { merchantId: ctx.actor.merchantId, livemode: ctx.actor.livemode };
}

export async function findPaymentLink(reader: Tx | Services['db'], ctx: RequestContext, id: string, options: { lock?: boolean; param?: string } = {}): Promise<PaymentLinkRow> {
  let query = reader.selectFrom('payment_links').selectAll().where('id', '=', id).where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
  if (options.lock === true) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('payment link', id, options.param ?? 'id');
  return row;
}

export async function createPaymentLink(services: Services, ctx: RequestContext, params: PaymentLinkParams, respond?: Respond<PaymentLinkRow>): Promise<PaymentLinkRow> {
  const id = newId('plink');
  const after = afterCompletionOf(params.after_completion);
  const kept = Object.fromEntries(sessionKeys.flatMap((key) => (params[key] === undefined ? [] : [[key, params[key]]]))) as unknown as LinkSessionParams;
  // Checked as each session will be made: the prices (active, one currency), the rates, the addresses, the methods.
  const { currency } = await checkCheckoutParams(services, ctx, sessionParamsOf({ session_params: kept as unknown as Record<string, unknown>, after_completion: after }), { paymentLinkId: id });
  if (params.currency !== undefined && params.currency.toLowerCase() !== currency) {
    throw new CofferError('parameter_invalid', `currency is ${params.currency.toLowerCase()}, but the link's prices are in ${currency}.`, { param: 'currency' });
  }
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const rateIds = (kept.shipping_options ?? []).map((option) => option.shipping_rate);
  const rates = rateIds.length === 0 ? [] : await services.db.selectFrom('shipping_rates').select(['id', 'amount']).where('id', 'in', rateIds)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).execute();
  const shippingAmounts = rateIds.map((rateId) => Number(rates.find((rate) => rate.id === rateId)?.amount ?? 0));
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const row = await tx.insertInto('payment_links').values({
      id, merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now, updated_at: now, active: true, currency,
      url: `${services.connectors.publicUrl()}/buy/${id}`, session_params: JSON.stringify(kept), shipping_amounts: JSON.stringify(shippingAmounts), after_completion: JSON.stringify(after),
      inactive_message: params.inactive_message?.trim() || null, completed_sessions_limit: params.restrictions?.completed_sessions.limit ?? null,
      metadata: JSON.stringify(metadata),
    }).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'payment_link.create', objectType: 'payment_link', objectId: id,
      details: { currency, prices: kept.line_items.map((item) => item.price) } }, [{ type: 'payment_link.created', paymentLink: { after: row } }], now);
    await respond?.(tx, row);
    return row;
  });
}

/**
 * The link's items with the update's quantities and bounds, each named by its line item's id (as
 * `GET /v1/payment_links/:id/line_items` shows it). Which items it sells does not change: an id that is not one of
 * them, or one named twice, is refused. An item not named keeps what it had; `adjustable_quantity` given replaces its
 * bounds.
 */
function updatedLineItems(link: PaymentLinkRow, updates: NonNullable<PaymentLinkUpdateParams['line_items']>): LinkSessionParams['line_items'] {
  const items = [...(link.session_params as unknown as LinkSessionParams).line_items];
  const idOf = (index: number) => `li_${link.id.slice(-20)}${String(index).padStart(3, '0')}`;
  const seen = new Set<number>();
  updates.forEach((update, position) => {
    const index = items.findIndex((_item, at) => idOf(at) === update.id);
    if (index === -1) {
      throw new CofferError('parameter_invalid', `line_items[${position}][id]: ${update.id} is not one of this link's line items (GET /v1/payment_links/${link.id}/line_items lists them); a link's items cannot change, only their quantities.`,
        { param: `line_items[${position}][id]` });
    }
    if (seen.has(index)) throw new CofferError('parameter_invalid', `line_items[${position}][id]: ${update.id} is named twice.`, { param: `line_items[${position}][id]` });
    seen.add(index);
    const item = items[index];
    if (item === undefined) return;
    const { adjustable_quantity: _bounds, ...rest } = item;
    const bounds = update.adjustable_quantity ?? item.adjustable_quantity;
    const updated = { ...rest, quantity: update.quantity ?? item.quantity, ...(bounds === undefined ? {} : { adjustable_quantity: bounds }) };
    // Checked here too, so that a refusal names the entry as the request gave it.
    adjustableOf(updated, `line_items[${position}]`);
    items[index] = updated;
  });
  return items;
}

/**
 * What the link keeps for its sessions once the update's session-shaping fields are applied (a message given as `''`
 * in `custom_text` removes that message only), checked as a session would be: undefined when the update gives none.
 */
async function updatedSessionParams(services: Services, ctx: RequestContext, link: PaymentLinkRow, params: PaymentLinkUpdateParams, after: PaymentLinkAfterCompletion): Promise<LinkSessionParams | undefined> {
  const given = updatableSessionKeys.filter((key) => params[key] !== undefined);
  if (given.length === 0 && params.line_items === undefined) return undefined;
  const kept = { ...(link.session_params as unknown as LinkSessionParams) } as Record<string, unknown>;
  if (params.line_items !== undefined) kept.line_items = updatedLineItems(link, params.line_items);
  for (const key of given) {
    const value = key === 'custom_text' ? { ...(kept.custom_text as object | undefined), ...params.custom_text } : params[key];
    if (value === '') delete kept[key];
    else kept[key] = value;
  }
  await checkCheckoutParams(services, ctx, sessionParamsOf({ session_params: kept, after_completion: after }), { paymentLinkId: link.id });
  return kept as unknown as LinkSessionParams;
}

/**
 * What may change on a link: whether it sells, what the shopper sees once paid or while it is inactive, its limit of
 * paid sessions, its metadata, what its later sessions ask and say (`updatableSessionKeys`), and the quantities of its
 * items (decision 0065). Which items it sells does not: a new order is a new link, so an address already shared never
 * sells something else. Sessions already made go on as they were made.
 */
export async function updatePaymentLink(services: Services, ctx: RequestContext, id: string, params: PaymentLinkUpdateParams, respond?: Respond<PaymentLinkRow>): Promise<PaymentLinkRow> {
  const after = params.after_completion === undefined ? undefined : afterCompletionOf(params.after_completion);
  const now = new Date(services.clock.nowMs());
  // Checked before the link is locked (the check reads prices and rates); the update applies only to the link as read.
  const read = await findPaymentLink(services.db, ctx, id);
  const sessionParams = await updatedSessionParams(services, ctx, read, params, after ?? read.after_completion);
  return inTransaction(services.db, async (tx) => {
    const link = await findPaymentLink(tx, ctx, id, { lock: true });
    if (sessionParams !== undefined && JSON.stringify(link.session_params) !== JSON.stringify(read.session_params)) {
      throw new CofferError('lock_timeout', 'This payment link was changed by another request meanwhile. Try again.');
    }
    const metadata = mergeMetadata(link.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    const limit = params.restrictions === undefined ? link.completed_sessions_limit : params.restrictions === '' ? null : params.restrictions.completed_sessions.limit;
    if (params.active === true && limit !== null && link.completed_sessions >= limit) {
      throw new CofferError('parameter_invalid', `This link has been paid ${link.completed_sessions} times, its limit (restrictions[completed_sessions][limit] ${limit}); raise or remove the limit to activate it.`, { param: 'active' });
    }
    // A limit lowered to what the link has been paid already stops it at once, as reaching it would.
    const reached = limit !== null && link.completed_sessions >= limit;
    const row = await tx.updateTable('payment_links').set({
      updated_at: now, metadata: JSON.stringify(metadata), completed_sessions_limit: limit,
      inactive_message: params.inactive_message === undefined ? link.inactive_message : params.inactive_message.trim() || null,
      ...(reached ? { active: false } : params.active === undefined ? {} : { active: params.active }),
      ...(after === undefined ? {} : { after_completion: JSON.stringify(after) }),
      ...(sessionParams === undefined ? {} : { session_params: JSON.stringify(sessionParams) }),
    }).where('id', '=', link.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), scopeOf(ctx), { action: 'payment_link.update', objectType: 'payment_link', objectId: id, details: { fields: Object.keys(params) } },
      [{ type: 'payment_link.updated', paymentLink: { before: link, after: row } }], now);
    await respond?.(tx, row);
    return row;
  });
}

/** The link a shopper opened, by its id alone (the address is public by design, as Stripe's is). */
export async function linkForPage(services: Services, id: string): Promise<PaymentLinkRow | undefined> {
  if (!/^plink_[A-Za-z0-9]{24}$/.test(id)) return undefined;
  return services.db.selectFrom('payment_links').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * A shopper goes on from a link: a Checkout Session of their own, made as the merchant would make it, with its
 * events in the merchant's API version and the shopper's address in its audit record. Undefined when the link does
 * not sell now (inactive); a CofferError when its order can no longer be sold (a price archived since).
 */
export async function sessionFromLink(services: Services, link: PaymentLinkRow, origin: string): Promise<CheckoutSessionRow | undefined> {
  if (!link.active) return undefined;
  const merchant = await services.db.selectFrom('merchants').select('default_api_version').where('id', '=', link.merchant_id).executeTakeFirstOrThrow();
  const version = parseApiVersion(merchant.default_api_version) ?? defaultApiVersion;
  const ctx: RequestContext = {
    actor: { merchantId: link.merchant_id, livemode: link.livemode, apiKeyId: link.id, keyKind: 'secret', apiVersion: version, eventApiVersion: version },
    shopperSession: link.id, requestId: newId('req'), origin, idempotency: undefined,
  };
  return createCheckoutSession(services, ctx, sessionParamsOf(link), undefined, { paymentLinkId: link.id });
}
