#!/usr/bin/env node
// Runs the test suite with node's built-in runner: `npm test` (everything) or `npm test -- <files…>`.
// `npm test` passes --static-checks: the type checker and the linter run first, unless COFFER_TEST_STATIC_CHECKS is
// `skip` (CI runs the suite twice, once per database, and the checks once: they do not depend on the database).
// Without COFFER_TEST_DATABASE_URL the tests use the embedded database; a migrated PGlite data directory is
// prepared once here and copied by each test file, which saves PostgreSQL's initdb for every file.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

function findTests(dir) {
  const found = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(full));
    else if (entry.name.endsWith('.test.ts')) found.push(full);
  }
  return found.sort();
}

const args = process.argv.slice(2).filter((arg) => arg !== '--static-checks');
const requested = args.filter((arg) => !arg.startsWith('-'));
const flags = args.filter((arg) => arg.startsWith('-'));

// COFFER_TEST_CONCURRENCY: how many test files run at once (one unless set). A file on the embedded database runs
// its queries on its own process's one thread, so two at once keep two cores busy where one would leave the other
// idle; each file has its own database, home directory and ports either way.
const concurrency = process.env.COFFER_TEST_CONCURRENCY ?? '1';
if (!/^[1-9]\d?$/.test(concurrency)) {
  console.error(`COFFER_TEST_CONCURRENCY must be a whole number from 1 to 99, not "${concurrency}".`);
  process.exit(2);
}
if (process.argv.includes('--static-checks') && process.env.COFFER_TEST_STATIC_CHECKS !== 'skip') {
  for (const script of ['typecheck', 'lint']) {
    const checked = spawnSync('npm', ['run', '--silent', script], { stdio: 'inherit', cwd: root });
    if (checked.status !== 0) {
      console.error(`npm run ${script} failed: no test was run.`);
      process.exit(checked.status ?? 1);
    }
  }
}
const files = requested.length > 0 ? requested.map((file) => path.resolve(file)) : findTests(path.join(root, 'test'));

const env = { ...process.env };
let templateDir;
let postgresTemplate;

/** Runs `queries` in order on the server at `url`, in one connection. */
async function adminQuery(url, ...queries) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const query of queries) await client.query(query);
  } finally {
    await client.end();
  }
}

/** A migrated database made by scripts/prepare-test-database.ts with `args` (a data directory, or --url and a URL). */
function prepareDatabase(...args) {
  return spawnSync(process.execPath, [path.join(root, 'bin/run-ts.js'), path.join(root, 'scripts/prepare-test-database.ts'), ...args], { stdio: 'inherit' }).status;
}
if (!env.COFFER_TEST_DATABASE_URL) {
  templateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-template-'));
  const dataDir = path.join(templateDir, 'db');
  const prepared = prepareDatabase(dataDir);
  if (prepared !== 0) process.exit(prepared ?? 1);
  env.COFFER_TEST_PGLITE_TEMPLATE = dataDir;
} else {
  // The roles the migrations create belong to the whole cluster: made once here, so that test files migrating
  // their own databases at the same time do not race to create them on a server that has never had Coffer.
  // A migrated database the tests copy (CREATE DATABASE … TEMPLATE) instead of running every migration again for
  // each of theirs; dropped at the end.
  postgresTemplate = `coffer_template_${process.pid}_${Date.now()}`;
  await adminQuery(env.COFFER_TEST_DATABASE_URL, ...['coffer_vault', 'coffer_app'].map((role) =>
    `DO $$ BEGIN CREATE ROLE ${role} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`),
  `CREATE DATABASE ${postgresTemplate}`);
  const templateUrl = new URL(env.COFFER_TEST_DATABASE_URL);
  templateUrl.pathname = `/${postgresTemplate}`;
  const prepared = prepareDatabase('--url', templateUrl.toString());
  if (prepared !== 0) {
    await adminQuery(env.COFFER_TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${postgresTemplate} WITH (FORCE)`);
    process.exit(prepared ?? 1);
  }
  env.COFFER_TEST_POSTGRES_TEMPLATE = postgresTemplate;
}
/**
 * The test files bundled by esbuild, each with the sources it imports (shared code in shared chunks), into a
 * directory under node_modules (so that packages resolve as from the sources). Loading one bundle takes a fraction of
 * the time tsx takes to transpile and resolve each module through its loader hooks, which every test file's process
 * paid again: about two and a half seconds per file. Modules keep their own `import.meta.url`, so they find their
 * files (migrations, pages, fixtures) next to their sources, and stack traces name the sources through source maps.
 * COFFER_TEST_BUNDLE=off runs the sources through tsx instead.
 */
async function bundleTests(testFiles) {
  const cache = path.join(root, 'node_modules', '.cache', 'coffer-tests');
  // What an interrupted run left behind goes after a day; a run still going started from its own long ago.
  for (const old of fs.existsSync(cache) ? fs.readdirSync(cache) : []) {
    const full = path.join(cache, old);
    if (Date.now() - fs.statSync(full).mtimeMs > 86_400_000) fs.rmSync(full, { recursive: true, force: true });
  }
  const out = path.join(cache, `${process.pid}-${Date.now()}`);
  const { build } = await import('esbuild');
  const keepFilePaths = {
    name: 'keep-file-paths',
    setup(plugin) {
      plugin.onLoad({ filter: /\.ts$/ }, async (args) => {
        const text = await fs.promises.readFile(args.path, 'utf8');
        const contents = text
          .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href))
          .replaceAll('import.meta.dirname', JSON.stringify(path.dirname(args.path)))
          .replaceAll('import.meta.filename', JSON.stringify(args.path));
        return { contents, loader: 'ts' };
      });
    },
  };
  const entryPoints = Object.fromEntries(testFiles.map((file) => [path.relative(root, file).replace(/\.ts$/, ''), file]));
  await build({
    entryPoints, bundle: true, splitting: true, format: 'esm', platform: 'node', target: 'node20', keepNames: true,
    packages: 'external', outdir: out, sourcemap: 'linked', plugins: [keepFilePaths], logLevel: 'warning',
  });
  return { dir: out, files: testFiles.map((file) => path.join(out, `${path.relative(root, file).replace(/\.ts$/, '')}.js`)) };
}

const bundled = env.COFFER_TEST_BUNDLE === 'off' ? undefined : await bundleTests(files);
console.log(`Running ${files.length} test files on ${env.COFFER_TEST_DATABASE_URL ? 'PostgreSQL' : 'PGlite (embedded)'}`);
const result = spawnSync(process.execPath, [
  ...(bundled === undefined ? ['--import', 'tsx'] : ['--enable-source-maps']),
  '--test',
  `--test-concurrency=${concurrency}`,
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  `--test-reporter=${path.join(root, 'scripts/test-timing-reporter.js')}`,
  '--test-reporter-destination=stdout',
  ...flags,
  ...(bundled?.files ?? files),
], {
  stdio: 'inherit',
  env,
  cwd: root,
});
if (bundled !== undefined) fs.rmSync(bundled.dir, { recursive: true, force: true });
if (templateDir !== undefined) fs.rmSync(templateDir, { recursive: true, force: true });
if (postgresTemplate !== undefined) await adminQuery(env.COFFER_TEST_DATABASE_URL, `DROP DATABASE IF EXISTS ${postgresTemplate} WITH (FORCE)`);
process.exit(result.status ?? 1);
