import fs from 'node:fs';
import path from 'node:path';
import type { Kysely } from 'kysely';
import type { Database } from '../store/database.ts';
import type { KeyEncryptionKeyProvider } from './key-encryption-key.ts';
import type { DataKeyRowsForRewrap } from './rewrap.ts';

/**
 * Which key-encryption keys each database served from this home still needs. One home may serve more than one
 * database (the embedded one, and PostgreSQL while it is tried), and its KEKs wrap the data keys of all of them;
 * `coffer keys retire` runs against one database and can count only that one's data keys. So every database
 * notes here, at each start, rotation and retirement, the KEKs it has data keys wrapped under (and the current one,
 * which it wraps new keys under), and a KEK another database noted is kept.
 *
 *   keys/kek-usage.json: { "version": 1, "databases": { "<audit chain id>": { "label", "kekIds", "checkedAtMs" } } }
 *
 * A database is named by its audit chain id (decision 0033), which is its own whatever its URL.
 */
export interface KekUsageEntry {
  /** `embedded`, or the PostgreSQL database's host, port and name (no credentials): for messages. */
  label: string;
  kekIds: string[];
  checkedAtMs: number;
}

interface KekUsageFile {
  version: 1;
  databases: Record<string, KekUsageEntry>;
}

export function kekUsageFile(homeDir: string): string {
  return path.join(homeDir, 'keys', 'kek-usage.json');
}

function readUsage(homeDir: string): KekUsageFile {
  let text: string;
  try {
    text = fs.readFileSync(kekUsageFile(homeDir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, databases: {} };
    throw error;
  }
  const parsed = JSON.parse(text) as Partial<KekUsageFile>;
  if (parsed.version !== 1 || typeof parsed.databases !== 'object' || parsed.databases === null) {
    throw new Error(`${kekUsageFile(homeDir)} is not a key usage file Coffer wrote (version 1)`);
  }
  return { version: 1, databases: parsed.databases };
}

/** The label a database goes by in messages: `embedded`, or its URL without user or password. */
export function databaseLabel(databaseUrl: string | undefined): string {
  if (databaseUrl === undefined) return 'embedded';
  try {
    const url = new URL(databaseUrl);
    return `postgres://${url.host}${url.pathname}`;
  } catch {
    return 'postgres (unparsable URL)';
  }
}

async function chainIdOf(db: Kysely<Database>): Promise<string> {
  const head = await db.selectFrom('audit_chain_head').select('chain_id').executeTakeFirstOrThrow();
  return head.chain_id;
}

/** The KEKs this database has data keys wrapped under, and the current one. */
async function kekIdsInUse(kek: KeyEncryptionKeyProvider, rows: Pick<DataKeyRowsForRewrap, 'countWrappedUnder'>): Promise<string[]> {
  const current = kek.currentKeyId();
  const inUse: string[] = [];
  for (let n = 1; n < Number(current.slice(4)); n += 1) {
    if ((await rows.countWrappedUnder(`kek_${n}`)) > 0) inUse.push(`kek_${n}`);
  }
  return [...inUse, current];
}

/** Notes, for this home, which KEKs this database needs now. Written whole to a new file, then renamed over the old. */
export async function noteKekUsage(db: Kysely<Database>, kek: KeyEncryptionKeyProvider, rows: Pick<DataKeyRowsForRewrap, 'countWrappedUnder'>, homeDir: string, label: string, nowMs: number): Promise<void> {
  const chainId = await chainIdOf(db);
  const kekIds = await kekIdsInUse(kek, rows);
  const usage = readUsage(homeDir);
  usage.databases[chainId] = { label, kekIds, checkedAtMs: nowMs };
  const file = kekUsageFile(homeDir);
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${JSON.stringify(usage, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(temporary, file);
}

/** Why another database may still need `kekId`: it noted it, or has not said what it needs since it was replaced. */
export interface OtherDatabaseNeed {
  label: string;
  why: 'uses' | 'unchecked';
}

/**
 * The other databases served from this home that may still need `kekId`: one that noted it, or whose note is older
 * than `safeAfterMs` (when nothing could wrap under it any more). Run against PostgreSQL, an embedded database in the
 * home that has never noted anything (it last ran before this file existed) counts as unchecked.
 */
export async function otherDatabasesNeeding(db: Kysely<Database>, homeDir: string, kekId: string, safeAfterMs: number, embedded: boolean): Promise<OtherDatabaseNeed[]> {
  const chainId = await chainIdOf(db);
  const usage = readUsage(homeDir);
  const needs: OtherDatabaseNeed[] = [];
  for (const [id, entry] of Object.entries(usage.databases)) {
    if (id === chainId) continue;
    if (entry.kekIds.includes(kekId)) needs.push({ label: entry.label, why: 'uses' });
    else if (entry.checkedAtMs < safeAfterMs) needs.push({ label: entry.label, why: 'unchecked' });
  }
  const embeddedNoted = Object.values(usage.databases).some((entry) => entry.label === 'embedded');
  if (!embedded && !embeddedNoted && fs.existsSync(path.join(homeDir, 'db'))) needs.push({ label: 'embedded', why: 'unchecked' });
  return needs;
}
