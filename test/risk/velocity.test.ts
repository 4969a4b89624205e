import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { createMerchant } from '../../src/identity/merchants.ts';
import { seededRandom } from '../../src/risk/model/seeded-random.ts';
import { reapVelocity } from '../../src/jobs/reap-idempotency-keys.ts';
import {
  readVelocity, readVelocityAll, velocityDimensions, velocityEntries, velocityQuery, velocityWindows,
  type VelocityCounters, type VelocityDimension, type VelocityEntry, type VelocityKeys, type VelocityOutcome, type VelocityWindow,
} from '../../src/risk/velocity.ts';
import { openTestDatabase, type TestDatabase } from '../support/database.ts';

// Goal: velocity counters are exact. A generated stream of 10,000 payment outcomes (keys shared across payments,
// events exactly on window edges, arrivals up to 5 minutes out of order, two currencies) is replayed into the
// store; at checkpoints and at the end, every counter of every key is compared with a brute-force recount of the
// events that had arrived: all equal.
describe('velocity counters against a brute-force recount', () => {
  let database: TestDatabase;
  let merchantId: string;
  before(async () => {
    database = await openTestDatabase();
    merchantId = await createMerchant(database.db, 'Velocity merchant');
  });
  after(async () => database.drop());

  interface Event {
    at: number;
    arrival: number;
    keys: VelocityKeys;
    outcome: VelocityOutcome;
    amount: bigint;
    currency: string;
    chargeId: string;
  }

  const start = Date.parse('2026-11-01T00:00:00Z');
  const pools: Record<VelocityDimension, string[]> = {
    card: Array.from({ length: 40 }, (_, i) => `fp_${i}`),
    customer: Array.from({ length: 30 }, (_, i) => `cus_${i}`),
    email: Array.from({ length: 30 }, (_, i) => `shopper${i}@example.com`),
    client_address: Array.from({ length: 25 }, (_, i) => `203.0.113.${i}`),
    device: Array.from({ length: 25 }, (_, i) => `dev_${i}`),
    bin: ['424242', '400000', '555555', '378282'],
  };

  function generate(count: number): Event[] {
    const next = seededRandom(20261126); // seeded, so that a failure can be replayed
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
    const events: Event[] = [];
    let clock = start;
    for (let i = 0; i < count; i += 1) {
      clock += Math.floor(next() * 150_000); // about 10 days in all
      const keys: VelocityKeys = {};
      for (const dimension of velocityDimensions) if (next() < 0.85) keys[dimension] = pick(pools[dimension]);
      const roll = next();
      events.push({
        at: clock,
        arrival: clock + Math.floor(next() * 300_000), // up to 5 minutes late
        keys,
        outcome: roll < 0.7 ? 'succeeded' : roll < 0.9 ? 'declined' : 'blocked',
        amount: BigInt(1 + Math.floor(next() * 50_000)),
        currency: next() < 0.8 ? 'usd' : 'eur',
        chargeId: `ch_${i}`,
      });
    }
    // Events exactly on the edges of the windows, seen from a time that is itself an event's time.
    const anchor = events[6_000];
    assert.ok(anchor !== undefined);
    for (const [index, length] of Object.values(velocityWindows).entries()) {
      for (const offset of [0, 1, -1]) {
        const at = anchor.at - length + offset;
        events.push({ at, arrival: at + 1, keys: anchor.keys, outcome: 'declined', amount: 7n, currency: 'usd', chargeId: `ch_edge_${index}_${offset}` });
      }
    }
    // Counters are kept in buckets of a second, a minute and an hour as well: events on and beside each kind of
    // boundary, at both ends of each window seen from the anchor's whole second, minute and hour.
    for (const [spanIndex, span] of [1_000, 60_000, 3_600_000].entries()) {
      const boundary = Math.floor(anchor.at / span) * span;
      for (const [index, length] of [0, ...Object.values(velocityWindows)].entries()) {
        for (const offset of [0, 1, -1]) {
          const at = boundary - length + offset;
          events.push({ at, arrival: at + 2, keys: anchor.keys, outcome: 'blocked', amount: 11n, currency: 'usd', chargeId: `ch_span_${spanIndex}_${index}_${offset}` });
        }
      }
    }
    // A busy key: bursts of many payments a second (several to a bucket) ending at the anchor and at each window's
    // start, one of them late.
    for (const [index, length] of [0, ...Object.values(velocityWindows)].entries()) {
      for (let i = 0; i < 60; i += 1) {
        const at = anchor.at - length - Math.floor(next() * 4_000);
        events.push({ at, arrival: at + (i === 0 ? 200_000 : 3), keys: anchor.keys, outcome: next() < 0.5 ? 'succeeded' : 'declined', amount: 5n, currency: next() < 0.8 ? 'usd' : 'eur', chargeId: `ch_burst_${index}_${i}` });
      }
    }
    return events;
  }

  function bruteForce(arrived: readonly Event[], dimension: VelocityDimension, key: string, currency: string, at: number): VelocityCounters {
    const counters = {} as VelocityCounters;
    for (const [name, length] of Object.entries(velocityWindows) as Array<[VelocityWindow, number]>) {
      const inWindow = arrived.filter((event) => event.keys[dimension] === key && event.at > at - length && event.at <= at);
      const tally = (events: Event[]) => ({ count: events.length, amount: events.filter((event) => event.currency === currency).reduce((sum, event) => sum + event.amount, 0n) });
      counters[name] = {
        total: tally(inWindow),
        declined: tally(inWindow.filter((event) => event.outcome === 'declined')),
        blocked: tally(inWindow.filter((event) => event.outcome === 'blocked')),
      };
    }
    return counters;
  }

  test('10,000 events replayed in arrival order: every counter equals the recount, at every checkpoint', async () => {
    const events = generate(10_000);
    const byArrival = [...events].sort((a, b) => a.arrival - b.arrival);
    assert.ok(byArrival.some((event, i) => i > 0 && event.at < (byArrival[i - 1]?.at ?? 0)), 'some events arrive out of order');
    const scope = { merchantId, livemode: false };
    const arrived: Event[] = [];
    let compared = 0;
    const compare = async (dimension: VelocityDimension, key: string, currency: string, at: number) => {
      const stored = await readVelocity(database.db, scope, dimension, key, currency, new Date(at));
      assert.deepEqual(stored, bruteForce(arrived, dimension, key, currency, at), `${dimension} ${key} ${currency} at ${new Date(at).toISOString()}`);
      compared += 1;
    };
    const batch: VelocityEntry[] = [];
    const flush = async () => {
      for (let i = 0; i < batch.length; i += 500) await database.db.insertInto('velocity_entries').values(batch.slice(i, i + 500)).execute();
      batch.length = 0;
    };
    for (const [index, event] of byArrival.entries()) {
      arrived.push(event);
      batch.push(...velocityEntries({ merchantId, livemode: false, chargeId: event.chargeId, amount: event.amount, currency: event.currency, outcome: event.outcome, at: new Date(event.at) }, event.keys));
      if ((index + 1) % 1_000 === 0) {
        await flush();
        // At the moment of the last arrival, for a sample of keys in every dimension.
        for (const dimension of velocityDimensions) {
          for (const key of pools[dimension].slice(0, 6)) await compare(dimension, key, 'usd', event.arrival);
        }
      }
    }
    await flush();
    // The window edges, seen from the anchor's time.
    const anchor = events[6_000];
    assert.ok(anchor !== undefined);
    for (const dimension of velocityDimensions) {
      const key = anchor.keys[dimension];
      if (key !== undefined) {
        await compare(dimension, key, 'usd', anchor.at);
        // On the whole second, minute and hour, and a millisecond either side.
        for (const span of [1_000, 60_000, 3_600_000]) {
          const boundary = Math.floor(anchor.at / span) * span;
          for (const at of [boundary, boundary - 1, boundary + 1]) await compare(dimension, key, 'usd', at);
        }
      }
    }
    // Every key of every dimension, in both currencies, at three times.
    const last = byArrival[byArrival.length - 1]?.arrival ?? start;
    for (const at of [start + 3 * 86_400_000, start + 7.5 * 86_400_000, last]) {
      for (const dimension of velocityDimensions) {
        for (const key of pools[dimension]) for (const currency of ['usd', 'eur']) await compare(dimension, key, currency, at);
      }
    }
    // Every key of a payment in one query, as the risk engine reads them: the counters, the payments in the asked
    // currency, and the latest payment in the last 7 days, against the recount.
    for (const event of events.filter((_, i) => i % 97 === 0)) {
      const at = event.at + 1;
      const found = await readVelocityAll(database.db, scope, event.keys, 'usd', new Date(at));
      for (const dimension of velocityDimensions) {
        const key = event.keys[dimension];
        const entry = found[dimension];
        if (key === undefined) {
          assert.equal(entry, undefined);
          continue;
        }
        assert.ok(entry !== undefined);
        assert.deepEqual(entry.counters, bruteForce(arrived, dimension, key, 'usd', at), `${dimension} ${key} at ${new Date(at).toISOString()}`);
        const ofKey = arrived.filter((other) => other.keys[dimension] === key && other.at <= at);
        for (const [name, length] of Object.entries(velocityWindows) as Array<[VelocityWindow, number]>) {
          assert.equal(entry.sameCurrencyCount[name], ofKey.filter((other) => other.at > at - length && other.currency === 'usd').length, `${dimension} ${name} usd count`);
        }
        const recent = ofKey.filter((other) => other.at > at - velocityWindows.d7).map((other) => other.at);
        assert.equal(entry.lastAt?.getTime() ?? null, recent.length === 0 ? null : Math.max(...recent), `${dimension} ${key} last payment`);
        compared += 1;
      }
    }
    assert.ok(compared > 1_000, `${compared} keys compared`);

    // Entries older than the longest window and a day are removed; the counters at the last arrival do not change.
    const sample = velocityDimensions.map((dimension) => [dimension, pools[dimension][0] as string] as const);
    const beforeReap = await Promise.all(sample.map(([dimension, key]) => readVelocity(database.db, scope, dimension, key, 'usd', new Date(last))));
    const reapAt = last + 86_400_000;
    let removed = 0;
    for (let batch = 0; batch < 2_000; batch += 1) {
      const count = await reapVelocity(database.db, reapAt);
      removed += count;
      if (count === 0) break;
    }
    assert.ok(removed > 0, 'old entries were removed');
    const cutoff = new Date(reapAt - 8 * 86_400_000);
    const left = await database.db.selectFrom('velocity_entries').select((eb) => eb.fn.countAll<string>().as('n')).where('occurred_at', '<', cutoff).executeTakeFirstOrThrow();
    assert.equal(Number(left.n), 0);
    const buckets = await sql<{ old: string; kept: string }>`SELECT count(*) FILTER (WHERE bucket_start < ${new Date(cutoff.getTime() - 3_600_000)}) AS old,
      count(*) AS kept FROM velocity_buckets`.execute(database.db);
    assert.equal(Number(buckets.rows[0]?.old), 0, 'buckets go with their entries');
    assert.ok(Number(buckets.rows[0]?.kept) > 0, 'recent buckets stay');
    const afterReap = await Promise.all(sample.map(([dimension, key]) => readVelocity(database.db, scope, dimension, key, 'usd', new Date(last))));
    assert.deepEqual(afterReap, beforeReap, 'the counters at the last arrival are the same');
  });
});

// Goal: a read costs the key's own rows, however busy the merchant's other keys are: each piece of each window is
// one index range on the key (not a scan of the merchant's rows filtered afterwards).
describe('the velocity read is index ranges on the key', () => {
  let database: TestDatabase;
  let merchantId: string;
  before(async () => {
    database = await openTestDatabase();
    merchantId = await createMerchant(database.db, 'Busy merchant');
  });
  after(async () => database.drop());

  test('with thousands of another key\'s payments in the same second, every read of velocity rows is a range on the key', async () => {
    const at = Date.parse('2026-11-26T12:00:30.500Z');
    const rows: VelocityEntry[] = [];
    for (let i = 0; i < 4_000; i += 1) {
      rows.push(...velocityEntries(
        { merchantId, livemode: false, chargeId: `ch_busy_${i}`, amount: 100n, currency: 'usd', outcome: 'succeeded', at: new Date(at - (i % 7) * 97 - (i % 3) * 3_600_000) },
        { card: 'fp_busy', bin: '424242', client_address: '198.51.100.7' },
      ));
    }
    for (let i = 0; i < rows.length; i += 500) await database.db.insertInto('velocity_entries').values(rows.slice(i, i + 500)).execute();
    await database.db.insertInto('velocity_entries').values(velocityEntries(
      { merchantId, livemode: false, chargeId: 'ch_quiet', amount: 700n, currency: 'usd', outcome: 'declined', at: new Date(at - 10) },
      { card: 'fp_quiet', bin: '555555' },
    )).execute();
    await sql`ANALYZE velocity_entries`.execute(database.db);
    await sql`ANALYZE velocity_buckets`.execute(database.db);

    const keys = { card: 'fp_quiet', bin: '555555' };
    const found = await readVelocityAll(database.db, { merchantId, livemode: false }, keys, 'usd', new Date(at));
    assert.deepEqual(found.card?.counters.h1.declined, { count: 1, amount: 700n });
    assert.deepEqual(found.bin?.counters.d7.total, { count: 1, amount: 700n });

    const plan = (await sql<{ 'QUERY PLAN': string }>`EXPLAIN ${velocityQuery({ merchantId, livemode: false }, keys, 'usd', new Date(at))}`.execute(database.db))
      .rows.map((row) => row['QUERY PLAN']);
    const text = plan.join('\n');
    assert.doesNotMatch(text, /Seq Scan on velocity_/, text);
    const scans = plan.flatMap((line, i) => (/Scan.* on velocity_(entries|buckets)/.test(line) ? [i] : []));
    assert.ok(scans.length >= 2, `both tables are read:\n${text}`);
    for (const i of scans) {
      const condition = plan.slice(i + 1, i + 3).find((line) => line.includes('Index Cond')) ?? '';
      assert.match(condition, /\(key = k(_\d+)?\.key\)/, `the index range includes the key:\n${text}`);
    }
  });
});
