import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import { verifyLedger } from '../../src/ops/ledger-verify.ts';
import type { Database } from '../../src/store/database.ts';

/** Fails the test with every violation listed if any ledger invariant is broken. */
export async function assertLedgerConsistent(db: Kysely<Database>): Promise<void> {
  const report = await verifyLedger(db);
  assert.deepEqual(report.violations, [], 'the ledger verifies');
}

/** Row counts of the tables a request could change, to prove that a refused request changed nothing. */
const countedTables = ['payment_intents', 'charges', 'payment_methods', 'events', 'audit_log', 'ledger_transfers', 'idempotency_keys', 'sandbox_card_payments'] as const;
export type StateCounts = Record<(typeof countedTables)[number], number>;

export async function stateCounts(db: Kysely<Database>): Promise<StateCounts> {
  const tables = countedTables;
  const counts = {} as StateCounts;
  for (const table of tables) {
    const row = await db.selectFrom(table).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
    counts[table] = Number(row.n);
  }
  return counts;
}
