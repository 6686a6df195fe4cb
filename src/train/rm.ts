// Reward-model training (`dpo rm`, TRL RewardTrainer semantics) and scoring (`dpo rm score`):
// a sequence-classification model (causal LM body + scalar `score` head at the last non-padding
// token) trained on preference pairs with the Bradley–Terry loss
//   −log σ(r_chosen − r_rejected − margin) [+ center_rewards_coefficient·mean((r_c + r_r)²)],
// on the same data formats, audit, training loop, checkpoints and LoRA as `dpo train`. The result
// is a Hugging Face *ForSequenceClassification directory (LoRA adapters merged into it).

import { createHash } from 'node:crypto';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { kernels } from '../tensor/backend.js';
import { rewardModelLoss } from '../losses/rl.js';
import { pairwiseAccuracy } from '../losses/reward.js';
import { collatePreference, type PreferenceBatch } from '../data/batch.js';
import { preparePreferenceData, type PreparedPreferenceData } from '../data/prepare.js';
import { readRecords } from '../data/readers.js';
import type { TokenizedPair } from '../data/tokenize.js';
import { formatLoc } from '../data/types.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { loadTokenizerFor } from '../io/load-model.js';
import type { SequenceClassifier } from '../models/reward.js';
import { loadSequenceClassifier, saveSequenceClassifier } from '../io/reward-dir.js';
import { attachLora, type LoraSettings } from '../nn/lora.js';
import { defaultLoraTargets } from '../models/architectures.js';
import { preferencePrepareOptions, splitEval } from './dpo.js';
import { evalMeans, runTrainingLoop, type LoopResult, type MicroResult } from './loop.js';
import type { RewardConfig } from './rl-config.js';
import { copyTokenizerFiles, fingerprintSettings, loopConfig } from './setup.js';
import { ProgressBar } from '../util/progress.js';

export interface RmRunOptions {
  /** Starting point: an SFT/base causal LM (a fresh head) or a sequence-classification directory. */
  model: string;
  tokenizer?: string;
  data: string[];
  evalData?: string[];
  config: RewardConfig;
  outputDir: string;
  resume?: boolean | string;
  quiet?: boolean;
  stopAfterSteps?: number;
  onLog?: (rec: Record<string, number>) => void;
}

export interface RmRunResult extends LoopResult {
  trainPairs: number;
  evalPairs: number;
}

/**
 * Per-pair margins from a column of the raw records (by source location), or null when no record
 * has the column. A record that has it must hold a finite number.
 */
export async function readMargins(files: readonly string[], pairs: readonly TokenizedPair[], column: string): Promise<Float64Array | null> {
  const byLoc = new Map<string, number>();
  const bad: string[] = [];
  for (const f of files) {
    for await (const rec of readRecords(f)) {
      if (rec.error !== undefined || !rec.value || typeof rec.value !== 'object') continue;
      const v = (rec.value as Record<string, unknown>)[column];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v)) bad.push(`${formatLoc(rec.loc)}: ${column}: expected a finite number, got ${JSON.stringify(v)}`);
      else byLoc.set(formatLoc(rec.loc), v);
    }
  }
  if (bad.length) throw new Error(`bad ${column} values:\n${bad.slice(0, 20).join('\n')}${bad.length > 20 ? `\n… and ${bad.length - 20} more` : ''}`);
  if (byLoc.size === 0) return null;
  return Float64Array.from(pairs, (p) => {
    const m = byLoc.get(formatLoc(p.loc));
    if (m === undefined) throw new Error(`${formatLoc(p.loc)}: ${column}: missing (other rows have a margin; give every row one, or set margin_column: null)`);
    return m;
  });
}

/** Rewards of a preference batch's rows: [2·pairs] (chosen rows first), on the tape when grad is enabled. */
export function batchRewards(rm: SequenceClassifier, batch: PreferenceBatch): Tensor {
  return rm.rewards(batch.inputIds, 2 * batch.pairs, batch.seqLen);
}

/** Loads the reward model to train: tokenizer, classifier (fresh head or trained), LoRA. */
async function loadTrainableRm(modelPath: string, tokenizerPath: string | undefined, cfg: RewardConfig): Promise<{
  rm: SequenceClassifier; tokenizer: Tokenizer; lora: LoraSettings | null; source: ReturnType<typeof loadSequenceClassifier>['loaded'];
}> {
  if (cfg.num_threads) kernels().setNumThreads(cfg.num_threads);
  const tokenizer = await loadTokenizerFor(modelPath, tokenizerPath);
  const { model: rm, loaded } = loadSequenceClassifier(modelPath, { padTokenId: tokenizer.padId, seed: cfg.seed });
  if (tokenizer.vocabSize > rm.config.vocabSize) throw new Error(`model ${modelPath}: tokenizer has ${tokenizer.vocabSize} tokens but the model only ${rm.config.vocabSize}`);
  let lora: LoraSettings | null = null;
  if (cfg.use_peft) {
    lora = {
      r: cfg.lora_r, alpha: cfg.lora_alpha, dropout: cfg.lora_dropout,
      targetModules: cfg.lora_target_modules ?? defaultLoraTargets(rm.config.architecture),
    };
    for (const p of rm.body.parameters().values()) p.requiresGrad = false;
    attachLora(rm.body.linears(), lora, cfg.seed);
    rm.score.requiresGrad = true; // the head always trains (PEFT's modules_to_save ["score"])
  }
  return { rm, tokenizer, lora, source: loaded };
}

export async function runRewardModel(opts: RmRunOptions): Promise<RmRunResult> {
  const cfg = opts.config;
  const { rm, tokenizer, lora, source } = await loadTrainableRm(opts.model, opts.tokenizer, cfg);
  const params = rm.trainableParameters();
  const prep = (files: string[]): Promise<PreparedPreferenceData> => preparePreferenceData(files, tokenizer, preferencePrepareOptions(cfg));
  const train = await prep(opts.data);
  const trainMargins = cfg.margin_column ? await readMargins(opts.data, train.pairs, cfg.margin_column) : null;
  let trainPairs = train.pairs;
  let margins = trainMargins;
  let evalPairs: TokenizedPair[] = [];
  let evalMargins: Float64Array | null = null;
  if (opts.evalData && opts.evalData.length > 0) {
    evalPairs = (await prep(opts.evalData)).pairs;
    evalMargins = cfg.margin_column ? await readMargins(opts.evalData, evalPairs, cfg.margin_column) : null;
  } else if (cfg.eval_split > 0 && trainPairs.length > 1) {
    const s = splitEval(trainPairs.length, cfg.eval_split, cfg.seed);
    evalPairs = s.eval.map((i) => trainPairs[i]!);
    evalMargins = trainMargins ? Float64Array.from(s.eval, (i) => trainMargins[i]!) : null;
    margins = trainMargins ? Float64Array.from(s.train, (i) => trainMargins[i]!) : null;
    trainPairs = s.train.map((i) => trainPairs[i]!);
  }
  if (trainPairs.length === 0) throw new Error(`no usable training pairs in ${opts.data.join(', ')}`);
  if (!opts.quiet) {
    const t = train.tokenize;
    process.stderr.write(
      `data: ${trainPairs.length} training pairs${evalPairs.length ? `, ${evalPairs.length} eval pairs` : ''} (format ${train.format})` +
      `${margins ? ', with margins' : ''}; ${t.truncatedRows} truncated, ${t.dropped + train.load.bad} dropped\n`,
    );
  }
  const padId = rm.padTokenId;
  const padToMultipleOf = cfg.pad_to_multiple_of ?? undefined;

  const runBatch = (idx: readonly number[], pairs: readonly TokenizedPair[], m: Float64Array | null, gradScale: number | null): MicroResult => {
    const batch = collatePreference(idx.map((i) => pairs[i]!), { padId, padToMultipleOf });
    const P = batch.pairs;
    const r = batchRewards(rm, batch);
    const rv = Float64Array.from(r.data);
    let tokens = 0;
    for (let i = 0; i < 2 * P; i++) tokens += batch.lengths[i]!;
    if (!rv.every(Number.isFinite)) return { sums: { loss: NaN }, count: P, tokens };
    const rc = rv.subarray(0, P), rr = rv.subarray(P);
    const res = rewardModelLoss(rc, rr, {
      margin: m ? Float64Array.from(idx, (i) => m[i]!) : null,
      centerRewardsCoefficient: cfg.center_rewards_coefficient,
    });
    if (gradScale !== null) {
      const g = new Float32Array(2 * P);
      for (let i = 0; i < P; i++) {
        g[i] = res.gradChosen[i]! * gradScale;
        g[P + i] = res.gradRejected[i]! * gradScale;
      }
      T.backward(r, g, { releaseRoot: true });
    } else T.disposeWithBase(r);
    let sc = 0, sr = 0;
    for (let i = 0; i < P; i++) {
      sc += rc[i]!;
      sr += rr[i]!;
    }
    return {
      sums: {
        loss: res.loss * P, accuracy: res.accuracy * P, margin: res.meanMargin * P,
        'rewards/chosen': sc, 'rewards/rejected': sr, mean_reward: (sc + sr) / 2,
      },
      count: P, tokens,
    };
  };

  const evaluate = (): Record<string, number> | null =>
    evalMeans(evalPairs.length, cfg.per_device_eval_batch_size, (idx) => T.noGrad(() => runBatch(idx, evalPairs, evalMargins, null)));

  const fingerprint = createHash('sha256');
  fingerprint.update('dpo-ts rm v1');
  fingerprint.update(fingerprintSettings(cfg));
  for (const p of trainPairs) fingerprint.update(Int32Array.from([p.index, ...p.promptIds, -1, ...p.chosenIds, -2, ...p.rejectedIds]));
  if (margins) fingerprint.update(new Uint8Array(margins.buffer));
  fingerprint.update(`${rm.config.architecture}:${params.length}`);

  const result = await runTrainingLoop({
    numExamples: trainPairs.length,
    lengths: trainPairs.map((p) => p.promptIds.length + Math.max(p.chosenIds.length, p.rejectedIds.length)),
    params,
    trainMicroBatch: (idx, scale, rng) => {
      rm.body.ctx.rng = rng;
      return runBatch(idx, trainPairs, margins, scale);
    },
    evaluate,
    saveFinal: (dir) => {
      // LoRA adapters are merged: the output is a plain sequence-classification directory.
      if (lora) for (const l of rm.body.linears()) l.mergeLora();
      saveSequenceClassifier(dir, rm, {
        dtype: cfg.save_dtype === 'bfloat16' ? 'BF16' : 'F32',
        tokenizerFiles: copyTokenizerFiles(source, opts.tokenizer).filter((f) => !f.endsWith('.bin') || f.endsWith('tokenizer.bin')),
      });
    },
  }, loopConfig(cfg, opts, fingerprint.digest('hex')));
  rm.body.ctx.rng = null;
  return { ...result, trainPairs: trainPairs.length, evalPairs: evalPairs.length };
}

export interface ScoredPair {
  index: number;
  loc: string;
  chosen: number;
  rejected: number;
  margin: number;
}

/** `dpo rm score`: the reward of every chosen and rejected response, and the pairwise accuracy. */
export async function scoreWithRewardModel(opts: {
  model: string; data: string[]; tokenizer?: string; batchSize?: number; maxLength?: number; quiet?: boolean;
}): Promise<{ pairs: ScoredPair[]; accuracy: number; meanMargin: number; meanChosen: number; meanRejected: number }> {
  const tokenizer = await loadTokenizerFor(opts.model, opts.tokenizer);
  const { model: rm, trainedHead } = loadSequenceClassifier(opts.model, { padTokenId: tokenizer.padId });
  if (!trainedHead) throw new Error(`${opts.model} is not a reward model (no *ForSequenceClassification architecture in config.json); train one with \`dpo rm\``);
  const prep = await preparePreferenceData(opts.data, tokenizer, { maxLength: opts.maxLength, onBadRow: 'skip' });
  const pairs = prep.pairs;
  if (pairs.length === 0) throw new Error(`no usable pairs in ${opts.data.join(', ')}`);
  const bs = opts.batchSize ?? 8;
  const out: ScoredPair[] = [];
  const bar = new ProgressBar('score', pairs.length, { unit: 'pair', quiet: opts.quiet });
  T.noGrad(() => {
    for (let i = 0; i < pairs.length; i += bs) {
      const chunk = pairs.slice(i, i + bs);
      const batch = collatePreference(chunk, { padId: rm.padTokenId });
      const r = batchRewards(rm, batch);
      chunk.forEach((p, j) => {
        const c = r.data[j]!, rj = r.data[chunk.length + j]!;
        out.push({ index: p.index, loc: formatLoc(p.loc), chosen: c, rejected: rj, margin: c - rj });
      });
      T.disposeWithBase(r);
      bar.update(Math.min(pairs.length, i + bs));
    }
  });
  bar.finish();
  const acc = pairwiseAccuracy(out.map((p) => p.chosen), out.map((p) => p.rejected));
  const mean = (f: (p: ScoredPair) => number): number => out.reduce((s, p) => s + f(p), 0) / out.length;
  return { pairs: out, accuracy: acc.accuracy, meanMargin: mean((p) => p.margin), meanChosen: mean((p) => p.chosen), meanRejected: mean((p) => p.rejected) };
}
