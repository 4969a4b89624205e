import type { Kysely } from 'kysely';
import { CofferError } from '../domain/errors.ts';
import type { Actor } from '../flows/context.ts';
import { defaultApiVersion, parseApiVersion, unservedVersionReason, type ApiVersion } from '../objects/api-version.ts';
import type { Logger } from '../platform/logger.ts';
import { limits } from '../limits.ts';
import type { Database } from '../store/database.ts';
import {
  accessOfMethod, addressAllowed, apiKeyPattern, hashApiKey, maskApiKey, permits,
  type ApiKeyKind, type ApiResource, type Permissions,
} from '../identity/api-keys.ts';


/** The key from `Authorization: Bearer <key>` or HTTP Basic with the key as user name (as curl -u does). */
export function presentedKey(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (bearer?.[1] !== undefined) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (basic?.[1] !== undefined) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    return decoded.split(':')[0];
  }
  return undefined;
}

function missingKey(): CofferError {
  return new CofferError(
    'api_key_missing',
    "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
  );
}

export function requestApiVersion(header: string | string[] | undefined, fallback: ApiVersion): ApiVersion {
  if (header === undefined || header === '') return fallback;
  const name = Array.isArray(header) ? header[0] ?? '' : header;
  const version = parseApiVersion(name);
  if (version === undefined) {
    throw new CofferError('api_version_invalid', unservedVersionReason(name), { param: 'Stripe-Version' });
  }
  return version;
}

interface KeyRecord {
  id: string;
  kind: ApiKeyKind;
  permissions: Permissions;
  allowed_addresses: string[] | null;
  livemode: boolean;
  merchant_id: string;
  revoked_at: Date | null;
  expires_at: Date | null;
  last_used_at: Date | null;
  default_api_version: string;
  signing_secret_ciphertext: Buffer | null;
}

export interface AuthenticatedKey {
  actor: Actor;
  /** Set when the key requires signed requests: its sealed signing secret, checked once the body is read. */
  signingSecretSealed: Buffer | null;
}

/**
 * Recently used keys, kept for `limits.apiKeyCacheTtlMs` so that most requests skip a database round trip.
 * A revoked key therefore keeps working in this process for at most that long; revocation elsewhere (another
 * process, a database change) is seen when the entry expires. Bounded in size; oldest entries go first.
 */
export class ApiKeyCache {
  readonly #entries = new Map<string, { record: KeyRecord | undefined; expiresAtMs: number }>();

  get(hash: string, nowMs: number): KeyRecord | undefined | 'miss' {
    const entry = this.#entries.get(hash);
    if (entry === undefined || entry.expiresAtMs <= nowMs) return 'miss';
    return entry.record;
  }

  set(hash: string, record: KeyRecord | undefined, nowMs: number): void {
    if (this.#entries.size >= limits.apiKeyCacheEntriesMax) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    // Unknown keys are not remembered: a key created a moment ago must work at once.
    if (record !== undefined) this.#entries.set(hash, { record, expiresAtMs: nowMs + limits.apiKeyCacheTtlMs });
  }

  forget(): void {
    this.#entries.clear();
  }
}

async function findKey(db: Kysely<Database>, cache: ApiKeyCache, key: string, nowMs: number): Promise<KeyRecord | undefined> {
  const hash = hashApiKey(key);
  const cacheKey = hash.toString('base64');
  const cached = cache.get(cacheKey, nowMs);
  if (cached !== 'miss') return cached;
  const record = await db
    .selectFrom('api_keys')
    .innerJoin('merchants', 'merchants.id', 'api_keys.merchant_id')
    .select(['api_keys.id', 'api_keys.kind', 'api_keys.livemode', 'api_keys.merchant_id', 'api_keys.revoked_at',
      'api_keys.expires_at', 'api_keys.last_used_at', 'api_keys.permissions', 'api_keys.allowed_addresses', 'api_keys.signing_secret_ciphertext',
      'merchants.default_api_version'])
    .where('api_keys.key_hash', '=', hash)
    .executeTakeFirst();
  cache.set(cacheKey, record, nowMs);
  return record;
}

/** What the route asks of the key presenting a request. */
export interface KeyRequirement {
  /** The resources the route reaches, for restricted keys' permissions: each is needed. */
  resources: readonly ApiResource[];
  method: string;
  /** The client's address, for keys limited to some addresses. */
  address: string;
  /** Routes that collect card details accept publishable keys too. */
  publishableAllowed: boolean;
}

/**
 * Finds the merchant and mode a request's API key belongs to. Keys are stored as SHA-256 hashes; an unknown,
 * revoked or expired key gets the same answer. A key limited to some addresses works from those only. Secret
 * keys may use the whole merchant API; publishable keys only the routes that collect card details; restricted
 * keys what their permissions grant, resource by resource (write includes read), and nothing else.
 */
export async function authenticateMerchant(
  db: Kysely<Database>,
  cache: ApiKeyCache,
  logger: Logger,
  authorization: string | undefined,
  versionHeader: string | string[] | undefined,
  now: Date,
  requirement: KeyRequirement,
): Promise<AuthenticatedKey> {
  const key = presentedKey(authorization);
  if (key === undefined || key === '') throw missingKey();
  // Made only when refused: an error's stack trace costs more than the rest of a cached key's check.
  const invalid = () => new CofferError('api_key_invalid', `Invalid API Key provided: ${maskApiKey(key)}`);
  if (!apiKeyPattern.test(key)) throw invalid();
  const row = await findKey(db, cache, key, now.getTime());
  if (row === undefined || row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= now)) throw invalid();
  const refused = { keyId: row.id, merchantId: row.merchant_id, livemode: row.livemode };
  if (row.allowed_addresses !== null && !addressAllowed(row.allowed_addresses, requirement.address)) {
    throw new CofferError('api_key_address_not_allowed', `The API key ${maskApiKey(key)} cannot be used from ${requirement.address}: it is limited to other addresses.`, { refusedKey: refused });
  }
  if (row.kind === 'publishable' && !requirement.publishableAllowed) {
    throw new CofferError(
      'secret_key_required',
      'This API call cannot be made with a publishable API key. Please use a secret API key.',
    );
  }
  const access = accessOfMethod(requirement.method);
  const missing = row.kind === 'restricted' ? requirement.resources.find((resource) => !permits(row.permissions, resource, access)) : undefined;
  if (missing !== undefined) {
    throw new CofferError(
      'insufficient_permissions',
      `The restricted key ${maskApiKey(key)} does not have ${access} permission on ${missing}, which this request needs.`,
      { refusedKey: refused },
    );
  }
  // Recording use at most once a minute keeps a write off every request.
  if (row.last_used_at === null || now.getTime() - row.last_used_at.getTime() > 60_000) {
    row.last_used_at = now;
    db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', row.id).execute().catch((error: unknown) => {
      logger.warn({ err: error, apiKey: row.id }, 'could not record API key use');
    });
  }
  const eventApiVersion = parseApiVersion(row.default_api_version) ?? defaultApiVersion;
  const actor: Actor = {
    merchantId: row.merchant_id,
    livemode: row.livemode,
    apiKeyId: row.id,
    keyKind: row.kind,
    ...(row.kind === 'restricted' ? { permissions: row.permissions } : {}),
    apiVersion: requestApiVersion(versionHeader, eventApiVersion),
    eventApiVersion,
  };
  return { actor, signingSecretSealed: row.signing_secret_ciphertext };
}
