import type { PGlite } from '@electric-sql/pglite';
import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import { limits } from '../limits.ts';

/**
 * PGlite is one PostgreSQL session in this process. This presents it to Kysely's PostgreSQL driver as a pool of
 * one connection: a request that needs the database waits its turn (FIFO) and holds the session, including
 * across a transaction's statements, until it releases it. That is exactly what a pool of size 1 does with a real
 * server, so both databases run the same code.
 */
/**
 * The same value types as with the `pg` driver (see open-database.ts): int8 as bigint (PGlite would give a
 * number, which loses precision above 2^53), and `json` columns (event payloads) as their exact text.
 */
const rawJsonParsers = { 20: (text: string) => BigInt(text), 114: (text: string) => text };

export class PGlitePool implements PostgresPool {
  readonly options = {};
  readonly #pglite: PGlite;
  readonly #waiting: Array<() => void> = [];
  #leased = false;
  #ended = false;

  readonly #onError: (error: unknown) => void;

  /** `onError` sees every error the database raises, so that a storage failure can stop the process. */
  constructor(pglite: PGlite, onError: (error: unknown) => void = () => undefined) {
    this.#pglite = pglite;
    this.#onError = onError;
  }

  async connect(): Promise<PostgresPoolClient> {
    if (this.#ended) throw new Error('the embedded database is closed');
    if (this.#leased) await this.#waitForLease();
    this.#leased = true;
    return this.#client();
  }

  /**
   * Waits for the session, but not forever: a wait this long means the database is overloaded or, a bug, that
   * code holding the session inside a transaction asked for it again; either way the request fails (503)
   * instead of hanging.
   */
  async #waitForLease(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const waiter = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const index = this.#waiting.indexOf(waiter);
        if (index >= 0) this.#waiting.splice(index, 1);
        reject(Object.assign(new Error('timed out waiting for the embedded database'), { code: 'ETIMEDOUT' }));
      }, limits.embeddedSessionWaitMs);
      this.#waiting.push(waiter);
    });
  }

  async end(): Promise<void> {
    this.#ended = true;
    if (!this.#pglite.closed) await this.#pglite.close();
  }

  /** Runs a multi-statement script (migrations) while holding the session. */
  async exec(script: string): Promise<Array<Record<string, unknown>>> {
    const client = await this.connect();
    try {
      const results = await this.#pglite.exec(script).catch((error: unknown) => {
        this.#onError(error);
        throw error;
      });
      return (results.at(-1)?.rows ?? []) as Array<Record<string, unknown>>;
    } finally {
      client.release();
    }
  }

  /** Requests waiting for the session; the metrics and the benchmark report it. */
  get waitingCount(): number {
    return this.#waiting.length;
  }

  #client(): PostgresPoolClient {
    const pglite = this.#pglite;
    let released = false;
    const query = async <R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> => {
      if (released) throw new Error('query on a released embedded database session');
      const result = await pglite.query<R>(sql, [...parameters], { rowMode: 'object', parsers: rawJsonParsers }).catch((error: unknown) => {
        this.#onError(error);
        throw error;
      });
      const command = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? 'SELECT';
      return { command: command as PostgresQueryResult<R>['command'], rowCount: result.affectedRows ?? 0, rows: result.rows };
    };
    return {
      query: query as PostgresPoolClient['query'],
      release: () => {
        if (released) return;
        released = true;
        const next = this.#waiting.shift();
        if (next === undefined) this.#leased = false;
        else next();
      },
    };
  }
}
