// The demo's RLHF arms at tiny settings: `--methods` picks arms; PPO (reward model trained by
// `dpo rm` on the demo's pairs), PPO-GT and GRPO are evaluated next to DPO on the same prompts;
// the frontier plot joins each method's points; the cost table is in the report and summary.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PRETRAIN } from '../src/train/pretrain.js';
import { runDemo, type DemoSettings } from '../src/demo/run.js';
import { costTable, DEFAULT_RL, methodOf } from '../src/demo/rlhf.js';
import { parseMethods } from '../src/cli/demo.js';

const TINY: DemoSettings = {
  shape: { vocabSize: 384, hiddenSize: 48, numLayers: 2, numHeads: 2, intermediateSize: 128, contextLength: 48 },
  pretrain: { ...DEFAULT_PRETRAIN, steps: 60, batchSize: 16, learningRate: 4e-3, warmupSteps: 10, evalSteps: 0 },
  trainPrompts: 160, pairPrompts: 16, evalPrompts: 16, samplesPerPrompt: 6, evalSamples: 2, maxNewTokens: 12,
  dpo: { learningRate: 2e-3, epochs: 1, batchSize: 16, warmupRatio: 0 },
  rl: { ...DEFAULT_RL, klCoefs: [0.1], grpoBetas: [0.1], rmSteps: 4, ppoSteps: 3, ppoBatch: 8, ppoEpochs: 1, grpoSteps: 3, grpoBatch: 8, numGenerations: 4 },
};

test('demo with every method: PPO, PPO-GT and GRPO arms next to DPO, frontier per method, cost table', async () => {
  const root = mkdtempSync(join(tmpdir(), 'demo-rl-'));
  const out = join(root, 'out');
  const r = await runDemo({ out, betas: [0.1], seed: 0, cacheDir: join(root, 'cache'), settings: TINY, quiet: true, methods: ['dpo', 'ppo', 'grpo'] });
  const names = r.evaluation.models.map((m) => m.name);
  assert.deepEqual(names, ['reference (base)', 'β=0.1', 'PPO kl=0.1', 'PPO-GT kl=0.1', 'GRPO β=0.1']);
  assert.deepEqual(names.map((n, i) => methodOf(n, i === 0)), ['reference', 'DPO', 'PPO', 'PPO-GT', 'GRPO']);
  for (const m of r.evaluation.models.slice(1)) assert.ok(Number.isFinite(m.kl.mean) && Number.isFinite(m.rewards.afinn!.mean), m.name);
  assert.deepEqual(r.costs.map((c) => c.arm), ['β=0.1', 'reward model', 'PPO kl=0.1', 'PPO-GT kl=0.1', 'GRPO β=0.1']);
  const ppo = r.costs.find((c) => c.arm === 'PPO kl=0.1')!;
  assert.equal(ppo.optimizerSteps, 3);
  assert.ok(ppo.generatedTokens > 0 && ppo.seconds > 0 && ppo.peakTensorBytes > 0);
  assert.equal(r.costs[0]!.generatedTokens, 0, 'DPO generates nothing while training');
  assert.match(costTable(r.costs), /\| GRPO \| GRPO β=0\.1 \|/);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.costs.length, 5);
  assert.deepEqual(summary.methods, ['dpo', 'ppo', 'grpo']);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /Cost per method/);
  const svg = readFileSync(join(out, 'plots', 'frontier_afinn.svg'), 'utf8');
  for (const n of ['PPO-GT kl=0.1', 'GRPO β=0.1']) assert.ok(svg.includes(n), `frontier lacks ${n}`);
  assert.ok(existsSync(join(out, 'models', 'reward-model', 'config.json')));
});

test('demo --methods grpo runs only the GRPO arm; a bad method is refused', async () => {
  const root = mkdtempSync(join(tmpdir(), 'demo-rl-only-'));
  const r = await runDemo({ out: join(root, 'out'), betas: [0.1], seed: 0, cacheDir: join(root, 'cache'), settings: TINY, quiet: true, methods: ['grpo'] });
  assert.deepEqual(r.evaluation.models.map((m) => m.name), ['reference (base)', 'GRPO β=0.1']);
  assert.throws(() => parseMethods('dpo,sft'), /--methods takes a comma-separated list of dpo, ppo, grpo, iterative, online, got "dpo,sft"/);
  assert.deepEqual(parseMethods('grpo, dpo,grpo'), ['grpo', 'dpo']);
  await assert.rejects(runDemo({ out: join(root, 'y'), betas: [0.1], seed: 0, settings: TINY, quiet: true, methods: [] }), /--methods/);
});
