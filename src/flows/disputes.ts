import { NotificationRejected, type ProviderNotification } from '../connectors/connector.ts';
import { disputeFeeMinor, findCurrency } from '../domain/currency.ts';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { chargeFunds, disputeReinstatementTransfers, disputeTransfers, type TransferCommand } from '../domain/ledger.ts';
import { limits } from '../limits.ts';
import { defaultApiVersion, parseApiVersion } from '../objects/api-version.ts';
import { balanceTransactionObject, type BalanceTransactionRow } from '../objects/balance-transaction.ts';
import { disputeObject, isInquiry } from '../objects/dispute.ts';
import type { ApiShape } from '../objects/api-version.ts';
import { applyTransfers } from '../store/ledger.ts';
import { balanceTransactionsOfSources } from './balance-transactions.ts';
import { newId } from '../platform/random.ts';
import { sql, type Kysely } from 'kysely';
import type { ChargeRow, Database, DisputeRow } from '../store/database.ts';
import type { RequestContext, Respond, Services, Tx } from './context.ts';
import { checkMetadataSize, mergeMetadata } from './payment-intent-params.ts';
import { lockCharge, recordChange, type Scope } from './payment-intent-records.ts';
import { outcomeUnknownError } from './record-attempt-outcome.ts';
import { inTransaction } from './transaction.ts';
import { requestTrail, systemTrail } from './trail.ts';

type DisputeNotification = Extract<ProviderNotification, { type: 'dispute.created' | 'dispute.updated' | 'dispute.closed' }>;

async function trailFor(tx: Tx, merchantId: string) {
  const merchant = await tx.selectFrom('merchants').select('default_api_version').where('id', '=', merchantId).executeTakeFirstOrThrow();
  return systemTrail('card-acquirer-notification', parseApiVersion(merchant.default_api_version) ?? defaultApiVersion);
}

/**
 * The acquirer opened a dispute on a captured charge: record it (once: the provider's id is unique) and mark the
 * charge disputed. A chargeback withdraws the amount and the dispute fee from the merchant at once; an inquiry
 * withdraws nothing.
 */
export async function recordDisputeOpened(services: Services, notification: DisputeNotification): Promise<void> {
  if (notification.status !== 'needs_response' && notification.status !== 'warning_needs_response') {
    throw new NotificationRejected(`a dispute opens as needs_response or warning_needs_response, not ${notification.status}`);
  }
  const inquiry = notification.status === 'warning_needs_response';
  const now = new Date(services.clock.nowMs());
  await inTransaction(services.db, async (tx) => {
    const found = await tx.selectFrom('charges').select('id').where('id', '=', notification.chargeReference).executeTakeFirst();
    if (found === undefined) throw new NotificationRejected(`no charge ${notification.chargeReference}`);
    const charge = await lockCharge(tx, found.id);
    if (charge.provider_reference !== notification.paymentReference || charge.currency !== notification.currency
        || notification.amountMinor > charge.amount_captured) {
      throw new NotificationRejected(`dispute notification does not match charge ${charge.id}`);
    }
    const known = await tx.selectFrom('disputes').select('id').where('provider_reference', '=', notification.providerReference).executeTakeFirst();
    if (known !== undefined) return;
    // Card networks allow several disputes of one payment (per item, refiled, a chargeback after a closed inquiry),
    // but never for more than was captured in all: a notice beyond that (a faulty or replaying acquirer, under
    // another reference) would withdraw money a second time. Checked under the charge's lock, which every dispute
    // and refund change takes first, so two notices at once cannot both pass. (Refunds are not counted: an issuer
    // can file for the whole amount before a refund's credit reaches it; see balance-transactions.test.ts.)
    const earlier = await tx.selectFrom('disputes').select((eb) => eb.fn.coalesce(eb.fn.sum<string>('amount'), sql<string>`0`).as('total')).where('charge_id', '=', charge.id).executeTakeFirstOrThrow();
    if (BigInt(earlier.total) + notification.amountMinor > charge.amount_captured) {
      throw new NotificationRejected(`dispute of ${notification.amountMinor} on charge ${charge.id}, whose disputes would then exceed the ${charge.amount_captured} captured`);
    }
    const from = inquiry ? null : chargeFunds(charge);
    const dispute = await tx.insertInto('disputes').values({
      id: newId('dp'), merchant_id: charge.merchant_id, livemode: charge.livemode, created_at: now, updated_at: now,
      charge_id: charge.id, payment_intent_id: charge.payment_intent_id, amount: notification.amountMinor, fee: feeFor(charge.currency),
      currency: charge.currency, status: notification.status, reason: notification.reason, network_reason_code: notification.networkReasonCode,
      evidence: JSON.stringify({}), evidence_due_by: new Date(now.getTime() + limits.disputeEvidenceWindowMs),
      metadata: JSON.stringify({}), provider_reference: notification.providerReference, debited_account: from,
      ...chargeCardOf(charge),
    }).returningAll().executeTakeFirstOrThrow();
    const chargeAfter = await tx.updateTable('charges').set({ disputed: true, updated_at: now }).where('id', '=', charge.id).returningAll().executeTakeFirstOrThrow();
    const scope = { merchantId: charge.merchant_id, livemode: charge.livemode };
    // A label for the next training run: a fraud dispute says the payment was fraud, whatever was decided.
    if (notification.reason === 'fraudulent') {
      await tx.insertInto('risk_labels').values({ charge_id: charge.id, source: 'dispute', merchant_id: charge.merchant_id, livemode: charge.livemode, fraud: true, labeled_at: now })
        .onConflict((oc) => oc.doNothing()).execute();
    }
    const trail = await trailFor(tx, charge.merchant_id);
    const transactions = await postDisputeTransfers(tx, dispute, charge, from === null ? [] : disputeTransfers(dispute.id, dispute.amount, dispute.fee, from), true);
    await recordChange(tx, trail, scope,
      { action: inquiry ? 'dispute.inquiry_open' : 'dispute.open', objectType: 'dispute', objectId: dispute.id, details: { charge: charge.id, amount: dispute.amount.toString() } },
      [{ type: 'charge.dispute.created', dispute: { after: dispute, transactions } },
        ...(from === null ? [] : [{ type: 'charge.dispute.funds_withdrawn' as const, dispute: { after: dispute, transactions } }]),
        { type: 'charge.updated', charge: { before: charge, after: chargeAfter } }], now);
  });
}

/** The dispute fee in the charge's currency (decision 0028). */
function feeFor(code: string): bigint {
  const currency = findCurrency(code);
  if (currency === undefined) throw new NotificationRejected(`dispute in an unknown currency ${code}`);
  return disputeFeeMinor(currency);
}

/** The dispute a notification names, locked after its charge (the order every dispute and refund change takes). */
async function lockNotifiedDispute(tx: Tx, notification: DisputeNotification): Promise<{ charge: ChargeRow; dispute: DisputeRow }> {
  const found = await tx.selectFrom('disputes').select(['id', 'charge_id']).where('provider_reference', '=', notification.providerReference).executeTakeFirst();
  if (found === undefined) throw new NotificationRejected(`no dispute ${notification.providerReference}`);
  const charge = await lockCharge(tx, found.charge_id);
  const dispute = await tx.selectFrom('disputes').selectAll().where('id', '=', found.id).forUpdate().executeTakeFirstOrThrow();
  return { charge, dispute };
}

/**
 * The issuer escalated an inquiry to a chargeback: the same dispute now needs a response, with a new deadline, and
 * the amount and the fee are withdrawn. Evidence given for the inquiry is kept; a chargeback is answered anew.
 */
export async function recordDisputeEscalated(services: Services, notification: DisputeNotification): Promise<void> {
  if (notification.status !== 'needs_response') {
    throw new NotificationRejected(`a dispute changed by the issuer is escalated to needs_response, not ${notification.status}`);
  }
  const now = new Date(services.clock.nowMs());
  await inTransaction(services.db, async (tx) => {
    const { charge, dispute } = await lockNotifiedDispute(tx, notification);
    if (!isInquiry(dispute)) return;
    if (dispute.status === 'warning_closed') throw new NotificationRejected(`dispute ${dispute.id} was closed as an inquiry`);
    if (notification.amountMinor !== dispute.amount || notification.currency !== dispute.currency) {
      throw new NotificationRejected(`escalation of dispute ${dispute.id} does not match its amount`);
    }
    const from = chargeFunds(charge);
    const after = await tx.updateTable('disputes').set({
      status: 'needs_response', debited_account: from, evidence_due_by: new Date(now.getTime() + limits.disputeEvidenceWindowMs), updated_at: now,
    }).where('id', '=', dispute.id).returningAll().executeTakeFirstOrThrow();
    const scope = { merchantId: dispute.merchant_id, livemode: dispute.livemode };
    const trail = await trailFor(tx, dispute.merchant_id);
    const transactions = await postDisputeTransfers(tx, dispute, charge, disputeTransfers(dispute.id, dispute.amount, dispute.fee, from));
    await recordChange(tx, trail, scope, { action: 'dispute.escalate', objectType: 'dispute', objectId: dispute.id },
      [{ type: 'charge.dispute.updated', dispute: { before: dispute, after, transactions } }, { type: 'charge.dispute.funds_withdrawn', dispute: { after, transactions } }], now);
  });
}

/**
 * The dispute was decided. A chargeback won gives the merchant the amount and the fee back; one lost keeps them
 * withdrawn. An inquiry closed (`warning_closed`) had withdrawn nothing, so nothing moves.
 */
export async function recordDisputeClosed(services: Services, notification: DisputeNotification): Promise<void> {
  const outcome = notification.status;
  if (outcome !== 'won' && outcome !== 'lost' && outcome !== 'warning_closed') {
    throw new NotificationRejected(`a closed dispute is won, lost or warning_closed, not ${outcome}`);
  }
  const now = new Date(services.clock.nowMs());
  await inTransaction(services.db, async (tx) => {
    const { charge, dispute } = await lockNotifiedDispute(tx, notification);
    if (dispute.status === 'won' || dispute.status === 'lost' || dispute.status === 'warning_closed') return;
    // An inquiry ends as warning_closed, a chargeback as won or lost; anything else is out of order (retried later).
    if (isInquiry(dispute) !== (outcome === 'warning_closed')) {
      throw new NotificationRejected(`dispute ${dispute.id} is ${dispute.status} and cannot close as ${outcome}`);
    }
    const after = await tx.updateTable('disputes').set({ status: outcome, updated_at: now }).where('id', '=', dispute.id).returningAll().executeTakeFirstOrThrow();
    const scope = { merchantId: dispute.merchant_id, livemode: dispute.livemode };
    if (outcome === 'won' && dispute.debited_account === null) throw new Error(`dispute ${dispute.id} was won but nothing had been withdrawn`);
    // A won chargeback pays back to where the charge's money is now: a dispute withdrawn before settlement and won
    // after it pays into the available funds, since the settlement has already moved what the charge left pending.
    const trail = await trailFor(tx, dispute.merchant_id);
    const transactions = await postDisputeTransfers(tx, dispute, charge,
      outcome === 'won' ? disputeReinstatementTransfers(dispute.id, dispute.amount, dispute.fee, chargeFunds(charge)) : []);
    await recordChange(tx, trail, scope, { action: `dispute.${outcome}`, objectType: 'dispute', objectId: dispute.id },
      [{ type: 'charge.dispute.closed', dispute: { before: dispute, after, transactions } },
        ...(outcome === 'won' ? [{ type: 'charge.dispute.funds_reinstated' as const, dispute: { after, transactions } }] : [])], now);
  });
}

/**
 * Posts a dispute's transfers (if any) and returns its balance transactions before and after them, which its
 * events carry. Unlike a payment, a dispute posts to the ledger before writing its events and audit record, so
 * that they can show the transactions the ledger made: the merchant's accounts stay locked for the read of the
 * transactions and the statement that writes the events and the audit record, which costs nothing that matters
 * for a change as rare as a dispute. The dispute's rows are locked first, in the order every flow takes (charge,
 * then dispute, then the ledger); nothing after the ledger takes a row lock another flow holds while waiting for it.
 */
async function postDisputeTransfers(tx: Tx, dispute: DisputeRow, charge: ChargeRow, transfers: TransferCommand[], isNew = false): Promise<DisputeTransactions> {
  const before = isNew ? [] : await disputeTransactions(tx, dispute);
  if (transfers.length === 0) return { before, after: before };
  await applyTransfers(tx, { merchantId: dispute.merchant_id, livemode: dispute.livemode, currency: charge.currency, paymentIntentId: charge.payment_intent_id, chargeId: charge.id }, transfers);
  return { before, after: await disputeTransactions(tx, dispute) };
}

interface DisputeTransactions {
  before: BalanceTransactionRow[];
  after: BalanceTransactionRow[];
}

async function disputeTransactions(tx: Tx, dispute: DisputeRow): Promise<BalanceTransactionRow[]> {
  return (await balanceTransactionsOfSources(tx, { merchantId: dispute.merchant_id, livemode: dispute.livemode }, [dispute.id])).get(dispute.id) ?? [];
}

/** Disputes as their endpoints render them, each with its balance transactions (read in one query). */
export async function disputeObjects(db: Kysely<Database>, scope: Scope, shape: ApiShape, rows: DisputeRow[], nowMs: number): Promise<Array<Record<string, unknown>>> {
  const transactions = await balanceTransactionsOfSources(db, scope, rows.map((row) => row.id));
  return rows.map((row) => disputeStateObject({ dispute: row, transactions: transactions.get(row.id) ?? [] }, shape, nowMs));
}

export function disputeStateObject(state: DisputeState, shape: ApiShape, nowMs: number): Record<string, unknown> {
  return disputeObject(state.dispute, nowMs, state.transactions.map((transaction) => balanceTransactionObject(transaction, shape)));
}

export async function findDispute(reader: Tx | Services['db'], ctx: RequestContext, id: string, lock = false): Promise<DisputeRow> {
  let query = reader.selectFrom('disputes').selectAll().where('id', '=', id)
    .where('merchant_id', '=', ctx.actor.merchantId).where('livemode', '=', ctx.actor.livemode);
  if (lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (row === undefined) throw resourceMissing('dispute', id, 'dispute');
  return row;
}

/**
 * The acquirer answered for an inquiry while the dispute was escalated meanwhile (or the reverse): its answer
 * does not apply to what the dispute is now, so nothing is written; the merchant retrieves it and acts again.
 */
function changedMeanwhile(dispute: DisputeRow): CofferError {
  return new CofferError('dispute_unexpected_state', `Dispute ${dispute.id} changed while this request was at the acquirer (it is now ${dispute.status}); retrieve it and try again.`);
}

function requireOpen(dispute: DisputeRow, action: string): void {
  if (dispute.status !== 'needs_response' && dispute.status !== 'warning_needs_response') {
    throw new CofferError('dispute_unexpected_state', `This dispute cannot be ${action} because it has a status of ${dispute.status}.`);
  }
}

export interface UpdateDisputeParams {
  evidence?: Record<string, string>;
  submit?: boolean;
  metadata?: Record<string, string> | '';
}

/**
 * Saves evidence (merged with what was given before) and metadata. Evidence goes to the acquirer first, outside
 * any transaction (with `submit`, the dispute goes under review), and is saved only once the acquirer took it: a
 * refusal or no answer changes nothing. The save and the review are one change, with one event.
 */
/** A dispute as a change left it, with its balance transactions read in the same transaction. */
export interface DisputeState {
  dispute: DisputeRow;
  transactions: BalanceTransactionRow[];
}

export async function updateDispute(services: Services, ctx: RequestContext, id: string, params: UpdateDisputeParams, respond?: Respond<DisputeState>): Promise<DisputeState> {
  const now = new Date(services.clock.nowMs());
  const sendsEvidence = params.evidence !== undefined || params.submit === true;
  const read = await findDispute(services.db, ctx, id);
  if (sendsEvidence) requireOpen(read, params.submit === true ? 'submitted' : 'given evidence');
  checkMetadataSize(mergeMetadata(read.metadata, params.metadata), limits.metadataKeysMax);
  let reviewed: 'under_review' | 'warning_under_review' | undefined;
  if (sendsEvidence) {
    ctx.idempotency?.reference(); // the acquirer is told: a later refusal must not free the key for a second submission
    const result = await services.connectors.card(ctx.actor.livemode)
      .submitDisputeEvidence(read.provider_reference, { ...read.evidence, ...params.evidence }, params.submit === true);
    if (result.status === 'unknown') {
      // The acquirer may have taken it (and a retry then finds the dispute under review): the evidence is kept, so
      // that what was sent is never lost; the review, if any, arrives with the acquirer's notification.
      await saveEvidence(services, ctx, id, params, undefined, now);
      throw outcomeUnknownError('dispute');
    }
    if (result.status === 'failed') throw new CofferError('dispute_unexpected_state', `The acquirer refused the evidence: ${result.message}`);
    if (result.status === 'under_review' || result.status === 'warning_under_review') reviewed = result.status;
  }
  return saveEvidence(services, ctx, id, params, reviewed, now, respond);
}

/** Saves the evidence and metadata of an update, and the review the acquirer started, as one change. */
async function saveEvidence(
  services: Services,
  ctx: RequestContext,
  id: string,
  params: UpdateDisputeParams,
  reviewed: 'under_review' | 'warning_under_review' | undefined,
  now: Date,
  respond?: Respond<DisputeState>,
): Promise<DisputeState> {
  return inTransaction(services.db, async (tx) => {
    const dispute = await findDispute(tx, ctx, id, true);
    const open = dispute.status === 'needs_response' || dispute.status === 'warning_needs_response';
    // Decided meanwhile (the acquirer's notice came first): the evidence it took is kept, the decision stands.
    const review = open ? reviewed : undefined;
    if (review !== undefined && isInquiry(dispute) !== isInquiry({ status: review })) throw changedMeanwhile(dispute);
    const metadata = mergeMetadata(dispute.metadata, params.metadata);
    checkMetadataSize(metadata, limits.metadataKeysMax);
    const after = await tx.updateTable('disputes').set({
      evidence: JSON.stringify({ ...dispute.evidence, ...params.evidence }), metadata: JSON.stringify(metadata), updated_at: now,
      ...(review === undefined ? {} : { status: review, submission_count: dispute.submission_count + 1 }),
    }).where('id', '=', dispute.id).returningAll().executeTakeFirstOrThrow();
    const current = await disputeTransactions(tx, dispute);
    await recordChange(tx, requestTrail(ctx), ctx.actor,
      { action: review === undefined ? 'dispute.update' : 'dispute.submit', objectType: 'dispute', objectId: dispute.id, details: { fields: Object.keys(params) } },
      [{ type: 'charge.dispute.updated', dispute: { before: dispute, after, transactions: { before: current, after: current } } }], now);
    const state = { dispute: after, transactions: current };
    await respond?.(tx, state);
    return state;
  });
}

/**
 * Accepts the dispute (the merchant does not contest it): a chargeback is lost and the withdrawn funds stay
 * withdrawn; an inquiry is closed (`warning_closed`) with nothing withdrawn.
 */
export async function closeDispute(services: Services, ctx: RequestContext, id: string, respond?: Respond<DisputeState>): Promise<DisputeState> {
  const now = new Date(services.clock.nowMs());
  const dispute = await findDispute(services.db, ctx, id);
  requireOpen(dispute, 'closed');
  ctx.idempotency?.reference(); // the acquirer is told (see updateDispute)
  const result = await services.connectors.card(ctx.actor.livemode).acceptDispute(dispute.provider_reference);
  if (result.status === 'unknown') throw outcomeUnknownError('dispute');
  if (result.status === 'failed') throw new CofferError('dispute_unexpected_state', `The acquirer refused to close the dispute: ${result.message}`);
  const closed = result.status;
  if (closed !== 'lost' && closed !== 'warning_closed') {
    throw new CofferError('dispute_unexpected_state', `The acquirer answered the close with status ${closed}; retrieve the dispute later.`);
  }
  return inTransaction(services.db, async (tx) => {
    const current = await findDispute(tx, ctx, id, true);
    const transactions = await disputeTransactions(tx, current);
    if (current.status !== 'needs_response' && current.status !== 'warning_needs_response') {
      await respond?.(tx, { dispute: current, transactions });
      return { dispute: current, transactions };
    }
    if (isInquiry(current) !== isInquiry({ status: closed })) throw changedMeanwhile(current);
    const after = await tx.updateTable('disputes').set({ status: closed, updated_at: now }).where('id', '=', current.id).returningAll().executeTakeFirstOrThrow();
    await recordChange(tx, requestTrail(ctx), ctx.actor, { action: 'dispute.accept', objectType: 'dispute', objectId: current.id },
      [{ type: 'charge.dispute.closed', dispute: { before: current, after, transactions: { before: transactions, after: transactions } } }], now);
    await respond?.(tx, { dispute: after, transactions });
    return { dispute: after, transactions };
  });
}

/** The disputed charge's card brand and network, as the dispute shows them. */
function chargeCardOf(charge: ChargeRow): { card_brand: string | null; card_network: string | null } {
  const card = charge.payment_method_details as { brand?: unknown; network?: unknown };
  return { card_brand: typeof card.brand === 'string' ? card.brand : null, card_network: typeof card.network === 'string' ? card.network : null };
}
