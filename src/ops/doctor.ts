import { countStuckWalletPayments } from '../jobs/sync-wallet-payments.ts';
import { countLateWalletPayments } from '../flows/wallet-late-payments.ts';
import fs from 'node:fs';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { homeKeyProblems } from '../app/home-keys.ts';
import { limits } from '../limits.ts';
import type { Config } from '../platform/config.ts';
import type { Database } from '../store/database.ts';

/**
 * `coffer doctor`: what in this installation's configuration is insecure or fragile. A `problem` makes the
 * command exit 1; a `warning` is worth knowing but may be right for a test installation. Every finding says what
 * to do about it.
 */
export interface Finding {
  severity: 'problem' | 'warning';
  check: string;
  message: string;
}

const loopback = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** Files and directories that hold keys: readable by their owner only. */
function keyFileFindings(homeDir: string): Finding[] {
  const findings: Finding[] = [];
  const keysDir = path.join(homeDir, 'keys');
  const visit = (target: string) => {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(target);
    } catch {
      return;
    }
    if (stat.isSymbolicLink()) {
      findings.push({ severity: 'problem', check: 'key_files', message: `${target} is a symbolic link; key files must be regular files in ${keysDir}.` });
      return;
    }
    if ((stat.mode & 0o077) !== 0) {
      findings.push({ severity: 'problem', check: 'key_files', message: `${target} can be read or entered by group or others (mode ${(stat.mode & 0o777).toString(8)}): chmod ${stat.isDirectory() ? '700' : '600'} it.` });
    }
    if (stat.isDirectory()) for (const entry of fs.readdirSync(target)) visit(path.join(target, entry));
  };
  visit(keysDir);
  // demo-merchant.json, and the keys of another database's demo merchant set aside (demo-merchant.<merchant>.json).
  const demoFiles = fs.existsSync(homeDir) ? fs.readdirSync(homeDir).filter((name) => /^demo-merchant(\.[A-Za-z0-9_]+)?\.json$/.test(name)).sort() : [];
  for (const demo of demoFiles.map((name) => path.join(homeDir, name))) {
    findings.push({ severity: 'warning', check: 'demo_keys', message: `${demo} holds the demo merchant's test keys in clear: fine for trying Coffer, remove it (and the demo merchant's keys) on a real installation.` });
    if ((fs.statSync(demo).mode & 0o077) !== 0) findings.push({ severity: 'problem', check: 'demo_keys', message: `${demo} can be read by group or others: chmod 600 it.` });
  }
  return findings;
}

/**
 * The embedded database's directory and the listener's TLS key: another local user who may enter the first can
 * rewrite the ledger and the API keys behind Coffer's back (its files are 0666), and one who reads the second can
 * impersonate the listener.
 */
function privateFileFindings(config: Config): Finding[] {
  const findings: Finding[] = [];
  const check = (target: string, allowed: number, fix: string) => {
    if (!fs.existsSync(target)) return;
    const mode = fs.statSync(target).mode & 0o777;
    if ((mode & ~allowed & 0o777) !== 0) {
      findings.push({ severity: 'problem', check: 'private_files', message: `${target} is open to other users (mode ${mode.toString(8)}): ${fix}.` });
    }
  };
  if (config.databaseUrl === undefined) check(path.join(config.homeDir, 'db'), 0o750, 'chmod 700 it (Coffer does so when it opens the database)');
  check(path.join(config.homeDir, 'tls', 'localhost.key'), 0o600, 'chmod 600 it');
  return findings;
}

/** Where the vault's key-encryption keys live, and whether the HSM settings can work. */
function kekFindings(config: Config): Finding[] {
  const kek = config.kek;
  if (kek.kind === 'local') {
    return config.databaseUrl === undefined ? [] : [{
      severity: 'warning', check: 'kek',
      message: `The vault's key-encryption keys are files under ${path.join(config.homeDir, 'keys', 'kek')}: whoever copies them and a backup reads every card. Keep them in an HSM (COFFER_KEK_PKCS11_MODULE, COFFER_KEK_PKCS11_TOKEN, COFFER_KEK_PKCS11_PIN_FILE; docs/operations.md).`,
    }];
  }
  const findings: Finding[] = [];
  if (!fs.existsSync(kek.modulePath)) {
    findings.push({ severity: 'problem', check: 'kek', message: `The PKCS#11 module ${kek.modulePath} (COFFER_KEK_PKCS11_MODULE) does not exist: the vault cannot reach its keys.` });
  }
  let pinMode: number | undefined;
  try {
    pinMode = fs.statSync(kek.pinFile).mode;
  } catch {
    findings.push({ severity: 'problem', check: 'kek', message: `The PIN file ${kek.pinFile} (COFFER_KEK_PKCS11_PIN_FILE) does not exist.` });
  }
  if (pinMode !== undefined && (pinMode & 0o077) !== 0) {
    findings.push({ severity: 'problem', check: 'kek', message: `The PIN file ${kek.pinFile} can be read by group or others (mode ${(pinMode & 0o777).toString(8)}): chmod 600 it.` });
  }
  return findings;
}

function configFindings(config: Config): Finding[] {
  const findings: Finding[] = [];
  const exposed = !loopback.test(config.publicHost);
  if (config.tlsDisabled) {
    findings.push({ severity: exposed ? 'problem' : 'warning', check: 'tls', message: `TLS is disabled (COFFER_TLS_DISABLED)${exposed ? ` and the listener binds ${config.publicHost}, reachable from other machines` : ''}: API keys and card data would cross the network in clear. Serve HTTPS, or keep the listener on loopback behind a TLS proxy.` });
  } else if (config.tlsCertFile === undefined && exposed) {
    findings.push({ severity: 'warning', check: 'tls', message: `The listener binds ${config.publicHost} with Coffer's self-signed certificate: clients cannot verify it. Set COFFER_TLS_CERT and COFFER_TLS_KEY.` });
  }
  if (!loopback.test(config.internalHost) && config.internalClientCaFile === undefined) {
    findings.push({ severity: 'problem', check: 'internal_listener', message: `The internal listener (staff API) binds ${config.internalHost}, reachable from other machines, and asks for no client certificate: bind it to loopback (COFFER_INTERNAL_HOST=127.0.0.1) and reach it through a VPN or an SSH tunnel, or require certificates from your staff CA (COFFER_INTERNAL_CLIENT_CA).` });
  }
  if (config.databaseUrl === undefined) {
    findings.push({ severity: 'warning', check: 'database', message: 'The embedded database (PGlite) runs in this process, one writer at a time: use PostgreSQL (DATABASE_URL) for live payments (see the README, "What the embedded database guarantees").' });
    if (config.embeddedDurability === 'os') {
      findings.push({ severity: 'problem', check: 'durability', message: 'COFFER_EMBEDDED_DURABILITY=os: acknowledged payments can be lost on power failure. Use fsync (the default).' });
    }
  } else {
    const url = new URL(config.databaseUrl);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const sslmode = url.searchParams.get('sslmode');
    if (!loopback.test(host) && host !== '' && !host.startsWith('/') && (sslmode === null || sslmode === 'disable' || sslmode === 'allow' || sslmode === 'prefer')) {
      findings.push({ severity: 'problem', check: 'database_tls', message: `DATABASE_URL reaches ${host} without requiring TLS: add sslmode=verify-full.` });
    }
  }
  findings.push(...kekFindings(config));
  if (config.webhooksAllowPrivate) {
    findings.push({ severity: 'warning', check: 'webhooks', message: 'COFFER_WEBHOOKS_ALLOW_PRIVATE=true: test-mode webhook endpoints may target this network. Turn it off outside local development.' });
  }
  if (config.rateLimits.perKey > 10_000 || config.rateLimits.perAddress > 10_000) {
    findings.push({ severity: 'warning', check: 'rate_limits', message: `Rate limits of ${config.rateLimits.perKey} per key and ${config.rateLimits.perAddress} per address per ${config.rateLimits.windowSeconds} s barely limit anything.` });
  }
  return findings;
}

async function databaseFindings(db: Kysely<Database>, config: Config, nowMs: number): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const problem of await homeKeyProblems(db, config.homeDir)) {
    findings.push({ severity: 'problem', check: 'home_keys', message: `${problem}: Coffer will not start until it is put right (a key that is missing or another installation's: restore the whole keys/ directory from this installation's backup).` });
  }
  if (config.databaseUrl !== undefined) {
    const role = await sql<{ rolsuper: boolean; rolname: string }>`SELECT rolsuper, rolname FROM pg_roles WHERE rolname = current_user`.execute(db);
    const me = role.rows[0];
    if (me?.rolsuper === true) {
      findings.push({ severity: 'problem', check: 'database_role', message: `Coffer connects as ${me.rolname}, a superuser, who can switch off the append-only triggers and read the vault. Give it a role of its own (docs/operations.md, "Database roles").` });
    } else if (me !== undefined) {
      // The role that migrates owns the ledger, and is a member of coffer_vault to hand the vault over: serving as
      // such a role leaves those tables open to whoever takes over a connection.
      const powers = await sql<{ ledger: boolean; vault: boolean }>`
        SELECT has_table_privilege('ledger_accounts', 'UPDATE') AS ledger,
               EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'coffer_vault' AND pg_has_role(current_user, oid, 'MEMBER')) AS vault`.execute(db);
      const power = powers.rows[0];
      const can = [power?.ledger === true ? 'change ledger balances directly' : '', power?.vault === true ? 'take the vault\'s role (coffer_vault)' : ''].filter((item) => item !== '');
      if (can.length > 0) {
        findings.push({ severity: 'warning', check: 'database_role', message: `Coffer connects as ${me.rolname}, which can ${can.join(' and ')}. Serve as a login role that holds only coffer_app, and keep the owner of the schema for \`coffer migrate\` (docs/operations.md, "Database roles").` });
      }
    }
  }
  const head = await db.selectFrom('audit_chain_head').select('seq').executeTakeFirst();
  const unsealed = await db.selectFrom('audit_log').select(['seq', 'occurred_at']).where('seq', '>', head?.seq ?? 0n).orderBy('seq').limit(1).executeTakeFirst();
  if (unsealed !== undefined && nowMs - new Date(unsealed.occurred_at).getTime() > limits.auditGapGraceMs * 2) {
    findings.push({ severity: 'problem', check: 'audit_sealer', message: `Audit record ${unsealed.seq} (${new Date(unsealed.occurred_at).toISOString()}) is not sealed yet: no process runs the background jobs (COFFER_JOBS), or the sealer fails. Run \`coffer audit seal\` and check the logs.` });
  }
  const live = await db.selectFrom('api_keys').select('id').where('livemode', '=', true).where('revoked_at', 'is', null).where('allowed_addresses', 'is', null)
    .where('kind', '!=', 'publishable').limit(1).executeTakeFirst();
  if (live !== undefined) {
    findings.push({ severity: 'warning', check: 'live_keys', message: `Live secret or restricted key ${live.id} works from any address: consider an address list (coffer apikeys create … --allow).` });
  }
  const stuck = await countStuckWalletPayments(db, nowMs);
  if (stuck > 0) {
    findings.push({ severity: 'problem', check: 'stuck_payments', message: `${stuck} Alipay or WeChat Pay payment(s) are still unresolved well past the shopper's time to pay: the provider sync worker cannot get an answer (is COFFER_JOBS on? can Coffer reach the provider?). Check the logs for "wallet payment outcome still unknown".` });
  }
  const late = await countLateWalletPayments(db);
  if (late.refund_failed > 0) {
    findings.push({ severity: 'problem', check: 'late_payments', message: `${late.refund_failed} wallet payment(s) made after their attempt had failed could not be refunded to the shopper: the provider refused the refund, or never answered. Settle them at the provider; the audit log's charge.late_payment_refund_failed records name them.` });
  }
  if (late.unanswered > 0) {
    findings.push({ severity: 'problem', check: 'late_payments', message: `${late.unanswered} wallet trade(s) closed before the shopper opened them are still unanswered: the provider has not said whether the shopper paid them later (can Coffer reach the provider?). Check the logs for "late wallet payment".` });
  }
  const owner = await db.selectFrom('staff_users').select('id').where('role', 'in', ['owner', 'admin']).where('status', '=', 'active').limit(1).executeTakeFirst();
  if (owner === undefined) {
    findings.push({ severity: 'warning', check: 'staff', message: 'No active staff owner or administrator: create the first with `coffer admin create --email … --name …` and enroll (docs/staff.md).' });
  }
  return findings;
}

export async function runDoctor(config: Config, db: Kysely<Database> | undefined, nowMs: number): Promise<Finding[]> {
  const findings = [...configFindings(config), ...keyFileFindings(config.homeDir), ...privateFileFindings(config)];
  if (db !== undefined) findings.push(...await databaseFindings(db, config, nowMs));
  return findings;
}
