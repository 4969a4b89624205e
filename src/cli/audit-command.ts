import fs from 'node:fs';
import {
  checkpointLine, readAuditChain, sealAuditLog, verifyAuditChain,
  type AuditCheckpoint, type AuditRecord, type ChainInput, type CheckpointLine,
} from '../audit/chain.ts';
import { checkHomeKeys } from '../app/home-keys.ts';
import { CheckpointSigner, checkpointKeyId } from '../audit/checkpoint-signer.ts';
import type { Config } from '../platform/config.ts';
import { databaseExitCodes } from './database-refusal.ts';
import { openInstalledDatabase } from './open-installed-database.ts';
import { parseCommandLine, refuseExtraArguments, subcommand, UsageError } from './parse-command-line.ts';

export const auditUsage = `Usage:
  coffer audit verify                       check the audit chain in the database; exit 1 on any tampering
  coffer audit verify --file export.jsonl --key-id ack_…   check an export, pinned to the signing key's id
  coffer audit seal                         chain every record due now and sign a checkpoint
  coffer audit export [--output file]       JSON lines: the signing key, every record with its seal, the checkpoints
Exit codes: 0 done, or the log is intact; 1 tampering was found (each record or checkpoint is named);
  ${databaseExitCodes} (verify --file reads no database).`;

interface RecordLine extends Omit<AuditRecord, 'seq' | 'occurred_at'> {
  type: 'record';
  seq: string;
  occurred_at: string;
  seal: string | null;
}

type ExportLine = { type: 'key'; key_id: string; public_key: string } | RecordLine | ({ type: 'checkpoint' } & CheckpointLine);

function toExport(input: ChainInput): string[] {
  const lines: ExportLine[] = [{ type: 'key', key_id: input.keyId, public_key: input.publicKeyPem }];
  for (const record of input.records) {
    lines.push({ ...record, type: 'record', seq: String(record.seq), occurred_at: new Date(record.occurred_at).toISOString(), seal: input.seals.get(record.seq)?.toString('hex') ?? null });
  }
  for (const checkpoint of input.checkpoints) lines.push({ type: 'checkpoint', ...checkpointLine(checkpoint) });
  return lines.map((line) => JSON.stringify(line));
}

/** An export read back: what the auditor verifies, with the head taken as the last sealed record. */
function fromExport(text: string): ChainInput {
  let key: { key_id: string; public_key: string } | undefined;
  const records: AuditRecord[] = [];
  const seals = new Map<bigint, Buffer>();
  const checkpoints: AuditCheckpoint[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const line = JSON.parse(raw) as ExportLine;
    if (line.type === 'key') key = line;
    else if (line.type === 'record') {
      const { type: _type, seal, seq, occurred_at: occurredAt, ...fields } = line;
      records.push({ ...fields, seq: BigInt(seq), occurred_at: new Date(occurredAt) });
      if (seal !== null) seals.set(BigInt(seq), Buffer.from(seal, 'hex'));
    } else {
      checkpoints.push({ seq: BigInt(line.seq), head_hash: Buffer.from(line.head_hash, 'hex'), created_at: new Date(line.created_at), key_id: line.key_id, signature: Buffer.from(line.signature, 'base64') });
    }
  }
  if (key === undefined) throw new Error('the export has no key line');
  if (checkpointKeyId(key.public_key) !== key.key_id) throw new Error(`the export's key line names ${key.key_id} but holds another key`);
  const headSeq = [...seals.keys()].reduce((max, seq) => (seq > max ? seq : max), 0n);
  return { records, seals, head: { seq: headSeq, hash: seals.get(headSeq) ?? Buffer.alloc(32) }, checkpoints, publicKeyPem: key.public_key, keyId: key.key_id };
}

function printReport(print: (line: string) => void, input: ChainInput): number {
  const report = verifyAuditChain(input);
  print(`Checked ${report.records} audit records (${report.sealed} sealed) and ${report.checkpoints} signed checkpoints (key ${input.keyId}).`);
  if (report.checkpoints === 0) print('Warning: no signed checkpoint yet; run `coffer audit seal` to sign one.');
  if (report.problems.length === 0) {
    print('The audit log is intact: every record is as it was sealed, and every checkpoint verifies.');
    return 0;
  }
  for (const problem of report.problems) print(`TAMPERED ${problem}`);
  print(`${report.problems.length} problem(s).`);
  return 1;
}

/**
 * `coffer audit …`: the tamper-evident audit log. Returns the exit code: 0 done or intact, 1 tampering found; a
 * usage error is thrown.
 */
export async function commandAudit(loadConfig: () => Config, argv: string[], print: (line: string) => void): Promise<number> {
  const parsed = parseCommandLine('audit', argv, { file: { type: 'string' }, output: { type: 'string' }, 'key-id': { type: 'string' } }, auditUsage);
  if (parsed.help) {
    print(auditUsage);
    return 0;
  }
  const sub = subcommand('audit', parsed.positionals[0], ['verify', 'seal', 'export'], auditUsage);
  refuseExtraArguments(`audit ${sub}`, parsed.positionals, 1, auditUsage);
  const { file, output } = parsed.values;
  const pinned = parsed.values['key-id'];
  if (sub === 'verify' && file !== undefined) {
    if (pinned === undefined) {
      throw new UsageError('verifying an export needs --key-id: the id of the signing key, obtained from the installation, not from the export', auditUsage);
    }
    const input = fromExport(fs.readFileSync(file, 'utf8'));
    if (pinned !== input.keyId) {
      print(`TAMPERED the export is signed by ${input.keyId}, not by ${pinned}.`);
      return 1;
    }
    return printReport(print, input);
  }
  const config = loadConfig();
  const database = await openInstalledDatabase(config);
  try {
    // Only once the installation is known: sealing makes the signing key on first use, and must not make one in a
    // mistyped home directory.
    if (sub === 'seal') await checkHomeKeys(database.db, config.homeDir);
    const signer = CheckpointSigner.open(config.homeDir, { create: sub === 'seal' });
    if (sub === 'seal') {
      const report = await sealAuditLog(database.db, Date.now(), { signer, homeDir: config.homeDir, forceCheckpoint: true });
      print(`Sealed ${report.sealed} record(s); the chain ends at ${report.headSeq}.`);
      print(report.checkpoint === undefined ? 'No new checkpoint (nothing sealed since the last one).' : `Signed checkpoint ${report.checkpoint.seq} with ${signer.keyId}.`);
      return 0;
    }
    const input = await readAuditChain(database.db, signer, config.homeDir);
    if (sub === 'verify') return printReport(print, input);
    const text = `${toExport(input).join('\n')}\n`;
    if (output === undefined) process.stdout.write(text);
    else {
      fs.writeFileSync(output, text, { mode: 0o600 });
      print(`Exported ${input.records.length} records and ${input.checkpoints.length} checkpoints to ${output}; verify with: coffer audit verify --file ${output} --key-id ${input.keyId}`);
    }
    return 0;
  } finally {
    await database.close();
  }
}
