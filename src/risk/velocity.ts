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

const spanMs = { second: 1_000, minute: 60_000, hour: 3_600_000 } as const;
type Span = keyof typeof spanMs;

function floorTo(ms: number, span: Span): number {
  return Math.floor(ms / spanMs[span]) * spanMs[span];
}

function ceilTo(ms: number, span: Span): number {
  return Math.ceil(ms / spanMs[span]) * spanMs[span];
}

/**
 * One piece of the time read for a key: the entries (`span` = 'entry') or one bucket size, over `[from, to)`
 * where an edge marked `after` starts (or ends) just after the instant named, and the windows it belongs to.
 */
interface Arm {
  span: Span | 'entry';
  from: Date;
  fromAfter: boolean;
  to: Date;
  toAfter: boolean;
  windows: Record<VelocityWindow, boolean>;
}

/**
 * Cuts each window `(at - length, at]` into the pieces read for it: at its start, the entries of the partial
 * second, then whole seconds to the minute, whole minutes to the hour; at its end, whole minutes of the current
 * hour, whole seconds of the current minute, and the entries of the current second; whole hours between. The
 * pieces at the end, and the hours, are shared by the windows they belong to; no instant is in two pieces.
 */
export function velocityArms(atMs: number): Arm[] {
  const only = (name: VelocityWindow): Record<VelocityWindow, boolean> => ({ h1: name === 'h1', h24: name === 'h24', d7: name === 'd7' });
  const all = { h1: true, h24: true, d7: true };
  const at = (ms: number) => new Date(ms);
  const arms: Arm[] = [];
  const starts = {} as Record<VelocityWindow, number>;
  for (const [name, length] of Object.entries(velocityWindows) as Array<[VelocityWindow, number]>) {
    const start = atMs - length;
    const wholeSecond = floorTo(start, 'second') + spanMs.second; // the first second boundary after the excluded start
    const wholeMinute = ceilTo(wholeSecond, 'minute');
    const wholeHour = ceilTo(wholeMinute, 'hour');
    arms.push(
      { span: 'entry', from: at(start), fromAfter: true, to: at(wholeSecond), toAfter: false, windows: only(name) },
      { span: 'second', from: at(wholeSecond), fromAfter: false, to: at(wholeMinute), toAfter: false, windows: only(name) },
      { span: 'minute', from: at(wholeMinute), fromAfter: false, to: at(wholeHour), toAfter: false, windows: only(name) },
    );
    starts[name] = wholeHour;
  }
  const hour = floorTo(atMs, 'hour');
  const minute = floorTo(atMs, 'minute');
  const second = floorTo(atMs, 'second');
  assert(starts.d7 <= starts.h24 && starts.h24 <= starts.h1 && starts.h1 <= hour, 'the windows\' whole hours nest');
  arms.push(
    { span: 'hour', from: at(starts.d7), fromAfter: false, to: at(starts.h24), toAfter: false, windows: only('d7') },
    { span: 'hour', from: at(starts.h24), fromAfter: false, to: at(starts.h1), toAfter: false, windows: { h1: false, h24: true, d7: true } },
    { span: 'hour', from: at(starts.h1), fromAfter: false, to: at(hour), toAfter: false, windows: all },
    { span: 'minute', from: at(hour), fromAfter: false, to: at(minute), toAfter: false, windows: all },
    { span: 'second', from: at(minute), fromAfter: false, to: at(second), toAfter: false, windows: all },
    { span: 'entry', from: at(second), fromAfter: false, to: at(atMs), toAfter: true, windows: all },
  );
  return arms.filter((arm) => arm.from.getTime() < arm.to.getTime() || (arm.toAfter && arm.from.getTime() === arm.to.getTime()));
}

function instant(date: Date, after: boolean): RawBuilder<Date> {
  // Timestamps are stored to the microsecond: "just after" an instant is the next microsecond.
  return after ? sql<Date>`${date}::timestamptz + interval '1 microsecond'` : sql<Date>`${date}::timestamptz`;
}

/**
 * Reads the counters of every key a payment has, at `at`, in one query. Each window is read as the pieces
 * `velocityArms` cuts it into: whole hours, minutes and seconds from `velocity_buckets` (kept by a trigger on
 * every entry) and only the entries of its two partial seconds, each piece one index range per key. So a busy key
 * costs a few hundred bucket rows at most, however fast it pays, and counts stay exact at both edges.
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
  const keyRows = sql.join(wanted.map((dimension) => sql`(${dimension}::text, ${keys[dimension] as string}::text)`));
  const armRows = sql.join(velocityArms(at.getTime()).map((arm) =>
    sql`(${arm.span}::text, ${instant(arm.from, arm.fromAfter)}, ${instant(arm.to, arm.toAfter)}, ${arm.windows.h1}::boolean, ${arm.windows.h24}::boolean, ${arm.windows.d7}::boolean)`));
  const windowNames = Object.keys(velocityWindows) as VelocityWindow[];
  const columns = windowNames.flatMap((name) => {
    const inWindow = sql.ref(`in_${name}`);
    const tally = (part: string, outcome: RawBuilder<boolean>) => [
      sql`coalesce(sum(n) FILTER (WHERE ${inWindow} AND ${outcome}), 0) AS ${sql.ref(`${name}_${part}_count`)}`,
      sql`coalesce(sum(CASE WHEN currency = ${currency} THEN amount ELSE 0 END) FILTER (WHERE ${inWindow} AND ${outcome}), 0) AS ${sql.ref(`${name}_${part}_amount`)}`,
    ];
    return [
      ...tally('total', sql<boolean>`true`), ...tally('declined', sql<boolean>`outcome = 'declined'`), ...tally('blocked', sql<boolean>`outcome = 'blocked'`),
      sql`coalesce(sum(n) FILTER (WHERE ${inWindow} AND currency = ${currency}), 0) AS ${sql.ref(`${name}_same_currency_count`)}`,
    ];
  });
  const result = await sql<CounterRow>`
    WITH keys (dimension, key) AS (VALUES ${keyRows}),
    arms (span, from_at, to_at, in_h1, in_h24, in_d7) AS (VALUES ${armRows}),
    src AS (
      SELECT k.dimension, a.in_h1, a.in_h24, a.in_d7, e.outcome, e.currency, 1::bigint AS n, e.amount, e.occurred_at AS last_at
      FROM keys k CROSS JOIN arms a CROSS JOIN LATERAL (
        SELECT outcome, currency, amount, occurred_at FROM velocity_entries
        WHERE merchant_id = ${scope.merchantId} AND livemode = ${scope.livemode} AND dimension = k.dimension AND key = k.key
          AND occurred_at >= a.from_at AND occurred_at < a.to_at
      ) e
      WHERE a.span = 'entry'
      UNION ALL
      SELECT k.dimension, a.in_h1, a.in_h24, a.in_d7, b.outcome, b.currency, b.count, b.amount, b.last_at
      FROM keys k CROSS JOIN arms a CROSS JOIN LATERAL (
        SELECT outcome, currency, count, amount, last_at FROM velocity_buckets
        WHERE merchant_id = ${scope.merchantId} AND livemode = ${scope.livemode} AND dimension = k.dimension AND key = k.key
          AND span = a.span AND bucket_start >= a.from_at AND bucket_start < a.to_at
      ) b
      WHERE a.span <> 'entry'
    )
    SELECT dimension, ${sql.join(columns, sql`, `)}, max(last_at) FILTER (WHERE in_d7) AS last_at
    FROM src GROUP BY dimension`.execute(db);
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
