// Sample-based evaluation of policies against their reference, as in the DPO paper's controlled
// sentiment experiment (Rafailov et al. 2023, §6.1): on held-out prompts, for the reference and
// each policy,
//   - mean ground-truth reward of sampled completions (and of held-out judges),
//   - sequence-level KL(π‖π_ref) = E_{y~π}[log π(y|x) − log π_ref(y|x)], estimated from π's samples,
//   - win rate against the reference (same prompt, same sample slot; a tie counts one half),
//   - implicit-reward accuracy on held-out pairs: β(log π − log π_ref) ranks chosen above rejected.
// Every model is sampled with the same seed (common random numbers), so differences between models
// are less noisy than independent draws would make them.

import type { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/model.js';
import type { Judge } from './judges.js';
import { completionLogps, sampleCompletions, type Completions } from './sample.js';
import { scoresBySlice, type SliceReport } from '../losses/reward.js';
import { MISSING_SLICE } from '../data/types.js';

export interface Stat {
  mean: number;
  /** Standard error of the mean. */
  stderr: number;
  n: number;
}

export function stat(xs: ArrayLike<number>): Stat {
  const n = xs.length;
  if (n === 0) return { mean: NaN, stderr: NaN, n: 0 };
  let s = 0;
  for (let i = 0; i < n; i++) s += xs[i]!;
  const mean = s / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (xs[i]! - mean) ** 2;
  const stderr = n > 1 ? Math.sqrt(v / (n - 1) / n) : 0;
  return { mean, stderr, n };
}

/** A preference pair of token ids (prompt with BOS; completions without). */
export interface IdPair {
  prompt: number[];
  chosen: number[];
  rejected: number[];
  /** Slice column → value (e.g. the annotator group), for per-slice implicit-reward accuracy. */
  slices?: Record<string, string>;
}

export interface EvalSample {
  prompt: string;
  completion: string;
  /** Judge name → score. */
  rewards: Record<string, number>;
  /** log π(y|x) − log π_ref(y|x) of this sample (0 for the reference). */
  logRatio: number;
}

export interface ModelEvaluation {
  name: string;
  /** β of the policy (null for the reference). */
  beta: number | null;
  /** Judge name → mean reward of the samples. */
  rewards: Record<string, Stat>;
  kl: Stat;
  /** Fraction of samples whose primary reward beats the reference's sample in the same slot. */
  winRate: number;
  /** Implicit-reward accuracy on the held-out pairs (NaN when there are none). */
  implicitAccuracy: number;
  /** Mean implicit-reward margin β·[(π−ref)(chosen) − (π−ref)(rejected)] on the held-out pairs. */
  implicitMargin: number;
  /** Per slice column of the held-out pairs: accuracy and mean reward per value, best−worst gap. */
  implicitBySlice?: SliceReport[];
  meanTokens: number;
  samples: EvalSample[];
}

export interface EvaluationSettings {
  samplesPerPrompt: number;
  maxNewTokens: number;
  seed: number;
  batchSize?: number;
  quiet?: boolean;
}

export interface EvaluationResult {
  primary: string;
  prompts: number;
  samplesPerPrompt: number;
  heldOutPairs: number;
  models: ModelEvaluation[];
}

/**
 * Held-out pairs from the reference's own samples, as the training pairs were made: per prompt the
 * completion with the highest primary reward is chosen, the lowest rejected; prompts whose samples
 * all tie give no pair.
 */
export function pairsFromSamples(promptIds: readonly number[][], comp: Completions, scores: readonly number[]): IdPair[] {
  const byPrompt = new Map<number, number[]>();
  comp.promptIndex.forEach((p, r) => {
    const list = byPrompt.get(p) ?? [];
    list.push(r);
    byPrompt.set(p, list);
  });
  const pairs: IdPair[] = [];
  for (const [p, rows] of byPrompt) {
    let best = rows[0]!, worst = rows[0]!;
    for (const r of rows) {
      if (scores[r]! > scores[best]!) best = r;
      if (scores[r]! < scores[worst]!) worst = r;
    }
    if (scores[best]! > scores[worst]!) pairs.push({ prompt: promptIds[p]!, chosen: comp.tokens[best]!, rejected: comp.tokens[worst]! });
  }
  return pairs;
}

/** A policy to evaluate against the reference. */
export interface Policy {
  name: string;
  model: CausalLM;
  /** The β it was trained with (scales its implicit reward). */
  beta: number;
}

/** What evaluateAgainstReference compares: the reference and the policies on the same prompts. */
export interface EvaluateAgainstReferenceOptions {
  ref: CausalLM;
  refName?: string;
  policies: readonly Policy[];
  tokenizer: Tokenizer;
  prompts: readonly string[];
  /** The first judge is the primary (ground-truth) reward; the others are reported as held-out. */
  judges: readonly Judge[];
  settings: EvaluationSettings;
  pairs?: readonly IdPair[];
  onModel?: (m: ModelEvaluation) => void;
}

/**
 * Evaluates the reference and each policy on the prompts. `pairs` (optional) are held-out
 * preference pairs for implicit-reward accuracy; without them, pairs are built from the
 * reference's samples by the primary judge.
 */
export function evaluateAgainstReference(opts: EvaluateAgainstReferenceOptions): EvaluationResult {
  const { ref, tokenizer: tok, judges, settings: s } = opts;
  if (opts.prompts.length === 0) throw new Error('evaluate: no prompts');
  if (judges.length === 0) throw new Error('evaluate: no judges');
  const primary = judges[0]!.name;
  const promptIds = opts.prompts.map((p) => tok.encode(p, { addBos: true }));
  const pad = tok.padId;
  const sampleOpts = { samplesPerPrompt: s.samplesPerPrompt, maxNewTokens: s.maxNewTokens, seed: s.seed, batchSize: s.batchSize, quiet: s.quiet };

  const score = (comp: Completions): Record<string, number[]> => {
    const out: Record<string, number[]> = {};
    for (const j of judges) out[j.name] = comp.texts.map((t) => j.score(t));
    return out;
  };
  const build = (name: string, beta: number | null, comp: Completions, scores: Record<string, number[]>, logRatio: Float64Array, refPrimary: number[] | null, acc: number, margin: number): ModelEvaluation => {
    const rewards: Record<string, Stat> = {};
    for (const j of judges) rewards[j.name] = stat(scores[j.name]!);
    let win = 0;
    if (refPrimary) {
      const mine = scores[primary]!;
      for (let r = 0; r < mine.length; r++) win += mine[r]! > refPrimary[r]! ? 1 : mine[r] === refPrimary[r] ? 0.5 : 0;
      win /= mine.length;
    } else win = 0.5;
    return {
      name, beta, rewards, kl: stat(logRatio), winRate: win, implicitAccuracy: acc, implicitMargin: margin,
      meanTokens: comp.tokens.reduce((a, t) => a + t.length, 0) / Math.max(1, comp.tokens.length),
      samples: comp.texts.map((t, r) => ({
        prompt: opts.prompts[comp.promptIndex[r]!]!, completion: t,
        rewards: Object.fromEntries(judges.map((j) => [j.name, scores[j.name]![r]!])), logRatio: logRatio[r]!,
      })),
    };
  };

  // ---- reference ----
  const refComp = sampleCompletions(ref, tok, promptIds, { ...sampleOpts, label: `sample ${opts.refName ?? 'reference'}` });
  const refScores = score(refComp);
  const pairs = opts.pairs ?? pairsFromSamples(promptIds, refComp, refScores[primary]!);
  const pairPrompts = pairs.flatMap((p) => [p.prompt, p.prompt]);
  const pairCompletions = pairs.flatMap((p) => [p.chosen, p.rejected]);
  const refPairLogps = pairs.length ? completionLogps(ref, pairPrompts, pairCompletions, pad) : new Float64Array(0);
  const models: ModelEvaluation[] = [];
  const refEval = build(opts.refName ?? 'reference', null, refComp, refScores, new Float64Array(refComp.tokens.length), null, NaN, NaN);
  models.push(refEval);
  opts.onModel?.(refEval);

  // ---- policies ----
  for (const pol of opts.policies) {
    const comp = sampleCompletions(pol.model, tok, promptIds, { ...sampleOpts, label: `sample ${pol.name}` });
    const scores = score(comp);
    const rowPrompts = comp.promptIndex.map((p) => promptIds[p]!);
    const lpPol = completionLogps(pol.model, rowPrompts, comp.tokens, pad);
    const lpRef = completionLogps(ref, rowPrompts, comp.tokens, pad);
    const ratio = lpPol.map((v, i) => v - lpRef[i]!);
    let acc = NaN, margin = NaN;
    let bySlice: SliceReport[] | undefined;
    if (pairs.length) {
      const polPair = completionLogps(pol.model, pairPrompts, pairCompletions, pad);
      let correct = 0, m = 0;
      const rcs = new Float64Array(pairs.length), rrs = new Float64Array(pairs.length);
      for (let i = 0; i < pairs.length; i++) {
        const rc = pol.beta * (polPair[2 * i]! - refPairLogps[2 * i]!);
        const rr = pol.beta * (polPair[2 * i + 1]! - refPairLogps[2 * i + 1]!);
        rcs[i] = rc;
        rrs[i] = rr;
        if (rc > rr) correct++;
        m += rc - rr;
      }
      acc = correct / pairs.length;
      margin = m / pairs.length;
      const cols = [...new Set(pairs.flatMap((p) => Object.keys(p.slices ?? {})))];
      if (cols.length) bySlice = cols.map((c) => scoresBySlice(c, pairs.map((p) => p.slices?.[c] ?? MISSING_SLICE), rcs, rrs));
    }
    const ev = build(pol.name, pol.beta, comp, scores, ratio, refScores[primary]!, acc, margin);
    if (bySlice) ev.implicitBySlice = bySlice;
    models.push(ev);
    opts.onModel?.(ev);
  }
  return { primary, prompts: opts.prompts.length, samplesPerPrompt: s.samplesPerPrompt, heldOutPairs: pairs.length, models };
}

/** A fixed-width text table of an evaluation (the terminal summary). */
export function evaluationTable(r: EvaluationResult, primaryLabel = 'reward'): string {
  const judges = Object.keys(r.models[0]?.rewards ?? {});
  const head = ['model', ...judges.map((j) => (j === r.primary ? `${j} (${primaryLabel})` : j)), 'KL(π‖ref)', 'win vs ref', 'implicit acc', 'tokens'];
  const fmt = (x: number, d = 3): string => (Number.isNaN(x) ? '-' : x.toFixed(d));
  const rows = r.models.map((m) => [
    m.name,
    ...judges.map((j) => `${fmt(m.rewards[j]!.mean)} ± ${fmt(m.rewards[j]!.stderr, 3)}`),
    `${fmt(m.kl.mean, 2)} ± ${fmt(m.kl.stderr, 2)}`,
    m.beta === null ? '-' : fmt(m.winRate),
    fmt(m.implicitAccuracy),
    fmt(m.meanTokens, 1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const slices = r.models.flatMap((m) =>
    (m.implicitBySlice ?? []).map(
      (s) =>
        `${m.name} implicit acc by ${s.column}: ${s.slices.map((x) => `${x.slice} ${fmt(x.accuracy)} (${x.pairs} pairs, reward ${fmt(x.meanChosenReward)}/${fmt(x.meanRejectedReward)})`).join(', ')}; ` +
        `gap ${fmt(s.accuracyGap)} (${s.best} vs ${s.worst})`,
    ),
  );
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line), ...(slices.length ? ['', ...slices] : [])].join('\n') + '\n';
}
