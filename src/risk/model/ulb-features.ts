/**
 * ULB (real card payments, September 2013): `Time` is seconds from the file's first payment, `V1`..`V28` are
 * PCA components of undisclosed payment attributes, `Amount` is in euros. The model takes the components and the
 * amount as they are, and the time as a clock hour; it does not take the absolute time, which only grows and
 * would put every later payment beyond the range the trees have seen.
 */
import { columnIndex, type CsvTable } from './csv.ts';
import { parseNumberField, type FeatureDefinition, type FeatureRows } from './features.ts';

const componentNames = Array.from({ length: 28 }, (_, k) => `V${k + 1}`);
export const ulbInputColumns = ['Time', ...componentNames, 'Amount'] as const;

export const ulbFeatures: FeatureDefinition[] = [
  { name: 'hour_of_day', derivation: 'Time (seconds since the first payment of the data) modulo 86,400, in hours (0 to 24)' },
  ...componentNames.map((name) => ({ name, derivation: `the ${name} column as given (a PCA component of the payment)` })),
  { name: 'amount', derivation: 'the Amount column (euros)' },
];

export function extractUlbFeatures(table: CsvTable): FeatureRows {
  const timeColumn = columnIndex(table, 'Time');
  const amountColumn = columnIndex(table, 'Amount');
  const componentColumns = componentNames.map((name) => columnIndex(table, name));
  const featureCount = ulbFeatures.length;
  const rowCount = table.rows.length;
  const x = new Float64Array(rowCount * featureCount);
  const timeSeconds = new Float64Array(rowCount);
  const amounts = new Float64Array(rowCount);
  table.rows.forEach((fields, i) => {
    const row = i + 1;
    const time = parseNumberField(fields[timeColumn], row, 'Time');
    const amount = parseNumberField(fields[amountColumn], row, 'Amount');
    const offset = i * featureCount;
    x[offset] = (((time % 86_400) + 86_400) % 86_400) / 3600;
    componentNames.forEach((name, k) => {
      x[offset + 1 + k] = parseNumberField(fields[componentColumns[k] as number], row, name);
    });
    x[offset + 29] = amount;
    timeSeconds[i] = time;
    amounts[i] = amount;
  });
  return { featureCount, rowCount, x, timeSeconds, amounts };
}
