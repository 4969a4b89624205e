import assert from 'node:assert/strict';
import type Stripe from 'stripe';
import type { Database } from '../../src/store/database.ts';
import type { TestServer } from './server.ts';

/** Rows of the tables a refused request could have written to, to prove it wrote nothing. */
export async function rowCounts<T extends keyof Database>(server: TestServer, tables: readonly T[]): Promise<Record<T, number>> {
  const found = {} as Record<T, number>;
  for (const table of tables) {
    const counted: keyof Database = table;
    const row = await server.database.db.selectFrom(counted).select((eb) => eb.fn.countAll<bigint>().as('n')).executeTakeFirstOrThrow();
    found[table] = Number(row.n);
  }
  return found;
}

/**
 * A call through the SDK refused with a 400 or 404 naming `param`, its message matching `message`, and no row written
 * to `tables`.
 */
export async function refusedWithNothingChanged(server: TestServer, tables: ReadonlyArray<keyof Database>, call: () => Promise<unknown>, param: string, message: RegExp): Promise<void> {
  const before = await rowCounts(server, tables);
  await assert.rejects(call().then(() => assert.fail(`${param}: accepted`)), (error: Stripe.errors.StripeError) => {
    assert.equal(error.param, param, error.message);
    assert.match(error.message, message);
    assert.ok(error.statusCode === 400 || error.statusCode === 404, `${param}: ${error.statusCode}`);
    return true;
  });
  assert.deepEqual(await rowCounts(server, tables), before, `refused (${param}) and nothing written`);
}
