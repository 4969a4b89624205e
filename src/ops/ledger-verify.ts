import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/database.ts';

export interface LedgerViolation {
  check: string;
  detail: string;
}

export interface LedgerReport {
  accounts: number;
  transfers: number;
  currencies: number;
  violations: LedgerViolation[];
}

type Row = Record<string, unknown>;

/** Each check is a query returning one row per violation; an empty result means the invariant holds. */
const checks: Array<{ name: string; query: string; describe: (row: Row) => string }> = [
  {
    name: 'currency_balances',
    query: `SELECT livemode, currency, sum(debits_posted) AS dp, sum(credits_posted) AS cp,
              sum(debits_pending) AS dpe, sum(credits_pending) AS cpe
            FROM ledger_accounts GROUP BY livemode, currency
            HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending)`,
    describe: (r) => `${String(r.currency)} (livemode ${String(r.livemode)}): posted debits ${String(r.dp)} vs credits ${String(r.cp)}, pending ${String(r.dpe)} vs ${String(r.cpe)}`,
  },
  {
    name: 'account_equals_entries',
    query: `WITH legs AS (
              SELECT t.debit_account_id AS account_id, 'debit' AS side, t.kind, t.amount, t.id, t.pending_id FROM ledger_transfers t
              UNION ALL
              SELECT t.credit_account_id, 'credit', t.kind, t.amount, t.id, t.pending_id FROM ledger_transfers t),
            sums AS (
              SELECT a.id,
                coalesce(sum(l.amount) FILTER (WHERE l.side = 'debit' AND l.kind IN ('single', 'post_pending')), 0) AS dp,
                coalesce(sum(l.amount) FILTER (WHERE l.side = 'credit' AND l.kind IN ('single', 'post_pending')), 0) AS cp,
                coalesce(sum(l.amount) FILTER (WHERE l.side = 'debit' AND l.kind = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = l.id)), 0) AS dpe,
                coalesce(sum(l.amount) FILTER (WHERE l.side = 'credit' AND l.kind = 'pending'
                  AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = l.id)), 0) AS cpe
              FROM ledger_accounts a LEFT JOIN legs l ON l.account_id = a.id GROUP BY a.id)
            SELECT a.id, a.code, a.currency, s.dp, s.cp, s.dpe, s.cpe,
              a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending
            FROM ledger_accounts a JOIN sums s ON s.id = a.id
            WHERE a.debits_posted <> s.dp OR a.credits_posted <> s.cp
               OR a.debits_pending <> s.dpe OR a.credits_pending <> s.cpe`,
    describe: (r) => `account ${String(r.id)} (${String(r.code)} ${String(r.currency)}): counters ${String(r.debits_posted)}/${String(r.credits_posted)}/${String(r.debits_pending)}/${String(r.credits_pending)} but entries sum to ${String(r.dp)}/${String(r.cp)}/${String(r.dpe)}/${String(r.cpe)}`,
  },
  {
    name: 'transfer_legs',
    query: `SELECT t.id, t.transfer_key FROM ledger_transfers t
            JOIN ledger_accounts d ON d.id = t.debit_account_id JOIN ledger_accounts c ON c.id = t.credit_account_id
            WHERE t.amount <= 0 OR d.currency <> t.currency OR c.currency <> t.currency
               OR d.merchant_id <> c.merchant_id OR d.livemode <> c.livemode OR d.id = c.id
               OR d.merchant_id <> t.merchant_id OR d.livemode <> t.livemode`,
    describe: (r) => `transfer ${String(r.transfer_key)} does not move a positive amount between two accounts of its own merchant, mode and currency`,
  },
  {
    name: 'pending_resolution',
    query: `SELECT r.id, r.transfer_key, r.kind, r.amount, p.kind AS pending_kind, p.amount AS pending_amount
            FROM ledger_transfers r JOIN ledger_transfers p ON p.id = r.pending_id
            WHERE p.kind <> 'pending' OR r.debit_account_id <> p.debit_account_id
               OR r.credit_account_id <> p.credit_account_id
               OR (r.kind = 'post_pending' AND r.amount > p.amount)
               OR (r.kind = 'void_pending' AND r.amount <> p.amount)`,
    describe: (r) => `${String(r.kind)} ${String(r.transfer_key)} of ${String(r.amount)} does not match its pending transfer (${String(r.pending_kind)}, ${String(r.pending_amount)})`,
  },
  {
    name: 'transfer_accounts_exist',
    query: `SELECT t.transfer_key FROM ledger_transfers t
            WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = t.debit_account_id)
               OR NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = t.credit_account_id)`,
    describe: (r) => `transfer ${String(r.transfer_key)} moves money from or to an account that does not exist`,
  },
  {
    name: 'transfer_kind',
    query: `SELECT transfer_key, kind, pending_id FROM ledger_transfers
            WHERE (kind IN ('post_pending', 'void_pending')) <> (pending_id IS NOT NULL)`,
    describe: (r) => (r.pending_id === null
      ? `${String(r.kind)} ${String(r.transfer_key)} resolves no pending transfer`
      : `${String(r.kind)} ${String(r.transfer_key)} names a pending transfer, which only a post or a void may`),
  },
  {
    // The unique index says so too; this holds even where the index was dropped.
    name: 'pending_resolved_once',
    query: `SELECT p.transfer_key, count(*) AS resolutions FROM ledger_transfers r JOIN ledger_transfers p ON p.id = r.pending_id
            GROUP BY p.id, p.transfer_key HAVING count(*) > 1`,
    describe: (r) => `pending transfer ${String(r.transfer_key)} is resolved ${String(r.resolutions)} times; a reservation is posted or voided once`,
  },
  {
    // Every charge, whatever its status: one that never succeeded has nothing in the ledger. What was authorized is
    // the reservations made, less those an increment replaced (each by one of the new total); what was released is
    // the voided reservation, or the part of it a capture did not post.
    name: 'charges_match_ledger',
    query: `WITH moved AS (
              SELECT c.id, c.amount_captured, c.amount_authorized, c.amount_released,
                coalesce(sum(t.amount) FILTER (WHERE t.kind IN ('single', 'post_pending') AND t.reason = 'capture'), 0) AS captured,
                coalesce(sum(t.amount) FILTER (WHERE t.kind IN ('pending', 'single') AND t.reason IN ('authorization', 'capture')), 0)
                  - coalesce(sum(t.amount) FILTER (WHERE t.kind = 'void_pending' AND t.reason = 'increment'), 0) AS authorized,
                coalesce(sum(t.amount) FILTER (WHERE t.kind = 'void_pending' AND t.reason = 'release'), 0)
                  + coalesce(sum(p.amount - t.amount) FILTER (WHERE t.kind = 'post_pending'), 0) AS released
              FROM charges c
              LEFT JOIN ledger_transfers t ON t.charge_id = c.id
              LEFT JOIN ledger_transfers p ON p.id = t.pending_id
              GROUP BY c.id)
            SELECT * FROM moved
            WHERE amount_captured <> captured OR amount_authorized <> authorized OR amount_released <> released`,
    describe: (r) => `charge ${String(r.id)}: captured ${String(r.amount_captured)} and released ${String(r.amount_released)} of ${String(r.amount_authorized)} authorized, but the ledger shows ${String(r.captured)} and ${String(r.released)} of ${String(r.authorized)}`,
  },
  {
    name: 'refunds_match_ledger',
    query: `SELECT c.id, c.amount_refunded,
              coalesce((SELECT sum(t.amount) FROM ledger_transfers t WHERE t.charge_id = c.id AND t.reason = 'refund'), 0)
              - coalesce((SELECT sum(t.amount) FROM ledger_transfers t WHERE t.charge_id = c.id AND t.reason = 'refund_failure'), 0) AS ledger,
              coalesce((SELECT sum(r.amount) FROM refunds r WHERE r.charge_id = c.id AND r.status = 'succeeded'), 0) AS refunds
            FROM charges c
            WHERE c.amount_refunded <> coalesce((SELECT sum(r.amount) FROM refunds r WHERE r.charge_id = c.id AND r.status = 'succeeded'), 0)
               OR c.amount_refunded <> coalesce((SELECT sum(t.amount) FROM ledger_transfers t WHERE t.charge_id = c.id AND t.reason = 'refund'), 0)
                  - coalesce((SELECT sum(t.amount) FROM ledger_transfers t WHERE t.charge_id = c.id AND t.reason = 'refund_failure'), 0)`,
    describe: (r) => `charge ${String(r.id)}: refunded ${String(r.amount_refunded)}, but its succeeded refunds add up to ${String(r.refunds)} and the ledger to ${String(r.ledger)}`,
  },
  {
    name: 'amounts_ordered',
    query: `SELECT id, amount_refunded, amount_captured, amount_released, amount_authorized FROM charges
            WHERE amount_refunded + amount_refunding > amount_captured OR amount_captured + amount_released > amount_authorized
               OR amount_authorized > amount`,
    describe: (r) => `charge ${String(r.id)}: refunded ${String(r.amount_refunded)}, captured ${String(r.amount_captured)}, released ${String(r.amount_released)}, authorized ${String(r.amount_authorized)}`,
  },
];

/**
 * The chart's rules: what each reason may move, between which accounts, by which kind of transfer. A transfer
 * that fits none of them (money moved straight from clearing to available, a capture into the fees account) is
 * not something Coffer writes, whoever wrote it.
 */
const purposes = `
  (t.reason = 'authorization' AND t.kind = 'pending' AND d.code = 'provider_clearing' AND c.code = 'merchant_incoming')
  OR (t.reason = 'capture' AND t.kind IN ('single', 'post_pending') AND d.code = 'provider_clearing' AND c.code = 'merchant_incoming')
  OR (t.reason IN ('release', 'increment') AND t.kind = 'void_pending' AND d.code = 'provider_clearing' AND c.code = 'merchant_incoming')
  OR (t.reason = 'settlement' AND t.kind = 'single' AND d.code = 'merchant_incoming' AND c.code = 'merchant_available')
  OR (t.reason = 'settlement' AND t.kind = 'single' AND d.code = 'merchant_available' AND c.code = 'merchant_incoming')
  OR (t.reason IN ('refund', 'dispute') AND t.kind = 'single' AND d.code IN ('merchant_incoming', 'merchant_available') AND c.code = 'provider_clearing')
  OR (t.reason IN ('refund_failure', 'dispute_reinstatement') AND t.kind = 'single' AND d.code = 'provider_clearing' AND c.code IN ('merchant_incoming', 'merchant_available'))
  OR (t.reason = 'dispute_fee' AND t.kind = 'single' AND d.code IN ('merchant_incoming', 'merchant_available') AND c.code = 'fees')
  OR (t.reason = 'dispute_fee_reinstatement' AND t.kind = 'single' AND d.code = 'fees' AND c.code IN ('merchant_incoming', 'merchant_available'))
  OR (t.reason = 'customer_credit' AND t.kind = 'single' AND d.code = 'merchant_available' AND c.code = 'customer_credit')
  OR (t.reason = 'customer_debit' AND t.kind = 'single' AND d.code = 'customer_credit' AND c.code = 'merchant_available')`;

/**
 * Reconciliation: every transfer is explained by the object its reason names, so that no balance can grow without
 * a payment, refund, dispute, settlement or customer balance transaction behind it (the bookkeeping checks above
 * hold for any well-formed transfer, forged or not). The object is the transfer key's first part for refunds,
 * disputes and customer balance transactions, and the transfer's charge for the others.
 */
const reconciliation: typeof checks = [
  {
    name: 'transfer_purpose',
    query: `SELECT t.transfer_key, t.reason, t.kind, d.code AS debit, c.code AS credit
            FROM ledger_transfers t
            JOIN ledger_accounts d ON d.id = t.debit_account_id JOIN ledger_accounts c ON c.id = t.credit_account_id
            WHERE NOT (${purposes})`,
    describe: (r) => `transfer ${String(r.transfer_key)}: a ${String(r.kind)} ${String(r.reason)} transfer from ${String(r.debit)} to ${String(r.credit)} is not one the chart of accounts allows`,
  },
  {
    name: 'transfer_explained',
    query: `SELECT t.transfer_key, t.reason, problem FROM ledger_transfers t
            LEFT JOIN charges ch ON ch.id = t.charge_id
            CROSS JOIN LATERAL (SELECT CASE
              WHEN t.reason IN ('customer_credit', 'customer_debit') THEN
                CASE WHEN t.charge_id IS NOT NULL THEN 'a customer balance transfer names a charge'
                     WHEN t.transfer_key <> split_part(t.transfer_key, ':', 1) || CASE t.reason WHEN 'customer_credit' THEN ':credit' ELSE ':debit' END
                       THEN 'its key is not its customer balance transaction''s'
                     WHEN NOT EXISTS (SELECT 1 FROM customer_balance_transactions b
                       WHERE b.id = split_part(t.transfer_key, ':', 1) AND b.merchant_id = t.merchant_id AND b.livemode = t.livemode
                         AND b.currency = t.currency
                         AND b.amount = CASE WHEN t.reason = 'customer_credit' THEN -t.amount ELSE t.amount END)
                     THEN 'no customer balance transaction of this merchant, currency and amount' END
              WHEN t.charge_id IS NULL THEN 'it names no charge'
              WHEN ch.id IS NULL THEN 'its charge does not exist'
              WHEN ch.merchant_id <> t.merchant_id OR ch.livemode <> t.livemode OR ch.currency <> t.currency
                   OR ch.payment_intent_id IS DISTINCT FROM t.payment_intent_id
                THEN 'its charge belongs to another merchant, mode, currency or PaymentIntent'
              WHEN ch.status <> 'succeeded' THEN 'its charge did not succeed, so it moved no money'
              WHEN NOT (
                     (t.reason = 'authorization' AND t.kind = 'pending' AND (t.transfer_key = t.charge_id || ':authorization'
                       OR (t.transfer_key LIKE t.charge_id || ':authorization:%' AND substr(t.transfer_key, length(t.charge_id) + 16) ~ '^[1-9][0-9]?$')))
                  OR (t.reason = 'increment' AND t.kind = 'void_pending' AND t.transfer_key LIKE t.charge_id || ':increment:%'
                       AND substr(t.transfer_key, length(t.charge_id) + 12) ~ '^[1-9][0-9]?$')
                  OR (t.reason = 'capture' AND t.kind = 'single' AND t.transfer_key = t.charge_id || ':authorization')
                  OR (t.reason = 'capture' AND t.kind = 'post_pending' AND t.transfer_key = t.charge_id || ':capture')
                  OR (t.reason = 'release' AND t.transfer_key = t.charge_id || ':release')
                  OR t.reason NOT IN ('authorization', 'increment', 'capture', 'release'))
                THEN 'its key is not its charge''s for this kind of transfer'
              WHEN t.reason = 'settlement' AND t.transfer_key <> t.charge_id || ':settlement'
                THEN 'it is not its charge''s settlement'
              WHEN t.reason IN ('refund', 'refund_failure') AND t.transfer_key <> split_part(t.transfer_key, ':', 1) || ':' || t.reason
                THEN 'its key is not its refund''s'
              WHEN t.reason IN ('dispute', 'dispute_reinstatement', 'dispute_fee', 'dispute_fee_reinstatement')
                   AND t.transfer_key <> split_part(t.transfer_key, ':', 1) || CASE t.reason WHEN 'dispute' THEN ':withdrawal'
                     WHEN 'dispute_fee' THEN ':fee' WHEN 'dispute_reinstatement' THEN ':reinstatement' ELSE ':fee_reinstatement' END
                THEN 'its key is not its dispute''s'
              WHEN t.reason IN ('refund', 'refund_failure') AND NOT EXISTS (SELECT 1 FROM refunds r
                     WHERE r.id = split_part(t.transfer_key, ':', 1) AND r.charge_id = t.charge_id AND r.amount = t.amount)
                THEN 'no refund of its charge for this amount'
              WHEN t.reason IN ('dispute', 'dispute_reinstatement', 'dispute_fee', 'dispute_fee_reinstatement') AND NOT EXISTS (
                     SELECT 1 FROM disputes p WHERE p.id = split_part(t.transfer_key, ':', 1) AND p.charge_id = t.charge_id
                       AND t.amount = CASE WHEN t.reason IN ('dispute_fee', 'dispute_fee_reinstatement') THEN p.fee ELSE p.amount END)
                THEN 'no dispute of its charge for this amount'
              END AS problem) why
            WHERE problem IS NOT NULL`,
    describe: (r) => `transfer ${String(r.transfer_key)} (${String(r.reason)}) is not explained: ${String(r.problem)}`,
  },
  {
    // What each dispute and customer balance transaction should have moved, by its state, against what the ledger
    // holds under its keys: a withdrawal (and fee) once the dispute is more than an inquiry, their reinstatement
    // once it is won, one transfer per balance transaction. A transfer missing, repeated or extra shows here.
    name: 'objects_match_ledger',
    query: `WITH expected AS (
              SELECT merchant_id, livemode, id || ':withdrawal' AS key, amount, 'dispute' AS reason FROM disputes WHERE debited_account IS NOT NULL
              UNION ALL SELECT merchant_id, livemode, id || ':fee', fee, 'dispute_fee' FROM disputes WHERE debited_account IS NOT NULL AND fee > 0
              UNION ALL SELECT merchant_id, livemode, id || ':reinstatement', amount, 'dispute_reinstatement' FROM disputes
                WHERE debited_account IS NOT NULL AND status = 'won'
              UNION ALL SELECT merchant_id, livemode, id || ':fee_reinstatement', fee, 'dispute_fee_reinstatement' FROM disputes
                WHERE debited_account IS NOT NULL AND status = 'won' AND fee > 0
              UNION ALL SELECT merchant_id, livemode, id || CASE WHEN amount < 0 THEN ':credit' ELSE ':debit' END, abs(amount),
                CASE WHEN amount < 0 THEN 'customer_credit' ELSE 'customer_debit' END FROM customer_balance_transactions WHERE amount <> 0),
            actual AS (
              SELECT merchant_id, livemode, transfer_key AS key, amount, reason FROM ledger_transfers
              WHERE reason IN ('dispute', 'dispute_fee', 'dispute_reinstatement', 'dispute_fee_reinstatement', 'customer_credit', 'customer_debit'))
            SELECT coalesce(e.key, a.key) AS key, e.amount AS expected, a.amount AS actual
            FROM expected e FULL JOIN actual a ON a.key = e.key AND a.merchant_id = e.merchant_id AND a.livemode = e.livemode
            WHERE e.key IS NULL OR a.key IS NULL OR a.amount <> e.amount OR a.reason <> e.reason`,
    describe: (r) => (r.actual === null
      ? `transfer ${String(r.key)} of ${String(r.expected)} is missing: its dispute or customer balance transaction says it was made`
      : r.expected === null
        ? `transfer ${String(r.key)} of ${String(r.actual)} should not exist: no dispute or customer balance transaction in its state makes it`
        : `transfer ${String(r.key)} moved ${String(r.actual)} where its object says ${String(r.expected)}`),
  },
  {
    // A refund moves money once it has succeeded, and moves it back only if it failed after that.
    name: 'refunds_in_ledger',
    query: `SELECT r.id, r.status, r.amount, took.amount AS took, back.amount AS gave_back FROM refunds r
            LEFT JOIN ledger_transfers took ON took.transfer_key = r.id || ':refund'
            LEFT JOIN ledger_transfers back ON back.transfer_key = r.id || ':refund_failure'
            WHERE (r.status = 'succeeded' AND (took.id IS NULL OR back.id IS NOT NULL))
               OR (r.status = 'failed' AND (took.id IS NULL) <> (back.id IS NULL))
               OR (r.status NOT IN ('succeeded', 'failed') AND (took.id IS NOT NULL OR back.id IS NOT NULL))
               OR took.amount <> r.amount OR back.amount <> r.amount`,
    describe: (r) => `refund ${String(r.id)} (${String(r.status)}, ${String(r.amount)}) does not match the ledger: taken ${String(r.took ?? 'nothing')}, given back ${String(r.gave_back ?? 'nothing')}`,
  },
  {
    name: 'customer_balances',
    query: `SELECT c.id, c.balance, coalesce(sum(b.amount), 0) AS transactions FROM customers c
            LEFT JOIN customer_balance_transactions b ON b.customer_id = c.id
            GROUP BY c.id, c.balance HAVING c.balance <> coalesce(sum(b.amount), 0)`,
    describe: (r) => `customer ${String(r.id)} has a balance of ${String(r.balance)}, but its balance transactions add up to ${String(r.transactions)}`,
  },
  {
    // Every movement of a charge's money uses its pending funds until it settles and its available funds afterwards,
    // and the settlement moves whatever the charge left pending: so a settled charge leaves exactly nothing pending,
    // and one not settled has no settlement. This also bounds each settlement's amount and direction.
    name: 'settlement_clears_charge',
    query: `WITH positions AS (
              SELECT c.id, c.settled,
                     sum(CASE WHEN ac.code = 'merchant_incoming' THEN t.amount ELSE 0 END)
                       - sum(CASE WHEN ad.code = 'merchant_incoming' THEN t.amount ELSE 0 END) AS pending,
                     count(*) FILTER (WHERE t.reason = 'settlement') AS settlements
                FROM charges c
                JOIN ledger_transfers t ON t.charge_id = c.id AND t.kind IN ('single', 'post_pending')
                JOIN ledger_accounts ad ON ad.id = t.debit_account_id JOIN ledger_accounts ac ON ac.id = t.credit_account_id
               GROUP BY c.id, c.settled)
            SELECT id, settled, pending FROM positions
             WHERE (settled AND pending <> 0) OR (NOT settled AND settlements > 0)`,
    describe: (r) => (r.settled === true
      ? `charge ${String(r.id)} has settled but leaves ${String(r.pending)} in the merchant's pending funds`
      : `charge ${String(r.id)} has not settled but has a settlement transfer`),
  },
  {
    // A raised hold is a chain: each increment voids the reservation before it (the first, then the one the previous
    // increment made) and makes one of its own; a charge has as many as it records raises, one reservation more.
    name: 'increments_chained',
    query: `SELECT c.id, c.authorization_increments, problem FROM charges c
            CROSS JOIN LATERAL (SELECT
              count(*) FILTER (WHERE t.reason = 'increment') AS voids,
              count(*) FILTER (WHERE t.kind = 'pending' AND t.reason = 'authorization') AS reservations
              FROM ledger_transfers t WHERE t.charge_id = c.id) n
            CROSS JOIN LATERAL (SELECT CASE
              WHEN n.voids <> c.authorization_increments THEN n.voids || ' increment voids for ' || c.authorization_increments || ' raises'
              WHEN n.reservations > 0 AND n.reservations <> c.authorization_increments + 1
                THEN n.reservations || ' reservations for ' || c.authorization_increments || ' raises'
              WHEN EXISTS (SELECT 1 FROM ledger_transfers r JOIN ledger_transfers p ON p.id = r.pending_id
                     WHERE r.charge_id = c.id AND r.reason = 'increment'
                       AND p.transfer_key IS DISTINCT FROM CASE
                         WHEN r.transfer_key = c.id || ':increment:1' THEN c.id || ':authorization'
                         WHEN substr(r.transfer_key, length(c.id) + 12) ~ '^[1-9][0-9]?$'
                           THEN c.id || ':authorization:' || (substr(r.transfer_key, length(c.id) + 12)::int - 1) END)
                THEN 'an increment voids another reservation than the one before it' END AS problem) p
            WHERE (c.authorization_increments > 0 OR n.voids > 0) AND problem IS NOT NULL`,
    describe: (r) => `charge ${String(r.id)}: ${String(r.problem)}`,
  },
];

/**
 * Checks every ledger invariant over the whole ledger: each currency balances, each account's counters equal
 * the sum of its entries, each transfer's legs are well formed, each pending transfer is resolved at most once
 * and by no more than it reserved, and the charges and refunds agree with the ledger (refunded <= captured <=
 * authorized); with `scope` 'all' (the default), also that every transfer is one the chart allows and is explained
 * by its charge, refund, dispute or customer balance transaction. 'bookkeeping' leaves that reconciliation out, for
 * the ledger engine's own tests, which post transfers that no payment stands behind.
 */
export async function verifyLedger(db: Kysely<Database>, scope: 'all' | 'bookkeeping' = 'all'): Promise<LedgerReport> {
  const violations: LedgerViolation[] = [];
  for (const check of scope === 'all' ? [...checks, ...reconciliation] : checks) {
    const result = await sql.raw<Row>(check.query).execute(db);
    for (const row of result.rows) violations.push({ check: check.name, detail: check.describe(row) });
  }
  const counts = await sql<{ accounts: bigint; transfers: bigint; currencies: bigint }>`
    SELECT (SELECT count(*) FROM ledger_accounts) AS accounts, (SELECT count(*) FROM ledger_transfers) AS transfers,
           (SELECT count(DISTINCT currency) FROM ledger_accounts) AS currencies`.execute(db);
  const row = counts.rows[0];
  return {
    accounts: Number(row?.accounts ?? 0),
    transfers: Number(row?.transfers ?? 0),
    currencies: Number(row?.currencies ?? 0),
    violations,
  };
}
