import path from 'node:path';
import { openConfiguredDatabase } from '../app/open-configured-database.ts';
import type { Config } from '../platform/config.ts';
import { hasCluster } from '../store/durable-pglite.ts';
import { migrationState, type MigrationState } from '../store/migrate.ts';
import { redactConnectionString, type OpenDatabase } from '../store/open-database.ts';
import { DatabaseRefusal } from './database-refusal.ts';

/** An error's own words; a connection refused on every address of a name is an AggregateError with none. */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.message === '') return error.errors.map(describeError).join('; ');
  if (error instanceof Error) return error.message !== '' ? error.message : ((error as NodeJS.ErrnoException).code ?? error.name);
  return String(error);
}

/** Why a database is not one this version of Coffer may work on without migrating it, if it is not. */
function schemaRefusal(where: string, state: MigrationState | null): DatabaseRefusal | undefined {
  if (state === null) {
    const reason = `${where} holds no Coffer database (no schema_migrations table)`;
    return new DatabaseRefusal(`${reason}; nothing was checked or changed. Point DATABASE_URL (or COFFER_HOME) at the installation, or create`
      + ' Coffer\'s tables there with `coffer migrate` (or `coffer start`)', 2, reason);
  }
  if (state.unknown.length > 0) {
    const reason = `${where} was migrated by a later version of Coffer (migrations ${state.unknown.join(', ')} are unknown to this one)`;
    return new DatabaseRefusal(`${reason}: use that version; nothing was checked or changed`, 2, reason);
  }
  if (state.pending.length > 0) {
    const { pending } = state;
    const shown = pending.length > 5 ? `${pending.slice(0, 5).join(', ')} and ${pending.length - 5} more` : pending.join(', ');
    const reason = `${where} is not migrated to this version of Coffer (missing ${shown})`;
    return new DatabaseRefusal(`${reason}: run \`coffer migrate\` first; nothing was checked or changed`, 2, reason);
  }
  return undefined;
}

/**
 * Opens the installation's database for a command that works on one (all but `start` and `migrate`): it must be
 * there, hold Coffer's schema, and be migrated to this version. Otherwise nothing is created or changed, and a
 * DatabaseRefusal says what was found, naming the home directory or the database, and what to run.
 */
export async function openInstalledDatabase(config: Config): Promise<OpenDatabase> {
  const dataDir = path.join(config.homeDir, 'db');
  // Opening an empty directory would create a database in it: a home without one is refused before.
  if (config.databaseUrl === undefined && !hasCluster(dataDir)) {
    const reason = `no embedded database in ${config.homeDir}`;
    throw new DatabaseRefusal(`${reason}: set COFFER_HOME (or DATABASE_URL) to the installation, or create its database with \`coffer migrate\``
      + ' (or `coffer start`); nothing was checked or changed', 2, reason);
  }
  const where = config.databaseUrl === undefined ? `the embedded database ${dataDir}` : `the database ${redactConnectionString(config.databaseUrl)}`;
  let database: OpenDatabase | undefined;
  let state: MigrationState | null;
  try {
    database = await openConfiguredDatabase(config, 'command');
    // PostgreSQL connects on the first query, not on opening: a server down, or no such database or role, shows
    // here, and is as much "cannot be opened" as an embedded database another process holds.
    state = await migrationState(database);
  } catch (error) {
    await database?.close().catch(() => undefined);
    const message = describeError(error);
    const reason = message.includes(where) ? message : `${message} (${where})`;
    throw new DatabaseRefusal(`could not open the database, so nothing was checked or changed: ${reason}`, 3, reason);
  }
  const refusal = schemaRefusal(where, state);
  if (refusal !== undefined) {
    await database.close();
    throw refusal;
  }
  return database;
}
