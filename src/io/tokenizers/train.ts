// Byte-level BPE training (GPT-2 style), for the offline demo: produces a tokenizer.json object
// that @huggingface/tokenizers (and the Rust `tokenizers`) load.
//
// Algorithm, as in the Rust `tokenizers` BpeTrainer: split text into GPT-2 pre-tokens, count
// distinct words, start from the 256 byte symbols, then repeatedly merge the most frequent adjacent
// pair. Pair counts are kept incrementally: a merge only revisits the words that contain its pair
// (an index pair → words), and a lazy max-heap re-queues pairs whose count went stale.

import { BYTE_TO_UNICODE, GPT2_SPLIT_PATTERN, toByteLevel } from './bytelevel.js';
import { byteLevelBpeTokenizerJson, specialAddedToken } from './bpe-json.js';
import type { TokenizerJson } from './hf.js';
import { MaxHeap } from './heap.js';

export interface TrainByteLevelBpeOptions {
  /** Final vocabulary size, special tokens included (at least 256 + specialTokens.length). */
  vocabSize: number;
  /** Tokens with ids 0..k-1, never split and never learnt from (e.g. '<|endoftext|>'). */
  specialTokens?: readonly string[];
  /** Stop when the most frequent pair occurs fewer times than this. Default 2. */
  minFrequency?: number;
}

// Pair (a, b) as one number: ids stay below 2^21, so a * 2^21 + b is an exact integer.
const PAIR_SHIFT = 2 ** 21;
const pairKey = (a: number, b: number) => a * PAIR_SHIFT + b;

interface HeapEntry {
  count: number;
  a: number;
  b: number;
}

// Max-heap by count; ties go to the smaller (a, b), the order the Rust trainer uses.
function before(x: HeapEntry, y: HeapEntry): boolean {
  if (x.count !== y.count) return x.count > y.count;
  if (x.a !== y.a) return x.a < y.a;
  return x.b < y.b;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Counts GPT-2 pre-tokens of all texts, with special tokens cut out first. */
function countWords(texts: Iterable<string>, specialTokens: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  // Longest first so a special token that contains another one wins.
  const specials = [...specialTokens].sort((x, y) => y.length - x.length);
  const splitter = specials.length > 0 ? new RegExp(specials.map(escapeRegExp).join('|'), 'g') : null;
  let index = 0;
  for (const text of texts) {
    if (typeof text !== 'string') throw new TypeError(`trainByteLevelBpe: texts[${index}] is ${typeof text}, not a string`);
    index++;
    const parts = splitter ? text.split(splitter) : [text];
    for (const part of parts) {
      for (const m of part.matchAll(GPT2_SPLIT_PATTERN)) {
        const w = m[0];
        counts.set(w, (counts.get(w) ?? 0) + 1);
      }
    }
  }
  return counts;
}

/**
 * Trains a GPT-2 style byte-level BPE tokenizer. Deterministic: the same texts and options give
 * an identical tokenizer.json. Every byte is in the vocabulary, so any text round-trips.
 */
export function trainByteLevelBpe(texts: Iterable<string>, opts: TrainByteLevelBpeOptions): TokenizerJson {
  const specialTokens = opts.specialTokens ?? [];
  const minFrequency = opts.minFrequency ?? 2;
  const { vocabSize } = opts;
  if (new Set(specialTokens).size !== specialTokens.length) throw new Error(`trainByteLevelBpe: duplicate special tokens: ${specialTokens.join(', ')}`);
  if (specialTokens.some((t) => t.length === 0)) throw new Error('trainByteLevelBpe: empty special token');
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specialTokens.length || vocabSize >= PAIR_SHIFT) {
    throw new Error(`trainByteLevelBpe: vocabSize ${vocabSize} must be an integer in [${256 + specialTokens.length}, ${PAIR_SHIFT}) (256 bytes + ${specialTokens.length} special tokens)`);
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new Error(`trainByteLevelBpe: minFrequency ${minFrequency} must be an integer >= 1`);

  // Vocabulary: special tokens, then the byte alphabet sorted by code point (as the Rust trainer does).
  const idToToken: string[] = [...specialTokens];
  const tokenToId = new Map<string, number>();
  idToToken.forEach((t, i) => tokenToId.set(t, i));
  for (const ch of [...BYTE_TO_UNICODE].sort((x, y) => x.codePointAt(0)! - y.codePointAt(0)!)) {
    if (tokenToId.has(ch)) throw new Error(`trainByteLevelBpe: special token ${JSON.stringify(ch)} collides with a byte symbol`);
    tokenToId.set(ch, idToToken.length);
    idToToken.push(ch);
  }

  // Distinct words as symbol-id arrays, in first-seen order (deterministic).
  const wordCounts = countWords(texts, specialTokens);
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [w, c] of wordCounts) {
    words.push(Array.from(toByteLevel(w), (ch) => tokenToId.get(ch)!));
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi]!;
    for (let i = 0; i + 1 < w.length; i++) {
      const k = pairKey(w[i]!, w[i + 1]!);
      pairCount.set(k, (pairCount.get(k) ?? 0) + freq[wi]!);
      let set = pairWords.get(k);
      if (!set) pairWords.set(k, (set = new Set()));
      set.add(wi);
    }
  }
  const heap = new MaxHeap<HeapEntry>(before);
  for (const [k, count] of pairCount) heap.push({ count, a: Math.floor(k / PAIR_SHIFT), b: k % PAIR_SHIFT });

  const merges: string[] = [];
  const recorded = new Set<number>();
  while (idToToken.length < vocabSize && heap.size > 0) {
    const top = heap.pop();
    const key = pairKey(top.a, top.b);
    const current = pairCount.get(key) ?? 0;
    if (current !== top.count) {
      // Stale: the count changed since this entry was queued; queue the current count instead.
      if (current > 0) heap.push({ count: current, a: top.a, b: top.b });
      continue;
    }
    if (current < minFrequency) break;

    const left = idToToken[top.a]!;
    const right = idToToken[top.b]!;
    const mergedToken = left + right;
    let merged = tokenToId.get(mergedToken);
    if (merged === undefined) {
      merged = idToToken.length;
      idToToken.push(mergedToken);
      tokenToId.set(mergedToken, merged);
    }
    // A pair can come back when a merge re-creates an existing token; it is applied again but
    // listed once (a second rank for the same pair would be dead weight in merges).
    if (!recorded.has(key)) {
      recorded.add(key);
      merges.push(`${left} ${right}`);
    }

    // Rewrite every word that contains the pair, moving its pair counts from old to new pairs.
    const touched = new Set<number>();
    const affected = pairWords.get(key)!;
    pairWords.delete(key);
    for (const wi of affected) {
      const w = words[wi]!;
      const f = freq[wi]!;
      const nw: number[] = [];
      let changed = false;
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === top.a && w[i + 1] === top.b) {
          nw.push(merged);
          i++;
          changed = true;
        } else {
          nw.push(w[i]!);
        }
      }
      if (!changed) continue;
      for (let i = 0; i + 1 < w.length; i++) {
        const k = pairKey(w[i]!, w[i + 1]!);
        pairCount.set(k, pairCount.get(k)! - f);
        touched.add(k);
      }
      for (let i = 0; i + 1 < nw.length; i++) {
        const k = pairKey(nw[i]!, nw[i + 1]!);
        pairCount.set(k, (pairCount.get(k) ?? 0) + f);
        touched.add(k);
        let set = pairWords.get(k);
        if (!set) pairWords.set(k, (set = new Set()));
        set.add(wi);
      }
      words[wi] = nw;
    }
    pairCount.delete(key);
    // Increased counts must be queued (a decreased one is caught as stale when popped). The heap
    // orders ties by (a, b), so the push order does not affect the result.
    for (const k of touched) {
      if (k === key) continue;
      const c = pairCount.get(k)!;
      if (c <= 0) {
        pairCount.delete(k);
        continue;
      }
      heap.push({ count: c, a: Math.floor(k / PAIR_SHIFT), b: k % PAIR_SHIFT });
    }
  }

  // Special tokens are added tokens and also model vocabulary entries, as the Rust trainer writes
  // them: every id in 0..size-1 is then present in the model.
  const vocab: Record<string, number> = {};
  idToToken.forEach((t, i) => (vocab[t] = i));

  return byteLevelBpeTokenizerJson({
    vocab,
    merges,
    addedTokens: specialTokens.map((content, id) => specialAddedToken(id, content)),
    addPrefixSpace: false,
    unkToken: null,
  });
}
