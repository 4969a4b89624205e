import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import { after } from 'node:test';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seedSandboxKeys, unlimitedRates } from './server.ts';
import { copyTree } from './files.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// A test that fails before it stops its server would leave the process running, and the test file with it (its
// pipes keep the file's process alive): whatever is still running when the file's tests end is killed.
const running = new Set<ChildProcess>();
after(() => {
  for (const child of running) child.kill('SIGKILL');
});

export interface CofferProcess {
  child: ChildProcess;
  port: number;
  agent: https.Agent;
  secretKey: string;
  output(): string;
  /** Resolves when the process has exited, with its exit code or signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Runs `coffer start` as its own process, as an operator would, with its home directory (and embedded database
 * there, unless DATABASE_URL is given). Resolves once it prints that it is ready.
 */
export async function spawnCoffer(home: string, env: NodeJS.ProcessEnv = {}, readyTimeoutMs = 60_000): Promise<CofferProcess> {
  const template = process.env.COFFER_TEST_PGLITE_TEMPLATE;
  await seedSandboxKeys(home);
  const dataDir = path.join(home, 'db');
  if (env.DATABASE_URL === undefined && template !== undefined && !fs.existsSync(dataDir)) {
    copyTree(template, dataDir);
  }
  const child = spawn(process.execPath, [path.join(root, 'bin/coffer.js'), 'start'], {
    cwd: root,
    env: { PATH: process.env.PATH, COFFER_HOME: home, COFFER_PORT: '0', COFFER_INTERNAL_PORT: '0', COFFER_LOG_LEVEL: 'warn', ...unlimitedRates, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coffer did not start in time:\n${output}`)), readyTimeoutMs);
    const check = () => {
      const match = /API\s+https:\/\/[^:]+:(\d+)\/v1/.exec(output);
      if (match !== null && output.includes('Ready in')) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on('data', check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`coffer exited (${code ?? signal}) before it was ready:\n${output}`));
    });
  });
  const demo = JSON.parse(fs.readFileSync(path.join(home, 'demo-merchant.json'), 'utf8')) as { secretKey: string };
  const ca = fs.readFileSync(path.join(home, 'tls', 'localhost.crt'), 'utf8');
  const agent = new https.Agent({ ca, keepAlive: false });
  return {
    child,
    port,
    agent,
    secretKey: demo.secretKey,
    output: () => output,
    exited,
    kill: async (signal: NodeJS.Signals = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
