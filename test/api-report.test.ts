// The API report check (scripts/api-report.mjs, `npm run api`): the public surface of every entry
// point equals the committed report in api/, every type the API refers to is exported, and an
// unintended change of the surface fails the check with a message saying how to accept it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const script = join(repo, 'scripts', 'api-report.mjs');

test('the public API equals the committed reports; a change of the surface fails the check', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [script], { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 0, `npm run api failed:\n${r.stdout}\n${r.stderr}`);
  for (const entry of ['dpo-ts', 'dpo-ts-annotate', 'dpo-ts-demo', 'dpo-ts-eval']) assert.match(r.stdout, new RegExp(`${entry}: API report unchanged`));

  // The same check against a report that lacks one export of the root entry.
  const reports = mkdtempSync(join(tmpdir(), 'dpo-api-'));
  try {
    cpSync(join(repo, 'api'), reports, { recursive: true });
    const root = join(reports, 'dpo-ts.api.md');
    const text = readFileSync(root, 'utf8');
    const changed = text.split('\n').filter((l) => !l.startsWith('export function auditVerdict(')).join('\n');
    assert.notEqual(changed, text, 'auditVerdict is not in the report');
    writeFileSync(root, changed);
    const bad = spawnSync(process.execPath, [script, '--reports', reports, '--entry', '.'], { cwd: repo, encoding: 'utf8' });
    assert.equal(bad.status, 1, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /dpo-ts: the public API changed.*npm run api:update/s);
  } finally {
    rmSync(reports, { recursive: true, force: true });
  }
});
