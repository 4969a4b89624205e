import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { verifyLedger } from '../../src/ops/ledger-verify.ts';
import { openPGlite } from '../../src/store/open-database.ts';
import { spawnCoffer, type CofferProcess } from '../support/process.ts';
import { rawRequest } from '../support/server.ts';
import { removeTree } from '../support/files.ts';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-durability-'));

/** Clients paying as fast as they can until `stop`; returns the ids the server acknowledged with a 200. */
async function payUntil(coffer: CofferProcess, clients: number, stop: Promise<void>, acknowledged: string[] = []): Promise<string[]> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = 0; !stopped && i < 10_000; i += 1) {
        try {
          const response = await rawRequest(coffer, 'POST', '/v1/payment_intents', {
            key: coffer.secretKey,
            body: `amount=${1000 + client}&currency=usd&payment_method=pm_card_visa&confirm=true`,
            headers: { 'idempotency-key': `durable-${client}-${i}-${Date.now()}` },
          });
          if (response.status === 200 && response.json.status === 'succeeded') acknowledged.push(String(response.json.id));
        } catch {
          return; // The server is gone.
        }
      }
    }),
  );
  return acknowledged;
}

// Goal: the embedded database keeps every payment it acknowledged when the process is killed with SIGKILL in the
// middle of a load, reopens cleanly, and its ledger still verifies.
describe('embedded mode survives kill -9', { skip: process.env.COFFER_TEST_DATABASE_URL ? 'embedded mode only' : false }, () => {
  after(() => removeTree(home));

  test('three kills under load lose no acknowledged payment', async (t) => {
    const everyAcknowledged: string[] = [];
    for (let cycle = 0; cycle < 3; cycle += 1) {
      const coffer = await spawnCoffer(home, { COFFER_JOBS: 'false' });
      const acknowledged: string[] = [];
      const paying = payUntil(coffer, 6, coffer.exited.then(() => undefined), acknowledged);
      // Killed in the middle of the load: once it has acknowledged a few payments (which takes longer on a busy
      // machine), and at most 20 seconds in.
      const started = Date.now();
      while (acknowledged.length < 10 && Date.now() - started < 20_000) await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await coffer.kill('SIGKILL');
      await paying;
      assert.ok(acknowledged.length > 5, `cycle ${cycle}: the load ran (${acknowledged.length} payments)`);
      everyAcknowledged.push(...acknowledged);
      t.diagnostic(`cycle ${cycle}: ${acknowledged.length} payments acknowledged before SIGKILL`);
    }
    const database = await openPGlite(path.join(home, 'db'));
    try {
      const found = await database.db.selectFrom('payment_intents').select(['id', 'status', 'amount_received'])
        .where('id', 'in', everyAcknowledged).execute();
      assert.equal(found.length, everyAcknowledged.length, 'every acknowledged payment is there');
      assert.ok(found.every((row) => row.status === 'succeeded' && row.amount_received > 0n));
      const report = await verifyLedger(database.db);
      assert.deepEqual(report.violations, []);
      assert.ok(report.transfers >= everyAcknowledged.length);
    } finally {
      await database.close();
    }
    const restarted = await spawnCoffer(home, { COFFER_JOBS: 'false' });
    try {
      const response = await rawRequest(restarted, 'POST', '/v1/payment_intents', {
        key: restarted.secretKey,
        body: 'amount=500&currency=usd&payment_method=pm_card_visa&confirm=true',
      });
      assert.equal(response.json.status, 'succeeded', 'it serves again after the kills');
    } finally {
      await restarted.kill('SIGTERM');
    }
  });
});
