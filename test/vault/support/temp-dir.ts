import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let root: string | undefined;

/** A fresh directory for key files; all of them are removed when the test process exits. */
export function tempDir(): string {
  if (root === undefined) {
    const made = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-vault-'));
    process.on('exit', () => fs.rmSync(made, { recursive: true, force: true }));
    root = made;
  }
  return fs.mkdtempSync(path.join(root, 'case-'));
}

export function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o777;
}
