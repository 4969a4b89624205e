import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

/**
 * The hosted checkout's browser code, in TypeScript under `web/checkout/`, bundled by esbuild the first time it
 * is asked for (a few milliseconds) and kept in memory: one script for the page, one for the card frame, and
 * the stylesheet. No build step before `npm start`, and nothing served that is not in the repository.
 */
const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'checkout');

export interface Asset {
  body: Buffer;
  type: string;
  gzipBytes: number;
}

const built = new Map<string, Asset>();

function bundle(entry: string): Buffer {
  const result = buildSync({
    entryPoints: [path.join(webDir, entry)], bundle: true, minify: true, format: 'iife', target: 'es2020', write: false, legalComments: 'none',
  });
  const [output] = result.outputFiles;
  if (output === undefined) throw new Error(`esbuild produced nothing for ${entry}`);
  return Buffer.from(output.contents);
}

const sources: Record<string, () => Asset> = {
  'checkout.js': () => script(bundle('checkout.ts')),
  'card-frame.js': () => script(bundle('card-frame.ts')),
  'checkout.css': () => asset(fs.readFileSync(path.join(webDir, 'checkout.css')), 'text/css; charset=utf-8'),
};

function asset(body: Buffer, type: string): Asset {
  return { body, type, gzipBytes: gzipSync(body, { level: 9 }).length };
}

function script(body: Buffer): Asset {
  return asset(body, 'text/javascript; charset=utf-8');
}

export function checkoutAsset(name: string): Asset | undefined {
  const cached = built.get(name);
  if (cached !== undefined) return cached;
  const make = sources[name];
  if (make === undefined) return undefined;
  const made = make();
  built.set(name, made);
  return made;
}

export const checkoutAssetNames = Object.keys(sources);
