// Tokenizer metadata in the form GGUF files carry (tokenizer.ggml.* keys), for llama.cpp.
// 'gpt2': byte-level BPE (token strings + merges). 'llama': SentencePiece-style BPE (token strings
// with '▁' for space, per-token scores that rank merges, <0xXX> byte tokens).

import type { Tokenizer } from '../tokenizer.js';
import { HfTokenizer } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';

/** llama.cpp token types (enum llama_token_type / gguf-py TokenType). */
export const GGUF_TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface TokenizerGgufMetadata {
  /** tokenizer.ggml.model */
  model: 'llama' | 'gpt2';
  /** tokenizer.ggml.pre: llama.cpp's name of the pre-tokenizer when it is one we recognize (see preTokenizerName). */
  pre?: string;
  /** tokenizer.ggml.tokens, indexed by id (length = vocabSize). */
  tokens: string[];
  /** tokenizer.ggml.scores ('llama' only). */
  scores?: number[];
  /** tokenizer.ggml.token_type */
  tokenTypes?: number[];
  /** tokenizer.ggml.merges ('gpt2' only): "left right" strings, by rank. */
  merges?: string[];
  bosId: number | null;
  eosId: number | null;
  /** Only when the tokenizer names a pad token (not the EOS fallback). */
  padId?: number;
  /** tokenizer.ggml.add_bos_token */
  addBos: boolean;
}

function hasByteLevel(node: unknown): boolean {
  if (typeof node !== 'object' || node === null) return false;
  const n = node as { type?: unknown; pretokenizers?: unknown[]; decoders?: unknown[] };
  if (n.type === 'ByteLevel') return true;
  return [...(n.pretokenizers ?? []), ...(n.decoders ?? [])].some(hasByteLevel);
}

// The split regexes of tokenizers llama.cpp knows by name (llama-vocab.cpp's pre-tokenizer types;
// its converter identifies them by hashing tokenizer output, we compare the pre-tokenizer itself).
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface PreTokenizerNode {
  type?: string;
  use_regex?: boolean;
  individual_digits?: boolean;
  pattern?: { Regex?: string; String?: string };
  pretokenizers?: PreTokenizerNode[];
}

/**
 * llama.cpp's tokenizer.ggml.pre for a byte-level BPE pre-tokenizer: "gpt-2" (ByteLevel with its
 * own regex), "llama-bpe" (Llama 3's split), "qwen2" (Qwen2's: digits one by one), "smollm"
 * (digits split, then GPT-2's regex); undefined when unrecognized (llama.cpp then uses "default").
 */
export function preTokenizerName(pre: unknown): string | undefined {
  if (typeof pre !== 'object' || pre === null) return undefined;
  const p = pre as PreTokenizerNode;
  if (p.type === 'ByteLevel') return p.use_regex !== false ? 'gpt-2' : undefined;
  if (p.type !== 'Sequence' || !p.pretokenizers) return undefined;
  const [a, b, ...rest] = p.pretokenizers;
  if (!a || !b || rest.length > 0) return undefined;
  if (a.type === 'Split' && b.type === 'ByteLevel' && b.use_regex === false) {
    const re = a.pattern?.Regex;
    if (re === LLAMA3_SPLIT) return 'llama-bpe';
    if (re === QWEN2_SPLIT) return 'qwen2';
  }
  if (a.type === 'Digits' && a.individual_digits === true && b.type === 'ByteLevel' && b.use_regex !== false) return 'smollm';
  return undefined;
}

function mergeStrings(merges: (string | [string, string])[] | undefined): string[] {
  return (merges ?? []).map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
}

function fromHf(tok: HfTokenizer): TokenizerGgufMetadata {
  const model = tok.json.model;
  if (model.type !== undefined && model.type !== 'BPE') {
    throw new Error(`tokenizerGgufMetadata: ${tok.source}: ${model.type} tokenizers are not supported (only BPE: GPT-2 byte-level or SentencePiece-style)`);
  }
  const added = new Map((tok.json.added_tokens ?? []).map((t) => [t.id, t]));
  const unkToken = model.unk_token ?? tok.unkToken;
  const unkId = unkToken ? tok.tokenToId(unkToken) : undefined;
  const tokens: string[] = [];
  const tokenTypes: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    const text = tok.idToToken(id);
    const a = added.get(id);
    // Unassigned ids get a placeholder, as llama.cpp's converter writes them.
    tokens.push(text ?? `[PAD${id}]`);
    if (text === undefined) tokenTypes.push(GGUF_TOKEN_TYPE.unused);
    else if (id === unkId) tokenTypes.push(GGUF_TOKEN_TYPE.unknown);
    else if (a) tokenTypes.push(a.special || tok.isSpecial(id) ? GGUF_TOKEN_TYPE.control : GGUF_TOKEN_TYPE.userDefined);
    else if (tok.isSpecial(id)) tokenTypes.push(GGUF_TOKEN_TYPE.control);
    else if (model.byte_fallback && /^<0x[0-9A-F]{2}>$/.test(text)) tokenTypes.push(GGUF_TOKEN_TYPE.byte);
    else tokenTypes.push(GGUF_TOKEN_TYPE.normal);
  }
  const common = {
    tokens,
    tokenTypes,
    bosId: tok.bosId,
    eosId: tok.eosId,
    ...(tok.padIsExplicit ? { padId: tok.padId } : {}),
    addBos: tok.addsBosByDefault,
  };
  const merges = mergeStrings(model.merges);
  if (hasByteLevel(tok.json.pre_tokenizer) || hasByteLevel(tok.json.decoder)) {
    const pre = preTokenizerName(tok.json.pre_tokenizer);
    return { model: 'gpt2', ...(pre ? { pre } : {}), merges, ...common };
  }
  if (!model.byte_fallback) {
    throw new Error(`tokenizerGgufMetadata: ${tok.source}: BPE without ByteLevel or byte_fallback is neither GPT-2 nor SentencePiece style`);
  }
  // llama.cpp's SentencePiece tokenizer merges the adjacent pair whose result has the highest
  // score, so scores must order tokens like the merge ranks: -rank for a merge result, below all
  // of them for tokens no merge makes, 0 for control and byte tokens (as SentencePiece stores).
  const scores = new Array<number>(tok.vocabSize).fill(0);
  for (let id = 0; id < tok.vocabSize; id++) {
    if (tokenTypes[id] === GGUF_TOKEN_TYPE.normal) scores[id] = -merges.length - id;
  }
  merges.forEach((m, rank) => {
    const id = tok.tokenToId(m.replace(' ', ''));
    if (id !== undefined && tokenTypes[id] === GGUF_TOKEN_TYPE.normal && scores[id]! < -rank) scores[id] = -rank;
  });
  return { model: 'llama', scores, ...common };
}

function fromLlama2c(tok: Llama2cTokenizer): TokenizerGgufMetadata {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const tokens: string[] = [];
  const tokenTypes: number[] = [];
  tok.pieces.forEach((piece, id) => {
    if (tok.isSpecial(id)) {
      tokens.push(tok.specialText(id));
      tokenTypes.push(id === tok.unkId ? GGUF_TOKEN_TYPE.unknown : GGUF_TOKEN_TYPE.control);
      return;
    }
    let text: string;
    try {
      text = utf8.decode(piece);
    } catch {
      throw new Error(`tokenizerGgufMetadata: ${tok.source}: token ${id} is not valid UTF-8`);
    }
    // llama2.c's export replaced SentencePiece's '▁' with ' '; GGUF keeps the SentencePiece form.
    tokens.push(text.replaceAll(' ', '\u2581'));
    tokenTypes.push(/^<0x[0-9A-F]{2}>$/.test(text) ? GGUF_TOKEN_TYPE.byte : GGUF_TOKEN_TYPE.normal);
  });
  return {
    model: 'llama',
    tokens,
    scores: Array.from(tok.scores),
    tokenTypes,
    bosId: tok.bosId,
    eosId: tok.eosId,
    addBos: tok.addsBosByDefault,
  };
}

export function tokenizerGgufMetadata(tok: Tokenizer): TokenizerGgufMetadata {
  if (tok instanceof HfTokenizer) return fromHf(tok);
  if (tok instanceof Llama2cTokenizer) return fromLlama2c(tok);
  throw new Error('tokenizerGgufMetadata: unsupported tokenizer (expected one from loadTokenizer or loadLlama2cTokenizer)');
}
