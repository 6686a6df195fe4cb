// llama2.c tokenizer.bin → Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json,
// special_tokens_map.json) in the Llama-2 layout, so a converted model directory is read by
// transformers' AutoTokenizer, @huggingface/tokenizers and this project's loadTokenizer.
//
// Why the two encode the same: llama2.c (run.c encode) starts from one token per codepoint (byte
// tokens <0xXX> when the codepoint is not a piece) after a dummy-prefix space, then repeatedly merges
// the adjacent pair whose concatenation is the piece with the highest score, leftmost first. A
// Hugging Face BPE with byte_fallback starts from the same per-codepoint tokens (the Prepend "▁"
// normalizer is the dummy prefix) and repeatedly applies the lowest-rank merge, leftmost first. So
// every split of a piece into two pieces becomes a merge "left right", and the merges are ranked by
// the merged piece's score, highest first (ties by id). This is how Hugging Face's own
// SentencePiece→tokenizer.json converter builds Llama-2's merges.
//
// What cannot be mirrored (none of it occurs in SentencePiece-trained vocabularies such as
// stories260K's tok512.bin or Llama-2's tokenizer.bin):
//   - two different pieces with the same score: run.c merges the leftmost pair, BPE the lower id;
//   - merges whose operands or result are <unk>/BOS/EOS or byte tokens: left out, since Hugging Face
//     applies byte fallback only after merging;
//   - text containing "<s>", "</s>" or "<unk>" away from the start: Hugging Face matches these
//     added tokens anywhere (as transformers does for every Llama tokenizer), run.c only at the start.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scoredMerges, specialAddedToken } from './bpe-json.js';
import type { TokenizerJson } from './hf.js';
import type { Llama2cTokenizer } from './llama2c.js';

/** SentencePiece's visible space: llama2.c's export wrote it as ' '; tokenizer.json keeps '▁'. */
const SPIECE_SPACE = '\u2581';

/** run.c only merges into pieces whose score beats its starting best_score of -1e10. */
const MIN_MERGE_SCORE = -1e10;

function isByteToken(piece: string): boolean {
  return /^<0x[0-9A-F]{2}>$/.test(piece);
}

/** The three special tokens in the text form tokenizer.json uses ("<unk>", "<s>", "</s>"). */
function specialTokens(tok: Llama2cTokenizer): { unk: string; bos: string; eos: string } {
  return { unk: tok.specialText(tok.unkId), bos: tok.specialText(tok.bosId), eos: tok.specialText(tok.eosId) };
}

/**
 * Each id's token string in tokenizer.json: the special text for <unk>/BOS/EOS, the piece with ' '
 * as '▁' for the rest. Throws on what a vocab map cannot hold (invalid UTF-8, duplicates).
 */
function tokenStrings(tok: Llama2cTokenizer): string[] {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const out: string[] = [];
  const seen = new Map<string, number>();
  for (let id = 0; id < tok.vocabSize; id++) {
    let text: string;
    if (tok.isSpecial(id)) {
      text = tok.specialText(id);
    } else {
      let raw: string;
      try {
        raw = utf8.decode(tok.pieces[id]!);
      } catch {
        throw new Error(`llama2cToTokenizerJson: ${tok.source}: token ${id} is not valid UTF-8, which tokenizer.json cannot hold`);
      }
      // A literal '▁' would collide with a space after the Replace normalizer.
      if (raw.includes(SPIECE_SPACE)) throw new Error(`llama2cToTokenizerJson: ${tok.source}: token ${id} ${JSON.stringify(raw)} contains "▁", which stands for a space in tokenizer.json`);
      text = raw.replaceAll(' ', SPIECE_SPACE);
    }
    if (text.length === 0) throw new Error(`llama2cToTokenizerJson: ${tok.source}: token ${id} is empty`);
    const other = seen.get(text);
    if (other !== undefined) throw new Error(`llama2cToTokenizerJson: ${tok.source}: tokens ${other} and ${id} are both ${JSON.stringify(text)}; a tokenizer.json vocabulary maps each string to one id`);
    seen.set(text, id);
    out.push(text);
  }
  return out;
}

/** The merges (see scoredMerges), into pieces run.c would merge into (score above its floor). */
function buildMerges(tok: Llama2cTokenizer, tokens: readonly string[]): string[] {
  return scoredMerges(tokens, tok.scores, (id) => !tok.isSpecial(id) && !isByteToken(tokens[id]!), (id) => tok.scores[id]! > MIN_MERGE_SCORE);
}

/** The Llama-2 style tokenizer.json equivalent to a llama2.c tokenizer. */
export function llama2cToTokenizerJson(tok: Llama2cTokenizer): TokenizerJson {
  const tokens = tokenStrings(tok);
  const special = specialTokens(tok);
  const addedTokens = [tok.unkId, tok.bosId, tok.eosId].map((id) => specialAddedToken(id, tokens[id]!));
  const bos = { SpecialToken: { id: special.bos, type_id: 0 } };
  const bos1 = { SpecialToken: { id: special.bos, type_id: 1 } };
  const seqA = { Sequence: { id: 'A', type_id: 0 } };
  const seqB = { Sequence: { id: 'B', type_id: 1 } };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    // The dummy prefix and SentencePiece's space, as in Llama-2's tokenizer.json.
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPIECE_SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPIECE_SPACE },
      ],
    },
    // No pre-tokenizer: the whole text is one BPE word, as run.c merges across the whole text.
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos, seqA],
      pair: [bos, seqA, bos1, seqB],
      special_tokens: { [special.bos]: { id: special.bos, ids: [tok.bosId], tokens: [special.bos] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPIECE_SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: special.unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      // fromEntries defines own properties, so a piece such as "__proto__" stays an ordinary key.
      vocab: Object.fromEntries(tokens.map((t, id) => [t, id])),
      merges: buildMerges(tok, tokens),
    },
  };
}

export interface Llama2cHfFilesOptions {
  /** model_max_length in tokenizer_config.json (the model's context length). */
  modelMaxLength?: number;
}

/** tokenizer.json, tokenizer_config.json and special_tokens_map.json contents, by file name. */
export function llama2cTokenizerFiles(tok: Llama2cTokenizer, opts: Llama2cHfFilesOptions = {}): Record<string, string> {
  const tokenizerJson = llama2cToTokenizerJson(tok);
  const special = specialTokens(tok);
  const addedTokensDecoder: Record<string, object> = {};
  for (const t of tokenizerJson.added_tokens ?? []) {
    addedTokensDecoder[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  }
  // PreTrainedTokenizerFast runs tokenizer.json exactly as written; LlamaTokenizer(Fast) may rebuild
  // parts of the pipeline (legacy / add_prefix_space handling) and so could drift from run.c.
  const config: Record<string, unknown> = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedTokensDecoder,
    bos_token: special.bos,
    clean_up_tokenization_spaces: false,
    eos_token: special.eos,
    pad_token: null,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: special.unk,
  };
  if (opts.modelMaxLength !== undefined) config.model_max_length = opts.modelMaxLength;
  const asAdded = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  const specialMap = { bos_token: asAdded(special.bos), eos_token: asAdded(special.eos), unk_token: asAdded(special.unk) };
  const json = (obj: unknown) => `${JSON.stringify(obj, null, 2)}\n`;
  return {
    'tokenizer.json': json(tokenizerJson),
    'tokenizer_config.json': json(config),
    'special_tokens_map.json': json(specialMap),
  };
}

/** Writes the Hugging Face tokenizer files for a llama2.c tokenizer into dir. */
export async function saveLlama2cTokenizerAsHf(dir: string, tok: Llama2cTokenizer, opts: Llama2cHfFilesOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(llama2cTokenizerFiles(tok, opts))) await writeFile(join(dir, name), content);
}
