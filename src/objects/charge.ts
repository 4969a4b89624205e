import type { ChargeRow } from '../store/database.ts';
import type { ApiShape } from './api-version.ts';
import { balanceTransactionId } from './balance-transaction.ts';
import { amountOut, shippingObject, unixTime, unixTimeOrNull } from './common.ts';
import { billingDetailsObject } from './payment-method.ts';

/** What the charge keeps of the card at the time of the attempt (no card number, ever). */
export interface ChargeCardDetails {
  brand: string;
  last4: string;
  exp_month: number;
  exp_year: number;
  country: string | null;
  funding: string;
  fingerprint: string;
  network: string;
  authorization_code: string | null;
  network_transaction_id: string | null;
  cvc_check: string | null;
  address_line1_check?: string | null;
  address_postal_code_check?: string | null;
  three_d_secure?: Record<string, unknown> | null;
  /** Whether the hold can be raised before capture (absent from charges made before Coffer offered it). */
  incremental_authorization?: 'available' | 'unavailable';
  /** Kept for risk (velocity by issuer), never shown. */
  bin?: string;
}

export interface ChargeOutcome {
  network_status: 'approved_by_network' | 'declined_by_network' | 'not_sent_to_network' | 'reversed_after_approval';
  reason: string | null;
  type: 'authorized' | 'manual_review' | 'issuer_declined' | 'blocked' | 'invalid';
  seller_message: string;
  risk_level: string;
  risk_score?: number;
  /** The risk rule that decided (Stripe's `outcome.rule`), when one did. */
  rule?: string;
  advice_code: string | null;
}

function cardObject(row: ChargeRow, shape: ApiShape): Record<string, unknown> {
  const card = row.payment_method_details as unknown as ChargeCardDetails;
  const authorized = row.status === 'succeeded' ? amountOut(row.amount_authorized) : null;
  const object: Record<string, unknown> = { amount_authorized: authorized };
  if (shape === 'current') object.authorization_code = card.authorization_code;
  object.brand = card.brand;
  if (row.capture_before !== null && !row.captured && row.status === 'succeeded') {
    object.capture_before = unixTimeOrNull(row.capture_before);
  }
  object.checks = { address_line1_check: card.address_line1_check ?? null, address_postal_code_check: card.address_postal_code_check ?? null, cvc_check: card.cvc_check };
  object.country = card.country;
  if (shape === 'current') object.electronic_commerce_indicator = null;
  Object.assign(object, {
    exp_month: card.exp_month,
    exp_year: card.exp_year,
    extended_authorization: { status: 'disabled' },
    fingerprint: card.fingerprint,
    funding: card.funding,
    incremental_authorization: { status: card.incremental_authorization ?? 'unavailable' },
    installments: null,
    last4: card.last4,
    mandate: null,
    multicapture: { status: 'unavailable' },
    network: card.network,
    network_token: { used: false },
  });
  if (shape === 'current') object.network_transaction_id = card.network_transaction_id;
  object.overcapture = { maximum_amount_capturable: amountOut(row.amount), status: 'unavailable' };
  if (shape === 'current') object.regulated_status = 'unregulated';
  // Stripe's fields, plus `liability_shift`: whether fraud-chargeback liability moved to the issuer.
  object.three_d_secure = card.three_d_secure ?? null;
  if (shape === 'current') object.transaction_link_id = null;
  object.wallet = null;
  return object;
}

function outcomeObject(outcome: ChargeOutcome | null, shape: ApiShape): Record<string, unknown> | null {
  if (outcome === null) return null;
  const object: Record<string, unknown> = {};
  if (shape === 'current') {
    object.advice_code = outcome.advice_code;
    object.network_advice_code = null;
    object.network_decline_code = null;
  }
  object.network_status = outcome.network_status;
  object.reason = outcome.reason;
  object.risk_level = outcome.risk_level;
  if (outcome.risk_score !== undefined) object.risk_score = outcome.risk_score;
  if (outcome.rule !== undefined) object.rule = outcome.rule;
  object.seller_message = outcome.seller_message;
  object.type = outcome.type;
  return object;
}

/** The static part of every statement descriptor (an account setting at Stripe). */
const statementDescriptorPrefix = 'COFFER';

/**
 * What the shopper's statement shows, as Stripe calculates it: the full descriptor the payment set, or the
 * account's prefix with the payment's suffix (`COFFER* ORDER 42`), upper case, at most 22 characters.
 */
export function calculatedStatementDescriptor(full: string | null, suffix: string | null): string {
  const text = full ?? (suffix === null ? statementDescriptorPrefix : `${statementDescriptorPrefix}* ${suffix}`);
  return text.toUpperCase().slice(0, 22);
}


/**
 * Stripe reports the authorized part that was released without capture (a partial capture's remainder, a
 * cancelled authorization) as refunded; Coffer keeps releases and refunds apart and adds them up here.
 */
export function chargeObject(row: ChargeRow, shape: ApiShape): Record<string, unknown> {
  const amountRefunded = row.amount_refunded + row.amount_released;
  const object: Record<string, unknown> = {
    id: row.id,
    object: 'charge',
    amount: amountOut(row.amount),
    amount_captured: amountOut(row.amount_captured),
    amount_refunded: amountOut(amountRefunded),
    application: null,
    application_fee: null,
    application_fee_amount: null,
    // The capture's transaction in the ledger; an uncaptured authorization is not yet the merchant's money.
    balance_transaction: row.amount_captured > 0n ? balanceTransactionId(row.id, 'capture') : null,
    billing_details: billingDetailsObject(row.billing_details, shape),
    calculated_statement_descriptor: calculatedStatementDescriptor(row.statement_descriptor, row.statement_descriptor_suffix),
    captured: row.captured,
    created: unixTime(row.created_at),
    currency: row.currency,
    customer: row.customer_id,
    description: row.description,
    disputed: row.disputed,
    failure_balance_transaction: null,
    failure_code: row.failure_code,
    failure_message: row.failure_message,
    fraud_details: row.fraud_user_report === null ? {} : { user_report: row.fraud_user_report },
  };
  if (shape === 'legacy') object.invoice = null;
  Object.assign(object, {
    livemode: row.livemode,
    metadata: row.metadata,
    on_behalf_of: null,
    outcome: outcomeObject(row.outcome as ChargeOutcome | null, shape),
    paid: row.status === 'succeeded',
    payment_intent: row.payment_intent_id,
    payment_method: row.payment_method_id,
    payment_method_details: row.provider === 'card'
      ? { card: cardObject(row, shape), type: 'card' }
      : { [row.provider]: row.payment_method_details, type: row.provider },
    radar_options: {},
    receipt_email: row.receipt_email,
    receipt_number: null,
    receipt_url: null,
    refunded: amountRefunded > 0n && amountRefunded === row.amount,
    review: row.review_id,
    shipping: shippingObject(row.shipping),
    source: null,
    source_transfer: null,
    statement_descriptor: row.statement_descriptor,
    statement_descriptor_suffix: row.statement_descriptor_suffix,
    status: row.status,
    transfer_data: null,
    transfer_group: null,
  });
  return object;
}
