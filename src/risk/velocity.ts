import { sql, type Kysely, type RawBuilder } from 'kysely';
import { assert } from '../platform/assert.ts';
import type { Database } from '../store/database.ts';

/**
 * Velocity counters: how many payments (and how much) a card, customer, email, client address, device or BIN made
 * in the last hour, 24 hours and 7 days, split by outcome. Each attempt's outcome is written once per dimension it
 * has (`velocity_entries`), in the statement that records the outcome; counters are exact counts over the window
 * `(at - length, at]`, so an entry that arrives late (out of order) is counted in every window its time falls in.
 */
export const velocityDimensions = ['card', 'customer', 'email', 'client_address', 'device', 'bin'] as const;
export type VelocityDimension = (typeof velocityDimensions)[number];
export type VelocityOutcome = 'succeeded' | 'declined' | 'blocked';

export const velocityWindows = { h1: 3_600_000, h24: 86_400_000, d7: 7 * 86_400_000 } as const;
export type VelocityWindow = keyof typeof velocityWindows;

export interface Tally {
  count: number;
  amount: bigint;
}

/** One window's counters; amounts add only entries in `currency`. */
export interface WindowCounters {
  total: Tally;
  declined: Tally;
  blocked: Tally;
}

export type VelocityCounters = Record<VelocityWindow, WindowCounters>;

/** The keys a payment has, by dimension; a missing one is not counted (and rules on it do not fire). */
export type VelocityKeys = Partial<Record<VelocityDimension, string>>;

export interface VelocityEntry {
  merchant_id: string;
  livemode: boolean;
  dimension: VelocityDimension;
  key: string;
  occurred_at: Date;
  outcome: VelocityOutcome;
  amount: bigint;
  currency: string;
  charge_id: string;
}

/** The rows one attempt's outcome adds: one per dimension it has. */
export function velocityEntries(
  base: { merchantId: string; livemode: boolean; chargeId: string; amount: bigint; currency: string; outcome: VelocityOutcome; at: Date },
  keys: VelocityKeys,
): VelocityEntry[] {
  const rows: VelocityEntry[] = [];
  for (const dimension of velocityDimensions) {
    const key = keys[dimension];
    if (key === undefined || key === '') continue;
    rows.push({
      merchant_id: base.merchantId, livemode: base.livemode, dimension, key, occurred_at: base.at, outcome: base.outcome,
      amount: base.amount, currency: base.currency, charge_id: base.chargeId,
    });
  }
  return rows;
}

function emptyWindow(): WindowCounters {
  return { total: { count: 0, amount: 0n }, declined: { count: 0, amount: 0n }, blocked: { count: 0, amount: 0n } };
}

export function emptyCounters(): VelocityCounters {
  return { h1: emptyWindow(), h24: emptyWindow(), d7: emptyWindow() };
}

interface CounterRow {
  [column: string]: string | number | Date | null;
}

/** A key's counters, and when it last paid (within the 7 days counted; null if not). */
export interface KeyVelocity {
  counters: VelocityCounters;
  /** Payments in the asked currency only, per window (the ones whose amounts the counters add). */
  sameCurrencyCount: Record<VelocityWindow, number>;
  lastAt: Date | null;
}

const hourMs = 3_600_000;

/**
 * Reads the counters of every key a payment has, at `at`, in one query. Each window `(at - length, at]` is its
 * whole hours, summed from `velocity_hours` (kept by a trigger on every entry), plus its two partial hours
 * counted from the entries themselves: so a busy key costs a few hundred bucket rows, not every payment of its
 * week, and counts stay exact at both edges.
 */
export async function readVelocityAll(
  db: Kysely<Database>,
  scope: { merchantId: string; livemode: boolean },
  keys: VelocityKeys,
  currency: string,
  at: Date,
): Promise<Partial<Record<VelocityDimension, KeyVelocity>>> {
  const wanted = velocityDimensions.filter((dimension) => keys[dimension] !== undefined && keys[dimension] !== '');
  if (wanted.length === 0) return {};
  const atMs = at.getTime();
  const lastWholeHour = new Date(Math.floor(atMs / hourMs) * hourMs);
  const windows = Object.entries(velocityWindows).map(([name, length]) => {
    const start = new Date(atMs - length);
    // The first hour boundary strictly after the window's (excluded) start.
    const firstWholeHour = new Date(Math.floor(start.getTime() / hourMs) * hourMs + hourMs);
    return { name, start, firstWholeHour };
  });
  const keyMatch = sql.join(wanted.map((dimension) => sql`(dimension = ${dimension} AND key = ${keys[dimension] as string})`), sql` OR `);
  const scoped = sql`merchant_id = ${scope.merchantId} AND livemode = ${scope.livemode} AND (${keyMatch})`;
  const rawRanges = sql.join([
    ...windows.map((window) => sql`(occurred_at > ${window.start} AND occurred_at < ${window.firstWholeHour})`),
    sql`(occurred_at >= ${lastWholeHour} AND occurred_at <= ${at})`,
  ], sql` OR `);
  const widest = windows.find((window) => window.name === 'd7');
  assert(widest !== undefined, 'the widest window is 7 days');
  // Each row's window membership is computed once; the aggregates only test the flags.
  const flags = windows.map((window) => sql`((bucket AND t >= ${window.firstWholeHour} AND t < ${lastWholeHour})
      OR (NOT bucket AND ((t > ${window.start} AND t < ${window.firstWholeHour}) OR (t >= ${lastWholeHour} AND t <= ${at})))) AS ${sql.ref(`in_${window.name}`)}`);
  const columns = windows.flatMap((window) => {
    const inWindow = sql.ref(`in_${window.name}`);
    const tally = (part: string, outcome: RawBuilder<boolean>) => [
      sql`coalesce(sum(n) FILTER (WHERE ${inWindow} AND ${outcome}), 0) AS ${sql.ref(`${window.name}_${part}_count`)}`,
      sql`coalesce(sum(same_currency_amount) FILTER (WHERE ${inWindow} AND ${outcome}), 0) AS ${sql.ref(`${window.name}_${part}_amount`)}`,
    ];
    return [
      ...tally('total', sql<boolean>`true`), ...tally('declined', sql<boolean>`outcome = 'declined'`), ...tally('blocked', sql<boolean>`outcome = 'blocked'`),
      sql`coalesce(sum(n) FILTER (WHERE ${inWindow} AND same_currency), 0) AS ${sql.ref(`${window.name}_same_currency_count`)}`,
    ];
  });
  const result = await sql<CounterRow>`
    WITH src AS (
      SELECT dimension, false AS bucket, occurred_at AS t, outcome, currency, 1::bigint AS n, amount, occurred_at AS last_at
      FROM velocity_entries WHERE ${scoped} AND (${rawRanges})
      UNION ALL
      SELECT dimension, true, hour, outcome, currency, count, amount, last_at
      FROM velocity_hours WHERE ${scoped} AND hour >= ${widest.firstWholeHour} AND hour < ${lastWholeHour}
    ), flagged AS (
      SELECT dimension, outcome, n, currency = ${currency} AS same_currency, CASE WHEN currency = ${currency} THEN amount ELSE 0 END AS same_currency_amount, last_at, ${sql.join(flags, sql`, `)}
      FROM src
    )
    SELECT dimension, ${sql.join(columns, sql`, `)}, max(last_at) FILTER (WHERE in_d7) AS last_at
    FROM flagged GROUP BY dimension`.execute(db);
  const found: Partial<Record<VelocityDimension, KeyVelocity>> = {};
  for (const dimension of wanted) found[dimension] = { counters: emptyCounters(), sameCurrencyCount: { h1: 0, h24: 0, d7: 0 }, lastAt: null };
  for (const row of result.rows) {
    const entry = found[row.dimension as VelocityDimension];
    if (entry === undefined) continue;
    for (const name of Object.keys(velocityWindows) as VelocityWindow[]) {
      for (const part of ['total', 'declined', 'blocked'] as const) {
        entry.counters[name][part] = { count: Number(row[`${name}_${part}_count`]), amount: BigInt(String(row[`${name}_${part}_amount`] ?? 0)) };
      }
      entry.sameCurrencyCount[name] = Number(row[`${name}_same_currency_count`]);
    }
    entry.lastAt = row.last_at === null || row.last_at === undefined ? null : new Date(row.last_at);
  }
  return found;
}

/** Reads one key's counters at `at`. */
export async function readVelocity(
  db: Kysely<Database>,
  scope: { merchantId: string; livemode: boolean },
  dimension: VelocityDimension,
  key: string,
  currency: string,
  at: Date,
): Promise<VelocityCounters> {
  const found = await readVelocityAll(db, scope, { [dimension]: key }, currency, at);
  return found[dimension]?.counters ?? emptyCounters();
}
