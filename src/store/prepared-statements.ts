import type { PostgresPoolClient } from 'kysely';

/**
 * Named prepared statements on PostgreSQL. Kysely sends every query unnamed, so the server parses, analyzes and
 * plans it again each time: for the payment path's large single-statement writes that was a third of the
 * database's CPU time. A pool wrapped here names each recurring statement text, so that each connection parses it
 * once and the server reuses its plan (PostgreSQL keeps a generic plan when it costs no more than planning anew).
 *
 * - Only queries with parameters are named: they already use the extended protocol, while a text without
 *   parameters may hold several statements, which a prepared statement cannot.
 * - A text is named from its third use, so one-off shapes (a batch insert of some odd number of rows) stay
 *   unnamed, and at most `maxNamedStatements` texts are ever named: what each connection keeps is bounded.
 * - A schema change while Coffer runs (another process migrating) can make a kept statement's result type stale:
 *   PostgreSQL then refuses it ("cached plan must not change result type") before running it. Outside a
 *   transaction the statement is sent again unnamed, so the caller sees nothing; inside one the transaction has
 *   failed and the error goes up. Either way the connection is closed on release, and its replacement starts with
 *   no statements.
 * - A generic plan is made from the statistics of its time. Made while the tables are nearly empty (a new
 *   installation), it may look a row up through the wrong index; the ANALYZE that autovacuum runs as the tables
 *   grow invalidates every plan that depends on them, so the next ones are made from the data as it is.
 */
export const maxNamedStatements = 400;
const namedFromUse = 3;

export class StatementNames {
  readonly #names = new Map<string, string>();
  readonly #uses = new Map<string, number>();

  /** The name for a statement text, or undefined to send it unnamed. */
  nameFor(text: string): string | undefined {
    const named = this.#names.get(text);
    if (named !== undefined) return named;
    if (this.#names.size >= maxNamedStatements) return undefined;
    const count = (this.#uses.get(text) ?? 0) + 1;
    if (count < namedFromUse) {
      // Counts of texts not (yet) named are forgotten now and then, so that they cannot grow without bound.
      if (this.#uses.size >= maxNamedStatements * 10) this.#uses.clear();
      this.#uses.set(text, count);
      return undefined;
    }
    this.#uses.delete(text);
    const name = `coffer_${this.#names.size + 1}`;
    this.#names.set(text, name);
    return name;
  }

  get size(): number {
    return this.#names.size;
  }
}

interface PgClient {
  query(config: { name: string; text: string; values: readonly unknown[] }): Promise<unknown>;
  query(text: string, values: readonly unknown[]): Promise<unknown>;
  release(error?: Error | boolean): void;
}

function isStalePlan(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === '0A000' && typeof message === 'string' && message.includes('cached plan must not change result type');
}

const transactionStart = /^\s*(begin|start\s+transaction)\b/i;
const transactionEnd = /^\s*(commit|end|abort|rollback(?!\s+to\b))\b/i; // ROLLBACK TO SAVEPOINT stays in the transaction

/** A pool whose clients send recurring parameterized statements as named prepared statements. */
export function namingPool<Client extends PgClient, Pool extends { connect(): Promise<Client>; end(): Promise<void>; options: object }>(
  pool: Pool,
  names = new StatementNames(),
) {
  // One wrapper per connection, so that callers keying state by client (the merchant scope) see the same object.
  const wrappers = new WeakMap<Client, PostgresPoolClient>();
  return {
    options: pool.options,
    connect: async (): Promise<PostgresPoolClient> => {
      const client = await pool.connect();
      const existing = wrappers.get(client);
      if (existing !== undefined) return existing;
      let inTransaction = false;
      let stale = false;
      const query = async (text: string, values: readonly unknown[]) => {
        if (transactionStart.test(text)) inTransaction = true;
        else if (transactionEnd.test(text)) inTransaction = false;
        const name = values.length > 0 ? names.nameFor(text) : undefined;
        if (name === undefined) return client.query(text, values);
        try {
          return await client.query({ name, text, values });
        } catch (error) {
          if (!isStalePlan(error)) throw error;
          stale = true;
          if (inTransaction) throw error;
          return client.query(text, values);
        }
      };
      const wrapper: PostgresPoolClient = {
        // Kysely streams through cursors only when given a cursor class, which Coffer does not give it.
        query: query as PostgresPoolClient['query'],
        release: (error?: Error | boolean) => {
          inTransaction = false;
          if (stale || (error !== undefined && error !== false)) {
            // A broken or stale connection is closed; its replacement starts afresh.
            wrappers.delete(client);
            client.release(error === undefined || error === false ? true : error);
          } else {
            client.release();
          }
        },
      };
      wrappers.set(client, wrapper);
      return wrapper;
    },
    end: () => pool.end(),
  };
}
