import type { Selectable } from 'kysely';
import type { WebhookAttemptsTable, WebhookDeliveryRow } from '../store/database.ts';
import { unixTime, unixTimeOrNull } from './common.ts';

export type WebhookAttemptRow = Selectable<WebhookAttemptsTable>;

/** The public id of a delivery: its row's number, prefixed as Coffer's other ids are. */
export const deliveryIdPrefix = 'whdel_';

export function deliveryPublicId(id: bigint): string {
  return `${deliveryIdPrefix}${id}`;
}

/** A delivery id as given by a client, or null when it is not one Coffer could have made. */
export function deliveryRowId(publicId: string): bigint | null {
  const digits = publicId.startsWith(deliveryIdPrefix) ? publicId.slice(deliveryIdPrefix.length) : '';
  return /^[1-9][0-9]{0,17}$/.test(digits) ? BigInt(digits) : null;
}

/** One try at sending: the HTTP status the endpoint answered, or why there was no answer. */
function attemptObject(row: WebhookAttemptRow): Record<string, unknown> {
  return {
    attempted_at: unixTime(row.attempted_at),
    error: row.error,
    latency_ms: row.latency_ms,
    status_code: row.status_code,
  };
}

/**
 * A Coffer extension (Stripe shows deliveries only in its dashboard): one event's delivery to one endpoint, with
 * every attempt, newest first. `next_attempt_at` is set while the delivery is pending.
 */
export function webhookDeliveryObject(row: WebhookDeliveryRow & { event_type: string }, attempts: readonly WebhookAttemptRow[]): Record<string, unknown> {
  return {
    id: deliveryPublicId(row.id),
    object: 'webhook_delivery',
    attempt_count: row.attempts,
    attempts: attempts.map(attemptObject),
    created: unixTime(row.created_at),
    delivered_at: unixTimeOrNull(row.delivered_at),
    event: row.event_id,
    event_type: row.event_type,
    last_error: row.last_error,
    last_status_code: row.last_status_code,
    next_attempt_at: row.status === 'pending' ? unixTime(row.next_attempt_at) : null,
    status: row.status,
    webhook_endpoint: row.endpoint_id,
  };
}
