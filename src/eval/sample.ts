// Sampling completions for many prompts (seeded, batched) and scoring completions' log-probs
// under a model: the two primitives of sample-based evaluation (reward, KL, win rate).

import * as T from '../tensor/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/model.js';
import { generateTokens, sampleToken } from '../models/generate.js';
import { paddedRowSums } from '../models/logprobs.js';
import { Rng } from '../tensor/random.js';
import { ProgressBar } from '../util/progress.js';

export interface Completions {
  /** Row r answers prompt promptIndex[r]; the samples of one prompt are consecutive. */
  promptIndex: number[];
  /** Generated ids, with the stop token appended when generation stopped on it. */
  tokens: number[][];
  /** Decoded text (special tokens skipped). */
  texts: string[];
  /** Whether the row ended on a stop token (false: it hit maxNewTokens). */
  stopped: boolean[];
}

export interface SampleOptions {
  samplesPerPrompt: number;
  maxNewTokens: number;
  /** Same seed → same samples (per row, whatever the model). */
  seed: number;
  /** Rows generated together (default 64). */
  batchSize?: number;
  /** 1 = plain sampling from the model (needed for unbiased KL estimates). */
  temperature?: number;
  label?: string;
  quiet?: boolean;
}

/**
 * Draws a token from softmax(logits / temperature) (greedy at temperature ≤ 0): plain sampling
 * with the one sampler, models/generate.ts's sampleToken.
 */
export function sampleFromLogits(logits: Float32Array, temperature: number, rng: Rng): number {
  return sampleToken(logits, { temperature }, rng);
}

/**
 * Samples `samplesPerPrompt` completions for every prompt (ids already encoded, with BOS), with a
 * KV cache, rows left-padded to a common length. Row r draws from its own RNG seeded by (seed, r),
 * so a row's sample depends only on the seed, the row and the model, not on the batching: two
 * models sampled with one seed share random numbers (common random numbers make their comparison
 * less noisy). Plain sampling at temperature 1 by default, as unbiased KL estimates need.
 */
export function sampleCompletions(model: CausalLM, tok: Tokenizer, prompts: readonly (readonly number[])[], o: SampleOptions): Completions {
  const rows: number[] = [];
  for (let p = 0; p < prompts.length; p++) for (let j = 0; j < o.samplesPerPrompt; j++) rows.push(p);
  const bs = o.batchSize ?? 64;
  const temperature = o.temperature ?? 1;
  const out: Completions = { promptIndex: rows, tokens: [], texts: [], stopped: [] };
  const stop = new Set(tok.stopIds);
  const bar = new ProgressBar(o.label ?? 'sample', rows.length, { unit: 'sample', quiet: o.quiet });
  for (let start = 0; start < rows.length; start += bs) {
    const chunk = rows.slice(start, start + bs);
    const rngs = chunk.map((_, b) => new Rng(((o.seed * 1000003) ^ Math.imul(start + b + 1, 0x9e3779b1)) >>> 0));
    const gen = generateTokens(model, chunk.map((p) => prompts[p]!), {
      maxNewTokens: o.maxNewTokens, temperature, padId: tok.padId, stopIds: tok.stopIds, rngs, keepStopToken: true,
    });
    gen.tokens.forEach((g, b) => {
      // Keep the stop token in the ids (its probability is part of the sequence's), not in the text.
      out.tokens.push(g);
      out.stopped.push(gen.finish[b] === 'stop');
      out.texts.push(tok.decode(g.filter((x) => !stop.has(x)), { skipSpecialTokens: true }));
    });
    bar.update(Math.min(rows.length, start + bs));
  }
  bar.finish();
  return out;
}

/**
 * Σ_t log p(completion_t | prompt, completion_<t) for each (prompt, completion) row, in float64.
 * Rows are right-padded; only completion tokens are scored. An empty completion scores 0.
 */
export function completionLogps(
  model: CausalLM, prompts: readonly (readonly number[])[], completions: readonly (readonly number[])[],
  padId: number, batchSize = 32,
): Float64Array {
  if (prompts.length !== completions.length) {
    throw new Error(`completionLogps: ${prompts.length} prompts but ${completions.length} completions`);
  }
  const n = prompts.length;
  const out = new Float64Array(n);
  T.noGrad(() => {
    for (let s = 0; s < n; s += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, n - s) }, (_, i) => s + i);
      const seq = Math.max(...idx.map((i) => prompts[i]!.length + completions[i]!.length));
      if (seq > model.config.maxPositions) {
        throw new RangeError(`completionLogps: a prompt + completion of ${seq} tokens exceeds the model's ${model.config.maxPositions} positions`);
      }
      const B = idx.length;
      const ids = new Int32Array(B * seq).fill(padId);
      const targets = new Int32Array(B * seq).fill(-1);
      idx.forEach((i, r) => {
        const p = prompts[i]!, c = completions[i]!;
        if (p.length === 0) throw new Error(`completionLogps: prompt ${i} is empty (encode it with BOS)`);
        ids.set(p, r * seq);
        ids.set(c, r * seq + p.length);
        // The logits at position t predict token t+1: score the completion tokens only.
        for (let k = 0; k < c.length; k++) targets[r * seq + p.length - 1 + k] = c[k]!;
      });
      const lp = model.tokenLogprobs({ ids, batch: B, seq }, targets);
      // Unscored positions (target −1) hold 0: the row sums are the completions' log-probs.
      const sums = paddedRowSums(lp.data, B, seq);
      idx.forEach((i, r) => (out[i] = sums[r]!));
      lp.dispose();
    }
  });
  return out;
}
