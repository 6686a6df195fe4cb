// A long DPO run of the demo's model in bf16 autocast vs float32 (issue #14 §2): does bf16 end
// within noise of float32? Noise is measured, not assumed: the same run over several seeds in
// float32 (data order differs per seed) gives the spread a precision change must stay inside.
//
//   npx tsc -p . && node bin/dpo.js demo --quick --methods dpo --betas 0.1 --out /tmp/demo   # base model + pairs
//   node dist/bench/bf16-vs-fp32.js --demo /tmp/demo [--steps 300] [--seeds 1,2,3] [--threads 2] [--json out.json]
//   node dist/bench/bf16-vs-fp32.js --merge a.json,b.json,...   # the table over runs made separately (e.g. one seed per process)
//
// Each run: full fine-tune, sigmoid loss β 0.1, the demo's learning rate (QUICK settings) and
// batch, `--steps` optimizer steps over the demo's training pairs; then on the held-out pairs'
// prompts, samples from the policy: mean AFINN reward (the training reward) and sequence
// KL(π‖π_ref), and the implicit-reward accuracy on the held-out pairs (evaluateAgainstReference).
// Tolerance per metric: the range (max − min) of the float32 seeds; bf16 passes when the distance
// of its mean from the float32 mean is within that range (and, per seed, when the same seed's
// difference is within it too).
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gemmBf16Path, kernelPath, kernels } from '../src/tensor/backend.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { parseDpoConfig } from '../src/train/config.js';
import { runDpo } from '../src/train/dpo.js';
import { evaluateAgainstReference, type IdPair } from '../src/eval/evaluate.js';
import { makeJudge } from '../src/eval/judges.js';
import { QUICK_SETTINGS } from '../src/demo/settings.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

interface Result { precision: string; seed: number; accuracy: number; reward: number; kl: number; finalLoss: number; seconds: number }
const results: Result[] = [];
const merge = arg('merge', '');
const demo = arg('demo', '');
if (merge) {
  for (const f of merge.split(',')) results.push(...(JSON.parse(readFileSync(f, 'utf8')) as { results: Result[] }).results);
  report();
  process.exit(0);
}
if (!demo) {
  console.error('usage: node dist/bench/bf16-vs-fp32.js --demo DEMO_OUT_DIR [--steps 300] [--seeds 1,2,3] [--threads 2] [--json FILE]');
  process.exit(2);
}
const steps = Number(arg('steps', '300'));
const seeds = arg('seeds', '1,2,3').split(',').map(Number);
kernels().setNumThreads(Number(arg('threads', '2')));
const summary = JSON.parse(readFileSync(join(demo, 'summary.json'), 'utf8')) as { base_model: string };
const trainFile = join(demo, 'data', 'train_pairs.jsonl');
const heldFile = join(demo, 'data', 'heldout_pairs.jsonl');
const held = readFileSync(heldFile, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string });
const prompts = [...new Set(held.map((p) => p.prompt))];
const base = await loadModelAndTokenizer(summary.base_model);
const tok = base.tokenizer;
// The held-out pairs as the demo made them: prompt with BOS, completions as sampled.
const pairs: IdPair[] = held.map((p) => ({
  prompt: tok.encode(p.prompt, { addBos: true }), chosen: tok.encode(p.chosen, { addBos: false }), rejected: tok.encode(p.rejected, { addBos: false }),
}));
const s = QUICK_SETTINGS;
const tmp = mkdtempSync(join(tmpdir(), 'bf16-vs-fp32-'));

const kp = kernelPath();
console.error(`bf16-vs-fp32: CPU ${cpus()[0]?.model}; float32 ${kp.backend}/${kp.gemmKernel}, bf16 ${gemmBf16Path()}; ${steps} steps, seeds ${seeds.join(',')}; ` +
  `${prompts.length} held-out prompts × ${s.evalSamples * 2} samples`);
for (const seed of seeds) {
  for (const precision of ['float32', 'bf16'] as const) {
    const t0 = Date.now();
    const config = parseDpoConfig({
      beta: 0.1, learning_rate: s.dpo.learningRate, max_steps: steps, num_train_epochs: 1000,
      per_device_train_batch_size: s.dpo.batchSize, per_device_eval_batch_size: 32, max_length: base.model.config.maxPositions,
      max_prompt_length: Math.min(64, base.model.config.maxPositions - s.maxNewTokens - 2), logging_steps: 10, eval_steps: 0, save_steps: 0,
      seed, warmup_ratio: s.dpo.warmupRatio, lr_scheduler_type: 'linear', precompute_ref_log_probs: true, bf16: precision === 'bf16',
    }, {}, 'bf16-vs-fp32');
    const r = await runDpo({ model: summary.base_model, data: [trainFile], config, outputDir: join(tmp, `${precision}-${seed}`), quiet: true, cacheDir: tmp });
    // Evaluation in float32 for both (the question is what training in bf16 did to the weights).
    const ev = evaluateAgainstReference({
      ref: base.model, refName: 'reference', policies: [{ name: precision, beta: 0.1, model: r.model }], tokenizer: base.tokenizer,
      prompts, judges: [makeJudge('afinn')], pairs,
      settings: { samplesPerPrompt: s.evalSamples * 2, maxNewTokens: s.maxNewTokens, seed: 104729, quiet: true },
    });
    const m = ev.models.find((x) => x.name === precision)!;
    const res: Result = {
      precision, seed, accuracy: m.implicitAccuracy, reward: m.rewards.afinn!.mean, kl: m.kl.mean,
      finalLoss: r.history.at(-1)?.loss ?? NaN, seconds: (Date.now() - t0) / 1000,
    };
    results.push(res);
    console.error(`  ${precision.padEnd(7)} seed ${seed}: held-out accuracy ${res.accuracy.toFixed(3)}, AFINN ${res.reward.toFixed(3)}, KL ${res.kl.toFixed(3)}, ` +
      `final loss ${res.finalLoss.toFixed(4)} (${res.seconds.toFixed(0)} s)`);
  }
}

report();

function report(): void {
const seeds = [...new Set(results.map((r) => r.seed))].sort((a, b) => a - b);
const kp = kernelPath();
const steps = arg('steps', '300');
const metrics = ['accuracy', 'reward', 'kl'] as const;
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const lines: string[] = [];
let pass = true;
const table: Record<string, unknown> = {};
for (const k of metrics) {
  const of = (p: string): number[] => seeds.map((sd) => results.find((r) => r.precision === p && r.seed === sd)?.[k] ?? NaN);
  const f = of('float32'), b = of('bf16');
  const tol = Math.max(...f) - Math.min(...f);
  const diff = mean(b) - mean(f);
  const perSeed = seeds.map((_, i) => b[i]! - f[i]!);
  const ok = Math.abs(diff) <= tol;
  pass &&= ok;
  table[k] = { float32: f, bf16: b, float32Mean: mean(f), bf16Mean: mean(b), diff, tolerance: tol, perSeedDiff: perSeed, ok };
  lines.push(`${k.padEnd(9)} float32 ${mean(f).toFixed(3)} [${f.map((x) => x.toFixed(3)).join(', ')}]  bf16 ${mean(b).toFixed(3)} [${b.map((x) => x.toFixed(3)).join(', ')}]  ` +
    `bf16−float32 ${diff >= 0 ? '+' : ''}${diff.toFixed(3)} (per seed ${perSeed.map((x) => x.toFixed(3)).join(', ')}); tolerance = float32 seed range ${tol.toFixed(3)}: ${ok ? 'within' : 'OUTSIDE'}`);
}
console.log(`CPU ${cpus()[0]?.model}; float32 ${kp.backend}/${kp.gemmKernel}, bf16 GEMM ${gemmBf16Path()}; ${steps} DPO steps, seeds ${seeds.join(',')}`);
for (const l of lines) console.log(l);
console.log(pass ? 'bf16 ends within the float32 seed spread on every metric' : 'bf16 is outside the float32 seed spread on at least one metric');
const jsonPath = arg('json', '');
if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ cpu: cpus()[0]?.model, steps, seeds, results, table, pass }, null, 1));
}
