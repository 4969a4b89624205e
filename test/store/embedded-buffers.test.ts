import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { openPGlite, type EmbeddedUse } from '../../src/store/open-database.ts';

// Goal: a one-shot `coffer` command opens the embedded database with small shared buffers (setting them up is
// most of its start-up), a running server with PostgreSQL's default, whether commits are flushed or not.
const onPostgres = process.env.COFFER_TEST_DATABASE_URL ? 'the embedded database is tested in the run on PGlite' : false;

describe('embedded database buffers', { skip: onPostgres }, () => {
  for (const durability of ['fsync', 'os'] as const) {
    test(`${durability}: a command gets 16 MB of shared buffers, a server 128 MB`, async () => {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-buffers-'));
      // The migrated database the test runner prepared, when there is one, saves creating a cluster.
      const template = process.env.COFFER_TEST_PGLITE_TEMPLATE;
      if (template !== undefined) fs.cpSync(template, path.join(home, 'db'), { recursive: true });
      try {
        const sizes: Record<string, string> = {};
        for (const use of ['command', 'server'] as EmbeddedUse[]) {
          const database = await openPGlite(path.join(home, 'db'), durability, undefined, use);
          try {
            const row = await sql<{ size: string }>`SELECT current_setting('shared_buffers') AS size`.execute(database.db);
            sizes[use] = row.rows[0]?.size ?? '';
          } finally {
            await database.close();
          }
        }
        assert.deepEqual(sizes, { command: '16MB', server: '128MB' });
      } finally {
        fs.rmSync(home, { recursive: true, force: true });
      }
    });
  }
});
