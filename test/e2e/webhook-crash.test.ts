import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { createMigratedTestDatabaseUrl } from '../support/database.ts';
import { spawnCoffer, type CofferProcess } from '../support/process.ts';
import { WebhookReceiver } from '../support/receiver.ts';
import { rawRequest } from '../support/server.ts';
import { removeTree } from '../support/files.ts';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-webhook-crash-'));

// Goal: with the delivering process killed (SIGKILL) in the middle of deliveries and a receiver that fails a
// fifth of the requests, every committed event still arrives at least once, so that a receiver that
// deduplicates by event id applies each exactly once; events of refused requests never go out.
describe('webhook delivery survives kill -9', { concurrency: false }, () => {
  after(() => removeTree(home));

  test('kill the deliverer twice under a flaky receiver: every event arrives', async (t) => {
    const receiver = new WebhookReceiver(7);
    const url = await receiver.start();
    receiver.failRate = 0.2;
    receiver.delayMs = 30;
    const databaseUrl = await createMigratedTestDatabaseUrl();
    // Retries a second apart and the shortest lease: what is tested is that every event arrives, not the schedule.
    const env = {
      COFFER_WEBHOOKS_ALLOW_PRIVATE: 'true', COFFER_WEBHOOK_RETRY_SECONDS: '1,1,2,2,4,4,8,8', COFFER_WEBHOOK_LEASE_SECONDS: '15',
      ...(databaseUrl === undefined ? {} : { DATABASE_URL: databaseUrl }),
    };
    let coffer: CofferProcess = await spawnCoffer(home, env);
    try {
      const created = await rawRequest(coffer, 'POST', '/v1/webhook_endpoints', {
        key: coffer.secretKey, body: `url=${encodeURIComponent(url)}&enabled_events[]=*`,
      });
      assert.equal(created.status, 200, created.body);
      for (let round = 0; round < 2; round += 1) {
        for (let i = 0; i < 15; i += 1) {
          const paid = await rawRequest(coffer, 'POST', '/v1/payment_intents', {
            key: coffer.secretKey, body: `amount=${1000 + i}&currency=usd&payment_method=pm_card_visa&confirm=true`,
          });
          assert.equal(paid.status, 200);
          const refused = await rawRequest(coffer, 'POST', '/v1/payment_intents', { key: coffer.secretKey, body: 'amount=1&currency=usd' });
          assert.equal(refused.status, 400);
        }
        // Deliveries are under way (the receiver is slow and flaky): kill the process in the middle of them.
        await new Promise((resolve) => setTimeout(resolve, 150));
        await coffer.kill('SIGKILL');
        t.diagnostic(`round ${round}: ${receiver.received.length} requests received before the kill`);
        coffer = await spawnCoffer(home, env);
      }
      receiver.failRate = 0;
      const deadline = Date.now() + 60_000;
      let committed: string[] = [];
      while (Date.now() < deadline) {
        const listed = await rawRequest(coffer, 'GET', '/v1/events?limit=100&delivery_success=false', { key: coffer.secretKey });
        const all = await listAllEvents(coffer);
        committed = all;
        if ((listed.json.data as unknown[]).length === 0 && all.every((id) => receiver.effects.has(id))) break;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      assert.ok(committed.length >= 60, `events were committed (${committed.length})`);
      const missing = committed.filter((id) => !receiver.effects.has(id));
      assert.deepEqual(missing, [], 'every committed event was applied by the receiver');
      const received = new Set(receiver.received.map((item) => item.eventId));
      assert.deepEqual([...received].filter((id) => !committed.includes(id)), [], 'nothing was sent that was not committed');
      t.diagnostic(`${committed.length} events, ${receiver.received.length} requests (retries and redeliveries included)`);
    } finally {
      await coffer.kill('SIGTERM');
      await receiver.stop();
    }
  });
});

async function listAllEvents(coffer: CofferProcess): Promise<string[]> {
  const ids: string[] = [];
  let startingAfter: string | undefined;
  for (let page = 0; page < 50; page += 1) {
    const query = `/v1/events?limit=100${startingAfter === undefined ? '' : `&starting_after=${startingAfter}`}`;
    const response = await rawRequest(coffer, 'GET', query, { key: coffer.secretKey });
    const data = response.json.data as Array<{ id: string }>;
    ids.push(...data.map((event) => event.id));
    if (response.json.has_more !== true) break;
    startingAfter = data.at(-1)?.id;
  }
  return ids;
}
