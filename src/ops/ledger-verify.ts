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
    name: 'charges_match_ledger',
    query: `SELECT c.id, c.amount_captured, c.amount_authorized, c.amount_released,
              coalesce(sum(t.amount) FILTER (WHERE t.kind IN ('single', 'post_pending') AND t.reason = 'capture'), 0) AS captured,
              coalesce(sum(t.amount) FILTER (WHERE t.kind IN ('pending', 'single') AND t.reason IN ('authorization', 'capture')), 0) AS authorized
            FROM charges c LEFT JOIN ledger_transfers t ON t.charge_id = c.id
            WHERE c.status = 'succeeded'
            GROUP BY c.id
            HAVING c.amount_captured <> coalesce(sum(t.amount) FILTER (WHERE t.kind IN ('single', 'post_pending') AND t.reason = 'capture'), 0)
               OR c.amount_authorized <> coalesce(sum(t.amount) FILTER (WHERE t.kind IN ('pending', 'single') AND t.reason IN ('authorization', 'capture')), 0)`,
    describe: (r) => `charge ${String(r.id)}: captured ${String(r.amount_captured)} of ${String(r.amount_authorized)} authorized, but the ledger shows ${String(r.captured)} of ${String(r.authorized)}`,
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
 * Checks every ledger invariant over the whole ledger: each currency balances, each account's counters equal
 * the sum of its entries, each transfer's legs are well formed, each pending transfer is resolved at most once
 * and by no more than it reserved, and the charges and refunds agree with the ledger (refunded <= captured <=
 * authorized).
 */
export async function verifyLedger(db: Kysely<Database>): Promise<LedgerReport> {
  const violations: LedgerViolation[] = [];
  for (const check of checks) {
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
