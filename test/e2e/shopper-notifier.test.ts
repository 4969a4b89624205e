import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { deliverShopperMessages } from '../../src/jobs/deliver-shopper-messages.ts';
import { createApiKey } from '../../src/identity/merchants.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { ConfigError } from '../../src/platform/config-error.ts';
import { TestClock } from '../support/clock.ts';
import { rawRequest, startTestServer, stripeClient, type TestServer } from '../support/server.ts';

// Goal: messages to shoppers go out through a notifier, after the transaction that wrote them: test mode's stay in
// the sandbox outbox; live mode's are posted, signed, to the operator's gateway, retried with a growing wait when it
// fails, and given up when a one-time code has expired. A gateway set up wrongly stops the start, naming the setting.
describe('shopper messages through the notifier', () => {
  let server: TestServer;
  const clock = new TestClock();
  const secret = 'a-gateway-secret-of-at-least-32-characters';
  const received: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
  const answers: number[] = [];
  let gateway: http.Server;
  let liveKey: string | undefined;

  before(async () => {
    gateway = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        response.writeHead(answers.shift() ?? 200).end();
      });
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    const address = gateway.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-notify-'));
    const secretFile = path.join(dir, 'secret');
    fs.writeFileSync(secretFile, secret, { mode: 0o600 });
    server = await startTestServer({ clock, configEnv: { COFFER_SHOPPER_NOTIFY_URL: `http://127.0.0.1:${port}/send`, COFFER_SHOPPER_NOTIFY_SECRET_FILE: secretFile } });
  });
  after(async () => {
    await server?.close();
    await new Promise((resolve) => gateway.close(resolve));
  });

  /** A live session's page asks for a one-time code: a live SMS waiting in the outbox table. */
  async function liveCode(phone: string): Promise<string> {
    liveKey ??= (await createApiKey(server.database.db, server.merchantId, 'secret', true)).key.reveal();
    const live = stripeClient(server, liveKey);
    const session = await live.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/ok', line_items: [{ price_data: { currency: 'usd', unit_amount: 5_000, product_data: { name: 'Lamp' } }, quantity: 1 }],
    });
    const page = await rawRequest(server, 'GET', `/pay/${session.id}`);
    const csrf = /"csrf":"([^"]+)"/.exec(page.body)?.[1] ?? '';
    const sent = await rawRequest(server, 'POST', `/pay/${session.id}/step-up/send`, {
      body: JSON.stringify({ destination: phone, amount: '5000', currency: 'usd' }), contentType: 'application/json',
      headers: { origin: new URL(session.url ?? '').origin, 'x-coffer-csrf': csrf },
    });
    assert.equal(sent.status, 200, sent.body);
    const row = await server.database.db.selectFrom('shopper_messages').selectAll().where('recipient', '=', phone).executeTakeFirstOrThrow();
    assert.equal(row.livemode, true);
    assert.equal(row.status, 'pending', 'written, not yet sent');
    return row.id;
  }
  const messageOf = (id: string) => server.database.db.selectFrom('shopper_messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  test('a live code goes to the gateway signed; a failing gateway is tried again later; test mode never calls it', async () => {
    const id = await liveCode('+15555550101');
    answers.push(503);
    await deliverShopperMessages(server.coffer.services);
    assert.equal(received.length, 1, 'one post to the gateway');
    let row = await messageOf(id);
    assert.deepEqual([row.status, row.attempts, row.last_error], ['pending', 1, 'the gateway answered 503']);
    await deliverShopperMessages(server.coffer.services);
    assert.equal(received.length, 1, 'not again before its wait is over');
    clock.offsetMs += 31_000;
    await deliverShopperMessages(server.coffer.services);
    assert.equal(received.length, 2);
    row = await messageOf(id);
    assert.deepEqual([row.status, row.attempts], ['sent', 2]);

    const [first, second] = received;
    assert.equal(first?.body, second?.body, 'the same message both times');
    assert.equal(second?.headers['idempotency-key'], id);
    const payload = JSON.parse(second?.body ?? '{}') as { channel: string; to: string; body: string };
    assert.deepEqual([payload.channel, payload.to], ['sms', '+15555550101']);
    assert.match(payload.body, /\b\d{6}\b/);
    const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(second?.headers['coffer-signature'])) ?? [];
    assert.equal(v1, createHmac('sha256', secret).update(`${t}.${second?.body}`).digest('hex'), 'signed with the gateway secret');

    // A test-mode message is "sent" to the sandbox outbox, never to the gateway.
    const testSession = await server.stripe.checkout.sessions.create({
      mode: 'payment', success_url: 'https://shop.example/ok', line_items: [{ price_data: { currency: 'usd', unit_amount: 5_000, product_data: { name: 'Lamp' } }, quantity: 1 }],
    });
    const page = await rawRequest(server, 'GET', `/pay/${testSession.id}`);
    const csrf = /"csrf":"([^"]+)"/.exec(page.body)?.[1] ?? '';
    await rawRequest(server, 'POST', `/pay/${testSession.id}/step-up/send`, {
      body: JSON.stringify({ destination: '+15555550102', amount: '5000', currency: 'usd' }), contentType: 'application/json',
      headers: { origin: new URL(testSession.url ?? '').origin, 'x-coffer-csrf': csrf },
    });
    await deliverShopperMessages(server.coffer.services);
    const testRow = await server.database.db.selectFrom('shopper_messages').selectAll().where('recipient', '=', '+15555550102').executeTakeFirstOrThrow();
    assert.equal(testRow.status, 'sent');
    assert.equal(received.length, 2, 'the gateway saw no test-mode message');
  });

  test('a code the gateway cannot take before it expires is given up; a refusal (4xx) is not retried', async () => {
    const expiring = await liveCode('+15555550103');
    answers.push(503, 503, 503, 503);
    for (let round = 0; round < 6; round += 1) {
      await deliverShopperMessages(server.coffer.services);
      clock.offsetMs += 61_000;
    }
    const row = await messageOf(expiring);
    assert.equal(row.status, 'failed', 'a code past its five minutes is not sent');
    assert.ok(row.attempts <= 4, `tried ${row.attempts} times`);
    answers.length = 0;

    clock.offsetMs += 31_000;
    const refused = await liveCode('+15555550104');
    answers.push(400);
    await deliverShopperMessages(server.coffer.services);
    const after = await messageOf(refused);
    assert.deepEqual([after.status, after.attempts, after.last_error], ['failed', 1, 'the gateway answered 400']);
  });

  test('a gateway set up wrongly stops the start, naming the setting', () => {
    const refuse = (env: NodeJS.ProcessEnv) => assert.throws(() => loadConfig(env), (error: unknown) => error instanceof ConfigError && /COFFER_SHOPPER_NOTIFY/.test(error.message));
    refuse({ COFFER_SHOPPER_NOTIFY_URL: 'https://notify.example/send' });
    refuse({ COFFER_SHOPPER_NOTIFY_URL: 'http://notify.example/send', COFFER_SHOPPER_NOTIFY_SECRET_FILE: '/etc/hostname' });
    refuse({ COFFER_SHOPPER_NOTIFY_URL: 'ftp://127.0.0.1/send', COFFER_SHOPPER_NOTIFY_SECRET_FILE: '/etc/hostname' });
    refuse({ COFFER_SHOPPER_NOTIFY_URL: 'https://notify.example/send', COFFER_SHOPPER_NOTIFY_SECRET_FILE: '/nonexistent/secret' });
  });
});
