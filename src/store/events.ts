import { newId } from '../platform/random.ts';
import type { Insertable } from 'kysely';
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
  const data: Record<string, unknown> = { object: input.object };
  if (input.previousAttributes !== undefined && Object.keys(input.previousAttributes).length > 0) {
    data.previous_attributes = input.previousAttributes;
  }
  const payload = {
    id,
    object: 'event',
    api_version: input.apiVersion,
    created: Math.floor(input.createdAt.getTime() / 1000),
    data,
    livemode: input.livemode,
    pending_webhooks: 0,
    request: { id: input.requestId, idempotency_key: input.idempotencyKey },
    type: input.type,
  };
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
    payload: JSON.stringify(payload),
  };
}

/** The top-level fields that differ between two renderings of one object, with their old values. */
export function previousAttributes(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): Record<string, unknown> {
  const changed: Record<string, unknown> = {};
  for (const key of Object.keys(after)) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) changed[key] = before[key] ?? null;
  }
  return changed;
}
