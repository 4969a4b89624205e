import fs from 'node:fs';
import { exportTrainingRows } from '../flows/risk-export.ts';
import type { Config } from '../platform/config.ts';
import { databaseExitCodes } from './database-refusal.ts';
import { openInstalledDatabase } from './open-installed-database.ts';
import { parseCommandLine, refuseExtraArguments, UsageError } from './parse-command-line.ts';

export const riskExportUsage = `Usage:
  coffer risk export --output FILE [--merchant acct_…] [--test-mode] [--since YYYY-MM-DD] [--min-age-days N]
      Coffer's decided card payments with their labels as a training file (coffer risk --help says more)
Exit codes: 0 written; 2 a usage error; ${databaseExitCodes}. The file is written only once the export is read.`;

/**
 * `coffer risk export`: Coffer's decided card payments with their labels (reviews, disputes) as a training file
 * in the Sparkov columns; `coffer risk train --dataset sparkov --input FILE --legitimate-weight 1` retrains on it.
 */
export async function commandRiskExport(loadConfig: () => Config, argv: string[], print: (line: string) => void): Promise<number> {
  const parsed = parseCommandLine('risk export', argv, {
    output: { type: 'string' }, merchant: { type: 'string' }, 'test-mode': { type: 'boolean', default: false }, since: { type: 'string' }, 'min-age-days': { type: 'string' },
  }, riskExportUsage);
  if (parsed.help) {
    print(riskExportUsage);
    return 0;
  }
  const { values } = parsed;
  refuseExtraArguments('risk export', parsed.positionals, 0, riskExportUsage);
  if (values.output === undefined) throw new UsageError('--output is required', riskExportUsage);
  if (values.merchant !== undefined && !/^acct_[A-Za-z0-9]+$/.test(values.merchant)) {
    throw new UsageError(`--merchant must be a merchant id (acct_…), got "${values.merchant}"`, riskExportUsage);
  }
  const since = values.since === undefined ? undefined : new Date(`${values.since}T00:00:00Z`);
  if (since !== undefined && (!/^\d{4}-\d{2}-\d{2}$/.test(values.since ?? '') || Number.isNaN(since.getTime()))) {
    throw new UsageError(`--since must be a date (YYYY-MM-DD), got "${values.since ?? ''}"`, riskExportUsage);
  }
  const minAge = values['min-age-days'] === undefined ? 30 : Number(values['min-age-days']);
  if (!Number.isInteger(minAge) || minAge < 0 || minAge > 3650) {
    throw new UsageError(`--min-age-days must be a whole number of days from 0 to 3650, got "${values['min-age-days'] ?? ''}"`, riskExportUsage);
  }
  const database = await openInstalledDatabase(loadConfig());
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
