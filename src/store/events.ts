import { parseApiVersion } from '../objects/api-version.ts';
import { newId } from '../platform/random.ts';
import { sql, type Insertable } from 'kysely';
import type { Tx } from '../flows/context.ts';
import type { EventsTable } from './database.ts';

export interface EventInput {
  merchantId: string;
  livemode: boolean;
  type: string;
  /** The object after the change, rendered in `apiVersion`. */
  object: Record<string, unknown> & { id: unknown };
  /** Top-level fields the change modified, with their previous values. */
  previousAttributes?: Record<string, unknown> | undefined;
  apiVersion: string;
  /**
   * The same object rendered in the other API shape, for webhook endpoints that ask for it (kept only if one
   * does: see migration 0010). Its envelope names `apiVersion` too; delivery puts the endpoint's version there.
   */
  other?: { shape: 'current' | 'legacy'; object: Record<string, unknown>; previousAttributes?: Record<string, unknown> | undefined } | undefined;
  requestId: string | null;
  idempotencyKey: string | null;
  createdAt: Date;
}

/**
 * Records an event in the caller's transaction (the outbox): it exists if and only if the change it describes
 * was committed. Its payload is rendered once, here, and delivered byte for byte.
 */
export async function recordEvent(tx: Tx, input: EventInput): Promise<string> {
  const row = eventRow(input);
  await tx.insertInto('events').values(row).execute();
  return row.id;
}

/** The events row for `input`, with its payload rendered: insert it with others in one statement. */
export function eventRow(input: EventInput): Insertable<EventsTable> & { id: string } {
  const id = newId('evt');
  const other = input.other;
  return {
    id,
    merchant_id: input.merchantId,
    livemode: input.livemode,
    created_at: input.createdAt,
    type: input.type,
    object_id: String(input.object.id),
    api_version: input.apiVersion,
    request_id: input.requestId,
    idempotency_key: input.idempotencyKey,
    payload: eventPayload(id, input, input.object, input.previousAttributes),
    other_shape: other?.shape ?? null,
    other_payload: other === undefined ? null : eventPayload(id, input, other.object, other.previousAttributes),
  };
}

/**
 * Stripe's PaymentIntent events other than `payment_intent.updated` carry no `previous_attributes` (a status change
 * is the event's type); the attributes Coffer would show there include `processing`, a status the API never
 * showed while the attempt ran. Other events keep them where Stripe sends them (`*.updated`, a payment method
 * attached or detached, a dispute closed, a charge captured or refunded).
 */
function showsPreviousAttributes(type: string): boolean {
  return !type.startsWith('payment_intent.') || type === 'payment_intent.updated';
}

/** The event as delivered: Stripe's envelope, `api_version` third (delivery may put the endpoint's version there). */
function eventPayload(id: string, input: EventInput, object: Record<string, unknown>, previous: Record<string, unknown> | undefined): string {
  const data: Record<string, unknown> = { object };
  if (previous !== undefined && Object.keys(previous).length > 0 && showsPreviousAttributes(input.type)) data.previous_attributes = previous;
  return JSON.stringify({
    id,
    object: 'event',
    api_version: input.apiVersion,
    created: Math.floor(input.createdAt.getTime() / 1000),
    data,
    livemode: input.livemode,
    pending_webhooks: 0,
    request: { id: input.requestId, idempotency_key: input.idempotencyKey },
    type: input.type,
  });
}

/**
 * `pending_webhooks` as it is now: deliveries of the event not yet received, or, before the event is relayed, the
 * endpoints that will get it. An SQL expression over the `events` row in scope.
 */
export const pendingWebhooksSql = sql<string>`CASE WHEN events.relayed THEN (
    SELECT count(*) FROM webhook_deliveries d WHERE d.event_id = events.id AND d.status <> 'succeeded'
  ) ELSE (
    SELECT count(*) FROM webhook_endpoints w WHERE w.merchant_id = events.merchant_id AND w.livemode = events.livemode
      AND w.status = 'enabled' AND w.deleted_at IS NULL AND w.created_at <= events.created_at
      AND (w.enabled_events @> '["*"]'::jsonb OR w.enabled_events @> jsonb_build_array(events.type))
  ) END`;

/** A stored payload with its `pending_webhooks` (stored as 0, in the envelope just before `request`) set to a count. */
export function withPendingWebhooks(payload: string, pending: number | string | bigint): string {
  const stored = '"pending_webhooks":0,"request":';
  const at = payload.lastIndexOf(stored);
  if (at < 0) return payload;
  return `${payload.slice(0, at)}"pending_webhooks":${Number(pending)},"request":${payload.slice(at + stored.length)}`;
}

/**
 * The bytes an endpoint receives for an event: the rendering in the endpoint's shape, and its version in the
 * envelope. An endpoint without a version of its own, or one the event was rendered in, gets the stored payload.
 * An event never rendered in the endpoint's shape (it is older than the endpoint, and a resend sends it now) goes
 * as it was rendered, under its own version: its label always says the shape it has.
 */
export function payloadForEndpoint(
  event: { payload: string; api_version: string; other_shape: 'current' | 'legacy' | null; other_payload: string | null },
  endpoint: { api_version: string | null; api_shape: 'current' | 'legacy' | null },
): string {
  if (endpoint.api_version === null || endpoint.api_version === event.api_version) return event.payload;
  const storedShape = parseApiVersion(event.api_version)?.shape;
  const rendered = endpoint.api_shape !== null && endpoint.api_shape === event.other_shape && event.other_payload !== null ? event.other_payload
    : endpoint.api_shape === null || endpoint.api_shape === storedShape ? event.payload : undefined;
  if (rendered === undefined) return event.payload;
  const stored = `"api_version":${JSON.stringify(event.api_version)}`;
  const at = rendered.indexOf(stored);
  if (at < 0) return rendered;
  return `${rendered.slice(0, at)}"api_version":${JSON.stringify(endpoint.api_version)}${rendered.slice(at + stored.length)}`;
}

const unchanged = Symbol('unchanged');

function isHash(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What `before` was where it differs from `after`: hashes compared key by key, anything else as a whole. */
function previousValue(before: unknown, after: unknown): unknown {
  if (isHash(before) && isHash(after)) {
    const changed = previousAttributes(before, after);
    return Object.keys(changed).length === 0 ? unchanged : changed;
  }
  return JSON.stringify(before) === JSON.stringify(after) ? unchanged : (before ?? null);
}

/**
 * The fields that differ between two renderings of one object, with their old values, as Stripe's
 * `previous_attributes`: within a hash (`metadata`, an address) only the keys that changed, a key that was not
 * there before as null; an array, or a value that changed type, whole.
 */
export function previousAttributes(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): Record<string, unknown> {
  const changed: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(after), ...Object.keys(before)])) {
    const previous = previousValue(before[key], after[key]);
    if (previous !== unchanged) changed[key] = previous;
  }
  return changed;
}
