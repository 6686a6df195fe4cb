// Sample-based evaluation of policies against their reference, as in the DPO paper's controlled
// sentiment experiment (Rafailov et al. 2023, §6.1): on held-out prompts, for the reference and
// each policy,
//   - mean ground-truth reward of sampled completions (and of held-out judges),
//   - sequence-level KL(π‖π_ref) = E_{y~π}[log π(y|x) − log π_ref(y|x)], estimated from π's samples,
//   - win rate against the reference (same prompt, same sample slot; a tie counts one half),
//   - implicit-reward accuracy on held-out pairs: β(log π − log π_ref) ranks chosen above rejected.
//   - fluency, diversity and length of the same samples (perplexity under the reference and an
//     optional second model, tokens outside the reference's top-k, distinct-1/2, repetition,
//     self-similarity, truncation) and a verdict in words: fluent / degrading / collapsed
//     (src/train/sample-quality.ts), so reward hacking shows next to the reward.
// Every model is sampled with the same seed (common random numbers), so differences between models
// are less noisy than independent draws would make them.

import type { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/model.js';
import type { Judge } from './judges.js';
import {
  fluencyVerdict, sampleQuality, scoreTokens, type SampleQuality, type TokenScores, type Verdict,
} from '../train/sample-quality.js';
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
  /** Fluency, diversity and length of the samples. */
  quality: SampleQuality;
  /** Against the reference's own figures; the reference itself is the baseline ("fluent"). */
  verdict: Verdict;
  /** Why the verdict is not "fluent", in words. */
  verdictReasons: string[];
  samples: EvalSample[];
}

/** A second, independent model for fluency (perplexity of the same texts under its own tokenizer). */
export interface FluencyModel {
  name: string;
  model: CausalLM;
  tokenizer: Tokenizer;
}

export interface EvaluationSettings {
  samplesPerPrompt: number;
  maxNewTokens: number;
  seed: number;
  batchSize?: number;
  quiet?: boolean;
  /** k of the "outside the reference's top-k" share (default 10). */
  topK?: number;
}

export const DEFAULT_TOP_K = 10;

export interface EvaluationResult {
  primary: string;
  /** Name of the second fluency model, when one was given. */
  fluencyModel: string | null;
  /** The policy that is fluent and beats the reference on every judge, with the highest reward. */
  bestTradeOff: string | null;
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
  /** A second, independent model (its own tokenizer) for the perplexity of the samples; the verdict uses it too. */
  fluencyModel?: FluencyModel | null;
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
  const topK = s.topK ?? DEFAULT_TOP_K;
  const fm = opts.fluencyModel ?? null;
  const fmPrompts = fm ? opts.prompts.map((p) => fm.tokenizer.encode(p, { addBos: true })) : [];
  /** Fluency and diversity of a model's samples (reference scores computed here unless given). */
  const qualityOf = (comp: Completions): SampleQuality => {
    const rowPrompts = comp.promptIndex.map((p) => promptIds[p]!);
    const refScores: TokenScores = scoreTokens(ref, rowPrompts, comp.tokens, { padId: pad, topK, batchSize: s.batchSize });
    const fluency = fm
      ? scoreTokens(fm.model, comp.promptIndex.map((p) => fmPrompts[p]!), comp.texts.map((t) => fm.tokenizer.encode(t, { addBos: false })),
        { padId: fm.tokenizer.padId, topK, batchSize: s.batchSize })
      : null;
    return sampleQuality({ texts: comp.texts, promptIndex: comp.promptIndex, ref: refScores, fluency, stopped: comp.stopped, topK });
  };
  let refQuality: SampleQuality | null = null;

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
    const quality = qualityOf(comp);
    const v = refQuality ? fluencyVerdict(quality, refQuality) : { verdict: 'fluent' as const, reasons: [] };
    return {
      name, beta, rewards, kl: stat(logRatio), winRate: win, implicitAccuracy: acc, implicitMargin: margin,
      meanTokens: comp.tokens.reduce((a, t) => a + t.length, 0) / Math.max(1, comp.tokens.length),
      quality, verdict: v.verdict, verdictReasons: v.reasons,
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
  refQuality = refEval.quality;
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
  return {
    primary, fluencyModel: fm?.name ?? null, bestTradeOff: bestTradeOff(models, primary),
    prompts: opts.prompts.length, samplesPerPrompt: s.samplesPerPrompt, heldOutPairs: pairs.length, models,
  };
}

/**
 * The best trade-off point: among policies rated "fluent" whose mean reward beats the reference's
 * on every judge (the training reward and each held-out judge), the one with the highest training
 * reward; null when no policy qualifies (the highest reward alone can be reward hacking).
 */
export function bestTradeOff(models: readonly ModelEvaluation[], primary: string): string | null {
  const ref = models.find((m) => m.beta === null);
  if (!ref) return null;
  let best: ModelEvaluation | null = null;
  for (const m of models) {
    if (m.beta === null || m.verdict !== 'fluent') continue;
    if (!Object.keys(ref.rewards).every((j) => m.rewards[j]!.mean > ref.rewards[j]!.mean)) continue;
    if (!best || m.rewards[primary]!.mean > best.rewards[primary]!.mean) best = m;
  }
  return best?.name ?? null;
}

/** One sentence on the best trade-off point (terminal and report). */
export function tradeOffSentence(r: EvaluationResult): string {
  const policies = r.models.filter((m) => m.beta !== null);
  const collapsed = policies.filter((m) => m.verdict !== 'fluent').map((m) => `${m.name} (${m.verdict})`);
  const tail = collapsed.length ? ` Not fluent: ${collapsed.join(', ')} — a higher reward there is reward hacking, not better text.` : '';
  if (r.bestTradeOff) {
    const m = r.models.find((x) => x.name === r.bestTradeOff)!;
    return `Best trade-off: ${m.name} — fluent and above the reference on every judge (${r.primary} ${m.rewards[r.primary]!.mean.toFixed(2)}, KL ${m.kl.mean.toFixed(1)} nats).${tail}`;
  }
  return `No model is both fluent and better than the reference on every judge: use a larger β, a lower learning rate or fewer epochs.${tail}`;
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
  const slices = r.models.flatMap((m) =>
    (m.implicitBySlice ?? []).map(
      (s) =>
        `${m.name} implicit acc by ${s.column}: ${s.slices.map((x) => `${x.slice} ${fmt(x.accuracy)} (${x.pairs} pairs, reward ${fmt(x.meanChosenReward)}/${fmt(x.meanRejectedReward)})`).join(', ')}; ` +
        `gap ${fmt(s.accuracyGap)} (${s.best} vs ${s.worst})`,
    ),
  );
  const fl = fluencyColumns(r);
  const verdicts = r.models.filter((m) => m.verdictReasons.length).map((m) => `  ${m.name}: ${m.verdict} — ${m.verdictReasons.join('; ')}`);
  return `${textTable(head, rows)}${slices.length ? `\n${slices.join('\n')}\n` : ''}\n${textTable(fl.head, fl.rows)}${verdicts.length ? `\n${verdicts.join('\n')}\n` : ''}\n${tradeOffSentence(r)}\n`;
}

/** Column heads and cells of the fluency / diversity / length table (terminal and report). */
export function fluencyColumns(r: EvaluationResult): { head: string[]; rows: string[][] } {
  const fmt = (x: number | null, d: number): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : '-');
  const refQ = r.models.find((m) => m.beta === null)?.quality;
  const k = r.models[0]?.quality.topK ?? DEFAULT_TOP_K;
  const head = [
    'model', 'ppl (ref)', '× ref', ...(r.fluencyModel ? [`ppl (${r.fluencyModel})`] : []), `off top-${k}`,
    'distinct-1', 'distinct-2', 'repeat 3+', 'self-sim', 'tokens', 'hit max', 'verdict',
  ];
  const rows = r.models.map((m) => {
    const q = m.quality;
    return [
      m.name, fmt(q.perplexity, 1), refQ ? fmt(q.perplexity / refQ.perplexity, 2) : '-', ...(r.fluencyModel ? [fmt(q.fluencyPerplexity, 1)] : []),
      pct(q.offTopK), fmt(q.distinct1, 2), fmt(q.distinct2, 2), pct(q.repeatShare), fmt(q.selfSimilarity, 2),
      fmt(q.meanTokens, 1), pct(q.truncatedShare), m.beta === null ? 'reference' : m.verdict,
    ];
  });
  return { head, rows };
}

function textTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}
