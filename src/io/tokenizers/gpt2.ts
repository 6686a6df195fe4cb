// GPT-2 style vocab.json + merges.txt → the equivalent byte-level BPE tokenizer.json, built in
// memory so the same Hugging Face implementation runs it (this is what transformers'
// GPT2Converter does when it turns a slow GPT-2 tokenizer into a fast one).

import { byteLevelBpeTokenizerJson, specialAddedToken } from './bpe-json.js';
import type { AddedTokenJson, TokenizerConfigJson, TokenizerJson } from './hf.js';

/** Parses merges.txt: an optional "#version" line, then one "left right" pair per line. */
export function parseMergesTxt(text: string, source = 'merges.txt'): string[] {
  const merges: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.length === 0) continue;
    if (i === 0 && line.startsWith('#version')) continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new Error(`${source}:${i + 1}: expected "left right", got ${JSON.stringify(line)}`);
    }
    merges.push(line);
  }
  return merges;
}

function specialName(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

/**
 * Builds a GPT-2 tokenizer.json object. Added tokens come from tokenizer_config.json's
 * added_tokens_decoder (with their flags) plus the named special tokens (bos/eos/unk/pad and
 * additional_special_tokens) found in the vocabulary, so they are split out of text as whole tokens.
 */
export function gpt2TokenizerJson(
  vocab: Record<string, number>,
  merges: string[],
  config: TokenizerConfigJson = {},
  specialTokensMap: Record<string, unknown> = {},
  source = 'vocab.json',
): TokenizerJson {
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) throw new Error(`${source}: expected an object of token → id`);
  for (const [tok, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id) || id < 0) throw new Error(`${source}: token ${JSON.stringify(tok)} has invalid id ${id}`);
  }
  for (const m of merges) {
    const [a, b] = m.split(' ') as [string, string];
    if (!(a + b in vocab)) throw new Error(`${source}: merge "${m}" produces "${a + b}", which is not in the vocabulary`);
  }

  const added = new Map<number, AddedTokenJson>();
  const decoderEntries = config.added_tokens_decoder;
  if (typeof decoderEntries === 'object' && decoderEntries !== null) {
    for (const [idText, entry] of Object.entries(decoderEntries as Record<string, Record<string, unknown>>)) {
      const id = Number(idText);
      const content = specialName(entry);
      if (!Number.isInteger(id) || content === null) throw new Error(`${source}: bad added_tokens_decoder entry ${idText}`);
      added.set(id, {
        id,
        content,
        single_word: entry.single_word === true,
        lstrip: entry.lstrip === true,
        rstrip: entry.rstrip === true,
        normalized: entry.normalized === true,
        special: entry.special !== false,
      });
    }
  }
  const named: string[] = [];
  for (const field of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    const name = specialName(field in config ? config[field] : specialTokensMap[field]);
    if (name !== null) named.push(name);
  }
  const extra = config.additional_special_tokens ?? specialTokensMap.additional_special_tokens;
  if (Array.isArray(extra)) for (const t of extra) if (specialName(t) !== null) named.push(specialName(t)!);
  for (const name of named) {
    const id = vocab[name];
    if (id === undefined || added.has(id)) continue;
    added.set(id, specialAddedToken(id, name));
  }

  // GPT-2 has no unk token in its BPE model; a named one that exists is used for unknown symbols
  // (the slow GPT2Tokenizer maps unknown tokens to unk_token the same way).
  const unk = specialName(config.unk_token ?? specialTokensMap.unk_token);
  return byteLevelBpeTokenizerJson({
    vocab,
    merges,
    addedTokens: [...added.values()].sort((x, y) => x.id - y.id),
    addPrefixSpace: config.add_prefix_space === true,
    unkToken: unk !== null && unk in vocab ? unk : null,
  });
}
