// The demo's on-policy DPO arms at tiny settings: `--methods dpo,iterative,online` puts iterative
// DPO (dpo loop, rounds of fresh samples) and online DPO (dpo online) next to offline DPO on the
// same evaluation, frontier plot and cost table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PRETRAIN } from '../src/train/pretrain.js';
import { runDemo, type DemoSettings } from '../src/demo/run.js';
import { DEFAULT_RL, methodOf } from '../src/demo/rlhf.js';
import { parseMethods } from '../src/cli/demo.js';

const TINY: DemoSettings = {
  shape: { vocabSize: 384, hiddenSize: 48, numLayers: 2, numHeads: 2, intermediateSize: 128, contextLength: 48 },
  pretrain: { ...DEFAULT_PRETRAIN, steps: 60, batchSize: 16, learningRate: 4e-3, warmupSteps: 10, evalSteps: 0 },
  trainPrompts: 96, pairPrompts: 16, evalPrompts: 16, samplesPerPrompt: 6, evalSamples: 2, maxNewTokens: 12,
  dpo: { learningRate: 2e-3, epochs: 1, batchSize: 16, warmupRatio: 0 },
  rl: DEFAULT_RL,
  loop: { rounds: 2, beta: 0.1, onlineSteps: 3, onlineBatch: 8, onlineLearningRate: 2e-3 },
};

test('demo --methods dpo,iterative,online: both on-policy arms next to offline DPO, in the frontier and the cost table', async () => {
  const root = mkdtempSync(join(tmpdir(), 'demo-loop-'));
  const out = join(root, 'out');
  const r = await runDemo({ out, betas: [0.1], seed: 0, cacheDir: join(root, 'cache'), settings: TINY, quiet: true, methods: parseMethods('dpo,iterative,online') });
  const names = r.evaluation.models.map((m) => m.name);
  assert.deepEqual(names, ['reference (base)', 'β=0.1', 'Iterative DPO β=0.1', 'Online DPO β=0.1']);
  assert.deepEqual(names.map((n, i) => methodOf(n, i === 0)), ['reference', 'DPO', 'Iterative DPO', 'Online DPO']);
  for (const m of r.evaluation.models.slice(1)) assert.ok(Number.isFinite(m.kl.mean) && m.kl.mean > 0 && Number.isFinite(m.rewards.afinn!.mean), m.name);
  assert.deepEqual(r.costs.map((c) => c.arm), ['β=0.1', 'Iterative DPO β=0.1', 'Online DPO β=0.1']);
  const it = r.costs[1]!, on = r.costs[2]!;
  assert.ok(it.generatedTokens > 0 && it.optimizerSteps > 0 && it.seconds > 0);
  assert.equal(on.optimizerSteps, 3);
  assert.ok(on.generatedTokens > 0 && on.generatedTokens <= 3 * 8 * 2 * 12);
  // The loop directory of the iterative arm: two rounds, each on a new half of the prompts.
  const loop = readFileSync(join(out, 'models', 'iterative-dpo', 'loop.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(loop.map((x: { round: number }) => x.round), [0, 1, 2]);
  assert.equal(loop[1].prompts, 48);
  assert.ok(existsSync(join(out, 'models', 'online-dpo', 'model.safetensors')));
  const svg = readFileSync(join(out, 'plots', 'frontier_afinn.svg'), 'utf8');
  for (const n of ['Iterative DPO β=0.1', 'Online DPO β=0.1']) assert.ok(svg.includes(n), `frontier lacks ${n}`);
  assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /Online DPO/);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).methods, ['dpo', 'iterative', 'online']);
});
