import fs from 'node:fs';
import path from 'node:path';
import type { RateLimitSettings } from '../api/rate-limits.ts';
import { limits } from '../limits.ts';
import type { KekSettings } from '../vault/open-kek.ts';
import { readLiveAccounts, type LiveAccounts } from '../connectors/live-accounts.ts';
import { ConfigError } from './config-error.ts';

/** Coffer's configuration, read once from the environment at start. */
export interface Config {
  /** Directory for Coffer's own files: embedded database, key file, TLS certificate. */
  homeDir: string;
  /** PostgreSQL connection string; absent means the embedded PGlite database under `homeDir`. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /** Embedded database only: `fsync` flushes every commit to disk (power-loss safe), `os` leaves it to the OS. */
  embeddedDurability: 'fsync' | 'os';
  publicHost: string;
  publicPort: number;
  /** The internal listener (staff API): loopback unless configured otherwise. */
  internalHost: string;
  internalPort: number;
  /** A CA certificate file: the internal listener then accepts only clients with a certificate it issued (mutual TLS). */
  internalClientCaFile: string | undefined;
  /** The origin staff browsers use for the internal listener (passkeys are bound to it); default https://localhost:<port>. */
  staffOrigin: string | undefined;
  /** The public listener's URL as providers and shoppers reach it (notifications, return pages); default: the listener's own. */
  publicUrl: string | undefined;
  /** A staff refund taking a payment's refunded total above this amount (minor units) needs a second person's approval. */
  fourEyesRefundAbove: number;
  /** Paths of a certificate and key to serve; absent means a self-signed pair generated under `homeDir`. */
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  /** Serve plain HTTP instead of HTTPS. Only for tests behind a TLS-terminating proxy; `coffer doctor` flags it. */
  tlsDisabled: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Run background jobs (recovery, expiry, reaping) in this process. */
  jobsEnabled: boolean;
  /** Test mode only: webhook endpoints may be loopback or private addresses (local development). */
  webhooksAllowPrivate: boolean;
  /** Delays before each retry of a failed webhook delivery, and how long a delivery is leased to its sender. */
  webhookTiming: WebhookTiming;
  /** Where the vault's key-encryption keys live: key files under `homeDir`, or an HSM through PKCS#11. */
  kek: KekSettings;
  /** The operator's accounts at Alipay and WeChat Pay for live mode (keys read from files); absent: not configured. */
  liveAccounts: LiveAccounts;
  /** Serve the provider sandboxes' fault controls over HTTP (a shared test environment); off by default. */
  sandboxControls: boolean;
  /** Requests per window per API key and per client address; counted in Redis when `redisUrl` is set. */
  rateLimits: RateLimitSettings;
  risk: RiskSettings;
  /** The hosted checkout's card frame origin (the vault's); default: the public URL's other loopback name. */
  cardFrameOrigin: string | undefined;
  /** Live mode's gateway to the operator's SMS and email providers (connectors/shopper-notifier.ts); absent: none. */
  shopperNotify: { url: string; secret: string } | undefined;
}

export interface WebhookTiming {
  retryDelaysMs: readonly number[];
  /** A delivery whose sender died is sent again this long after it was claimed. */
  leaseMs: number;
}

/**
 * `COFFER_WEBHOOK_RETRY_SECONDS` (the delays before each retry, in seconds, comma-separated; default Stripe's
 * three days) and `COFFER_WEBHOOK_LEASE_SECONDS` (how soon a delivery whose process died is sent again; more
 * than the 10 s a receiver has to answer, so a live sender is never overtaken).
 */
function readWebhookTiming(env: NodeJS.ProcessEnv): WebhookTiming {
  const raw = env.COFFER_WEBHOOK_RETRY_SECONDS;
  let retryDelaysMs = limits.webhookRetryDelaysMs;
  if (raw !== undefined && raw !== '') {
    const parts = raw.split(',').map((part) => part.trim());
    const maxDelaySeconds = 86_400;
    if (parts.length > 30 || parts.some((part) => !/^\d{1,5}$/.test(part) || Number(part) < 1 || Number(part) > maxDelaySeconds)) {
      throw new ConfigError(`COFFER_WEBHOOK_RETRY_SECONDS must be 1 to 30 comma-separated delays, each from 1 to ${maxDelaySeconds} seconds, got "${raw}"`);
    }
    retryDelaysMs = parts.map((part) => Number(part) * 1000);
  }
  const leaseMinSeconds = limits.webhookTimeoutMs / 1000 + 5;
  return { retryDelaysMs, leaseMs: readPositiveInt(env, 'COFFER_WEBHOOK_LEASE_SECONDS', limits.webhookLeaseMs / 1000, 3600, leaseMinSeconds) * 1000 };
}

/** The risk engine (see risk/engine.ts). */
export interface RiskSettings {
  /** The model file for live scoring (Sparkov features); undefined: the shipped `models/sparkov.json`; null: none. */
  modelFile: string | null | undefined;
  /** Time the velocity counters may take before a decision goes on without them. */
  velocityBudgetMs: number;
  /** Time the model may take, in microseconds, before a decision goes on without it. */
  modelBudgetUs: number;
  /** Indicative US dollar rates replacing the built-in ones (`{"eur": 1.08}`). */
  usdRates: Record<string, number>;
}

function readUsdRates(env: NodeJS.ProcessEnv): Record<string, number> {
  const raw = env.COFFER_RISK_USD_RATES;
  if (raw === undefined || raw === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('COFFER_RISK_USD_RATES must be a JSON object of currency codes to US dollars per unit, such as {"eur":1.08}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('COFFER_RISK_USD_RATES must be a JSON object of currency codes to US dollars per unit, such as {"eur":1.08}');
  }
  const rates: Record<string, number> = {};
  for (const [code, rate] of Object.entries(parsed)) {
    if (!/^[a-z]{3}$/.test(code) || typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) {
      throw new ConfigError(`COFFER_RISK_USD_RATES: ${code} must be a lower-case currency code with a positive rate`);
    }
    rates[code] = rate;
  }
  return rates;
}

export { ConfigError };

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function readPort(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) {
    throw new ConfigError(`${name} must be a port number from 0 to 65535, got "${raw}"`);
  }
  return Number(raw);
}

function readFlag(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

function readPositiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number, max: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

/** `COFFER_SHOPPER_NOTIFY_URL` (https, or http on a loopback address) and the secret file that signs for it, together. */
function readShopperNotify(env: NodeJS.ProcessEnv, cwd: string): { url: string; secret: string } | undefined {
  const url = env.COFFER_SHOPPER_NOTIFY_URL || undefined;
  const secretFile = env.COFFER_SHOPPER_NOTIFY_SECRET_FILE || undefined;
  if (url === undefined && secretFile === undefined) return undefined;
  if (url === undefined || secretFile === undefined) {
    throw new ConfigError('COFFER_SHOPPER_NOTIFY_URL and COFFER_SHOPPER_NOTIFY_SECRET_FILE must be set together (the gateway to SMS and email, and the secret that signs for it)');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`COFFER_SHOPPER_NOTIFY_URL must be a URL, such as https://notify.example.com/send, got "${url}"`);
  }
  const loopback = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/.test(parsed.hostname);
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) {
    throw new ConfigError(`COFFER_SHOPPER_NOTIFY_URL must be https (http only on a loopback address), got "${url}"`);
  }
  const file = path.resolve(cwd, secretFile);
  let secret: string;
  try {
    if ((fs.statSync(file).mode & 0o077) !== 0) throw new ConfigError(`COFFER_SHOPPER_NOTIFY_SECRET_FILE: ${file} can be read by group or others; chmod 600 it`);
    secret = fs.readFileSync(file, 'utf8').trim();
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`COFFER_SHOPPER_NOTIFY_SECRET_FILE: ${file} cannot be read`);
  }
  if (secret.length < 32) throw new ConfigError('COFFER_SHOPPER_NOTIFY_SECRET_FILE must hold a secret of at least 32 characters');
  return { url, secret };
}

function readKekSettings(env: NodeJS.ProcessEnv, cwd: string): KekSettings {
  const names = ['COFFER_KEK_PKCS11_MODULE', 'COFFER_KEK_PKCS11_TOKEN', 'COFFER_KEK_PKCS11_PIN_FILE'] as const;
  const [modulePath, tokenLabel, pinFile] = names.map((name) => env[name] || undefined);
  if (modulePath === undefined && tokenLabel === undefined && pinFile === undefined) return { kind: 'local' };
  if (modulePath === undefined || tokenLabel === undefined || pinFile === undefined) {
    throw new ConfigError(`${names.join(', ')} must be set together (the HSM's PKCS#11 module, its token label, and a file holding the user PIN)`);
  }
  return { kind: 'pkcs11', modulePath: path.resolve(cwd, modulePath), tokenLabel, pinFile: path.resolve(cwd, pinFile) };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const databaseUrl = env.DATABASE_URL === '' ? undefined : env.DATABASE_URL;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must start with postgres:// or postgresql://');
  }
  const logLevel = env.COFFER_LOG_LEVEL ?? 'info';
  if (!(logLevels as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`COFFER_LOG_LEVEL must be one of ${logLevels.join(', ')}, got "${logLevel}"`);
  }
  const embeddedDurability = env.COFFER_EMBEDDED_DURABILITY || 'fsync';
  if (embeddedDurability !== 'fsync' && embeddedDurability !== 'os') {
    throw new ConfigError(`COFFER_EMBEDDED_DURABILITY must be fsync or os, got "${embeddedDurability}"`);
  }
  const tlsCertFile = env.COFFER_TLS_CERT || undefined;
  const tlsKeyFile = env.COFFER_TLS_KEY || undefined;
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    throw new ConfigError('COFFER_TLS_CERT and COFFER_TLS_KEY must be set together');
  }
  const internalClientCaFile = env.COFFER_INTERNAL_CLIENT_CA ? path.resolve(cwd, env.COFFER_INTERNAL_CLIENT_CA) : undefined;
  if (internalClientCaFile !== undefined && readFlag(env, 'COFFER_TLS_DISABLED', false)) {
    throw new ConfigError('COFFER_INTERNAL_CLIENT_CA needs TLS: it cannot be used with COFFER_TLS_DISABLED');
  }
  const publicUrl = env.COFFER_PUBLIC_URL || undefined;
  if (publicUrl !== undefined && !/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(publicUrl)) {
    throw new ConfigError(`COFFER_PUBLIC_URL must be an https origin with a host name, such as https://pay.example.com, got "${publicUrl}"`);
  }
  const staffOrigin = env.COFFER_STAFF_ORIGIN || undefined;
  const publicPort = readPort(env, 'COFFER_PORT', 8443);
  if (staffOrigin !== undefined && !/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(staffOrigin)) {
    throw new ConfigError(`COFFER_STAFF_ORIGIN must be an https origin with a host name, such as https://staff.example.com, got "${staffOrigin}"`);
  }
  const cardFrameOrigin = env.COFFER_CARD_FRAME_ORIGIN || undefined;
  if (cardFrameOrigin !== undefined && !/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(cardFrameOrigin)) {
    throw new ConfigError(`COFFER_CARD_FRAME_ORIGIN must be an https origin with a host name other than the checkout's, such as https://card.pay.example.com, got "${cardFrameOrigin}"`);
  }
  const redisUrl = env.COFFER_REDIS_URL || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('COFFER_REDIS_URL must start with redis:// or rediss://');
  }
  return {
    homeDir: path.resolve(cwd, env.COFFER_HOME || '.coffer'),
    kek: readKekSettings(env, cwd),
    liveAccounts: readLiveAccounts(env, cwd),
    sandboxControls: readFlag(env, 'COFFER_SANDBOX_CONTROLS', false),
    databaseUrl,
    databasePoolSize: readPositiveInt(env, 'COFFER_DB_POOL_SIZE', limits.databasePoolSizeDefault, 200),
    embeddedDurability,
    publicHost: env.COFFER_HOST || '127.0.0.1',
    publicPort,
    internalHost: env.COFFER_INTERNAL_HOST || '127.0.0.1',
    // Next to the public one unless said otherwise, so that a second Coffer moved with COFFER_PORT alone starts.
    internalPort: readPort(env, 'COFFER_INTERNAL_PORT', publicPort === 0 ? 0 : publicPort < 65535 ? publicPort + 1 : 8444),
    internalClientCaFile,
    staffOrigin,
    publicUrl,
    fourEyesRefundAbove: readPositiveInt(env, 'COFFER_FOUR_EYES_REFUND_ABOVE', limits.fourEyesRefundAboveDefault, limits.amountMinorMax),
    tlsCertFile,
    tlsKeyFile,
    tlsDisabled: readFlag(env, 'COFFER_TLS_DISABLED', false),
    logLevel: logLevel as Config['logLevel'],
    jobsEnabled: readFlag(env, 'COFFER_JOBS', true),
    webhooksAllowPrivate: readFlag(env, 'COFFER_WEBHOOKS_ALLOW_PRIVATE', false),
    webhookTiming: readWebhookTiming(env),
    rateLimits: {
      perKey: readPositiveInt(env, 'COFFER_RATE_LIMIT_PER_KEY', limits.rateLimitPerKeyDefault, 100_000_000),
      perAddress: readPositiveInt(env, 'COFFER_RATE_LIMIT_PER_ADDRESS', limits.rateLimitPerAddressDefault, 100_000_000),
      windowSeconds: readPositiveInt(env, 'COFFER_RATE_LIMIT_WINDOW_SECONDS', 1, 3600),
      redisUrl,
      redisPrefix: env.COFFER_REDIS_PREFIX || 'coffer:',
    },
    cardFrameOrigin,
    shopperNotify: readShopperNotify(env, cwd),
    risk: {
      modelFile: env.COFFER_RISK_MODEL === 'none' ? null : env.COFFER_RISK_MODEL ? path.resolve(cwd, env.COFFER_RISK_MODEL) : undefined,
      velocityBudgetMs: readPositiveInt(env, 'COFFER_RISK_VELOCITY_BUDGET_MS', 200, 10_000),
      modelBudgetUs: readPositiveInt(env, 'COFFER_RISK_MODEL_BUDGET_US', 10_000, 1_000_000),
      usdRates: readUsdRates(env),
    },
  };
}
