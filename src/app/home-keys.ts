import fs from 'node:fs';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { CheckpointSigner } from '../audit/checkpoint-signer.ts';
import { instanceKeyCheck, instanceKeyFile, loadInstanceSecret } from '../platform/instance-secret.ts';
import type { Database } from '../store/database.ts';

/** A home directory whose keys are not those the database was made with: the start stops, having made nothing. */
export class HomeKeysError extends Error {
  readonly code = 'home_keys_mismatch';
}

function auditKeyFile(homeDir: string): string {
  return path.join(homeDir, 'keys', 'audit-signing.key');
}

/**
 * What is wrong with the home's keys, measured against the database, reading only: the instance key (its check
 * value, recorded by the first start) and the audit signing key (the key id of the latest checkpoint). A key the
 * database has never used may still be created; one it has used may not be replaced, for a new one would make
 * fingerprints, webhook and request-signing secrets and staff authenticators unusable, or every earlier audit
 * checkpoint unverifiable. (The vault's key-encryption keys are checked where they are opened: open-kek.ts.)
 */
export async function homeKeyProblems(db: Kysely<Database>, homeDir: string): Promise<string[]> {
  const problems: string[] = [];
  const installation = await db.selectFrom('installation').select('instance_key_check').executeTakeFirst();
  const recorded = installation?.instance_key_check ?? null;
  const instanceFile = instanceKeyFile(homeDir);
  if (recorded !== null) {
    if (!fs.existsSync(instanceFile)) problems.push(`${instanceFile} is missing, but this database was made with one`);
    else {
      // A key file that cannot be used (others may read it, it is not a key) is a problem to report with the rest.
      const check = unlessUnusable(problems, () => instanceKeyCheck(loadInstanceSecret(homeDir)));
      if (check !== undefined && check !== recorded) problems.push(`${instanceFile} is not the instance key this database was made with`);
    }
  }
  const latest = await db.selectFrom('audit_checkpoints').select('key_id').orderBy('seq', 'desc').limit(1).executeTakeFirst();
  if (latest !== undefined) {
    const auditFile = auditKeyFile(homeDir);
    if (!fs.existsSync(auditFile)) problems.push(`${auditFile} is missing, but this database's audit checkpoints are signed with ${latest.key_id}`);
    else {
      const keyId = unlessUnusable(problems, () => CheckpointSigner.open(homeDir, { create: false }).keyId);
      if (keyId !== undefined && keyId !== latest.key_id) problems.push(`${auditFile} holds ${keyId}, but this database's audit checkpoints are signed with ${latest.key_id}`);
    }
  }
  return problems;
}

/** Refuses a home whose keys are not the database's (homeKeyProblems), naming each one, before anything is made. */
export async function checkHomeKeys(db: Kysely<Database>, homeDir: string): Promise<void> {
  const problems = await homeKeyProblems(db, homeDir);
  if (problems.length === 0) return;
  throw new HomeKeysError(`${problems.join('; ')}. Restore the whole keys/ directory from this installation's backup `
    + '(docs/operations.md, "Backups and restores"), or point COFFER_HOME at the home this database was used with. No key of the installation was made.');
}

/**
 * The first start on a database records which instance key it is made with; later starts are checked against it.
 * Recorded and compared in one statement: of two first starts at once, each with a new home, the second finds the
 * first one's key recorded and is refused, rather than serving with another key.
 */
export async function recordInstanceKey(db: Kysely<Database>, homeDir: string): Promise<void> {
  const check = instanceKeyCheck(loadInstanceSecret(homeDir));
  const recorded = await db.updateTable('installation').set({ instance_key_check: sql<string>`COALESCE(instance_key_check, ${check})` })
    .returning('instance_key_check').executeTakeFirst();
  if (recorded !== undefined && recorded.instance_key_check !== check) {
    throw new HomeKeysError(`${instanceKeyFile(homeDir)} is not the instance key this database was made with (another process recorded its own first). `
      + 'Give every process of the installation the same keys/ directory.');
  }
}

/** What `read` gives, or undefined with its error added to `problems` (a key file that cannot be used). */
function unlessUnusable<T>(problems: string[], read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
    return undefined;
  }
}
