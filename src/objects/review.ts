import type { ReviewRow } from '../store/database.ts';
import { unixTime } from './common.ts';

/**
 * Stripe's Review object: a payment the risk engine held for a person. `reason` is why it is open, or how it was
 * closed. Coffer adds `reasons`, the decision's own words (the rule, the model's strongest features).
 */
export function reviewObject(row: ReviewRow): Record<string, unknown> {
  return {
    id: row.id,
    object: 'review',
    billing_zip: null,
    charge: row.charge_id,
    closed_reason: row.closed_reason,
    created: unixTime(row.created_at),
    ip_address: null,
    ip_address_location: null,
    livemode: row.livemode,
    open: row.open,
    opened_reason: row.opened_reason,
    payment_intent: row.payment_intent_id,
    reason: row.closed_reason ?? row.opened_reason,
    reasons: row.reasons,
    session: null,
  };
}
