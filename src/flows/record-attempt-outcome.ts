import { captureMethodFor, setupFutureUsageFor } from '../domain/card-payment-options.ts';
import type { ActionRequired, Approval, Connector, Decline, ThreeDSecureResult } from '../connectors/connector.ts';
import { CofferError, errorCatalog } from '../domain/errors.ts';
import { authorizationTransfers, settlementTransfers } from '../domain/ledger.ts';
import { limits } from '../limits.ts';
import type { ChargeCardDetails, ChargeOutcome } from '../objects/charge.ts';
import type { StoredPaymentError } from '../objects/payment-intent.ts';
import { assert } from '../platform/assert.ts';
import type { AuditLogTable, ChargeRow, Database, EventsTable, PaymentIntentRow, PaymentMethodRow, ReviewRow } from '../store/database.ts';
import { sql, type Insertable, type Kysely } from 'kysely';
import type { LedgerWork } from './ledger-work.ts';
import { velocityEntries, type VelocityEntry, type VelocityKeys } from '../risk/velocity.ts';
import type { IdempotencyClaim, Outcome, Services, Tx } from './context.ts';
import { changeRows, eventRowsOf, lockCharge, lockPaymentIntent, nextStatus, type PaymentEvent, type Scope } from './payment-intent-records.ts';
import { heldForReview } from './risk-decision.ts';
import { newId } from '../platform/random.ts';
import { ledgerCommandsJson } from '../store/ledger.ts';
import { chargeChanges, paymentIntentChanges } from '../store/row-json.ts';
import { keyHeldBy } from '../store/idempotency-keys.ts';
import type { Respond } from './respond.ts';
import { inTransaction } from './transaction.ts';
import type { Trail } from './trail.ts';

/** A wallet (Alipay, WeChat Pay) payment the shopper completed: the money is taken, there is no separate capture. */
export interface WalletPaid {
  status: 'wallet_paid';
  providerReference: string;
}

/** How an attempt ended at the provider; `lost` means the provider never received it (and now never will). */
export type AttemptResolution = Approval | Decline | WalletPaid | ActionRequired | { status: 'lost' };

export interface AttemptRefs {
  scope: Scope;
  paymentIntentId: string;
  chargeId: string;
}

/** The risk engine's part of a charge's outcome: level, score and the deciding rule, as Stripe shows Radar's. */
function riskPart(charge: ChargeRow): Pick<ChargeOutcome, 'risk_level' | 'risk_score' | 'rule'> {
  const risk = charge.risk;
  if (risk === null) return { risk_level: 'not_assessed' };
  return {
    risk_level: risk.risk_level,
    ...(risk.risk_score === null ? {} : { risk_score: risk.risk_score }),
    ...(risk.rule === null ? {} : { rule: risk.rule }),
  };
}

function approvedOutcome(charge: ChargeRow): ChargeOutcome {
  if (heldForReview(charge.risk)) {
    return {
      network_status: 'approved_by_network',
      reason: charge.risk?.rule === null || charge.risk?.rule === undefined ? 'elevated_risk_level' : 'rule',
      type: 'manual_review',
      seller_message: 'Coffer authorized this payment, but placed it in review: approve or reject it.',
      ...riskPart(charge),
      advice_code: null,
    };
  }
  return {
    network_status: 'approved_by_network',
    reason: null,
    type: 'authorized',
    seller_message: 'Payment complete.',
    ...riskPart(charge),
    advice_code: null,
  };
}

function declinedOutcome(decline: Decline, charge: ChargeRow): ChargeOutcome {
  if (decline.blocked) {
    const byRule = charge.risk?.rule !== null && charge.risk?.rule !== undefined && charge.risk.action === 'block';
    return {
      network_status: 'not_sent_to_network',
      reason: byRule ? 'rule' : 'highest_risk_level',
      type: 'blocked',
      seller_message: 'Coffer blocked this payment as too risky.',
      ...riskPart(charge),
      ...(charge.risk === null ? { risk_level: 'highest' } : {}),
      advice_code: null,
    };
  }
  return {
    network_status: decline.networkStatus,
    reason: decline.declineCode,
    type: 'issuer_declined',
    seller_message:
      decline.declineCode === 'generic_decline'
        ? 'The bank did not return any further details with this decline.'
        : `The bank returned the decline code \`${decline.declineCode}\`.`,
    ...riskPart(charge),
    advice_code: decline.adviceCode,
  };
}

/**
 * How an attempt the acquirer never received ends: a PaymentIntent's (`lost`) and a SetupIntent's verification alike.
 * `not_sent_to_network`: no money was taken, and the shopper may try again.
 */
export const neverSentDecline: Decline = {
  status: 'declined',
  providerReference: null,
  code: 'processing_error',
  declineCode: 'processing_error',
  message: 'An error occurred while processing your card. No money was taken. Try again in a little bit.',
  param: null,
  adviceCode: 'try_again_later',
  networkStatus: 'not_sent_to_network',
  blocked: false,
};

/**
 * The card acquirer serving a mode; undefined when none does (live, until the operator configures one). An attempt
 * or a verification written for such a mode (before confirmations there were refused, decision 0038) was never
 * sent, and now never will be: it is settled with `neverSentDecline`, not asked about again and again.
 */
export function cardAcquirerOf(services: Services, livemode: boolean): Connector | undefined {
  try {
    return services.connectors.card(livemode);
  } catch (error) {
    if (error instanceof CofferError && error.code === 'flow_not_supported') return undefined;
    throw error;
  }
}

/** Everything recording an outcome changes, computed from the rows as they were: written in one statement. */
interface OutcomePlan {
  intentAfter: PaymentIntentRow;
  chargeAfter: ChargeRow;
  intentChanges: Partial<PaymentIntentRow>;
  chargeChanges: Partial<ChargeRow>;
  error: CofferError | undefined;
  eventRows: Array<Insertable<EventsTable>>;
  audit: Insertable<AuditLogTable>;
  ledger: LedgerWork | undefined;
  /** With `setup_future_usage` and a customer, a successful payment saves its payment method to the customer. */
  saveMethodTo: { paymentMethodId: string; customerId: string } | undefined;
  /** A failed attempt gives back what it took from the merchant's payment limits. */
  releaseLimits?: boolean;
  /** The outcome counted for velocity, once per dimension the attempt has (risk/velocity.ts). */
  velocity?: VelocityEntry[];
  /** A payment the risk engine held: its review, opened with the approval. */
  review?: ReviewRow;
}

/** The review a held payment opens with its approval (written by the same statement). */
function reviewFor(intent: PaymentIntentRow, charge: ChargeRow, now: Date): ReviewRow | undefined {
  if (!heldForReview(charge.risk)) return undefined;
  return {
    id: newId('prv'), merchant_id: intent.merchant_id, livemode: intent.livemode, seq: 0n, charge_id: charge.id, payment_intent_id: intent.id,
    created_at: now, open: true, opened_reason: 'rule', reasons: charge.risk?.reasons ?? [], closed_reason: null, closed_at: null, closed_by: null,
  };
}

function reviewOpened(review: ReviewRow | undefined): PaymentEvent[] {
  return review === undefined ? [] : [{ type: 'review.opened', review: { after: review } }];
}

function planApproval(intent: PaymentIntentRow, charge: ChargeRow, approval: Approval, trail: Trail, now: Date): OutcomePlan {
  const captured = approval.status === 'captured';
  const status = nextStatus(intent, captured ? 'authorized_and_captured' : 'authorized');
  const details = charge.payment_method_details as unknown as ChargeCardDetails;
  const review = reviewFor(intent, charge, now);
  const chargeChanges: Partial<ChargeRow> = {
    ...(review === undefined ? {} : { review_id: review.id }),
    status: 'succeeded',
    updated_at: now,
    provider_reference: approval.providerReference,
    amount_authorized: charge.amount,
    amount_captured: captured ? charge.amount : 0n,
    captured,
    capture_before: captured ? null : new Date(now.getTime() + limits.authorizationHoldMs),
    available_on: captured && !approval.availableImmediately ? new Date(now.getTime() + limits.settlementDelayMs) : null,
    settled: captured && approval.availableImmediately,
    payment_method_details: {
      ...details,
      authorization_code: approval.authorizationCode,
      network_transaction_id: approval.networkTransactionId,
      cvc_check: approval.cvcCheck,
      address_line1_check: approval.addressLine1Check ?? null,
      address_postal_code_check: approval.addressPostalCodeCheck ?? null,
      three_d_secure: threeDSecureDetails(approval.threeDSecure, null),
      // Whether the hold can be raised before capture; only an authorization left to capture can be.
      incremental_authorization: !captured && approval.incrementalAuthorization === true ? 'available' : 'unavailable',
    },
    outcome: approvedOutcome(charge) as unknown as Record<string, unknown>,
  };
  const intentChanges: Partial<PaymentIntentRow> = {
    ...(review === undefined ? {} : { review_id: review.id }),
    status,
    next_action: null,
    amount_capturable: captured ? 0n : charge.amount,
    amount_received: captured ? charge.amount : 0n,
    updated_at: now,
  };
  const chargeAfter = { ...charge, ...chargeChanges };
  const intentAfter = { ...intent, ...intentChanges, version: intent.version + 1n };
  const transfers = authorizationTransfers(charge.id, charge.amount, captured);
  if (captured && approval.availableImmediately) transfers.push(...settlementTransfers(`${charge.id}:settlement`, charge.amount));
  const scope = { merchantId: intent.merchant_id, livemode: intent.livemode };
  const asyncCapture = captured && captureMethodFor(intent, charge.provider) === 'automatic_async';
  const rows = changeRows(
    trail,
    scope,
    { action: captured ? 'charge.capture' : 'charge.authorize', objectType: 'charge', objectId: charge.id, details: { amount: charge.amount.toString(), currency: charge.currency } },
    [
      { type: 'charge.succeeded', charge: { after: chargeAfter, ...(asyncCapture ? { balanceTransactionPending: 'after' as const } : {}) } },
      { type: captured ? 'payment_intent.succeeded' : 'payment_intent.amount_capturable_updated', paymentIntent: { before: intent, after: intentAfter } },
      // Captured asynchronously (as Stripe's `automatic_async`): the balance transaction is announced after.
      ...(asyncCapture ? [{ type: 'charge.updated', charge: { before: chargeAfter, after: chargeAfter, balanceTransactionPending: 'before' as const } }] : []),
      ...reviewOpened(review),
    ],
    now,
  );
  const saveMethodTo = setupFutureUsageFor(intent, charge.provider) !== null && intent.customer_id !== null
    ? { paymentMethodId: charge.payment_method_id, customerId: intent.customer_id }
    : undefined;
  return {
    intentAfter,
    chargeAfter,
    intentChanges,
    chargeChanges,
    error: undefined,
    saveMethodTo,
    ...(review === undefined ? {} : { review }),
    ...rows,
    ledger: {
      context: { ...scope, currency: intent.currency, paymentIntentId: intent.id, chargeId: charge.id },
      transfers,
    },
  };
}

function planWalletPayment(intent: PaymentIntentRow, charge: ChargeRow, paid: WalletPaid, trail: Trail, now: Date): OutcomePlan {
  const status = nextStatus(intent, 'authorized_and_captured');
  const review = reviewFor(intent, charge, now);
  const chargeChanges: Partial<ChargeRow> = {
    ...(review === undefined ? {} : { review_id: review.id }),
    status: 'succeeded',
    updated_at: now,
    provider_reference: paid.providerReference,
    amount_authorized: charge.amount,
    amount_captured: charge.amount,
    captured: true,
    available_on: new Date(now.getTime() + limits.settlementDelayMs),
    provider_sync_at: null,
    payment_method_details: { ...charge.payment_method_details, transaction_id: paid.providerReference },
    outcome: approvedOutcome(charge) as unknown as Record<string, unknown>,
  };
  const intentChanges: Partial<PaymentIntentRow> = {
    ...(review === undefined ? {} : { review_id: review.id }),
    status, next_action: null, amount_capturable: 0n, amount_received: charge.amount, updated_at: now,
  };
  const chargeAfter = { ...charge, ...chargeChanges };
  const intentAfter = { ...intent, ...intentChanges, version: intent.version + 1n };
  const scope = { merchantId: intent.merchant_id, livemode: intent.livemode };
  const rows = changeRows(
    trail,
    scope,
    { action: 'charge.capture', objectType: 'charge', objectId: charge.id, details: { amount: charge.amount.toString(), currency: charge.currency, provider: charge.provider } },
    [
      { type: 'charge.succeeded', charge: { after: chargeAfter } },
      { type: 'payment_intent.succeeded', paymentIntent: { before: intent, after: intentAfter } },
      ...reviewOpened(review),
    ],
    now,
  );
  return {
    intentAfter, chargeAfter, intentChanges, chargeChanges, error: undefined, saveMethodTo: undefined, ...rows, ...(review === undefined ? {} : { review }),
    ledger: { context: { ...scope, currency: intent.currency, paymentIntentId: intent.id, chargeId: charge.id }, transfers: authorizationTransfers(charge.id, charge.amount, true) },
  };
}

/** The issuer asks for a 3-D Secure challenge: the shopper's browser goes to the access control server. */
function planActionRequired(intent: PaymentIntentRow, charge: ChargeRow, action: ActionRequired, trail: Trail, now: Date): OutcomePlan {
  const status = nextStatus(intent, 'action_required');
  const chargeChanges: Partial<ChargeRow> = { updated_at: now, provider_reference: action.providerReference };
  const intentChanges: Partial<PaymentIntentRow> = {
    status,
    next_action: { type: 'redirect_to_url', redirect_to_url: { return_url: intent.return_url, url: action.redirectUrl } },
    updated_at: now,
  };
  const chargeAfter = { ...charge, ...chargeChanges };
  const intentAfter = { ...intent, ...intentChanges, version: intent.version + 1n };
  const rows = changeRows(
    trail,
    { merchantId: intent.merchant_id, livemode: intent.livemode },
    { action: 'payment_intent.requires_action', objectType: 'payment_intent', objectId: intent.id, details: { charge: charge.id, three_d_secure: 'challenge' } },
    [{ type: 'payment_intent.requires_action', paymentIntent: { before: intent, after: intentAfter } }],
    now,
  );
  return { intentAfter, chargeAfter, intentChanges, chargeChanges, error: undefined, ...rows, ledger: undefined, saveMethodTo: undefined };
}

/** What the charge keeps of 3-D Secure, in Stripe's shape (`payment_method_details.card.three_d_secure`). */
export function threeDSecureDetails(result: ThreeDSecureResult | undefined, transactionId: string | null): Record<string, unknown> | null {
  if (result === undefined) return null;
  return {
    authentication_flow: result.flow,
    electronic_commerce_indicator: result.eci,
    exemption_indicator: null,
    result: result.result,
    result_reason: null,
    transaction_id: transactionId ?? result.dsTransactionId,
    version: result.version,
    liability_shift: result.liabilityShift,
  };
}

function planDecline(intent: PaymentIntentRow, charge: ChargeRow, decline: Decline, trail: Trail, now: Date): OutcomePlan {
  const status = nextStatus(intent, 'attempt_failed');
  const chargeChanges: Partial<ChargeRow> = {
    status: 'failed',
    updated_at: now,
    provider_sync_at: null,
    provider_reference: decline.providerReference,
    failure_code: decline.code,
    failure_message: decline.message,
    decline_code: decline.declineCode,
    outcome: declinedOutcome(decline, charge) as unknown as Record<string, unknown>,
    payment_method_details: {
      ...charge.payment_method_details,
      ...(decline.cvcCheck === undefined ? {} : { cvc_check: decline.cvcCheck }),
      ...(decline.threeDSecure === undefined ? {} : { three_d_secure: threeDSecureDetails(decline.threeDSecure, null) }),
    },
  };
  const stored: StoredPaymentError = {
    type: errorCatalog[decline.code].type,
    code: decline.code,
    decline_code: decline.declineCode,
    message: decline.message,
    charge: charge.id,
    payment_method_id: charge.payment_method_id,
    advice_code: decline.adviceCode,
    ...(decline.param === null ? {} : { param: decline.param }),
  };
  const intentChanges: Partial<PaymentIntentRow> = {
    status,
    next_action: null,
    payment_method_id: null,
    last_payment_error: stored as unknown as Record<string, unknown>,
    updated_at: now,
  };
  const chargeAfter = { ...charge, ...chargeChanges };
  const intentAfter = { ...intent, ...intentChanges, version: intent.version + 1n };
  const rows = changeRows(
    trail,
    { merchantId: intent.merchant_id, livemode: intent.livemode },
    { action: 'charge.fail', objectType: 'charge', objectId: charge.id, details: { decline_code: decline.declineCode } },
    [
      { type: 'charge.failed', charge: { after: chargeAfter } },
      { type: 'payment_intent.payment_failed', paymentIntent: { before: intent, after: intentAfter } },
    ],
    now,
  );
  return {
    intentAfter, chargeAfter, intentChanges, chargeChanges, error: attemptError(chargeAfter), ...rows, ledger: undefined, saveMethodTo: undefined,
    releaseLimits: true,
  };
}

/** The keys an attempt is counted by: its card, BIN, customer, and what it was made with. */
export function velocityKeys(intent: Pick<PaymentIntentRow, 'customer_id'>, charge: ChargeRow): VelocityKeys {
  const details = charge.payment_method_details as { fingerprint?: unknown; bin?: unknown };
  const facts = charge.risk_facts;
  const keys: VelocityKeys = {};
  if (charge.provider === 'card' && typeof details.fingerprint === 'string') keys.card = details.fingerprint;
  if (typeof details.bin === 'string') keys.bin = details.bin;
  if (intent.customer_id !== null) keys.customer = intent.customer_id;
  if (facts?.email) keys.email = facts.email.toLowerCase();
  if (facts?.client_address) keys.client_address = facts.client_address;
  if (facts?.device) keys.device = facts.device;
  return keys;
}

function planOutcome(intent: PaymentIntentRow, charge: ChargeRow, resolution: AttemptResolution, trail: Trail, now: Date): OutcomePlan {
  const plan = planOutcomeOnly(intent, charge, resolution, trail, now);
  // Counted once the provider has answered: approvals and declines (blocks apart); a lost attempt or a challenge is not an outcome.
  const outcome = resolution.status === 'declined' ? (resolution.blocked ? 'blocked' : 'declined')
    : resolution.status === 'authorized' || resolution.status === 'captured' || resolution.status === 'wallet_paid' ? 'succeeded' : undefined;
  if (outcome !== undefined) {
    plan.velocity = velocityEntries(
      { merchantId: intent.merchant_id, livemode: intent.livemode, chargeId: charge.id, amount: charge.amount, currency: charge.currency, outcome, at: now },
      velocityKeys(intent, charge),
    );
  }
  return plan;
}

function planOutcomeOnly(intent: PaymentIntentRow, charge: ChargeRow, resolution: AttemptResolution, trail: Trail, now: Date): OutcomePlan {
  assert(charge.payment_intent_id === intent.id, 'the charge belongs to the PaymentIntent');
  if (resolution.status === 'declined' || resolution.status === 'lost') {
    return planDecline(intent, charge, resolution.status === 'lost' ? neverSentDecline : resolution, trail, now);
  }
  if (resolution.status === 'wallet_paid') return planWalletPayment(intent, charge, resolution, trail, now);
  if (resolution.status === 'requires_action') return planActionRequired(intent, charge, resolution, trail, now);
  return planApproval(intent, charge, resolution, trail, now);
}

/**
 * Writes a plan in one statement: the PaymentIntent (only if it is still the version the plan was computed from),
 * the charge (only if still pending), events, the audit record, the stored response, and last the ledger
 * transfers. If either row has moved on, `coffer_expect_rows` aborts the whole statement with a serialization
 * failure (40001) and nothing is written.
 */
/**
 * `payment_method.attached` for a payment method the outcome saves to its customer (`setup_future_usage`): written
 * by the outcome's statement only if the save happens (the method was not saved yet, the customer not deleted).
 */
function methodSavedEvent(plan: OutcomePlan, paymentMethod: PaymentMethodRow, trail: Trail, now: Date): Insertable<EventsTable> | undefined {
  const save = plan.saveMethodTo;
  if (save === undefined || paymentMethod.customer_id !== null) return undefined;
  const scope = { merchantId: plan.intentAfter.merchant_id, livemode: plan.intentAfter.livemode };
  const [row] = eventRowsOf(trail, scope, [{ type: 'payment_method.attached', paymentMethod: { before: paymentMethod, after: { ...paymentMethod, customer_id: save.customerId } } }], now);
  return row;
}

async function writeOutcome(
  executor: Kysely<Database> | Tx,
  plan: OutcomePlan,
  expectedVersion: bigint,
  response: { claim: IdempotencyClaim; outcome: Outcome } | undefined,
  savedEvent?: Insertable<EventsTable>,
): Promise<void> {
  let query = executor
    .with('intent_written', (db) =>
      db.updateTable('payment_intents').set(paymentIntentChanges(plan.intentChanges))
        .where('id', '=', plan.intentAfter.id).where('version', '=', expectedVersion).returning('id'))
    .with('charge_written', (db) =>
      db.updateTable('charges').set(chargeChanges(plan.chargeChanges))
        .where('id', '=', plan.chargeAfter.id).where('status', '=', 'pending').returning('id'))
    .with('audit_written', (db) => db.insertInto('audit_log').values(plan.audit).returning('seq'))
    .with('events_written', (db) => db.insertInto('events').values(plan.eventRows).returning('id'));
  assert(plan.eventRows.length > 0, 'an attempt outcome always has events');
  const review = plan.review;
  if (review !== undefined) {
    const { seq: _seq, ...values } = review;
    query = query.with('review_written', (db) => db.insertInto('reviews').values({ ...values, reasons: JSON.stringify(values.reasons) }).returning('id')) as unknown as typeof query;
  }
  const velocity = plan.velocity ?? [];
  if (velocity.length > 0) {
    query = query.with('velocity_written', (db) => db.insertInto('velocity_entries').values(velocity).returning('charge_id')) as unknown as typeof query;
  }
  const save = plan.saveMethodTo;
  if (save !== undefined) {
    query = query.with('method_saved', (db) => db.updateTable('payment_methods').set({ customer_id: save.customerId })
      .where('id', '=', save.paymentMethodId).where('customer_id', 'is', null)
      .where(({ exists, not, selectFrom }) => not(exists(selectFrom('customers').select('id').where('id', '=', save.customerId).where('deleted_at', 'is not', null))))
      .returning('id')) as unknown as typeof query;
    if (savedEvent !== undefined) {
      const e = savedEvent;
      query = query.with('method_event', (db) => db.insertInto('events')
        .columns(['id', 'merchant_id', 'livemode', 'created_at', 'type', 'object_id', 'api_version', 'request_id', 'idempotency_key', 'payload', 'other_shape', 'other_payload'])
        .expression(sql`SELECT ${e.id}::text, ${e.merchant_id}::text, ${e.livemode}::boolean, ${e.created_at}::timestamptz, ${e.type}::text, ${e.object_id}::text,
          ${e.api_version}::text, ${e.request_id ?? null}::text, ${e.idempotency_key ?? null}::text, ${e.payload}::json, ${e.other_shape ?? null}::text,
          ${e.other_payload ?? null}::json WHERE EXISTS (SELECT 1 FROM method_saved)`)
        .returning('id')) as unknown as typeof query;
    }
  }
  if (response !== undefined) {
    const { claim, outcome } = response;
    query = query.with('response_written', (db) =>
      db.updateTable('idempotency_keys')
        .set({ response_status: outcome.statusCode, response_body: outcome.body, finished_at: sql`now()`, locked_at: null })
        // Only while this request holds the key: a retry that took it over answers for it.
        .where(keyHeldBy(claim)).returning('id')) as unknown as typeof query;
  }
  const ledger = plan.ledger;
  await query
    .selectNoFrom([
      sql<boolean>`coffer_expect_rows((SELECT count(*) FROM intent_written) + (SELECT count(*) FROM charge_written), 2)`.as('written'),
      plan.releaseLimits === true ? sql<number>`coffer_limit_release(${plan.chargeAfter.id})`.as('limits_released') : sql<null>`NULL`.as('limits_released'),
      ledger === undefined
        ? sql<null>`NULL`.as('ledger')
        : sql<null>`ledger_apply(${ledger.context.merchantId}, ${ledger.context.livemode}, ${ledger.context.currency},
            ${ledgerCommandsJson(ledger.transfers)}::jsonb, ${ledger.context.paymentIntentId}, ${ledger.context.chargeId})`.as('ledger'),
    ])
    .execute();
  if (response !== undefined) response.claim.completed = true;
}

function isConcurrentChange(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '40001';
}

/** The card error a failed attempt is reported with, now or when a retry replays it. */
export function attemptError(charge: ChargeRow): CofferError {
  assert(charge.status === 'failed' && charge.failure_code !== null, 'only a failed attempt has an error');
  const outcome = charge.outcome as ChargeOutcome | null;
  const stored = declineCodes.find((code) => code === charge.failure_code) ?? 'card_declined';
  return new CofferError(stored, charge.failure_message ?? 'Your card was declined.', {
    declineCode: charge.decline_code ?? undefined,
    chargeId: charge.id,
    paymentMethodId: charge.payment_method_id,
    adviceCode: outcome?.advice_code ?? undefined,
    param: declineParams[charge.failure_code],
  });
}

const declineParams: Record<string, string> = { expired_card: 'exp_month', incorrect_cvc: 'cvc', incorrect_number: 'number' };
const declineCodes = [
  'card_declined', 'authentication_required', 'expired_card', 'incorrect_cvc', 'incorrect_number', 'processing_error', 'payment_method_provider_decline',
  'payment_intent_authentication_failure',
  'payment_intent_payment_attempt_expired',
] as const;

/** What the caller already holds of the attempt (after phase 1), so recording needs no read in the common case. */
export interface KnownAttempt {
  intent: PaymentIntentRow;
  charge: ChargeRow;
  paymentMethod: PaymentMethodRow;
}

/**
 * Records how an attempt ended, once: the charge, the PaymentIntent's new status, the ledger transfers, events
 * and audit, and (for a request) the response, all in one statement. The common case writes from the rows
 * phase 1 left, without reading; if anything changed meanwhile (the recovery job, a concurrent retry), it reads
 * again under lock and, if the attempt was already recorded, changes nothing and answers the current state.
 */
export async function recordAttemptOutcome(
  services: Services,
  refs: AttemptRefs,
  resolution: AttemptResolution,
  trail: Trail,
  request: { respond: Respond; claim: IdempotencyClaim | undefined } | undefined,
  known?: KnownAttempt,
): Promise<Outcome | undefined> {
  const now = new Date(services.clock.nowMs());
  if (known !== undefined && request?.respond.rendersAfterChange !== true) {
    const plan = planOutcome(known.intent, known.charge, resolution, trail, now);
    const outcome = request?.respond.render(
      { paymentIntent: plan.intentAfter, ...(plan.error === undefined ? {} : { error: plan.error }) },
      { latestCharge: plan.chargeAfter, paymentMethod: known.paymentMethod, errorPaymentMethod: plan.error === undefined ? undefined : known.paymentMethod },
    );
    try {
      await writeOutcome(services.db, plan, known.intent.version, request?.claim !== undefined && outcome !== undefined ? { claim: request.claim, outcome } : undefined,
        methodSavedEvent(plan, known.paymentMethod, trail, now));
      return outcome;
    } catch (error) {
      if (!isConcurrentChange(error)) throw error;
    }
  }
  return inTransaction(services.db, (tx) => recordAttemptOutcomeIn(tx, refs, resolution, trail, request, now));
}

/**
 * The locked path of `recordAttemptOutcome`, in the caller's transaction (a provider notification records its
 * receipt and its effect together). An attempt already recorded is left as it is.
 */
export async function recordAttemptOutcomeIn(
  tx: Tx,
  refs: AttemptRefs,
  resolution: AttemptResolution,
  trail: Trail,
  request: { respond: Respond; claim: IdempotencyClaim | undefined } | undefined,
  now: Date,
): Promise<Outcome | undefined> {
  const intent = await lockPaymentIntent(tx, refs.scope, refs.paymentIntentId);
  const charge = await lockCharge(tx, refs.chargeId);
  if (charge.status !== 'pending') return request?.respond(tx, { paymentIntent: intent });
  // Already waiting for the shopper (a retry, or the recovery job asked meanwhile): nothing new to record.
  if (resolution.status === 'requires_action' && intent.status === 'requires_action') return request?.respond(tx, { paymentIntent: intent });
  const plan = planOutcome(intent, charge, resolution, trail, now);
  const paymentMethod = await tx.selectFrom('payment_methods').selectAll().where('id', '=', charge.payment_method_id).executeTakeFirstOrThrow();
  if (request?.respond.rendersAfterChange === true) {
    // The response shows what the outcome writes (the charge's balance transaction): written first, rendered after.
    await writeOutcome(tx, plan, intent.version, undefined, methodSavedEvent(plan, paymentMethod, trail, now));
    return request.respond(tx, { paymentIntent: plan.intentAfter, ...(plan.error === undefined ? {} : { error: plan.error }) });
  }
  const outcome = request?.respond.render(
    { paymentIntent: plan.intentAfter, ...(plan.error === undefined ? {} : { error: plan.error }) },
    { latestCharge: plan.chargeAfter, paymentMethod, errorPaymentMethod: plan.error === undefined ? undefined : paymentMethod },
  );
  await writeOutcome(tx, plan, intent.version, request?.claim !== undefined && outcome !== undefined ? { claim: request.claim, outcome } : undefined,
    methodSavedEvent(plan, paymentMethod, trail, now));
  return outcome;
}

/** A challenge the cardholder never finished: authentication failed, nothing was authorized. */
export const abandonedChallenge: Decline = {
  status: 'declined',
  providerReference: null,
  code: 'payment_intent_authentication_failure',
  declineCode: 'authentication_abandoned',
  message: 'The cardholder did not complete 3-D Secure authentication in time. Nothing was charged.',
  param: null,
  adviceCode: 'try_again_later',
  networkStatus: 'not_sent_to_network',
  blocked: false,
};

/** What a request whose answer from the provider is not known yet was doing, for its error's message. */
export type UnknownOutcomeOf = 'payment' | 'capture' | 'increment' | 'cancellation' | 'refund' | 'verification' | 'dispute';

const unknownOutcomeWording: Record<UnknownOutcomeOf, { what: string; where: string; once: string }> = {
  payment: { what: 'this payment', where: 'retrieve the PaymentIntent later', once: 'it will never be charged twice' },
  capture: { what: 'this capture', where: 'retrieve the PaymentIntent later', once: 'it will never be captured twice' },
  increment: { what: 'this incremental authorization', where: 'retrieve the PaymentIntent later', once: 'the hold is raised once' },
  cancellation: { what: 'this cancellation', where: 'retrieve the PaymentIntent later', once: 'the authorization is released once' },
  refund: { what: 'this refund', where: 'retrieve the refund later (it is pending until the answer is known)', once: 'it will never be refunded twice' },
  verification: { what: 'this card verification', where: 'retrieve the SetupIntent later', once: 'the card is verified once' },
  dispute: { what: 'this request', where: 'retrieve the dispute later', once: 'the acquirer receives it once' },
};

export function outcomeUnknownError(of: UnknownOutcomeOf = 'payment'): CofferError {
  const { what, where, once } = unknownOutcomeWording[of];
  const provider = of === 'payment' || of === 'refund' ? 'payment provider' : 'card acquirer';
  return new CofferError(
    'service_unavailable',
    `The ${provider} did not answer in time, so the outcome of ${what} is not known yet. Retry the request ` +
      `with the same Idempotency-Key, or ${where}: ${once}.`,
    { retryAfterSeconds: 1 },
  );
}
