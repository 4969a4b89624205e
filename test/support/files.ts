import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * Copying and removing whole data directories, which the tests do for every embedded database they open. On
 * Node 20, fs.cpSync and fs.rmSync walk the tree in JavaScript: about two seconds to copy a migrated PGlite
 * directory (1,400 files) and one and a half to remove it, against a fifth of a second for `cp -a` and a twentieth
 * for `rm -rf`. The system's commands are used where they exist; the fs functions otherwise.
 */
function run(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (result.error !== undefined) return false;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr.toString()}`);
  return true;
}

const haveCommands = process.platform !== 'win32';

/** Copies what the directory `from` holds into `to` (made if it does not exist), with its files' modes. */
export function copyTree(from: string, to: string): void {
  if (haveCommands && run('cp', ['-a', '--', `${from}/.`, to])) return;
  fs.cpSync(from, to, { recursive: true });
}

/** Removes `dir` and everything under it; nothing happens if it does not exist. */
export function removeTree(dir: string): void {
  if (haveCommands && run('rm', ['-rf', '--', dir])) return;
  fs.rmSync(dir, { recursive: true, force: true });
}
