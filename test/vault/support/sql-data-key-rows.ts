import { sql, type Kysely } from 'kysely';
import type { DataKeyRows } from '../../../src/vault/data-key-ring.ts';
import type { DataKeyRow } from '../../../src/vault/envelope.ts';
import type { WrappedKey } from '../../../src/vault/key-encryption-key.ts';
import type { DataKeyRowsForRewrap } from '../../../src/vault/rewrap.ts';

/**
 * The data key table and its store in plain SQL, as the vault's tests use them on a real database. The vault has
 * no migration yet; this is the reference the wiring will follow: `replaceWrapping` is a compare-and-set on
 * `kek_id`, which is what makes concurrent rewraps safe.
 */
export async function createDataKeyTable<T>(db: Kysely<T>): Promise<void> {
  await sql`CREATE TABLE vault_data_keys (
    id text PRIMARY KEY,
    kek_id text NOT NULL,
    wrapped bytea NOT NULL,
    created_at timestamptz NOT NULL
  )`.execute(db);
  await sql`CREATE INDEX vault_data_keys_kek_id ON vault_data_keys (kek_id)`.execute(db);
}

interface SqlRow {
  id: string;
  kek_id: string;
  wrapped: Uint8Array;
  created_at: Date;
}

function fromSql(row: SqlRow): DataKeyRow {
  return { id: row.id, kekId: row.kek_id, wrapped: Buffer.from(row.wrapped), createdAt: new Date(row.created_at) };
}

// The tests' database type does not know this table, so queries are raw SQL over any Kysely instance.
export function sqlDataKeyRows<T>(db: Kysely<T>): DataKeyRows & DataKeyRowsForRewrap {
  return {
    async insert(row) {
      await sql`INSERT INTO vault_data_keys (id, kek_id, wrapped, created_at)
        VALUES (${row.id}, ${row.kekId}, ${row.wrapped}, ${row.createdAt})`.execute(db);
    },
    async find(id) {
      const result = await sql<SqlRow>`SELECT * FROM vault_data_keys WHERE id = ${id}`.execute(db);
      const row = result.rows[0];
      return row === undefined ? undefined : fromSql(row);
    },
    async listAfter(afterId, limit) {
      const result = await sql<SqlRow>`SELECT * FROM vault_data_keys
        WHERE ${afterId === undefined ? sql`true` : sql`id > ${afterId}`} ORDER BY id LIMIT ${limit}`.execute(db);
      return result.rows.map(fromSql);
    },
    async replaceWrapping(id: string, expectedKekId: string, next: WrappedKey) {
      const result = await sql`UPDATE vault_data_keys SET kek_id = ${next.kekId}, wrapped = ${next.wrapped}
        WHERE id = ${id} AND kek_id = ${expectedKekId}`.execute(db);
      return result.numAffectedRows === 1n;
    },
    async countWrappedUnder(kekId) {
      const result = await sql<{ n: bigint | number | string }>`SELECT count(*) AS n FROM vault_data_keys WHERE kek_id = ${kekId}`.execute(db);
      return Number(result.rows[0]?.n ?? 0);
    },
  };
}
