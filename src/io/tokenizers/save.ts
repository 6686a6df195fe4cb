// Writes a tokenizer directory that transformers' AutoTokenizer, @huggingface/tokenizers and this
// project's loadTokenizer all read: tokenizer.json, tokenizer_config.json, special_tokens_map.json.

import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Tokenizer } from '../tokenizer.js';
import { TOKENIZER_FILE_NAMES } from '../hf-dir.js';
import { HfTokenizer, type TokenizerJson } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import { llama2cTokenizerFiles } from './llama2c-hf.js';

export interface SaveTokenizerOptions {
  /** BOS token string (null: none). */
  bos: string | null;
  /** EOS token string. */
  eos: string;
  /** Padding token string (null: none; padding then uses EOS). */
  pad?: string | null;
  /** Whether encode() adds BOS by default (add_bos_token). Default false, as for GPT-2. */
  addBos?: boolean;
  chatTemplate?: string;
  /** model_max_length in tokenizer_config.json (the model's context length). */
  modelMaxLength?: number;
}

function tokenIdIn(json: TokenizerJson, token: string): number | undefined {
  const added = json.added_tokens?.find((t) => t.content === token);
  if (added) return added.id;
  const vocab = json.model.vocab;
  if (Array.isArray(vocab)) {
    const i = vocab.findIndex(([piece]) => piece === token);
    return i >= 0 ? i : undefined;
  }
  return vocab[token];
}

export async function saveTokenizerFiles(dir: string, tokenizerJson: TokenizerJson, opts: SaveTokenizerOptions): Promise<void> {
  const named: [string, string | null | undefined][] = [
    ['bos', opts.bos],
    ['eos', opts.eos],
    ['pad', opts.pad],
  ];
  for (const [field, token] of named) {
    if (token === null || token === undefined) continue;
    if (tokenIdIn(tokenizerJson, token) === undefined) throw new Error(`saveTokenizerFiles: ${field} token "${token}" is not in the tokenizer's vocabulary`);
  }
  if (opts.addBos && !opts.bos) throw new Error('saveTokenizerFiles: addBos needs a bos token');

  const addedTokensDecoder: Record<string, object> = {};
  for (const t of tokenizerJson.added_tokens ?? []) {
    addedTokensDecoder[String(t.id)] = {
      content: t.content,
      lstrip: t.lstrip ?? false,
      normalized: t.normalized ?? false,
      rstrip: t.rstrip ?? false,
      single_word: t.single_word ?? false,
      special: t.special ?? false,
    };
  }
  const config: Record<string, unknown> = {
    add_bos_token: opts.addBos ?? false,
    add_eos_token: false,
    added_tokens_decoder: addedTokensDecoder,
    bos_token: opts.bos,
    clean_up_tokenization_spaces: false,
    eos_token: opts.eos,
    pad_token: opts.pad ?? null,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: null,
  };
  if (opts.modelMaxLength !== undefined) config.model_max_length = opts.modelMaxLength;
  if (opts.chatTemplate !== undefined) config.chat_template = opts.chatTemplate;

  const specialMap: Record<string, string> = { eos_token: opts.eos };
  if (opts.bos) specialMap.bos_token = opts.bos;
  if (opts.pad) specialMap.pad_token = opts.pad;

  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson, null, 2) + '\n');
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
  await writeFile(join(dir, 'special_tokens_map.json'), JSON.stringify(specialMap, null, 2) + '\n');
}

/**
 * The tokenizer files of a saved model: a llama2.c tokenizer becomes the equivalent tokenizer.json
 * (+ tokenizer_config.json, special_tokens_map.json) that transformers reads; a tokenizer loaded
 * from a directory has its files copied; one built in memory is written from its tokenizer.json.
 */
export function tokenizerFilesFor(tok: Tokenizer, modelMaxLength: number): string[] | Record<string, string> {
  if (tok instanceof Llama2cTokenizer) return llama2cTokenizerFiles(tok, { modelMaxLength });
  if (tok instanceof HfTokenizer) {
    const dir = dirname(tok.source);
    const files = TOKENIZER_FILE_NAMES.filter((f) => f !== 'tokenizer.bin').map((f) => join(dir, f)).filter((f) => existsSync(f));
    if (files.some((f) => ['tokenizer.json', 'vocab.json', 'tokenizer.model'].includes(basename(f)))) return files;
    const config: Record<string, unknown> = { tokenizer_class: 'PreTrainedTokenizerFast', model_max_length: modelMaxLength, ...tok.config };
    const special: Record<string, string> = {};
    if (tok.bosToken) special.bos_token = tok.bosToken;
    if (tok.eosToken) special.eos_token = tok.eosToken;
    if (tok.padToken) special.pad_token = tok.padToken;
    return {
      'tokenizer.json': `${JSON.stringify(tok.json, null, 2)}\n`,
      'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n`,
      'special_tokens_map.json': `${JSON.stringify(special, null, 2)}\n`,
    };
  }
  throw new Error('save: this tokenizer cannot be saved (neither a Hugging Face nor a llama2.c tokenizer)');
}

