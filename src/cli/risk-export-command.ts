import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { openConfiguredDatabase } from '../app/open-configured-database.ts';
import { exportTrainingRows } from '../flows/risk-export.ts';
import type { Config } from '../platform/config.ts';

export const riskExportUsage = 'usage: coffer risk export --output FILE [--merchant acct_…] [--test-mode] [--since YYYY-MM-DD] [--min-age-days N]';

/**
 * `coffer risk export`: Coffer's decided card payments with their labels (reviews, disputes) as a training file
 * in the Sparkov columns; `coffer risk train --dataset sparkov --input FILE --legitimate-weight 1` retrains on it.
 */
export async function commandRiskExport(config: Config, argv: string[], print: (line: string) => void): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { output: { type: 'string' }, merchant: { type: 'string' }, 'test-mode': { type: 'boolean', default: false }, since: { type: 'string' }, 'min-age-days': { type: 'string' } } }));
  } catch (error) {
    process.stderr.write(`coffer: ${error instanceof Error ? error.message : String(error)}\n${riskExportUsage}\n`);
    return 2;
  }
  if (values.output === undefined) {
    process.stderr.write(`coffer: --output is required\n${riskExportUsage}\n`);
    return 2;
  }
  if (values.merchant !== undefined && !/^acct_[A-Za-z0-9]+$/.test(values.merchant)) {
    process.stderr.write(`coffer: --merchant must be a merchant id (acct_…), got "${values.merchant}"\n`);
    return 2;
  }
  const since = values.since === undefined ? undefined : new Date(`${values.since}T00:00:00Z`);
  if (since !== undefined && (!/^\d{4}-\d{2}-\d{2}$/.test(values.since ?? '') || Number.isNaN(since.getTime()))) {
    process.stderr.write(`coffer: --since must be a date (YYYY-MM-DD), got "${values.since ?? ''}"\n`);
    return 2;
  }
  const minAge = values['min-age-days'] === undefined ? 30 : Number(values['min-age-days']);
  if (!Number.isInteger(minAge) || minAge < 0 || minAge > 3650) {
    process.stderr.write(`coffer: --min-age-days must be a whole number of days from 0 to 3650, got "${values['min-age-days'] ?? ''}"\n`);
    return 2;
  }
  const database = await openConfiguredDatabase(config, 'command');
  try {
    const exported = await exportTrainingRows(database.db, {
      livemode: !values['test-mode'], minAgeDays: minAge, ...(values.merchant === undefined ? {} : { merchantId: values.merchant }), ...(since === undefined ? {} : { since }),
    });
    fs.writeFileSync(values.output, exported.csv, { mode: 0o600 });
    print(`Wrote ${exported.rows} payments (${exported.frauds} labelled fraud) to ${values.output}.`);
    print(`Retrain with: coffer risk train --dataset sparkov --input ${values.output} --output models/own.json --legitimate-weight 1`);
    return 0;
  } finally {
    await database.close();
  }
}
