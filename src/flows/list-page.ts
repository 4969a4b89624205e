import { sql, type Kysely, type RawBuilder, type SelectQueryBuilder } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import type { Database } from '../store/database.ts';
import type { Scope } from './payment-intent-records.ts';

export interface CreatedFilter {
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
}

export interface ListParams {
  limit: number;
  starting_after?: string | undefined;
  ending_before?: string | undefined;
  created?: number | CreatedFilter | undefined;
}

export interface Page<T> {
  data: T[];
  hasMore: boolean;
}

/**
 * The tables Stripe-style lists page through. Each has an `id`, an owner (`merchant_id`, `livemode`), a
 * `created_at` and a `seq` given at insertion, which is the order of the list.
 */
export type ListedTable =
  | 'payment_intents'
  | 'customers'
  | 'customer_balance_transactions'
  | 'setup_intents'
  | 'payment_methods'
  | 'refunds'
  | 'disputes'
  | 'webhook_endpoints'
  | 'charges'
  | 'events'
  | 'support_cases'
  | 'products'
  | 'prices'
  | 'shipping_rates'
  | 'payment_links'
  | 'coupons'
  | 'promotion_codes'
  | 'checkout_sessions';

export interface ListSource<T extends ListedTable, O> {
  table: T;
  /** The object's name in the `No such …` message of an unknown cursor. */
  kind: string;
  /** The list's rows before paging, narrowed by the list's own filters (a customer, a charge, not deleted). */
  rows: SelectQueryBuilder<Database, T, O>;
  /**
   * For a list of objects that belong to one customer for good (its balance transactions), whose rows `rows`
   * already keeps to: the cursor must be one of that customer's objects too, since another's is never in the list.
   * (A customer's payment methods are not such a list: a card detached while a client pages stays a cursor.)
   */
  customerId?: string;
  /** For a list of some of a table's rows for good (Checkout Sessions, not the pages of API PaymentIntents): the cursor must be one of them. */
  cursorWhere?: RawBuilder<boolean>;
}

function column(table: ListedTable, name: 'created_at' | 'seq' | 'merchant_id' | 'livemode') {
  return sql.ref(`${table}.${name}`);
}

/**
 * `created` as half-open bounds on the creation time, in seconds: a plain integer is that whole second, and `gt`
 * and `lte` move to the next second, since creation times are finer than the seconds Stripe shows.
 */
export function createdBounds(created: ListParams['created']): Array<['>=' | '<', number]> {
  if (created === undefined) return [];
  if (typeof created === 'number') return [['>=', created], ['<', created + 1]];
  const bounds: Array<['>=' | '<', number]> = [];
  if (created.gt !== undefined) bounds.push(['>=', created.gt + 1]);
  if (created.gte !== undefined) bounds.push(['>=', created.gte]);
  if (created.lt !== undefined) bounds.push(['<', created.lt]);
  if (created.lte !== undefined) bounds.push(['<', created.lte + 1]);
  return bounds;
}

/** Refuses `starting_after` with `ending_before`, as Stripe does: a page has one edge. */
export function checkOneCursor(params: Pick<ListParams, 'starting_after' | 'ending_before'>): void {
  if (params.starting_after !== undefined && params.ending_before !== undefined) {
    throw new CofferError('parameters_exclusive', 'You may only specify one of these parameters: ending_before, starting_after.', {
      param: 'ending_before',
    });
  }
}

/**
 * One page of a list, newest first, as Stripe lists objects. `starting_after` pages towards older objects and
 * `ending_before` towards newer ones; both pages come back newest first. Ordering is by insertion sequence, so a
 * page boundary is exact even when many objects share a creation second. `created` filters by whole seconds.
 *
 * The rows and the cursor are both confined here to the merchant and mode of `scope`, so that no list can show,
 * or page from, another merchant's objects. A cursor is any object of the table in that scope: an unknown one is
 * `resource_missing` naming the parameter, which is what Stripe answers.
 */
export async function listPage<T extends ListedTable, O>(
  db: Kysely<Database>,
  scope: Scope,
  source: ListSource<T, O>,
  params: ListParams,
): Promise<Page<O>> {
  checkOneCursor(params);
  const { table } = source;
  let query = source.rows
    .where(sql<boolean>`${column(table, 'merchant_id')} = ${scope.merchantId}`)
    .where(sql<boolean>`${column(table, 'livemode')} = ${scope.livemode}`);
  for (const [operator, seconds] of createdBounds(params.created)) {
    const bound = new Date(seconds * 1000);
    query = query.where(operator === '>=' ? sql<boolean>`${column(table, 'created_at')} >= ${bound}` : sql<boolean>`${column(table, 'created_at')} < ${bound}`);
  }
  const cursorParam = params.starting_after !== undefined ? 'starting_after' : 'ending_before';
  const cursorId = params.starting_after ?? params.ending_before;
  if (cursorId !== undefined) {
    // As the union of the listed tables (not the generic T), Kysely can check the columns they all have.
    const owned: ListedTable = table;
    let cursorQuery = db
      .selectFrom(owned)
      .select('seq')
      .where('id', '=', cursorId)
      .where('merchant_id', '=', scope.merchantId)
      .where('livemode', '=', scope.livemode);
    if (source.customerId !== undefined) cursorQuery = cursorQuery.where(sql<boolean>`customer_id = ${source.customerId}`);
    if (source.cursorWhere !== undefined) cursorQuery = cursorQuery.where(source.cursorWhere);
    const cursor = await cursorQuery.executeTakeFirst();
    if (cursor === undefined) throw resourceMissing(source.kind, cursorId, cursorParam);
    const seq = column(table, 'seq');
    query = query.where(cursorParam === 'starting_after' ? sql<boolean>`${seq} < ${cursor.seq}` : sql<boolean>`${seq} > ${cursor.seq}`);
  }
  const ascending = params.ending_before !== undefined;
  const rows = await query
    .orderBy(column(table, 'seq'), ascending ? 'asc' : 'desc')
    .limit(params.limit + 1)
    .execute();
  const hasMore = rows.length > params.limit;
  const page = rows.slice(0, params.limit);
  return { data: ascending ? page.reverse() : page, hasMore };
}
