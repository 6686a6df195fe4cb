// Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p), seeded,
// batched prompts with left padding, EOS and stop strings, streaming through a callback.

import type { Tokenizer } from './tokenizer.js';
import { Rng } from '../tensor/random.js';
import type { CausalLM } from './model.js';
import type { KVCache } from './kv-cache.js';
import { release } from '../tensor/memory.js';

export interface SamplingOptions {
  /** Tokens to generate at most (default 128). */
  maxNewTokens?: number;
  /** 0 = greedy (default 1). */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off). */
  topK?: number;
  /** Nucleus sampling: the smallest set with probability ≥ p (1 = off). */
  topP?: number;
  /** Seed of the sampling RNG: the same seed gives the same text. Default 0. */
  seed?: number;
  /** Generation ends at any of these strings (the string itself is not returned). */
  stopStrings?: readonly string[];
  /** Token ids that end generation (default: the tokenizer's stop ids). */
  stopIds?: readonly number[];
}

export interface GenerateResult {
  /** Generated token ids per prompt (without the stop token). */
  tokens: number[][];
  /** Decoded generated text per prompt (cut at a stop string). */
  texts: string[];
  /** Why each row ended. */
  finish: ('stop' | 'length')[];
}

/** Called with each row's newly decoded text as it is produced. */
export type StreamCallback = (row: number, textDelta: string) => void;

// Scratch of sortedHead, kept between calls: sampling allocates nothing per token (a comparator
// sort over boxed logits allocated ~17 KiB per token and candidate; add-prompts spent most of its
// 46 MB of JS garbage per prompt there).
let packed = new Float64Array(0);
let headIdx = new Int32Array(0);
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** Index bits of a packed sort key: vocabularies up to 2^21 entries (larger ones sort with a comparator). */
const INDEX_BITS = 21;
const INDEX_SPAN = 2 ** INDEX_BITS;

/**
 * Indices of the logits ≥ the largest (`top`) − d for the smallest d (1, 4, 16, …) that keeps at
 * least `need` entries (or, with a temperature, their weights exp((l − top)/temperature) summing
 * to ≥ `needWeight`), sorted by logit descending then index: the head of the fully sorted order,
 * without sorting the whole vocabulary. Returns a count; the indices are headIdx[0..count).
 */
function sortedHead(logits: Float32Array, top: number, need: number, temperature = 0, needWeight = 0): number {
  const V = logits.length;
  if (packed.length < V) {
    packed = new Float64Array(V);
    headIdx = new Int32Array(V);
  }
  let d = 1;
  for (;;) {
    const bound = top - d;
    let n = 0, w = 0;
    for (let i = 0; i < V; i++) {
      if (logits[i]! >= bound) {
        headIdx[n++] = i;
        if (temperature > 0) w += Math.exp((logits[i]! - top) / temperature);
      }
    }
    if ((n >= need && (temperature <= 0 || w >= needWeight)) || !Number.isFinite(bound) || n === V) {
      sortHead(logits, n);
      return n;
    }
    d = d >= 1e6 ? Infinity : d * 4;
  }
}

/** Sorts headIdx[0..n) by logit descending, then index ascending. */
function sortHead(logits: Float32Array, n: number): void {
  if (logits.length > INDEX_SPAN) {
    const sorted = Array.from(headIdx.subarray(0, n)).sort((a, b) => logits[b]! - logits[a]! || a - b);
    headIdx.set(sorted);
    return;
  }
  // One float64 per candidate: (the logit's order-preserving bits, flipped for descending) · 2^21
  // + its index, exact below 2^53; a plain numeric sort then gives the order without a comparator.
  for (let j = 0; j < n; j++) {
    const i = headIdx[j]!;
    f32[0] = logits[i]! + 0; // −0 → +0: the two compare equal, as in the comparator
    const u = u32[0]!;
    const ordered = u & 0x80000000 ? ~u >>> 0 : (u | 0x80000000) >>> 0;
    packed[j] = (0xffffffff - ordered) * INDEX_SPAN + i;
  }
  const keys = packed.subarray(0, n).sort();
  for (let j = 0; j < n; j++) headIdx[j] = keys[j]! % INDEX_SPAN;
}

/**
 * Samples one token from logits (length V) with the given options: top-k cut, then softmax at the
 * temperature, then the top-p nucleus; candidates are taken in descending-logit order. Only the
 * head of the vocabulary that can matter is sorted, not all of it.
 */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  const temperature = opts.temperature ?? 1;
  const V = logits.length;
  let m = -Infinity, best = 0;
  for (let i = 0; i < V; i++) {
    if (logits[i]! > m) {
      m = logits[i]!;
      best = i;
    }
  }
  if (temperature <= 0) return best;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  // The candidates: headIdx[0..n) in sorted order, or (n < 0) the whole vocabulary.
  let n = -1;
  if (topK > 0 && topK < V) n = Math.min(topK, sortedHead(logits, m, topK));
  if (topP < 1) {
    let total = 0;
    if (n >= 0) for (let j = 0; j < n; j++) total += Math.exp((logits[headIdx[j]!]! - m) / temperature);
    else for (let i = 0; i < V; i++) total += Math.exp((logits[i]! - m) / temperature);
    // The nucleus is a prefix of the sorted order: sort only a head heavy enough to contain it.
    const len = n >= 0 ? n : sortedHead(logits, m, 1, temperature, topP * total);
    let acc = 0, cut = len;
    for (let j = 0; j < len; j++) {
      acc += Math.exp((logits[headIdx[j]!]! - m) / temperature) / total;
      if (acc >= topP) {
        cut = j + 1;
        break;
      }
    }
    n = cut;
  }
  if (n >= 0) {
    let total = 0;
    for (let j = 0; j < n; j++) total += Math.exp((logits[headIdx[j]!]! - m) / temperature);
    let u = rng.next() * total;
    for (let j = 0; j < n; j++) {
      u -= Math.exp((logits[headIdx[j]!]! - m) / temperature);
      if (u < 0) return headIdx[j]!;
    }
    return headIdx[n - 1]!;
  }
  // Plain sampling over the whole vocabulary: the order of the walk does not change the distribution.
  let total = 0;
  for (let i = 0; i < V; i++) total += Math.exp((logits[i]! - m) / temperature);
  let u = rng.next() * total;
  for (let i = 0; i < V; i++) {
    u -= Math.exp((logits[i]! - m) / temperature);
    if (u < 0) return i;
  }
  return best;
}

/**
 * Generates continuations of token-id prompts. Rows are left-padded to a common length, so a
 * batch gives the same greedy tokens as one prompt at a time.
 */
export function generateTokens(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: SamplingOptions & {
    padId: number;
    onToken?: (row: number, token: number, soFar: readonly number[]) => boolean | void;
    /** One RNG per row (overrides seed): a row's sample then depends only on its own RNG. */
    rngs?: readonly Rng[];
    /** Keep the stop token at the end of a row that ended on one (default: dropped). */
    keepStopToken?: boolean;
  },
): { tokens: number[][]; finish: ('stop' | 'length')[] } {
  const B = prompts.length;
  if (B === 0) return { tokens: [], finish: [] };
  const maxNew = opts.maxNewTokens ?? 128;
  const longest = Math.max(...prompts.map((p) => p.length));
  if (longest === 0) throw new Error('generate: an empty prompt (encode with a BOS token, or give some text)');
  const capacity = longest + maxNew;
  if (capacity > model.config.maxPositions) {
    throw new RangeError(`generate: prompt (${longest} tokens) + max new tokens (${maxNew}) exceed the model's ${model.config.maxPositions} positions`);
  }
  const stop = new Set(opts.stopIds ?? []);
  const ids = new Int32Array(B * longest);
  const kvStart = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const p = prompts[b]!;
    const pad = longest - p.length;
    kvStart[b] = pad;
    ids.fill(opts.padId, b * longest, b * longest + pad);
    ids.set(p, b * longest + pad);
  }
  const seed = opts.seed ?? 0;
  // One RNG per row, so a row's sample does not depend on the others in the batch.
  if (opts.rngs && opts.rngs.length !== B) throw new RangeError(`generate: ${opts.rngs.length} RNGs for ${B} prompts`);
  const rngs = opts.rngs ?? Array.from({ length: B }, (_, b) => new Rng(seed + 0x9e3779b9 * b));
  const cache = model.newCache(B, capacity);
  const anyStart = kvStart.some((s) => s > 0) ? kvStart : null;
  // The cache and each token's logits go back to the tensor pool as soon as they are used.
  try {
    return sampleLoop(model, cache, model.forwardCached(ids, longest, cache, anyStart), anyStart, B, maxNew, stop, rngs, opts);
  } finally {
    cache.dispose();
  }
}

function sampleLoop(
  model: CausalLM, cache: KVCache, logits: Float32Array, anyStart: Int32Array | null, B: number, maxNew: number, stop: ReadonlySet<number>,
  rngs: readonly Rng[], opts: SamplingOptions & { padId: number; onToken?: (row: number, token: number, soFar: readonly number[]) => boolean | void; keepStopToken?: boolean },
): { tokens: number[][]; finish: ('stop' | 'length')[] } {
  const V = model.config.vocabSize;
  const out: number[][] = Array.from({ length: B }, () => []);
  const finish: ('stop' | 'length')[] = new Array(B).fill('length');
  const done = new Array<boolean>(B).fill(false);
  const step = new Int32Array(B);
  for (let t = 0; t < maxNew; t++) {
    for (let b = 0; b < B; b++) {
      if (done[b]) {
        step[b] = opts.padId;
        continue;
      }
      const tok = sampleToken(logits.subarray(b * V, (b + 1) * V), opts, rngs[b]!);
      step[b] = tok;
      if (stop.has(tok)) {
        done[b] = true;
        finish[b] = 'stop';
        if (opts.keepStopToken) out[b]!.push(tok);
        continue;
      }
      out[b]!.push(tok);
      if (opts.onToken && opts.onToken(b, tok, out[b]!) === false) {
        done[b] = true;
        finish[b] = 'stop';
      }
    }
    release(logits);
    if (done.every(Boolean) || t === maxNew - 1) return { tokens: out, finish };
    logits = model.forwardCached(step, 1, cache, anyStart);
  }
  release(logits);
  return { tokens: out, finish };
}

/**
 * Generates text for string prompts (encoded with the tokenizer's BOS convention), streaming
 * decoded text through onText, ending at EOS/stop ids or stop strings.
 */
export function generate(
  model: CausalLM,
  tokenizer: Tokenizer,
  prompts: readonly string[],
  opts: SamplingOptions & { onText?: StreamCallback } = {},
): GenerateResult {
  const encoded = prompts.map((p) => tokenizer.encode(p));
  // Decode generated tokens in the context of their prompt, so tokenizers whose pieces depend on
  // what precedes them (SentencePiece's leading space after BOS) give the text a reader expects.
  const promptText = encoded.map((ids) => tokenizer.decode(ids, { skipSpecialTokens: true }));
  const decodeRow = (row: number, gen: readonly number[]): string => {
    const full = tokenizer.decode([...encoded[row]!, ...gen], { skipSpecialTokens: true });
    const p = promptText[row]!;
    return full.startsWith(p) ? full.slice(p.length) : tokenizer.decode(gen, { skipSpecialTokens: true });
  };
  const stopStrings = (opts.stopStrings ?? []).filter((s) => s.length > 0);
  const texts = prompts.map(() => '');
  const emitted = prompts.map(() => 0);
  const cut = prompts.map(() => false);
  const gen = generateTokens(model, encoded, {
    ...opts,
    stopIds: opts.stopIds ?? tokenizer.stopIds,
    padId: tokenizer.padId,
    onToken: (row, _tok, soFar) => {
      // Decode the row's tokens so far (handles multi-byte characters split over tokens).
      const text = decodeRow(row, soFar);
      texts[row] = text;
      let stopAt = -1;
      for (const s of stopStrings) {
        const i = text.indexOf(s);
        if (i >= 0 && (stopAt < 0 || i < stopAt)) stopAt = i;
      }
      if (stopAt >= 0) {
        texts[row] = text.slice(0, stopAt);
        cut[row] = true;
      }
      if (opts.onText) {
        // Hold back text that may be the start of a stop string, and an incomplete character.
        let safe = texts[row]!.length;
        if (!cut[row]) {
          for (const s of stopStrings) {
            for (let k = Math.min(s.length - 1, safe); k > 0; k--) {
              if (texts[row]!.endsWith(s.slice(0, k))) {
                safe = Math.min(safe, texts[row]!.length - k);
                break;
              }
            }
          }
          if (texts[row]!.endsWith('\uFFFD')) safe = Math.min(safe, texts[row]!.length - 1);
        }
        if (safe > emitted[row]!) {
          opts.onText(row, texts[row]!.slice(emitted[row], safe));
          emitted[row] = safe;
        }
      }
      return cut[row] ? false : undefined;
    },
  });
  for (let b = 0; b < gen.tokens.length; b++) {
    if (!cut[b]) texts[b] = decodeRow(b, gen.tokens[b]!);
    if (opts.onText && texts[b]!.length > emitted[b]!) opts.onText(b, texts[b]!.slice(emitted[b]));
  }
  return { tokens: gen.tokens, texts, finish: gen.finish.map((f, b) => (cut[b] ? 'stop' : f)) };
}
