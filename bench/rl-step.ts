// One PPO step, one GRPO step or one DPO step of a GPT-2-small or SmolLM2-135M shaped model (random
// init), timed per phase, with the same code paths as `dpo ppo` / `dpo grpo` / `dpo train`:
//
//   node dist/bench/rl-step.js ppo|grpo|dpo tiny|small|llama135 THREADS [--rollouts 8] [--prompt 64]
//        [--length 64] [--epochs 4] [--generations 4] [--micro 4] [--steps 2] [--warmup 1] [--json out.json]
//   node dist/bench/rl-step.js compare tiny|small|llama135 THREADS [--rounds 2] [--modes dpo,grpo,ppo] [same options]
//
// PPO:  generation (KV-cache sampler, `rollouts` prompts × `length` tokens) → scoring (policy and
//       reference log-probs, value model, reward model) → `epochs` × (policy + value forward/backward
//       in micro-batches, AdamW). Four models in memory: policy, reference, value, reward.
// GRPO: generation (`rollouts` completions = rollouts/generations prompts × generations) → scoring
//       (reference log-probs for β = 0.04, reward model) → one policy forward/backward + AdamW.
// DPO:  the same token count without sampling: rollouts/2 pairs of (`prompt` + `length`)-token
//       sequences → scoring (reference log-probs) → one policy forward/backward (sigmoid loss) + AdamW.
// Prints JSON: seconds per phase (median over steps), generated tokens/s, trained tokens/s, peak RSS.
// `compare` runs each mode in its own process (so each peak RSS is its own), in interleaved rounds
// (dpo, grpo, ppo, dpo, grpo, ppo, ...), and prints the medians over rounds with each step's cost
// as a multiple of the DPO step's.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, uptime } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/tensor/index.js';
import { kernelPath, kernels, nativeKernels } from '../src/tensor/backend.js';
import { parseModelConfig } from '../src/io/config.js';
import { randomModel, type CausalLM } from '../src/models/index.js';
import { generateTokens } from '../src/models/generate.js';
import { SequenceClassifier } from '../src/models/reward.js';
import { gae, grpoAdvantages, grpoLoss, ppoMasks, ppoPolicyLoss, ppoRewards, ppoValueLoss, whitenAdvantages } from '../src/losses/rl.js';
import { completionTokenLogprobs, takeRows } from '../src/train/rollout.js';
import { referenceLogps } from '../src/train/dpo.js';
import { computePreferenceLoss } from '../src/losses/index.js';
import { AdamW } from '../src/train/optimizer.js';
import { Rng } from '../src/tensor/random.js';
import { BENCH_SHAPES } from './shapes.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}
const [mode, configName, threadsArg] = process.argv.slice(2);
const MODES = ['ppo', 'grpo', 'dpo'];
if (!mode || ![...MODES, 'compare'].includes(mode) || !configName || !(configName in BENCH_SHAPES) || !threadsArg) {
  console.error('usage: node dist/bench/rl-step.js ppo|grpo|dpo|compare tiny|small|llama135 THREADS [--rollouts N] [--prompt N] [--length N] [--epochs N] [--generations N] [--micro N] [--steps N] [--warmup N] [--json FILE] [--rounds N] [--modes dpo,grpo,ppo]');
  process.exit(2);
}
if (mode === 'compare') {
  compare();
  process.exit(0);
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
const rm = mode === 'dpo' ? null : SequenceClassifier.fromCausalLM(frozen(randomModel(cfg, 1)), pad, 1);
if (rm) rm.score.requiresGrad = false;
const value = mode === 'ppo' ? SequenceClassifier.fromCausalLM(randomModel(cfg, 1), pad, 1) : null;
if (value) for (const [n, t] of value.parameters()) t.name = `value.${n}`;
const params = [...policy.trainableParameters(), ...(value ? value.trainableParameters() : [])];
const opt = new AdamW(params, { weightDecay: 0 });
const rng = new Rng(3);
const nPrompts = mode === 'grpo' ? rollouts / G : rollouts;
if (!Number.isInteger(nPrompts)) throw new Error(`--rollouts ${rollouts} must be a multiple of --generations ${G}`);
if (mode === 'dpo' && rollouts % 2 !== 0) throw new Error(`--rollouts ${rollouts}: a DPO step takes rollouts/2 pairs (an even count)`);

const phase = { generation: 0, scoring: 0, fwd_bwd: 0, optimizer: 0 };
const now = (): number => performance.now() / 1000;
let trainedTokens = 0;

/** One DPO step on rollouts/2 pairs: each sequence a shared random prompt plus a random response. */
function dpoStep(): void {
  const pairs = rollouts / 2, rows = rollouts, S = promptLen + length;
  const ids = new Int32Array(rows * S);
  for (let p = 0; p < pairs; p++) {
    for (let t = 0; t < S; t++) {
      const shared = 1 + rng.int(cfg.vocabSize - 1);
      ids[p * S + t] = t < promptLen ? shared : 1 + rng.int(cfg.vocabSize - 1);
      ids[(pairs + p) * S + t] = t < promptLen ? shared : 1 + rng.int(cfg.vocabSize - 1);
    }
  }
  const targets = new Int32Array(rows * S).fill(-1);
  for (let r = 0; r < rows; r++) for (let t = promptLen - 1; t + 1 < S; t++) targets[r * S + t] = ids[r * S + t + 1]!;
  const batch = { pairs, seqLen: S, inputIds: ids, targets, lengths: new Int32Array(rows).fill(S), responseTokens: new Int32Array(rows).fill(length), indices: [] };
  let t = now();
  const ref = referenceLogps(reference, batch);
  phase.scoring = now() - t;
  t = now();
  const lp = policy.tokenLogprobs({ ids, batch: rows, seq: S }, targets);
  const seq = T.sum(T.reshape(lp, [rows, S]), 1);
  const pol = Float64Array.from(seq.data);
  const res = computePreferenceLoss('sigmoid', {
    policyChosen: pol.slice(0, pairs), policyRejected: pol.slice(pairs), refChosen: ref.slice(0, pairs), refRejected: ref.slice(pairs),
  }, { beta: 0.1 });
  const g = new Float32Array(rows);
  for (let i = 0; i < pairs; i++) {
    g[i] = res.gradPolicyChosen[i]!;
    g[pairs + i] = res.gradPolicyRejected[i]!;
  }
  T.backward(seq, g);
  phase.fwd_bwd = now() - t;
  trainedTokens = rows * S;
  t = now();
  opt.update(1e-6);
  T.zeroGrad(params);
  phase.optimizer = now() - t;
}

function step(seed: number): void {
  for (const k of Object.keys(phase) as (keyof typeof phase)[]) phase[k] = 0;
  trainedTokens = 0;
  if (mode === 'dpo') return dpoStep();
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
    const s = rm!.rewards(ids, N, promptLen + C);
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
  kernels: nativeKernels() ? 'native' : 'reference', kernel_path: kernelPath(),
  rollouts, prompt: promptLen, length, ...(mode === 'ppo' ? { epochs } : mode === 'grpo' ? { generations: G } : { pairs: rollouts / 2 }), micro,
  step_s_median: median('total'),
  phase_s_median: { generation: median('generation'), scoring: median('scoring'), fwd_bwd: median('fwd_bwd'), optimizer: median('optimizer') },
  generated_tok_per_s: mode === 'dpo' ? 0 : (rollouts * length) / median('generation'),
  trained_tok_per_s: trainedTokens / median('fwd_bwd'),
  peak_rss_MiB: process.resourceUsage().maxRSS / 1024,
};
console.log(JSON.stringify(res));
const jsonPath = arg('json', '');
if (jsonPath) writeFileSync(jsonPath, JSON.stringify(res, null, 1));

/** Interleaved rounds of one process per mode; medians over rounds and ratios to the DPO step. */
function compare(): void {
  const rounds = Number(arg('rounds', '2'));
  const modes = arg('modes', 'dpo,grpo,ppo').split(',');
  const bad = modes.filter((m) => !MODES.includes(m));
  if (bad.length) throw new Error(`--modes: unknown ${bad.join(', ')} (${MODES.join(', ')})`);
  const passOn: string[] = [];
  for (const k of ['rollouts', 'prompt', 'length', 'epochs', 'generations', 'micro', 'steps', 'warmup']) {
    const i = process.argv.indexOf(`--${k}`);
    if (i >= 0) passOn.push(`--${k}`, process.argv[i + 1]!);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'rl-step-'));
  const self = fileURLToPath(import.meta.url);
  const results: Record<string, Record<string, unknown>[]> = Object.fromEntries(modes.map((m) => [m, []]));
  const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
  console.error(`cpu ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}; uptime ${(uptime() / 3600).toFixed(1)} h; load average ${load()}`);
  try {
    for (let r = 0; r < rounds; r++) {
      for (const m of modes) {
        const json = join(tmp, `${m}-${r}.json`);
        const t0 = Date.now();
        const p = spawnSync(process.execPath, [self, m, configName!, threadsArg!, ...passOn, '--json', json], { stdio: ['ignore', 'ignore', 'inherit'] });
        if (p.status !== 0) throw new Error(`rl-step ${m} ${configName} exited with ${p.status ?? p.signal}`);
        const res = JSON.parse(readFileSync(json, 'utf8')) as Record<string, unknown>;
        res.load_after = load();
        results[m]!.push(res);
        console.error(`round ${r + 1} ${m}: step ${(res.step_s_median as number).toFixed(2)} s, peak RSS ${(res.peak_rss_MiB as number).toFixed(0)} MiB (process ${((Date.now() - t0) / 1000).toFixed(0)} s; load ${res.load_after as string})`);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const med = (v: number[]): number => {
    const s = [...v].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const pick = (m: string, f: (x: Record<string, unknown>) => number): number => med(results[m]!.map(f));
  const phaseOf = (k: string) => (x: Record<string, unknown>): number => (x.phase_s_median as Record<string, number>)[k]!;
  const first = results[modes[0]!]![0]!;
  const summary = {
    config: configName, threads: first.threads, cpu: first.cpu, kernels: first.kernels, kernel_path: first.kernel_path, rounds, uptime_h: uptime() / 3600, load_average_end: load(),
    rollouts: first.rollouts, prompt: first.prompt, length: first.length,
    modes: Object.fromEntries(modes.map((m) => [m, {
      step_s: pick(m, (x) => x.step_s_median as number),
      ...(results.dpo && m !== 'dpo' ? { step_vs_dpo: pick(m, (x) => x.step_s_median as number) / pick('dpo', (x) => x.step_s_median as number) } : {}),
      phase_s: Object.fromEntries(['generation', 'scoring', 'fwd_bwd', 'optimizer'].map((k) => [k, pick(m, phaseOf(k))])),
      generated_tok_per_s: pick(m, (x) => x.generated_tok_per_s as number),
      trained_tok_per_s: pick(m, (x) => x.trained_tok_per_s as number),
      peak_rss_MiB: Math.max(...results[m]!.map((x) => x.peak_rss_MiB as number)),
      rounds: results[m],
    }])),
  };
  console.log(JSON.stringify(summary, null, 1));
  const jsonPath = arg('json', '');
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify(summary, null, 1));
}
