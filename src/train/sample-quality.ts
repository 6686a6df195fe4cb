// Signals that a policy has stopped writing like its reference, measured on sampled completions:
// reward hacking that a reward model or a sentiment lexicon cannot see (gibberish stuffed with
// reward words, repetition, one answer for every prompt, rambling to the length limit).
//
//   fluency    per-token perplexity of the samples under the reference model (and under a second,
//              independent model when one is given), and the share of sampled tokens outside the
//              reference's top-k at their position (a cheap "gibberish" signal);
//   diversity  distinct-1/2 (Li et al. 2016: distinct word n-grams / all word n-grams over the
//              samples), the share of samples repeating a word n-gram at least 3 times, and the
//              self-similarity of the samples of one prompt;
//   length     tokens per completion and the share that hit max_new_tokens without a stop token.
//
// A verdict per model — "fluent", "degrading", "collapsed" — compares these figures with the
// reference's own on the same prompts (ratios and differences, thresholds in FLUENCY_THRESHOLDS),
// so it means the same for any model. This module sits in src/train because the training
// watchdogs use it on the periodic eval samples (sample_checks); src/eval builds on it.

import * as T from '../tensor/index.js';
import type { CausalLM } from '../models/model.js';
import { generateTokens } from '../models/generate.js';

/** Lower-cased words: runs of letters and digits (inner apostrophes kept); punctuation dropped. */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*/gu) ?? [];
}

function ngrams(ws: readonly string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= ws.length; i++) out.push(ws.slice(i, i + n).join(' '));
  return out;
}

/** distinct-n: distinct word n-grams / all word n-grams, pooled over the texts (NaN when there are none). */
export function distinctN(texts: readonly string[], n: number): number {
  const seen = new Set<string>();
  let total = 0;
  for (const t of texts) {
    for (const g of ngrams(words(t), n)) {
      seen.add(g);
      total++;
    }
  }
  return total === 0 ? NaN : seen.size / total;
}

/**
 * Whether the text repeats some word n-gram with n ≥ 2 at least `times` times (overlaps count). A
 * longer n-gram repeated that often contains a bigram repeated as often, so bigrams decide.
 */
export function repeatsNgram(text: string, times = 3): boolean {
  const counts = new Map<string, number>();
  for (const g of ngrams(words(text), 2)) {
    const c = (counts.get(g) ?? 0) + 1;
    if (c >= times) return true;
    counts.set(g, c);
  }
  return false;
}

/** Word unigrams and bigrams of a text, as one set (bigrams tagged so they never equal a word). */
function gramSet(text: string): Set<string> {
  const ws = words(text);
  return new Set([...ws, ...ngrams(ws, 2).map((g) => `\u0001${g}`)]);
}

/**
 * Self-similarity of samples of the same prompt: the mean pairwise Jaccard similarity of their
 * word unigram+bigram sets, averaged over prompts with at least two samples (NaN when none). 1 =
 * every prompt gets the same answer each time; two empty samples count as identical.
 */
export function selfSimilarity(groups: readonly (readonly string[])[]): number {
  let acc = 0, n = 0;
  for (const g of groups) {
    if (g.length < 2) continue;
    const sets = g.map(gramSet);
    let s = 0, pairs = 0;
    for (let i = 0; i < sets.length; i++) {
      for (let j = i + 1; j < sets.length; j++) {
        const a = sets[i]!, b = sets[j]!;
        let inter = 0;
        for (const x of a) if (b.has(x)) inter++;
        const union = a.size + b.size - inter;
        s += union === 0 ? 1 : inter / union;
        pairs++;
      }
    }
    acc += s / pairs;
    n++;
  }
  return n === 0 ? NaN : acc / n;
}

/** Per-row token scores of completions under a model. */
export interface TokenScores {
  /** Σ_t log p(completion_t | prompt, completion_<t), float64. */
  logp: Float64Array;
  /** Completion tokens scored. */
  tokens: Int32Array;
  /** Completion tokens that were not among the model's k most likely at their position. */
  outsideTopK: Int32Array;
}

/**
 * Teacher-forced scoring of completions (ids, stop token included) after their prompts (ids with
 * BOS) with the KV cache: log-probability of every completion token and whether it lies outside the
 * model's top-k (rank by logit; ties favour the token). Rows are left-padded as in sampling.
 */
export function scoreTokens(
  model: CausalLM, prompts: readonly (readonly number[])[], completions: readonly (readonly number[])[],
  opts: { padId: number; topK: number; batchSize?: number },
): TokenScores {
  if (prompts.length !== completions.length) throw new Error(`scoreTokens: ${prompts.length} prompts but ${completions.length} completions`);
  if (!(Number.isInteger(opts.topK) && opts.topK >= 1)) throw new RangeError(`scoreTokens: topK must be a positive integer, got ${opts.topK}`);
  const n = prompts.length;
  const out: TokenScores = { logp: new Float64Array(n), tokens: new Int32Array(n), outsideTopK: new Int32Array(n) };
  const bs = opts.batchSize ?? 64;
  const V = model.config.vocabSize;
  T.noGrad(() => {
    for (let s = 0; s < n; s += bs) {
      const rows = Array.from({ length: Math.min(bs, n - s) }, (_, i) => s + i);
      const B = rows.length;
      const maxLen = Math.max(...rows.map((r) => completions[r]!.length));
      if (maxLen === 0) continue;
      const longest = Math.max(...rows.map((r) => prompts[r]!.length));
      if (longest === 0) throw new Error('scoreTokens: an empty prompt (encode it with BOS)');
      if (longest + maxLen > model.config.maxPositions) {
        throw new RangeError(`scoreTokens: prompt (${longest} tokens) + completion (${maxLen}) exceed the model's ${model.config.maxPositions} positions`);
      }
      const ids = new Int32Array(B * longest).fill(opts.padId);
      const kvStart = new Int32Array(B);
      rows.forEach((r, b) => {
        kvStart[b] = longest - prompts[r]!.length;
        ids.set(prompts[r]!, b * longest + kvStart[b]!);
      });
      const starts = kvStart.some((x) => x > 0) ? kvStart : null;
      // The cache and each position's logits go back to the tensor pool once used (they were left
      // to the garbage collector: a sample check's KV caches and logits, ~22 MiB on the demo,
      // counted as live until a full collection, so the next run's working set looked larger).
      const cache = model.newCache(B, longest + maxLen);
      let logits = model.forwardCached(ids, longest, cache, starts);
      try {
        const step = new Int32Array(B);
        for (let t = 0; t < maxLen; t++) {
          rows.forEach((r, b) => {
            const c = completions[r]!;
            if (t >= c.length) {
              step[b] = opts.padId;
              return;
            }
            const tok = c[t]!;
            const row = logits.subarray(b * V, (b + 1) * V);
            const lt = row[tok]!;
            let m = -Infinity, above = 0;
            for (let i = 0; i < V; i++) {
              const l = row[i]!;
              if (l > m) m = l;
              if (l > lt) above++;
            }
            let z = 0;
            for (let i = 0; i < V; i++) z += Math.exp(row[i]! - m);
            out.logp[r]! += lt - m - Math.log(z);
            out.tokens[r]!++;
            if (above >= opts.topK) out.outsideTopK[r]!++;
            step[b] = tok;
          });
          if (t < maxLen - 1) {
            T.release(logits);
            logits = model.forwardCached(step, 1, cache, starts);
          }
        }
      } finally {
        T.release(logits);
        cache.dispose();
      }
    }
  });
  return out;
}

/** Per-token perplexity exp(−Σ log p / Σ tokens), pooled over rows (NaN without tokens). */
export function perplexity(logp: ArrayLike<number>, tokens: ArrayLike<number>): number {
  let lp = 0, nt = 0;
  for (let i = 0; i < logp.length; i++) {
    lp += logp[i]!;
    nt += tokens[i]!;
  }
  return nt === 0 ? NaN : Math.exp(-lp / nt);
}

/** The fluency, diversity and length figures of one model's samples. */
export interface SampleQuality {
  /** Per-token perplexity of the samples under the reference model. */
  perplexity: number;
  /** Per-token perplexity under the second, independent fluency model (null when none is given). */
  fluencyPerplexity: number | null;
  /** Share of sampled tokens outside the reference's top-k. */
  offTopK: number;
  topK: number;
  distinct1: number;
  distinct2: number;
  /** Share of samples repeating a word n-gram (n ≥ 2) at least 3 times. */
  repeatShare: number;
  /** Mean pairwise similarity of the samples of one prompt (see selfSimilarity). */
  selfSimilarity: number;
  /** Tokens per completion (stop token included). */
  meanTokens: number;
  /** Share of samples that ended without a stop token, i.e. hit max_new_tokens. */
  truncatedShare: number;
}

/** Samples of one model: texts, their prompt, token counts, whether they ended on a stop token. */
export interface QualityInput {
  texts: readonly string[];
  promptIndex: readonly number[];
  /** Reference scores of the same samples. */
  ref: TokenScores;
  /** Scores under the independent fluency model, when one is given. */
  fluency?: TokenScores | null;
  stopped: readonly boolean[];
  topK: number;
}

export function sampleQuality(x: QualityInput): SampleQuality {
  const n = x.texts.length;
  const groups = new Map<number, string[]>();
  x.texts.forEach((t, r) => {
    const p = x.promptIndex[r]!;
    const g = groups.get(p) ?? [];
    g.push(t);
    groups.set(p, g);
  });
  let tokens = 0, off = 0;
  for (let r = 0; r < n; r++) {
    tokens += x.ref.tokens[r]!;
    off += x.ref.outsideTopK[r]!;
  }
  return {
    perplexity: perplexity(x.ref.logp, x.ref.tokens),
    fluencyPerplexity: x.fluency ? perplexity(x.fluency.logp, x.fluency.tokens) : null,
    offTopK: tokens ? off / tokens : NaN,
    topK: x.topK,
    distinct1: distinctN(x.texts, 1),
    distinct2: distinctN(x.texts, 2),
    repeatShare: n ? x.texts.filter((t) => repeatsNgram(t)).length / n : NaN,
    selfSimilarity: selfSimilarity([...groups.values()]),
    meanTokens: n ? tokens / n : NaN,
    truncatedShare: n ? x.stopped.filter((s) => !s).length / n : NaN,
  };
}

export type Verdict = 'fluent' | 'degrading' | 'collapsed';

/**
 * Verdict thresholds, each relative to the reference's own figures on the same prompts (so a
 * verdict means the same for any model). A model is "collapsed" when any signal passes its
 * `collapsed` bound, "degrading" when any passes its `degrading` bound, else "fluent".
 *
 * Where the numbers come from (README "Verdicts"; `node dist/bench/fluency-calibration.js --model M`
 * measures them): the reference's own samples, scored by the reference, are the baseline (ratio 1,
 * difference 0). Sampled again with other random numbers, the reference moves by a few percent
 * (perplexity ratio 0.92–1.03, distinct-2 ratio 0.99–1.02, off-top-10 ratio 0.98–1.05 on the demo
 * base and stories260K, 128 prompts × 4 samples), far inside every bound. Sampled hotter, at
 * temperature 1.3 — visibly sloppier, still recognisably its own text — the reference's perplexity
 * ratio is 1.9 (stories260K) to 2.9 (demo base): `degrading` starts below, at 1.5×. At temperature
 * 2 it writes gibberish at 14–15×, and the stories260K DPO runs that read as word salad (β = 0.05,
 * 0.1 at the demo's old settings) measure 8.1× and 3.3×: `collapsed` starts at 3×. The off-top-k
 * share saturates for a weak reference (the demo base already leaves its top-10 61% of the time) but
 * separates well for a good one (stories260K: 1.8× at temperature 1.3, 4.2× at 2): bounds 1.5× and
 * 2.5×. Collapse into sameness (every sample "He liked to play with his friends") lowers perplexity
 * instead and is caught by diversity: the reference sampled colder keeps 0.86–0.89× its distinct-2
 * at temperature 0.8, 0.77× at 0.7, 0.67–0.71× at 0.6 and 0.53–0.60× at 0.5. Decoding at 0.7–1 is
 * ordinary; less diverse than the reference at 0.6 is `degrading` (≤ 0.65×), less than at 0.5
 * `collapsed` (≤ 0.5×). 10 (25) more percentage points of samples repeating a phrase three times,
 * or a prompt's samples 0.15 (0.35) more alike than the reference's (0.04 more at temperature 0.6),
 * are the same verdicts.
 */
export const FLUENCY_THRESHOLDS = {
  /** Perplexity under the reference (and the fluency model) ÷ the reference samples' own. */
  perplexityRatio: { degrading: 1.5, collapsed: 3 },
  /** Share of tokens outside the reference's top-k ÷ the reference samples' share. */
  offTopKRatio: { degrading: 1.5, collapsed: 2.5 },
  /** distinct-2 ÷ the reference's (lower is worse). */
  distinct2Ratio: { degrading: 0.65, collapsed: 0.5 },
  /** Share of repeating samples − the reference's. */
  repeatShareExcess: { degrading: 0.1, collapsed: 0.25 },
  /** Self-similarity − the reference's. */
  selfSimilarityExcess: { degrading: 0.15, collapsed: 0.35 },
} as const;

export interface FluencyVerdict {
  verdict: Verdict;
  /** The signals past a bound, in words (empty when fluent). */
  reasons: string[];
}

/** Judges a model's sample quality against the reference's (see FLUENCY_THRESHOLDS). */
export function fluencyVerdict(m: SampleQuality, ref: SampleQuality): FluencyVerdict {
  const th = FLUENCY_THRESHOLDS;
  const collapsed: string[] = [], degrading: string[] = [];
  const check = (value: number, bounds: { degrading: number; collapsed: number }, higherIsWorse: boolean, say: string): void => {
    if (!Number.isFinite(value)) return;
    const past = (b: number): boolean => (higherIsWorse ? value >= b : value <= b);
    if (past(bounds.collapsed)) collapsed.push(say);
    else if (past(bounds.degrading)) degrading.push(say);
  };
  const x = (v: number): string => `${v.toFixed(1)}×`;
  const ppl = m.perplexity / ref.perplexity;
  check(ppl, th.perplexityRatio, true, `perplexity under the reference ${x(ppl)} its own samples'`);
  if (m.fluencyPerplexity !== null && ref.fluencyPerplexity !== null) {
    const f = m.fluencyPerplexity / ref.fluencyPerplexity;
    check(f, th.perplexityRatio, true, `perplexity under the fluency model ${x(f)} the reference's`);
  }
  // A reference that never leaves its own top-k gives no scale: compare with one token in a thousand.
  const off = m.offTopK / Math.max(ref.offTopK, 1e-3);
  check(off, th.offTopKRatio, true, `${(100 * m.offTopK).toFixed(1)}% of tokens outside the reference's top-${m.topK} (${x(off)} its own)`);
  const d2 = m.distinct2 / ref.distinct2;
  check(d2, th.distinct2Ratio, false, `distinct-2 ${m.distinct2.toFixed(2)} (${x(d2)} the reference's)`);
  const rep = m.repeatShare - ref.repeatShare;
  check(rep, th.repeatShareExcess, true, `${(100 * m.repeatShare).toFixed(0)}% of samples repeat a phrase 3+ times (reference ${(100 * ref.repeatShare).toFixed(0)}%)`);
  const sim = m.selfSimilarity - ref.selfSimilarity;
  check(sim, th.selfSimilarityExcess, true, `samples of a prompt ${m.selfSimilarity.toFixed(2)} alike (reference ${ref.selfSimilarity.toFixed(2)})`);
  if (collapsed.length) return { verdict: 'collapsed', reasons: collapsed };
  if (degrading.length) return { verdict: 'degrading', reasons: degrading };
  return { verdict: 'fluent', reasons: [] };
}

/** Samples for a periodic check during training: generated with fixed seeds, scored by the reference. */
export interface SampleCheck {
  quality: SampleQuality;
  texts: string[];
  promptIndex: number[];
}

/**
 * Samples `samplesPerPrompt` completions per prompt from `model` (temperature 1, the same seeds on
 * every call, so successive checks share random numbers) and measures their quality under
 * `reference` (run inside `withReference`, e.g. to switch LoRA adapters off).
 */
export function checkSamples(
  model: CausalLM, reference: CausalLM, prompts: readonly (readonly number[])[],
  o: {
    samplesPerPrompt: number; maxNewTokens: number; seed: number; padId: number; stopIds: readonly number[]; topK: number;
    decode: (ids: number[]) => string; withReference?: <R>(f: () => R) => R;
  },
): SampleCheck {
  const rowPrompts: (readonly number[])[] = [];
  const promptIndex: number[] = [];
  prompts.forEach((p, i) => {
    for (let j = 0; j < o.samplesPerPrompt; j++) {
      rowPrompts.push(p);
      promptIndex.push(i);
    }
  });
  const stop = new Set(o.stopIds);
  // Stops are handled here so the stop token stays in the ids (its probability is part of the sample's).
  const gen = T.noGrad(() => generateTokens(model, rowPrompts, {
    maxNewTokens: o.maxNewTokens, temperature: 1, seed: o.seed, padId: o.padId, stopIds: [], onToken: (_r, tok) => !stop.has(tok),
  }));
  const ref = (o.withReference ?? ((f) => f()))(() => scoreTokens(reference, rowPrompts, gen.tokens, { padId: o.padId, topK: o.topK }));
  const texts = gen.tokens.map((t) => o.decode(t.filter((x) => !stop.has(x))));
  const stopped = gen.tokens.map((t) => t.length > 0 && stop.has(t[t.length - 1]!));
  return { quality: sampleQuality({ texts, promptIndex, ref, stopped, topK: o.topK }), texts, promptIndex };
}
