import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../../src/store/migrate.ts';
import { openPGlite, openPostgres, type OpenDatabase } from '../../src/store/open-database.ts';
import { copyTree, removeTree } from './files.ts';

/**
 * A fresh, migrated database for one test file: on PostgreSQL when COFFER_TEST_DATABASE_URL is set (a new
 * database created for the file and dropped after), otherwise an embedded PGlite copied from a migrated
 * template that the test runner prepares once.
 */
export interface TestDatabase extends OpenDatabase {
  /** For PostgreSQL: the URL of this file's own database; for PGlite: undefined. */
  url: string | undefined;
  dataDir: string | undefined;
  drop(): Promise<void>;
}

export function testDatabaseKind(): 'postgres' | 'pglite' {
  return process.env.COFFER_TEST_DATABASE_URL ? 'postgres' : 'pglite';
}

/**
 * A new database on the test server: empty, or (`migrated`) a copy of the migrated template the test runner made
 * once (COFFER_TEST_POSTGRES_TEMPLATE), which saves running every migration again for each test's database.
 */
async function createPostgresDatabase(adminUrl: string, migrated: boolean): Promise<string> {
  const name = `coffer_test_${randomBytes(6).toString('hex')}`;
  const template = migrated ? process.env.COFFER_TEST_POSTGRES_TEMPLATE : undefined;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${pg.escapeIdentifier(template)}` : ''}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropPostgresDatabase(adminUrl: string, url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** On PostgreSQL, the URL of a new database without Coffer's tables (a test migrates it, or needs it empty). */
export async function createTestDatabaseUrl(): Promise<string | undefined> {
  const adminUrl = process.env.COFFER_TEST_DATABASE_URL;
  return adminUrl ? createPostgresDatabase(adminUrl, false) : undefined;
}

/** On PostgreSQL, the URL of a new database migrated to this version, as a child process would find an installation. */
export async function createMigratedTestDatabaseUrl(): Promise<string | undefined> {
  const adminUrl = process.env.COFFER_TEST_DATABASE_URL;
  return adminUrl ? createPostgresDatabase(adminUrl, true) : undefined;
}

/** A PGlite data directory copied from the runner's migrated template (or left empty to be created). */
export function newPGliteDataDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-test-'));
  const dataDir = path.join(dir, 'db');
  const template = process.env.COFFER_TEST_PGLITE_TEMPLATE;
  if (template !== undefined && fs.existsSync(template)) copyTree(template, dataDir);
  return dataDir;
}

export async function openTestDatabase(poolSize = 10): Promise<TestDatabase> {
  const adminUrl = process.env.COFFER_TEST_DATABASE_URL;
  if (adminUrl) {
    const url = await createPostgresDatabase(adminUrl, true);
    const database = await openPostgres(url, poolSize);
    await migrate(database);
    return {
      ...database,
      url,
      dataDir: undefined,
      drop: async () => {
        await database.close();
        await dropPostgresDatabase(adminUrl, url);
      },
    };
  }
  const dataDir = newPGliteDataDir();
  // Tests that are not about durability skip the flush per commit; test/e2e/embedded-durability.test.ts runs
  // the durable default in its own processes. A test's database is small: it starts with a command's buffers.
  const database = await openPGlite(dataDir, 'os', undefined, 'command');
  await migrate(database);
  return {
    ...database,
    url: undefined,
    dataDir,
    drop: async () => {
      await database.close();
      removeTree(path.dirname(dataDir));
    },
  };
}

/** Opens a database a test prepared for a child process (a PostgreSQL URL or a PGlite data directory). */
export async function openExistingTestDatabase(location: { url?: string | undefined; dataDir?: string | undefined }): Promise<TestDatabase> {
  const adminUrl = process.env.COFFER_TEST_DATABASE_URL;
  if (location.url !== undefined && adminUrl) {
    const url = location.url;
    const database = await openPostgres(url, 10);
    await migrate(database);
    return { ...database, url, dataDir: undefined, drop: async () => {
      await database.close();
      await dropPostgresDatabase(adminUrl, url);
    } };
  }
  const dataDir = location.dataDir;
  if (dataDir === undefined) throw new Error('a PGlite test database needs its data directory');
  const database = await openPGlite(dataDir, 'os', undefined, 'command');
  await migrate(database);
  return { ...database, url: undefined, dataDir, drop: async () => database.close() };
}
