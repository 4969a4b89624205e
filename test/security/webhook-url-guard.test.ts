import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CofferError } from '../../src/domain/errors.ts';
import { isLoopback, resolveDeliveryAddress, type UrlPolicy } from '../../src/webhooks/url-guard.ts';

// Goal: a webhook may go to any public address, IPv4 or IPv6, and never to one that reaches what is behind Coffer
// (loopback, private networks, link-local and cloud metadata, reserved ranges), nor through an IPv6 form that
// carries an IPv4 address. Only literal addresses here: nothing is resolved or sent.
const live: UrlPolicy = { livemode: true, allowPrivate: false };
const testWithPrivate: UrlPolicy = { livemode: false, allowPrivate: true };

async function verdict(host: string, policy: UrlPolicy = live): Promise<'allowed' | 'refused'> {
  try {
    await resolveDeliveryAddress(new URL(`https://${host}/hooks`), policy);
    return 'allowed';
  } catch (error) {
    assert.ok(error instanceof CofferError && error.code === 'url_invalid' && error.details.param === 'url', String(error));
    assert.match(error.message, /loopback, private or reserved address/);
    return 'refused';
  }
}

describe('webhook address guard', () => {
  test('public addresses are allowed, IPv4 and IPv6, in live and test mode', async () => {
    for (const host of ['93.184.215.14', '8.8.8.8', '1.1.1.1', '203.0.114.1', '[2606:4700::1111]', '[2a00:1450:4001::200e]']) {
      assert.equal(await verdict(host), 'allowed', host);
      assert.equal(await verdict(host, { livemode: false, allowPrivate: false }), 'allowed', `${host} in test mode`);
    }
    const resolved = await resolveDeliveryAddress(new URL('https://8.8.8.8/hooks'), live);
    assert.deepEqual(resolved, { address: '8.8.8.8', family: 4 }, 'the delivery connects to the address checked');
  });

  test('loopback, private, link-local, shared, reserved and multicast addresses are refused', async () => {
    for (const host of ['127.0.0.1', '127.8.9.10', '10.1.2.3', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.64.0.1',
      '0.0.0.0', '192.0.2.10', '198.18.0.1', '224.0.0.1', '255.255.255.255', '[::1]', '[::]', '[fe80::1]', '[fc00::1]', '[fd12:3456::1]',
      '[ff02::1]', '[2001:db8::1]', '[100::1]', '[fec0::1]']) {
      assert.equal(await verdict(host), 'refused', host);
    }
  });

  test('IPv6 forms that carry an IPv4 address are refused whole: mapped, compatible, NAT64, 6to4, Teredo', async () => {
    for (const host of ['[::ffff:127.0.0.1]', '[::ffff:8.8.8.8]', '[::127.0.0.1]', '[::a9fe:a9fe]', '[64:ff9b::7f00:1]', '[64:ff9b:1::1]',
      '[2002:7f00:1::1]', '[2001:0:4136:e378::1]']) {
      assert.equal(await verdict(host), 'refused', host);
    }
  });

  test('test mode may allow loopback and private addresses when the operator says so; live mode never', async () => {
    assert.equal(await verdict('127.0.0.1', testWithPrivate), 'allowed');
    assert.equal(await verdict('10.0.0.5', testWithPrivate), 'allowed');
    assert.equal(await verdict('127.0.0.1', { livemode: true, allowPrivate: true }), 'refused');
    assert.ok(isLoopback('127.0.0.1') && isLoopback('::1') && !isLoopback('8.8.8.8') && !isLoopback('10.0.0.1'));
  });
});
