// The training loop shared by SFT and DPO: sampling, gradient accumulation, clipping, AdamW,
// learning-rate schedule, metrics (metrics.jsonl + progress bar), periodic evaluation, atomic
// checkpoints, exact resume, and watchdogs that stop or warn with an explanation.
//
// Determinism: for a given seed and thread count every step is bit-identical, including across
// an interruption and --resume (weights, optimizer moments, schedule position, sampler position,
// dropout RNG state, loss state and the open logging window are all checkpointed; metrics.jsonl is
// cut back to the checkpoint's step, so it ends up as an uninterrupted run's, tokens/s aside).

import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import { kernelPath } from '../tensor/backend.js';
import { trimFreeMemory } from '../tensor/allocator.js';
import { BatchSampler } from '../data/batch.js';
import { AdamW, clipGradNorm } from './optimizer.js';
import { learningRate, warmupSteps, type ScheduleType } from './schedule.js';
import { listCheckpoints, loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { ProgressBar } from '../util/progress.js';
import { writeFileAtomic } from '../util/fs.js';

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
  /** Evaluation metrics (names without the eval/ prefix) after `step` optimizer steps, or null when there is no eval set. */
  evaluate?(step: number): Record<string, number> | null;
  /** State carried between steps that must be checkpointed (e.g. bco_pair's running mean). */
  lossState?: { get(): unknown; set(s: unknown): void };
  /** Called after every optimizer step with the new step count (e.g. TR-DPO's reference sync). */
  afterStep?(step: number): void;
  /** Files of task state that must be checkpointed (written into the checkpoint before it is complete). */
  extraState?: { save(dir: string): void; load(dir: string): void };
  /** Saves the final model (Hugging Face directory or adapter) into dir (when the run has an output directory). */
  saveFinal?(dir: string): void | Promise<void>;
}

/** What one optimizer step did: sent after every step, whatever logging_steps is. */
export interface StepRecord {
  /** Optimizer steps done so far (1 after the first). */
  step: number;
  /** Steps the run will take in all. */
  totalSteps: number;
  /** Fractional epoch (step / steps per epoch). */
  epoch: number;
  /**
   * This step's metrics under TRL's log names: `loss`, `grad_norm`, `learning_rate`, and for DPO
   * `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`, `rewards/margins`, `logps/*`, `logits/*`.
   */
  metrics: Record<string, number>;
  /** Non-padding tokens the policy processed in this step. */
  tokens: number;
  /** Wall-clock seconds the step took. */
  seconds: number;
}

/** A checkpoint written during training. */
export interface CheckpointRecord {
  step: number;
  /** The checkpoint directory (output directory/checkpoint-N). */
  dir: string;
}

/**
 * Handlers for what a training run reports. Each may return a promise: the run waits for it
 * before going on (so a handler can write, upload or await user input between steps).
 */
export interface TrainingEvents {
  /** After every optimizer step, independent of logging_steps. */
  step?(record: StepRecord): void | Promise<void>;
  /** Every logging_steps steps (and the last): the record written to metrics.jsonl, averaged over the window. */
  log?(record: Record<string, number>): void | Promise<void>;
  /** After each evaluation: metric names prefixed with `eval/`, plus `step` and `epoch`. */
  eval?(record: Record<string, number>): void | Promise<void>;
  /** After each checkpoint (save_steps). */
  checkpoint?(record: CheckpointRecord): void | Promise<void>;
  /** A watchdog's explanation (over-optimization, falling chosen log-probs, ...), once per message. */
  warning?(message: string): void | Promise<void>;
}

/**
 * Evaluation metrics: the eval set in batches of `batchSize` (indices 0..n−1 in order), each
 * batch's sums added up, then divided by the number of examples. null when n is 0.
 */
export function evalMeans(n: number, batchSize: number, run: (idx: number[]) => MicroResult): Record<string, number> | null {
  if (n === 0) return null;
  const total: Record<string, number> = {};
  let count = 0;
  for (let i = 0; i < n; i += batchSize) {
    const r = run(Array.from({ length: Math.min(batchSize, n - i) }, (_, j) => i + j));
    for (const [k, v] of Object.entries(r.sums)) total[k] = (total[k] ?? 0) + v;
    count += r.count;
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(total)) out[k] = v / count;
  return out;
}

/** Waits one turn of the event loop (timers and I/O run), then honours an abort; gives free C heap pages back (at most once a second). */
export async function yieldToEventLoop(signal?: AbortSignal): Promise<void> {
  // A step boundary: also the time to give the C heap's free pages back (throttled).
  trimFreeMemory();
  await new Promise<void>((resolve) => setImmediate(resolve));
  signal?.throwIfAborted();
}

export interface LoopConfig {
  /** Where metrics.jsonl, checkpoints and the final model go; without one nothing is written. */
  outputDir?: string | undefined;
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
  stopAfterSteps?: number | undefined;
  quiet?: boolean | undefined;
  /** Called with every logged record (the same objects as metrics.jsonl lines). */
  onLog?: ((record: Record<string, number>) => void) | undefined;
  /** Handlers for steps, logs, evaluations, checkpoints and warnings (awaited). */
  events?: TrainingEvents | undefined;
  /** Aborting stops the run between two micro-batches: the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Watchdog hooks: extra checks on each logged training record; return warnings. */
  watch?: (history: readonly Record<string, number>[]) => string[];
  /** Watchdog hooks on each evaluation record (e.g. the quality of samples generated during eval). */
  watchEval?: (evalHistory: readonly Record<string, number>[]) => string[];
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

/**
 * Metric sums of the steps since the last logged record (checkpointed so a resume logs the same
 * records). Not tokens/s: that is tokens over wall time in this process.
 */
interface LogWindow {
  sums: Record<string, number>;
  count: number;
  steps: number;
}

/** The backend and GEMM micro-kernel, e.g. "native/avx512" (checkpointed; a resume on others warns). */
function kernelsOf(): string {
  const k = kernelPath();
  return k.gemmKernel ? `${k.backend}/${k.gemmKernel}` : k.backend;
}

/**
 * Cuts metrics.jsonl back to the records of steps ≤ step (atomically: a new file renamed over it),
 * so the steps between a checkpoint and a kill are not logged twice after --resume. A torn last
 * line (killed mid-write) is dropped. Returns the records kept.
 */
export function truncateMetrics(path: string, step: number): Record<string, number>[] {
  if (!existsSync(path)) return [];
  const kept: Record<string, number>[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let rec: Record<string, number>;
    try {
      rec = JSON.parse(line) as Record<string, number>;
    } catch {
      continue;
    }
    if (typeof rec.step === 'number' && rec.step <= step) kept.push(rec);
  }
  writeFileAtomic(path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return kept;
}

/**
 * Runs the optimizer steps. Between micro-batches it yields to the event loop (timers, I/O and
 * other callbacks run; a step of a small model takes milliseconds) and checks the abort signal.
 */
export async function runTrainingLoop(task: TrainTask, cfg: LoopConfig): Promise<LoopResult> {
  cfg.signal?.throwIfAborted();
  const outputDir = cfg.outputDir;
  if (outputDir !== undefined) mkdirSync(outputDir, { recursive: true });
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
  let restoredWindow: LogWindow | undefined;
  const warnings: string[] = [];
  const metricsPath = outputDir !== undefined ? join(outputDir, 'metrics.jsonl') : null;
  const history: Record<string, number>[] = [];
  const evalHistory: Record<string, number>[] = [];

  // ---- resume ----
  if (cfg.resume) {
    const dir = typeof cfg.resume === 'string' ? cfg.resume : outputDir !== undefined ? listCheckpoints(outputDir).at(-1)?.dir : undefined;
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
      restoredWindow = state.extra?.logWindow as LogWindow | undefined;
      // The log continues from the checkpoint: later records (written before the kill) go.
      for (const rec of metricsPath !== null ? truncateMetrics(metricsPath, step) : []) (Object.keys(rec).some((k) => k.startsWith('eval/')) ? evalHistory : history).push(rec);
      // Threads and kernels are not in the fingerprint (they may change), but the last bits can depend on them.
      const { threads } = kernelPath();
      if (state.threads !== undefined && state.threads !== threads) {
        warnings.push(
          `resume: the checkpoint was written with ${state.threads} kernel threads, this run uses ${threads}; ` +
          `the continued run may differ in the last bits from an uninterrupted one (set DPO_NUM_THREADS=${state.threads} or num_threads: ${state.threads} for bit-identity)`,
        );
      }
      if (state.kernels !== undefined && state.kernels !== kernelsOf()) {
        warnings.push(
          `resume: the checkpoint was written with kernels ${state.kernels}, this run uses ${kernelsOf()}; ` +
          'the continued run may differ in the last bits from an uninterrupted one (DPO_BACKEND and DPO_GEMM_KERNEL choose them)',
        );
      }
      if (!cfg.quiet) {
        process.stderr.write(`resumed from ${dir} at step ${step}\n`);
        for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
      }
    } else if (typeof cfg.resume === 'string') {
      throw new Error(`resume: ${cfg.resume} is not a checkpoint`);
    }
  }

  if (step === 0 && metricsPath !== null && existsSync(metricsPath)) writeFileSync(metricsPath, '');
  const bar = new ProgressBar('train', totalSteps, { unit: 'step', quiet: cfg.quiet }, step);
  const log = (rec: Record<string, number>): void => {
    if (metricsPath !== null) appendFileSync(metricsPath, `${JSON.stringify(rec)}\n`);
    cfg.onLog?.(rec);
  };
  const events = cfg.events ?? {};

  let window: Record<string, number> = { ...restoredWindow?.sums };
  let windowCount = restoredWindow?.count ?? 0, windowSteps = restoredWindow?.steps ?? 0, windowTokens = 0, windowStart = Date.now();
  let lastCheckpoint: string | null = null;
  let stoppedBecause: string | null = null;
  const stateOf = (): TrainerState => ({
    step,
    epoch: step / stepsPerEpoch,
    sampler: sampler.state(),
    rng: Array.from(rng.state()),
    lossState: task.lossState?.get(),
    fingerprint: cfg.fingerprint,
    threads: kernelPath().threads,
    kernels: kernelsOf(),
    extra: { logWindow: { sums: { ...window }, count: windowCount, steps: windowSteps } satisfies LogWindow },
  });

  const warn = async (ws: string[]): Promise<void> => {
    for (const w of ws) {
      if (!warnings.includes(w)) {
        warnings.push(w);
        bar.log(`warning: ${w}`);
        await events.warning?.(w);
      }
    }
  };
  const runEval = async (): Promise<void> => {
    if (!task.evaluate) return;
    const m = T.noGrad(() => task.evaluate!(step));
    if (!m) return;
    const rec: Record<string, number> = { step, epoch: step / stepsPerEpoch };
    for (const [k, v] of Object.entries(m)) rec[`eval/${k}`] = v;
    evalHistory.push(rec);
    log(rec);
    await events.eval?.(rec);
    bar.log(`eval step ${step}: ${Object.entries(m).filter(([k]) => ['loss', 'rewards/accuracies', 'rewards/margins', 'samples/perplexity_ratio'].includes(k)).map(([k, v]) => `${k} ${v.toFixed(4)}`).join('  ')}`);
    if (cfg.watchEval) await warn(cfg.watchEval(evalHistory));
  };

  let processedThisRun = 0;
  while (step < totalSteps) {
    // ---- one optimizer step ----
    const sums: Record<string, number> = {};
    let count = 0, tokens = 0;
    const stepStart = performance.now();
    for (let a = 0; a < cfg.gradientAccumulationSteps; a++) {
      const { indices } = sampler.next();
      const r = task.trainMicroBatch(indices, 1 / cfg.gradientAccumulationSteps, rng);
      for (const [k, v] of Object.entries(r.sums)) sums[k] = (sums[k] ?? 0) + v;
      count += r.count;
      tokens += r.tokens;
      try {
        await yieldToEventLoop(cfg.signal);
      } catch (e) {
        // Aborted mid-step: drop the partial gradients, keep the weights of the last full step.
        T.zeroGrad(task.params);
        bar.finish();
        throw e;
      }
    }
    const gradNorm = clipGradNorm(task.params, cfg.maxGradNorm);
    const lossValue = (sums.loss ?? 0) / Math.max(1, count);
    if (!Number.isFinite(lossValue) || !Number.isFinite(gradNorm)) {
      T.zeroGrad(task.params);
      stoppedBecause =
        `step ${step + 1}: ${!Number.isFinite(lossValue) ? `loss is ${lossValue}` : `gradient norm is ${gradNorm}`}. ` +
        'The update was not applied and training stopped; the last good checkpoint ' +
        `(${lastCheckpoint ?? (outputDir !== undefined ? listCheckpoints(outputDir).at(-1)?.dir : undefined) ?? 'none saved yet'}) is intact. ` +
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
    if (events.step) {
      const metrics: Record<string, number> = {};
      for (const [k, v] of Object.entries(sums)) metrics[k] = v / Math.max(1, count);
      metrics.grad_norm = gradNorm;
      metrics.learning_rate = lr;
      await events.step({ step, totalSteps, epoch: step / stepsPerEpoch, metrics, tokens, seconds: (performance.now() - stepStart) / 1000 });
    }
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
      await events.log?.(rec);
      if (cfg.watch) await warn(cfg.watch(history));
      window = {};
      windowCount = 0;
      windowSteps = 0;
      windowTokens = 0;
      windowStart = Date.now();
    }
    if (cfg.evalSteps > 0 && step % cfg.evalSteps === 0 && step < totalSteps) await runEval();
    if (outputDir !== undefined && cfg.saveSteps > 0 && step % cfg.saveSteps === 0 && step < totalSteps) {
      lastCheckpoint = saveCheckpoint(outputDir, task.params, opt, stateOf(), cfg.saveTotalLimit, task.extraState?.save);
      await events.checkpoint?.({ step, dir: lastCheckpoint });
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
  await runEval();
  if (outputDir !== undefined) await task.saveFinal?.(outputDir);
  return { steps: step, history, evalHistory, stoppedBecause, warnings };
}
