import { resourceMissing } from '../domain/errors.ts';
import { checkMerchantName, createMerchantWithTestKeys, setLiveRawCardData } from '../identity/merchants.ts';
import type { Config } from '../platform/config.ts';
import { databaseExitCodes } from './database-refusal.ts';
import { openInstalledDatabase } from './open-installed-database.ts';
import { parseCommandLine, refused, refuseExtraArguments, subcommand, UsageError } from './parse-command-line.ts';

export const merchantsUsage = `Usage:
  coffer merchants create --name text   a new merchant, with a test-mode secret key and publishable key (shown once);
                                        live keys: coffer apikeys create --merchant acct_… --live
  coffer merchants list                 every merchant: id, when it was created, how many keys it has not revoked, name
  coffer merchants raw-card-data --merchant acct_… [--allow | --refuse]
                                        whether the merchant's servers may send card numbers to the live API with a
                                        secret or restricted key (refused unless allowed: it puts those servers in
                                        PCI DSS scope); without --allow or --refuse, shows the setting
Exit codes: 0 done; 1 refused (the message says why: a name empty, longer than 100 characters or with control
  characters; no such merchant); ${databaseExitCodes}.`;

/**
 * `coffer merchants …`: the platform's merchants, managed by the operator (staff can do the same through the staff
 * API). Returns the exit code: 0 done, 1 refused; a usage error is thrown.
 */
export async function commandMerchants(loadConfig: () => Config, argv: string[], print: (line: string) => void): Promise<number> {
  const parsed = parseCommandLine('merchants', argv, {
    name: { type: 'string' }, merchant: { type: 'string' }, allow: { type: 'boolean', default: false }, refuse: { type: 'boolean', default: false },
  }, merchantsUsage);
  if (parsed.help) {
    print(merchantsUsage);
    return 0;
  }
  const sub = subcommand('merchants', parsed.positionals[0], ['create', 'list', 'raw-card-data'], merchantsUsage);
  refuseExtraArguments(`merchants ${sub}`, parsed.positionals, 1, merchantsUsage);
  const { allow, refuse, merchant } = parsed.values;
  if (sub === 'raw-card-data') return rawCardData(loadConfig, merchant, allow, refuse, print);
  if (merchant !== undefined || allow || refuse) throw new UsageError(`merchants ${sub} takes no --merchant, --allow or --refuse`, merchantsUsage);
  const given = parsed.values.name;
  if (sub === 'create' && given === undefined) throw new UsageError('merchants create needs --name', merchantsUsage);
  if (sub === 'list' && given !== undefined) throw new UsageError('merchants list takes no --name', merchantsUsage);
  // The name is checked before the database is opened: a refused one reads and changes nothing.
  try {
    if (given !== undefined) checkMerchantName(given);
  } catch (error) {
    return refused(error);
  }
  const config = loadConfig();
  const database = await openInstalledDatabase(config);
  try {
    const db = database.db;
    if (sub === 'create') {
      const made = await createMerchantWithTestKeys(db, given ?? '');
      print(`Created merchant ${made.id} (${made.name}). Its test keys are shown this once; Coffer keeps only their hashes:`);
      print(`  secret key       ${made.secret.key.reveal()}`);
      print(`  publishable key  ${made.publishable.key.reveal()}`);
      print(`Live keys: coffer apikeys create --merchant ${made.id} --live [--type publishable]`);
      return 0;
    }
    const rows = await db.selectFrom('merchants')
      .leftJoin('api_keys', (join) => join.onRef('api_keys.merchant_id', '=', 'merchants.id').on('api_keys.revoked_at', 'is', null))
      .select((eb) => ['merchants.id', 'merchants.name', 'merchants.created_at', eb.fn.count<string>('api_keys.id').as('keys')])
      .groupBy(['merchants.id', 'merchants.name', 'merchants.created_at']).orderBy('merchants.created_at').execute();
    if (rows.length === 0) print('No merchants yet: coffer merchants create --name …');
    for (const row of rows) print([row.id, row.created_at.toISOString(), `${row.keys} key(s) not revoked`, row.name].join('  '));
    return 0;
  } finally {
    await database.close();
  }
}

/** `coffer merchants raw-card-data`: shows, allows or refuses a merchant's servers sending card numbers to the live API. */
async function rawCardData(loadConfig: () => Config, merchant: string | undefined, allow: boolean, refuse: boolean, print: (line: string) => void): Promise<number> {
  if (merchant === undefined) throw new UsageError('merchants raw-card-data needs --merchant acct_…', merchantsUsage);
  if (allow && refuse) throw new UsageError('merchants raw-card-data takes --allow or --refuse, not both', merchantsUsage);
  const database = await openInstalledDatabase(loadConfig());
  try {
    const describe = (allowed: boolean) => (allowed
      ? 'its servers may send card numbers to the live API with a secret or restricted key (they are in PCI DSS scope)'
      : 'card numbers sent to the live API with a secret or restricted key are refused (raw_card_data_refused)');
    if (!allow && !refuse) {
      const row = await database.db.selectFrom('merchants').select('live_raw_card_data').where('id', '=', merchant).executeTakeFirst();
      if (row === undefined) return refused(resourceMissing('merchant', merchant, 'merchant'));
      print(`${merchant}: ${describe(row.live_raw_card_data)}.`);
      return 0;
    }
    const changed = await setLiveRawCardData(database.db, merchant, allow);
    print(changed.before === changed.after ? `${merchant}: unchanged; ${describe(changed.after)}.` : `${merchant}: now ${describe(changed.after)}. Recorded in the audit log.`);
    return 0;
  } catch (error) {
    return refused(error);
  } finally {
    await database.close();
  }
}
