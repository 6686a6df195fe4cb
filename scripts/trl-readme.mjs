#!/usr/bin/env node
// Rewrites the TRL field table in README.md (between the trl-table markers) from the config
// schemas and src/train/trl-parity.ts. Run after `npx tsc -p .`:  node scripts/trl-readme.mjs
// (--check: exit 1 if README.md is stale instead of writing it).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { readmeWithTrlTable } = await import(`${root}dist/src/train/trl-readme.js`);
const path = `${root}README.md`;
const old = readFileSync(path, 'utf8');
const next = readmeWithTrlTable(old);
if (process.argv.includes('--check')) {
  if (next !== old) {
    process.stderr.write('README.md: the TRL field table is stale; run node scripts/trl-readme.mjs\n');
    process.exit(1);
  }
} else if (next !== old) {
  writeFileSync(`${path}.tmp`, next);
  renameSync(`${path}.tmp`, path);
  process.stderr.write('README.md: TRL field table updated\n');
}
