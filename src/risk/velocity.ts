import { sql, type Kysely } from 'kysely';
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

interface TallyRow {
  dimension: VelocityDimension;
  in_h1: boolean;
  in_h24: boolean;
  in_d7: boolean;
  outcome: VelocityOutcome;
  same_currency: boolean;
  n: string | number | bigint;
  amount: string | number | bigint;
  last_at: Date;
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
  from: number;
  fromAfter: boolean;
  to: number;
  toAfter: boolean;
  windows: Record<VelocityWindow, boolean>;
}

/**
 * Cuts each window `(at - length, at]` into the pieces read for it: at its start, the entries of the partial
 * second, then whole seconds to the minute, whole minutes to the hour; at its end, whole minutes of the current
 * hour, whole seconds of the current minute, and the entries of the current second; whole hours between. The
 * pieces at the end, and the hours, are shared by the windows they belong to; no instant is in two pieces.
 */
function velocityArms(atMs: number): Arm[] {
  const only = (name: VelocityWindow): Record<VelocityWindow, boolean> => ({ h1: name === 'h1', h24: name === 'h24', d7: name === 'd7' });
  const all = { h1: true, h24: true, d7: true };
  const arms: Arm[] = [];
  const starts = {} as Record<VelocityWindow, number>;
  for (const [name, length] of Object.entries(velocityWindows) as Array<[VelocityWindow, number]>) {
    const start = atMs - length;
    const wholeSecond = floorTo(start, 'second') + spanMs.second; // the first second boundary after the excluded start
    const wholeMinute = ceilTo(wholeSecond, 'minute');
    const wholeHour = ceilTo(wholeMinute, 'hour');
    arms.push(
      { span: 'entry', from: start, fromAfter: true, to: wholeSecond, toAfter: false, windows: only(name) },
      { span: 'second', from: wholeSecond, fromAfter: false, to: wholeMinute, toAfter: false, windows: only(name) },
      { span: 'minute', from: wholeMinute, fromAfter: false, to: wholeHour, toAfter: false, windows: only(name) },
    );
    starts[name] = wholeHour;
  }
  const hour = floorTo(atMs, 'hour');
  const minute = floorTo(atMs, 'minute');
  const second = floorTo(atMs, 'second');
  assert(starts.d7 <= starts.h24 && starts.h24 <= starts.h1 && starts.h1 <= hour, 'the windows\' whole hours nest');
  arms.push(
    { span: 'hour', from: starts.d7, fromAfter: false, to: starts.h24, toAfter: false, windows: only('d7') },
    { span: 'hour', from: starts.h24, fromAfter: false, to: starts.h1, toAfter: false, windows: { h1: false, h24: true, d7: true } },
    { span: 'hour', from: starts.h1, fromAfter: false, to: hour, toAfter: false, windows: all },
    { span: 'minute', from: hour, fromAfter: false, to: minute, toAfter: false, windows: all },
    { span: 'second', from: minute, fromAfter: false, to: second, toAfter: false, windows: all },
    { span: 'entry', from: second, fromAfter: false, to: atMs, toAfter: true, windows: all },
  );
  return arms.filter((arm) => arm.from < arm.to || (arm.toAfter && arm.from === arm.to));
}

/** An instant as PostgreSQL text; "just after" it is the next microsecond (timestamps are stored to the microsecond). */
function instant(ms: number, after: boolean): string {
  const text = new Date(ms).toISOString();
  return after ? `${text.slice(0, -1)}001Z` : text;
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
  const wanted = wantedDimensions(keys);
  if (wanted.length === 0) return {};
  const result = await velocityQuery(scope, keys, currency, at).execute(db);
  // A few rows per key (one per set of windows, outcome, and whether in the asked currency), added up here.
  const found: Partial<Record<VelocityDimension, KeyVelocity>> = {};
  for (const dimension of wanted) found[dimension] = { counters: emptyCounters(), sameCurrencyCount: { h1: 0, h24: 0, d7: 0 }, lastAt: null };
  for (const row of result.rows) {
    const entry = found[row.dimension];
    if (entry === undefined) continue;
    const count = Number(row.n);
    const amount = row.same_currency ? BigInt(String(row.amount)) : 0n;
    const parts = row.outcome === 'declined' || row.outcome === 'blocked' ? (['total', row.outcome] as const) : (['total'] as const);
    for (const name of Object.keys(velocityWindows) as VelocityWindow[]) {
      if (!row[`in_${name}`]) continue;
      for (const part of parts) {
        const tally = entry.counters[name][part];
        tally.count += count;
        tally.amount += amount;
      }
      if (row.same_currency) entry.sameCurrencyCount[name] += count;
    }
    const lastAt = new Date(row.last_at);
    if (row.in_d7 && (entry.lastAt === null || lastAt.getTime() > entry.lastAt.getTime())) entry.lastAt = lastAt;
  }
  return found;
}

/** The dimensions of `keys` that have a key. */
function wantedDimensions(keys: VelocityKeys): VelocityDimension[] {
  return velocityDimensions.filter((dimension) => keys[dimension] !== undefined && keys[dimension] !== '');
}

/** The statement `readVelocityAll` runs, for at least one key (exported so that tests can look at its plan). */
export function velocityQuery(scope: { merchantId: string; livemode: boolean }, keys: VelocityKeys, currency: string, at: Date) {
  const wanted = wantedDimensions(keys);
  // The keys and the pieces go as two JSON parameters, so that the statement's text never changes and stays
  // cheap to plan.
  const keyRows = JSON.stringify(wanted.map((dimension) => ({ dimension, key: keys[dimension] })));
  const armRows = JSON.stringify(velocityArms(at.getTime()).map((arm) => ({
    span: arm.span, from_at: instant(arm.from, arm.fromAfter), to_at: instant(arm.to, arm.toAfter),
    in_h1: arm.windows.h1, in_h24: arm.windows.h24, in_d7: arm.windows.d7,
  })));
  // Each piece is read for each key by its own index range: OFFSET 0 keeps the planner from merging the lateral
  // reads into a join that would scan the merchant's rows of every key.
  return sql<TallyRow>`
    WITH keys AS (SELECT * FROM jsonb_to_recordset(${keyRows}::jsonb) AS k (dimension text, key text)),
    arms AS (SELECT * FROM jsonb_to_recordset(${armRows}::jsonb)
      AS a (span text, from_at timestamptz, to_at timestamptz, in_h1 boolean, in_h24 boolean, in_d7 boolean)),
    src AS (
      SELECT k.dimension, a.in_h1, a.in_h24, a.in_d7, e.outcome, e.currency, 1::bigint AS n, e.amount, e.occurred_at AS last_at
      FROM keys k CROSS JOIN arms a CROSS JOIN LATERAL (
        SELECT outcome, currency, amount, occurred_at FROM velocity_entries
        WHERE merchant_id = ${scope.merchantId} AND livemode = ${scope.livemode} AND dimension = k.dimension AND key = k.key
          AND occurred_at >= a.from_at AND occurred_at < a.to_at
        OFFSET 0
      ) e
      WHERE a.span = 'entry'
      UNION ALL
      SELECT k.dimension, a.in_h1, a.in_h24, a.in_d7, b.outcome, b.currency, b.count, b.amount, b.last_at
      FROM keys k CROSS JOIN arms a CROSS JOIN LATERAL (
        SELECT outcome, currency, count, amount, last_at FROM velocity_buckets
        WHERE merchant_id = ${scope.merchantId} AND livemode = ${scope.livemode} AND dimension = k.dimension AND key = k.key
          AND span = a.span AND bucket_start >= a.from_at AND bucket_start < a.to_at
        OFFSET 0
      ) b
      WHERE a.span <> 'entry'
    )
    SELECT dimension, in_h1, in_h24, in_d7, outcome, currency = ${currency} AS same_currency, sum(n) AS n, sum(amount) AS amount,
           max(last_at) AS last_at
    FROM src GROUP BY 1, 2, 3, 4, 5, 6`;
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
