// The training loop shared by SFT and DPO: sampling, gradient accumulation, clipping, AdamW,
// learning-rate schedule, metrics (metrics.jsonl + progress bar), periodic evaluation, atomic
// checkpoints, exact resume, and watchdogs that stop or warn with an explanation.
//
// Determinism: for a given seed and thread count every step is bit-identical, including across
// an interruption and --resume (weights, optimizer moments, schedule position, sampler position
// and dropout RNG state are all checkpointed).

import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import { BatchSampler } from '../data/batch.js';
import { AdamW, clipGradNorm } from './optimizer.js';
import { learningRate, warmupSteps, type ScheduleType } from './schedule.js';
import { listCheckpoints, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { ProgressBar } from './progress.js';

/** One micro-batch's contribution: metric sums (divided by `count` when logged) and sizes. */
export interface MicroResult {
  /** Sums over the examples of the micro-batch, e.g. {loss: Σ loss_i, 'rewards/chosen': Σ r_i}. */
  sums: Record<string, number>;
  /** Examples (pairs or rows) in the micro-batch. */
  count: number;
  /** Tokens processed by the policy (non-padding), for tokens/s. */
  tokens: number;
}

export interface TrainTask {
  /** Number of training examples (pairs for DPO). */
  numExamples: number;
  /** Per-example lengths, for length-grouped sampling. */
  lengths?: readonly number[];
  /** Trainable parameters (named). */
  params: readonly Tensor[];
  /**
   * Forward + backward of one micro-batch (example indices). Gradients must be scaled by
   * `gradScale` (1 / accumulation steps) so that accumulated gradients are the step's mean.
   */
  trainMicroBatch(indices: readonly number[], gradScale: number, rng: Rng): MicroResult;
  /** Evaluation metrics (names without the eval/ prefix), or null when there is no eval set. */
  evaluate?(): Record<string, number> | null;
  /** State carried between steps that must be checkpointed (e.g. bco_pair's running mean). */
  lossState?: { get(): unknown; set(s: unknown): void };
  /** Called after every optimizer step with the new step count (e.g. TR-DPO's reference sync). */
  afterStep?(step: number): void;
  /** Files of task state that must be checkpointed (written into the checkpoint before it is complete). */
  extraState?: { save(dir: string): void; load(dir: string): void };
  /** Saves the final model (Hugging Face directory or adapter) into dir. */
  saveFinal(dir: string): void;
}

export interface LoopConfig {
  outputDir: string;
  learningRate: number;
  lrSchedulerType: ScheduleType;
  warmupRatio: number;
  warmupSteps: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  maxGradNorm: number;
  batchSize: number;
  gradientAccumulationSteps: number;
  numTrainEpochs: number;
  /** > 0 overrides epochs. */
  maxSteps: number;
  loggingSteps: number;
  /** 0 = no periodic evaluation (still evaluated at the end when an eval set exists). */
  evalSteps: number;
  /** 0 = only the final model. */
  saveSteps: number;
  saveTotalLimit: number;
  seed: number;
  /** Seed of the data sampler (TRL data_seed); default seed. */
  dataSeed?: number;
  groupByLength: boolean;
  /** Resume from the newest checkpoint in outputDir (true), a given checkpoint dir, or not. */
  resume: boolean | string;
  /** Fingerprint of the settings; a resume with different settings is refused. */
  fingerprint: string;
  /** Stop after this many optimizer steps in this process (tests use it to simulate a kill). */
  stopAfterSteps?: number;
  quiet?: boolean;
  /** Called with every logged record (the same objects as metrics.jsonl lines). */
  onLog?: (record: Record<string, number>) => void;
  /** Watchdog hooks: extra checks on each logged training record; return warnings. */
  watch?: (history: readonly Record<string, number>[]) => string[];
}

export interface LoopResult {
  steps: number;
  history: Record<string, number>[];
  evalHistory: Record<string, number>[];
  /** Set when a watchdog stopped the run. */
  stoppedBecause: string | null;
  warnings: string[];
}

export class TrainingStopped extends Error {}

export function runTrainingLoop(task: TrainTask, cfg: LoopConfig): LoopResult {
  mkdirSync(cfg.outputDir, { recursive: true });
  const sampler0 = new BatchSampler(task.numExamples, {
    batchSize: cfg.batchSize, seed: cfg.dataSeed ?? cfg.seed, lengths: cfg.groupByLength ? task.lengths : undefined,
  });
  const batchesPerEpoch = sampler0.batchesPerEpoch();
  const stepsPerEpoch = Math.max(1, Math.ceil(batchesPerEpoch / cfg.gradientAccumulationSteps));
  const totalSteps = cfg.maxSteps > 0 ? cfg.maxSteps : Math.ceil(stepsPerEpoch * cfg.numTrainEpochs);
  const schedule = {
    type: cfg.lrSchedulerType, baseLr: cfg.learningRate, totalSteps,
    warmupSteps: warmupSteps(totalSteps, cfg.warmupRatio, cfg.warmupSteps),
  };
  const opt = new AdamW(task.params, { beta1: cfg.adamBeta1, beta2: cfg.adamBeta2, eps: cfg.adamEpsilon, weightDecay: cfg.weightDecay });
  let rng = new Rng(cfg.seed ^ 0x5eed);
  let sampler = sampler0;
  let step = 0;

  // ---- resume ----
  if (cfg.resume) {
    const dir = typeof cfg.resume === 'string' ? cfg.resume : listCheckpoints(cfg.outputDir).at(-1)?.dir;
    if (dir) {
      const state = loadCheckpoint(dir, task.params, opt);
      if (state.fingerprint !== cfg.fingerprint) {
        throw new Error(`resume from ${dir}: the checkpoint was made with different settings (model, data or training options changed); start a new output directory or restore the settings`);
      }
      step = state.step;
      sampler = new BatchSampler(task.numExamples, {
        batchSize: cfg.batchSize, seed: cfg.dataSeed ?? cfg.seed, lengths: cfg.groupByLength ? task.lengths : undefined,
      }, state.sampler);
      rng = new Rng(Uint32Array.from(state.rng));
      if (state.lossState !== undefined && task.lossState) task.lossState.set(state.lossState);
      task.extraState?.load(dir);
      if (!cfg.quiet) process.stderr.write(`resumed from ${dir} at step ${step}\n`);
    } else if (typeof cfg.resume === 'string') {
      throw new Error(`resume: ${cfg.resume} is not a checkpoint`);
    }
  }

  const metricsPath = join(cfg.outputDir, 'metrics.jsonl');
  if (step === 0 && existsSync(metricsPath)) writeFileSync(metricsPath, '');
  const history: Record<string, number>[] = [];
  const evalHistory: Record<string, number>[] = [];
  const warnings: string[] = [];
  const bar = new ProgressBar('train', totalSteps, { unit: 'step', quiet: cfg.quiet }, step);
  const log = (rec: Record<string, number>): void => {
    appendFileSync(metricsPath, `${JSON.stringify(rec)}\n`);
    cfg.onLog?.(rec);
  };

  let window: Record<string, number> = {};
  let windowCount = 0, windowSteps = 0, windowTokens = 0, windowStart = Date.now();
  let lastCheckpoint: string | null = null;
  let stoppedBecause: string | null = null;
  const stateOf = (): TrainerState => ({
    step,
    epoch: step / stepsPerEpoch,
    sampler: sampler.state(),
    rng: Array.from(rng.state()),
    lossState: task.lossState?.get(),
    fingerprint: cfg.fingerprint,
  });

  const runEval = (): void => {
    if (!task.evaluate) return;
    const m = T.noGrad(() => task.evaluate!());
    if (!m) return;
    const rec: Record<string, number> = { step, epoch: step / stepsPerEpoch };
    for (const [k, v] of Object.entries(m)) rec[`eval/${k}`] = v;
    evalHistory.push(rec);
    log(rec);
    bar.log(`eval step ${step}: ${Object.entries(m).filter(([k]) => ['loss', 'rewards/accuracies', 'rewards/margins'].includes(k)).map(([k, v]) => `${k} ${v.toFixed(4)}`).join('  ')}`);
  };

  let processedThisRun = 0;
  while (step < totalSteps) {
    // ---- one optimizer step ----
    const sums: Record<string, number> = {};
    let count = 0, tokens = 0;
    for (let a = 0; a < cfg.gradientAccumulationSteps; a++) {
      const { indices } = sampler.next();
      const r = task.trainMicroBatch(indices, 1 / cfg.gradientAccumulationSteps, rng);
      for (const [k, v] of Object.entries(r.sums)) sums[k] = (sums[k] ?? 0) + v;
      count += r.count;
      tokens += r.tokens;
    }
    const gradNorm = clipGradNorm(task.params, cfg.maxGradNorm);
    const lossValue = (sums.loss ?? 0) / Math.max(1, count);
    if (!Number.isFinite(lossValue) || !Number.isFinite(gradNorm)) {
      T.zeroGrad(task.params);
      stoppedBecause =
        `step ${step + 1}: ${!Number.isFinite(lossValue) ? `loss is ${lossValue}` : `gradient norm is ${gradNorm}`}. ` +
        'The update was not applied and training stopped; the last good checkpoint ' +
        `(${lastCheckpoint ?? listCheckpoints(cfg.outputDir).at(-1)?.dir ?? 'none saved yet'}) is intact. ` +
        'Usual causes: a learning rate too high, a beta too small for this loss, or a bad example; ' +
        'lower learning_rate, set max_grad_norm, or check the data with `dpo data check`.';
      break;
    }
    const lr = learningRate(schedule, step);
    opt.update(lr);
    T.zeroGrad(task.params);
    step++;
    processedThisRun++;
    task.afterStep?.(step);

    // ---- metrics ----
    for (const [k, v] of Object.entries(sums)) window[k] = (window[k] ?? 0) + v;
    window.grad_norm = (window.grad_norm ?? 0) + gradNorm;
    windowCount += count;
    windowSteps++;
    windowTokens += tokens;
    bar.update(step, { loss: lossValue, ...(sums['rewards/accuracies'] !== undefined ? { acc: sums['rewards/accuracies'] / count } : {}) });
    if (step % cfg.loggingSteps === 0 || step === totalSteps) {
      const seconds = (Date.now() - windowStart) / 1000;
      const rec: Record<string, number> = {};
      for (const [k, v] of Object.entries(window)) rec[k] = k === 'grad_norm' ? v / windowSteps : v / Math.max(1, windowCount);
      rec.learning_rate = lr;
      rec.epoch = step / stepsPerEpoch;
      rec['tokens/s'] = seconds > 0 ? windowTokens / seconds : 0;
      rec.step = step;
      history.push(rec);
      log(rec);
      if (cfg.watch) {
        for (const w of cfg.watch(history)) {
          if (!warnings.includes(w)) {
            warnings.push(w);
            bar.log(`warning: ${w}`);
          }
        }
      }
      window = {};
      windowCount = 0;
      windowSteps = 0;
      windowTokens = 0;
      windowStart = Date.now();
    }
    if (cfg.evalSteps > 0 && step % cfg.evalSteps === 0 && step < totalSteps) runEval();
    if (cfg.saveSteps > 0 && step % cfg.saveSteps === 0 && step < totalSteps) {
      lastCheckpoint = saveCheckpoint(cfg.outputDir, task.params, opt, stateOf(), cfg.saveTotalLimit, task.extraState?.save);
    }
    if (cfg.stopAfterSteps !== undefined && processedThisRun >= cfg.stopAfterSteps && step < totalSteps) {
      bar.finish();
      return { steps: step, history, evalHistory, stoppedBecause: 'stopAfterSteps', warnings };
    }
  }
  bar.finish();
  if (stoppedBecause) {
    if (!cfg.quiet) process.stderr.write(`training stopped: ${stoppedBecause}\n`);
    return { steps: step, history, evalHistory, stoppedBecause, warnings };
  }
  runEval();
  task.saveFinal(cfg.outputDir);
  return { steps: step, history, evalHistory, stoppedBecause, warnings };
}
