import { sql, type Kysely } from 'kysely';
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
  lastAt: Date | null;
}

/**
 * Reads the counters of every key a payment has, at `at`, in one query over their last 7 days (grouped by
 * dimension; the lookup index serves each key's range).
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
  const columns = Object.entries(velocityWindows).flatMap(([name, length]) => {
    const since = new Date(at.getTime() - length);
    const inWindow = sql`occurred_at > ${since}`;
    return [
      sql`count(*) FILTER (WHERE ${inWindow})`.as(`${name}_total_count`),
      sql`coalesce(sum(amount) FILTER (WHERE ${inWindow} AND currency = ${currency}), 0)`.as(`${name}_total_amount`),
      sql`count(*) FILTER (WHERE ${inWindow} AND outcome = 'declined')`.as(`${name}_declined_count`),
      sql`coalesce(sum(amount) FILTER (WHERE ${inWindow} AND outcome = 'declined' AND currency = ${currency}), 0)`.as(`${name}_declined_amount`),
      sql`count(*) FILTER (WHERE ${inWindow} AND outcome = 'blocked')`.as(`${name}_blocked_count`),
      sql`coalesce(sum(amount) FILTER (WHERE ${inWindow} AND outcome = 'blocked' AND currency = ${currency}), 0)`.as(`${name}_blocked_amount`),
    ];
  });
  const rows = await db.selectFrom('velocity_entries').select('dimension').select(columns).select(sql<Date | null>`max(occurred_at)`.as('last_at'))
    .where('merchant_id', '=', scope.merchantId).where('livemode', '=', scope.livemode)
    .where((eb) => eb.or(wanted.map((dimension) => eb.and([eb('dimension', '=', dimension), eb('key', '=', keys[dimension] as string)]))))
    .where('occurred_at', '>', new Date(at.getTime() - velocityWindows.d7)).where('occurred_at', '<=', at)
    .groupBy('dimension')
    .execute() as unknown as CounterRow[];
  const found: Partial<Record<VelocityDimension, KeyVelocity>> = {};
  for (const dimension of wanted) found[dimension] = { counters: emptyCounters(), lastAt: null };
  for (const row of rows) {
    const entry = found[row.dimension as VelocityDimension];
    if (entry === undefined) continue;
    for (const name of Object.keys(velocityWindows) as VelocityWindow[]) {
      for (const part of ['total', 'declined', 'blocked'] as const) {
        entry.counters[name][part] = { count: Number(row[`${name}_${part}_count`]), amount: BigInt(String(row[`${name}_${part}_amount`] ?? 0)) };
      }
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
