import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { WalletProvider } from '../connectors/connector.ts';
import { limits } from '../limits.ts';
import { assertNever } from '../platform/assert.ts';
import { recordAudit } from '../store/audit.ts';
import type { ChargeRow, Database, WalletLatePaymentRow, WalletLatePaymentStatus } from '../store/database.ts';
import type { Services, Tx } from './context.ts';
import { inTransaction } from './transaction.ts';
import { currencyOf, nextSyncDelay } from './wallet-payments.ts';

/*
 * A wallet payment made after Coffer recorded its attempt as failed goes back to the shopper, in full, at the
 * provider. It happens when a trade is closed before the shopper opened it: Alipay has no such trade yet, so
 * there is nothing to close, and its QR code or page stays payable until the trade's time_expire. The money never
 * reaches the merchant's ledger, so nothing there changes; the row in `wallet_late_payments`, the audit records
 * and `/metrics` say what happened to it.
 *
 * A payment is found late in two ways: the provider's notification says a failed attempt was paid, or the watch
 * kept on a trade whose close found nothing asks the provider once the trade can no longer be opened (for when
 * the notification never comes). The refund itself is sent by the job, outside any transaction, with one
 * out_request_no per payment, so that a retry can never refund twice.
 */

const auditActor = 'return-late-wallet-payments';

/** When a wallet trade can no longer be opened: its window at the provider, and the grace for clocks apart. */
export function walletTradeOpenUntil(charge: Pick<ChargeRow, 'created_at'>): Date {
  return new Date(charge.created_at.getTime() + limits.walletPaymentWindowMs + limits.walletCloseGraceMs);
}

/** Coffer's key for the refund of a late payment at the provider (Alipay out_request_no, WeChat out_refund_no). */
export function latePaymentRefundKey(chargeId: string): string {
  return `${chargeId}_late`;
}

/**
 * In the caller's transaction (the one that records the attempt as failed): a close found no trade at the
 * provider while the trade could still be opened, so the provider is asked again once it cannot.
 */
export async function watchUnopenedTrade(tx: Tx, charge: ChargeRow, now: Date): Promise<void> {
  const openUntil = walletTradeOpenUntil(charge);
  if (now.getTime() >= openUntil.getTime()) return;
  // Only an attempt that is now recorded as failed: if the shopper's payment was recorded first, it is the merchant's.
  await tx.insertInto('wallet_late_payments')
    .columns(['charge_id', 'merchant_id', 'livemode', 'provider', 'status', 'amount', 'currency', 'next_try_at', 'created_at', 'updated_at'])
    .expression((eb) => eb.selectFrom('charges')
      .select(['id', 'merchant_id', 'livemode', 'provider', eb.val('watching').as('status'), 'amount', 'currency',
        eb.val(openUntil).as('next_try_at'), eb.val(now).as('created_at'), eb.val(now).as('updated_at')])
      .where('id', '=', charge.id).where('status', '=', 'failed'))
    .onConflict((oc) => oc.column('charge_id').doNothing()).execute();
}

/**
 * In the caller's transaction: the provider says this attempt was paid. If Coffer recorded the attempt as failed
 * (read under lock), the payment is late: it is recorded for refund, once (a second notice of the same payment
 * changes nothing), and audited as a security event. Returns whether this call recorded it; the refund is due at
 * `dueAt` (a worker that will refund it itself at once passes its lease).
 */
export async function recordLatePayment(tx: Tx, services: Services, chargeId: string, providerReference: string, now: Date, dueAt = now): Promise<boolean> {
  const charge = await tx.selectFrom('charges').selectAll().where('id', '=', chargeId).forUpdate().executeTakeFirstOrThrow();
  if (charge.status !== 'failed') return false;
  const provider = walletProviderOf(charge);
  const recorded = await tx.insertInto('wallet_late_payments').values({
    charge_id: charge.id, merchant_id: charge.merchant_id, livemode: charge.livemode, provider, status: 'refunding',
    amount: charge.amount, currency: charge.currency, provider_reference: providerReference, refund_reference: null,
    failure_reason: null, next_try_at: dueAt, created_at: now, updated_at: now,
  }).onConflict((oc) => oc.column('charge_id').doUpdateSet({ status: 'refunding', provider_reference: providerReference, tries: 0, next_try_at: dueAt, updated_at: now })
    .where('wallet_late_payments.status', 'in', ['watching', 'unpaid']))
    .returning('charge_id').executeTakeFirst();
  if (recorded === undefined) return false;
  services.logger.warn({ charge: charge.id, provider }, 'a payment recorded as failed was paid at the provider; it is refunded to the shopper');
  await recordAudit(tx, {
    merchantId: charge.merchant_id, livemode: charge.livemode, actorType: 'system', actorId: `${provider}-late-payment`,
    action: 'charge.paid_after_failure', objectType: 'charge', objectId: charge.id, outcome: 'failure', requestId: null, origin: null,
    details: { provider, provider_reference: providerReference, amount: charge.amount.toString(), currency: charge.currency, security_event: true },
    occurredAt: now,
  });
  return true;
}

/**
 * The job: asks the provider about watched trades whose time is up, and refunds late payments. Rows are leased by
 * moving `next_try_at` ahead, so parallel workers skip them; one row's failure does not stop the others.
 */
export async function returnLateWalletPayments(services: Services): Promise<number> {
  const now = new Date(services.clock.nowMs());
  const claimed = await services.db.updateTable('wallet_late_payments')
    .set({ next_try_at: new Date(now.getTime() + limits.walletSyncLeaseMs) })
    .where('charge_id', 'in', (eb) => eb.selectFrom('wallet_late_payments').select('charge_id')
      .where('status', 'in', ['watching', 'refunding']).where('next_try_at', '<=', now)
      .orderBy('next_try_at').limit(limits.jobBatchSize).forUpdate().skipLocked())
    .returningAll().execute();
  for (const row of claimed) {
    try {
      const current = row.status === 'watching' ? await checkWatchedTrade(services, row) : row;
      if (current.status === 'refunding') await refundLatePayment(services, current);
    } catch (error) {
      services.logger.error({ err: error, charge: row.charge_id }, 'late wallet payment: try failed; tried again after its lease');
    }
  }
  return claimed.length;
}

/**
 * The trade can no longer be opened: paid means a late payment, refunded by this worker at once if it is the one
 * that recorded it; closed or never opened means nothing was paid.
 */
async function checkWatchedTrade(services: Services, row: WalletLatePaymentRow): Promise<WalletLatePaymentRow> {
  const connector = services.connectors.wallet(row.provider, row.livemode);
  const trade = { reference: row.charge_id, amountMinor: row.amount, currency: currencyOf(row.currency) };
  const queried = await connector.queryTrade(trade);
  // Alipay answers a trade it does not know as waiting: closing it tells a trade never opened from one still open.
  const state = queried.status === 'pending' ? await connector.closeTrade(trade) : queried;
  const now = new Date(services.clock.nowMs());
  switch (state.status) {
    case 'paid': {
      const lease = new Date(now.getTime() + limits.walletSyncLeaseMs);
      const mine = await inTransaction(services.db, (tx) => recordLatePayment(tx, services, row.charge_id, state.providerReference, now, lease));
      // Recorded by a notification meanwhile: the worker that claims it then refunds it.
      return mine ? { ...row, status: 'refunding', provider_reference: state.providerReference, tries: 0 } : row;
    }
    case 'closed':
    case 'not_opened':
      await setStatus(services.db, row, 'unpaid', now);
      return { ...row, status: 'unpaid' };
    case 'failed':
      // A query's failure is final (nothing was paid); a refused close is not (the trade may still be open).
      if (queried.status === 'pending') break;
      await setStatus(services.db, row, 'unpaid', now);
      return { ...row, status: 'unpaid' };
    case 'unknown':
      break;
    default:
      return assertNever(state, 'a wallet trade state');
  }
  services.logger.warn({ charge: row.charge_id, status: state.status }, 'late wallet payment: the provider has not said whether the trade was paid');
  await setStatus(services.db, row, 'watching', now, { next_try_at: retryAt(row, now), tries: row.tries + 1 });
  return row;
}

/**
 * Refunds the whole late payment at the provider, with the same key on every try (the provider refunds once per
 * key). No final answer after `walletLateTriesMax` tries hands it to a person as `refund_failed`.
 */
async function refundLatePayment(services: Services, row: WalletLatePaymentRow): Promise<void> {
  const connector = services.connectors.wallet(row.provider, row.livemode);
  const key = latePaymentRefundKey(row.charge_id);
  const result = await connector.refund({
    idempotencyKey: key, reference: key, paymentReference: row.charge_id, amountMinor: row.amount, currency: currencyOf(row.currency), totalMinor: row.amount,
  });
  const now = new Date(services.clock.nowMs());
  if (result.status === 'unknown' && row.tries + 1 < limits.walletLateTriesMax) {
    services.logger.warn({ charge: row.charge_id, reason: result.reason }, 'late wallet payment: refund outcome unknown; sent again later with the same key');
    await setStatus(services.db, row, 'refunding', now, { next_try_at: retryAt(row, now), tries: row.tries + 1 });
    return;
  }
  const refunded = result.status === 'succeeded';
  const failureReason = result.status === 'failed' ? result.failureReason : result.status === 'unknown' ? `no final answer after ${row.tries + 1} tries: ${result.reason}` : null;
  await inTransaction(services.db, async (tx) => {
    // A refund the provider made is recorded whatever another worker wrote meanwhile; a failure only over `refunding`.
    const changed = await setStatus(tx, row, refunded ? 'refunded' : 'refund_failed', now, {
      refund_reference: result.status === 'unknown' ? null : result.providerReference, failure_reason: failureReason, tries: row.tries + 1,
    }, refunded ? ['refunding', 'refund_failed'] : ['refunding']);
    if (!changed) return;
    if (!refunded) services.logger.error({ charge: row.charge_id, reason: failureReason }, 'late wallet payment: no refund at the provider; settle it by hand');
    await recordAudit(tx, {
      merchantId: row.merchant_id, livemode: row.livemode, actorType: 'system', actorId: auditActor,
      action: refunded ? 'charge.late_payment_refunded' : 'charge.late_payment_refund_failed', objectType: 'charge', objectId: row.charge_id,
      outcome: refunded ? 'success' : 'failure', requestId: null, origin: null,
      details: {
        provider: row.provider, amount: row.amount.toString(), currency: row.currency,
        refund_reference: result.status === 'unknown' ? null : result.providerReference,
        ...(refunded ? {} : { failure_reason: failureReason, security_event: true }),
      },
      occurredAt: now,
    });
  });
}

function retryAt(row: WalletLatePaymentRow, now: Date): Date {
  return new Date(now.getTime() + nextSyncDelay(row.tries));
}

/** Moves a row on from the status it was claimed in (or one of `from`); false if another worker moved it first. */
async function setStatus(
  db: Tx | Kysely<Database>,
  row: WalletLatePaymentRow,
  status: WalletLatePaymentStatus,
  now: Date,
  changes: Partial<Pick<WalletLatePaymentRow, 'next_try_at' | 'tries' | 'refund_reference' | 'failure_reason'>> = {},
  from: readonly WalletLatePaymentStatus[] = [row.status],
): Promise<boolean> {
  const result = await db.updateTable('wallet_late_payments').set({ next_try_at: now, ...changes, status, updated_at: now })
    .where('charge_id', '=', row.charge_id).where('status', 'in', from).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * For `/metrics` and the doctor: `refund_failed` needs a person; `refunding` should drain within minutes;
 * `unanswered` counts trades still watched after `walletLateTriesMax` questions the provider did not answer.
 */
export async function countLateWalletPayments(db: Kysely<Database>): Promise<Record<'refunding' | 'refund_failed' | 'unanswered', number>> {
  const row = await db.selectFrom('wallet_late_payments').select([
    sql<string>`count(*) FILTER (WHERE status = 'refunding')`.as('refunding'),
    sql<string>`count(*) FILTER (WHERE status = 'refund_failed')`.as('refund_failed'),
    sql<string>`count(*) FILTER (WHERE status = 'watching' AND tries >= ${limits.walletLateTriesMax})`.as('unanswered'),
  ]).where('status', 'in', ['watching', 'refunding', 'refund_failed']).executeTakeFirstOrThrow();
  return { refunding: Number(row.refunding), refund_failed: Number(row.refund_failed), unanswered: Number(row.unanswered) };
}

function walletProviderOf(charge: ChargeRow): WalletProvider {
  if (charge.provider !== 'alipay' && charge.provider !== 'wechat_pay') throw new Error(`assertion failed: charge ${charge.id} is a wallet payment`);
  return charge.provider;
}
