import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { maxNamedStatements, namingPool, StatementNames } from '../../src/store/prepared-statements.ts';
import { openTestDatabase, testDatabaseKind, type TestDatabase } from '../support/database.ts';

describe('statement names', () => {
  test('a text is named from its third use, keeps its name, and no more than the cap are ever named', () => {
    const names = new StatementNames();
    assert.equal(names.nameFor('select $1'), undefined);
    assert.equal(names.nameFor('select $1'), undefined);
    const name = names.nameFor('select $1');
    assert.ok(name !== undefined);
    assert.equal(names.nameFor('select $1'), name);
    for (let i = 0; names.size < maxNamedStatements; i += 1) {
      for (let use = 0; use < 3; use += 1) names.nameFor(`select ${i}, $1`);
    }
    for (let use = 0; use < 5; use += 1) assert.equal(names.nameFor('select 1 + $1'), undefined, 'past the cap, texts stay unnamed');
    assert.equal(names.nameFor('select $1'), name, 'named texts keep their names');
    assert.equal(names.size, maxNamedStatements);
  });
});

// Prepared statements are a PostgreSQL wire-protocol matter; the embedded database runs queries in process.
describe('named prepared statements on PostgreSQL', { skip: testDatabaseKind() === 'pglite' ? 'PostgreSQL only' : false }, () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let db: Kysely<Record<string, Record<string, unknown>>>;

  before(async () => {
    database = await openTestDatabase();
    // One connection, so that what the server keeps can be read on it.
    pool = new pg.Pool({ connectionString: database.url, max: 1 });
    db = new Kysely({ dialect: new PostgresDialect({ pool: namingPool(pool) }) });
    await sql`CREATE TABLE prepared_probe (id int PRIMARY KEY, label text)`.execute(db);
    await sql`INSERT INTO prepared_probe VALUES (1, 'one'), (2, 'two')`.execute(db);
  });
  after(async () => {
    await db.destroy();
    await database.drop();
  });

  const kept = async () => {
    const result = await sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%prepared_probe%'`.execute(db);
    return result.rows.map((row) => row.statement);
  };
  const backend = async () => (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db)).rows[0]?.pid;

  test('a recurring statement is parsed once per connection and answers as before; one without parameters is never kept', async () => {
    for (let i = 0; i < 6; i += 1) {
      const id = 1 + (i % 2);
      const rows = (await sql<{ label: string }>`SELECT label FROM prepared_probe WHERE id = ${id}`.execute(db)).rows;
      assert.deepEqual(rows, [{ label: id === 1 ? 'one' : 'two' }]);
    }
    for (let i = 0; i < 4; i += 1) await sql`SELECT count(*) FROM prepared_probe`.execute(db);
    const statements = await kept();
    assert.equal(statements.length, 1, statements.join('\n'));
    assert.match(statements[0] ?? '', /WHERE id = \$1/);
  });

  test('a statement made stale by a schema change is sent again unnamed outside a transaction, and its connection replaced', async () => {
    const select = (id: number) => sql<Record<string, unknown>>`SELECT * FROM prepared_probe WHERE id >= ${id} ORDER BY id`.execute(db);
    for (let i = 0; i < 4; i += 1) assert.equal((await select(1)).rows.length, 2);
    const before = await backend();
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await admin.query(`ALTER TABLE prepared_probe ADD COLUMN note text DEFAULT 'added'`);
    } finally {
      await admin.end();
    }
    const rows = (await select(2)).rows;
    assert.deepEqual(rows, [{ id: 2, label: 'two', note: 'added' }], 'the new column is there, and no error reached the caller');
    assert.notEqual(await backend(), before, 'the connection that held the stale statement was closed');
    assert.equal((await select(1)).rows.length, 2);
  });

  test('inside a transaction a stale statement fails the transaction, and the next one runs on a fresh connection', async () => {
    const select = (id: number) => sql<Record<string, unknown>>`SELECT label, note FROM prepared_probe WHERE id <= ${id} ORDER BY id`.execute(db);
    for (let i = 0; i < 4; i += 1) await select(2);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await admin.query('ALTER TABLE prepared_probe ALTER COLUMN note TYPE varchar(20)');
    } finally {
      await admin.end();
    }
    await assert.rejects(
      db.transaction().execute(async (tx) => {
        await sql`UPDATE prepared_probe SET label = 'changed' WHERE id = 1`.execute(tx);
        await sql`SELECT label, note FROM prepared_probe WHERE id <= ${2} ORDER BY id`.execute(tx);
      }),
      /cached plan must not change result type/,
    );
    const rows = (await select(2)).rows;
    assert.deepEqual(rows, [{ label: 'one', note: 'added' }, { label: 'two', note: 'added' }], 'the failed transaction changed nothing');
  });
});
