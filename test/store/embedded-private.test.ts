import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { openPGlite } from '../../src/store/open-database.ts';

// Goal: the embedded database's files are never within another local user's reach, not even while a first start
// creates them in a home directory that is open to others (PGlite creates its directory 0755 and its files 0666).
const onPostgres = process.env.COFFER_TEST_DATABASE_URL ? 'the embedded database is tested in the run on PGlite' : false;

/**
 * Another process looks at the open home directory as fast as it can while the database is created, and reports
 * every entry it saw that group or others could enter, read or write.
 */
const watcher = `
const fs = require('node:fs');
const path = require('node:path');
const [home, stop] = process.argv.slice(1);
const open = new Set();
let looks = 0;
while (!fs.existsSync(stop)) {
  looks += 1;
  let entries = [];
  try { entries = fs.readdirSync(home); } catch { continue; }
  for (const entry of entries) {
    try {
      const mode = fs.lstatSync(path.join(home, entry)).mode & 0o777;
      if ((mode & 0o077) !== 0) open.add(entry + ' ' + mode.toString(8));
    } catch {}
  }
}
process.stdout.write(JSON.stringify({ looks, open: [...open] }));
`;

describe('the embedded database is created private', { skip: onPostgres }, () => {
  for (const durability of ['fsync', 'os'] as const) {
    test(`${durability}: a first start in a home open to others shows no one else any of the database's files`, async () => {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-private-'));
      fs.chmodSync(home, 0o755);
      const dataDir = path.join(home, 'db');
      // A start killed while creating its database left this behind: it is removed.
      fs.mkdirSync(path.join(home, 'db.initdb-4242'), { mode: 0o700 });
      fs.writeFileSync(path.join(home, 'db.initdb-4242', 'PG_VERSION'), '17\n', { mode: 0o600 });
      const stop = path.join(os.tmpdir(), `coffer-private-stop-${process.pid}-${durability}`);
      const child = spawn(process.execPath, ['-e', watcher, home, stop], { stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      try {
        // The watcher is looking before the database is opened.
        await new Promise((resolve) => setTimeout(resolve, 200));
        const database = await openPGlite(dataDir, durability, undefined, 'command');
        try {
          const row = await sql<{ one: number }>`SELECT 1 AS one`.execute(database.db);
          assert.equal(row.rows[0]?.one, 1);
        } finally {
          await database.close();
        }
        fs.writeFileSync(stop, '');
        await exited;
        const seen = JSON.parse(output) as { looks: number; open: string[] };
        assert.ok(seen.looks > 10, `the watcher looked ${seen.looks} times`);
        assert.deepEqual(seen.open, [], 'entries another user could reach while the database was created');
        assert.equal(fs.statSync(dataDir).mode & 0o777, 0o700);
        assert.deepEqual(fs.readdirSync(home).sort(), ['db'], 'nothing is left beside the database');
        assert.ok(fs.existsSync(path.join(dataDir, 'PG_VERSION')));
      } finally {
        child.kill();
        fs.rmSync(stop, { force: true });
        fs.rmSync(home, { recursive: true, force: true });
      }
    });
  }
});
