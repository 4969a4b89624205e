import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { limits } from '../limits.ts';
import type { AuditCheckpointsTable, AuditLogTable, Database } from '../store/database.ts';
import { verifyCheckpointSignature, type CheckpointSigner } from './checkpoint-signer.ts';

/**
 * The audit log's hash chain. Records are written in the transactions of the changes they describe, numbered by
 * a sequence; the sealer chains them afterwards in sequence order: seal(n) = SHA-256(seal(previous) | record n),
 * over a canonical encoding of every field. Periodically it signs a checkpoint (sequence, head hash, time) with a
 * key outside the database (checkpoint-signer.ts) and appends it to `<home>/audit/checkpoints-<chain>.jsonl` as well,
 * one file per database (its chain id, kept in `audit_chain_head`).
 *
 * Sequence numbers of rolled-back transactions never appear (and PostgreSQL skips some after a crash), so a gap is
 * normal. A gap can only be filled by an insert that is still running, so the sealer passes it at once when it can
 * lock the table against inserts for a moment (none is running, see `sealAuditLog`), and otherwise once the
 * record after it is older than `limits.auditGapGraceMs` (no transaction runs that long). A record that appears
 * later inside the sealed range is reported as inserted.
 *
 * `verifyAuditChain` recomputes the chain from the records alone and reports every changed, deleted, inserted or
 * reordered record, every seal or checkpoint that does not match, and every checkpoint whose signature fails. A
 * superuser who rewrites records and recomputes every seal still fails at the next signed checkpoint.
 */
export type AuditRecord = Selectable<AuditLogTable>;
export type AuditCheckpoint = Selectable<AuditCheckpointsTable>;

export const zeroHash: Buffer = Buffer.alloc(32);

/** Keys sorted at every level, so the encoding does not depend on how the database returned the JSON. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function recordEncoding(record: AuditRecord): string {
  return canonical([
    String(record.seq), record.id, new Date(record.occurred_at).toISOString(), record.merchant_id, record.livemode, record.actor_type,
    record.actor_id, record.action, record.object_type, record.object_id, record.outcome, record.request_id, record.origin, record.details,
  ]);
}

export function chainHash(previous: Buffer, record: AuditRecord): Buffer {
  return createHash('sha256').update(previous).update(recordEncoding(record)).digest();
}

export function checkpointMessage(seq: bigint, headHash: Buffer, createdAt: Date): Buffer {
  return Buffer.from(`coffer audit checkpoint v1\n${seq}\n${headHash.toString('hex')}\n${createdAt.toISOString()}`);
}

/**
 * The copy of one database's checkpoints kept outside it: one file per audit chain, so that a home directory used
 * with several databases (the embedded one, then PostgreSQL) keeps each one's checkpoints apart.
 */
export function checkpointsFile(homeDir: string, chainId: string): string {
  return path.join(homeDir, 'audit', `checkpoints-${chainId}.jsonl`);
}

/** The single file of versions before chains were named, which may hold the checkpoints of several databases. */
function legacyCheckpointsFile(homeDir: string): string {
  return path.join(homeDir, 'audit', 'checkpoints.jsonl');
}

function readCheckpointLines(file: string): CheckpointLine[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as CheckpointLine);
}

function appendCheckpointLines(file: string, lines: CheckpointLine[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.appendFileSync(file, lines.map((line) => `${JSON.stringify(line)}\n`).join(''), { mode: 0o600 });
}

/**
 * Before a chain has its own file: the lines of the older single file that are this database's checkpoints, exactly
 * as the database holds them, become the start of its file. Lines of other databases stay in the old file (left as
 * it is, for them). A checkpoint removed from this database before the upgrade cannot be told from another
 * database's line: the old file, kept, still shows it.
 */
async function legacyLinesOf(db: Kysely<Database>, homeDir: string): Promise<CheckpointLine[]> {
  const legacy = legacyCheckpointsFile(homeDir);
  if (!fs.existsSync(legacy)) return [];
  const inside = new Set((await db.selectFrom('audit_checkpoints').selectAll().execute())
    .map((checkpoint) => canonical(checkpointLine({ ...checkpoint, head_hash: Buffer.from(checkpoint.head_hash), signature: Buffer.from(checkpoint.signature) }))));
  return readCheckpointLines(legacy).filter((line) => inside.has(canonical(line)));
}

/** The sealer, before its first append to a chain's file: the chain's lines of the older file start it. */
async function adoptLegacyCheckpoints(db: Kysely<Database>, homeDir: string, chainId: string): Promise<void> {
  const file = checkpointsFile(homeDir, chainId);
  if (fs.existsSync(file)) return;
  const mine = await legacyLinesOf(db, homeDir);
  if (mine.length > 0) appendCheckpointLines(file, mine);
}

export interface CheckpointLine {
  seq: string;
  head_hash: string;
  created_at: string;
  key_id: string;
  signature: string;
}

export function checkpointLine(checkpoint: AuditCheckpoint): CheckpointLine {
  return {
    seq: String(checkpoint.seq), head_hash: checkpoint.head_hash.toString('hex'), created_at: checkpoint.created_at.toISOString(),
    key_id: checkpoint.key_id, signature: checkpoint.signature.toString('base64'),
  };
}

export interface SealOptions {
  signer?: CheckpointSigner | undefined;
  /** Where signed checkpoints are appended, outside the database. */
  homeDir?: string | undefined;
  /** Sign a checkpoint now if anything was sealed since the last one, whatever the interval. */
  forceCheckpoint?: boolean;
}

export interface SealReport {
  sealed: number;
  headSeq: bigint;
  checkpoint: AuditCheckpoint | undefined;
}

/** Chains the records written since the last run (a bounded batch), then signs a checkpoint when one is due. */
export async function sealAuditLog(db: Kysely<Database>, nowMs: number, options: SealOptions = {}): Promise<SealReport> {
  let report = await db.transaction().execute((tx) => sealBatch(tx, nowMs, options, false));
  if (report.stoppedAtGap) {
    // A fresh gap may be a rolled-back insert (final) or one still running. Every insert into audit_log holds a
    // ROW EXCLUSIVE lock from before it takes its number until it ends: holding SHARE mode, which conflicts
    // with it, proves none is running, so every gap is final. NOWAIT: if an insert is running the sealer does
    // not queue (queued, it would stall the payments behind it); the gap then waits for its grace period.
    // Writers wait only while this one batch is sealed.
    try {
      report = await db.transaction().execute(async (tx) => {
        await sql`LOCK TABLE audit_log IN SHARE MODE NOWAIT`.execute(tx);
        return sealBatch(tx, nowMs, options, true);
      });
    } catch (error) {
      // 55P03: an insert is running; 42501: this role may not take the lock (it needs UPDATE on audit_log, which
      // the tables' owner has). Either way the gap waits for its grace period.
      const code = (error as { code?: string }).code;
      if (code !== '55P03' && code !== '42501') throw error;
    }
  }
  if (report.checkpoint !== undefined && options.homeDir !== undefined) {
    await adoptLegacyCheckpoints(db, options.homeDir, report.chainId);
    appendCheckpointLines(checkpointsFile(options.homeDir, report.chainId), [checkpointLine(report.checkpoint)]);
  }
  const { stoppedAtGap: _stopped, chainId: _chain, ...sealed } = report;
  return sealed;
}

async function sealBatch(tx: Transaction<Database>, nowMs: number, options: SealOptions, gapsFinal: boolean): Promise<SealReport & { stoppedAtGap: boolean; chainId: string }> {
  const head = await tx.selectFrom('audit_chain_head').select(['seq', 'hash', 'chain_id']).forUpdate().executeTakeFirstOrThrow();
  const records = await tx.selectFrom('audit_log').selectAll().where('seq', '>', head.seq).orderBy('seq').limit(limits.jobBatchSize).execute();
  let previous: Buffer = Buffer.from(head.hash);
  let last = head.seq;
  let stoppedAtGap = false;
  const seals: Array<{ seq: bigint; hash: Buffer }> = [];
  for (const record of records) {
    const gap = record.seq !== last + 1n;
    if (gap && !gapsFinal && nowMs - new Date(record.occurred_at).getTime() < limits.auditGapGraceMs) {
      stoppedAtGap = true;
      break;
    }
    previous = chainHash(previous, record);
    last = record.seq;
    seals.push({ seq: record.seq, hash: previous });
  }
  if (seals.length > 0) {
    await tx.insertInto('audit_seals').values(seals.map((seal) => ({ seq: seal.seq, hash: seal.hash, sealed_at: new Date(nowMs) }))).execute();
    await tx.updateTable('audit_chain_head').set({ seq: last, hash: previous }).execute();
  }
  let checkpoint: AuditCheckpoint | undefined;
  const signer = options.signer;
  if (signer !== undefined && last > 0n) {
    const latest = await tx.selectFrom('audit_checkpoints').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst();
    const due = latest === undefined || options.forceCheckpoint === true || nowMs - latest.created_at.getTime() >= limits.auditCheckpointEveryMs;
    if ((latest === undefined || latest.seq < last) && due) {
      const createdAt = new Date(nowMs);
      checkpoint = { seq: last, head_hash: previous, created_at: createdAt, key_id: signer.keyId, signature: signer.sign(checkpointMessage(last, previous, createdAt)) };
      await tx.insertInto('audit_checkpoints').values(checkpoint).execute();
    }
  }
  return { sealed: seals.length, headSeq: last, checkpoint, stoppedAtGap, chainId: head.chain_id };
}

export interface ChainInput {
  /** Every record, in sequence order. */
  records: AuditRecord[];
  seals: Map<bigint, Buffer>;
  head: { seq: bigint; hash: Buffer };
  checkpoints: AuditCheckpoint[];
  /** Checkpoints kept outside the database (the file, an auditor's copy): each must be in `checkpoints` as is. */
  outsideCheckpoints?: CheckpointLine[] | undefined;
  /** The outside copy must exist when the database has checkpoints (true when verifying an installation). */
  requireOutsideCopy?: boolean;
  publicKeyPem: string;
  keyId: string;
  /** Where the outside copy is kept, when read from a home directory. */
  outsideFile?: string;
}

export interface ChainReport {
  records: number;
  sealed: number;
  checkpoints: number;
  problems: string[];
}

export function verifyAuditChain(input: ChainInput): ChainReport {
  const problems: string[] = [];
  const recomputed = new Map<bigint, Buffer>();
  let chained: Buffer = zeroHash;
  let sealedPrevious: Buffer = zeroHash;
  let previousSeq = 0n;
  let sealed = 0;
  for (const record of input.records) {
    if (record.seq <= previousSeq) problems.push(`record ${record.seq}: out of order after ${previousSeq}`);
    previousSeq = record.seq;
    chained = chainHash(chained, record);
    recomputed.set(record.seq, chained);
    const seal = input.seals.get(record.seq);
    if (seal === undefined) {
      if (record.seq <= input.head.seq) problems.push(`record ${record.seq}: inserted into the sealed chain (it has no seal)`);
      continue;
    }
    sealed += 1;
    if (!chainHash(sealedPrevious, record).equals(seal)) problems.push(`record ${record.seq}: changed, or moved, since it was sealed`);
    sealedPrevious = seal;
  }
  // The end of the sealed chain: the highest seal, not the head row, which a writer could move back.
  const lastSealed = [...input.seals.keys()].reduce((max, seq) => (seq > max ? seq : max), 0n);
  for (const record of input.records) {
    if (record.seq <= lastSealed && record.seq > input.head.seq && !input.seals.has(record.seq)) {
      problems.push(`record ${record.seq}: inserted into the sealed chain (it has no seal)`);
    }
  }
  if (input.outsideCheckpoints === undefined && input.checkpoints.length > 0 && input.requireOutsideCopy === true) {
    const where = input.outsideFile === undefined ? '' : ` (${input.outsideFile})`;
    problems.push(`the checkpoint file outside the database${where} is missing: checkpoints removed from the database could not be noticed`);
  }
  const present = new Set(input.records.map((record) => record.seq));
  for (const seq of [...input.seals.keys()].sort((a, b) => (a < b ? -1 : 1))) {
    if (!present.has(seq)) problems.push(`record ${seq}: deleted (its seal remains)`);
  }
  if (input.head.seq > 0n && !(input.seals.get(input.head.seq)?.equals(input.head.hash) ?? false)) {
    problems.push(`chain head ${input.head.seq}: does not match its seal`);
  }
  for (const checkpoint of input.checkpoints) {
    const label = `checkpoint ${checkpoint.seq} (${checkpoint.created_at.toISOString()})`;
    if (checkpoint.key_id !== input.keyId || !verifyCheckpointSignature(input.publicKeyPem, checkpointMessage(checkpoint.seq, checkpoint.head_hash, checkpoint.created_at), checkpoint.signature)) {
      problems.push(`${label}: signature does not verify with key ${input.keyId}`);
    }
    const actual = recomputed.get(checkpoint.seq);
    if (actual === undefined) problems.push(`${label}: its record is gone`);
    else if (!actual.equals(checkpoint.head_hash)) problems.push(`${label}: the records up to it are not the ones it signed`);
  }
  const bySeq = new Map(input.checkpoints.map((checkpoint) => [String(checkpoint.seq), checkpointLine(checkpoint)]));
  for (const outside of input.outsideCheckpoints ?? []) {
    const inside = bySeq.get(outside.seq);
    if (inside === undefined) problems.push(`checkpoint ${outside.seq}: kept outside the database but missing from it`);
    else if (canonical(inside) !== canonical(outside)) problems.push(`checkpoint ${outside.seq}: differs from the copy kept outside the database`);
  }
  return { records: input.records.length, sealed, checkpoints: input.checkpoints.length, problems };
}

/** Everything `verifyAuditChain` needs, read from the database (and the checkpoint file, if there is one). */
export async function readAuditChain(db: Kysely<Database>, signer: CheckpointSigner, homeDir: string | undefined): Promise<ChainInput> {
  const records = await db.selectFrom('audit_log').selectAll().orderBy('seq').execute();
  // Byte arrays come back as Buffer from node-postgres and as Uint8Array from PGlite.
  const seals = new Map((await db.selectFrom('audit_seals').select(['seq', 'hash']).execute()).map((seal) => [seal.seq, Buffer.from(seal.hash)] as const));
  const headRow = await db.selectFrom('audit_chain_head').select(['seq', 'hash', 'chain_id']).executeTakeFirstOrThrow();
  const head = { seq: headRow.seq, hash: Buffer.from(headRow.hash) };
  const checkpoints = (await db.selectFrom('audit_checkpoints').selectAll().orderBy('seq').execute())
    .map((checkpoint) => ({ ...checkpoint, head_hash: Buffer.from(checkpoint.head_hash), signature: Buffer.from(checkpoint.signature) }));
  let outsideCheckpoints: CheckpointLine[] | undefined;
  let outsideFile: string | undefined;
  if (homeDir !== undefined) {
    // Verifying writes nothing: before the sealer has started this chain's file, its lines of the older file are
    // read in place.
    outsideFile = checkpointsFile(homeDir, headRow.chain_id);
    if (fs.existsSync(outsideFile)) outsideCheckpoints = readCheckpointLines(outsideFile);
    else {
      const legacy = await legacyLinesOf(db, homeDir);
      if (legacy.length > 0) outsideCheckpoints = legacy;
    }
  }
  return {
    records, seals, head, checkpoints, outsideCheckpoints, outsideFile, requireOutsideCopy: homeDir !== undefined, publicKeyPem: signer.publicKeyPem,
    keyId: signer.keyId,
  };
}
