import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { limits } from '../limits.ts';

// The lock is the file `<dataDir>.lock`, holding "<pid> <token>": the process that holds it, and a random token
// naming this one taking of the lock (a pid comes back after a restart; a token never does). Two rules make it safe
// between processes that race for it:
//
// 1. A file is created whole or not at all: its content is written to a private temporary file, then hard-linked
//    to its name, which fails if the name exists. Nobody ever reads a half-written lock (an empty lock read as
//    "pid 0", hence stale, let a second process take a lock that had just been taken).
// 2. A lock left by a dead process is removed only by the one process that claimed that lock, by its token: the
//    claim is the file `<dataDir>.lock.takeover-<token>.<n>`, created as in rule 1. The claimant then removes the
//    lock only if it still holds that token. Nobody else can remove that lock meanwhile (its holder is dead, and
//    the claim is taken), so it cannot remove a fresh lock that another process took after the stale one went
//    (checking, then renaming, let two processes each remove what they thought stale, and both lock).
//    A claimant killed during its takeover leaves its claim behind: the next one takes claim n + 1, once it sees
//    that whoever holds claim n is dead. So at most one live process ever holds a claim on a token.

interface LockHolder {
  pid: number;
  token: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

/** Creates `file` holding `content`, whole, unless it exists: returns false then. */
function createExclusive(file: string, content: string): boolean {
  const temporary = `${file}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(temporary, content, { flag: 'wx', mode: 0o600 });
  try {
    fs.linkSync(temporary, file);
    return true;
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}

/** The text of `file`, or undefined if there is none. */
function readIfPresent(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Who holds the lock file, or undefined if there is none. A lock written before locks carried a token (a bare
 * pid, or nothing if its writer died before writing it) is named by its inode instead, which is unique while it
 * exists; a pid that does not parse is 0, a dead process.
 */
function readHolder(lockFile: string): LockHolder | undefined {
  let fd: number;
  try {
    fd = fs.openSync(lockFile, 'r');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const match = /^(\d+)(?: ([0-9a-f]+))?\s*$/.exec(fs.readFileSync(fd, 'utf8'));
    return { pid: Number(match?.[1] ?? 0), token: match?.[2] ?? `inode-${fs.fstatSync(fd).ino}` };
  } finally {
    fs.closeSync(fd);
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Removes the lock `stale` names (its holder is dead), under a claim on its token (rule 2 above). Returns false
 * if another live process is taking it over: the caller waits, then looks again.
 */
function removeStaleLock(lockFile: string, stale: LockHolder): boolean {
  const claimFile = (claim: number) => `${lockFile}.takeover-${stale.token}.${claim}`;
  for (let claim = 1; claim <= limits.dataDirLockTakeoverClaimsMax; claim += 1) {
    if (createExclusive(claimFile(claim), `${process.pid}\n`)) {
      try {
        // Ours alone now: the lock holding this token can only go through us (its holder is dead).
        if (readHolder(lockFile)?.token === stale.token) fs.rmSync(lockFile, { force: true });
      } finally {
        // Done with that lock: its claims go (ours, and those of claimants killed before us). Whoever claims its
        // token afterwards is again the only one acting on it, and removes that lock only if it is still there.
        for (let earlier = 1; earlier <= claim; earlier += 1) fs.rmSync(claimFile(earlier), { force: true });
      }
      return true;
    }
    const text = readIfPresent(claimFile(claim));
    // The takeover is over (claims are removed once the stale lock is gone): look again.
    if (text === undefined) return true;
    const claimant = Number(text.trim());
    // A claim holding our pid was left by an earlier process that had it: this process removes its own.
    if (claimant !== process.pid && claimant > 0 && processAlive(claimant)) return false;
    // Its claimant was killed during its takeover: the next claim.
  }
  return false;
}

const heldInThisProcess = new Set<string>();

/**
 * Takes the lock file `<dataDir>.lock` for this process, refusing if a live process holds it. Two processes on
 * one embedded data directory would corrupt it, because PGlite has no shared-memory lock of its own. A lock left
 * by a dead process (killed, or crashed) is taken over. Returns the function that releases the lock.
 */
export function lockDataDir(dataDir: string): () => void {
  const lockFile = `${path.resolve(dataDir)}.lock`;
  if (heldInThisProcess.has(lockFile)) throw new Error(`the embedded database ${dataDir} is already open in this process`);
  const token = randomBytes(16).toString('hex');
  for (let attempt = 0; attempt < limits.dataDirLockAttemptsMax; attempt += 1) {
    if (createExclusive(lockFile, `${process.pid} ${token}\n`)) {
      heldInThisProcess.add(lockFile);
      return () => {
        heldInThisProcess.delete(lockFile);
        // Only we remove our lock (nobody takes over a live holder's), so it is still ours if it holds our token.
        if (readHolder(lockFile)?.token === token) fs.rmSync(lockFile, { force: true });
      };
    }
    const holder = readHolder(lockFile);
    // Released meanwhile: try again.
    if (holder === undefined) continue;
    // A lock with our own pid is an earlier process's that had it (after a restart in a container, say): ours
    // are known to this process.
    if (holder.pid !== process.pid && holder.pid > 0 && processAlive(holder.pid)) {
      throw new Error(`the embedded database ${dataDir} is in use by process ${holder.pid} (one process at a time may open it: stop that one first, or use PostgreSQL)`);
    }
    if (!removeStaleLock(lockFile, holder)) sleepMs(limits.dataDirLockRetryWaitMs);
  }
  throw new Error(`could not lock the embedded database ${dataDir} in ${limits.dataDirLockAttemptsMax} attempts: its lock ${lockFile} `
    + 'kept changing hands, or was left by a process that is gone and could not be taken over; if no Coffer process uses the database, remove that file');
}
