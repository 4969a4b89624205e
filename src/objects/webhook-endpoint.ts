import type { WebhookEndpointRow } from '../store/database.ts';
import { unixTime } from './common.ts';

/** Stripe's WebhookEndpoint. The signing secret appears only in the answer that creates (or rolls) it. */
export function webhookEndpointObject(row: WebhookEndpointRow, secret?: string): Record<string, unknown> {
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'webhook_endpoint',
    api_version: row.api_version,
    application: null,
    created: unixTime(row.created_at),
    description: row.description,
    enabled_events: row.enabled_events,
    livemode: row.livemode,
    metadata: row.metadata,
  };
  if (secret !== undefined) object.secret = secret;
  object.status = row.status;
  object.url = row.url;
  return object;
}
