import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { WebhookAttemptsTable, WebhookDeliveryRow } from '../store/database.ts';
import { unixTime, unixTimeOrNull } from './common.ts';
import { deriveKey } from '../platform/instance-secret.ts';
import type { Secret } from '../platform/secret.ts';

export type WebhookAttemptRow = Selectable<WebhookAttemptsTable>;

/**
 * The public id of a delivery: its row's number, encrypted (one AES block under a key derived from the instance
 * secret), so that an id tells nothing of how many deliveries the installation has made for everyone.
 */
export const deliveryIdPrefix = 'whdel_';

function idCipherKey(key: Secret<Buffer>): Buffer {
  return deriveKey(key, 'webhook delivery ids v1').reveal().subarray(0, 16);
}

export function deliveryPublicId(id: bigint, key: Secret<Buffer>): string {
  const block = Buffer.alloc(16);
  block.writeBigUInt64BE(id, 0);
  const cipher = createCipheriv('aes-128-ecb', idCipherKey(key), null).setAutoPadding(false);
  return `${deliveryIdPrefix}${Buffer.concat([cipher.update(block), cipher.final()]).toString('base64url')}`;
}

/** A delivery id as given by a client, or null when it is not one this installation made. */
export function deliveryRowId(publicId: string, key: Secret<Buffer>): bigint | null {
  const encoded = publicId.startsWith(deliveryIdPrefix) ? publicId.slice(deliveryIdPrefix.length) : '';
  if (!/^[A-Za-z0-9_-]{22}$/.test(encoded)) return null;
  const decipher = createDecipheriv('aes-128-ecb', idCipherKey(key), null).setAutoPadding(false);
  const block = Buffer.concat([decipher.update(Buffer.from(encoded, 'base64url')), decipher.final()]);
  // The second half is zeros in every id made here; anything else was not.
  if (block.length !== 16 || !block.subarray(8).equals(Buffer.alloc(8))) return null;
  return block.readBigUInt64BE(0);
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
export function webhookDeliveryObject(row: WebhookDeliveryRow & { event_type: string }, attempts: readonly WebhookAttemptRow[], key: Secret<Buffer>): Record<string, unknown> {
  return {
    id: deliveryPublicId(row.id, key),
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
