// llama2.c tokenizer.bin: a SentencePiece-style vocabulary with merge scores, encoded and decoded
// exactly like llama2.c's run.c (encode / decode).
//
// File layout (little-endian): int32 max_token_length, then for every token: float32 score,
// int32 byte length, the bytes. Ids 0, 1, 2 are <unk>, BOS and EOS (the export writes BOS/EOS as
// "\n<s>\n" and "\n</s>\n" so they print on their own line); 3..258 are the byte tokens <0x00>..<0xFF>.

import { readFile } from 'node:fs/promises';
import type { ChatMessage, EncodeOptions, Tokenizer } from '../tokenizer.js';
import { MaxHeap } from './heap.js';

const utf8Decoder = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();

/** Pieces are keyed by their bytes as a latin1 string: exact byte equality, like run.c's strcmp. */
function bytesKey(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

// Max-heap of candidate merges: higher score first, then the leftmost pair, which is the pair
// run.c's linear scan picks (it keeps the first pair with a strictly greater score).
interface Candidate {
  score: number;
  node: number;
  left: number;
  right: number;
  merged: number;
}

function better(a: Candidate, b: Candidate): boolean {
  return a.score > b.score || (a.score === b.score && a.node < b.node);
}

export class Llama2cTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly unkId = 0;
  readonly stopIds: readonly number[] = [2];
  /** llama2.c has no pad token: padding uses EOS. */
  readonly padId = 2;
  readonly padIsExplicit = false;
  readonly addsBosByDefault = true;
  readonly chatTemplate: string | null = null;
  /** The text form of BOS/EOS: a text starting with "<s>" starts with BOS. */
  readonly bosToken = '<s>';
  readonly eosToken = '</s>';
  readonly maxTokenLength: number;
  /** Raw piece bytes, with ' ' where SentencePiece has '▁'. */
  readonly pieces: readonly Uint8Array[];
  readonly scores: Float32Array;
  readonly source: string;

  private readonly lookup = new Map<string, number>();
  private readonly byteIds: Int32Array;
  /** Decoded form of each id: the single byte of a <0xXX> token, else null. */
  private readonly byteValue: Int16Array;
  private readonly dummyPrefixId: number;

  constructor(buf: Uint8Array, source = 'tokenizer.bin') {
    this.source = source;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.byteLength < 4) throw new Error(`${source}: too short for a llama2.c tokenizer (${buf.byteLength} bytes)`);
    this.maxTokenLength = view.getInt32(0, true);
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let off = 4;
    while (off < buf.byteLength) {
      if (off + 8 > buf.byteLength) throw new Error(`${source}: truncated header of token ${pieces.length} at byte ${off}`);
      const score = view.getFloat32(off, true);
      const len = view.getInt32(off + 4, true);
      off += 8;
      if (len < 0 || off + len > buf.byteLength) {
        throw new Error(`${source}: token ${pieces.length} has length ${len}, past the end of the file (${buf.byteLength} bytes)`);
      }
      if (len > this.maxTokenLength) {
        throw new Error(`${source}: token ${pieces.length} is ${len} bytes, above max_token_length ${this.maxTokenLength}`);
      }
      pieces.push(buf.slice(off, off + len));
      scores.push(score);
      off += len;
    }
    if (pieces.length < 259) throw new Error(`${source}: ${pieces.length} tokens; a llama2.c vocabulary has at least 259 (<unk>, BOS, EOS, 256 bytes)`);
    this.pieces = pieces;
    this.scores = Float32Array.from(scores);
    this.vocabSize = pieces.length;

    this.byteValue = new Int16Array(pieces.length).fill(-1);
    pieces.forEach((p, id) => {
      const key = bytesKey(p);
      // run.c binary-searches a sorted copy; with duplicate pieces the first id is kept here.
      if (!this.lookup.has(key)) this.lookup.set(key, id);
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(key);
      if (m) this.byteValue[id] = parseInt(m[1]!, 16);
    });
    // run.c assumes byte b is token b + 3; look the tokens up and insist on that layout.
    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      const name = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      const id = this.lookup.get(name);
      if (id !== b + 3) throw new Error(`${source}: byte token ${name} is ${id === undefined ? 'missing' : `id ${id}`}, expected id ${b + 3}`);
      this.byteIds[b] = id;
    }
    const space = this.lookup.get(' ');
    if (space === undefined) throw new Error(`${source}: no " " token for the dummy prefix`);
    this.dummyPrefixId = space;
  }

  /**
   * llama2.c encode(): BOS (when asked), a dummy-prefix space, one token per UTF-8 codepoint
   * (byte tokens when the codepoint is not a piece), then repeatedly merge the adjacent pair whose
   * concatenation is a piece with the highest score (leftmost on ties). A text that starts with
   * "<s>" is taken to start with BOS (so BOS never appears twice); nothing else is special.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`${this.source}: encode expects a string, got ${typeof text}`);
    let addBos = opts.addBos ?? this.addsBosByDefault;
    if (text.startsWith(this.bosToken)) {
      addBos = true;
      text = text.slice(this.bosToken.length);
    }
    const tokens: number[] = [];
    if (addBos) tokens.push(this.bosId);
    if (text.length > 0) tokens.push(this.dummyPrefixId);

    const bytes = utf8Encoder.encode(text);
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i]! & 0xc0) !== 0x80) start = i;
      // run.c gathers at most 4 bytes of one codepoint before looking it up.
      if (i + 1 < bytes.length && (bytes[i + 1]! & 0xc0) === 0x80 && i + 1 - start < 4) continue;
      const cp = bytes.subarray(start, i + 1);
      const id = this.lookup.get(bytesKey(cp));
      if (id !== undefined) tokens.push(id);
      else for (const b of cp) tokens.push(this.byteIds[b]!);
      start = i + 1;
    }
    return this.merge(tokens);
  }

  /** The merge loop of run.c, with a heap instead of a rescan per merge (same choices, O(n log n)). */
  private merge(tokens: number[]): number[] {
    const n = tokens.length;
    if (n < 2) return tokens;
    const id = Int32Array.from(tokens);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new MaxHeap<Candidate>(better);
    const consider = (left: number) => {
      const right = next[left]!;
      if (left < 0 || right < 0) return;
      const merged = this.lookup.get(bytesKey(this.pieces[id[left]!]!) + bytesKey(this.pieces[id[right]!]!));
      // run.c starts from best_score = -1e10 and needs a strictly greater score.
      if (merged === undefined || !(this.scores[merged]! > -1e10)) return;
      heap.push({ score: this.scores[merged]!, node: left, left: id[left]!, right: id[right]!, merged });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.size > 0) {
      const c = heap.pop();
      const right = next[c.node]!;
      // Stale entry: one side was merged away or changed since it was pushed.
      if (id[c.node] !== c.left || right < 0 || id[right] !== c.right) continue;
      id[c.node] = c.merged;
      id[right] = -1;
      next[c.node] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = c.node;
      if (prev[c.node]! >= 0) consider(prev[c.node]!);
      consider(c.node);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(id[i]!);
    return out;
  }

  /**
   * llama2.c decode(): the leading space of a piece that follows BOS is dropped, <0xXX> pieces are
   * raw bytes, and the bytes of the whole sequence are read as UTF-8. BOS/EOS/<unk> render as
   * "<s>", "</s>", "<unk>" unless skipped.
   */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens ?? false;
    const out: number[] = [];
    let prevId = -1;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`${this.source}: decode: ids[${i}] = ${id} is not a token id (vocabulary size ${this.vocabSize})`);
      }
      if (this.isSpecial(id)) {
        if (!skip) for (const b of utf8Encoder.encode(this.specialText(id))) out.push(b);
      } else if (this.byteValue[id]! >= 0) {
        out.push(this.byteValue[id]!);
      } else {
        const piece = this.pieces[id]!;
        const from = prevId === this.bosId && piece[0] === 0x20 ? 1 : 0;
        for (let k = from; k < piece.length; k++) out.push(piece[k]!);
      }
      prevId = id;
    }
    return utf8Decoder.decode(Uint8Array.from(out));
  }

  applyChatTemplate(_messages: readonly ChatMessage[], _opts?: { addGenerationPrompt?: boolean }): string {
    throw new Error(`${this.source}: llama2.c tokenizers have no chat template`);
  }

  isSpecial(id: number): boolean {
    return id === this.unkId || id === this.bosId || id === this.eosId;
  }

  /** "<s>", "</s>", "<unk>": the stored "\n<s>\n" wraps BOS/EOS in newlines only for printing. */
  specialText(id: number): string {
    return utf8Decoder.decode(this.pieces[id]!).trim();
  }
}

export function llama2cTokenizerFromBuffer(buf: Uint8Array, source?: string): Llama2cTokenizer {
  return new Llama2cTokenizer(buf, source);
}

/** Loads a llama2.c tokenizer .bin (e.g. tokenizer.bin, tok512.bin). */
export async function loadLlama2cTokenizer(path: string): Promise<Llama2cTokenizer> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw new Error(`llama2.c tokenizer: cannot read ${path}: ${(err as Error).message}`);
  }
  return new Llama2cTokenizer(buf, path);
}
