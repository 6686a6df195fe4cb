// The package entry (package.json "main") exposes the layers and the training entry points.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dpo from '../src/index.js';

test('library entry exports the public API', () => {
  for (const f of ['runDpo', 'runSft', 'scorePairs', 'parseDpoConfig', 'generate', 'loadHfDirectory', 'writeLlamaGguf'] as const) {
    assert.equal(typeof dpo[f], 'function', f);
  }
  assert.equal(typeof dpo.tensor.backward, 'function');
  assert.equal(typeof dpo.models.loadModelAndTokenizer, 'function');
  assert.equal(typeof dpo.losses.computePreferenceLoss, 'function');
  assert.equal(typeof dpo.data.loadPreferenceData, 'function');
  assert.equal(typeof dpo.tokenizers.loadTokenizer, 'function');
  assert.equal(dpo.parseDpoConfig({}).beta, 0.1);
});
