import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import { CofferError } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import type { Logger } from '../platform/logger.ts';
import { presentedKey } from './merchant-auth.ts';

/**
 * Request rate limits, checked on every request before anything else, authentication included, so that guessed
 * or stolen keys are limited like valid ones. Two budgets per window (one second unless configured): one per
 * client address (IPv6 addresses by their /64) and one per API key presented, valid or not (a publishable key's per
 * key and address, see `keyBucket`). The counters live in
 * this process, or in Redis when `redisUrl` is set, so that every Coffer process behind one address shares them.
 *
 * Windows are fixed (@fastify/rate-limit): each starts with its first request, so a client can pass at most twice
 * its budget in a span that straddles two windows. If Redis cannot be reached the requests are let through and the failure
 * is logged: payments keep working while the limiter is down.
 */
export interface RateLimitSettings {
  perKey: number;
  perAddress: number;
  windowSeconds: number;
  redisUrl: string | undefined;
  /** Prefix of Coffer's keys in Redis, so that several installations can share one server. */
  redisPrefix: string;
}

function rateLimited(what: 'address' | 'key', retryAfterSeconds: number): CofferError {
  return new CofferError(
    'rate_limit',
    `Too many requests from this ${what === 'key' ? 'API key' : 'address'} too quickly. Slow down, and retry with an exponential backoff.`,
    { retryAfterSeconds, shouldRetry: false },
  );
}

/**
 * A digest of the presented key: the counters never hold a key, in memory or in Redis. A publishable key is public
 * (it is in the merchant's pages), so its budget is counted per client address too: a stranger who sends requests
 * with it spends their own budget, not the one the merchant's shoppers pay with.
 */
function keyBucket(request: FastifyRequest): string | undefined {
  const key = presentedKey(request.headers.authorization);
  if (key === undefined || key === '') return undefined;
  const digest = createHash('sha256').update(key).digest('base64url').slice(0, 22);
  return key.startsWith('pk_') ? `key:${digest}:${request.ip}` : `key:${digest}`;
}

export async function registerRateLimits(app: FastifyInstance, settings: RateLimitSettings, logger: Logger): Promise<void> {
  let redis: Redis | undefined;
  if (settings.redisUrl !== undefined) {
    redis = new Redis(settings.redisUrl, {
      // A command waits for no reconnection: with Redis away, requests pass at once instead of queueing.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: limits.redisConnectTimeoutMs,
      commandTimeout: limits.redisCommandTimeoutMs,
    });
    let lastWarningMs = 0;
    redis.on('error', (error: Error) => {
      const nowMs = Date.now();
      if (nowMs - lastWarningMs < 60_000) return;
      lastWarningMs = nowMs;
      logger.warn({ err: error }, 'rate limiter cannot reach Redis; requests are not being limited');
    });
    const client = redis;
    app.addHook('onClose', async () => {
      client.disconnect();
    });
    // Commands are not queued while connecting (above), so a process that served before the connection was ready
    // would let its first requests through unlimited: it waits for Redis first, at most the connection's timeout.
    await waitForReady(client, limits.redisConnectTimeoutMs);
  }
  await app.register(rateLimit, {
    global: false,
    skipOnError: true,
    cache: limits.rateLimitLocalEntriesMax,
    ...(redis === undefined ? {} : { redis, nameSpace: `${settings.redisPrefix}rate:` }),
  });
  const timeWindow = settings.windowSeconds * 1000;
  const byAddress = app.createRateLimit({ max: settings.perAddress, timeWindow });
  const byKey = app.createRateLimit({
    max: settings.perKey,
    timeWindow,
    keyGenerator: (request) => keyBucket(request) ?? '',
    // No key presented: only the address budget applies (checked without hashing anything).
    allowList: (request) => (presentedKey(request.headers.authorization) ?? '') === '',
  });
  app.addHook('onRequest', async (request, reply) => {
    for (const [what, check] of [['address', byAddress], ['key', byKey]] as const) {
      const result = await check(request);
      if (result.isAllowed) continue;
      if (result.isExceeded) throw rateLimited(what, Math.max(1, result.ttlInSeconds));
      if (what === 'key') {
        reply.header('X-RateLimit-Limit', String(result.max));
        reply.header('X-RateLimit-Remaining', String(result.remaining));
      }
    }
  });
}

/** Resolves when `client` is ready, or after `timeoutMs` (Redis away: requests then pass unlimited, as the header says). */
function waitForReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    client.once('ready', done);
  });
}
