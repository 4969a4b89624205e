import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { limits } from '../limits.ts';
import type { Database } from './database.ts';
import { PGlitePool } from './pglite-pool.ts';
import { merchantScopedPool } from './merchant-scope.ts';
import { namingPool } from './prepared-statements.ts';
import { lockDataDir } from './data-dir-lock.ts';
import { createClusterPrivately, hasCluster, openDurablePGlite } from './durable-pglite.ts';

export type DatabaseKind = 'pglite' | 'postgres';

/** Runs a multi-statement script and returns the rows of its last statement. */
export type ScriptRunner = (script: string) => Promise<Array<Record<string, unknown>>>;

export interface OpenDatabase {
  db: Kysely<Database>;
  kind: DatabaseKind;
  /** Where the data lives, for messages: a directory or a connection string without its password. */
  location: string;
  /**
   * Runs `fn` with exclusive use of the schema: on PostgreSQL under a session advisory lock (several processes
   * may start at once), on PGlite while holding its one session. `exec` runs a multi-statement script.
   */
  withSchemaLock<T>(fn: (exec: ScriptRunner) => Promise<T>): Promise<T>;
  /**
   * Periodic upkeep the database does not do for itself: the embedded database has no checkpointer, so its WAL
   * grows until a CHECKPOINT. PostgreSQL needs nothing.
   */
  maintain(): Promise<void>;
  close(): Promise<void>;
}

/** Advisory lock key held while migrating ("coffer" in ASCII). */
const schemaLockKey = 0x636f66666572;
const int8Oid = 20;
const jsonOid = 114;

/** The pg driver parses int8 to strings and json to objects by default; Coffer wants bigint and raw text. */
function pgTypes(): pg.CustomTypesConfig {
  return {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
      if (oid === int8Oid) return (text: string) => BigInt(text);
      if (oid === jsonOid) return (text: string) => text;
      return pg.types.getTypeParser(oid, format as 'text');
    }) as pg.CustomTypesConfig['getTypeParser'],
  };
}

export function redactConnectionString(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparseable)';
  }
}

export async function openPostgres(url: string, poolSize: number): Promise<OpenDatabase> {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    types: pgTypes(),
    connectionTimeoutMillis: limits.databaseConnectTimeoutMs,
    statement_timeout: limits.databaseStatementTimeoutMs,
    idle_in_transaction_session_timeout: limits.databaseStatementTimeoutMs * 2,
    application_name: 'coffer',
  });
  // A connection that breaks while idle must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: merchantScopedPool(namingPool(pool)) }) });
  const withSchemaLock = async <T>(fn: (exec: ScriptRunner) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [schemaLockKey]);
      try {
        return await fn(async (script) => {
          const result = (await client.query(script)) as unknown as pg.QueryResult | pg.QueryResult[];
          const last = Array.isArray(result) ? result.at(-1) : result;
          return (last?.rows ?? []) as Array<Record<string, unknown>>;
        });
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [schemaLockKey]);
      }
    } finally {
      client.release();
    }
  };
  return {
    db,
    kind: 'postgres',
    location: redactConnectionString(url),
    withSchemaLock,
    maintain: async () => undefined,
    close: () => db.destroy(),
  };
}

/**
 * How the embedded database makes commits durable: `fsync` (the default) flushes every COMMIT to stable storage
 * (see durable-pglite.ts); `os` leaves writes in the operating system's cache, which survives the process being
 * killed but not a power loss, and is several times faster. Tests use `os` except where durability is tested.
 */
export type EmbeddedDurability = 'fsync' | 'os';

/**
 * What the embedded database is opened for: `server` (a running Coffer) keeps PostgreSQL's default 128 MB of
 * shared buffers; `command` (a one-shot `coffer` command: a few statements, or one scan that PostgreSQL reads
 * through a small ring of buffers anyway) uses 16 MB, since the embedded engine sets every buffer up when it
 * starts, and that alone took most of a command's second of start-up.
 */
export type EmbeddedUse = 'server' | 'command';

export function embeddedStartParams(use: EmbeddedUse): string[] {
  return use === 'server' ? [] : ['-c', 'shared_buffers=16MB'];
}

/**
 * The embedded database's directory is its owner's alone, as PostgreSQL requires of its own (0700, or 0750 to let
 * a backup group read): PGlite writes its files with mode 0666 whatever the umask, so the directory is all that
 * keeps other local users from rewriting the ledger or the API keys. Created so; tightened if anyone else may
 * enter it or the group may write to it.
 */
export function keepPrivate(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mode = fs.statSync(dataDir).mode & 0o777;
  if ((mode & 0o027) !== 0) fs.chmodSync(dataDir, 0o700);
}

/** WAL written since the last checkpoint beyond which the embedded database checkpoints (bounds recovery time). */
const checkpointWalBytes = 256n * 1024n * 1024n;

/**
 * Opens (creating on first use) the embedded database in `dataDir`. Only one process may use a data directory at
 * a time: a lock file holding our pid guards it, and a lock left by a killed process is taken over.
 * `onFatal` is called if storage fails (a failed fsync): the process must stop, and recovery runs on restart.
 */
export async function openPGlite(
  dataDir: string | undefined,
  durability: EmbeddedDurability = 'fsync',
  onFatal: (error: unknown) => void = () => undefined,
  use: EmbeddedUse = 'server',
): Promise<OpenDatabase> {
  let unlock = () => undefined as void;
  if (dataDir !== undefined) {
    fs.mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o700 });
    keepPrivate(dataDir);
    unlock = lockDataDir(dataDir);
  }
  try {
    let pglite: PGlite;
    let isFatal = (error: unknown) => (error as { severity?: string } | null)?.severity === 'PANIC';
    if (dataDir !== undefined && durability === 'fsync') {
      const durable = await openDurablePGlite(dataDir, {}, embeddedStartParams(use));
      pglite = durable.pglite;
      const panics = isFatal;
      isFatal = (error) => durable.vfs.fatal !== undefined || panics(error);
    } else {
      if (dataDir !== undefined && !hasCluster(dataDir)) await createClusterPrivately(dataDir, false);
      pglite = new PGlite({ ...(dataDir === undefined ? {} : { dataDir }), startParams: [...PGlite.defaultStartParams, ...embeddedStartParams(use)] });
      await pglite.waitReady;
    }
    // The cluster was created private (createClusterPrivately); an existing one made open since is closed again.
    if (dataDir !== undefined) keepPrivate(dataDir);
    const pool = new PGlitePool(pglite, (error) => {
      if (isFatal(error)) onFatal(error);
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const maintain = async () => {
      const rows = await pool.exec(
        'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), (pg_control_checkpoint()).redo_lsn)::bigint AS pending',
      );
      if (BigInt(String(rows[0]?.pending ?? 0)) > checkpointWalBytes) await pool.exec('CHECKPOINT');
    };
    return {
      db,
      kind: 'pglite',
      location: dataDir ?? '(in memory)',
      withSchemaLock: (fn) => fn((script) => pool.exec(script)),
      maintain,
      close: async () => {
        await db.destroy();
        unlock();
      },
    };
  } catch (error) {
    unlock();
    throw error;
  }
}
