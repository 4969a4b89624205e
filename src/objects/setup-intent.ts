import type { SetupIntentRow } from '../store/database.ts';
import { unixTime } from './common.ts';

export function setupIntentObject(row: SetupIntentRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'setup_intent',
    application: null,
    automatic_payment_methods: row.automatic_payment_methods,
    cancellation_reason: row.cancellation_reason,
    client_secret: row.client_secret,
    created: unixTime(row.created_at),
    customer: row.customer_id,
    description: row.description,
    flow_directions: null,
    last_setup_error: row.last_setup_error,
    latest_attempt: null,
    livemode: row.livemode,
    mandate: null,
    metadata: row.metadata,
    // Only while the shopper has something to do: a SetupIntent canceled or given another card has no challenge left.
    next_action: row.status === 'requires_action' ? row.next_action : null,
    on_behalf_of: null,
    payment_method: row.payment_method_id,
    payment_method_configuration_details: null,
    payment_method_options: { card: { mandate_options: null, network: null, request_three_d_secure: 'automatic' } },
    payment_method_types: ['card'],
    single_use_mandate: null,
    status: row.status,
    usage: row.usage,
  };
}
