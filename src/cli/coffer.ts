import { parseArgs } from 'node:util';
import type { OpenDatabase } from '../store/open-database.ts';
import { ConfigError, loadConfig, type Config } from '../platform/config.ts';
import { limits } from '../limits.ts';
import fs from 'node:fs';
import path from 'node:path';
import { migrate, pendingMigrations } from '../store/migrate.ts';
import { systemClock } from '../platform/clock.ts';

// Each command loads its own code when it runs (`import()` below): `coffer apikeys list` need not load the server,
// its HTTP framework and the risk model, which would double the time it takes, nor `coffer help` the database.
async function openConfiguredDatabase(config: Config): Promise<OpenDatabase> {
  return (await import('../app/open-configured-database.ts')).openConfiguredDatabase(config, 'command');
}

const usage = `coffer: a self-hosted payment system with a Stripe-compatible API

Usage:
  coffer start            serve the API (HTTPS on $COFFER_PORT, default 8443) and run background jobs
  coffer migrate          apply database migrations and exit
  coffer ledger verify    check every ledger invariant; exits 1 if any is violated, 2 with nothing to check,
                          3 when the database cannot be opened
  coffer keys rotate      new vault key-encryption key; re-wrap every data key under it
  coffer keys retire      delete old key-encryption keys nothing is wrapped under any more
  coffer apikeys create|list|roll|revoke   merchants' API keys (coffer apikeys for details)
  coffer audit verify|seal|export   the tamper-evident audit log (coffer audit for details)
  coffer admin create --email … --name …   a staff owner, while fewer than two approvers exist; prints a one-time enrollment token
  coffer risk train|evaluate|score|explain   the fraud model (coffer risk for details; needs no database)
  coffer risk export --output FILE   decided payments with their labels, as a training file
  coffer doctor           report insecure or fragile configuration; exits 1 if any problem is found, 3 when
                          the database could not be opened (its checks skipped)
  coffer help             show this text

Environment:
  DATABASE_URL            postgres://… to use PostgreSQL; unset: embedded database in $COFFER_HOME/db
  COFFER_HOME             Coffer's own files (default ./.coffer)
  COFFER_HOST, COFFER_PORT    where the public listener binds (default 127.0.0.1:8443)
  COFFER_INTERNAL_HOST, COFFER_INTERNAL_PORT   the internal listener, staff API (default 127.0.0.1, the port
                          after COFFER_PORT: 8444)
  COFFER_INTERNAL_CLIENT_CA   a CA certificate (PEM): the internal listener then requires client certificates it issued
  COFFER_STAFF_ORIGIN     the origin staff browsers use for the internal listener; passkeys are bound to it
  COFFER_FOUR_EYES_REFUND_ABOVE   staff refunds taking a payment's refunded total above this (US cents, converted for other currencies) need a second approver (default 100000)
  COFFER_TLS_CERT, COFFER_TLS_KEY   certificate to serve (default: self-signed, generated)
  COFFER_LOG_LEVEL        fatal, error, warn, info (default), debug, trace, silent
  COFFER_JOBS             run background jobs in this process (default true)
  COFFER_DB_POOL_SIZE     PostgreSQL connections (default ${limits.databasePoolSizeDefault})
  COFFER_EMBEDDED_DURABILITY   fsync (default) or os: flush each embedded commit to disk, or leave it to the OS
  COFFER_WEBHOOKS_ALLOW_PRIVATE   test mode: webhook endpoints may be loopback or private addresses
  COFFER_BUNDLE           off: run the TypeScript sources through tsx; require: fail unless they run bundled (default: bundled, else tsx)
  COFFER_WEBHOOK_RETRY_SECONDS   delays before each retry of a failed delivery, comma-separated (default: three days, as Stripe)
  COFFER_WEBHOOK_LEASE_SECONDS   how soon a delivery whose process died is sent again (default 60, at least 15)
  COFFER_RATE_LIMIT_PER_KEY, COFFER_RATE_LIMIT_PER_ADDRESS   requests per window (default ${limits.rateLimitPerKeyDefault} and ${limits.rateLimitPerAddressDefault})
  COFFER_RATE_LIMIT_WINDOW_SECONDS   the window (default 1)
  COFFER_REDIS_URL        redis://… to share rate-limit counters between processes (default: in memory)
  COFFER_REDIS_PREFIX     prefix of Coffer's keys in Redis (default coffer:)
  COFFER_KEK_PKCS11_MODULE, COFFER_KEK_PKCS11_TOKEN, COFFER_KEK_PKCS11_PIN_FILE   keep the vault's key-encryption
                          keys in an HSM: its PKCS#11 module, token label, and a file (mode 0600) holding the user PIN
`;

// A closed terminal or pipe must not crash the server: output is informational.
process.stdout.on('error', () => undefined);

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function commandStart(config: Config): Promise<void> {
  const started = Date.now();
  const { startCoffer } = await import('../app/start-coffer.ts');
  const coffer = await startCoffer({ config, demoMerchant: true });
  print('');
  print(`Coffer is running (test mode, ${coffer.database.kind === 'pglite' ? 'embedded database' : 'PostgreSQL'}: ${coffer.database.location})`);
  print(`  API         ${coffer.url}/v1`);
  print(`  Health      ${coffer.url}/health`);
  print(`  Staff API   ${coffer.internalUrl}/staff/v1 (first owner: coffer admin create --email … --name …)`);
  if (coffer.certFile !== null) print(`  Certificate ${coffer.certFile} (self-signed unless you configured one)`);
  if (coffer.demo !== undefined) {
    print('');
    print(`Demo merchant ${coffer.demo.merchantId}, test keys:`);
    print(`  secret       ${coffer.demo.secretKey}`);
    print(`  publishable  ${coffer.demo.publishableKey}`);
    print('');
    print('Try it:');
    print(`  curl -k ${coffer.url}/v1/payment_intents -u ${coffer.demo.secretKey}: \\`);
    print('    -d amount=2000 -d currency=usd -d payment_method=pm_card_visa -d confirm=true');
  }
  print('');
  print(`Ready in ${((Date.now() - started) / 1000).toFixed(1)} s. Press Ctrl-C to stop.`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    print(`\n${signal}: stopping…`);
    const timer = setTimeout(() => process.exit(1), limits.shutdownGraceMs);
    coffer.close().then(
      () => {
        clearTimeout(timer);
        process.exit(0);
      },
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function commandMigrate(config: Config): Promise<number> {
  const database = await openConfiguredDatabase(config);
  try {
    const report = await migrate(database);
    print(report.applied.length === 0 ? 'The database is up to date.' : `Applied: ${report.applied.join(', ')}`);
    return 0;
  } finally {
    await database.close();
  }
}

/**
 * Checks the ledger of the configured database without changing it: a home directory with no embedded database,
 * or a database without Coffer's schema (a mistyped COFFER_HOME or DATABASE_URL), is an error, not an empty ledger
 * that verifies.
 */
async function commandLedgerVerify(config: Config): Promise<number> {
  if (config.databaseUrl === undefined && !fs.existsSync(path.join(config.homeDir, 'db'))) {
    process.stderr.write(`coffer: no embedded database in ${config.homeDir}: set COFFER_HOME (or DATABASE_URL) to the installation to check\n`);
    return 2;
  }
  let database: OpenDatabase;
  try {
    database = await openConfiguredDatabase(config);
  } catch (error) {
    // Not a verdict on the ledger: 1 means a violation was found, so a database that cannot be read is 3.
    process.stderr.write(`coffer: could not open the database, so nothing was checked: ${error instanceof Error ? error.message : String(error)}\n`);
    return 3;
  }
  try {
    const pending = await pendingMigrations(database);
    if (pending === null) {
      process.stderr.write(`coffer: ${database.location} holds no Coffer database (no schema_migrations table); nothing was checked or changed\n`);
      return 2;
    }
    if (pending.length > 0) {
      process.stderr.write(`coffer: the database is not migrated to this version of Coffer (missing ${pending.join(', ')}): run \`coffer migrate\` first\n`);
      return 2;
    }
    const { verifyLedger } = await import('../ops/ledger-verify.ts');
    const report = await verifyLedger(database.db);
    print(`Checked ${report.accounts} accounts and ${report.transfers} transfers in ${report.currencies} currencies.`);
    if (report.violations.length === 0) {
      print('The ledger is consistent: every invariant holds.');
      return 0;
    }
    for (const violation of report.violations) print(`VIOLATION ${violation.check}: ${violation.detail}`);
    print(`${report.violations.length} violation(s).`);
    return 1;
  } finally {
    await database.close();
  }
}

async function commandKeys(config: Config, sub: string | undefined): Promise<number> {
  const database = await openConfiguredDatabase(config);
  try {
    await migrate(database);
    const { retireOldKeys, rotateVaultKeys } = await import('../ops/rotate-keys.ts');
    if (sub === 'rotate') {
      const report = await rotateVaultKeys(database.db, config.kek, config.homeDir);
      print(`Key-encryption key ${report.previousKekId} replaced by ${report.currentKekId}.`);
      print(`Data keys: ${report.rewrap.examined} examined, ${report.rewrap.rewrapped} re-wrapped, ${report.rewrap.alreadyCurrent} already current, ${report.rewrap.failed} failed.`);
      if (!report.rewrap.finished || report.rewrap.failed > 0) {
        print('The re-wrap is not complete: run `coffer keys rotate` again (it resumes) before retiring the old key.');
        return 1;
      }
      print(`Keep ${report.previousKekId} with backups taken before now; \`coffer keys retire\` deletes it once nothing uses it.`);
      return 0;
    }
    if (sub === 'retire') {
      const results = await retireOldKeys(database.db, config.kek, config.homeDir, systemClock);
      if (results.length === 0) print('No old key-encryption key to retire.');
      for (const { kekId, outcome } of results) print(`${kekId}: ${outcome.retired ? 'deleted' : `kept (${outcome.reason})`}`);
      return 0;
    }
  } finally {
    await database.close();
  }
  process.stderr.write('coffer: usage: coffer keys rotate | coffer keys retire\n');
  return 2;
}

async function commandDoctor(config: Config): Promise<number> {
  let database: OpenDatabase | undefined;
  try {
    database = await openConfiguredDatabase(config);
    await migrate(database);
  } catch (error) {
    print(`warning   database: could not open it (${error instanceof Error ? error.message : String(error)}); its checks were skipped.`);
    await database?.close();
    database = undefined;
  }
  try {
    const { runDoctor } = await import('../ops/doctor.ts');
    const findings = await runDoctor(config, database?.db, Date.now());
    for (const finding of findings) print(`${finding.severity.padEnd(9)} ${finding.check}: ${finding.message}`);
    const problems = findings.filter((finding) => finding.severity === 'problem').length;
    const skipped = database === undefined ? ' The database could not be opened, so its checks were skipped: run doctor again when it can be.' : '';
    print(problems === 0 ? `No problem found (${findings.length} warning(s)).${skipped}` : `${problems} problem(s), ${findings.length - problems} warning(s).${skipped}`);
    // Skipped checks are no verdict: a gate on doctor must not pass on them.
    return problems > 0 ? 1 : database === undefined ? 3 : 0;
  } finally {
    await database?.close();
  }
}

async function main(argv: string[]): Promise<number> {
  // `apikeys` has options of its own.
  if (argv[0] === 'apikeys') return (await import('./api-keys-command.ts')).commandApiKeys(loadConfig(), argv.slice(1), print);
  if (argv[0] === 'audit') return (await import('./audit-command.ts')).commandAudit(loadConfig(), argv.slice(1), print);
  if (argv[0] === 'admin') return (await import('./admin-command.ts')).commandAdmin(loadConfig(), argv.slice(1), print);
  if (argv[0] === 'risk' && argv[1] === 'export') return (await import('./risk-export-command.ts')).commandRiskExport(loadConfig(), argv.slice(2), print);
  if (argv[0] === 'risk') return (await import('./risk-command.ts')).commandRisk(argv.slice(1), print);
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
  const [command, sub] = positionals;
  if (values.help === true || command === undefined || command === 'help') {
    print(usage);
    return command === undefined && values.help !== true ? 2 : 0;
  }
  const config = loadConfig();
  switch (command) {
    case 'start':
      await commandStart(config);
      return -1;
    case 'migrate':
      return commandMigrate(config);
    case 'ledger':
      if (sub === 'verify') return commandLedgerVerify(config);
      break;
    case 'keys':
      return commandKeys(config, sub);
    case 'doctor':
      return commandDoctor(config);
    default:
      break;
  }
  process.stderr.write(`coffer: unknown command "${positionals.join(' ')}"\n\n${usage}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`coffer: configuration error: ${error.message}\n`);
      process.exit(78);
    }
    process.stderr.write(`coffer: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
