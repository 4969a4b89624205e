// Webhook delivery: how many events per second Coffer delivers to a local receiver, and the lag from the
// commit of a change to the arrival of its event.
//
//   npm run bench:webhooks                  # 2,000-event backlog, then 20 s of steady traffic
//   npm run bench:webhooks -- --backlog 5000 --seconds 30 --rate 50
//
// Runs `coffer start` on a fresh PostgreSQL database (BENCH_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/postgres), with a receiver on loopback that answers 200 at once.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values } = parseArgs({
  options: {
    backlog: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '20' },
    rate: { type: 'string', default: '40' },
  },
});
const backlog = Number(values.backlog);
const seconds = Number(values.seconds);
const ratePerSecond = Number(values.rate);
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

interface Coffer { port: number; agent: https.Agent; key: string; stop: () => Promise<void> }

async function startCoffer(databaseUrl: string, home: string, jobs: boolean): Promise<Coffer> {
  const child = spawn(process.execPath, [path.join(root, 'bin/coffer.js'), 'start'], {
    env: { ...process.env, DATABASE_URL: databaseUrl, COFFER_HOME: home, COFFER_PORT: '0', COFFER_INTERNAL_PORT: '0', COFFER_LOG_LEVEL: 'warn',
      COFFER_JOBS: jobs ? 'true' : 'false', COFFER_WEBHOOKS_ALLOW_PRIVATE: 'true',
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
  const key = (JSON.parse(fs.readFileSync(path.join(home, 'demo-merchant.json'), 'utf8')) as { secretKey: string }).secretKey;
  const agent = new https.Agent({ ca: fs.readFileSync(path.join(home, 'tls', 'localhost.crt')), keepAlive: true, maxSockets: 16 });
  return { port, agent, key, stop: async () => { agent.destroy(); child.kill('SIGTERM'); await new Promise((resolve) => child.on('exit', resolve)); } };
}

function post(coffer: Coffer, pathname: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request({ host: '127.0.0.1', port: coffer.port, method: 'POST', path: pathname, agent: coffer.agent,
      headers: { authorization: `Bearer ${coffer.key}`, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

const arrivals = new Map<string, number>();
function startReceiver(): Promise<{ url: string; close: () => void }> {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const event = JSON.parse(Buffer.concat(chunks).toString()) as { data: { object: { id: string } } };
      if (!arrivals.has(event.data.object.id)) arrivals.set(event.data.object.id, performance.now());
      response.writeHead(200).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const address = server.address() as { port: number };
    resolve({ url: `http://127.0.0.1:${address.port}/hooks`, close: () => server.close() });
  }));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function createIntents(coffer: Coffer, count: number, concurrency: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      next += 1;
      await post(coffer, '/v1/payment_intents', 'amount=1000&currency=usd');
    }
  }));
}

async function main(): Promise<void> {
  const name = `coffer_whbench_${Date.now().toString(36)}`;
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-whbench-'));
  const receiver = await startReceiver();
  await admin(`CREATE DATABASE ${name}`);
  try {
    // A backlog of events committed while nothing delivers, then the time to deliver it all.
    let coffer = await startCoffer(url.toString(), home, false);
    await post(coffer, '/v1/webhook_endpoints', `url=${encodeURIComponent(receiver.url)}&enabled_events[]=payment_intent.created`);
    await createIntents(coffer, backlog, 16);
    await coffer.stop();
    const started = performance.now();
    coffer = await startCoffer(url.toString(), home, true);
    const startupMs = performance.now() - started;
    const drainStart = performance.now();
    while (arrivals.size < backlog && performance.now() - drainStart < 300_000) await new Promise((resolve) => setTimeout(resolve, 50));
    const drainSeconds = (performance.now() - drainStart) / 1000;
    console.log(`Backlog: ${arrivals.size} of ${backlog} events delivered in ${drainSeconds.toFixed(1)} s after start-up (${(startupMs / 1000).toFixed(1)} s): ${(arrivals.size / drainSeconds).toFixed(0)} events/s`);

    // Steady traffic at a fixed rate: lag from the create's acknowledgement (its commit) to the event's arrival.
    const acknowledged = new Map<string, number>();
    const end = performance.now() + seconds * 1000;
    const interval = 1000 / ratePerSecond;
    const sends: Array<Promise<void>> = [];
    for (let at = performance.now(); at < end; at += interval) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())));
      sends.push(post(coffer, '/v1/payment_intents', 'amount=1000&currency=usd').then((response) => {
        acknowledged.set((JSON.parse(response.body) as { id: string }).id, performance.now());
      }));
    }
    await Promise.all(sends);
    const waitUntil = performance.now() + 30_000;
    while ([...acknowledged.keys()].some((id) => !arrivals.has(id)) && performance.now() < waitUntil) await new Promise((resolve) => setTimeout(resolve, 50));
    const lags = [...acknowledged].map(([id, at]) => (arrivals.get(id) ?? NaN) - at).filter((lag) => !Number.isNaN(lag)).sort((a, b) => a - b);
    console.log(`Steady: ${ratePerSecond} events/s for ${seconds} s: ${lags.length} of ${acknowledged.size} delivered; lag from commit to arrival p50 ${percentile(lags, 50).toFixed(0)} ms, p99 ${percentile(lags, 99).toFixed(0)} ms`);
    await coffer.stop();
  } finally {
    receiver.close();
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    fs.rmSync(home, { recursive: true, force: true });
  }
}

await main();
