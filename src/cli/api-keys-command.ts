import { CofferError, resourceMissing } from '../domain/errors.ts';
import { parseAddressList, parsePermissions, type ApiKeyKind } from '../identity/api-keys.ts';
import { checkApiKeyOptions, createApiKey, requestSigningKey, revokeApiKey, rollApiKey, type ApiKeyOptions } from '../identity/merchants.ts';
import { checkHomeKeys } from '../app/home-keys.ts';
import { loadInstanceSecret } from '../platform/instance-secret.ts';
import type { Config } from '../platform/config.ts';
import { databaseExitCodes } from './database-refusal.ts';
import { openInstalledDatabase } from './open-installed-database.ts';
import { parseCommandLine, refused, refuseExtraArguments, subcommand, UsageError } from './parse-command-line.ts';

export const apiKeysUsage = `Usage:
  coffer apikeys create --merchant acct_… [--type secret|publishable|restricted] [--live]
                        [--permission resource:read|write]… [--allow address-or-cidr]… [--name text]
                        [--require-signing]
  coffer apikeys list --merchant acct_…
  coffer apikeys roll key_… [--overlap-hours N]     new key now; the old one works N more hours (default 24)
  coffer apikeys revoke key_…
Exit codes: 0 done; 1 refused (no such merchant or key, a bad permission or address: the message says which);
  ${databaseExitCodes}.`;

const kinds: readonly ApiKeyKind[] = ['secret', 'publishable', 'restricted'];

function printSigningSecret(secret: string | undefined, print: (line: string) => void): void {
  if (secret === undefined) return;
  print('Every request with this key must be signed (Coffer-Signature header) with this secret, shown this once:');
  print(secret);
}

/**
 * `coffer apikeys …`: merchants' API keys, managed by the operator. A new key is printed once and stored only as
 * a hash. Returns the exit code: 0 done, 1 refused (the message names the problem); a usage error is thrown.
 */
export async function commandApiKeys(loadConfig: () => Config, argv: string[], print: (line: string) => void): Promise<number> {
  const parsed = parseCommandLine('apikeys', argv, {
    merchant: { type: 'string' },
    type: { type: 'string', default: 'secret' },
    live: { type: 'boolean', default: false },
    permission: { type: 'string', multiple: true },
    allow: { type: 'string', multiple: true },
    name: { type: 'string' },
    'require-signing': { type: 'boolean', default: false },
    'overlap-hours': { type: 'string', default: '24' },
  }, apiKeysUsage);
  if (parsed.help) {
    print(apiKeysUsage);
    return 0;
  }
  const { positionals, values } = parsed;
  const sub = subcommand('apikeys', positionals[0], ['create', 'list', 'roll', 'revoke'], apiKeysUsage);
  const target = positionals[1];
  if ((sub === 'roll' || sub === 'revoke') && target === undefined) throw new UsageError(`apikeys ${sub} needs the key's id (key_…)`, apiKeysUsage);
  refuseExtraArguments(`apikeys ${sub}`, positionals, sub === 'roll' || sub === 'revoke' ? 2 : 1, apiKeysUsage);
  if ((sub === 'create' || sub === 'list') && values.merchant === undefined) throw new UsageError(`apikeys ${sub} needs --merchant acct_…`, apiKeysUsage);
  // What the command line says is checked before the database is opened: a refused one reads and changes nothing.
  let toCreate: { kind: ApiKeyKind; options: ApiKeyOptions } | undefined;
  let overlapHours = 0;
  try {
    if (sub === 'create') {
      const kind = kinds.find((candidate) => candidate === values.type);
      if (kind === undefined) throw new CofferError('parameter_invalid', `--type must be secret, publishable or restricted, not "${values.type ?? ''}".`);
      if (kind !== 'restricted' && values.permission !== undefined) {
        throw new CofferError('parameter_invalid', 'Only restricted keys take --permission; secret and publishable keys have fixed powers.');
      }
      const options: ApiKeyOptions = {
        ...(values.permission === undefined ? {} : { permissions: parsePermissions(values.permission) }),
        ...(values.allow === undefined ? {} : { allowedAddresses: parseAddressList(values.allow) }),
        ...(values.name === undefined ? {} : { name: values.name }),
      };
      checkApiKeyOptions(kind, options);
      toCreate = { kind, options };
    } else if (sub === 'roll') {
      const hours = values['overlap-hours'] ?? '';
      if (!/^\d{1,4}$/.test(hours)) throw new CofferError('parameter_invalid', `--overlap-hours must be a whole number of hours, not "${hours}".`);
      overlapHours = Number(hours);
    }
  } catch (error) {
    return refused(error);
  }
  const config = loadConfig();
  const database = await openInstalledDatabase(config);
  // The signing secrets are sealed under a key derived from this installation's instance secret.
  // Checked against the database first: a lost instance key is not replaced by a new one here either.
  const signingKey = async () => {
    await checkHomeKeys(database.db, config.homeDir);
    return requestSigningKey(loadInstanceSecret(config.homeDir));
  };
  try {
    const db = database.db;
    if (sub === 'list') {
      // As create says: a mistyped merchant is not one without keys.
      const merchant = await db.selectFrom('merchants').select('id').where('id', '=', values.merchant ?? '').executeTakeFirst();
      if (merchant === undefined) throw resourceMissing('merchant', values.merchant ?? '', 'merchant');
      const rows = await db.selectFrom('api_keys').selectAll().where('merchant_id', '=', values.merchant ?? '').orderBy('created_at').execute();
      if (rows.length === 0) print(`No keys for ${values.merchant ?? ''}.`);
      for (const row of rows) {
        const state = row.revoked_at !== null ? `revoked ${row.revoked_at.toISOString()}`
          : row.expires_at !== null ? `${row.expires_at.getTime() <= Date.now() ? 'expired' : 'expires'} ${row.expires_at.toISOString()}` : 'active';
        const grants = Object.entries(row.permissions).map(([resource, access]) => `${resource}:${String(access)}`).join(',');
        const signed = row.signing_secret_ciphertext === null ? '' : 'signed requests';
        print([row.id, row.kind, row.livemode ? 'live' : 'test', `…${row.key_last4}`, state,
          `last used ${row.last_used_at?.toISOString() ?? 'never'}`, grants === '' ? '' : `permissions ${grants}`,
          row.allowed_addresses === null ? '' : `from ${row.allowed_addresses.join(',')}`, signed, row.name ?? ''].filter((part) => part !== '').join('  '));
      }
      return 0;
    }
    if (toCreate !== undefined) {
      const created = await createApiKey(db, values.merchant ?? '', toCreate.kind, values.live === true, {
        ...toCreate.options,
        ...(values['require-signing'] === true ? { requireSigning: await signingKey() } : {}),
      });
      print(`Created ${created.id}. The key is shown this once; Coffer keeps only its hash:`);
      print(created.key.reveal());
      printSigningSecret(created.signingSecret?.reveal(), print);
      return 0;
    }
    if (sub === 'roll') {
      const rolled = await rollApiKey(db, target ?? '', overlapHours, new Date(), await signingKey());
      print(`Rolled ${target ?? ''} to ${rolled.id}; the old key stops working at ${rolled.oldKeyExpiresAt.toISOString()}.`);
      print('The new key is shown this once:');
      print(rolled.key.reveal());
      printSigningSecret(rolled.signingSecret?.reveal(), print);
      return 0;
    }
    await revokeApiKey(db, target ?? '');
    print(`Revoked ${target ?? ''}.`);
    return 0;
  } catch (error) {
    return refused(error);
  } finally {
    await database.close();
  }
}
