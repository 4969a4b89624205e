import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import Stripe from 'stripe';
import { loadConfig } from '../../src/platform/config.ts';
import { stateCounts } from '../support/ledger.ts';
import { rawRequest, startTestServer, stripeClient, type RawResponse, type TestServer } from '../support/server.ts';

const redisUrl = process.env.COFFER_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Budgets per minute, so that a burst never straddles two windows and the counts are exact. */
function budgets(perKey: number, perAddress: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { COFFER_RATE_LIMIT_PER_KEY: String(perKey), COFFER_RATE_LIMIT_PER_ADDRESS: String(perAddress), COFFER_RATE_LIMIT_WINDOW_SECONDS: '60', ...extra };
}

function statuses(responses: RawResponse[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const response of responses) counts[response.status] = (counts[response.status] ?? 0) + 1;
  return counts;
}

function burst(server: TestServer, count: number, key: string | undefined, urlPath = '/v1/payment_intents'): Promise<RawResponse[]> {
  return Promise.all(Array.from({ length: count }, () => rawRequest(server, 'GET', urlPath, key === undefined ? {} : { key })));
}

// Goal: every request is counted before it is authenticated, per API key and per client address, so a wrong key
// is limited like a right one; a refused request gets Stripe's 429 `rate_limit` error and changes nothing; with
// Redis, processes share one budget; without Redis reachable, payments still go through.
describe('rate limits', { concurrency: false }, () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const server of servers) await server.close();
  });
  async function start(configEnv: NodeJS.ProcessEnv): Promise<TestServer> {
    const server = await startTestServer({ configEnv });
    servers.push(server);
    return server;
  }

  test('the defaults are Stripe-like: 100 requests a second per key, 200 per address, counted in memory', () => {
    const { rateLimits } = loadConfig({});
    assert.deepEqual(rateLimits, { perKey: 100, perAddress: 200, windowSeconds: 1, redisUrl: undefined, redisPrefix: 'coffer:' });
    assert.throws(() => loadConfig({ COFFER_RATE_LIMIT_PER_KEY: '0' }), /COFFER_RATE_LIMIT_PER_KEY must be an integer/);
    assert.throws(() => loadConfig({ COFFER_REDIS_URL: 'http://127.0.0.1:6379' }), /COFFER_REDIS_URL must start with redis/);
  });

  test('a wrong key is limited before it is checked: 401 until the budget is spent, then 429', async () => {
    const server = await start(budgets(20, 1000));
    const wrongKey = `sk_test_${'x'.repeat(24)}`;
    const responses = await burst(server, 30, wrongKey);
    assert.deepEqual(statuses(responses), { 401: 20, 429: 10 });
    const refused = responses.find((response) => response.status === 429);
    assert.equal((refused?.json.error as { code?: string }).code, 'rate_limit');
    assert.equal((refused?.json.error as { type?: string }).type, 'invalid_request_error');
    assert.ok(Number(refused?.headers['retry-after']) >= 1, 'Retry-After says when to come back');
    assert.equal(refused?.headers['stripe-should-retry'], 'false', 'the SDKs do not retry a rate limit on their own');
    assert.match(String(refused?.headers['request-id']), /^req_/);
    // Another key from the same address has its own budget.
    const other = await burst(server, 5, server.secretKey);
    assert.deepEqual(statuses(other), { 200: 5 });
  });

  test('a publishable key, which is public, is counted per address: a stranger spending its budget does not stop the shoppers', async () => {
    const server = await start(budgets(10, 1000));
    const stranger = await Promise.all(Array.from({ length: 15 }, () => rawRequest(server, 'GET', '/v1/nothing', { key: server.publishableKey, localAddress: '127.0.0.2' })));
    assert.equal(statuses(stranger)[429], 5, 'the stranger is limited');
    const shopper = await rawRequest(server, 'GET', '/v1/nothing', { key: server.publishableKey, localAddress: '127.0.0.3' });
    assert.notEqual(shopper.status, 429, shopper.body);
    // A secret key is not public: its budget is one, wherever its requests come from.
    const fromTwo = await Promise.all(Array.from({ length: 12 }, (_, i) => rawRequest(server, 'GET', '/v1/balance', { key: server.secretKey, localAddress: i % 2 === 0 ? '127.0.0.4' : '127.0.0.5' })));
    assert.deepEqual(statuses(fromTwo), { 200: 10, 429: 2 });
  });

  test('a valid key over its budget is refused through the SDK, and the refused payments do not exist', async () => {
    const server = await start(budgets(10, 1000));
    const stripe = stripeClient(server, server.secretKey, { maxNetworkRetries: 0 });
    const before = await stateCounts(server.database.db);
    const results = await Promise.allSettled(Array.from({ length: 15 }, () => stripe.paymentIntents.create({ amount: 500, currency: 'usd' })));
    const created = results.filter((result) => result.status === 'fulfilled');
    const refused = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
    assert.equal(created.length, 10);
    assert.equal(refused.length, 5);
    for (const result of refused) {
      assert.ok(result.reason instanceof Stripe.errors.StripeRateLimitError, String(result.reason));
      assert.equal((result.reason as Stripe.errors.StripeError).statusCode, 429);
    }
    const afterCounts = await stateCounts(server.database.db);
    assert.equal(afterCounts.payment_intents, before.payment_intents + 10, 'only the accepted requests created payments');
    assert.equal(afterCounts.events, before.events + 10, 'and only their events');
  });

  test('an address over its budget is refused whatever key it presents, and with none', async () => {
    const server = await start(budgets(1000, 12));
    const responses = [...await burst(server, 6, undefined), ...await burst(server, 6, `sk_test_${randomBytes(12).toString('hex')}`)];
    assert.deepEqual(statuses(responses), { 401: 12 });
    const more = [...await burst(server, 3, server.secretKey), ...await burst(server, 3, undefined, '/health')];
    assert.deepEqual(statuses(more), { 429: 6 });
  });

  test('with Redis, two processes share one budget, and Redis never holds a key', async () => {
    const prefix = `coffer-test-${randomBytes(6).toString('hex')}:`;
    const env = budgets(20, 1000, { COFFER_REDIS_URL: redisUrl, COFFER_REDIS_PREFIX: prefix });
    const first = await start(env);
    // Another process of the same installation: the same database, and the same keys (its home).
    const second = await startTestServer({ database: first.database, configEnv: { ...env, COFFER_HOME: first.coffer.services.homeDir } });
    const key = first.secretKey;
    try {
      const responses = (await Promise.all([burst(first, 15, key, '/v1/balance'), burst(second, 15, key, '/v1/balance')])).flat();
      assert.deepEqual(statuses(responses), { 200: 20, 429: 10 });
    } finally {
      await second.coffer.close();
    }
    const redis = new Redis(redisUrl);
    try {
      const keys = await redis.keys(`${prefix}*`);
      assert.ok(keys.length >= 2, `counters in Redis: ${keys.join(', ')}`);
      for (const stored of keys) assert.equal(stored.includes(key) || stored.includes(key.slice(8)), false, `${stored} holds the API key`);
      await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
  });

  test('with Redis unreachable, requests go through unlimited rather than fail', async () => {
    const server = await start(budgets(2, 2, { COFFER_REDIS_URL: 'redis://127.0.0.1:1' }));
    const responses = await burst(server, 5, server.secretKey, '/v1/balance');
    assert.deepEqual(statuses(responses), { 200: 5 });
  });
});
