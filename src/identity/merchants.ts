import type { Insertable, Kysely, Transaction } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import { limits } from '../limits.ts';
import { currentApiVersion } from '../objects/api-version.ts';
import { newId, randomBase62 } from '../platform/random.ts';
import { deriveKey } from '../platform/instance-secret.ts';
import { Secret } from '../platform/secret.ts';
import { sealSecret } from '../platform/secret-box.ts';
import { recordAudit, type AuditInput } from '../store/audit.ts';
import type { ApiKeysTable, Database } from '../store/database.ts';
import { apiKeyPrefixes, hashApiKey, type ApiKeyKind, type Permissions } from './api-keys.ts';

export interface CreatedKey {
  id: string;
  /** Shown once; only its hash is stored. */
  key: Secret<string>;
  /** Keys that require signed requests: the signing secret, shown once (stored sealed). */
  signingSecret?: Secret<string>;
}

/** The key that seals request-signing secrets, derived from the instance secret like the webhook secrets' key. */
export function requestSigningKey(instanceSecret: Secret<Buffer>): Secret<Buffer> {
  return deriveKey(instanceSecret, 'request signing secrets v1');
}

export const signingSecretLabel = 'request signing secret';

export async function createMerchant(db: Kysely<Database>, name: string): Promise<string> {
  return (await db.transaction().execute((tx) => createMerchantIn(tx, name))).id;
}

/** A merchant's name as staff and the command give it: trimmed, 1 to 100 characters, no control characters. */
export function checkMerchantName(given: string): string {
  const name = given.trim();
  // Counted in characters (code points), as the staff API's schema counts them.
  const length = [...name].length;
  if (length === 0 || length > limits.merchantNameLengthMax) {
    throw new CofferError('parameter_invalid', `A merchant's name must be 1 to ${limits.merchantNameLengthMax} characters long.`, { param: 'name' });
  }
  if (/\p{Cc}/u.test(name)) throw new CofferError('parameter_invalid', 'A merchant\'s name may not hold control characters (a line break, a tab…).', { param: 'name' });
  return name;
}

/**
 * A new merchant (a shop of the platform), in the caller's transaction, which records who made it (the staff API
 * or `coffer merchants create`). It starts with no key; its ledger accounts, risk settings and limits come as it
 * is used, with the same defaults as every merchant.
 */
export async function createMerchantIn(tx: Transaction<Database>, given: string): Promise<{ id: string; name: string; created: Date }> {
  const name = checkMerchantName(given);
  const id = newId('acct');
  const row = await tx.insertInto('merchants').values({ id, name, default_api_version: currentApiVersion }).returning('created_at').executeTakeFirstOrThrow();
  return { id, name, created: row.created_at };
}

/** The operator's `coffer merchants create`: the merchant and its test-mode secret and publishable keys, at once. */
export async function createMerchantWithTestKeys(db: Kysely<Database>, name: string): Promise<{ id: string; name: string; secret: CreatedKey; publishable: CreatedKey }> {
  return db.transaction().execute(async (tx) => {
    const merchant = await createMerchantIn(tx, name);
    await recordAudit(tx, {
      merchantId: merchant.id, livemode: null, actorType: commandActor.type, actorId: commandActor.id, action: 'merchant.create', objectType: 'merchant',
      objectId: merchant.id, outcome: 'success', requestId: null, origin: 'cli', details: { name: merchant.name }, occurredAt: new Date(),
    });
    const secret = await createApiKeyIn(tx, merchant.id, 'secret', false);
    const publishable = await createApiKeyIn(tx, merchant.id, 'publishable', false);
    return { id: merchant.id, name: merchant.name, secret, publishable };
  });
}

/**
 * The operator's `coffer merchants raw-card-data`: whether the merchant's servers may send card numbers to the live
 * API with a secret or restricted key (decision 0050). Audited with the setting before and after; setting what is
 * already set changes nothing and writes no record.
 */
export async function setLiveRawCardData(db: Kysely<Database>, merchantId: string, allowed: boolean): Promise<{ before: boolean; after: boolean }> {
  return db.transaction().execute(async (tx) => {
    const merchant = await tx.selectFrom('merchants').select(['id', 'live_raw_card_data']).where('id', '=', merchantId).forUpdate().executeTakeFirst();
    if (merchant === undefined) throw resourceMissing('merchant', merchantId, 'merchant');
    if (merchant.live_raw_card_data === allowed) return { before: allowed, after: allowed };
    await tx.updateTable('merchants').set({ live_raw_card_data: allowed }).where('id', '=', merchantId).execute();
    await recordAudit(tx, {
      merchantId, livemode: true, actorType: commandActor.type, actorId: commandActor.id, action: 'merchant.live_raw_card_data', objectType: 'merchant',
      objectId: merchantId, outcome: 'success', requestId: null, origin: 'cli', details: { before: merchant.live_raw_card_data, after: allowed }, occurredAt: new Date(),
    });
    return { before: merchant.live_raw_card_data, after: allowed };
  });
}

/** Who changes a key: a staff member (through the staff API) or a part of Coffer (the command, the demo setup). */
export interface KeyActor {
  type: 'staff' | 'system';
  id: string;
}

const commandActor: KeyActor = { type: 'system', id: 'coffer-cli' };

export interface ApiKeyOptions {
  /** Restricted keys only: what the key may read or write. */
  permissions?: Permissions;
  /** Normalized ranges (`parseAddressList`); absent: any address. */
  allowedAddresses?: string[];
  name?: string;
  /** Who creates the key, for the audit record (default: the `coffer apikeys` command). */
  actor?: KeyActor;
  /** Every request with the key must be signed (identity/request-signing.ts): the key that seals its secret. */
  requireSigning?: Secret<Buffer>;
}

/**
 * A key whose secret is given now and whose row is made later: the staff member who asks for a key is given it with
 * the request, and it works once a second person approves, who never sees it. Only the hash is kept meanwhile.
 */
export interface PreparedKey {
  id: string;
  keyHash: Buffer;
  last4: string;
}

export function prepareApiKey(kind: ApiKeyKind, livemode: boolean): { key: Secret<string>; prepared: PreparedKey } {
  const key = `${apiKeyPrefixes[kind]}_${livemode ? 'live' : 'test'}_${randomBase62(48)}`;
  return { key: new Secret(key), prepared: { id: newId('key'), keyHash: hashApiKey(key), last4: key.slice(-4) } };
}

function keyRow(merchantId: string, kind: ApiKeyKind, livemode: boolean, options: ApiKeyOptions, { id, keyHash, last4 }: PreparedKey) {
  const row: Insertable<ApiKeysTable> = {
    id,
    merchant_id: merchantId,
    kind,
    livemode,
    key_hash: keyHash,
    key_last4: last4,
    last_used_at: null,
    expires_at: null,
    revoked_at: null,
    permissions: JSON.stringify(kind === 'restricted' ? options.permissions ?? {} : {}),
    allowed_addresses: options.allowedAddresses === undefined ? null : JSON.stringify(options.allowedAddresses),
    name: options.name ?? null,
  };
  let signingSecret: Secret<string> | undefined;
  if (options.requireSigning !== undefined) {
    signingSecret = new Secret(`ssec_${randomBase62(48)}`);
    row.signing_secret_ciphertext = sealSecret(options.requireSigning, id, signingSecret, signingSecretLabel);
  }
  return { id, row, ...(signingSecret === undefined ? {} : { signingSecret }) };
}

export async function createApiKey(
  db: Kysely<Database>,
  merchantId: string,
  kind: ApiKeyKind,
  livemode: boolean,
  options: ApiKeyOptions = {},
): Promise<CreatedKey> {
  return db.transaction().execute((tx) => createApiKeyIn(tx, merchantId, kind, livemode, options));
}

/** Refuses options no key of `kind` may have, before anything is read or written. */
export function checkApiKeyOptions(kind: ApiKeyKind, options: ApiKeyOptions): void {
  if (kind === 'restricted' && Object.keys(options.permissions ?? {}).length === 0) {
    throw new CofferError('parameter_missing', 'A restricted key needs at least one permission (such as payment_intents:write).', { param: 'permissions' });
  }
}

/** `createApiKey` inside a transaction of the caller's (an approval that takes effect with its decision). */
export async function createApiKeyIn(
  tx: Transaction<Database>,
  merchantId: string,
  kind: ApiKeyKind,
  livemode: boolean,
  options: ApiKeyOptions = {},
): Promise<CreatedKey> {
  const { key, prepared } = prepareApiKey(kind, livemode);
  const created = await insertApiKey(tx, merchantId, kind, livemode, options, prepared);
  return { id: created.id, key, ...(created.signingSecret === undefined ? {} : { signingSecret: created.signingSecret }) };
}

/** Makes the row of a key given earlier (`prepareApiKey`), in the caller's transaction: an approved staff request. */
export async function createPreparedApiKeyIn(
  tx: Transaction<Database>,
  merchantId: string,
  kind: ApiKeyKind,
  livemode: boolean,
  prepared: PreparedKey,
  options: Omit<ApiKeyOptions, 'requireSigning'> = {},
): Promise<{ id: string }> {
  return { id: (await insertApiKey(tx, merchantId, kind, livemode, options, prepared)).id };
}

async function insertApiKey(tx: Transaction<Database>, merchantId: string, kind: ApiKeyKind, livemode: boolean, options: ApiKeyOptions, prepared: PreparedKey) {
  checkApiKeyOptions(kind, options);
  const merchant = await tx.selectFrom('merchants').select('id').where('id', '=', merchantId).executeTakeFirst();
  if (merchant === undefined) throw resourceMissing('merchant', merchantId, 'merchant');
  const created = keyRow(merchantId, kind, livemode, options, prepared);
  await tx.insertInto('api_keys').values(created.row).execute();
  await recordAudit(tx, keyAudit('api_key.create', merchantId, livemode, created.id, {
    kind, permissions: options.permissions ?? {}, allowed_addresses: options.allowedAddresses ?? null, signed_requests: options.requireSigning !== undefined,
  }, options.actor));
  return created;
}

function keyAudit(action: string, merchantId: string, livemode: boolean, keyId: string, details: Record<string, unknown>, actor: KeyActor = commandActor): AuditInput {
  return {
    merchantId, livemode, actorType: actor.type, actorId: actor.id, action, objectType: 'api_key', objectId: keyId,
    outcome: 'success', requestId: null, origin: 'cli', details, occurredAt: new Date(),
  };
}

async function findActiveKey(tx: Kysely<Database>, keyId: string, now: Date, rolledAllowed = false) {
  const row = await tx.selectFrom('api_keys').selectAll().where('id', '=', keyId).forUpdate().executeTakeFirst();
  if (row === undefined) throw resourceMissing('API key', keyId, 'key');
  if (row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= now)) {
    throw new CofferError('parameter_invalid', `API key ${keyId} is already revoked or expired.`, { param: 'key' });
  }
  if (row.rolled_to !== null && !rolledAllowed) throw new CofferError('parameter_invalid', `API key ${keyId} was already rolled (to ${row.rolled_to}).`, { param: 'key' });
  return row;
}

/**
 * Rolls a key: a new key with the same kind, mode, permissions, addresses and signing requirement (with a new
 * signing secret), shown once; the old key keeps working for `overlapHours` (0: it stops now, at most 7 days) so
 * that programs can move to the new one.
 */
export async function rollApiKey(
  db: Kysely<Database>,
  keyId: string,
  overlapHours: number,
  now = new Date(),
  signingKey?: Secret<Buffer>,
): Promise<CreatedKey & { oldKeyExpiresAt: Date }> {
  if (!Number.isInteger(overlapHours) || overlapHours < 0 || overlapHours > limits.apiKeyRollOverlapHoursMax) {
    throw new CofferError('parameter_invalid', `The overlap must be a whole number of hours from 0 to ${limits.apiKeyRollOverlapHoursMax}.`, { param: 'overlap' });
  }
  return db.transaction().execute(async (tx) => {
    const old = await findActiveKey(tx, keyId, now);
    if (old.signing_secret_ciphertext !== null && signingKey === undefined) throw new Error('rolling a key that requires signing needs the signing key');
    const { key, prepared } = prepareApiKey(old.kind, old.livemode);
    const created = keyRow(old.merchant_id, old.kind, old.livemode, {
      permissions: old.permissions as Permissions, ...(old.allowed_addresses === null ? {} : { allowedAddresses: old.allowed_addresses }), ...(old.name === null ? {} : { name: old.name }),
      ...(old.signing_secret_ciphertext === null || signingKey === undefined ? {} : { requireSigning: signingKey }),
    }, prepared);
    await tx.insertInto('api_keys').values(created.row).execute();
    const oldKeyExpiresAt = new Date(now.getTime() + overlapHours * 3_600_000);
    await tx.updateTable('api_keys').set({ expires_at: oldKeyExpiresAt, rolled_to: created.id }).where('id', '=', old.id).execute();
    await recordAudit(tx, keyAudit('api_key.roll', old.merchant_id, old.livemode, old.id, { new_key: created.id, old_key_expires_at: oldKeyExpiresAt.toISOString() }));
    return { id: created.id, key, oldKeyExpiresAt, ...(created.signingSecret === undefined ? {} : { signingSecret: created.signingSecret }) };
  });
}

/** Revokes a key at once, a rolled key still in its overlap included (the reason to roll may be a leak). */
export async function revokeApiKey(db: Kysely<Database>, keyId: string, now = new Date(), actor?: KeyActor): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const row = await findActiveKey(tx, keyId, now, true);
    await tx.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', row.id).execute();
    await recordAudit(tx, keyAudit('api_key.revoke', row.merchant_id, row.livemode, row.id, {}, actor));
  });
}
