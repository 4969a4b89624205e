// Creates a migrated embedded database in the directory given as the first argument (see run-tests.js).
import { migrate } from '../src/store/migrate.ts';
import { openPGlite } from '../src/store/open-database.ts';

const dataDir = process.argv[2];
if (dataDir === undefined) throw new Error('usage: prepare-test-database.ts <data-dir>');
const database = await openPGlite(dataDir);
await migrate(database);
await database.close();
