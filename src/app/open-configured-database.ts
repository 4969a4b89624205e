import path from 'node:path';
import type { Config } from '../platform/config.ts';
import { openPGlite, openPostgres, type EmbeddedUse, type OpenDatabase } from '../store/open-database.ts';

/** A storage failure (a failed fsync) leaves the embedded database unusable: stop, and recover on restart. */
function stopOnStorageFailure(error: unknown): void {
  process.stderr.write(`coffer: the embedded database reported a storage failure; stopping so that recovery runs on restart: ${String(error)}\n`);
  process.exit(75);
}

/**
 * The database the configuration names: PostgreSQL at DATABASE_URL, or the embedded one under the home directory.
 * Kept apart from the server so that commands that only need the database (`coffer apikeys`, `coffer audit` …)
 * do not load the server's code. `use` sizes the embedded database for a running server or a one-shot command.
 */
export async function openConfiguredDatabase(config: Config, use: EmbeddedUse): Promise<OpenDatabase> {
  return config.databaseUrl === undefined
    ? openPGlite(path.join(config.homeDir, 'db'), config.embeddedDurability, stopOnStorageFailure, use)
    : openPostgres(config.databaseUrl, config.databasePoolSize);
}
