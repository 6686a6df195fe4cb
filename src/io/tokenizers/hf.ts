// Hugging Face tokenizers (tokenizer.json + tokenizer_config.json), run by Hugging Face's own JS
// implementation (@huggingface/tokenizers). This file adds what the project's Tokenizer interface
// needs on top: explicit BOS/EOS/pad/stop ids, "BOS exactly once", and chat templates.

import { Tokenizer as HfJsTokenizer } from '@huggingface/tokenizers';
import type { ChatMessage, EncodeOptions, Tokenizer } from '../tokenizer.js';
import { renderChatTemplate, selectChatTemplate } from './chat.js';

/** The parts of tokenizer.json this module reads (the file has more; all of it goes to the library). */
export interface TokenizerJson {
  version?: string;
  added_tokens?: AddedTokenJson[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: PostProcessorJson | null;
  decoder?: unknown;
  model: TokenizerModelJson;
  [key: string]: unknown;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

export interface TokenizerModelJson {
  type?: string;
  /** BPE / WordPiece: token → id. Unigram: [piece, score][]. */
  vocab: Record<string, number> | [string, number][];
  /** BPE only: "a b" strings (classic) or [a, b] pairs (tokenizers >= 0.20). */
  merges?: (string | [string, string])[];
  unk_token?: string | null;
  byte_fallback?: boolean;
  [key: string]: unknown;
}

export interface PostProcessorJson {
  type: string;
  single?: ({ SpecialToken: { id: string } } | { Sequence: { id: string } })[];
  processors?: PostProcessorJson[];
  [key: string]: unknown;
}

/** tokenizer_config.json; special tokens are strings or AddedToken-like objects ({content}). */
export type TokenizerConfigJson = Record<string, unknown>;

export interface HfTokenizerSources {
  tokenizerJson: TokenizerJson;
  /** tokenizer_config.json (may be {}). */
  config?: TokenizerConfigJson;
  /** special_tokens_map.json, consulted when tokenizer_config.json does not name a token. */
  specialTokensMap?: Record<string, unknown>;
  /** generation_config.json: eos_token_id (number or list), pad_token_id, bos_token_id. */
  generationConfig?: Record<string, unknown>;
  /** chat_template.jinja (newer transformers save the template there instead of in the config). */
  chatTemplateFile?: string;
  /** Where this came from, for error messages. */
  source?: string;
}

/**
 * End-of-turn markers of common chat formats. Generation must stop on them even when the config's
 * eos_token is the document end (e.g. Llama-3 base: eos <|end_of_text|>, turns end with <|eot_id|>).
 */
export const END_OF_TURN_TOKENS = ['<|eot_id|>', '<|eom_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>'];

function tokenString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

/** First TemplateProcessing inside a (possibly Sequence) post-processor. */
export function findTemplateProcessing(pp: PostProcessorJson | null | undefined): PostProcessorJson | null {
  if (!pp) return null;
  if (pp.type === 'TemplateProcessing') return pp;
  if (pp.type === 'Sequence' && Array.isArray(pp.processors)) {
    for (const p of pp.processors) {
      const found = findTemplateProcessing(p);
      if (found) return found;
    }
  }
  return null;
}

function idList(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  return [];
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly stopIds: readonly number[];
  readonly padId: number;
  /** Whether the pad id was named by the files (false: padId is the eosId fallback). */
  readonly padIsExplicit: boolean;
  readonly addsBosByDefault: boolean;
  readonly chatTemplate: string | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  /** The tokenizer.json object this tokenizer runs (read-only use: GGUF export, saving). */
  readonly json: TokenizerJson;
  readonly config: TokenizerConfigJson;
  readonly source: string;

  private readonly hf: HfJsTokenizer;
  private readonly specialIds: Set<number>;
  private readonly cleanUpSpaces: boolean;

  constructor(src: HfTokenizerSources) {
    const source = src.source ?? 'tokenizer.json';
    this.source = source;
    this.json = src.tokenizerJson;
    if (typeof this.json !== 'object' || this.json === null || typeof this.json.model !== 'object' || this.json.model === null) {
      throw new Error(`${source}: not a tokenizer.json (no "model" object)`);
    }
    const config: TokenizerConfigJson = { ...(src.config ?? {}) };
    this.config = config;
    const stm = src.specialTokensMap ?? {};
    const gen = src.generationConfig ?? {};

    // The library wants added_tokens to be an array; files written by old versions may omit it.
    const json: TokenizerJson = { ...this.json, added_tokens: this.json.added_tokens ?? [] };
    try {
      this.hf = new HfJsTokenizer(json, config);
    } catch (err) {
      throw new Error(`${source}: @huggingface/tokenizers cannot load it: ${(err as Error).message}`);
    }

    // vocab ids may have holes; the size is one past the largest id anywhere.
    let maxId = -1;
    const vocab = this.hf.model?.vocab ?? [];
    for (let i = vocab.length - 1; i >= 0; i--) {
      if (vocab[i] !== undefined) {
        maxId = i;
        break;
      }
    }
    for (const t of json.added_tokens ?? []) maxId = Math.max(maxId, t.id);
    this.vocabSize = maxId + 1;

    const lookup = (field: string): { token: string | null; id: number | null } => {
      const raw = field in config ? config[field] : stm[field];
      const token = tokenString(raw);
      if (token === null) return { token: null, id: null };
      const id = this.hf.token_to_id(token);
      if (id === undefined) throw new Error(`${source}: ${field} "${token}" is not in the vocabulary`);
      return { token, id };
    };
    const bos = lookup('bos_token');
    const eos = lookup('eos_token');
    const pad = lookup('pad_token');
    const unk = lookup('unk_token');
    this.bosToken = bos.token;
    this.eosToken = eos.token;
    this.unkToken = unk.token;

    const genEos = idList(gen.eos_token_id);
    for (const id of genEos) {
      if (id < 0 || id >= this.vocabSize) throw new Error(`${source}: generation_config eos_token_id ${id} is outside the vocabulary (size ${this.vocabSize})`);
    }
    this.bosId = bos.id ?? idList(gen.bos_token_id)[0] ?? null;
    this.eosId = eos.id ?? genEos[0] ?? null;

    const stops: number[] = [];
    const addStop = (id: number | null | undefined) => {
      if (id !== null && id !== undefined && !stops.includes(id)) stops.push(id);
    };
    addStop(this.eosId);
    genEos.forEach(addStop);
    for (const marker of END_OF_TURN_TOKENS) addStop(this.hf.token_to_id(marker));
    this.stopIds = stops;

    const genPad = idList(gen.pad_token_id)[0];
    if (pad.id !== null) {
      this.padId = pad.id;
      this.padToken = pad.token;
      this.padIsExplicit = true;
    } else if (genPad !== undefined) {
      this.padId = genPad;
      this.padToken = this.hf.id_to_token(genPad) ?? null;
      this.padIsExplicit = true;
    } else if (this.eosId !== null) {
      this.padId = this.eosId;
      this.padToken = this.eosToken;
      this.padIsExplicit = false;
    } else {
      throw new Error(`${source}: defines neither pad_token nor eos_token, so there is no padding id`);
    }

    // add_bos_token in the config wins; otherwise the post-processor tells (Llama's
    // TemplateProcessing starts with the BOS special token; GPT-2's ByteLevel one adds nothing).
    if (typeof config.add_bos_token === 'boolean') {
      this.addsBosByDefault = config.add_bos_token;
    } else {
      const tp = findTemplateProcessing(json.post_processor);
      const first = tp?.single?.[0];
      this.addsBosByDefault = !!first && 'SpecialToken' in first && this.bosToken !== null && first.SpecialToken.id === this.bosToken;
    }
    if (this.addsBosByDefault && this.bosId === null) {
      throw new Error(`${source}: adds BOS by default but names no bos_token`);
    }

    this.chatTemplate = selectChatTemplate(config.chat_template, `${source} (tokenizer_config.json)`) ?? src.chatTemplateFile ?? null;
    // transformers' default changed to False in v4.45; lossless decoding needs it off, so it is on
    // only when a config asks for it explicitly (e.g. old GPT-2 configs).
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;

    this.specialIds = new Set<number>();
    for (const t of json.added_tokens ?? []) if (t.special) this.specialIds.add(t.id);
    for (const id of [this.bosId, this.eosId, this.padIsExplicit ? this.padId : null, unk.id, ...this.stopIds]) {
      if (id !== null) this.specialIds.add(id);
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`${this.source}: encode expects a string, got ${typeof text}`);
    const addBos = opts.addBos ?? this.addsBosByDefault;
    // Special tokens are always handled here, never by the post-processor, so no EOS sneaks in
    // and BOS is added at most once.
    const ids = text.length === 0 ? [] : this.hf.encode(text, { add_special_tokens: false }).ids;
    if (addBos) {
      if (this.bosId === null) throw new Error(`${this.source}: encode(addBos) but the tokenizer has no BOS token`);
      if (ids[0] !== this.bosId) ids.unshift(this.bosId);
    }
    return ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`${this.source}: decode: ids[${i}] = ${id} is not a token id (vocabulary size ${this.vocabSize})`);
      }
    }
    if (ids.length === 0) return '';
    const skip = opts.skipSpecialTokens ?? false;
    const kept = skip ? ids.filter((id) => !this.specialIds.has(id)) : [...ids];
    if (kept.length === 0) return '';
    return this.hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (this.chatTemplate === null) {
      throw new Error(`${this.source}: this tokenizer has no chat template (tokenizer_config.json chat_template)`);
    }
    return renderChatTemplate(this.chatTemplate, messages, {
      bosToken: this.bosToken,
      eosToken: this.eosToken,
      addGenerationPrompt: opts.addGenerationPrompt ?? false,
      extra: { pad_token: this.padToken ?? undefined, unk_token: this.unkToken ?? undefined },
    });
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The token string of id (byte-level/sentencepiece form), or undefined. */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }
}
