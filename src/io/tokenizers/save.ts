// Writes a tokenizer directory that transformers' AutoTokenizer, @huggingface/tokenizers and this
// project's loadTokenizer all read: tokenizer.json, tokenizer_config.json, special_tokens_map.json.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenizerJson } from './hf.js';

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
