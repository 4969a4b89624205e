import { createFirstOwner } from '../identity/staff.ts';
import type { Config } from '../platform/config.ts';
import { databaseExitCodes } from './database-refusal.ts';
import { openInstalledDatabase } from './open-installed-database.ts';
import { parseCommandLine, refused, refuseExtraArguments, subcommand, UsageError } from './parse-command-line.ts';

export const adminUsage = `Usage:
  coffer admin create --email you@example.com --name "Your Name"
      an owner: the first of a fresh installation, or a second while fewer than two owners or administrators are
      active or invited (approvals need two people); prints a one-time enrollment token (valid 72 hours) with
      which they set a password and an authenticator app. Further staff are invited through the staff API.
      Works on an installation's database, which coffer migrate (or a first coffer start) made.
Exit codes: 0 created; 1 refused (a bad email or name, or enough owners and administrators already: the message
  says which); ${databaseExitCodes}.`;

/**
 * `coffer admin create`: an owner, added from the host while the installation has fewer than two owners or
 * administrators (see createFirstOwner). Returns the exit code: 0 done, 1 refused (the message says why); a usage
 * error is thrown. It runs beside a live installation, so it does not migrate: the schema is the running Coffer's.
 */
export async function commandAdmin(loadConfig: () => Config, argv: string[], print: (line: string) => void): Promise<number> {
  const parsed = parseCommandLine('admin', argv, { email: { type: 'string' }, name: { type: 'string' } }, adminUsage);
  if (parsed.help) {
    print(adminUsage);
    return 0;
  }
  const { positionals, values } = parsed;
  subcommand('admin', positionals[0], ['create'], adminUsage);
  refuseExtraArguments('admin create', positionals, 1, adminUsage);
  if (values.email === undefined || values.name === undefined) throw new UsageError('admin create needs --email and --name', adminUsage);
  if (!/^[^\s@]+@[^\s@]+$/.test(values.email) || values.email.length > 320) {
    process.stderr.write(`coffer: --email must be an email address, got "${values.email}"\n`);
    return 1;
  }
  if (values.name.trim() === '' || values.name.length > 200) {
    process.stderr.write('coffer: --name must be 1 to 200 characters\n');
    return 1;
  }
  const config = loadConfig();
  const database = await openInstalledDatabase(config);
  try {
    const invited = await createFirstOwner(database.db, values.email, values.name.trim(), new Date());
    // Passkeys are bound to a host name, so loopback is named localhost, as the sign-in page expects.
    const host = /^(0\.0\.0\.0|::|127\.\d+\.\d+\.\d+|::1)$/.test(config.internalHost) ? 'localhost' : config.internalHost;
    const base = config.staffOrigin ?? `${config.tlsDisabled ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${config.internalPort}`;
    print(`Owner ${invited.userId} (${values.email.trim().toLowerCase()}) created. One-time enrollment token, valid until ${invited.expiresAt.toISOString()}:`);
    print(`  ${invited.enrollmentToken.reveal()}`);
    print('Open the enrollment link in a browser (Coffer must be running); it sets up an authenticator app, a password and recovery codes:');
    print(`  ${base}/staff/enroll#${invited.enrollmentToken.reveal()}`);
    print('Or enroll on the staff API (see docs/staff.md): it gives an authenticator secret, then takes a password and a first code:');
    print(`  POST ${base}/staff/v1/enrollment/start     {"token": "…"}`);
    print(`  POST ${base}/staff/v1/enrollment/complete  {"token": "…", "password": "…", "code": "123456"}`);
    return 0;
  } catch (error) {
    return refused(error);
  } finally {
    await database.close();
  }
}
