/**
 * What the model sees: a fixed list of named numeric features per payment, the same list in training and at
 * scoring time, each with a sentence saying how it is derived (stored in the artifact, shown with reason codes).
 */
import { CsvInputError } from './csv.ts';

export interface FeatureDefinition {
  /** snake_case, units last (`amount`, `card_amount_24h`, `hours_since_card_previous`). */
  name: string;
  derivation: string;
}

/** Features of every row of an input file, row-major, with what splitting and costing need. */
export interface FeatureRows {
  featureCount: number;
  rowCount: number;
  /** Row i's feature j is at i * featureCount + j. */
  x: Float64Array;
  /** When each payment happened, in seconds on the data set's own clock (orders rows for the time split). */
  timeSeconds: Float64Array;
  /** Payment amount in the data set's currency (major units): the cost model prices errors with it. */
  amounts: Float64Array;
}

export function featureVector(rows: FeatureRows, index: number): Float64Array {
  return rows.x.subarray(index * rows.featureCount, (index + 1) * rows.featureCount);
}

/** A field as a finite number, or an error naming the row (1 = first data row) and the column. */
export function parseNumberField(field: string | undefined, row: number, column: string): number {
  const text = (field ?? '').trim();
  if (text === '') throw new CsvInputError('the value is missing', row, column);
  const value = Number(text);
  if (!Number.isFinite(value)) throw new CsvInputError(`"${text}" is not a finite number`, row, column);
  return value;
}

/** "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS" read as a wall-clock time (no zone; kept as if UTC), in milliseconds. */
export function parseWallClockMs(field: string | undefined, row: number, column: string): number {
  const text = (field ?? '').trim();
  if (text === '') throw new CsvInputError('the value is missing', row, column);
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2}))?$/.exec(text);
  if (match === null) throw new CsvInputError(`"${text}" is not a date (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)`, row, column);
  const [year, month, day, hour, minute, second] = match.slice(1).map((part) => Number(part ?? '0')) as [number, number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  // Date.UTC rolls 2020-02-31 over to March; a date that does not come back unchanged does not exist.
  if (back.getUTCDate() !== day || back.getUTCMonth() !== month - 1 || hour > 23 || minute > 59 || second > 59) {
    throw new CsvInputError(`"${text}" is not a valid date and time`, row, column);
  }
  return ms;
}

export function parseLabel(field: string | undefined, row: number, column: string): 0 | 1 {
  const text = (field ?? '').trim();
  if (text === '0' || text === '0.0') return 0;
  if (text === '1' || text === '1.0') return 1;
  throw new CsvInputError(`label "${text}" is neither 0 nor 1`, row, column);
}
