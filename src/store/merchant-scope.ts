import { AsyncLocalStorage } from 'node:async_hooks';

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

/** What each pooled client was last switched to; a client taken again for the same merchant needs no query. */
const switchedTo = new WeakMap<object, string>();

interface ScopedClient {
  query(text: string, values: unknown[]): Promise<unknown>;
  release(error?: Error | boolean): void;
}

/**
 * A pool whose `connect()` hands out clients switched to the current merchant (PostgreSQL only). A client that
 * fails to switch goes back to the pool as broken, so a dead connection can neither serve nor leak.
 */
export function merchantScopedPool<Client extends ScopedClient, Pool extends { connect(): Promise<Client>; end(): Promise<void>; options: object }>(pool: Pool) {
  return {
    options: pool.options,
    connect: async (): Promise<Client> => {
      const client = await pool.connect();
      const wanted = merchantScope.getStore()?.merchantId ?? '';
      if ((switchedTo.get(client) ?? '') === wanted) return client;
      try {
        await client.query("SELECT set_config('coffer.merchant_id', $1, false)", [wanted]);
      } catch (error) {
        client.release(error instanceof Error ? error : true);
        throw error;
      }
      switchedTo.set(client, wanted);
      return client;
    },
    end: () => pool.end(),
  };
}
