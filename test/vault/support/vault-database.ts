import { sql } from 'kysely';
import { vaultDataKeyRows } from '../../../src/vault/card-vault.ts';
import type { DataKeyRows } from '../../../src/vault/data-key-ring.ts';
import type { DataKeyRow } from '../../../src/vault/envelope.ts';
import type { DataKeyRowsForRewrap } from '../../../src/vault/rewrap.ts';
import { openTestDatabase, type TestDatabase } from '../../support/database.ts';

export type VaultRows = DataKeyRows & DataKeyRowsForRewrap;

/** A migrated test database, its data keys reached through the vault's functions; its store counts `find` calls, so a test can tell a cache hit. */
export interface VaultDatabase {
  database: TestDatabase;
  rows: VaultRows;
  findCalls(): number;
  allRows(): Promise<DataKeyRow[]>;
  /** Empties the table and resets the count, for the next test. */
  reset(): Promise<void>;
}

export async function openVaultDatabase(): Promise<VaultDatabase> {
  const database = await openTestDatabase();
  const store = vaultDataKeyRows(database.db);
  let finds = 0;
  return {
    database,
    rows: {
      ...store,
      find: async (id) => {
        finds += 1;
        return store.find(id);
      },
    },
    findCalls: () => finds,
    allRows: () => store.listAfter(undefined, 10_000),
    reset: async () => {
      await sql`DELETE FROM vault.data_keys`.execute(database.db);
      finds = 0;
    },
  };
}
