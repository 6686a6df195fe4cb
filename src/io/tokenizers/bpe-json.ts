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
