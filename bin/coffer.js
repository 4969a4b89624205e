#!/usr/bin/env node
// Runs Coffer's TypeScript sources directly (transpiled on load by tsx); no build step is needed.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/coffer.ts');
