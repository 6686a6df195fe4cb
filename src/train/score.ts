// `dpo score`: the trained policy used as a reward model. For each pair, the implicit reward
// β·(log π(y|x) − log π_ref(y|x)) of chosen and rejected, and the pairwise accuracy.

import { collatePreference } from '../data/batch.js';
import { preparePreferenceData } from '../data/prepare.js';
import { MISSING_SLICE, type DataFormat } from '../data/types.js';
import { scorePreferencePairs, scoresBySlice, type PairScores, type SliceReport } from '../losses/reward.js';
import { loadModelAndTokenizer } from '../models/index.js';
import { referenceLogps } from './dpo.js';
import { ProgressBar } from './progress.js';

export interface ScoreOptions {
  model: string;
  ref: string;
  data: string[];
  tokenizer?: string;
  beta: number;
  batchSize?: number;
  maxLength?: number;
  maxPromptLength?: number;
  format?: string;
  quiet?: boolean;
  /** Slice columns (e.g. "group"): accuracy and mean reward per value, and the best−worst gap. */
  slice?: readonly string[];
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

export async function scorePairs(opts: ScoreOptions): Promise<{ pairs: ScoredPair[]; summary: PairScores; bySlice: SliceReport[] }> {
  const policy = await loadModelAndTokenizer(opts.model, opts.tokenizer);
  const ref = await loadModelAndTokenizer(opts.ref, opts.tokenizer);
  const tok = policy.tokenizer;
  const data = await preparePreferenceData(opts.data, tok, {
    format: opts.format as DataFormat | undefined,
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
