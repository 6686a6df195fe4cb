// The suite stands on its own: no test reads ../shared or an absolute /work path, and every fixture
// the tests name exists in the repository with its source noted in test/fixtures/README.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, GOLDEN_DIR, HH_RLHF, ORCA, STORIES260K, TINY_GPT2, TOK512 } from './helpers/fixtures.js';

const TEST_SRC = join(FIXTURES, '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mjs|js)$/.test(name)) out.push(p);
  }
  return out;
}

test('no test source reads ../shared or an absolute /work path', () => {
  const offenders: string[] = [];
  for (const file of sources(TEST_SRC)) {
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      if (/^\s*\/\//.test(line)) return; // comments may mention where a fixture came from
      if (/['"`]\/work\/|'\.\.', 'shared'|\.\.\/shared\//.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, []);
});

test('the real-model, real-data and golden fixtures are in the repository, with their sources noted', () => {
  for (const p of [STORIES260K, TOK512, join(TINY_GPT2, 'model.safetensors'), HH_RLHF, ORCA,
    join(GOLDEN_DIR, 'dpo_losses.json'), join(GOLDEN_DIR, 'dpo_losses_more.json'), join(GOLDEN_DIR, 'rl_losses.json')]) {
    assert.ok(existsSync(p), `${p} missing`);
  }
  const readme = readFileSync(join(FIXTURES, 'README.md'), 'utf8');
  for (const name of ['stories260K', 'tiny-gpt2-random', 'hh-rlhf', 'orca-dpo-pairs', 'golden']) {
    assert.match(readme, new RegExp(name), `test/fixtures/README.md does not describe ${name}`);
  }
  // A few hundred KB of data, not whole data sets.
  assert.ok(statSync(HH_RLHF).size < 300_000 && statSync(ORCA).size < 300_000);
});
