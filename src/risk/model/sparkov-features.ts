/**
 * Sparkov (simulated card payments): only what Coffer itself knows when a payment is confirmed. That is the
 * amount, the merchant's category, the clock time, the distance between the cardholder's and the merchant's
 * coordinates, the cardholder's age, and the card's own earlier payments. Names, addresses, jobs, city sizes
 * and the merchant's name stay out: Coffer does not have them.
 *
 * Card history is causal: a payment sees only the same card's payments strictly earlier in time, in the same
 * input (the training file when training, the file being scored when scoring, or the live history). Payments at
 * the same second do not see each other, so the features do not depend on the order of rows in a file.
 */
import { columnIndex, columnIndexes, CsvInputError, type CsvTable } from './csv.ts';
import { parseLabel, parseNumberField, parseWallClockMs, type FeatureDefinition, type FeatureRows } from './features.ts';

export const sparkovInputColumns = ['trans_date_trans_time', 'cc_num', 'category', 'amt', 'lat', 'long', 'dob', 'merch_lat', 'merch_long'] as const;

const hourMs = 3_600_000;
const dayMs = 24 * hourMs;
/** "No earlier payment" reads as this many hours since the previous one (30 days, beyond any window used). */
const hoursSinceNoneHours = 720;

export const sparkovFeatures: FeatureDefinition[] = [
  { name: 'amount', derivation: 'amt: the payment amount (US dollars)' },
  { name: 'category_risk', derivation: 'the merchant category (category) as the smoothed fraud log-odds of that category in the training data; a category the training data did not have gets the overall log-odds' },
  { name: 'hour_of_day', derivation: 'hour and minute of trans_date_trans_time, in hours (0 to 24)' },
  { name: 'day_of_week', derivation: 'day of the week of trans_date_trans_time (0 = Sunday)' },
  { name: 'distance_km', derivation: 'great-circle distance between the cardholder (lat, long) and the merchant (merch_lat, merch_long), km' },
  { name: 'cardholder_age_years', derivation: 'years from dob to trans_date_trans_time' },
  { name: 'card_count_24h', derivation: 'payments of the same card (cc_num) in the 24 hours before this one' },
  { name: 'card_amount_24h', derivation: 'their total amount' },
  { name: 'card_count_7d', derivation: 'payments of the same card in the 7 days before this one' },
  { name: 'card_amount_7d', derivation: 'their total amount' },
  { name: 'card_count_before', derivation: 'every earlier payment of the same card in the input' },
  { name: 'hours_since_card_previous', derivation: `hours since the card's previous payment (${hoursSinceNoneHours} if none)` },
  { name: 'amount_to_card_mean', derivation: "amount divided by the mean amount of the card's earlier payments (1 if none)" },
];

/** What the training data teaches about categories, kept in the artifact. */
export interface SparkovEncoding {
  categoryRisk: Record<string, number>;
  unknownCategoryRisk: number;
}

export interface EarlierPayment {
  timeMs: number;
  amount: number;
}

/** One payment as Coffer sees it at confirmation. */
export interface SparkovPayment {
  timeMs: number;
  amount: number;
  category: string;
  cardholderLatitude: number;
  cardholderLongitude: number;
  merchantLatitude: number;
  merchantLongitude: number;
  birthDateMs: number;
}

function distanceKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const radians = Math.PI / 180;
  const dLat = (lat2 - lat1) * radians;
  const dLon = (lon2 - lon1) * radians;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * radians) * Math.cos(lat2 * radians) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(a)));
}

/**
 * Writes the feature vector of one payment into `out` at `offset`. `earlier` holds the card's payments strictly
 * before this one, oldest first. Training, file scoring and live scoring all come through here.
 */
export function writeSparkovFeatures(payment: SparkovPayment, earlier: readonly EarlierPayment[], encoding: SparkovEncoding, out: Float64Array, offset = 0): void {
  let count24h = 0;
  let amount24h = 0;
  let count7d = 0;
  let amount7d = 0;
  let amountBefore = 0;
  for (const previous of earlier) {
    const age = payment.timeMs - previous.timeMs;
    amountBefore += previous.amount;
    if (age < 7 * dayMs) {
      count7d += 1;
      amount7d += previous.amount;
    }
    if (age < dayMs) {
      count24h += 1;
      amount24h += previous.amount;
    }
  }
  const last = earlier[earlier.length - 1];
  const clock = new Date(payment.timeMs);
  out[offset] = payment.amount;
  out[offset + 1] = encoding.categoryRisk[payment.category] ?? encoding.unknownCategoryRisk;
  out[offset + 2] = clock.getUTCHours() + clock.getUTCMinutes() / 60;
  out[offset + 3] = clock.getUTCDay();
  out[offset + 4] = distanceKm(payment.cardholderLatitude, payment.cardholderLongitude, payment.merchantLatitude, payment.merchantLongitude);
  out[offset + 5] = (payment.timeMs - payment.birthDateMs) / (365.2425 * dayMs);
  out[offset + 6] = count24h;
  out[offset + 7] = amount24h;
  out[offset + 8] = count7d;
  out[offset + 9] = amount7d;
  out[offset + 10] = earlier.length;
  out[offset + 11] = last === undefined ? hoursSinceNoneHours : Math.min(hoursSinceNoneHours, (payment.timeMs - last.timeMs) / hourMs);
  out[offset + 12] = earlier.length === 0 ? 1 : payment.amount / (amountBefore / earlier.length);
}

interface ParsedRows {
  payments: SparkovPayment[];
  cards: string[];
}

function parsePayments(table: CsvTable): ParsedRows {
  const columns = columnIndexes(table, sparkovInputColumns);
  const payments: SparkovPayment[] = [];
  const cards: string[] = [];
  table.rows.forEach((fields, i) => {
    const row = i + 1;
    const number = (column: (typeof sparkovInputColumns)[number]) => parseNumberField(fields[columns[column]], row, column);
    const card = (fields[columns.cc_num] ?? '').trim();
    if (card === '') throw new CsvInputError('the value is missing', row, 'cc_num');
    const category = (fields[columns.category] ?? '').trim();
    if (category === '') throw new CsvInputError('the value is missing', row, 'category');
    const amount = number('amt');
    if (amount < 0) throw new CsvInputError(`amount ${amount} is negative`, row, 'amt');
    payments.push({
      timeMs: parseWallClockMs(fields[columns.trans_date_trans_time], row, 'trans_date_trans_time'),
      amount,
      category,
      cardholderLatitude: number('lat'),
      cardholderLongitude: number('long'),
      merchantLatitude: number('merch_lat'),
      merchantLongitude: number('merch_long'),
      birthDateMs: parseWallClockMs(fields[columns.dob], row, 'dob'),
    });
    cards.push(card);
  });
  return { payments, cards };
}

/**
 * Smoothed log-odds of fraud per category, weighting legitimate rows as the case-control sample says, shrunk
 * towards the overall rate by `smoothingRows` rows' worth of prior.
 */
export function fitSparkovEncoding(table: CsvTable, labelColumn: string, legitimateWeight: number, smoothingRows = 20): SparkovEncoding {
  const categoryColumn = columnIndex(table, 'category');
  const labelIndex = columnIndex(table, labelColumn);
  const totals = new Map<string, { fraud: number; legitimate: number }>();
  let fraud = 0;
  let legitimate = 0;
  table.rows.forEach((fields, i) => {
    const category = (fields[categoryColumn] ?? '').trim();
    const isFraud = parseLabel(fields[labelIndex], i + 1, labelColumn) === 1;
    const entry = totals.get(category) ?? { fraud: 0, legitimate: 0 };
    if (isFraud) entry.fraud += 1;
    else entry.legitimate += legitimateWeight;
    totals.set(category, entry);
    if (isFraud) fraud += 1;
    else legitimate += legitimateWeight;
  });
  const prior = fraud / (fraud + legitimate);
  const unknownCategoryRisk = Math.log(prior / (1 - prior));
  const categoryRisk: Record<string, number> = {};
  for (const category of [...totals.keys()].sort()) {
    const entry = totals.get(category) as { fraud: number; legitimate: number };
    // The prior counts as `smoothingRows` rows of the category's own (weighted) volume.
    const rows = entry.fraud + entry.legitimate / legitimateWeight;
    const share = rows / (rows + smoothingRows);
    const weightedTotal = entry.fraud + entry.legitimate;
    const rate = share * (entry.fraud / weightedTotal) + (1 - share) * prior;
    categoryRisk[category] = Math.log(rate / (1 - rate));
  }
  return { categoryRisk, unknownCategoryRisk };
}

export function extractSparkovFeatures(table: CsvTable, encoding: SparkovEncoding): FeatureRows {
  const { payments, cards } = parsePayments(table);
  const featureCount = sparkovFeatures.length;
  const rowCount = payments.length;
  const x = new Float64Array(rowCount * featureCount);
  const byCard = new Map<string, number[]>();
  cards.forEach((card, i) => {
    const list = byCard.get(card);
    if (list === undefined) byCard.set(card, [i]);
    else list.push(i);
  });
  for (const rows of byCard.values()) {
    rows.sort((a, b) => (payments[a] as SparkovPayment).timeMs - (payments[b] as SparkovPayment).timeMs || a - b);
    const history: EarlierPayment[] = [];
    let k = 0;
    while (k < rows.length) {
      // Payments at the same time are scored together, each seeing only what came strictly before.
      const timeMs = (payments[rows[k] as number] as SparkovPayment).timeMs;
      let end = k;
      while (end < rows.length && (payments[rows[end] as number] as SparkovPayment).timeMs === timeMs) end += 1;
      for (let j = k; j < end; j += 1) {
        const i = rows[j] as number;
        writeSparkovFeatures(payments[i] as SparkovPayment, history, encoding, x, i * featureCount);
      }
      for (let j = k; j < end; j += 1) {
        const payment = payments[rows[j] as number] as SparkovPayment;
        history.push({ timeMs: payment.timeMs, amount: payment.amount });
      }
      k = end;
    }
  }
  return {
    featureCount,
    rowCount,
    x,
    timeSeconds: Float64Array.from(payments, (payment) => payment.timeMs / 1000),
    amounts: Float64Array.from(payments, (payment) => payment.amount),
  };
}
