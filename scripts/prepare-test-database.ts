// Creates a migrated database for the test runner (see run-tests.js): an embedded one in the directory given as the
// first argument, or, given `--url <postgres://…>`, Coffer's tables in that (empty) PostgreSQL database.
import { migrate } from '../src/store/migrate.ts';
import { openPGlite, openPostgres } from '../src/store/open-database.ts';

const [first, second] = process.argv.slice(2);
if (first === undefined || (first === '--url' && second === undefined)) throw new Error('usage: prepare-test-database.ts <data-dir> | --url <postgres-url>');
const database = first === '--url' ? await openPostgres(second ?? '', 2) : await openPGlite(first);
await migrate(database);
await database.close();
