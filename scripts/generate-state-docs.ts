// Writes docs/payment-intent-states.md from the transition table (npm run docs:states).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderStateDocs } from '../src/domain/payment-intent-docs.ts';

const target = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'payment-intent-states.md');
fs.writeFileSync(target, renderStateDocs());
console.log(`wrote ${target}`);
