import type { Kysely, Selectable } from 'kysely';
import { CofferError } from '../../domain/errors.ts';
import { balanceTransactionsById } from '../../flows/balance-transactions.ts';
import type { Actor } from '../../flows/context.ts';
import { disputeObjects } from '../../flows/disputes.ts';
import { permits, type ApiResource } from '../../identity/api-keys.ts';
import { balanceTransactionObject } from '../../objects/balance-transaction.ts';
import { chargeListsShown } from '../../objects/api-version.ts';
import { chargeObject } from '../../objects/charge.ts';
import { addChargeLists, refundsOf } from '../../objects/charge-lists.ts';
import { customerBalanceTransactionObject, customerObject } from '../../objects/customer.ts';
import { renderPaymentIntent } from '../../objects/payment-intent.ts';
import { paymentMethodObject } from '../../objects/payment-method.ts';
import { priceObject, productObject } from '../../objects/product.ts';
import { refundObject } from '../../objects/refund.ts';
import { shippingRateObject } from '../../objects/shipping-rate.ts';
import { setupIntentObjects } from '../../objects/setup-intent.ts';
import type { Database } from '../../store/database.ts';
import { listObject } from './common.ts';

type Rendered = Record<string, unknown>;
type OwnedTable = 'charges' | 'refunds' | 'disputes' | 'customer_balance_transactions' | 'payment_intents' | 'customers' | 'payment_methods' | 'setup_intents'
  | 'products' | 'prices' | 'shipping_rates';

/** Rows of one table by id, within the actor's merchant and mode: another merchant's id expands to nothing. */
async function ownedRows<T extends OwnedTable>(db: Kysely<Database>, table: T, ids: readonly string[], actor: Actor): Promise<Array<Selectable<Database[T]>>> {
  // As the union of the tables (not the generic T), Kysely can check the columns they all have.
  const owned: OwnedTable = table;
  const rows = await db.selectFrom(owned).selectAll().where('id', 'in', [...ids])
    .where('merchant_id', '=', actor.merchantId).where('livemode', '=', actor.livemode).execute();
  return rows as Array<Selectable<Database[T]>>;
}

interface Kind {
  /** How the kind's ids begin. */
  prefix: string;
  /** A field that names only this kind, whatever its ids look like (a product's id may be the merchant's own). */
  field?: string;
  /** What a restricted key needs to read it, as on its own endpoint. */
  resource: ApiResource;
  /** The objects, rendered as their own endpoint renders them, in the request's version. */
  load(db: Kysely<Database>, ids: readonly string[], actor: Actor, nowMs: number): Promise<Rendered[]>;
}

/** Every kind of object an expandable field can name, known by its id's prefix. */
const kinds: readonly Kind[] = [
  { prefix: 'ch_', resource: 'charges', load: async (db, ids, actor) => (await ownedRows(db, 'charges', ids, actor)).map((row) => chargeObject(row, actor.apiVersion.shape)) },
  { prefix: 're_', resource: 'refunds', load: async (db, ids, actor) => (await ownedRows(db, 'refunds', ids, actor)).map((row) => refundObject(row, actor.apiVersion.shape)) },
  { prefix: 'dp_', resource: 'disputes', load: async (db, ids, actor, nowMs) => disputeObjects(db, actor, actor.apiVersion.shape, await ownedRows(db, 'disputes', ids, actor), nowMs) },
  { prefix: 'cbtxn_', resource: 'customers', load: async (db, ids, actor) => (await ownedRows(db, 'customer_balance_transactions', ids, actor)).map(customerBalanceTransactionObject) },
  { prefix: 'cus_', resource: 'customers', load: async (db, ids, actor) => (await ownedRows(db, 'customers', ids, actor)).map(customerObject) },
  { prefix: 'pm_', resource: 'payment_methods', load: async (db, ids, actor) => (await ownedRows(db, 'payment_methods', ids, actor)).map((row) => paymentMethodObject(row, actor.apiVersion.shape)) },
  { prefix: 'prod_', field: 'product', resource: 'products', load: async (db, ids, actor) => (await ownedRows(db, 'products', ids, actor)).map(productObject) },
  { prefix: 'price_', resource: 'prices', load: async (db, ids, actor) => (await ownedRows(db, 'prices', ids, actor)).map(priceObject) },
  { prefix: 'shr_', resource: 'shipping_rates', load: async (db, ids, actor) => (await ownedRows(db, 'shipping_rates', ids, actor)).map(shippingRateObject) },
  { prefix: 'seti_', resource: 'setup_intents', load: async (db, ids, actor) => setupIntentObjects(db, await ownedRows(db, 'setup_intents', ids, actor), actor.apiVersion.shape) },
  {
    prefix: 'pi_', resource: 'payment_intents',
    load: async (db, ids, actor) => {
      const rendered = [];
      for (const row of await ownedRows(db, 'payment_intents', ids, actor)) rendered.push(await renderPaymentIntent(db, row, actor.apiVersion.shape));
      return rendered;
    },
  },
  {
    prefix: 'txn_', resource: 'balance',
    load: async (db, ids, actor) => [...(await balanceTransactionsById(db, actor, ids)).values()].map((row) => balanceTransactionObject(row, actor.apiVersion.shape)),
  },
];

/**
 * A charge's `refunds`, which it does not carry by default: a list of its newest refunds, as Stripe's. One query for
 * all the charges (a list of a hundred is not a hundred queries), the same one the older versions' lists use.
 */
async function expandRefunds(db: Kysely<Database>, actor: Actor, charges: Rendered[]): Promise<void> {
  if (charges.length === 0) return;
  const rows = await refundsOf(db, { merchantId: actor.merchantId, livemode: actor.livemode, shape: actor.apiVersion.shape }, charges.map((charge) => String(charge.id)));
  for (const charge of charges) {
    const id = String(charge.id);
    const own = rows.filter((row) => row.charge_id === id);
    const data = own.map(({ position: _position, total: _total, ...row }) => refundObject(row, actor.apiVersion.shape));
    charge.refunds = listObject(`/v1/charges/${id}/refunds`, data, Number(own[0]?.total ?? 0) > data.length);
  }
}

function checkReadable(actor: Actor, resource: ApiResource, path: string): void {
  if (actor.keyKind === 'restricted' && !permits(actor.permissions ?? {}, resource, 'read')) {
    throw new CofferError('insufficient_permissions', `This restricted key does not have read permission on ${resource}, which expanding ${path} needs.`, { param: 'expand' });
  }
}

/**
 * Replaces, along one path of `expand[]` (`customer`, `latest_charge.payment_intent`,
 * `invoice_settings.default_payment_method`, `shipping_options.shipping_rate` through a list), each id with the object it names, read with one query per kind and
 * level. A field that already holds an object is walked into; one that is null stays null. The path was checked
 * against the route's list before (`expansionsFor`); the kinds a restricted key reads are checked again here.
 */
async function expandPath(db: Kysely<Database>, actor: Actor, nowMs: number, roots: Rendered[], path: string): Promise<void> {
  let level = roots;
  for (const field of path.split('.')) {
    if (field === 'refunds') {
      // The version shows every charge's refunds already; `expandObjects` adds them with the rest of its lists.
      if (chargeListsShown(actor.apiVersion)) break;
      const charges = level.filter((object) => object.object === 'charge' && object.refunds === undefined);
      if (charges.length > 0) checkReadable(actor, 'refunds', path);
      await expandRefunds(db, actor, charges);
      level = [];
      break;
    }
    const loaded = new Map<string, Rendered>();
    const claimed = kinds.find((kind) => kind.field === field);
    for (const kind of kinds) {
      const named = (id: string) => (claimed === undefined ? id.startsWith(kind.prefix) && kind.field === undefined : kind === claimed);
      const ids = [...new Set(level.map((object) => object[field]).filter((id): id is string => typeof id === 'string' && named(id)))];
      if (ids.length === 0) continue;
      checkReadable(actor, kind.resource, path);
      for (const object of await kind.load(db, ids, actor, nowMs)) loaded.set(String(object.id), object);
    }
    const next: Rendered[] = [];
    for (const object of level) {
      const value = object[field];
      // A list of objects (a session's shipping_options) is walked into, each element in turn.
      if (Array.isArray(value)) {
        next.push(...value.filter((item): item is Rendered => typeof item === 'object' && item !== null && !Array.isArray(item)));
        continue;
      }
      const expanded = typeof value === 'string' ? loaded.get(value) : value;
      if (typeof expanded !== 'object' || expanded === null) continue;
      // Each holder gets its own copy, so that a deeper level expanded in one is not shared with another by accident.
      const own = typeof value === 'string' ? structuredClone(expanded) as Rendered : expanded as Rendered;
      object[field] = own;
      next.push(own);
    }
    level = next;
  }
}

/**
 * `expandPath` for each path of the request, shortest first, so that a longer path walks into what a shorter one
 * expanded. Then, for a version before 2022-11-15, the lists it shows: every PaymentIntent's charges and every
 * Charge's refunds, the expanded ones included, one query for each kind (decision 0047). A publishable key is shown
 * no charges (`publishablePaymentIntentFields`), so nothing is read for it.
 */
export async function expandObjects(db: Kysely<Database>, actor: Actor, nowMs: number, objects: Rendered[], paths: readonly string[]): Promise<void> {
  const ordered = [...paths].sort((a, b) => a.split('.').length - b.split('.').length);
  for (const path of ordered) await expandPath(db, actor, nowMs, objects, path);
  if (chargeListsShown(actor.apiVersion) && actor.keyKind !== 'publishable') {
    // The lists hold charges and refunds: a restricted key needs to read those, as it would to expand them.
    const beforeRead = (resource: 'charges' | 'refunds') => {
      if (actor.keyKind !== 'restricted' || permits(actor.permissions ?? {}, resource, 'read')) return;
      const within = resource === 'charges' ? 'a PaymentIntent its charges' : 'a Charge its refunds';
      throw new CofferError('insufficient_permissions', `This restricted key does not have read permission on ${resource}, which API version ${actor.apiVersion.name} shows (it gives ${within}).`);
    };
    await addChargeLists(db, { merchantId: actor.merchantId, livemode: actor.livemode, shape: actor.apiVersion.shape, beforeRead }, objects);
  }
}
