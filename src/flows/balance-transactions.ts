import { sql, type Kysely, type RawBuilder } from 'kysely';
import { resourceMissing } from '../domain/errors.ts';
import {
  balanceTransactionId,
  balanceTransactionReasons,
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

/**
 * The digest a transaction's id carries, in SQL: the same expression as the index of migration 0035. `::bytea`
 * reads backslashes as escapes, so it hashes the same bytes as Coffer's code only for keys without one; transfer
 * keys are Coffer's ids (letters, digits, `_`) and a suffix after `:`, and never hold one.
 */
const idDigest = sql`left(encode(sha256((split_part(t.transfer_key, ':', 1) || ':' || t.reason)::bytea), 'hex'), 24)`;

/** The keys a source's transfers can have (src/domain/ledger.ts), so that a source is found by the unique index. */
const keySuffixes = ['authorization', 'capture', 'refund', 'refund_failure', 'withdrawal', 'reinstatement', 'credit', 'debit'];

function sourceKeys(source: string): string[] {
  return keySuffixes.map((suffix) => `${source}:${suffix}`);
}

function reasonList(reasons: readonly BalanceTransactionReason[]): RawBuilder<unknown> {
  return sql.join(reasons.map((reason) => sql.lit(reason)));
}

/**
 * The merchant's balance transactions that `conditions` select, as rows: a page (newest first, or oldest first when
 * paging back), or, without `page`, whatever matches. A lookup by id must have no order and no limit, or PostgreSQL
 * walks the merchant's transfers in order instead of using the digest's index (it has no statistics on it).
 */
async function selectRows(db: Kysely<Database>, scope: Scope, conditions: RawBuilder<unknown>[], page?: { limit: number; ascending: boolean }): Promise<BalanceTransactionRow[]> {
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
           ch.settled AS charge_settled, ch.available_on AS charge_available_on, ch.description AS charge_description,
           ch.provider AS charge_provider
      FROM ledger_transfers t
      JOIN ledger_accounts d ON d.id = t.debit_account_id
      JOIN ledger_accounts c ON c.id = t.credit_account_id
      LEFT JOIN ledger_transfers f ON t.reason IN ('dispute', 'dispute_reinstatement')
           AND f.transfer_key = split_part(t.transfer_key, ':', 1) || CASE t.reason WHEN 'dispute' THEN ':fee' ELSE ':fee_reinstatement' END
      LEFT JOIN charges ch ON ch.id = t.charge_id
     WHERE ${where}
     ${page === undefined ? sql`` : sql`ORDER BY t.id ${page.ascending ? sql`ASC` : sql`DESC`} LIMIT ${page.limit}`}`.execute(db);
  return result.rows.map((row) => ({ ...row, seq: BigInt(row.seq), amount: BigInt(row.amount), fee: BigInt(row.fee) }));
}

/**
 * The condition for a Stripe `type`: card payments are `charge` and their refunds `refund`, wallet payments
 * `payment` and `payment_refund` (as Stripe types non-card payments). Undefined for a type Coffer never records.
 */
function typeCondition(type: string): RawBuilder<unknown> | undefined {
  switch (type) {
    case 'charge': return sql`t.reason = 'capture' AND ch.provider = 'card'`;
    case 'payment': return sql`t.reason = 'capture' AND ch.provider <> 'card'`;
    case 'refund': return sql`t.reason = 'refund' AND ch.provider = 'card'`;
    case 'payment_refund': return sql`t.reason = 'refund' AND ch.provider <> 'card'`;
    case 'refund_failure': return sql`t.reason = 'refund_failure'`;
    case 'adjustment': return sql`t.reason IN ('dispute', 'dispute_reinstatement', 'customer_credit', 'customer_debit')`;
    default: return undefined;
  }
}

function digestOf(id: string): string | undefined {
  return /^txn_[0-9a-f]{24}$/.exec(id) === null ? undefined : id.slice(4);
}

/** The transactions with these ids (those that exist in the scope), for expansions. */
export async function balanceTransactionsById(db: Kysely<Database>, scope: Scope, ids: readonly string[]): Promise<Map<string, BalanceTransactionRow>> {
  const digests = ids.map(digestOf).filter((digest) => digest !== undefined);
  const found = new Map<string, BalanceTransactionRow>();
  if (digests.length === 0) return found;
  const rows = await selectRows(db, scope, [sql`${idDigest} IN (${sql.join(digests)})`]);
  for (const row of rows) found.set(balanceTransactionId(row.source, row.reason), row);
  return found;
}

/**
 * The transactions of each source, oldest first: a dispute's withdrawal, then its reinstatement if it was won.
 * Every source asked for has an entry, empty when it moved nothing (an inquiry).
 */
export async function balanceTransactionsOfSources(db: Kysely<Database>, scope: Scope, sources: readonly string[]): Promise<Map<string, BalanceTransactionRow[]>> {
  const bySource = new Map<string, BalanceTransactionRow[]>(sources.map((source) => [source, []]));
  if (sources.length === 0) return bySource;
  const rows = await selectRows(db, scope, [sql`t.transfer_key IN (${sql.join(sources.flatMap(sourceKeys))})`]);
  rows.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  for (const row of rows) bySource.get(row.source)?.push(row);
  return bySource;
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
  let nothing = false;
  if (params.type !== undefined) {
    const type = typeCondition(params.type);
    if (type === undefined) nothing = true;
    else conditions.push(type);
  }
  if (params.source !== undefined) {
    conditions.push(sql`t.transfer_key IN (${sql.join(sourceKeys(params.source))})`);
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
  // A type Coffer never records lists nothing, once the cursor is known to be the merchant's.
  if (nothing) return { data: [], hasMore: false };
  const ascending = params.ending_before !== undefined;
  const rows = await selectRows(db, scope, conditions, { limit: params.limit + 1, ascending });
  const hasMore = rows.length > params.limit;
  const page = rows.slice(0, params.limit);
  return { data: ascending ? page.reverse() : page, hasMore };
}
