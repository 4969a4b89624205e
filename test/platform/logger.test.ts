import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/platform/logger.ts';

// Goal: an error logged with the values a database driver attaches (a statement's parameters) never puts them in a
// log line, while what says what went wrong stays.
test('an error\'s statement parameters stay out of the log; its message, code and stack stay in', () => {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done(); } });
  const logger = createLogger('error', sink);
  const error = Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
    code: '22021', parameters: ['pi_123_secret_abc', 'Ada Lovelace'], params: ['pi_123_secret_abc'], values: ['Ada Lovelace'],
    detail: 'Failing row contains (pi_123, pi_123_secret_abc, Ada Lovelace).',
  });
  logger.error({ err: error }, 'unexpected error');
  const line = JSON.parse(lines.join('')) as { err: Record<string, unknown> };
  assert.equal(line.err.message, 'invalid byte sequence for encoding "UTF8": 0x00');
  assert.equal(line.err.code, '22021');
  assert.match(String(line.err.stack), /logger\.test\.ts/);
  assert.doesNotMatch(lines.join(''), /secret_abc|Lovelace/);
});
