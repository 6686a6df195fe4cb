// The loss registry (src/losses/registry.ts): every loss declares its needs beside its function, and
// the declarations must be true of the function — checked here by running each loss with and without
// the input or parameter a flag is about. Also: every registered loss has a golden test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  computePreferenceLoss, isReferenceFree, labelSmoothingLossTypes, lossSpec, lossSpecs, lossTypeNames, lossTypes, needsLossState,
  newBcoRunningMean, resolveLossType, usesNllTerm, type LossParams, type PreferenceLogps,
} from '../src/losses/index.js';
import { mulberry32 } from './helpers/rng.js';
import { FIXTURES, GOLDEN_DIR } from './helpers/fixtures.js';

function batch(seed: number, n = 5): PreferenceLogps {
  const r = mulberry32(seed);
  const arr = (lo: number, hi: number): Float64Array => Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
  const chosenTokens = Array.from({ length: n }, () => 2 + Math.floor(6 * r()));
  const rejectedTokens = Array.from({ length: n }, () => 2 + Math.floor(6 * r()));
  return {
    policyChosen: arr(-30, -5), policyRejected: arr(-30, -5), refChosen: arr(-30, -5), refRejected: arr(-30, -5), chosenTokens, rejectedTokens,
  };
}

/** Parameters under which every loss is valid (exo_pair needs ε > 0). */
function paramsFor(name: string, extra: LossParams = {}): LossParams {
  return { beta: 0.2, ...(name === 'exo_pair' ? { labelSmoothing: 0.01 } : {}), ...extra };
}

test('registry: lossTypes, names and aliases come from the declarations, in one list', () => {
  assert.deepEqual(lossTypes, lossSpecs.map((s) => s.name));
  assert.equal(new Set(lossTypeNames).size, lossTypeNames.length, 'no name twice');
  assert.equal(resolveLossType('aot_unpaired'), 'aot_pair');
  assert.equal(lossSpec('aot_unpaired').name, 'aot_pair');
  assert.throws(() => lossSpec('nca'), /did you mean 'nca_pair'/);
  assert.ok(labelSmoothingLossTypes.includes('aot_unpaired'), 'aliases inherit the label-smoothing flag');
});

test('registry: referenceFree is true exactly when the loss runs without reference log-probs', () => {
  for (const s of lossSpecs) {
    const { refChosen: _rc, refRejected: _rr, ...noRef } = batch(1);
    const run = (): unknown => computePreferenceLoss(s.name, noRef, paramsFor(s.name));
    if (s.referenceFree) assert.doesNotThrow(run, s.name);
    else assert.throws(run, /refChosen is required/, s.name);
    assert.equal(isReferenceFree(s.name), s.referenceFree === true);
  }
  assert.equal(isReferenceFree(['simpo', 'sft']), true);
  assert.equal(isReferenceFree(['simpo', 'sigmoid']), false);
});

test('registry: perToken is declared exactly by the losses that need token counts', () => {
  for (const s of lossSpecs) {
    const { rejectedTokens: _t, ...noRejectedTokens } = batch(2);
    const run = (): unknown => computePreferenceLoss(s.name, noRejectedTokens, paramsFor(s.name));
    if (s.perToken?.({}) !== undefined) assert.throws(run, /rejectedTokens is required/, s.name);
    else assert.doesNotThrow(run, s.name);
  }
  // ipo needs them only for TRL's length normalization.
  assert.equal(lossSpec('ipo').perToken?.({ ipoLengthNormalize: false }), undefined);
});

test('registry: labelSmoothing is declared exactly by the losses whose value depends on ε', () => {
  for (const s of lossSpecs) {
    const logps = batch(3);
    const a = computePreferenceLoss(s.name, logps, paramsFor(s.name, { labelSmoothing: 0.1 })).loss;
    const b = computePreferenceLoss(s.name, logps, paramsFor(s.name, { labelSmoothing: 0.2 })).loss;
    assert.equal(a !== b, s.labelSmoothing === true, `${s.name}: ε 0.1 → ${a}, 0.2 → ${b}`);
  }
});

test('registry: rankIndexed losses refuse pair weights; usesNll losses report the NLL term; state is threaded', () => {
  for (const s of lossSpecs) {
    const logps = batch(4);
    const weighted = (): unknown => computePreferenceLoss(s.name, logps, paramsFor(s.name, { pairWeights: Float64Array.from([1, 2, 1, 0.5, 1]) }));
    if (s.rankIndexed) assert.throws(weighted, /pairWeights/, s.name);
    else assert.doesNotThrow(weighted, s.name);
    const r = computePreferenceLoss(s.name, logps, paramsFor(s.name));
    assert.equal(r.nll !== undefined, s.usesNll?.({}) === true, `${s.name}: nll ${r.nll}`);
    assert.equal(usesNllTerm(s.name, {}), s.usesNll?.({}) === true);
    const withState = computePreferenceLoss(s.name, logps, paramsFor(s.name, { bcoState: newBcoRunningMean() }));
    assert.equal(withState.bcoState !== undefined, s.state === 'bcoState', s.name);
    assert.equal(needsLossState(s.name, 'bcoState'), s.state === 'bcoState');
  }
  assert.equal(usesNllTerm('simpo', { cpoAlpha: 0 }), false, 'pure SimPO has no NLL term');
  assert.equal(usesNllTerm('sigmoid', { rpoAlpha: 0.5 }), true, 'rpo_alpha adds it to any loss');
});

test('registry: every loss has a golden test (PyTorch vectors, or a value derived by hand from the formula)', () => {
  // Golden JSON cases name their loss_type; 'sigmoid+rpo' pins the NLL term, i.e. TRL's sft loss.
  const golden = new Set<string>();
  for (const f of readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.json'))) {
    for (const m of readFileSync(join(GOLDEN_DIR, f), 'utf8').matchAll(/"loss_type":\s*"([^"]+)"/g)) {
      for (const part of m[1]!.split('+')) golden.add(part === 'rpo' ? 'sft' : part);
    }
  }
  // Hand-derived golden values: a test titled '<loss>: ..., hand-derived'.
  const testDir = join(FIXTURES, '..');
  for (const f of readdirSync(testDir).filter((f) => f.endsWith('.test.ts'))) {
    for (const m of readFileSync(join(testDir, f), 'utf8').matchAll(/test\('([a-z_]+):[^']*hand-derived'/g)) golden.add(m[1]!);
  }
  const missing = lossTypes.filter((t) => !golden.has(t));
  assert.deepEqual(missing, [], `losses without a golden test: ${missing.join(', ')}`);
});
