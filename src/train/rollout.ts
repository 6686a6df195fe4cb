// The on-line engine PPO, GRPO and RLOO share: prompts, batched rollouts with the KV-cache
// generator, per-token completion log-probs (at the sampling temperature) laid out [rows, cols],
// and the update loop — per update one rollout, then `epochs` passes of shuffled mini-batches,
// each an optimizer step over `accum` micro-batches — with AdamW, gradient clipping, the LR
// schedule, metrics.jsonl, a progress bar, atomic checkpoints and bit-identical resume (weights,
// optimizer moments, prompt-sampler position and the RNG that seeds generation and shuffling).

import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import { BatchSampler } from '../data/batch.js';
import { readRecords } from '../data/readers.js';
import { formatLoc } from '../data/types.js';
import { encodePrompt } from '../data/tokenize.js';
import type { ChatMessage, Tokenizer } from '../io/tokenizer.js';
import { generateTokens } from '../models/generate.js';
import { createModel } from '../models/index.js';
import { cloneWeights } from '../io/weights.js';
import type { CausalLM } from '../models/model.js';
import { AdamW, clipGradNorm } from './optimizer.js';
import { learningRate, warmupSteps } from './schedule.js';
import { listCheckpoints, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { yieldToEventLoop, type LoopConfig } from './loop.js';
import { ProgressBar } from '../util/progress.js';
import { MetricWindow } from './metric-window.js';
import type { RewardFunction } from './rewards.js';

/** What `runGrpo` / `runPpo` take: a model, prompts, a config of the trainer's type, an output folder. */
export interface RlRunOptions<Config> {
  model: string;
  tokenizer?: string;
  prompts: string[];
  config: Config;
  outputDir: string;
  resume?: boolean | string;
  quiet?: boolean;
  stopAfterSteps?: number;
  onLog?: (rec: Record<string, number>) => void;
  /** Reward functions given directly (library use), instead of config.reward_funcs. */
  rewardFunctions?: RewardFunction[];
}

export interface Prompt {
  text: string;
  ids: number[];
  loc: string;
  /** The prompt as the file gave it: a string or chat messages. */
  source: string | ChatMessage[];
  /** Whether maxLength cut it (from the left). */
  truncated: boolean;
}

/**
 * Prompts from JSONL/JSON/Parquet: the `column` field as text (wrapped as a user turn when the
 * tokenizer has a chat template) or a list of chat messages (rendered with a generation prompt).
 * Preference data works too (its prompt column). Long prompts keep their last maxLength tokens.
 */
export async function loadPrompts(files: readonly string[], tok: Tokenizer, column: string, maxLength: number | null): Promise<Prompt[]> {
  const out: Prompt[] = [];
  const bad: string[] = [];
  for (const f of files) {
    for await (const rec of readRecords(f)) {
      const loc = formatLoc(rec.loc);
      if (rec.error !== undefined) {
        bad.push(`${loc}: ${rec.error}`);
        continue;
      }
      const v = typeof rec.value === 'string' ? rec.value : (rec.value as Record<string, unknown> | null)?.[column];
      let text: string;
      if (typeof v === 'string' && v.length > 0) {
        text = tok.chatTemplate === null ? v : tok.applyChatTemplate([{ role: 'user', content: v }], { addGenerationPrompt: true });
      } else if (Array.isArray(v) && v.length > 0 && v.every((m) => m && typeof m === 'object' && typeof m.role === 'string' && typeof m.content === 'string')) {
        if (tok.chatTemplate === null) {
          bad.push(`${loc}: ${column}: chat messages need a tokenizer with a chat template`);
          continue;
        }
        text = tok.applyChatTemplate(v as ChatMessage[], { addGenerationPrompt: true });
      } else {
        bad.push(`${loc}: ${column}: expected a non-empty string or a list of {role, content} messages, got ${v === undefined ? 'nothing' : JSON.stringify(v).slice(0, 60)}`);
        continue;
      }
      let ids = encodePrompt(tok, text);
      const truncated = maxLength !== null && ids.length > maxLength;
      if (truncated) ids = ids.slice(ids.length - maxLength);
      out.push({ text: typeof v === 'string' ? v : text, ids, loc, source: v as string | ChatMessage[], truncated });
    }
  }
  if (bad.length) throw new Error(`bad prompt rows (${bad.length}):\n${bad.slice(0, 20).join('\n')}${bad.length > 20 ? `\n… and ${bad.length - 20} more` : ''}`);
  if (out.length === 0) throw new Error(`no prompts in ${files.join(', ')}`);
  return out;
}

export interface Rollout {
  /** Prompt ids per row. */
  promptIds: number[][];
  /** Completion ids per row, the stop token included when generation stopped on it. */
  completionIds: number[][];
  /** Decoded completions (without the stop token). */
  texts: string[];
  /** Whether the row ended on a stop token. */
  stopped: boolean[];
  /** Longest completion (the cols of per-token arrays). */
  cols: number;
}

/** Samples one completion per prompt row (rows may repeat a prompt), seeded per call. */
export function sampleRollout(
  model: CausalLM, tok: Tokenizer, prompts: readonly (readonly number[])[],
  o: { maxNewTokens: number; temperature: number; topK: number; topP: number; seed: number; stopId: number | null },
): Rollout {
  const room = model.config.maxPositions - Math.max(...prompts.map((p) => p.length));
  if (room < 1) throw new Error(`rollout: a prompt of ${model.config.maxPositions - room} tokens leaves no room in the model's ${model.config.maxPositions} positions`);
  const g = T.noGrad(() => generateTokens(model, prompts, {
    maxNewTokens: Math.min(o.maxNewTokens, room), temperature: o.temperature, topK: o.topK, topP: o.topP,
    seed: o.seed, stopIds: o.stopId === null ? [] : [o.stopId], padId: tok.padId,
  }));
  const completionIds: number[][] = [], texts: string[] = [], stopped: boolean[] = [];
  g.tokens.forEach((toks, r) => {
    const p = prompts[r]!;
    const full = tok.decode([...p, ...toks], { skipSpecialTokens: true });
    const pt = tok.decode([...p], { skipSpecialTokens: true });
    texts.push(full.startsWith(pt) ? full.slice(pt.length) : tok.decode(toks, { skipSpecialTokens: true }));
    const stop = g.finish[r] === 'stop';
    stopped.push(stop);
    // generateTokens reports the stop token only through finish: put it back (it is a sampled action).
    completionIds.push(stop ? [...toks, o.stopId!] : [...toks]);
  });
  return { promptIds: prompts.map((p) => [...p]), completionIds, texts, stopped, cols: Math.max(1, ...completionIds.map((c) => c.length)) };
}

/**
 * Per-token log-probs of the completions without gradient, as plain numbers: every tensor the
 * forward pass makes (including the result) is released at once (tidy), not left to the garbage
 * collector — on long RL runs those dropped buffers otherwise pile up between collections.
 */
export function completionTokenLogprobValues(
  model: CausalLM, promptIds: readonly (readonly number[])[], completionIds: readonly (readonly number[])[],
  cols: number, padId: number, temperature: number,
): Float64Array {
  return T.noGrad(() => {
    let values: Float64Array | undefined;
    T.tidy(() => {
      const lp = completionTokenLogprobs(model, promptIds, completionIds, cols, padId, temperature);
      values = lp.values;
      return lp.tensor;
    }).dispose();
    return values!;
  });
}

/**
 * Per-token log-probs of completions under a model, at a sampling temperature: rows are
 * [prompt, completion] right-padded; returns the tape tensor ([rows·seq]) and the values laid out
 * [rows, cols] (0 past each completion) plus scatter(), which turns a [rows, cols] gradient into
 * the tensor's layout for T.backward.
 */
export function completionTokenLogprobs(
  model: CausalLM, promptIds: readonly (readonly number[])[], completionIds: readonly (readonly number[])[],
  cols: number, padId: number, temperature: number,
): { tensor: Tensor; values: Float64Array; scatter(g: ArrayLike<number>): Float32Array; block: { ids: Int32Array; batch: number; seq: number }; positions: Int32Array } {
  const R = promptIds.length;
  const seq = Math.max(...promptIds.map((p, r) => p.length + completionIds[r]!.length));
  if (seq > model.config.maxPositions) throw new RangeError(`a prompt + completion of ${seq} tokens exceeds the model's ${model.config.maxPositions} positions`);
  const ids = new Int32Array(R * seq).fill(padId);
  const targets = new Int32Array(R * seq).fill(-1);
  // positions[r·cols + t]: the flat index predicting completion token t of row r (−1 past its end).
  const positions = new Int32Array(R * cols).fill(-1);
  for (let r = 0; r < R; r++) {
    const p = promptIds[r]!, c = completionIds[r]!;
    ids.set(p, r * seq);
    ids.set(c, r * seq + p.length);
    for (let t = 0; t < c.length; t++) {
      const at = r * seq + p.length - 1 + t;
      targets[at] = c[t]!;
      positions[r * cols + t] = at;
    }
  }
  const block = { ids, batch: R, seq };
  const tensor = model.tokenLogprobs(block, targets, { temperature });
  const values = new Float64Array(R * cols);
  for (let i = 0; i < R * cols; i++) if (positions[i]! >= 0) values[i] = tensor.data[positions[i]!]!;
  return {
    tensor, values, block, positions,
    scatter: (g) => {
      const out = new Float32Array(R * seq);
      for (let i = 0; i < R * cols; i++) if (positions[i]! >= 0) out[positions[i]!] = g[i]!;
      return out;
    },
  };
}

/** Gathers rows of a [rows, cols] array. */
export function takeRows(a: ArrayLike<number>, rows: readonly number[], cols: number): Float64Array {
  const out = new Float64Array(rows.length * cols);
  rows.forEach((r, i) => {
    for (let t = 0; t < cols; t++) out[i * cols + t] = a[r * cols + t]!;
  });
  return out;
}

// ---------------------------------------------------------------- the update loop

export interface RlTask<R> {
  params: readonly Tensor[];
  numPrompts: number;
  /** Prompts drawn per update. */
  promptsPerUpdate: number;
  /** Samples, scores and prepares one batch (no tape); `rows` of it are then optimized. */
  rollout(promptIndices: readonly number[], seed: number): Promise<{ data: R; rows: number; metrics: Record<string, number>; tokens: number }>;
  /** Forward + backward of some rollout rows, gradients scaled by gradScale; returns metric values. */
  microBatch(data: R, rows: readonly number[], gradScale: number): Record<string, number>;
  saveFinal(dir: string): void;
}

export interface RlLoopOptions {
  loop: LoopConfig;
  /** Passes over each rollout (PPO num_ppo_epochs, GRPO num_iterations). */
  epochs: number;
  numMiniBatches: number;
  /** Rows per micro-batch (per_device_train_batch_size). */
  microBatchSize: number;
  /** Keys shown in the progress bar. */
  barKeys: readonly string[];
}

export interface RlLoopResult {
  steps: number;
  history: Record<string, number>[];
  stoppedBecause: string | null;
  warnings: string[];
}

/** Runs updates until max_steps (or epochs over the prompts); resumable bit-identically. */
export async function runRlLoop<R>(task: RlTask<R>, o: RlLoopOptions): Promise<RlLoopResult> {
  const { outputDir } = o.loop;
  if (outputDir === undefined) throw new Error('RL training needs an output directory');
  const cfg = { ...o.loop, outputDir };
  mkdirSync(cfg.outputDir, { recursive: true });
  const samplerOpts = { batchSize: task.promptsPerUpdate, seed: cfg.seed };
  let sampler = new BatchSampler(task.numPrompts, samplerOpts);
  const perEpoch = sampler.batchesPerEpoch();
  const totalSteps = cfg.maxSteps > 0 ? cfg.maxSteps : Math.max(1, Math.ceil(perEpoch * cfg.numTrainEpochs));
  const optimizerSteps = totalSteps * o.epochs * o.numMiniBatches;
  const schedule = { type: cfg.lrSchedulerType, baseLr: cfg.learningRate, totalSteps: optimizerSteps, warmupSteps: warmupSteps(optimizerSteps, cfg.warmupRatio, cfg.warmupSteps) };
  const opt = new AdamW(task.params, { beta1: cfg.adamBeta1, beta2: cfg.adamBeta2, eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay });
  let rng = new Rng(cfg.seed ^ 0x71e5);
  let step = 0;
  if (cfg.resume) {
    const dir = typeof cfg.resume === 'string' ? cfg.resume : listCheckpoints(cfg.outputDir).at(-1)?.dir;
    if (dir) {
      const state = loadCheckpoint(dir, task.params, opt);
      if (state.fingerprint !== cfg.fingerprint) {
        throw new Error(`resume from ${dir}: the checkpoint was made with different settings (model, prompts or options changed); start a new output directory or restore the settings`);
      }
      step = state.step;
      // Several optimizer steps per update: Adam's bias correction needs the true count.
      opt.step = typeof state.extra?.optimizerSteps === 'number' ? state.extra.optimizerSteps : step * o.epochs * o.numMiniBatches;
      sampler = new BatchSampler(task.numPrompts, samplerOpts, state.sampler);
      rng = new Rng(Uint32Array.from(state.rng));
      if (!cfg.quiet) process.stderr.write(`resumed from ${dir} at step ${step}\n`);
    } else if (typeof cfg.resume === 'string') {
      throw new Error(`resume: ${cfg.resume} is not a checkpoint`);
    }
  }
  const metricsPath = join(cfg.outputDir, 'metrics.jsonl');
  if (step === 0 && existsSync(metricsPath)) writeFileSync(metricsPath, '');
  const history: Record<string, number>[] = [];
  const bar = new ProgressBar('train', totalSteps, { unit: 'step', quiet: cfg.quiet }, step);
  const started = Date.now();
  let episodes = 0, processed = 0;
  // The logging window's and one update's metric sums (typed arrays: see metric-window.ts).
  const window = new MetricWindow(), stats = new MetricWindow();
  let windowSteps = 0, windowTokens = 0, windowStart = Date.now();
  let stoppedBecause: string | null = null;

  /**
   * One update: the rollout, then the epochs of mini-batches. Its own (short-lived) async frame
   * holds the rollout and the step's arrays: the loop's frame below lives all run long, in V8's
   * old generation, and whatever it holds across an await survives the scavenges of the next
   * step and is promoted (~2.7 KiB a step of garbage on a tiny PPO run, before this function).
   */
  const update = async (): Promise<{ rows: number; tokens: number; optStep: number }> => {
    const { indices } = sampler.next();
    const seed = rng.nextU32();
    const ro = await task.rollout(indices, seed);
    const N = ro.rows;
    const miniSize = Math.ceil(N / o.numMiniBatches);
    stats.clear();
    let nStats = 0, gradNormSum = 0, nOpt = 0;
    let optStep = step * o.epochs * o.numMiniBatches;
    for (let e = 0; e < o.epochs && !stoppedBecause; e++) {
      const perm = rng.shuffle(Array.from({ length: N }, (_, i) => i));
      for (let m = 0; m < o.numMiniBatches && !stoppedBecause; m++) {
        const mini = perm.slice(m * miniSize, Math.min(N, (m + 1) * miniSize));
        if (mini.length === 0) continue;
        const micros = Math.ceil(mini.length / o.microBatchSize);
        for (let k = 0; k < micros; k++) {
          const rows = mini.slice(k * o.microBatchSize, (k + 1) * o.microBatchSize);
          stats.addAll(task.microBatch(ro.data, rows, 1 / micros));
          nStats++;
        }
        const gn = clipGradNorm(task.params, cfg.maxGradNorm);
        const loss = stats.sum('loss') ?? 0;
        if (!Number.isFinite(gn) || !Number.isFinite(loss)) {
          T.zeroGrad(task.params);
          stoppedBecause = `step ${step + 1}: ${Number.isFinite(gn) ? `loss is ${loss}` : `gradient norm is ${gn}`}; the update was not applied and training stopped (last checkpoint intact). Lower learning_rate or check the rewards.`;
          break;
        }
        opt.update(learningRate(schedule, optStep++));
        T.zeroGrad(task.params);
        gradNormSum += gn;
        nOpt++;
      }
    }
    if (stoppedBecause) return { rows: N, tokens: ro.tokens, optStep };
    // The step's record goes straight into the window's sums (in the order the record listed them).
    // (A rollout metric and an update metric of the same name: the update's, as a record would keep.)
    for (const k in ro.metrics) {
      const s = stats.sum(k);
      window.add(k, s === undefined ? ro.metrics[k]! : s / Math.max(1, nStats));
    }
    stats.forEach((k, v) => {
      if (!(k in ro.metrics)) window.add(k, v / Math.max(1, nStats));
    });
    window.add('grad_norm', gradNormSum / Math.max(1, nOpt));
    if (!cfg.quiet) {
      const figures: Record<string, number> = {};
      for (const k of o.barKeys) {
        const s = stats.sum(k);
        const v = s === undefined ? ro.metrics[k] : s / Math.max(1, nStats);
        if (v !== undefined) figures[k.split('/').at(-1)!] = v;
      }
      bar.update(step + 1, figures);
    }
    return { rows: N, tokens: ro.tokens, optStep };
  };

  while (step < totalSteps) {
    const { rows: N, tokens, optStep } = await update();
    if (stoppedBecause) break;
    // One turn of the event loop per step, as the DPO/SFT loop does: without it the
    // FinalizationRegistry callbacks that account for tensors dropped without release() never run,
    // so the buffer pool's bookkeeping (and its working-set bound) grew all run long.
    await yieldToEventLoop();
    step++;
    processed++;
    episodes += N;
    windowSteps++;
    windowTokens += tokens;
    if (step % cfg.loggingSteps === 0 || step === totalSteps) {
      const out = window.record(windowSteps);
      const seconds = (Date.now() - windowStart) / 1000;
      out.learning_rate = learningRate(schedule, Math.max(0, optStep - 1));
      out.episode = step * N;
      out.eps = Math.round(episodes / Math.max(1e-9, (Date.now() - started) / 1000));
      out['tokens/s'] = seconds > 0 ? windowTokens / seconds : 0;
      out.epoch = step / perEpoch;
      out.step = step;
      history.push(out);
      appendFileSync(metricsPath, `${JSON.stringify(out)}\n`);
      cfg.onLog?.(out);
      window.clear();
      windowSteps = 0;
      windowTokens = 0;
      windowStart = Date.now();
    }
    if (cfg.saveSteps > 0 && step % cfg.saveSteps === 0 && step < totalSteps) {
      const state: TrainerState = {
        step, epoch: step / perEpoch, sampler: sampler.state(), rng: Array.from(rng.state()), fingerprint: cfg.fingerprint,
        extra: { optimizerSteps: opt.step },
      };
      saveCheckpoint(cfg.outputDir, task.params, opt, state, cfg.saveTotalLimit);
    }
    if (cfg.stopAfterSteps !== undefined && processed >= cfg.stopAfterSteps && step < totalSteps) {
      bar.finish();
      return { steps: step, history, stoppedBecause: 'stopAfterSteps', warnings: [] };
    }
  }
  bar.finish();
  if (stoppedBecause) {
    if (!cfg.quiet) process.stderr.write(`training stopped: ${stoppedBecause}\n`);
    return { steps: step, history, stoppedBecause, warnings: [] };
  }
  task.saveFinal(cfg.outputDir);
  return { steps: step, history, stoppedBecause: null, warnings: [] };
}

/**
 * The frozen reference policy: with LoRA the same model with adapters disabled (no second copy),
 * else a frozen copy of the starting weights. `run` evaluates f under it.
 */
export function frozenReference(model: CausalLM, lora: boolean, source: string): { run<X>(f: (ref: CausalLM) => X): X } {
  if (lora) {
    return {
      run: (f) => {
        model.ctx.adaptersEnabled = false;
        try {
          return f(model);
        } finally {
          model.ctx.adaptersEnabled = true;
        }
      },
    };
  }
  const ref = createModel(model.config, cloneWeights(model.exportWeights()), `${source} (reference copy)`);
  for (const p of ref.parameters().values()) p.requiresGrad = false;
  return { run: (f) => f(ref) };
}

/** Mean of an array. */
export function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return a.length ? s / a.length : 0;
}
