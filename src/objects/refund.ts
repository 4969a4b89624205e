import type { RefundRow } from '../store/database.ts';
import type { ApiShape } from './api-version.ts';
import { balanceTransactionId } from './balance-transaction.ts';
import { amountOut, unixTime } from './common.ts';

/** Stripe's Refund. `destination_details` says where the money goes back: the card the charge was made with. */
export function refundObject(row: RefundRow, _shape: ApiShape): Record<string, unknown> {
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'refund',
    amount: amountOut(row.amount),
    // Money leaves the merchant's funds when the refund succeeds at the provider (debited_account says whence).
    balance_transaction: row.debited_account === null ? null : balanceTransactionId(row.id, 'refund'),
    charge: row.charge_id,
    created: unixTime(row.created_at),
    currency: row.currency,
    customer: row.customer_id,
    customer_account: null,
    destination_details: {
      card: { reference: row.provider_reference, reference_status: row.status === 'succeeded' ? 'available' : 'pending', reference_type: 'acquirer_reference_number', type: 'refund' },
      type: 'card',
    },
  };
  if (row.status === 'failed') {
    // A refund that failed after succeeding put the money back: that is its failure transaction.
    object.failure_balance_transaction = row.debited_account === null ? null : balanceTransactionId(row.id, 'refund_failure');
    object.failure_reason = row.failure_reason;
  }
  Object.assign(object, {
    metadata: row.metadata,
    payment_intent: row.payment_intent_id,
    payment_method: row.payment_method_id,
    reason: row.reason,
    receipt_number: null,
    source_transfer_reversal: null,
    status: row.status,
    transfer_reversal: null,
  });
  return object;
}
