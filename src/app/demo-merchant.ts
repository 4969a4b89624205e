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

/** Where the keys of a demo merchant of another database are kept while this home directory uses another one. */
function setAsideFile(homeDir: string, merchantId: string): string {
  return path.join(homeDir, `demo-merchant.${merchantId.replace(/[^A-Za-z0-9_]/g, '')}.json`);
}

function writeKeys(file: string, demo: DemoMerchant): void {
  fs.writeFileSync(file, JSON.stringify(demo, null, 2) + '\n', { mode: 0o600 });
}

/**
 * The quick start's merchant: created on the first start of an empty installation, with test-mode keys only.
 * Keys are stored hashed in the database; for the quick start they are also kept in `demo-merchant.json`
 * (mode 0600) under the home directory so that every start can print them. Live keys are never written there.
 * `demo-merchant.json` holds the keys of the database the home directory last started on; those of another one
 * (the embedded database, while PostgreSQL is tried with DATABASE_URL) wait in `demo-merchant.<merchant>.json`,
 * and come back when a start finds their merchant in its database.
 */
export async function ensureDemoMerchant(db: Kysely<Database>, homeDir: string): Promise<DemoMerchant | undefined> {
  const file = path.join(homeDir, 'demo-merchant.json');
  const current = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) as DemoMerchant : undefined;
  const aside = fs.existsSync(homeDir) ? fs.readdirSync(homeDir).filter((name) => /^demo-merchant\.[A-Za-z0-9_]+\.json$/.test(name)) : [];
  const known = [
    ...(current === undefined ? [] : [{ demo: current, from: file }]),
    ...aside.map((name) => ({ demo: JSON.parse(fs.readFileSync(path.join(homeDir, name), 'utf8')) as DemoMerchant, from: path.join(homeDir, name) })),
  ];
  if (known.length > 0) {
    const found = await db.selectFrom('merchants').select('id').where('id', 'in', known.map((entry) => entry.demo.merchantId)).executeTakeFirst();
    const mine = known.find((entry) => entry.demo.merchantId === found?.id);
    if (mine !== undefined) {
      if (mine.from !== file) {
        if (current !== undefined) writeKeys(setAsideFile(homeDir, current.merchantId), current);
        writeKeys(file, mine.demo);
        fs.rmSync(mine.from);
      }
      return mine.demo;
    }
  }
  const merchants = await db.selectFrom('merchants').select('id').limit(1).execute();
  if (merchants.length > 0) return undefined;
  const merchantId = await createMerchant(db, 'Demo merchant');
  const secret = await createApiKey(db, merchantId, 'secret', false, { actor: { type: 'system', id: 'demo-merchant-setup' } });
  const publishable = await createApiKey(db, merchantId, 'publishable', false, { actor: { type: 'system', id: 'demo-merchant-setup' } });
  const demo = { merchantId, secretKey: secret.key.reveal(), publishableKey: publishable.key.reveal() };
  fs.mkdirSync(homeDir, { recursive: true, mode: 0o700 });
  // The keys of the database the home directory used before are kept, not overwritten.
  if (current !== undefined) writeKeys(setAsideFile(homeDir, current.merchantId), current);
  writeKeys(file, demo);
  return demo;
}
