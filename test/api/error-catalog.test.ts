import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { errorCatalog } from '../../src/domain/errors.ts';

// Goal: docs/errors.md lists exactly the error codes Coffer can return, each with its real status and type.
test('docs/errors.md and the error catalog agree', () => {
  const doc = fs.readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \| ([a-z_]+) \|/gm)].map((match) => ({
    code: match[1],
    httpStatus: Number(match[2]),
    type: match[3],
  }));
  const documented = new Map(rows.map((row) => [row.code, row]));
  assert.equal(documented.size, rows.length, 'no code is documented twice');
  assert.deepEqual([...documented.keys()].sort(), Object.keys(errorCatalog).sort());
  for (const [code, entry] of Object.entries(errorCatalog)) {
    assert.deepEqual(documented.get(code), { code, httpStatus: entry.httpStatus, type: entry.type }, code);
  }
});
