import fs from 'node:fs';
import path from 'node:path';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock file `<dataDir>.lock` for this process, refusing if a live process holds it. Two processes on
 * one embedded data directory would corrupt it, because PGlite has no shared-memory lock of its own.
 * Returns the function that releases the lock.
 */
const heldInThisProcess = new Set<string>();

export function lockDataDir(dataDir: string): () => void {
  const lockFile = `${path.resolve(dataDir)}.lock`;
  if (heldInThisProcess.has(lockFile)) throw new Error(`the embedded database ${dataDir} is already open in this process`);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx', mode: 0o600 });
      heldInThisProcess.add(lockFile);
      return () => {
        heldInThisProcess.delete(lockFile);
        try {
          if (fs.readFileSync(lockFile, 'utf8') === String(process.pid)) fs.unlinkSync(lockFile);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(lockFile, 'utf8'));
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new Error(`the embedded database ${dataDir} is in use by process ${holder}`);
      }
      // The holder is gone (killed or crashed): its lock is stale. Claim it by renaming, so that two processes
      // racing for it cannot both delete it and then both create a fresh one.
      const tomb = `${lockFile}.stale.${process.pid}`;
      try {
        fs.renameSync(lockFile, tomb);
        fs.unlinkSync(tomb);
      } catch {
        // Someone else claimed it first; try again.
      }
    }
  }
  throw new Error(`could not lock the embedded database ${dataDir}`);
}
