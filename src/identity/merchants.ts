import type { Kysely } from 'kysely';
import { currentApiVersion } from '../objects/api-version.ts';
import { newId, randomBase62 } from '../platform/random.ts';
import { Secret } from '../platform/secret.ts';
import type { Database } from '../store/database.ts';
import { hashApiKey } from './api-keys.ts';

export interface CreatedKey {
  id: string;
  /** Shown once; only its hash is stored. */
  key: Secret<string>;
}

export async function createMerchant(db: Kysely<Database>, name: string): Promise<string> {
  const id = newId('acct');
  await db.insertInto('merchants').values({ id, name, default_api_version: currentApiVersion }).execute();
  return id;
}

export async function createApiKey(
  db: Kysely<Database>,
  merchantId: string,
  kind: 'secret' | 'publishable',
  livemode: boolean,
): Promise<CreatedKey> {
  const key = `${kind === 'secret' ? 'sk' : 'pk'}_${livemode ? 'live' : 'test'}_${randomBase62(48)}`;
  const id = newId('key');
  await db
    .insertInto('api_keys')
    .values({
      id,
      merchant_id: merchantId,
      kind,
      livemode,
      key_hash: hashApiKey(key),
      key_last4: key.slice(-4),
      last_used_at: null,
      expires_at: null,
      revoked_at: null,
    })
    .execute();
  return { id, key: new Secret(key) };
}
