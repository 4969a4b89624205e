import { sql, type Kysely } from 'kysely';
import { imputedSparkovValues, sparkovCategory } from '../risk/live-features.ts';
import type { DecisionInputs } from '../risk/engine.ts';
import type { Database } from '../store/database.ts';

/**
 * Coffer's own history as a training file for `coffer risk train --dataset sparkov --legitimate-weight 1`: one row
 * per decided card payment, in the Sparkov file's columns, labelled 1 when a review was rejected or a fraud
 * dispute came in, 0 otherwise (nothing reported against it). Blocked payments are left out (they never ran, so
 * nothing can be learned of them), and so are unlabelled payments younger than `minAgeDays`: a fraud dispute
 * can take weeks to arrive, and until then "nothing reported" does not mean legitimate. What Coffer does not take (the cardholder's home and
 * birth date) is written as the values the live features impute, so that retraining learns from what Coffer
 * measures. `cc_num` is the card's fingerprint, which groups a card's payments as the card number would.
 */
export const exportColumns = [
  'trans_date_trans_time', 'cc_num', 'category', 'amt', 'lat', 'long', 'dob', 'merch_lat', 'merch_long', 'is_fraud',
  'decision', 'charge', 'label_source', 'labeled_at',
] as const;

interface ExportRow {
  id: string;
  charge_id: string;
  created_at: Date;
  inputs: DecisionInputs | string;
  time_zone: string;
  fraud: boolean | null;
  sources: string | null;
  labeled_at: Date | null;
}

const wallClock = new Map<string, Intl.DateTimeFormat>();

function localDateTime(at: Date, timeZone: string): string {
  let format = wallClock.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-CA', {
      timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    });
    wallClock.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(at).map((part) => [part.type, part.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** Degrees of longitude at the equator for a distance, so that (0, 0) to (0, d) is that many km. */
const imputedLongitude = imputedSparkovValues.distance_km / ((6371.0088 * Math.PI) / 180);

export interface ExportFilter {
  merchantId?: string;
  livemode: boolean;
  since?: Date;
  /** Unlabelled payments younger than this many days are left out (default 30). */
  minAgeDays?: number;
  now?: Date;
}

export async function exportTrainingRows(db: Kysely<Database>, filter: ExportFilter): Promise<{ csv: string; rows: number; frauds: number }> {
  const merchant = filter.merchantId === undefined ? sql`true` : sql`d.merchant_id = ${filter.merchantId}`;
  const since = filter.since === undefined ? sql`true` : sql`d.created_at >= ${filter.since}`;
  const result = await sql<ExportRow>`
    SELECT d.id, d.charge_id, d.created_at, d.inputs, coalesce(rs.time_zone, 'UTC') AS time_zone,
           bool_or(l.fraud) AS fraud, string_agg(l.source, '+' ORDER BY l.source) AS sources, max(l.labeled_at) AS labeled_at
    FROM risk_decisions d
    LEFT JOIN merchant_risk_settings rs ON rs.merchant_id = d.merchant_id AND rs.livemode = d.livemode
    LEFT JOIN risk_labels l ON l.charge_id = d.charge_id
    WHERE d.livemode = ${filter.livemode} AND ${merchant} AND ${since} AND d.action <> 'block'
    GROUP BY d.id, d.charge_id, d.created_at, d.inputs, rs.time_zone
    ORDER BY d.created_at, d.id`.execute(db);
  const matureBefore = (filter.now ?? new Date()).getTime() - (filter.minAgeDays ?? 30) * 86_400_000;
  const lines = [exportColumns.join(',')];
  let frauds = 0;
  for (const row of result.rows) {
    const inputs = (typeof row.inputs === 'string' ? JSON.parse(row.inputs) : row.inputs) as DecisionInputs;
    const attributes = inputs.attributes;
    const fingerprint = attributes.card_fingerprint;
    const amountUsd = attributes.amount_usd;
    // Only card payments with a dollar amount are the model's payments.
    if (typeof fingerprint !== 'string' || typeof amountUsd !== 'number') continue;
    const createdAt = new Date(row.created_at);
    const local = localDateTime(createdAt, row.time_zone);
    const birth = new Date(Date.parse(`${local.slice(0, 10)}T00:00:00Z`) - imputedSparkovValues.cardholder_age_years * 365.2425 * 86_400_000);
    const fraud = row.fraud === true;
    if (row.fraud === null && createdAt.getTime() > matureBefore) continue;
    if (fraud) frauds += 1;
    const category = sparkovCategory(typeof attributes.merchant_category === 'string' ? attributes.merchant_category : null) ?? 'unknown';
    lines.push([
      local, fingerprint, category, String(amountUsd), '0', '0', birth.toISOString().slice(0, 10), '0', imputedLongitude.toFixed(6), fraud ? '1' : '0',
      row.id, row.charge_id, row.sources ?? '', row.labeled_at === null ? '' : new Date(row.labeled_at).toISOString(),
    ].map(csvField).join(','));
  }
  return { csv: `${lines.join('\n')}\n`, rows: lines.length - 1, frauds };
}
