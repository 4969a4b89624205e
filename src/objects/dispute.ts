import type { DisputeRow } from '../store/database.ts';
import { amountOut, unixTime } from './common.ts';

/** The evidence fields Coffer accepts (Stripe's text fields; file evidence comes with file uploads). */
export const disputeEvidenceFields = [
  'access_activity_log', 'billing_address', 'cancellation_policy_disclosure', 'cancellation_rebuttal',
  'customer_email_address', 'customer_name', 'customer_purchase_ip', 'duplicate_charge_explanation',
  'product_description', 'refund_policy_disclosure', 'refund_refusal_explanation', 'service_date',
  'shipping_address', 'shipping_carrier', 'shipping_date', 'shipping_tracking_number', 'uncategorized_text',
] as const;

const unsupportedEvidenceFields = [
  'cancellation_policy', 'customer_communication', 'customer_signature', 'duplicate_charge_documentation', 'duplicate_charge_id',
  'receipt', 'refund_policy', 'service_documentation', 'shipping_documentation', 'uncategorized_file',
] as const;

const inquiryStatuses: ReadonlySet<DisputeRow['status']> = new Set(['warning_needs_response', 'warning_under_review', 'warning_closed']);

/** An inquiry (Stripe's `warning_*` statuses) asks for information; nothing is withdrawn unless it escalates. */
export function isInquiry(dispute: Pick<DisputeRow, 'status'>): boolean {
  return inquiryStatuses.has(dispute.status);
}

/**
 * Stripe's Dispute, with the balance transactions that moved its funds (rendered, oldest first): the withdrawal of
 * a chargeback and, if it was won, the reinstatement; none for an inquiry.
 */
export function disputeObject(row: DisputeRow, nowMs: number, balanceTransactions: Array<Record<string, unknown>>): Record<string, unknown> {
  const evidence: Record<string, unknown> = {};
  for (const field of disputeEvidenceFields) evidence[field] = row.evidence[field] ?? null;
  // Evidence Coffer does not take yet (files, which come with file uploads; a duplicate charge's id): shown empty.
  for (const field of unsupportedEvidenceFields) evidence[field] = null;
  evidence.enhanced_evidence = {};
  const open = row.status === 'needs_response' || row.status === 'warning_needs_response';
  return {
    id: row.id,
    object: 'dispute',
    amount: amountOut(row.amount),
    balance_transactions: balanceTransactions,
    charge: row.charge_id,
    created: unixTime(row.created_at),
    currency: row.currency,
    enhanced_eligibility_types: [],
    evidence,
    evidence_details: {
      due_by: unixTime(row.evidence_due_by),
      enhanced_eligibility: {},
      has_evidence: Object.keys(row.evidence).length > 0,
      past_due: open && row.evidence_due_by.getTime() < nowMs,
      submission_count: row.submission_count,
      submission_method: row.submission_count > 0 ? 'manual' : 'not_submitted',
    },
    intended_submission_method: null,
    is_charge_refundable: row.status === 'warning_closed',
    livemode: row.livemode,
    metadata: row.metadata,
    network_reason_code: row.network_reason_code,
    payment_intent: row.payment_intent_id,
    payment_method_details: {
      card: { brand: row.card_brand ?? 'unknown', case_type: isInquiry(row) ? 'inquiry' : 'chargeback', network: row.card_network ?? row.card_brand ?? 'unknown', network_reason_code: row.network_reason_code },
      type: 'card',
    },
    reason: row.reason,
    status: row.status,
  };
}
