// Writes docs/api-reference.md from the merchant API's request schemas (npm run docs:api). It starts a Coffer of
// its own (embedded database, in a temporary home, on no fixed port) to read the routes as registered.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderApiReference } from '../src/api/api-reference.ts';
import { merchantRoutesOf } from '../src/api/public-server.ts';
import { startCoffer } from '../src/app/start-coffer.ts';
import { loadConfig } from '../src/platform/config.ts';

const target = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'api-reference.md');
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-api-docs-'));
try {
  const config = loadConfig({ COFFER_HOME: home, COFFER_PORT: '0', COFFER_INTERNAL_PORT: '0', COFFER_LOG_LEVEL: 'silent', COFFER_JOBS: 'false' });
  const coffer = await startCoffer({ config, env: {} });
  try {
    fs.writeFileSync(target, renderApiReference(merchantRoutesOf(coffer.app)));
  } finally {
    await coffer.close();
  }
  console.log(`wrote ${target}`);
} finally {
  fs.rmSync(home, { recursive: true, force: true });
}
