import { AsyncLocalStorage } from 'node:async_hooks';
import { CompiledQuery, type DatabaseConnection } from 'kysely';

/**
 * Row-level security, the second wall between merchants (migration 0017): on PostgreSQL, merchant-owned tables
 * show and accept only the rows of the merchant named by the session setting `coffer.merchant_id`, when it is
 * set. Every merchant API request runs inside `merchantScope`, whose merchant is filled in once its key is
 * authenticated; each connection the request takes from the pool is switched to that merchant first. Code
 * outside a request (jobs, the staff API, the sandbox) has no merchant and sees every row; so does a lookup that
 * must cross merchants on purpose, run inside `withoutMerchantScope` (the audit of a cross-merchant attempt).
 *
 * The wall holds against a query that forgot its `merchant_id` condition, for a database role that is not a
 * superuser (superusers bypass row-level security; `coffer doctor` flags such a connection).
 */
export interface MerchantScope {
  merchantId: string | null;
}

export const merchantScope = new AsyncLocalStorage<MerchantScope>();

export function withoutMerchantScope<T>(fn: () => Promise<T>): Promise<T> {
  return merchantScope.run({ merchantId: null }, fn);
}

/** What each connection was last switched to; a connection taken again for the same merchant needs no query. */
const switchedTo = new WeakMap<DatabaseConnection, string>();

/** Kysely's `onReserveConnection` for PostgreSQL: switches the connection to the current merchant, if it changed. */
export async function applyMerchantScope(connection: DatabaseConnection): Promise<void> {
  const wanted = merchantScope.getStore()?.merchantId ?? '';
  if ((switchedTo.get(connection) ?? '') === wanted) return;
  await connection.executeQuery(CompiledQuery.raw("SELECT set_config('coffer.merchant_id', $1, false)", [wanted]));
  switchedTo.set(connection, wanted);
}
