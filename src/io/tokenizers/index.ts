// Tokenizer loading: finds which of the supported formats a directory (or file) holds.
//   tokenizer.json (+ tokenizer_config.json, special_tokens_map.json, generation_config.json,
//                   chat_template.jinja)                      → HfTokenizer
//   vocab.json + merges.txt (GPT-2)                           → HfTokenizer over a built tokenizer.json
//   tokenizer.bin, or a path to any llama2.c .bin file        → Llama2cTokenizer

import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tokenizer } from '../tokenizer.js';
import { gpt2TokenizerJson, parseMergesTxt } from './gpt2.js';
import { HfTokenizer, type TokenizerConfigJson, type TokenizerJson } from './hf.js';
import { loadLlama2cTokenizer } from './llama2c.js';
import { readSentencePieceAsTokenizerJson } from './sentencepiece.js';

export { HfTokenizer, END_OF_TURN_TOKENS } from './hf.js';
export type { HfTokenizerSources, TokenizerJson, TokenizerConfigJson, AddedTokenJson } from './hf.js';
export { Llama2cTokenizer, loadLlama2cTokenizer, llama2cTokenizerFromBuffer } from './llama2c.js';
export { gpt2TokenizerJson, parseMergesTxt } from './gpt2.js';
export { readSentencePieceModel, sentencePieceToTokenizerJson, type SentencePieceModel } from './sentencepiece.js';
export { renderChatTemplate, selectChatTemplate } from './chat.js';
export { trainByteLevelBpe, type TrainByteLevelBpeOptions } from './train.js';
export { saveTokenizerFiles, type SaveTokenizerOptions } from './save.js';
export { tokenizerGgufMetadata, GGUF_TOKEN_TYPE, type TokenizerGgufMetadata } from './gguf.js';

async function readJson<T>(path: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${path}: invalid JSON: ${(err as Error).message}`);
  }
}

async function readOptionalJson<T>(path: string): Promise<T | undefined> {
  return existsSync(path) ? readJson<T>(path) : undefined;
}

/** The side files every Hugging Face directory may have, whatever the vocabulary format. */
async function readSideFiles(dir: string) {
  const chatTemplatePath = join(dir, 'chat_template.jinja');
  return {
    config: (await readOptionalJson<TokenizerConfigJson>(join(dir, 'tokenizer_config.json'))) ?? {},
    specialTokensMap: await readOptionalJson<Record<string, unknown>>(join(dir, 'special_tokens_map.json')),
    generationConfig: await readOptionalJson<Record<string, unknown>>(join(dir, 'generation_config.json')),
    chatTemplateFile: existsSync(chatTemplatePath) ? await readFile(chatTemplatePath, 'utf8') : undefined,
  };
}

/** Builds a tokenizer from an in-memory tokenizer.json object (e.g. one trainByteLevelBpe made). */
export function tokenizerFromJson(tokenizerJson: TokenizerJson, config: TokenizerConfigJson = {}, source = 'tokenizer.json (in memory)'): HfTokenizer {
  return new HfTokenizer({ tokenizerJson, config, source });
}

/** Loads the tokenizer in dir (or the llama2.c .bin file at that path). */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  if (!existsSync(path)) throw new Error(`loadTokenizer: ${path} does not exist`);
  if (statSync(path).isFile()) {
    if (path.endsWith('.bin')) return loadLlama2cTokenizer(path);
    if (path.endsWith('tokenizer.json')) throw new Error(`loadTokenizer: pass the directory that holds ${path}, not the file (the side files live next to it)`);
    throw new Error(`loadTokenizer: ${path} is a file but not a llama2.c .bin tokenizer; pass a tokenizer directory`);
  }
  const tokenizerJsonPath = join(path, 'tokenizer.json');
  if (existsSync(tokenizerJsonPath)) {
    const side = await readSideFiles(path);
    return new HfTokenizer({ tokenizerJson: await readJson<TokenizerJson>(tokenizerJsonPath), ...side, source: tokenizerJsonPath });
  }
  const vocabPath = join(path, 'vocab.json');
  const mergesPath = join(path, 'merges.txt');
  if (existsSync(vocabPath) && existsSync(mergesPath)) {
    const side = await readSideFiles(path);
    const vocab = await readJson<Record<string, number>>(vocabPath);
    const merges = parseMergesTxt(await readFile(mergesPath, 'utf8'), mergesPath);
    const tokenizerJson = gpt2TokenizerJson(vocab, merges, side.config, side.specialTokensMap ?? {}, vocabPath);
    return new HfTokenizer({ tokenizerJson, ...side, source: `${vocabPath} + merges.txt` });
  }
  const spPath = join(path, 'tokenizer.model');
  if (existsSync(spPath)) {
    // SentencePiece protobuf (older Llama/Mistral-style repositories): converted in memory to the
    // tokenizer.json Hugging Face's converter would write; tokenizer_config.json still applies.
    const side = await readSideFiles(path);
    const { tokenizerJson } = await readSentencePieceAsTokenizerJson(spPath);
    return new HfTokenizer({ tokenizerJson, ...side, source: spPath });
  }
  const binPath = join(path, 'tokenizer.bin');
  if (existsSync(binPath)) return loadLlama2cTokenizer(binPath);
  throw new Error(`loadTokenizer: ${path} has no tokenizer.json, vocab.json + merges.txt, tokenizer.model or tokenizer.bin`);
}
