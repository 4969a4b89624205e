#!/usr/bin/env node
// Runs Coffer's TypeScript sources, with no build step to run by hand (docs/decisions/0020-bundled-start.md).
// On first use, and whenever a source file changes, esbuild bundles `src/` into node_modules/.cache/coffer-bundle/
// (about half a second); later starts load that bundle, which halves their start-up against transpiling each
// module as it loads. Where no bundle can be built (a read-only install, say), tsx runs the sources directly.
// COFFER_BUNDLE=off always runs the sources; COFFER_BUNDLE=require fails rather than run without the bundle.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const self = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(self), '..');
const entry = path.join(root, 'src', 'cli', 'coffer.ts');
const mode = process.env.COFFER_BUNDLE ?? 'auto';
if (!['auto', 'off', 'require'].includes(mode)) {
  process.stderr.write(`coffer: COFFER_BUNDLE must be off or require, got "${mode}"\n`);
  process.exit(78);
}

/** Every TypeScript source under `dir`, with what identifies its content cheaply (size and modification time). */
function sources(dir, found = []) {
  for (const item of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, item.name);
    if (item.isDirectory()) sources(full, found);
    else if (item.name.endsWith('.ts')) {
      const stat = fs.statSync(full);
      found.push(`${path.relative(root, full)}:${stat.size}:${stat.mtimeMs}`);
    }
  }
  return found;
}

/** Flushes a finished bundle's files and directory, so that a power loss never leaves a truncated one behind. */
function flush(dir) {
  for (const name of fs.readdirSync(dir)) {
    const fd = fs.openSync(path.join(dir, name), 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }
  const fd = fs.openSync(dir, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

/**
 * The bundle of the current sources, built if missing. It is named by where the sources are (bundles hold their
 * absolute paths), by this file (the build's options) and by every source file, and built aside then renamed into
 * place, so that processes starting together agree on one.
 */
async function bundled() {
  const modules = path.join(root, 'node_modules');
  fs.accessSync(modules, fs.constants.W_OK);
  const { build, version } = await import('esbuild');
  const key = createHash('sha256')
    .update([root, process.version, version, fs.readFileSync(self, 'utf8'), fs.readFileSync(path.join(root, 'tsconfig.json'), 'utf8'),
      ...sources(path.join(root, 'src')).sort()].join('\n'))
    .digest('hex').slice(0, 16);
  const cache = path.join(modules, '.cache', 'coffer-bundle');
  const dir = path.join(cache, key);
  const main = path.join(dir, 'coffer.js');
  if (fs.existsSync(main)) {
    // In use: the clean-up below keeps it.
    const now = new Date();
    fs.utimesSync(dir, now, now);
    return main;
  }
  const staging = `${dir}.${process.pid}.tmp`;
  // Modules find their files next to their source (migrations, pages, the model): `import.meta.url` stays theirs.
  const keepFileUrl = {
    name: 'keep-file-url',
    setup(plugin) {
      plugin.onLoad({ filter: /\.ts$/ }, async (args) => {
        const text = await fs.promises.readFile(args.path, 'utf8');
        return { contents: text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
      });
    },
  };
  await build({
    entryPoints: { coffer: entry }, bundle: true, splitting: true, format: 'esm', platform: 'node', target: 'node20',
    packages: 'external', outdir: staging, sourcemap: 'linked', plugins: [keepFileUrl], logLevel: 'silent',
  });
  flush(staging);
  try {
    fs.renameSync(staging, dir);
    flush(cache);
  } catch (error) {
    // Another process built the same bundle first: use theirs.
    fs.rmSync(staging, { recursive: true, force: true });
    if (!fs.existsSync(main)) throw error;
  }
  // Bundles no process has started from for a day go; a process still running from one loaded it long ago.
  for (const old of fs.readdirSync(cache)) {
    if (old === key || old.endsWith('.tmp')) continue;
    try {
      const full = path.join(cache, old);
      if (Date.now() - fs.statSync(full).mtimeMs > 86_400_000) fs.rmSync(full, { recursive: true, force: true });
    } catch {
      // Gone meanwhile: another process cleaned up first.
    }
  }
  return main;
}

async function fromSources() {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(entry).href);
}

let main;
if (mode !== 'off') {
  try {
    main = await bundled();
  } catch (error) {
    if (mode === 'require') {
      process.stderr.write(`coffer: COFFER_BUNDLE=require, and the sources could not be bundled: ${String(error)}\n`);
      process.exit(70);
    }
  }
}
if (main === undefined) {
  await fromSources();
} else {
  // Stack traces name the TypeScript sources, as they do when tsx runs them.
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(main).href);
}
