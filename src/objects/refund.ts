import type { RefundRow } from '../store/database.ts';
import type { ApiShape } from './api-version.ts';
import { amountOut, unixTime } from './common.ts';

/** Stripe's Refund. `destination_details` says where the money goes back: the card the charge was made with. */
export function refundObject(row: RefundRow, _shape: ApiShape): Record<string, unknown> {
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'refund',
    amount: amountOut(row.amount),
    balance_transaction: null,
    charge: row.charge_id,
    created: unixTime(row.created_at),
    currency: row.currency,
    destination_details: {
      card: { reference: row.provider_reference, reference_status: row.status === 'succeeded' ? 'available' : 'pending', reference_type: 'acquirer_reference_number', type: 'refund' },
      type: 'card',
    },
  };
  if (row.status === 'failed') object.failure_reason = row.failure_reason;
  Object.assign(object, {
    metadata: row.metadata,
    payment_intent: row.payment_intent_id,
    reason: row.reason,
    receipt_number: null,
    source_transfer_reversal: null,
    status: row.status,
    transfer_reversal: null,
  });
  return object;
}
