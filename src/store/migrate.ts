import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { OpenDatabase } from './open-database.ts';

const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface Migration {
  version: number;
  name: string;
  script: string;
  checksum: string;
}

/** The migrations shipped with this version of Coffer, in order. Files are named `NNNN-name.sql`. */
export function loadMigrations(dir = migrationsDir): Migration[] {
  return fs
    .readdirSync(dir)
    .filter((file) => /^\d{4}-[a-z0-9-]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const script = fs.readFileSync(path.join(dir, file), 'utf8');
      return {
        version: Number(file.slice(0, 4)),
        name: file.slice(5, -4),
        script,
        checksum: createHash('sha256').update(script).digest('hex'),
      };
    });
}

/** What to do when the database user may not change the schema (42501: the serving role of migration 0034). */
function ownerHint(error: unknown): string {
  return (error as { code?: unknown }).code === '42501'
    ? '. This database user may not change the schema: run `coffer migrate` as the role that owns Coffer\'s schema (docs/operations.md, "Database roles"), then start Coffer again'
    : '';
}

async function withOwnerHint<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw new Error(`${what} failed: ${(error as Error).message}${ownerHint(error)}`, { cause: error });
  }
}

export interface MigrationReport {
  applied: string[];
  alreadyApplied: number;
}

/**
 * Applies every migration not yet applied, each in its own transaction together with its record. Migrations are
 * forward-only: a recorded migration whose file changed since is refused, because the database would no longer
 * match the code.
 */
export async function migrate(database: OpenDatabase): Promise<MigrationReport> {
  const migrations = loadMigrations();
  return database.withSchemaLock(async (exec) => {
    // Checked first, not with IF NOT EXISTS: the runtime role (0034) may not create tables even when the table
    // exists, and starts on a migrated database must not need that right.
    const found = await exec(`SELECT to_regclass('schema_migrations') IS NOT NULL AS found`);
    if (found[0]?.found !== true) {
      await withOwnerHint('creating schema_migrations', () => exec(`CREATE TABLE schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now())`));
    }
    // A serving role on a database not yet migrated to 0034 has no grant to read it: the owner must migrate first.
    const rows = await withOwnerHint('reading schema_migrations', () => exec('SELECT version, checksum FROM schema_migrations'));
    const recorded = new Map(rows.map((row) => [Number(row.version), String(row.checksum)]));
    const applied: string[] = [];
    for (const migration of migrations) {
      const checksum = recorded.get(migration.version);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) {
          throw new Error(`migration ${migration.version}-${migration.name} changed after it was applied`);
        }
        continue;
      }
      const record = `INSERT INTO schema_migrations (version, name, checksum) VALUES (${migration.version}, '${migration.name}', '${migration.checksum}');`;
      try {
        await exec(`BEGIN;\n${migration.script}\n${record}\nCOMMIT;`);
      } catch (error) {
        await exec('ROLLBACK');
        throw new Error(`migration ${migration.version}-${migration.name} failed: ${(error as Error).message}${ownerHint(error)}`, {
          cause: error,
        });
      }
      applied.push(`${String(migration.version).padStart(4, '0')}-${migration.name}`);
    }
    const known = new Set(migrations.map((migration) => migration.version));
    const unknown = [...recorded.keys()].filter((version) => !known.has(version));
    if (unknown.length > 0) {
      throw new Error(`the database has migrations this version of Coffer does not know: ${unknown.join(', ')}`);
    }
    return { applied, alreadyApplied: recorded.size };
  });
}

/** Where a database's schema stands against this version of Coffer's migrations. */
export interface MigrationState {
  /** The migrations of this version not applied to it, as `NNNN-name`. */
  pending: string[];
  /** Migrations applied to it that this version does not know: a later Coffer migrated it. */
  unknown: number[];
}

/**
 * Where `database` stands against this version's migrations, or null when it holds no Coffer schema at all. Reads
 * only: for commands that work on an installation and must not change its schema (all but `start` and `migrate`).
 */
export async function migrationState(database: OpenDatabase): Promise<MigrationState | null> {
  const table = await sql<{ found: string | null }>`SELECT to_regclass('schema_migrations')::text AS found`.execute(database.db);
  if ((table.rows[0]?.found ?? null) === null) return null;
  const rows = await sql<{ version: number }>`SELECT version FROM schema_migrations`.execute(database.db);
  const applied = new Set(rows.rows.map((row) => Number(row.version)));
  const migrations = loadMigrations();
  const known = new Set(migrations.map((migration) => migration.version));
  return {
    pending: migrations
      .filter((migration) => !applied.has(migration.version))
      .map((migration) => `${String(migration.version).padStart(4, '0')}-${migration.name}`),
    unknown: [...applied].filter((version) => !known.has(version)).sort((a, b) => a - b),
  };
}
