#!/usr/bin/env node
// Runs Coffer's TypeScript sources, with no build step to run by hand (docs/decisions/0020-bundled-start.md).
// On first use, and whenever a source file changes, esbuild bundles `src/` into node_modules/.cache/coffer-bundle/
// (about half a second); later starts load that bundle, which halves their start-up against transpiling each
// module as it loads. Should bundling fail (a read-only install, say), tsx runs the sources directly, as it always
// can: `COFFER_BUNDLE=off` asks for that.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = path.join(root, 'src', 'cli', 'coffer.ts');

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

/** The bundle of the current sources: built (atomically, so that processes starting together agree) if missing. */
async function bundled() {
  const { build, version } = await import('esbuild');
  const key = createHash('sha256').update([process.version, version, ...sources(path.join(root, 'src')).sort()].join('\n')).digest('hex').slice(0, 16);
  const cache = path.join(root, 'node_modules', '.cache', 'coffer-bundle');
  const dir = path.join(cache, key);
  const main = path.join(dir, 'coffer.js');
  if (fs.existsSync(main)) return main;
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
  try {
    fs.renameSync(staging, dir);
  } catch (error) {
    // Another process built the same bundle first: use theirs.
    fs.rmSync(staging, { recursive: true, force: true });
    if (!fs.existsSync(main)) throw error;
  }
  // Bundles of older sources, unused for a day, go (a process still running from one has long loaded it).
  for (const old of fs.readdirSync(cache)) {
    const full = path.join(cache, old);
    if (old !== key && Date.now() - fs.statSync(full).mtimeMs > 86_400_000) fs.rmSync(full, { recursive: true, force: true });
  }
  return main;
}

let main;
if (process.env.COFFER_BUNDLE !== 'off') {
  try {
    main = await bundled();
  } catch {
    main = undefined;
  }
}
if (main === undefined) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(entry).href);
} else {
  // Stack traces name the TypeScript sources, as they do when tsx runs them.
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(main).href);
}
