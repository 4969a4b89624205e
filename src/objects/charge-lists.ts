import { sql, type Kysely, type Transaction } from 'kysely';
import { limits } from '../limits.ts';
import type { Database } from '../store/database.ts';
import type { ApiShape } from './api-version.ts';
import { chargeObject } from './charge.ts';
import { refundObject } from './refund.ts';

type Reader = Kysely<Database> | Transaction<Database>;
type Rendered = Record<string, unknown>;

/**
 * Whose lists they are, and in which shape their items are rendered. `asOf`, for an event: only the charges and
 * refunds made by the event's time are listed (each as it is now), never one made after what the event describes.
 */
export interface ChargeListScope {
  merchantId: string;
  livemode: boolean;
  shape: ApiShape;
  asOf?: Date | undefined;
  /** Called before the charges, or the refunds, are read: a restricted key's permission is checked there. */
  beforeRead?: ((resource: 'charges' | 'refunds') => void) | undefined;
}

/** How deep the walk looks for objects in an answer: an error's PaymentIntent's expanded field's object is 5. */
const walkDepthMax = 12;

function isHash(value: unknown): value is Rendered {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface Found {
  intents: Rendered[];
  charges: Rendered[];
}

/** The PaymentIntents and Charges in an answer, at any depth (a list's items, expanded fields, an error's object), that lack their lists. */
function collect(value: unknown, found: Found, depth: number): void {
  if (depth > walkDepthMax) return;
  if (Array.isArray(value)) {
    for (const item of value) collect(item, found, depth + 1);
    return;
  }
  if (!isHash(value)) return;
  if (value.object === 'payment_intent' && typeof value.id === 'string' && !('charges' in value)) found.intents.push(value);
  if (value.object === 'charge' && typeof value.id === 'string' && !('refunds' in value)) found.charges.push(value);
  for (const field of Object.values(value)) collect(field, found, depth + 1);
}

/**
 * Puts `field` right after `after`, in Stripe's (alphabetical) order, and drops `without`. In place: the object
 * may be held by a list or an error already.
 */
function placeField(object: Rendered, after: string, field: string, value: unknown, without?: string): void {
  const entries = Object.entries(object).filter(([key]) => key !== without && key !== field);
  for (const key of Object.keys(object)) Reflect.deleteProperty(object, key);
  for (const [key, kept] of entries) {
    object[key] = kept;
    if (key === after) object[field] = value;
  }
  if (!(field in object)) object[field] = value;
}

/** Stripe's embedded list: its newest items, whether there are more, how many there are in all, and where the rest are. */
function embeddedList(data: Rendered[], total: number, url: string): Rendered {
  return { object: 'list', data, has_more: total > data.length, total_count: total, url };
}

/** The newest charges of each PaymentIntent (one query for them all), with each one's count of charges. */
async function chargesOf(db: Reader, scope: ChargeListScope, intentIds: string[]) {
  let inner = db.selectFrom('charges').selectAll()
    .select(sql<number>`row_number() OVER (PARTITION BY payment_intent_id ORDER BY seq DESC)`.as('position'))
    .select(sql<string>`count(*) OVER (PARTITION BY payment_intent_id)`.as('total'))
    .where('payment_intent_id', 'in', intentIds).where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode);
  if (scope.asOf !== undefined) inner = inner.where('created_at', '<=', scope.asOf);
  return db.selectFrom(inner.as('numbered')).selectAll().where('position', '<=', limits.embeddedListItemsMax).orderBy('seq', 'desc').execute();
}

/** The newest refunds of each charge (one query for them all), with each one's count of refunds. */
export async function refundsOf(db: Reader, scope: ChargeListScope, chargeIds: string[]) {
  let inner = db.selectFrom('refunds').selectAll()
    .select(sql<number>`row_number() OVER (PARTITION BY charge_id ORDER BY seq DESC)`.as('position'))
    .select(sql<string>`count(*) OVER (PARTITION BY charge_id)`.as('total'))
    .where('charge_id', 'in', chargeIds).where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode);
  if (scope.asOf !== undefined) inner = inner.where('created_at', '<=', scope.asOf);
  return db.selectFrom(inner.as('numbered')).selectAll().where('position', '<=', limits.embeddedListItemsMax).orderBy('seq', 'desc').execute();
}

/**
 * Gives every PaymentIntent in `roots` its `charges` (in place of `latest_charge`) and every Charge, those listed
 * included, its `refunds`, as Stripe's versions before 2022-11-15 show them (decision 0047). One query for the
 * charges of all the PaymentIntents and one for the refunds of all the charges, whatever the number of objects;
 * none when there is nothing to list.
 */
export async function addChargeLists(db: Reader, scope: ChargeListScope, roots: readonly unknown[]): Promise<void> {
  const found: Found = { intents: [], charges: [] };
  for (const root of roots) collect(root, found, 0);
  if (found.intents.length > 0) {
    scope.beforeRead?.('charges');
    const rows = await chargesOf(db, scope, [...new Set(found.intents.map((intent) => String(intent.id)))]);
    for (const intent of found.intents) {
      const id = String(intent.id);
      const own = rows.filter((row) => row.payment_intent_id === id);
      const data = own.map(({ position: _position, total: _total, ...row }) => chargeObject(row, scope.shape));
      found.charges.push(...data);
      placeField(intent, 'capture_method', 'charges', embeddedList(data, Number(own[0]?.total ?? 0), `/v1/charges?payment_intent=${id}`), 'latest_charge');
    }
  }
  if (found.charges.length > 0) {
    scope.beforeRead?.('refunds');
    const rows = await refundsOf(db, scope, [...new Set(found.charges.map((charge) => String(charge.id)))]);
    for (const charge of found.charges) {
      const id = String(charge.id);
      const own = rows.filter((row) => row.charge_id === id);
      const data = own.map(({ position: _position, total: _total, ...row }) => refundObject(row, scope.shape));
      placeField(charge, 'refunded', 'refunds', embeddedList(data, Number(own[0]?.total ?? 0), `/v1/charges/${id}/refunds`));
    }
  }
}

/**
 * An event's payload for an endpoint pinned to a version before 2022-11-15: its object (rendered in the 2024-04-10
 * shape when the event was recorded) with the lists that version shows, as of the event's time. A payload labelled
 * with another version (an event older than the endpoint, never rendered in its shape) is left as it is.
 */
export async function eventPayloadWithChargeLists(db: Reader, payload: string, endpointVersion: string, scope: ChargeListScope): Promise<string> {
  const event = JSON.parse(payload) as { api_version?: unknown; data?: { object?: unknown; previous_attributes?: unknown } };
  const data = event.data;
  if (event.api_version !== endpointVersion || data === undefined) return payload;
  const found: Found = { intents: [], charges: [] };
  collect(data.object, found, 0);
  if (found.intents.length === 0 && found.charges.length === 0) return payload;
  await addChargeLists(db, scope, [data.object]);
  // The version has no latest_charge, so no previous value of it either.
  if (isHash(data.object) && data.object.object === 'payment_intent' && isHash(data.previous_attributes)) {
    Reflect.deleteProperty(data.previous_attributes, 'latest_charge');
    if (Object.keys(data.previous_attributes).length === 0) Reflect.deleteProperty(data, 'previous_attributes');
  }
  return JSON.stringify(event);
}
