// SentencePiece tokenizer.model (a protobuf ModelProto) → the equivalent tokenizer.json, the way
// Hugging Face's own converter builds LlamaTokenizerFast from the slow tokenizer: a BPE model with
// byte fallback whose merges are every split of a piece into two pieces, ranked by the merged
// piece's score (SentencePiece merges the adjacent pair whose result scores highest; a BPE applies
// the lowest-rank merge; see llama2c-hf.ts for why the two agree), the dummy prefix as a Prepend
// normalizer and spaces as "▁". Only BPE models are read: Unigram models (T5-style) need a
// different algorithm and are refused with a clear error.
//
// Wire format read here (proto2, sentencepiece_model.proto): ModelProto { 1: repeated
// SentencePiece pieces; 2: TrainerSpec; 3: NormalizerSpec }, SentencePiece { 1: piece string;
// 2: score float; 3: type enum (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6) },
// TrainerSpec { 3: model_type (UNIGRAM 1, BPE 2, WORD 3, CHAR 4); 35: byte_fallback; 40-43: unk,
// bos, eos, pad ids }, NormalizerSpec { 1: name; 3: add_dummy_prefix; 4: remove_extra_whitespaces;
// 5: escape_whitespaces } (booleans default to true in NormalizerSpec).

import { readFile } from 'node:fs/promises';
import { scoredMerges, specialAddedToken } from './bpe-json.js';
import type { TokenizerJson } from './hf.js';

const SPIECE_SPACE = '\u2581';

export const SP_PIECE_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface SentencePieceModel {
  pieces: { piece: string; score: number; type: number }[];
  /** 1 Unigram, 2 BPE, 3 word, 4 char. */
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  normalizerName: string;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

/** A minimal protobuf reader: the fields of one message, in order. */
class Wire {
  private pos = 0;

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  fail(msg: string): never {
    throw new Error(`${this.what}: ${msg} (at byte ${this.pos} of ${this.buf.length}); is this a SentencePiece tokenizer.model?`);
  }

  /** A varint as a 64-bit pattern (negative int32/int64 values take all ten bytes). */
  varintBig(): bigint {
    let result = 0n, shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) this.fail('truncated varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    return this.fail('varint longer than 10 bytes');
  }

  /** A varint used as a length or key. */
  varint(): number {
    const v = this.varintBig();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('length or key out of range');
    return Number(v);
  }

  /** Next field: number, wire type and (for length-delimited) its bytes. */
  field(): { field: number; wire: number; bytes?: Uint8Array; value?: number } {
    const key = this.varint();
    const field = Math.floor(key / 8), wire = key % 8;
    if (field === 0) this.fail('field number 0');
    switch (wire) {
      case 0:
        // Signed view: int32 fields such as pad_id = -1 are written sign-extended to 64 bits.
        return { field, wire, value: Number(BigInt.asIntN(64, this.varintBig())) };
      case 1:
        if (this.pos + 8 > this.buf.length) this.fail('truncated 64-bit field');
        this.pos += 8;
        return { field, wire };
      case 2: {
        const len = this.varint();
        if (this.pos + len > this.buf.length) this.fail(`field ${field} runs past the end`);
        const bytes = this.buf.subarray(this.pos, this.pos + len);
        this.pos += len;
        return { field, wire, bytes };
      }
      case 5: {
        if (this.pos + 4 > this.buf.length) this.fail('truncated 32-bit field');
        const value = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
        this.pos += 4;
        return { field, wire, value };
      }
      default:
        return this.fail(`unsupported wire type ${wire} (field ${field})`);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a tokenizer.model. */
export function readSentencePieceModel(buf: Uint8Array, source = 'tokenizer.model'): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [], modelType: 1, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1,
    normalizerName: '', addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true,
  };
  const top = new Wire(buf, source);
  while (!top.done) {
    const f = top.field();
    if (f.field === 1 && f.bytes) {
      const w = new Wire(f.bytes, `${source}: piece ${m.pieces.length}`);
      const p = { piece: '', score: 0, type: SP_PIECE_TYPE.normal as number };
      while (!w.done) {
        const g = w.field();
        if (g.field === 1 && g.bytes) {
          try {
            p.piece = utf8.decode(g.bytes);
          } catch {
            w.fail('piece is not valid UTF-8');
          }
        } else if (g.field === 2 && g.wire === 5) p.score = g.value!;
        else if (g.field === 3 && g.wire === 0) p.type = g.value!;
      }
      m.pieces.push(p);
    } else if (f.field === 2 && f.bytes) {
      const w = new Wire(f.bytes, `${source}: trainer_spec`);
      while (!w.done) {
        const g = w.field();
        if (g.wire !== 0) continue;
        const v = g.value!;
        if (g.field === 3) m.modelType = v;
        else if (g.field === 35) m.byteFallback = v !== 0;
        else if (g.field === 40) m.unkId = v;
        else if (g.field === 41) m.bosId = v;
        else if (g.field === 42) m.eosId = v;
        else if (g.field === 43) m.padId = v;
      }
    } else if (f.field === 3 && f.bytes) {
      const w = new Wire(f.bytes, `${source}: normalizer_spec`);
      while (!w.done) {
        const g = w.field();
        if (g.field === 1 && g.bytes) m.normalizerName = utf8.decode(g.bytes);
        else if (g.field === 3 && g.wire === 0) m.addDummyPrefix = g.value !== 0;
        else if (g.field === 4 && g.wire === 0) m.removeExtraWhitespaces = g.value !== 0;
        else if (g.field === 5 && g.wire === 0) m.escapeWhitespaces = g.value !== 0;
      }
    }
  }
  if (m.pieces.length === 0) throw new Error(`${source}: no pieces; is this a SentencePiece tokenizer.model?`);
  for (const [what, id] of [['unk_id', m.unkId], ['bos_id', m.bosId], ['eos_id', m.eosId], ['pad_id', m.padId]] as const) {
    if (id >= m.pieces.length) throw new Error(`${source}: trainer_spec ${what} ${id} is outside the ${m.pieces.length} pieces`);
  }
  return m;
}

/** The tokenizer.json equivalent to a SentencePiece BPE model. */
export function sentencePieceToTokenizerJson(m: SentencePieceModel, source = 'tokenizer.model'): TokenizerJson {
  if (m.modelType !== 2) {
    const name = ({ 1: 'Unigram', 3: 'word', 4: 'char' } as Record<number, string>)[m.modelType] ?? `type ${m.modelType}`;
    throw new Error(`${source}: a SentencePiece ${name} model; only BPE models (Llama, Mistral, Gemma style) are supported (or give a tokenizer.json)`);
  }
  if (!m.escapeWhitespaces) throw new Error(`${source}: escape_whitespaces = false is not supported`);
  if (m.normalizerName !== '' && m.normalizerName !== 'identity' && m.normalizerName !== 'nmt_nfkc' && m.normalizerName !== 'nfkc') {
    throw new Error(`${source}: normalizer ${JSON.stringify(m.normalizerName)} is not supported (identity, nmt_nfkc, nfkc)`);
  }
  const tokens = m.pieces.map((p) => p.piece);
  const seen = new Map<string, number>();
  tokens.forEach((t, id) => {
    const other = seen.get(t);
    if (other !== undefined) throw new Error(`${source}: pieces ${other} and ${id} are both ${JSON.stringify(t)}`);
    seen.set(t, id);
  });
  const type = (id: number) => m.pieces[id]!.type;
  // Control and unknown pieces are matched whole in text (as transformers' Llama tokenizers do);
  // user-defined symbols too, and SentencePiece never splits them either.
  const added = m.pieces
    .map((p, id) => ({ p, id }))
    .filter(({ p }) => p.type === SP_PIECE_TYPE.control || p.type === SP_PIECE_TYPE.unknown || p.type === SP_PIECE_TYPE.userDefined)
    .map(({ p, id }) => ({ ...specialAddedToken(id, p.piece), special: p.type !== SP_PIECE_TYPE.userDefined }));

  const merges = scoredMerges(tokens, m.pieces.map((p) => p.score), (id) => type(id) === SP_PIECE_TYPE.normal);

  const normalizers: object[] = [];
  if (m.normalizerName === 'nmt_nfkc' || m.normalizerName === 'nfkc') normalizers.push({ type: 'NFKC' });
  if (m.removeExtraWhitespaces) {
    normalizers.push({ type: 'Strip', strip_left: true, strip_right: true });
    normalizers.push({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' });
  }
  if (m.addDummyPrefix) normalizers.push({ type: 'Prepend', prepend: SPIECE_SPACE });
  normalizers.push({ type: 'Replace', pattern: { String: ' ' }, content: SPIECE_SPACE });

  const bos = m.bosId >= 0 ? tokens[m.bosId]! : null;
  const decoders: object[] = [{ type: 'Replace', pattern: { String: SPIECE_SPACE }, content: ' ' }];
  if (m.byteFallback) decoders.push({ type: 'ByteFallback' });
  decoders.push({ type: 'Fuse' });
  if (m.addDummyPrefix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers },
    // No pre-tokenizer: SentencePiece merges over the whole text (no piece spans a "▁" inside).
    pre_tokenizer: null,
    post_processor: bos === null ? null : {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [bos]: { id: bos, ids: [m.bosId], tokens: [bos] } },
    },
    decoder: { type: 'Sequence', decoders },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: m.unkId >= 0 ? tokens[m.unkId]! : null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: m.byteFallback,
      ignore_merges: false,
      vocab: Object.fromEntries(tokens.map((t, id) => [t, id])),
      merges,
    },
  } as TokenizerJson;
}

/** Reads dir/tokenizer.model and converts it (see sentencePieceToTokenizerJson). */
export async function readSentencePieceAsTokenizerJson(path: string): Promise<{ tokenizerJson: TokenizerJson; model: SentencePieceModel }> {
  const model = readSentencePieceModel(await readFile(path), path);
  return { tokenizerJson: sentencePieceToTokenizerJson(model, path), model };
}
