import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { CofferError, errorCatalog, errorDocUrl, type ErrorCode } from '../../src/domain/errors.ts';
import { errorObject } from '../../src/objects/error.ts';

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

// Goal: `doc_url` points at Stripe's page only for the codes Stripe documents; Coffer's own codes have none.
test('an error names Stripe\'s page for its code only where Stripe has one', () => {
  const body = (code: ErrorCode) => errorObject(new CofferError(code, 'x'), 'req_1').error as Record<string, unknown>;
  assert.equal(body('card_declined').doc_url, 'https://stripe.com/docs/error-codes/card-declined');
  assert.equal(body('parameter_unknown').doc_url, 'https://stripe.com/docs/error-codes/parameter-unknown');
  for (const code of ['password_too_weak', 'payment_limit_exceeded', 'request_signature_invalid', 'authentication_failed'] as const) {
    assert.equal('doc_url' in body(code), false, code);
  }
  for (const code of Object.keys(errorCatalog)) {
    const url = errorDocUrl(code);
    if (url !== undefined) assert.equal(url, `https://stripe.com/docs/error-codes/${code.replaceAll('_', '-')}`);
  }
});
