// One PPO step or one GRPO step of a GPT-2-small or SmolLM2-135M shaped model (random init), timed
// per phase, with the same code paths as `dpo ppo` / `dpo grpo`:
//
//   node dist/bench/rl-step.js ppo|grpo tiny|small|llama135 THREADS [--rollouts 8] [--prompt 64]
//        [--length 64] [--epochs 4] [--generations 4] [--micro 4] [--steps 2] [--warmup 1] [--json out.json]
//
// PPO:  generation (KV-cache sampler, `rollouts` prompts × `length` tokens) → scoring (policy and
//       reference log-probs, value model, reward model) → `epochs` × (policy + value forward/backward
//       in micro-batches, AdamW). Four models in memory: policy, reference, value, reward.
// GRPO: generation (`rollouts` completions = rollouts/generations prompts × generations) → scoring
//       (reference log-probs for β = 0.04, reward model) → one policy forward/backward + AdamW.
// Prints JSON: seconds per phase (median over steps), generated tokens/s, trained tokens/s, peak RSS.
// Compare with `node dist/bench/step.js dpo CONFIG THREADS` for one DPO step on the same machine.
import { writeFileSync } from 'node:fs';
import * as T from '../src/tensor/index.js';
import { kernels, nativeKernels } from '../src/tensor/backend.js';
import { parseModelConfig } from '../src/io/config.js';
import { randomModel, type CausalLM } from '../src/models/index.js';
import { generateTokens } from '../src/models/generate.js';
import { SequenceClassifier } from '../src/models/reward.js';
import { gae, grpoAdvantages, grpoLoss, ppoMasks, ppoPolicyLoss, ppoRewards, ppoValueLoss, whitenAdvantages } from '../src/losses/rl.js';
import { completionTokenLogprobs, takeRows } from '../src/train/rollout.js';
import { AdamW } from '../src/train/optimizer.js';
import { Rng } from '../src/tensor/random.js';
import { BENCH_SHAPES } from './shapes.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}
const [mode, configName, threadsArg] = process.argv.slice(2);
if (!mode || !['ppo', 'grpo'].includes(mode) || !configName || !(configName in BENCH_SHAPES) || !threadsArg) {
  console.error('usage: node dist/bench/rl-step.js ppo|grpo tiny|small|llama135 THREADS [--rollouts N] [--prompt N] [--length N] [--epochs N] [--generations N] [--micro N] [--steps N] [--warmup N] [--json FILE]');
  process.exit(2);
}
if (!nativeKernels()) console.error('WARNING: native kernels unavailable; this measures the TypeScript reference backend');
kernels().setNumThreads(Number(threadsArg));
const rollouts = Number(arg('rollouts', '8')), promptLen = Number(arg('prompt', '64')), length = Number(arg('length', '64'));
const epochs = Number(arg('epochs', '4')), G = Number(arg('generations', '4')), micro = Number(arg('micro', '4'));
const steps = Number(arg('steps', '2')), warmup = Number(arg('warmup', '1'));
const cfg = parseModelConfig(BENCH_SHAPES[configName]!, configName);
const pad = 0;

const policy = randomModel(cfg, 0);
const frozen = (m: CausalLM): CausalLM => {
  for (const p of m.parameters().values()) p.requiresGrad = false;
  return m;
};
const reference = frozen(randomModel(cfg, 0));
const rm = SequenceClassifier.fromCausalLM(frozen(randomModel(cfg, 1)), pad, 1);
rm.score.requiresGrad = false;
const value = mode === 'ppo' ? SequenceClassifier.fromCausalLM(randomModel(cfg, 1), pad, 1) : null;
if (value) for (const [n, t] of value.parameters()) t.name = `value.${n}`;
const params = [...policy.trainableParameters(), ...(value ? value.trainableParameters() : [])];
const opt = new AdamW(params, { weightDecay: 0 });
const rng = new Rng(3);
const nPrompts = mode === 'grpo' ? rollouts / G : rollouts;
if (!Number.isInteger(nPrompts)) throw new Error(`--rollouts ${rollouts} must be a multiple of --generations ${G}`);

const phase = { generation: 0, scoring: 0, fwd_bwd: 0, optimizer: 0 };
const now = (): number => performance.now() / 1000;
let trainedTokens = 0;

function step(seed: number): void {
  for (const k of Object.keys(phase) as (keyof typeof phase)[]) phase[k] = 0;
  trainedTokens = 0;
  const prompts = Array.from({ length: nPrompts }, () => Array.from({ length: promptLen }, () => 1 + rng.int(cfg.vocabSize - 1)));
  const rows = mode === 'grpo' ? prompts.flatMap((p) => Array.from({ length: G }, () => p)) : prompts;
  let t = now();
  // Fixed-length completions (no stop id): the cost of `length` sampled tokens per rollout.
  const gen = T.noGrad(() => generateTokens(policy, rows, { maxNewTokens: length, temperature: 1, seed, stopIds: [], padId: pad }));
  phase.generation = now() - t;
  const comp = gen.tokens, C = length, N = rows.length;
  t = now();
  const noGradLp = (m: CausalLM): Float64Array => T.noGrad(() => {
    const lp = completionTokenLogprobs(m, rows, comp, C, pad, 1);
    lp.tensor.dispose();
    return lp.values;
  });
  const ref = noGradLp(reference);
  const scores = T.noGrad(() => {
    const ids = new Int32Array(N * (promptLen + C));
    rows.forEach((p, r) => {
      ids.set(p, r * (promptLen + C));
      ids.set(comp[r]!, r * (promptLen + C) + promptLen);
    });
    const s = rm.rewards(ids, N, promptLen + C);
    return Float64Array.from(s.data);
  });
  const mask = new Float64Array(N * C).fill(1);
  if (mode === 'grpo') {
    phase.scoring = now() - t;
    const adv = grpoAdvantages(scores, 1, [1], G, 'group').advantages;
    for (let s = 0; s < N; s += micro) {
      const idx = Array.from({ length: Math.min(micro, N - s) }, (_, j) => s + j);
      t = now();
      const lp = completionTokenLogprobs(policy, idx.map((r) => rows[r]!), idx.map((r) => comp[r]!), C, pad, 1);
      const res = grpoLoss(lp.values, lp.values, takeRows(ref, idx, C), takeRows(mask, idx, C), idx.map((r) => adv[r]!), idx.length, C, { lossType: 'dapo', beta: 0.04, epsilon: 0.2 });
      T.backward(lp.tensor, lp.scatter(res.grad.map((g) => (g * idx.length) / N)));
      phase.fwd_bwd += now() - t;
      trainedTokens += idx.length * (promptLen + C);
    }
    t = now();
    opt.update(1e-6);
    T.zeroGrad(params);
    phase.optimizer = now() - t;
    return;
  }
  const old = noGradLp(policy);
  const seqLens = Int32Array.from(comp, (c) => c.length - 1);
  const vals = T.noGrad(() => {
    const lp = completionTokenLogprobs(policy, rows, comp, C, pad, 1); // block layout only
    lp.tensor.dispose();
    const v = value!.values(lp.block);
    return Float64Array.from({ length: N * C }, (_, i) => v.data[lp.positions[i]!]!);
  });
  phase.scoring = now() - t;
  const { valid, validP1 } = ppoMasks(seqLens, C);
  const rw = ppoRewards(old, ref, scores, seqLens, C, 0.05, 'k1');
  const g = gae(rw.rewards, vals, N, C, 1, 0.95);
  const adv = whitenAdvantages(g.advantages, valid);
  for (let e = 0; e < epochs; e++) {
    for (let s = 0; s < N; s += micro) {
      const idx = Array.from({ length: Math.min(micro, N - s) }, (_, j) => s + j);
      t = now();
      const lp = completionTokenLogprobs(policy, idx.map((r) => rows[r]!), idx.map((r) => comp[r]!), C, pad, 1);
      const pg = ppoPolicyLoss(lp.values, takeRows(old, idx, C), takeRows(adv, idx, C), takeRows(valid, idx, C), 0.2);
      T.backward(lp.tensor, lp.scatter(pg.grad.map((x) => (x * idx.length) / N)));
      const vt = value!.values(lp.block);
      const vpred = Float64Array.from({ length: idx.length * C }, (_, i) => vt.data[lp.positions[i]!]!);
      const vf = ppoValueLoss(vpred, takeRows(vals, idx, C), takeRows(g.returns, idx, C), takeRows(validP1, idx, C), 0.2);
      const gv = new Float32Array(vt.size);
      lp.positions.forEach((p, i) => (gv[p] = (0.1 * vf.grad[i]! * idx.length) / N));
      T.backward(vt, gv);
      phase.fwd_bwd += now() - t;
      trainedTokens += idx.length * (promptLen + C);
    }
    t = now();
    opt.update(1e-6);
    T.zeroGrad(params);
    phase.optimizer += now() - t;
  }
}

const all: (typeof phase & { total: number })[] = [];
for (let i = 0; i < warmup + steps; i++) {
  const t0 = now();
  step(i);
  const total = now() - t0;
  console.error(`  step ${i} ${total.toFixed(2)}s: ${Object.entries(phase).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  if (i >= warmup) all.push({ ...phase, total });
}
const median = (k: keyof (typeof all)[number]): number => {
  const v = all.map((x) => x[k]).sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)]!;
};
const res = {
  mode, config: configName, threads: kernels().numThreads(), cpu: (await import('node:os')).cpus()[0]?.model ?? 'unknown',
  kernels: nativeKernels() ? 'native' : 'reference', rollouts, prompt: promptLen, length, ...(mode === 'ppo' ? { epochs } : { generations: G }), micro,
  step_s_median: median('total'),
  phase_s_median: { generation: median('generation'), scoring: median('scoring'), fwd_bwd: median('fwd_bwd'), optimizer: median('optimizer') },
  generated_tok_per_s: (rollouts * length) / median('generation'),
  trained_tok_per_s: trainedTokens / median('fwd_bwd'),
  peak_rss_MiB: process.resourceUsage().maxRSS / 1024,
};
console.log(JSON.stringify(res));
const jsonPath = arg('json', '');
if (jsonPath) writeFileSync(jsonPath, JSON.stringify(res, null, 1));
