import fs from 'node:fs';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { createApiKey, createMerchant } from '../identity/merchants.ts';
import type { Database } from '../store/database.ts';

export interface DemoMerchant {
  merchantId: string;
  secretKey: string;
  publishableKey: string;
}

/**
 * The quick start's merchant: created on the first start of an empty installation, with test-mode keys only.
 * Keys are stored hashed in the database; for the quick start they are also kept in `demo-merchant.json`
 * (mode 0600) under the home directory so that every start can print them. Live keys are never written there.
 */
export async function ensureDemoMerchant(db: Kysely<Database>, homeDir: string): Promise<DemoMerchant | undefined> {
  const file = path.join(homeDir, 'demo-merchant.json');
  if (fs.existsSync(file)) {
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as DemoMerchant;
    const exists = await db.selectFrom('merchants').select('id').where('id', '=', saved.merchantId).executeTakeFirst();
    if (exists !== undefined) return saved;
  }
  const merchants = await db.selectFrom('merchants').select('id').limit(1).execute();
  if (merchants.length > 0) return undefined;
  const merchantId = await createMerchant(db, 'Demo merchant');
  const secret = await createApiKey(db, merchantId, 'secret', false, { actor: { type: 'system', id: 'demo-merchant-setup' } });
  const publishable = await createApiKey(db, merchantId, 'publishable', false, { actor: { type: 'system', id: 'demo-merchant-setup' } });
  const demo = { merchantId, secretKey: secret.key.reveal(), publishableKey: publishable.key.reveal() };
  fs.mkdirSync(homeDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify(demo, null, 2) + '\n', { mode: 0o600 });
  return demo;
}
