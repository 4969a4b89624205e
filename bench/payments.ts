// Payment throughput on PostgreSQL, against PostgreSQL's own banking benchmark on the same server.
//
//   npm run bench                      # 32 clients, 20 s after 20 s of warm-up, then pgbench TPC-B (scale 10, 16 clients, 20 s)
//   npm run bench -- --clients 64 --seconds 30 --one-call
//   npm run bench -- --skip-pgbench --profile /tmp/prof   # a CPU profile of Coffer, written when it stops
//   npm run bench -- --floor 1         # the same load against bench/floor-server.ts instead of Coffer
//
// Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) names a server where the
// benchmark may create and drop its own databases. Coffer runs as its own process (`coffer start`), as deployed;
// the load comes from this process over HTTPS with keep-alive. Each payment is a create and a confirm (automatic
// capture), unless --one-call creates and confirms in one request.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '20' },
    'one-call': { type: 'boolean', default: false },
    'skip-pgbench': { type: 'boolean', default: false },
    'pool-size': { type: 'string', default: '16' },
    // Writes a V8 CPU profile of the Coffer process into this directory when it stops (open it in Chrome's DevTools).
    profile: { type: 'string' },
    // Drives bench/floor-server.ts instead of Coffer: a bare HTTPS server doing this many durable INSERTs per
    // request, the least any server answering the same two requests per payment could cost on this machine.
    floor: { type: 'string' },
  },
});
if (values.floor !== undefined && !/^\d{1,2}$/.test(values.floor)) {
  console.error(`--floor takes the number of INSERTs per request, 0 to 99; got ${JSON.stringify(values.floor)}`);
  process.exit(2);
}
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const warmupSeconds = Number(values.warmup);
const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function databaseUrl(name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function startCoffer(url: string, home: string): Promise<{ port: number; agent: https.Agent; key: string; pid: number | undefined; stop: () => Promise<void> }> {
  const profiling = values.profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values.profile)}`];
  const command = values.floor === undefined ? [path.join(root, 'bin/coffer.js'), 'start'] : [path.join(root, 'bin/run-ts.js'), path.join(root, 'bench/floor-server.ts')];
  const child = spawn(process.execPath, [...profiling, ...command], {
    env: { ...process.env, COFFER_FLOOR_STATEMENTS: values.floor ?? '', DATABASE_URL: url, COFFER_HOME: home, COFFER_PORT: '0', COFFER_INTERNAL_PORT: '0', COFFER_LOG_LEVEL: 'warn', COFFER_JOBS: 'false', COFFER_DB_POOL_SIZE: values['pool-size'],
      // The benchmark measures payments, not the rate limiter: one key sends far more than its default budget.
      COFFER_RATE_LIMIT_PER_KEY: '100000000', COFFER_RATE_LIMIT_PER_ADDRESS: '100000000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /API\s+https:\/\/[^:]+:(\d+)\/v1/.exec(output);
      if (match !== null && output.includes('Ready in')) resolve(Number(match[1]));
    });
    child.on('exit', (code) => reject(new Error(`coffer exited with ${code}: ${output}`)));
  });
  const demo = values.floor === undefined
    ? JSON.parse(fs.readFileSync(path.join(home, 'demo-merchant.json'), 'utf8')) as { secretKey: string }
    : { secretKey: 'sk_test_floor' };
  const ca = fs.readFileSync(path.join(home, 'tls', 'localhost.crt'));
  const agent = new https.Agent({ ca, keepAlive: true, maxSockets: clients });
  return {
    port,
    agent,
    key: demo.secretKey,
    pid: child.pid,
    stop: async () => {
      agent.destroy();
      child.kill('SIGTERM');
      await new Promise((resolve) => child.on('exit', resolve));
    },
  };
}

function post(target: { port: number; agent: https.Agent; key: string }, pathname: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      {
        host: '127.0.0.1',
        port: target.port,
        method: 'POST',
        path: pathname,
        agent: target.agent,
        headers: {
          authorization: `Bearer ${target.key}`,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          'idempotency-key': `bench-${process.hrtime.bigint()}-${Math.random()}`,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function pay(target: { port: number; agent: https.Agent; key: string }): Promise<boolean> {
  if (values['one-call']) {
    const response = await post(target, '/v1/payment_intents', 'amount=2000&currency=usd&payment_method=pm_card_visa&capture_method=automatic&confirm=true');
    return response.status === 200 && (JSON.parse(response.body) as { status: string }).status === 'succeeded';
  }
  const created = await post(target, '/v1/payment_intents', 'amount=2000&currency=usd&payment_method=pm_card_visa&capture_method=automatic');
  if (created.status !== 200) return false;
  const id = (JSON.parse(created.body) as { id: string }).id;
  const confirmed = await post(target, `/v1/payment_intents/${id}/confirm`, '');
  return confirmed.status === 200 && (JSON.parse(confirmed.body) as { status: string }).status === 'succeeded';
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** CPU time so far, in ms: of Coffer's process, of each PostgreSQL process on this machine, of this process, of the machine. */
interface CpuSnapshot {
  coffer: number;
  postgres: Map<number, number>;
  load: number;
  machineBusy: number;
  machineTotal: number;
}

// USER_HZ, the unit of /proc times: 100 on every Linux architecture Node runs on.
const ticksPerSecond = 100;

function processCpuMs(pid: number): { comm: string; ms: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    return { comm: stat.slice(stat.indexOf('(') + 1, close), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond };
  } catch {
    return undefined;
  }
}

/** Undefined where /proc is not there (not Linux): the benchmark then prints no CPU figures. */
function cpuSnapshot(cofferPid: number | undefined): CpuSnapshot | undefined {
  if (cofferPid === undefined || !fs.existsSync('/proc/stat')) return undefined;
  // PostgreSQL's processes are only visible here when it runs on this machine.
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(adminUrl).hostname)) return undefined;
  const postgres = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const found = processCpuMs(Number(entry));
    if (found?.comm === 'postgres') postgres.set(Number(entry), found.ms);
  }
  // user, nice, system, idle, iowait, irq, softirq, steal; guest time is already in user and nice.
  const cpu = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  const total = cpu.reduce((sum, value) => sum + value, 0);
  const usage = process.cpuUsage();
  return {
    coffer: processCpuMs(cofferPid)?.ms ?? 0,
    postgres,
    load: (usage.user + usage.system) / 1000,
    machineBusy: ((total - idle) * 1000) / ticksPerSecond,
    machineTotal: (total * 1000) / ticksPerSecond,
  };
}

/** CPU per payment (tried, including failed ones) between two snapshots. */
function cpuPerPayment(before: CpuSnapshot, after: CpuSnapshot, payments: number): string {
  let postgres = 0;
  // A process started within the window counts whole; one that ended within it is missed (autovacuum workers).
  for (const [pid, ms] of after.postgres) postgres += ms - (before.postgres.get(pid) ?? 0);
  const per = (ms: number) => (ms / Math.max(payments, 1)).toFixed(2);
  const busy = (100 * (after.machineBusy - before.machineBusy)) / Math.max(after.machineTotal - before.machineTotal, 1);
  return `${values.floor === undefined ? 'Coffer' : 'floor server'} ${per(after.coffer - before.coffer)} ms, PostgreSQL ${per(postgres)} ms, load generator ${per(after.load - before.load)} ms (from /proc; all cores ${busy.toFixed(0)} % busy)`;
}

async function loadCoffer(target: { port: number; agent: https.Agent; key: string; pid: number | undefined }, database: string) {
  const latenciesMs: number[] = [];
  let failures = 0;
  let measuring = false;
  const start = Date.now();
  const warmupEnd = start + warmupSeconds * 1000;
  const end = warmupEnd + seconds * 1000;
  // The database starts empty. A quarter into the warm-up its statistics are brought up to date, as autovacuum
  // keeps them in a database that has been running; Coffer makes its plans again from them within the rest of the
  // warm-up (see src/store/prepared-statements.ts).
  const analyzed = (async () => {
    await new Promise((resolve) => setTimeout(resolve, (warmupSeconds * 1000) / 4));
    const client = new pg.Client({ connectionString: databaseUrl(database) });
    await client.connect();
    try {
      await client.query('ANALYZE');
    } finally {
      await client.end();
    }
  })();
  // CPU is sampled over the measured window only.
  let cpuBefore: CpuSnapshot | undefined;
  let cpuAfter: CpuSnapshot | undefined;
  const sampled = Promise.all([
    new Promise<void>((resolve) => setTimeout(() => { cpuBefore = cpuSnapshot(target.pid); resolve(); }, warmupEnd - Date.now())),
    new Promise<void>((resolve) => setTimeout(() => { cpuAfter = cpuSnapshot(target.pid); resolve(); }, end - Date.now())),
  ]);
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < end) {
        const began = performance.now();
        const ok = await pay(target).catch(() => false);
        const now = Date.now();
        measuring = now >= warmupEnd;
        if (!measuring || now > end) continue;
        if (ok) latenciesMs.push(performance.now() - began);
        else failures += 1;
      }
    }),
  );
  await analyzed;
  await sampled;
  latenciesMs.sort((a, b) => a - b);
  return {
    cpu: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuPerPayment(cpuBefore, cpuAfter, latenciesMs.length + failures),
    paymentsPerSecond: latenciesMs.length / seconds,
    payments: latenciesMs.length,
    failures,
    p50: percentile(latenciesMs, 50),
    p99: percentile(latenciesMs, 99),
  };
}

function pgbenchTps(name: string): number {
  const url = new URL(databaseUrl(name));
  const args = ['-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username || 'postgres')];
  const init = spawnSync('pgbench', [...args, '-i', '-s', '10', '-q', name], { encoding: 'utf8', env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) } });
  if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
  const run = spawnSync('pgbench', [...args, '-c', '16', '-j', '2', '-T', String(seconds), name], { encoding: 'utf8', env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) } });
  if (run.status !== 0) throw new Error(`pgbench failed: ${run.stderr}`);
  const match = /tps = ([\d.]+) \(without initial connection time\)/.exec(run.stdout);
  if (match === null) throw new Error(`could not read pgbench's result:\n${run.stdout}`);
  return Number(match[1]);
}

async function main(): Promise<void> {
  const stamp = Date.now().toString(36);
  const cofferDb = `coffer_bench_${stamp}`;
  const pgbenchDb = `coffer_pgbench_${stamp}`;
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-bench-'));
  await admin(`CREATE DATABASE ${cofferDb}`);
  const subject = values.floor === undefined ? 'Coffer payments' : `Floor (bench/floor-server.ts, no Coffer: ${values.floor} durable INSERTs per request)`;
  console.log(`${subject}: ${clients} clients, ${seconds} s after ${warmupSeconds} s warm-up, ${values['one-call'] ? 'create+confirm in one request' : 'create then confirm (two requests)'}, pool ${values['pool-size']}, on ${new URL(adminUrl).host}`);
  try {
    const coffer = await startCoffer(databaseUrl(cofferDb), home);
    let result;
    try {
      result = await loadCoffer(coffer, cofferDb);
    } finally {
      await coffer.stop();
    }
    console.log(`  payments/s   ${result.paymentsPerSecond.toFixed(1)}  (${result.payments} payments, ${result.failures} failed)`);
    console.log(`  latency      p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms (whole payment)`);
    if (result.cpu !== undefined) console.log(`  CPU/payment  ${result.cpu}`);
    if (values['skip-pgbench']) return;
    await admin(`CREATE DATABASE ${pgbenchDb}`);
    console.log(`pgbench TPC-B: scale 10, 16 clients, 2 threads, ${seconds} s`);
    const tps = pgbenchTps(pgbenchDb);
    console.log(`  tps          ${tps.toFixed(1)}`);
    console.log(`ratio (${values.floor === undefined ? 'Coffer ' : 'floor '}payments/s ÷ pgbench tps): ${(result.paymentsPerSecond / tps).toFixed(2)}`);
  } finally {
    await admin(`DROP DATABASE IF EXISTS ${cofferDb} WITH (FORCE)`);
    await admin(`DROP DATABASE IF EXISTS ${pgbenchDb} WITH (FORCE)`);
    fs.rmSync(home, { recursive: true, force: true });
  }
}

await main();
