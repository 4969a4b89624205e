import { sql, type Kysely, type RawBuilder } from 'kysely';
import { resourceMissing } from '../domain/errors.ts';
import {
  balanceTransactionId,
  balanceTransactionReasons,
  reasonsOfType,
  type BalanceTransactionReason,
  type BalanceTransactionRow,
} from '../objects/balance-transaction.ts';
import type { Database } from '../store/database.ts';
import { checkOneCursor, createdBounds, type ListParams, type Page } from './list-page.ts';
import type { Scope } from './payment-intent-records.ts';

export interface BalanceTransactionFilters {
  type?: string | undefined;
  source?: string | undefined;
  currency?: string | undefined;
}

/** The digest a transaction's id carries, in SQL: the same expression as the index of migration 0035. */
const idDigest = sql`left(encode(sha256((split_part(t.transfer_key, ':', 1) || ':' || t.reason)::bytea), 'hex'), 24)`;

/** The keys a source's transfers can have (src/domain/ledger.ts), so that a source is found by the unique index. */
const keySuffixes = ['authorization', 'capture', 'refund', 'refund_failure', 'withdrawal', 'reinstatement', 'credit', 'debit'];

function reasonList(reasons: readonly BalanceTransactionReason[]): RawBuilder<unknown> {
  return sql.join(reasons.map((reason) => sql.lit(reason)));
}

/** The merchant's balance transactions that `conditions` select, as rows, newest first unless `ascending`. */
async function selectRows(db: Kysely<Database>, scope: Scope, conditions: RawBuilder<unknown>[], limit: number, ascending = false): Promise<BalanceTransactionRow[]> {
  const where = sql.join([
    sql`t.merchant_id = ${scope.merchantId}`,
    sql`t.livemode = ${scope.livemode}`,
    sql`t.reason IN (${reasonList(balanceTransactionReasons)})`,
    ...conditions,
  ], sql` AND `);
  const result = await sql<BalanceTransactionRow>`
    SELECT t.id AS seq, split_part(t.transfer_key, ':', 1) AS source, t.reason, t.amount, coalesce(f.amount, 0) AS fee,
           t.currency, t.created_at,
           c.code IN ('merchant_incoming', 'merchant_available') AS to_merchant,
           CASE WHEN c.code IN ('merchant_incoming', 'merchant_available') THEN c.code ELSE d.code END AS merchant_account,
           ch.settled AS charge_settled, ch.available_on AS charge_available_on, ch.description AS charge_description
      FROM ledger_transfers t
      JOIN ledger_accounts d ON d.id = t.debit_account_id
      JOIN ledger_accounts c ON c.id = t.credit_account_id
      LEFT JOIN ledger_transfers f ON t.reason IN ('dispute', 'dispute_reinstatement')
           AND f.transfer_key = split_part(t.transfer_key, ':', 1) || CASE t.reason WHEN 'dispute' THEN ':fee' ELSE ':fee_reinstatement' END
      LEFT JOIN charges ch ON ch.id = t.charge_id
     WHERE ${where}
     ORDER BY t.id ${ascending ? sql`ASC` : sql`DESC`}
     LIMIT ${limit}`.execute(db);
  return result.rows.map((row) => ({ ...row, seq: BigInt(row.seq), amount: BigInt(row.amount), fee: BigInt(row.fee) }));
}

function digestOf(id: string): string | undefined {
  return /^txn_[0-9a-f]{24}$/.exec(id) === null ? undefined : id.slice(4);
}

/** The transactions with these ids (those that exist in the scope), for expansions. */
export async function balanceTransactionsById(db: Kysely<Database>, scope: Scope, ids: readonly string[]): Promise<Map<string, BalanceTransactionRow>> {
  const digests = ids.map(digestOf).filter((digest) => digest !== undefined);
  const found = new Map<string, BalanceTransactionRow>();
  if (digests.length === 0) return found;
  const rows = await selectRows(db, scope, [sql`${idDigest} IN (${sql.join(digests)})`], digests.length);
  for (const row of rows) found.set(balanceTransactionId(row.source, row.reason), row);
  return found;
}

export async function retrieveBalanceTransaction(db: Kysely<Database>, scope: Scope, id: string, param = 'id'): Promise<BalanceTransactionRow> {
  const row = (await balanceTransactionsById(db, scope, [id])).get(id);
  if (row === undefined) throw resourceMissing('balance transaction', id, param);
  return row;
}

/** One page of the merchant's balance transactions, newest first, as Stripe lists them. */
export async function listBalanceTransactions(
  db: Kysely<Database>,
  scope: Scope,
  params: ListParams & BalanceTransactionFilters,
): Promise<Page<BalanceTransactionRow>> {
  checkOneCursor(params);
  const conditions: RawBuilder<unknown>[] = [];
  if (params.type !== undefined) {
    const reasons = reasonsOfType(params.type);
    if (reasons.length === 0) return { data: [], hasMore: false };
    conditions.push(sql`t.reason IN (${reasonList(reasons)})`);
  }
  if (params.source !== undefined) {
    conditions.push(sql`t.transfer_key IN (${sql.join(keySuffixes.map((suffix) => `${params.source}:${suffix}`))})`);
  }
  if (params.currency !== undefined) conditions.push(sql`t.currency = ${params.currency}`);
  for (const [operator, seconds] of createdBounds(params.created)) {
    const bound = new Date(seconds * 1000);
    conditions.push(operator === '>=' ? sql`t.created_at >= ${bound}` : sql`t.created_at < ${bound}`);
  }
  const cursorParam = params.starting_after !== undefined ? 'starting_after' : 'ending_before';
  const cursorId = params.starting_after ?? params.ending_before;
  if (cursorId !== undefined) {
    const cursor = await retrieveBalanceTransaction(db, scope, cursorId, cursorParam);
    conditions.push(cursorParam === 'starting_after' ? sql`t.id < ${cursor.seq}` : sql`t.id > ${cursor.seq}`);
  }
  const ascending = params.ending_before !== undefined;
  const rows = await selectRows(db, scope, conditions, params.limit + 1, ascending);
  const hasMore = rows.length > params.limit;
  const page = rows.slice(0, params.limit);
  return { data: ascending ? page.reverse() : page, hasMore };
}
