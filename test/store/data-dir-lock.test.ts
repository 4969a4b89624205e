import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { lockDataDir } from '../../src/store/data-dir-lock.ts';

// Goal: one process at a time holds an embedded data directory. Two processes locking it at the same instant,
// whether no lock is there or a lock left by a killed process, never both get it (and one always does); a lock a
// live process holds is refused naming it; a release leaves nothing behind.
const onPostgres = process.env.COFFER_TEST_DATABASE_URL ? 'the embedded database is tested in the run on PGlite' : false;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const lockModule = pathToFileURL(path.join(root, 'src', 'store', 'data-dir-lock.ts')).href;

/**
 * A process that locks the directory when told, at a given instant of the monotonic clock (shared by every
 * process of the machine), so that two of them race as closely as they can; it holds the lock until told to
 * release it, and says what happened.
 */
const contender = `
import readline from 'node:readline';
const [moduleUrl, dataDir] = process.argv.slice(1);
const { lockDataDir } = await import(moduleUrl);
let release;
process.stdout.write('ready\\n');
for await (const line of readline.createInterface({ input: process.stdin })) {
  const [command, at] = line.split(' ');
  if (command === 'lock') {
    const start = BigInt(at);
    while (process.hrtime.bigint() < start) { /* the same instant as the other contender */ }
    try {
      release = lockDataDir(dataDir);
      process.stdout.write('acquired\\n');
    } catch (error) {
      process.stdout.write('refused ' + String(error && error.message).replaceAll('\\n', ' ') + '\\n');
    }
  } else if (command === 'release') {
    release?.();
    release = undefined;
    process.stdout.write('released\\n');
  } else if (command === 'exit') {
    process.exit(0);
  }
}
`;

interface Contender {
  child: ChildProcessWithoutNullStreams;
  /** The next line the contender writes. */
  next(): Promise<string>;
  send(line: string): void;
}

function startContender(dataDir: string): Contender {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', contender, lockModule, dataDir], { cwd: root });
  const pending: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const waiter = waiting.shift();
    if (waiter === undefined) pending.push(line);
    else waiter(line);
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  child.on('exit', (code) => {
    for (const waiter of waiting.splice(0)) waiter(`exited ${String(code)} ${stderr}`);
  });
  return {
    child,
    next: () => {
      const line = pending.shift();
      return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiting.push(resolve));
    },
    send: (line) => child.stdin.write(`${line}\n`),
  };
}

/** What a process killed while holding the lock left behind: the lock file as it wrote it, naming a dead process. */
async function staleLockContent(home: string): Promise<string> {
  const dataDir = path.join(home, 'killed');
  const killed = startContender(dataDir);
  assert.equal(await killed.next(), 'ready');
  killed.send(`lock ${process.hrtime.bigint()}`);
  assert.equal(await killed.next(), 'acquired');
  const exited = new Promise((resolve) => killed.child.on('exit', resolve));
  killed.child.kill('SIGKILL');
  await exited;
  const content = fs.readFileSync(`${dataDir}.lock`, 'utf8');
  fs.rmSync(`${dataDir}.lock`);
  return content;
}

describe('the embedded data directory lock', { skip: onPostgres }, () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-lock-'));
  const dataDir = path.join(home, 'db');
  const lockFile = `${dataDir}.lock`;
  let contenders: Contender[] = [];
  let stale = '';

  before(async () => {
    contenders = [startContender(dataDir), startContender(dataDir)];
    stale = await staleLockContent(home);
    for (const contender of contenders) assert.equal(await contender.next(), 'ready');
  });
  after(() => {
    for (const contender of contenders) contender.child.kill();
    fs.rmSync(home, { recursive: true, force: true });
  });

  test('a held lock is refused naming its holder, in this process and another; a release leaves nothing behind', async () => {
    const [other] = contenders;
    assert.ok(other !== undefined);
    const release = lockDataDir(dataDir);
    assert.throws(() => lockDataDir(dataDir), /the embedded database .*db is already open in this process/);
    other.send(`lock ${process.hrtime.bigint()}`);
    assert.equal(await other.next(), `refused the embedded database ${dataDir} is in use by process ${process.pid} (one process at a time may open it: stop that one first, or use PostgreSQL)`);
    release();
    assert.deepEqual(fs.readdirSync(home), []);
    other.send(`lock ${process.hrtime.bigint()}`);
    assert.equal(await other.next(), 'acquired');
    assert.throws(() => lockDataDir(dataDir), new RegExp(`is in use by process ${other.child.pid ?? 0} \\(one process at a time may open it: stop that one first, or use PostgreSQL\\)$`));
    other.send('release');
    assert.equal(await other.next(), 'released');
    assert.deepEqual(fs.readdirSync(home), [], 'nothing is left beside the data directory');
    // A lock left by a process that was killed is taken over.
    fs.writeFileSync(lockFile, stale);
    lockDataDir(dataDir)();
    assert.deepEqual(fs.readdirSync(home), []);
  });

  test('a takeover whose process was killed is finished by the next one; a live process\'s takeover is left alone', async () => {
    const [deadPid, token] = stale.trim().split(' ');
    assert.match(`${deadPid ?? ''} ${token ?? ''}`, /^\d+ [0-9a-f]{32}$/, 'the lock names its process and this taking of it');
    fs.writeFileSync(lockFile, stale);
    fs.writeFileSync(`${lockFile}.takeover-${token ?? ''}.1`, `${deadPid ?? ''}\n`);
    lockDataDir(dataDir)();
    assert.deepEqual(fs.readdirSync(home), [], 'the killed claimant\'s claim went with the stale lock');

    const liveClaimant = contenders[0]?.child.pid ?? 0;
    fs.writeFileSync(lockFile, stale);
    fs.writeFileSync(`${lockFile}.takeover-${token ?? ''}.1`, `${liveClaimant}\n`);
    assert.throws(() => lockDataDir(dataDir), /could not lock the embedded database .* in \d+ attempts/);
    assert.equal(fs.readFileSync(lockFile, 'utf8'), stale, 'the lock another process is taking over is left to it');
    assert.equal(fs.readFileSync(`${lockFile}.takeover-${token ?? ''}.1`, 'utf8'), `${liveClaimant}\n`);
    for (const name of fs.readdirSync(home)) fs.rmSync(path.join(home, name));
  });

  for (const start of ['no lock', 'a lock left by a killed process'] as const) {
    test(`two processes locking at the same instant from ${start}: exactly one holds it, every time`, async () => {
      const rounds = start === 'no lock' ? 200 : 150;
      const outcomes = new Map<string, number>();
      const wins = [0, 0];
      for (let round = 0; round < rounds; round += 1) {
        if (start !== 'no lock') fs.writeFileSync(lockFile, stale);
        // Both wait for the same instant, a little ahead: time enough for the message to reach them.
        const at = process.hrtime.bigint() + 5_000_000n;
        for (const contender of contenders) contender.send(`lock ${at}`);
        const answers = await Promise.all(contenders.map((contender) => contender.next()));
        const acquired = answers.filter((answer) => answer === 'acquired').length;
        const outcome = acquired === 1 ? 'one' : acquired === 2 ? 'both' : `none (${answers.join('; ')})`;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        answers.forEach((answer, index) => { if (answer === 'acquired') wins[index] = (wins[index] ?? 0) + 1; });
        for (const contender of contenders) contender.send('release');
        await Promise.all(contenders.map((contender) => contender.next()));
        fs.rmSync(lockFile, { force: true });
      }
      assert.deepEqual(Object.fromEntries(outcomes), { one: rounds }, `outcomes of ${rounds} rounds`);
      // Each won some rounds: they did race, rather than one always coming first.
      assert.ok(wins.every((count) => count > 0), `rounds won by each: ${wins.join(', ')}`);
      assert.deepEqual(fs.readdirSync(home), [], 'nothing is left beside the data directory');
    });
  }
});
