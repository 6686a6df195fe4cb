// The package entry (package.json "main") exposes the layers and the training entry points.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as dpo from '../src/index.js';

test('library entry exports the public API', () => {
  for (const f of [
    'runDpo', 'runSft', 'scorePairs', 'parseDpoConfig', 'generate', 'loadHfDirectory', 'writeLlamaGguf', 'saveModel', 'resolveModel',
    'loadAdapter', 'convertModel', 'pretrain', 'auditPreferenceData', 'auditVerdict', 'loadModelAndTokenizer', 'loadTokenizer',
  ] as const) {
    assert.equal(typeof dpo[f], 'function', f);
  }
  assert.equal(typeof dpo.tensor.backward, 'function');
  assert.equal(typeof dpo.models.loadModelAndTokenizer, 'function');
  assert.equal(typeof dpo.losses.computePreferenceLoss, 'function');
  assert.equal(typeof dpo.data.loadPreferenceData, 'function');
  assert.equal(typeof dpo.tokenizers.loadTokenizer, 'function');
  assert.equal(dpo.parseDpoConfig({}).beta, 0.1);
});

test('a missing optional package is an error naming the package to install', () => {
  const e = new dpo.MissingPackageError('better-sqlite3');
  assert.match(e.message, /dpo annotate .* needs the npm package better-sqlite3, which is not installed: run `npm install better-sqlite3`/);
  // The same list as package.json's optional packages: optional peer dependencies (installed here as
  // devDependencies by npm ci) and optionalDependencies (installed by default for users too).
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    peerDependencies: Record<string, string>; peerDependenciesMeta: Record<string, { optional: boolean }>;
    devDependencies: Record<string, string>; optionalDependencies: Record<string, string>;
  };
  assert.deepEqual(Object.keys(dpo.OPTIONAL_PACKAGES).sort(),
    [...Object.keys(pkg.peerDependencies), ...Object.keys(pkg.optionalDependencies)].sort());
  for (const p of Object.keys(pkg.peerDependencies)) {
    assert.equal(pkg.peerDependenciesMeta[p]?.optional, true, p);
    assert.ok(pkg.devDependencies[p], `${p} is not a devDependency (npm ci would not install it)`);
  }
});

test('the audit verdict fails on bad rows, passes without', async () => {
  const bad = await dpo.auditPreferenceData({ train: [{ prompt: 'a', chosen: 'b', rejected: 'c' }, { prompt: 'a', chosen: 1 }] });
  assert.deepEqual(dpo.auditVerdict(bad), { passed: false, badRows: 1 });
  const good = await dpo.auditPreferenceData({ train: [{ prompt: 'a', chosen: 'b', rejected: 'c' }, { prompt: 'x', chosen: 'y', rejected: 'z' }] });
  assert.deepEqual(dpo.auditVerdict(good), { passed: true, badRows: 0 });
});
