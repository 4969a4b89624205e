import fs from 'node:fs';
import path from 'node:path';

/**
 * The test-mode accounts at a provider's sandbox (app ids, key pairs on both sides), made on first start and
 * kept in `keys/sandbox-<provider>.json` (mode 0600) in Coffer's home, so that trades opened before a restart
 * can still be verified and paid after it. Without a home directory they live only as long as the process.
 */
export function loadSandboxAccounts<T>(homeDir: string | undefined, provider: string, generate: () => T): T {
  if (homeDir === undefined) return generate();
  const file = accountsFile(homeDir, provider);
  if (!fs.existsSync(file)) keepAccounts(file, generate());
  const mode = fs.statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new Error(`${file} must be readable by its owner only (mode 0600), found ${mode.toString(8)}`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

function accountsFile(homeDir: string, provider: string): string {
  return path.join(homeDir, 'keys', `sandbox-${provider}.json`);
}

function keepAccounts(file: string, accounts: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    fs.writeFileSync(file, `${JSON.stringify(accounts, null, 2)}\n`, { flag: 'wx', mode: 0o600 });
  } catch (error) {
    // Another process created it first; use theirs.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/**
 * Makes the accounts a first start needs ahead of `loadSandboxAccounts`, off the main thread (RSA key generation
 * takes a fraction of a second per key), so that it overlaps with opening the database. Nothing is written until
 * the returned `keep` is called: a start that is then refused leaves the home as it found it.
 */
export async function prepareSandboxAccounts(homeDir: string, provider: string, generate: () => Promise<unknown>): Promise<() => void> {
  const file = accountsFile(homeDir, provider);
  if (fs.existsSync(file)) return () => undefined;
  const accounts = await generate();
  return () => {
    if (!fs.existsSync(file)) keepAccounts(file, accounts);
  };
}
