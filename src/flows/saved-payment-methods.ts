import { CofferError, resourceMissing } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import { newId } from '../platform/random.ts';
import { Secret } from '../platform/secret.ts';
import { cardFactsOf, type AllowRedisplay, type PaymentMethodRow, type TokensTable } from '../store/database.ts';
import { paymentMethodInsert } from '../store/row-json.ts';
import type { IncomingCard, VaultedCard } from '../vault/card-vault.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { findCustomer } from './customers.ts';
import { checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { checkSavable, preparePaymentMethod, resolvePaymentMethod, saveCheckedMethod } from './payment-methods.ts';
import { testPaymentMethods } from '../connectors/card/test-cards.ts';
import { recordChange } from './payment-intent-records.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail } from './trail.ts';
import type { Selectable } from 'kysely';

export interface CardParams {
  number?: string;
  exp_month?: number;
  exp_year?: number;
  cvc?: string;
  token?: string;
}

/** A token's card, with the cardholder's name and address as Stripe's card tokens take them. */
export interface TokenCardParams extends Omit<CardParams, 'token'> {
  name?: string;
  address_line1?: string;
  address_line2?: string;
  address_city?: string;
  address_state?: string;
  address_zip?: string;
  address_country?: string;
}

/** A token's name and address as a PaymentMethod's billing details (only what was given); null when none was. */
function tokenBillingDetails(card: TokenCardParams): { name?: string; address?: Record<string, string> } | null {
  const fields = { line1: card.address_line1, line2: card.address_line2, city: card.address_city, state: card.address_state, postal_code: card.address_zip, country: card.address_country };
  const address = Object.fromEntries(Object.entries(fields).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const details = { ...(card.name === undefined ? {} : { name: card.name }), ...(Object.keys(address).length === 0 ? {} : { address }) };
  return Object.keys(details).length === 0 ? null : details;
}

export interface CreatePaymentMethodParams {
  type: 'card';
  card: CardParams;
  billing_details?: Record<string, unknown>;
  metadata?: Record<string, string> | '';
}

function incomingCard(card: CardParams): IncomingCard {
  if (card.number === undefined) throw new CofferError('parameter_missing', 'Missing required param: card[number].', { param: 'card[number]' });
  if (card.exp_month === undefined) throw new CofferError('parameter_missing', 'Missing required param: card[exp_month].', { param: 'card[exp_month]' });
  if (card.exp_year === undefined) throw new CofferError('parameter_missing', 'Missing required param: card[exp_year].', { param: 'card[exp_year]' });
  return {
    number: new Secret(card.number),
    expMonth: card.exp_month,
    expYear: card.exp_year,
    cvc: card.cvc === undefined ? undefined : new Secret(card.cvc),
  };
}

/** The `pm_card_…` test id a test-mode `card[token]` of Stripe's (`tok_visa`) stands for, if it is one. */
function testTokenAlias(ctx: RequestContext, card: CardParams): string | undefined {
  if (ctx.actor.livemode || card.token === undefined || !card.token.startsWith('tok_')) return undefined;
  const alias = `pm_card_${card.token.slice('tok_'.length)}`;
  if (!Object.hasOwn(testPaymentMethods, alias)) return undefined;
  if (card.number !== undefined) throw new CofferError('parameters_exclusive', 'Pass card[token] or the card details, not both.', { param: 'card[token]' });
  return alias;
}

/** The vaulted card a request names: new card data (stored now), or a token made earlier (used once). */
async function vaultedCardFor(services: Services, ctx: RequestContext, card: CardParams): Promise<{ vaulted: VaultedCard; token?: Selectable<TokensTable> }> {
  if (card.token !== undefined) {
    if (card.number !== undefined) throw new CofferError('parameters_exclusive', 'Pass card[token] or the card details, not both.', { param: 'card[token]' });
    const token = await services.db.selectFrom('tokens').selectAll().where('id', '=', card.token)
      .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode).executeTakeFirst();
    if (token === undefined) throw resourceMissing('token', card.token, 'card[token]');
    if (token.used) throw new CofferError('parameter_invalid', `You cannot use a Stripe token more than once: ${token.id}.`, { param: 'card[token]' });
    const { bin, ...facts } = token.card;
    return { vaulted: { vaultCardId: token.vault_card_id, facts, bin }, token };
  }
  return { vaulted: await services.vault.storeCard(incomingCard(card)) };
}

/** A new card PaymentMethod's row, naming its card in the vault: a guest's, bound to no PaymentIntent yet. */
function cardPaymentMethodRow(ctx: RequestContext, vaulted: VaultedCard, billingDetails: Record<string, unknown> | undefined, metadata: Record<string, string>, now: Date): PaymentMethodRow {
  return {
    id: newId('pm'), merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, seq: 0n, type: 'card', card: { ...vaulted.facts, bin: vaulted.bin },
    test_card: null, vault_card_id: vaulted.vaultCardId, billing_details: billingDetails ?? {}, customer_id: null, metadata, created_at: now,
    first_payment_intent_id: null, detached_at: null, allow_redisplay: 'unspecified',
  };
}

/** A card PaymentMethod: its number goes to the vault; the method keeps only the facts and the vault's handle. */
export async function createCardPaymentMethod(services: Services, ctx: RequestContext, params: CreatePaymentMethodParams, respond?: Respond<PaymentMethodRow>): Promise<PaymentMethodRow> {
  const metadata = mergeMetadata({}, params.metadata);
  checkMetadataSize(metadata, limits.metadataKeysMax);
  const now = new Date(services.clock.nowMs());
  const testAlias = testTokenAlias(ctx, params.card);
  if (testAlias !== undefined) {
    // Stripe's test tokens (`tok_visa`, `tok_chargeDeclined` …) stand for its test cards, as `pm_card_…` ids do.
    const test = (await preparePaymentMethod(services.db, services, ctx.actor, testAlias, now)).row;
    const row = { ...test, billing_details: params.billing_details ?? {}, metadata };
    return inTransaction(services.db, async (tx) => {
      const created = await tx.insertInto('payment_methods').values(paymentMethodInsert(row)).returningAll().executeTakeFirstOrThrow();
      await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'payment_method.create', objectType: 'payment_method', objectId: row.id, details: { test_token: params.card.token } }, [], now);
      await respond?.(tx, created);
      return created;
    });
  }
  const { vaulted, token } = await vaultedCardFor(services, ctx, params.card);
  // A token made with the cardholder's name and address gives them to its PaymentMethod, unless billing_details does.
  const row = cardPaymentMethodRow(ctx, vaulted, params.billing_details ?? token?.billing_details ?? undefined, metadata, now);
  return inTransaction(services.db, async (tx) => {
    if (token !== undefined) {
      const used = await tx.updateTable('tokens').set({ used: true }).where('id', '=', token.id).where('used', '=', false).returning('id').executeTakeFirst();
      if (used === undefined) throw new CofferError('parameter_invalid', `You cannot use a Stripe token more than once: ${token.id}.`, { param: 'card[token]' });
    }
    const created = await tx.insertInto('payment_methods').values(paymentMethodInsert(row)).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'payment_method.create', objectType: 'payment_method', objectId: row.id, details: { brand: vaulted.facts.brand, last4: vaulted.facts.last4 } }, [], now);
    await respond?.(tx, created);
    return created;
  });
}

/** Where a card's detail sits in `payment_method_data`, for the parameter a refusal names. */
function paramInPaymentMethodData(param: string): string {
  if (param.startsWith('card[')) return `payment_method_data[card]${param.slice('card'.length)}`;
  return ['number', 'exp_month', 'exp_year', 'cvc'].includes(param) ? `payment_method_data[card][${param}]` : param;
}

/** A card given with a payment, sealed by the vault but not yet stored, and its PaymentMethod not yet written. */
export interface GivenCard {
  row: PaymentMethodRow;
  vaultCardId: string;
  ciphertext: Buffer;
}

/**
 * A card given with a PaymentIntent (`payment_method_data[type]=card`, `payment_method_data[card][…]`): checked and
 * encrypted by the vault, and described as the PaymentMethod POST /v1/payment_methods would make, but nothing is
 * written. The statement that records the payment stores both (`storeCardSql`), bound to that PaymentIntent, so
 * that a request refused at any point stores no card, and the card pays for that PaymentIntent only. A refusal
 * names the parameter as it was sent.
 */
export async function givenCard(
  services: Services,
  ctx: RequestContext,
  data: { card?: Omit<CardParams, 'token'>; billing_details?: Record<string, unknown> },
  now: Date,
): Promise<GivenCard> {
  if (data.card === undefined) {
    throw new CofferError('parameter_missing', 'Missing required param: payment_method_data[card].', { param: 'payment_method_data[card]' });
  }
  try {
    const { vaulted, ciphertext } = await services.vault.sealCard(incomingCard(data.card));
    return { row: cardPaymentMethodRow(ctx, vaulted, data.billing_details, {}, now), vaultCardId: vaulted.vaultCardId, ciphertext };
  } catch (error) {
    const param = error instanceof CofferError ? error.details.param : undefined;
    if (!(error instanceof CofferError) || param === undefined) throw error;
    throw new CofferError(error.code, error.message.replaceAll('card[', 'payment_method_data[card]['), { ...error.details, param: paramInPaymentMethodData(param) });
  }
}

/** What the audit record of the request that gave a card says of the PaymentMethod it made (as `payment_method.create` does). */
export function givenCardAudit(given: GivenCard): { id: string; brand: string; last4: string } {
  const facts = cardFactsOf(given.row);
  return { id: given.row.id, brand: facts.brand, last4: facts.last4 };
}

/** A single-use token for a card (Stripe's older API): the number is vaulted now, the token names it. */
export async function createCardToken(services: Services, ctx: RequestContext, card: TokenCardParams, respond?: Respond<Selectable<TokensTable>>): Promise<Selectable<TokensTable>> {
  const billing = tokenBillingDetails(card);
  const vaulted = await services.vault.storeCard(incomingCard(card));
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const token = await tx.insertInto('tokens').values({
      id: newId('tok'), merchant_id: ctx.actor.merchantId, livemode: ctx.actor.livemode, created_at: now, vault_card_id: vaulted.vaultCardId,
      card: JSON.stringify({ ...vaulted.facts, bin: vaulted.bin }), client_ip: ctx.origin, ...(billing === null ? {} : { billing_details: JSON.stringify(billing) }),
    }).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'token.create', objectType: 'token', objectId: token.id }, [], now);
    await respond?.(tx, token);
    return token;
  });
}

export async function findPaymentMethod(reader: Tx | Services['db'], ctx: RequestContext, id: string, lock = false): Promise<PaymentMethodRow> {
  let query = reader.selectFrom('payment_methods').selectAll().where('id', '=', id)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
  if (lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw new CofferError('resource_missing', `No such PaymentMethod: '${id}'`, { param: 'payment_method', missingId: id });
  return row;
}

/** Attaches a payment method to a customer, to be charged again later (off session). */
export async function attachPaymentMethod(services: Services, ctx: RequestContext, id: string, customerId: string, respond?: Respond<PaymentMethodRow>): Promise<PaymentMethodRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    // The customer first, then the payment method, as deleting a customer locks them: a customer deleted meanwhile
    // is seen deleted here, and gets no card.
    const customer = await findCustomer(tx, ctx, customerId, { lock: true });
    if (customer.deleted_at !== null) throw resourceMissing('customer', customerId, 'customer');
    // A test id (`pm_card_visa`) attaches a new PaymentMethod made from its test card, as at Stripe.
    const method = Object.hasOwn(testPaymentMethods, id) ? await resolvePaymentMethod(tx, services, ctx.actor, id, now) : await findPaymentMethod(tx, ctx, id, true);
    if (method.customer_id === customer.id) {
      await respond?.(tx, method);
      return method;
    }
    if (method.customer_id !== null) {
      throw new CofferError('payment_method_unexpected_state', `The payment method ${id} is already attached to another customer; detach it first.`, { param: 'customer' });
    }
    await checkSavable(tx, method, 'payment_method');
    const after = await saveCheckedMethod(tx, method, customer.id, 'payment_method');
    // The PaymentMethod attached, also when a test id made it (the id then says which).
    await recordChange(tx, requestTrail(ctx), ctx.actor, {
      action: 'payment_method.attach', objectType: 'payment_method', objectId: after.id, details: { customer: customer.id, ...(after.id === id ? {} : { test_id: id }) },
    },
      [{ type: 'payment_method.attached', paymentMethod: { after } }], now);
    await respond?.(tx, after);
    return after;
  });
}

export async function detachPaymentMethod(services: Services, ctx: RequestContext, id: string, respond?: Respond<PaymentMethodRow>): Promise<PaymentMethodRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    // Its customer first, then the payment method (the order deleting a customer takes), read again under the lock.
    const seen = await findPaymentMethod(tx, ctx, id);
    if (seen.customer_id !== null) await findCustomer(tx, ctx, seen.customer_id, { lock: true });
    const method = await findPaymentMethod(tx, ctx, id, true);
    if (method.customer_id === null) {
      throw new CofferError('payment_method_unexpected_state', `The payment method ${id} is not attached to a customer.`);
    }
    await tx.updateTable('customers').set({ default_payment_method_id: null }).where('id', '=', method.customer_id).where('default_payment_method_id', '=', id).execute();
    const after = await tx.updateTable('payment_methods').set({ customer_id: null, detached_at: now }).where('id', '=', method.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'payment_method.detach', objectType: 'payment_method', objectId: id, details: { customer: method.customer_id } },
      [{ type: 'payment_method.detached', paymentMethod: { before: method, after } }], now);
    await respond?.(tx, after);
    return after;
  });
}

/**
 * The expiry an update asks for, checked as the vault checks a new card's: a month from 1 to 12, and a year (two
 * digits mean 20xx) that has not passed and is at most 50 years ahead.
 */
function updatedExpiry(stored: { exp_month: number; exp_year: number }, asked: { exp_month?: number; exp_year?: number }, now: Date): { exp_month: number; exp_year: number } {
  const month = asked.exp_month ?? stored.exp_month;
  const year = asked.exp_year === undefined ? stored.exp_year : asked.exp_year < 100 ? 2000 + asked.exp_year : asked.exp_year;
  if (month < 1 || month > 12) throw new CofferError('invalid_expiry_month', "Your card's expiration month is invalid.", { param: 'card[exp_month]' });
  const thisYear = now.getUTCFullYear();
  const expired = year < thisYear || (year === thisYear && month < now.getUTCMonth() + 1);
  if (expired || year > thisYear + 50) throw new CofferError('invalid_expiry_year', "Your card's expiration year is invalid.", { param: 'card[exp_year]' });
  return { exp_month: month, exp_year: year };
}

/** Updates a saved payment method: only one attached to a customer can be updated, as on Stripe. */
export async function updatePaymentMethod(services: Services, ctx: RequestContext, id: string,
  params: { metadata?: Record<string, string> | ''; billing_details?: Record<string, unknown>; card?: { exp_month?: number; exp_year?: number }; allow_redisplay?: AllowRedisplay },
  respond?: Respond<PaymentMethodRow>): Promise<PaymentMethodRow> {
  const now = new Date(services.clock.nowMs());
  return inTransaction(services.db, async (tx) => {
    const method = await findPaymentMethod(tx, ctx, id, true);
    if (method.customer_id === null) {
      throw new CofferError('payment_method_unexpected_state', 'You must save this PaymentMethod to a customer before you can update it.');
    }
    const metadata = mergeMetadata(method.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    const stored = cardFactsOf(method);
    // A card whose stored expiry has passed can still have its metadata or billing details changed.
    const card = params.card?.exp_month === undefined && params.card?.exp_year === undefined ? stored : { ...stored, ...updatedExpiry(stored, params.card, now) };
    const after = await tx.updateTable('payment_methods').set({
      metadata: JSON.stringify(metadata), card: JSON.stringify(card), ...(params.allow_redisplay === undefined ? {} : { allow_redisplay: params.allow_redisplay }),
      billing_details: JSON.stringify({ ...method.billing_details, ...params.billing_details }),
    }).where('id', '=', method.id).returningAll().executeTakeFirstOrThrow();
    // `payment_method.updated` carries what changed in `previous_attributes`; an update that changed nothing sends none.
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'payment_method.update', objectType: 'payment_method', objectId: id },
      [{ type: 'payment_method.updated', paymentMethod: { before: method, after } }], now);
    await respond?.(tx, after);
    return after;
  });
}
