// tokenizer.json pieces built in more than one place: the GPT-2 vocab/merges loader and the BPE
// trainer both write a GPT-2 style byte-level BPE; the llama2.c converter writes special tokens.

import type { AddedTokenJson, TokenizerJson } from './hf.js';

/** A special added token as Hugging Face writes one: matched anywhere, no stripping, not normalized. */
export function specialAddedToken(id: number, content: string): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

export interface ByteLevelBpeParts {
  vocab: Record<string, number>;
  merges: string[];
  addedTokens: AddedTokenJson[];
  /** The pre-tokenizer's add_prefix_space (a space before the first word). */
  addPrefixSpace: boolean;
  /** The BPE model's unk_token; null when every symbol is in the vocabulary. */
  unkToken: string | null;
}

/**
 * A GPT-2 style tokenizer.json: ByteLevel pre-tokenizer, post-processor and decoder around a BPE
 * model over byte-level symbols (no byte fallback: every byte is a symbol of its own).
 */
export function byteLevelBpeTokenizerJson(p: ByteLevelBpeParts): TokenizerJson {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: p.addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: p.addPrefixSpace, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: p.unkToken,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: p.vocab,
      merges: p.merges,
    },
  };
}

/**
 * SentencePiece-style merges for a BPE tokenizer.json (how Hugging Face's converter builds
 * Llama-2's): every split of a mergeable piece, at codepoint boundaries, into two mergeable pieces,
 * ranked by the merged piece's score (highest first), then its id, then the length of the left
 * part. isResult can further restrict which pieces a merge may produce.
 */
export function scoredMerges(
  tokens: readonly string[], scores: ArrayLike<number>, mergeable: (id: number) => boolean,
  isResult: (id: number) => boolean = () => true,
): string[] {
  const ids = new Map<string, number>();
  tokens.forEach((t, id) => {
    if (mergeable(id)) ids.set(t, id);
  });
  const found: { score: number; id: number; leftLen: number; merge: string }[] = [];
  for (let id = 0; id < tokens.length; id++) {
    if (!mergeable(id) || !isResult(id)) continue;
    const score = scores[id]!;
    // Codepoint boundaries: a split inside a codepoint would leave invalid UTF-8 on both sides.
    const cps = Array.from(tokens[id]!);
    let left = '';
    for (let k = 1; k < cps.length; k++) {
      left += cps[k - 1]!;
      const right = cps.slice(k).join('');
      if (ids.has(left) && ids.has(right)) found.push({ score, id, leftLen: k, merge: `${left} ${right}` });
    }
  }
  found.sort((a, b) => b.score - a.score || a.id - b.id || a.leftLen - b.leftLen);
  return found.map((m) => m.merge);
}
