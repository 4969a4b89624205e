// PAN scanner throughput on a few kinds of text: `node bin/run-ts.js bench/pan-scanner.ts [--mb 50]`.
// The scanner must keep up with database dumps and logs of tens of megabytes in the vault's leak tests.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { scanForCardNumbers } from '../src/vault/pan-scanner.ts';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '50' } } });
const bytes = Number(values.mb) * 1024 * 1024;

function repeated(line: string): Buffer {
  return Buffer.from(line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes), 'latin1');
}

const inputs: Array<[string, Buffer]> = [
  ['JSON log lines', repeated('{"t":"2024-05-01T10:00:00.123Z","id":"ch_3MtwBwLkdIwHu7ix28a3tqPa","amount":2000,"created":1680800504,"tel":"+1 415-555-0123"}\n')],
  ['log lines with a 16-digit grouped number each', repeated('2024-05-01 10:00:00 ref 1234 5678 9012 3456 ok\n')],
  ['random bytes', randomBytes(bytes)],
  ['one unbroken run of digits', Buffer.alloc(bytes, '5')],
  ['one endless chain of 3-digit groups', repeated('123-')],
];
for (const [name, input] of inputs) {
  const started = performance.now();
  const result = scanForCardNumbers(input);
  const elapsedMs = performance.now() - started;
  const rate = input.length / 1024 / 1024 / (elapsedMs / 1000);
  console.log(`${name.padEnd(48)} ${elapsedMs.toFixed(0).padStart(6)} ms  ${rate.toFixed(0).padStart(5)} MB/s  ${result.matches.length} matches${result.truncated ? ' (truncated)' : ''}`);
}
