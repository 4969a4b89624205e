import fs from 'node:fs';
import type { OpenDatabase } from '../store/open-database.ts';
import { ConfigError, loadConfig, type Config } from '../platform/config.ts';
import { limits } from '../limits.ts';
import { migrate } from '../store/migrate.ts';
import { systemClock } from '../platform/clock.ts';
import { DatabaseRefusal, databaseExitCodes } from './database-refusal.ts';
import { parseCommandLine, refuseExtraArguments, subcommand, UsageError } from './parse-command-line.ts';
import { assertNever } from '../platform/assert.ts';
import { databaseLabel } from '../vault/kek-usage.ts';
import type { RetireOutcome } from '../vault/rewrap.ts';
import { vaultLimits } from '../vault/vault-limits.ts';

// Each command loads its own code when it runs (`import()` below): `coffer apikeys list` need not load the server,
// its HTTP framework and the risk model, which would double the time it takes, nor `coffer help` the database.
async function openConfiguredDatabase(config: Config): Promise<OpenDatabase> {
  return (await import('../app/open-configured-database.ts')).openConfiguredDatabase(config, 'command');
}

/** The database of an installation, for every command but `start` and `migrate`: see openInstalledDatabase. */
async function openInstalledDatabase(config: Config): Promise<OpenDatabase> {
  return (await import('./open-installed-database.ts')).openInstalledDatabase(config);
}

const usage = `coffer: a self-hosted payment system with a Stripe-compatible API

Usage:
  coffer start            serve the API (HTTPS on $COFFER_PORT, default 8443) and run background jobs
  coffer migrate          apply database migrations and exit (creating the database on first use, as start does)
  coffer ledger verify    check every ledger invariant; exits 1 if any is violated
  coffer keys rotate      new vault key-encryption key; re-wrap every data key under it
  coffer keys retire      delete old key-encryption keys nothing is wrapped under any more
  coffer merchants create|list   the platform's merchants (coffer merchants --help for details)
  coffer apikeys create|list|roll|revoke   merchants' API keys (coffer apikeys --help for details)
  coffer audit verify|seal|export   the tamper-evident audit log (coffer audit --help for details)
  coffer admin create --email … --name …   a staff owner, while fewer than two approvers exist; prints a one-time enrollment token and link
  coffer risk train|evaluate|score|explain   the fraud model (coffer risk --help for details; needs no database)
  coffer risk export --output FILE   decided payments with their labels, as a training file
  coffer doctor           report insecure or fragile configuration; exits 1 if any problem is found, 3 when
                          the database could not be opened (its checks skipped, the others run)
  coffer help [command]   show this text, or a command's usage (as does coffer <command> --help)
  coffer --version        show Coffer's version

Every command but start, migrate and those that read only files (risk train|evaluate|score|explain, audit verify
--file) works on an installation's database and never creates or migrates one: where the configuration points to
no Coffer database, or to one not migrated to this version, it exits 2 (run coffer migrate) and changes nothing;
when the database cannot be opened or reached (held by a running Coffer, server down, no such database or role),
3. A usage error exits 2, a configuration error 78.

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
  COFFER_TLS_DISABLED     true: serve plain HTTP, only behind a TLS-terminating proxy on this machine (coffer doctor warns)
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
  COFFER_PUBLIC_URL       the https origin providers and shoppers reach Coffer at (notifications, return links,
                          checkout pages); default: the listener's own address
  COFFER_CARD_FRAME_ORIGIN   the card frame's origin behind a public host name (another origin than the checkout
                          page's); without it there, the hosted checkout offers no card entry (docs/checkout.md)
  COFFER_SHOPPER_NOTIFY_URL, COFFER_SHOPPER_NOTIFY_SECRET_FILE   your gateway for shoppers' SMS and email (step-up
                          codes, receipts), and the file (mode 0600) of the secret its requests are signed with
  COFFER_RISK_MODEL       the risk model file (default models/sparkov.json); COFFER_RISK_USD_RATES adds dollar
                          rates for currencies the model has none for, as JSON ({"eur":1.08})
  COFFER_SANDBOX_CONTROLS=true   serve the test-mode sandboxes' fault controls (a shared test environment only)
  COFFER_ALIPAY_APP_ID, COFFER_ALIPAY_PRIVATE_KEY_FILE, COFFER_ALIPAY_PUBLIC_KEY_FILE, COFFER_ALIPAY_GATEWAY
                          live Alipay (docs/providers.md)
  COFFER_WECHAT_PAY_MCHID, _APPID, _SERIAL_NO, _PRIVATE_KEY_FILE, _PUBLIC_KEY_ID, _PUBLIC_KEY_FILE, _APIV3_KEY_FILE,
  _BASE_URL, _APP_SECRET_FILE   live WeChat Pay (docs/providers.md)
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
  // How to make the first owner, only while there is none.
  const staff = await coffer.services.db.selectFrom('staff_users').select('id').limit(1).executeTakeFirst();
  const ownerHint = coffer.database.kind === 'pglite' ? 'stop Coffer, then coffer admin create --email … --name …' : 'coffer admin create --email … --name …';
  print(`  Staff API   ${coffer.internalUrl}/staff/v1${staff === undefined ? ` (first owner: ${ownerHint})` : ''}`);
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
  // What `coffer doctor` would call a problem (TLS off on an exposed listener, a superuser connection, …) is said at
  // every start, on the terminal and in the log, not only when someone thinks to ask.
  const { runDoctor } = await import('../ops/doctor.ts');
  const problems = (await runDoctor(config, coffer.services.db, Date.now())).filter((finding) => finding.severity === 'problem');
  if (problems.length > 0) {
    print('');
    print(`${problems.length} problem(s) with this installation (coffer doctor lists them, with its warnings):`);
    for (const problem of problems) {
      print(`  ${problem.check}: ${problem.message}`);
      coffer.services.logger.warn({ check: problem.check }, `doctor: ${problem.message}`);
    }
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
    // PostgreSQL connects on the first query: a server down, or no such database or role, is refused naming where.
    const report = await migrate(database).catch(async (error: unknown) => {
      if (config.databaseUrl === undefined || !isConnectionRefusal(error)) throw error;
      const { describeError } = await import('./open-installed-database.ts');
      const { redactConnectionString } = await import('../store/open-database.ts');
      const reason = `${describeError(error)} (the database ${redactConnectionString(config.databaseUrl)})`;
      throw new DatabaseRefusal(`could not open the database, so nothing was changed: ${reason}`, 3, reason);
    });
    print(report.applied.length === 0 ? 'The database is up to date.' : `Applied: ${report.applied.join(', ')}`);
    return 0;
  } finally {
    await database.close();
  }
}

/**
 * Checks the ledger of the configured database without changing it: a home directory with no embedded database,
 * or a database without Coffer's schema (a mistyped COFFER_HOME or DATABASE_URL), is an error (exit 2), not an
 * empty ledger that verifies; one that cannot be opened is 3, since 1 says a violation was found.
 */
async function commandLedgerVerify(config: Config): Promise<number> {
  const database = await openInstalledDatabase(config);
  try {
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

async function commandKeys(config: Config, sub: 'rotate' | 'retire'): Promise<number> {
  const database = await openInstalledDatabase(config);
  try {
    const { retireOldKeys, rotateVaultKeys } = await import('../ops/rotate-keys.ts');
    if (sub === 'rotate') {
      const report = await rotateVaultKeys(database.db, config.kek, config.homeDir, databaseLabel(config.databaseUrl), systemClock);
      print(`Key-encryption key ${report.previousKekId} replaced by ${report.currentKekId}.`);
      print(`Data keys: ${report.rewrap.examined} examined, ${report.rewrap.rewrapped} re-wrapped, ${report.rewrap.alreadyCurrent} already current, ${report.rewrap.failed} failed.`);
      if (!report.rewrap.finished || report.rewrap.failed > 0) {
        print('The re-wrap is not complete: run `coffer keys rotate` again (it resumes) before retiring the old key.');
        return 1;
      }
      print(`Keep ${report.previousKekId} with backups taken before now; \`coffer keys retire\` deletes it once nothing uses it.`);
      return 0;
    }
    const results = await retireOldKeys(database.db, config.kek, config.homeDir, databaseLabel(config.databaseUrl), systemClock);
    if (results.length === 0) print('No old key-encryption key to retire.');
    for (const { kekId, outcome } of results) print(`${kekId}: ${outcome.retired ? 'deleted' : `kept: ${whyKept(outcome)}`}`);
    return 0;
  } finally {
    await database.close();
  }
}

async function commandDoctor(config: Config): Promise<number> {
  let database: OpenDatabase | undefined;
  try {
    database = await openInstalledDatabase(config);
  } catch (error) {
    // No database there (2) is refused like everywhere else; one that cannot be opened leaves the other checks.
    if (!(error instanceof DatabaseRefusal) || error.exitCode !== 3) throw error;
    print(`warning   database: could not open it (${error.reason}); its checks were skipped.`);
  }
  try {
    const { runDoctor } = await import('../ops/doctor.ts');
    const findings = await runDoctor(config, database?.db, Date.now());
    for (const finding of findings) print(`${finding.severity.padEnd(9)} ${finding.check}: ${finding.message}`);
    const problems = findings.filter((finding) => finding.severity === 'problem').length;
    // The database that could not be opened was one warning more, printed above.
    const warnings = findings.length - problems + (database === undefined ? 1 : 0);
    const skipped = database === undefined ? ' The database could not be opened, so its checks were skipped: run doctor again when it can be.' : '';
    print(problems === 0 ? `No problem found (${warnings} warning(s)).${skipped}` : `${problems} problem(s), ${warnings} warning(s).${skipped}`);
    // Skipped checks are no verdict: a gate on doctor must not pass on them.
    return problems > 0 ? 1 : database === undefined ? 3 : 0;
  } finally {
    await database?.close();
  }
}

const startUsage = `Usage:
  coffer start     serve the API (HTTPS on $COFFER_PORT, default 8443) and run background jobs; creates the embedded
                   database in $COFFER_HOME/db on first use, and applies migrations (coffer help lists the environment)
Runs until SIGINT or SIGTERM: exits 0 once stopped, 1 if it could not start or stop cleanly.`;

const migrateUsage = `Usage:
  coffer migrate   apply database migrations and exit: creates the embedded database in $COFFER_HOME/db, or
                   Coffer's tables at DATABASE_URL, when there are none
Exit codes: 0 done; 1 a migration failed, or the database could not be reached (the message says which; each
  migration is applied whole or not at all).`;

const ledgerUsage = `Usage:
  coffer ledger verify   check every ledger invariant over the whole ledger, changing nothing
Exit codes: 0 every invariant holds; 1 a violation was found (each is named); ${databaseExitCodes}, so nothing
  was checked.`;

const keysUsage = `Usage:
  coffer keys rotate   new vault key-encryption key; re-wrap every data key under it (run again to resume)
  coffer keys retire   delete old key-encryption keys nothing is wrapped under any more
Exit codes: 0 done; 1 the re-wrap is not complete, or a key could not be used (the message says why);
  ${databaseExitCodes}.`;

const doctorUsage = `Usage:
  coffer doctor   report insecure or fragile configuration and database state, changing nothing
Exit codes: 0 no problem (warnings at most); 1 a problem was found; ${databaseExitCodes}: the database's checks
  were skipped, the others run.`;

/** The version in package.json, which is Coffer's. */
function version(): string {
  const text = fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  const parsed = JSON.parse(text) as { version?: unknown };
  if (typeof parsed.version !== 'string') throw new Error('package.json has no version');
  return parsed.version;
}

/** The arguments of a command that takes no option, or undefined when its usage was asked for (and printed). */
function positionalsOf(command: string, argv: string[], commandUsage: string): string[] | undefined {
  const parsed = parseCommandLine(command, argv, {}, commandUsage);
  if (!parsed.help) return parsed.positionals;
  print(commandUsage);
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    print(usage);
    return 2;
  }
  // `coffer help apikeys` is `coffer apikeys --help`.
  if (command === 'help' && rest[0] !== undefined) return main([rest[0], '--help']);
  if (command === 'help' || command === '--help' || command === '-h') {
    print(usage);
    return 0;
  }
  if (command === '--version') {
    refuseExtraArguments(command, rest, 0, usage);
    print(version());
    return 0;
  }
  if (command.startsWith('-')) throw new UsageError(`unknown option "${command}"`, usage);
  // Configuration is read once the command line is known good: `--help` works whatever the environment says.
  switch (command) {
    case 'apikeys':
      return (await import('./api-keys-command.ts')).commandApiKeys(loadConfig, rest, print);
    case 'merchants':
      return (await import('./merchants-command.ts')).commandMerchants(loadConfig, rest, print);
    case 'audit':
      return (await import('./audit-command.ts')).commandAudit(loadConfig, rest, print);
    case 'admin':
      return (await import('./admin-command.ts')).commandAdmin(loadConfig, rest, print);
    case 'risk':
      if (rest[0] === 'export') return (await import('./risk-export-command.ts')).commandRiskExport(loadConfig, rest.slice(1), print);
      return (await import('./risk-command.ts')).commandRisk(rest, print);
    case 'start':
    case 'migrate':
    case 'doctor': {
      const commandUsage = command === 'start' ? startUsage : command === 'migrate' ? migrateUsage : doctorUsage;
      const positionals = positionalsOf(command, rest, commandUsage);
      if (positionals === undefined) return 0;
      refuseExtraArguments(command, positionals, 0, commandUsage);
      if (command === 'migrate') return commandMigrate(loadConfig());
      if (command === 'doctor') return commandDoctor(loadConfig());
      await commandStart(loadConfig());
      return -1;
    }
    case 'ledger': {
      const positionals = positionalsOf(command, rest, ledgerUsage);
      if (positionals === undefined) return 0;
      subcommand(command, positionals[0], ['verify'], ledgerUsage);
      refuseExtraArguments('ledger verify', positionals, 1, ledgerUsage);
      return commandLedgerVerify(loadConfig());
    }
    case 'keys': {
      const positionals = positionalsOf(command, rest, keysUsage);
      if (positionals === undefined) return 0;
      const sub = subcommand(command, positionals[0], ['rotate', 'retire'], keysUsage);
      refuseExtraArguments(`keys ${sub}`, positionals, 1, keysUsage);
      return commandKeys(loadConfig(), sub);
    }
    default:
      throw new UsageError(`unknown command "${command}"`, usage);
  }
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
    if (error instanceof UsageError) {
      process.stderr.write(`coffer: ${error.message}\n\n${error.usage}\n`);
      process.exit(2);
    }
    if (error instanceof DatabaseRefusal) {
      process.stderr.write(`coffer: ${error.message}\n`);
      process.exit(error.exitCode);
    }
    process.stderr.write(`coffer: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);

/** Why `coffer keys retire` kept a key, in words that say what to do. */
function whyKept(outcome: Exclude<RetireOutcome, { retired: true }>): string {
  switch (outcome.reason) {
    case 'current':
      return 'it is the current key';
    case 'unknown':
      return 'this home does not know when it was replaced';
    case 'superseded_recently':
      return `it was replaced less than ${Math.round(vaultLimits.kekRetireGraceMs / 60_000)} minutes ago (a running Coffer may still wrap under it); retire again after ${new Date(systemClock.nowMs() + outcome.retryAfterMs).toISOString()}`;
    case 'in_use':
      return `${outcome.dataKeys} data key(s) of this database are still wrapped under it; run \`coffer keys rotate\` to finish re-wrapping, then retire again`;
    case 'other_database':
      return outcome.databases.map((other) => other.why === 'uses'
        ? `the ${other.label} database served from this home still has data keys under it (rotate that database: \`coffer keys rotate\` with its settings)`
        : `the ${other.label} database served from this home has not said which keys it needs since this one was replaced (start it, or run \`coffer keys rotate\` against it)`).join('; ') + '; then retire again';
    default:
      return assertNever(outcome, 'retire outcome');
  }
}

/** Whether PostgreSQL refused the connection itself: no such database or role, bad password, server not there. */
function isConnectionRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (['3D000', '28000', '28P01', 'ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT'].includes(code) || code.startsWith('08'));
}
