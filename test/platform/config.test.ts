import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { limits } from '../../src/limits.ts';
import { ConfigError } from '../../src/platform/config-error.ts';
import { loadConfig } from '../../src/platform/config.ts';

// Goal: the webhook retry schedule and lease can be set by the operator; anything else than what they can mean is
// refused at start, naming the variable, instead of retrying in a loop or overtaking a live sender.
describe('webhook timing settings', () => {
  test('defaults: Stripe\'s three days of retries, and a one-minute lease', () => {
    const timing = loadConfig({}).webhookTiming;
    assert.deepEqual(timing, { retryDelaysMs: limits.webhookRetryDelaysMs, leaseMs: 60_000 });
    const total = timing.retryDelaysMs.reduce((sum, delay) => sum + delay, 0);
    assert.ok(total > 3 * 86_400_000 && total < 3.5 * 86_400_000, `about three days (${total / 3_600_000} h)`);
  });

  test('set: a schedule in seconds, and a lease above the receiver\'s answer deadline', () => {
    const timing = loadConfig({ COFFER_WEBHOOK_RETRY_SECONDS: '1, 5,30', COFFER_WEBHOOK_LEASE_SECONDS: '15' }).webhookTiming;
    assert.deepEqual(timing, { retryDelaysMs: [1000, 5000, 30_000], leaseMs: 15_000 });
  });

  test('refused, naming the variable', () => {
    const refusals: Array<[Record<string, string>, RegExp]> = [
      [{ COFFER_WEBHOOK_RETRY_SECONDS: '0' }, /COFFER_WEBHOOK_RETRY_SECONDS must be 1 to 30 comma-separated delays/],
      [{ COFFER_WEBHOOK_RETRY_SECONDS: '60,,300' }, /COFFER_WEBHOOK_RETRY_SECONDS/],
      [{ COFFER_WEBHOOK_RETRY_SECONDS: '1m' }, /COFFER_WEBHOOK_RETRY_SECONDS/],
      [{ COFFER_WEBHOOK_RETRY_SECONDS: '86401' }, /COFFER_WEBHOOK_RETRY_SECONDS/],
      [{ COFFER_WEBHOOK_RETRY_SECONDS: Array.from({ length: 31 }, () => '60').join(',') }, /COFFER_WEBHOOK_RETRY_SECONDS/],
      [{ COFFER_WEBHOOK_LEASE_SECONDS: '10' }, /COFFER_WEBHOOK_LEASE_SECONDS must be an integer from 15 to 3600, got "10"/],
      [{ COFFER_WEBHOOK_LEASE_SECONDS: 'soon' }, /COFFER_WEBHOOK_LEASE_SECONDS/],
    ];
    for (const [env, message] of refusals) {
      assert.throws(() => loadConfig(env), (error: unknown) => error instanceof ConfigError && message.test(error.message), JSON.stringify(env));
    }
  });
});

// Goal: a second Coffer moved to another port with COFFER_PORT alone starts: its staff listener moves with it.
describe('listener ports', () => {
  test('the internal listener is next to the public one unless set; both can be set', () => {
    const ports = (env: Record<string, string>) => {
      const config = loadConfig(env);
      return [config.publicPort, config.internalPort];
    };
    assert.deepEqual(ports({}), [8443, 8444]);
    assert.deepEqual(ports({ COFFER_PORT: '9443' }), [9443, 9444]);
    assert.deepEqual(ports({ COFFER_PORT: '9443', COFFER_INTERNAL_PORT: '7000' }), [9443, 7000]);
    assert.deepEqual(ports({ COFFER_PORT: '0' }), [0, 0], 'ephemeral ports, as tests use');
    assert.deepEqual(ports({ COFFER_PORT: '65535' }), [65535, 8444]);
  });
});
