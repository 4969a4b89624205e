#!/usr/bin/env node
// Runs the test suite with node's built-in runner: `npm test` (everything) or `npm test -- <files…>`.
// Without COFFER_TEST_DATABASE_URL the tests use the embedded database; a migrated PGlite data directory is
// prepared once here and copied by each test file, which saves PostgreSQL's initdb for every file.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

function findTests(dir) {
  const found = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(full));
    else if (entry.name.endsWith('.test.ts')) found.push(full);
  }
  return found.sort();
}

const requested = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const flags = process.argv.slice(2).filter((arg) => arg.startsWith('-'));
const files = requested.length > 0 ? requested.map((file) => path.resolve(file)) : findTests(path.join(root, 'test'));

const env = { ...process.env };
let templateDir;
if (!env.COFFER_TEST_DATABASE_URL) {
  templateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-template-'));
  const dataDir = path.join(templateDir, 'db');
  const prepared = spawnSync(process.execPath, [path.join(root, 'bin/run-ts.js'), path.join(root, 'scripts/prepare-test-database.ts'), dataDir], {
    stdio: 'inherit',
  });
  if (prepared.status !== 0) process.exit(prepared.status ?? 1);
  env.COFFER_TEST_PGLITE_TEMPLATE = dataDir;
} else {
  // The roles the migrations create belong to the whole cluster: made once here, so that test files migrating
  // their own databases at the same time do not race to create them on a server that has never had Coffer.
  const client = new pg.Client({ connectionString: env.COFFER_TEST_DATABASE_URL });
  await client.connect();
  try {
    for (const role of ['coffer_vault', 'coffer_app']) {
      await client.query(`DO $$ BEGIN CREATE ROLE ${role} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
    }
  } finally {
    await client.end();
  }
}
console.log(`Running ${files.length} test files on ${env.COFFER_TEST_DATABASE_URL ? 'PostgreSQL' : 'PGlite (embedded)'}`);
const result = spawnSync(process.execPath, [
  '--import',
  'tsx',
  '--test',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  `--test-reporter=${path.join(root, 'scripts/test-timing-reporter.js')}`,
  '--test-reporter-destination=stdout',
  ...flags,
  ...files,
], {
  stdio: 'inherit',
  env,
  cwd: root,
});
if (templateDir !== undefined) fs.rmSync(templateDir, { recursive: true, force: true });
process.exit(result.status ?? 1);
