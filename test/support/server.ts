import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import Stripe from 'stripe';
import { startCoffer, type RunningCoffer } from '../../src/app/start-coffer.ts';
import { prepareSandboxKeys } from '../../src/connectors/registry.ts';
import { createApiKey, createMerchant } from '../../src/identity/merchants.ts';
import type { Clock } from '../../src/platform/clock.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { openTestDatabase, type TestDatabase } from './database.ts';
import { removeTree } from './files.ts';

export interface TestServer {
  coffer: RunningCoffer;
  database: TestDatabase;
  url: string;
  port: number;
  ca: string;
  agent: https.Agent;
  merchantId: string;
  secretKey: string;
  publishableKey: string;
  stripe: Stripe;
  /** Another merchant, to prove isolation. */
  otherSecretKey: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  database?: TestDatabase;
  clock?: Clock;
  providerTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  poolSize?: number;
  /** Environment for the server's configuration (COFFER_WEBHOOKS_ALLOW_PRIVATE, …). */
  configEnv?: NodeJS.ProcessEnv;
}

export function stripeClient(server: { port: number; agent: https.Agent }, key: string, options: Partial<Stripe.StripeConfig> = {}): Stripe {
  return new Stripe(key, {
    host: '127.0.0.1',
    port: server.port,
    protocol: 'https',
    httpAgent: server.agent,
    maxNetworkRetries: 2,
    telemetry: false,
    ...options,
  });
}

/**
 * Tests send requests as fast as the machine allows, from one address with one key; the rate-limit tests
 * (test/security/rate-limits.test.ts) set the budgets they test.
 */
export const unlimitedRates = { COFFER_RATE_LIMIT_PER_KEY: '100000000', COFFER_RATE_LIMIT_PER_ADDRESS: '100000000' };

let sandboxKeyFiles: Promise<Array<[string, string]>> | undefined;

/**
 * Gives a new home directory the wallet sandboxes' keys that a first start would make: made once per test
 * process and copied, since four RSA keys per server start add up over the suite. Files already there stay.
 */
export async function seedSandboxKeys(home: string): Promise<void> {
  sandboxKeyFiles ??= (async () => {
    const made = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-sandbox-keys-'));
    try {
      (await prepareSandboxKeys(made))();
      const dir = path.join(made, 'keys');
      return fs.readdirSync(dir).map((name): [string, string] => [name, fs.readFileSync(path.join(dir, name), 'utf8')]);
    } finally {
      removeTree(made);
    }
  })();
  const dir = path.join(home, 'keys');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const [name, text] of await sandboxKeyFiles) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) fs.writeFileSync(file, text, { mode: 0o600 });
  }
}

/** A running Coffer on an ephemeral port with its own database, home directory and two merchants. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const homeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-home-'));
  await seedSandboxKeys(homeDir);
  const database = options.database ?? (await openTestDatabase(options.poolSize));
  const config = loadConfig({ COFFER_HOME: homeDir, COFFER_PORT: '0', COFFER_INTERNAL_PORT: '0', COFFER_LOG_LEVEL: 'silent', COFFER_JOBS: 'false', ...unlimitedRates,
    // A loaded test machine can be slower than the production budget; the tests that are about the budget set their own.
    COFFER_RISK_VELOCITY_BUDGET_MS: '10000', COFFER_RISK_MODEL_BUDGET_US: '1000000', ...options.configEnv });
  const coffer = await startCoffer({
    config,
    database,
    env: options.env ?? {},
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.providerTimeoutMs === undefined ? {} : { providerTimeoutMs: options.providerTimeoutMs }),
  });
  const merchantId = await createMerchant(database.db, 'Test merchant');
  const secret = await createApiKey(database.db, merchantId, 'secret', false);
  const publishable = await createApiKey(database.db, merchantId, 'publishable', false);
  const other = await createMerchant(database.db, 'Other merchant');
  const otherSecret = await createApiKey(database.db, other, 'secret', false);
  const ca = fs.readFileSync(coffer.certFile ?? '', 'utf8');
  const agent = new https.Agent({ ca, keepAlive: true, maxSockets: 256 });
  const server = { port: coffer.port, agent };
  return {
    coffer,
    database,
    url: coffer.url,
    port: coffer.port,
    ca,
    agent,
    merchantId,
    secretKey: secret.key.reveal(),
    publishableKey: publishable.key.reveal(),
    stripe: stripeClient(server, secret.key.reveal()),
    otherSecretKey: otherSecret.key.reveal(),
    close: async () => {
      agent.destroy();
      await coffer.close();
      if (options.database === undefined) await database.drop();
      removeTree(homeDir);
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: Record<string, unknown>;
}

/** A request without the SDK, to test exactly what goes over the wire. */
export function rawRequest(
  server: { port: number; agent: https.Agent },
  method: string,
  urlPath: string,
  options: {
    key?: string;
    body?: string | Buffer;
    contentType?: string;
    headers?: Record<string, string>;
    /**
     * A body the server refuses by its length alone: the server answers and closes the connection while the body
     * is still being sent, so the client may see the connection reset instead of the answer (status 0 then).
     */
    resetAllowed?: boolean;
    /** The client's address (any of 127.0.0.0/8), to be another client as the server sees it. */
    localAddress?: string;
  } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
    if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/x-www-form-urlencoded';
      headers['content-length'] = String(Buffer.byteLength(options.body));
    }
    const request = https.request(
      { host: '127.0.0.1', port: server.port, method, path: urlPath, agent: server.agent, headers, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(body) as Record<string, unknown>;
          } catch {
            // Not JSON: the test looks at `body`.
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body, json });
        });
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (options.resetAllowed === true && (error.code === 'EPIPE' || error.code === 'ECONNRESET')) resolve({ status: 0, headers: {}, body: '', json: {} });
      else reject(error);
    });
    if (options.body !== undefined) request.write(options.body);
    request.end();
  });
}
