// `dpo score`: the trained policy used as a reward model. For each pair, the implicit reward
// β·(log π(y|x) − log π_ref(y|x)) of chosen and rejected, and the pairwise accuracy.

import { collatePreference } from '../data/batch.js';
import { preparePreferenceData } from '../data/prepare.js';
import { MISSING_SLICE, type DataFormat, type DataSource } from '../data/types.js';
import { scorePreferencePairs, scoresBySlice, type PairScores, type SliceReport } from '../losses/reward.js';
import { referenceLogps } from '../train/dpo.js';
import { yieldToEventLoop } from '../train/loop.js';
import { ProgressBar } from '../util/progress.js';
import { resolveModel, type ModelInput, type TokenizerInput } from '../train/setup.js';

export interface ScoreOptions {
  /** The trained policy: a path or a model in memory (e.g. runDpo's result). */
  model: ModelInput;
  /** The reference it started from: a path or a model in memory. */
  ref: ModelInput;
  /** Pairs to score: file(s) or rows in memory. */
  data: DataSource;
  /** Tokenizer path or object (default: the policy's). */
  tokenizer?: TokenizerInput | undefined;
  /** The β the policy was trained with. */
  beta: number;
  /** Pairs per forward (default 8). */
  batchSize?: number | undefined;
  maxLength?: number | undefined;
  maxPromptLength?: number | undefined;
  /** Force the data format instead of detecting it. */
  format?: DataFormat | undefined;
  quiet?: boolean | undefined;
  /** Slice columns (e.g. "group"): accuracy and mean reward per value, and the best−worst gap. */
  slice?: readonly string[] | undefined;
  /** Aborting stops between two batches; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

export interface ScoredPair {
  index: number;
  location: string;
  chosenReward: number;
  rejectedReward: number;
  margin: number;
  correct: boolean;
  slices?: Record<string, string>;
}

export interface ScoreResult {
  pairs: ScoredPair[];
  summary: PairScores;
  /** One report per slice column asked for. */
  bySlice: SliceReport[];
}

/** Implicit rewards β·(log π − log π_ref) of each pair's responses and the pairwise accuracy. */
export async function scorePairs(opts: ScoreOptions): Promise<ScoreResult> {
  const policy = await resolveModel(opts.model, opts.tokenizer, 'model');
  const tok = policy.tokenizer;
  const ref = await resolveModel(opts.ref, opts.tokenizer ?? tok, 'ref');
  const data = await preparePreferenceData(opts.data, tok, {
    format: opts.format,
    maxLength: opts.maxLength,
    maxPromptLength: opts.maxPromptLength,
    sliceColumns: opts.slice,
  });
  const n = data.pairs.length;
  const pc = new Float64Array(n), pr = new Float64Array(n), rc = new Float64Array(n), rr = new Float64Array(n);
  const bs = opts.batchSize ?? 8;
  const bar = new ProgressBar('score', n, { unit: 'pair', quiet: opts.quiet });
  for (let i = 0; i < n; i += bs) {
    const idx = Array.from({ length: Math.min(bs, n - i) }, (_, j) => i + j);
    const batch = collatePreference(idx.map((k) => data.pairs[k]!), { padId: tok.padId });
    const p = referenceLogps(policy.model, batch);
    const r = referenceLogps(ref.model, batch);
    idx.forEach((k, j) => {
      pc[k] = p[j]!;
      pr[k] = p[batch.pairs + j]!;
      rc[k] = r[j]!;
      rr[k] = r[batch.pairs + j]!;
    });
    bar.update(i + idx.length);
    try {
      await yieldToEventLoop(opts.signal);
    } catch (e) {
      bar.finish();
      throw e;
    }
  }
  bar.finish();
  const summary = scorePreferencePairs({ policyChosen: pc, policyRejected: pr, refChosen: rc, refRejected: rr }, { beta: opts.beta });
  const pairs = data.pairs.map((p, k) => ({
    index: p.index,
    location: `${p.loc.file}:${p.loc.line ?? p.loc.row ?? k}`,
    chosenReward: summary.chosenRewards[k]!,
    rejectedReward: summary.rejectedRewards[k]!,
    margin: summary.margins[k]!,
    correct: summary.accuracies[k] === 1,
    ...(p.slices ? { slices: p.slices } : {}),
  }));
  const bySlice = (opts.slice ?? []).map((col) =>
    scoresBySlice(col, data.pairs.map((p) => p.slices?.[col] ?? MISSING_SLICE), summary.chosenRewards, summary.rejectedRewards),
  );
  return { pairs, summary, bySlice };
}
