// GGUF v3 (llama.cpp's model format): a writer for Llama-family models and a small reader.
//
// Layout (little-endian): "GGUF", u32 version 3, u64 tensor count, u64 KV count; KVs (string key,
// u32 value type, value); tensor infos (string name, u32 n_dims, u64 ne[n_dims] with ne0 the
// innermost dimension, u32 ggml type, u64 offset into the data section); padding to the alignment
// (general.alignment, default 32); tensor data, each tensor starting at a multiple of the
// alignment. Strings are u64 length + UTF-8 bytes; arrays are u32 item type, u64 count, items.
//
// The export follows llama.cpp's convert_hf_to_gguf.py: llama.cpp tensor names, 1-D tensors (norms,
// biases) kept float32 when the rest is F16. Llama (LlamaModel, architecture "llama"): q/k rows
// (and q/k biases) permuted from Hugging Face's rotate_half layout back to interleaved RoPE pairs;
// optional attention biases. Qwen2 (Qwen2Model, architecture "qwen2"): q/k/v biases, no
// permutation (llama.cpp runs Qwen2 with NeoX-style, i.e. rotate_half, RoPE).

import { readFileSync } from 'node:fs';
import type { ModelConfig } from './config.js';
import { f16ToF32, f32ToF16, getWeight, writeFileAtomically, type Weight, type WeightMap } from './weights.js';
import { architectureDef, declaredWeights } from '../models/architectures.js';
import { transpose2d } from '../tensor/weight-map.js';
import { normalizeWeightNames } from './hf-dir.js';

export { llama3RopeFactors } from '../models/llama.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** ggml tensor types this module reads/writes. */
export const GGML_TYPE = { F32: 0, F16: 1 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** GGUF metadata value types. */
const VT = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof VT, 'array'>;
const VT_NAME = Object.fromEntries(Object.entries(VT).map(([k, v]) => [v, k])) as Record<number, keyof typeof VT>;

export type GgufScalar = number | bigint | boolean | string;
/** A typed metadata value (GGUF stores the exact integer/float width). */
export type GgufValue =
  | { type: GgufScalarType; value: GgufScalar }
  | { type: 'array'; itemType: GgufScalarType; value: GgufScalar[] };

/** Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type). */
export const GGUF_TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

// ---------------------------------------------------------------------------------------------
// Low-level writer

/** A tensor to write: `shape` in PyTorch order (outermost first); GGUF stores it reversed. */
export interface GgufTensorInput {
  name: string;
  shape: number[];
  data: Float32Array;
  type: GgmlTypeName;
}

class ByteWriter {
  private parts: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }

  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }

  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }

  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }

  scalar(type: GgufScalarType, v: GgufScalar, key: string): void {
    const num = (): number => {
      if (typeof v !== 'number') throw new Error(`gguf: metadata ${key}: ${type} value ${String(v)} is not a number`);
      return v;
    };
    const int = (lo: number, hi: number): number => {
      const n = num();
      if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`gguf: metadata ${key}: ${n} does not fit ${type}`);
      return n;
    };
    let b: Buffer;
    switch (type) {
      case 'u8': b = Buffer.alloc(1); b.writeUInt8(int(0, 255)); break;
      case 'i8': b = Buffer.alloc(1); b.writeInt8(int(-128, 127)); break;
      case 'u16': b = Buffer.alloc(2); b.writeUInt16LE(int(0, 65535)); break;
      case 'i16': b = Buffer.alloc(2); b.writeInt16LE(int(-32768, 32767)); break;
      case 'u32': b = Buffer.alloc(4); b.writeUInt32LE(int(0, 0xffffffff)); break;
      case 'i32': b = Buffer.alloc(4); b.writeInt32LE(int(-0x80000000, 0x7fffffff)); break;
      case 'f32': b = Buffer.alloc(4); b.writeFloatLE(num()); break;
      case 'f64': b = Buffer.alloc(8); b.writeDoubleLE(num()); break;
      case 'u64': b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v as number | bigint)); break;
      case 'i64': b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v as number | bigint)); break;
      case 'bool':
        if (typeof v !== 'boolean') throw new Error(`gguf: metadata ${key}: bool value ${String(v)} is not a boolean`);
        b = Buffer.from([v ? 1 : 0]);
        break;
      case 'string':
        if (typeof v !== 'string') throw new Error(`gguf: metadata ${key}: string value ${String(v)} is not a string`);
        this.string(v);
        return;
    }
    this.push(b);
  }

  concat(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}



/**
 * Writes a GGUF v3 file: metadata in insertion order, tensors in the given order. Written to a
 * temporary file then renamed.
 */
export function writeGguf(path: string, metadata: Map<string, GgufValue>, tensors: GgufTensorInput[], alignment = GGUF_DEFAULT_ALIGNMENT): void {
  const align = metadata.get('general.alignment');
  if (align && align.value !== alignment) throw new Error(`gguf ${path}: general.alignment ${String(align.value)} disagrees with alignment ${alignment}`);
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) throw new Error(`gguf ${path}: alignment ${alignment} must be a positive multiple of 8`);
  const names = new Set<string>();
  const head = new ByteWriter();
  head.u32(GGUF_MAGIC);
  head.u32(GGUF_VERSION);
  head.u64(tensors.length);
  head.u64(metadata.size);
  for (const [key, v] of metadata) {
    head.string(key);
    head.u32(VT[v.type]);
    if (v.type === 'array') {
      head.u32(VT[v.itemType]);
      head.u64(v.value.length);
      for (const item of v.value) head.scalar(v.itemType, item, key);
    } else {
      head.scalar(v.type, v.value, key);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`gguf ${path}: duplicate tensor name ${t.name}`);
    names.add(t.name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`gguf ${path}: tensor ${t.name} has shape [${t.shape.join(', ')}] but ${t.data.length} elements`);
    if (!(t.type in GGML_TYPE)) throw new Error(`gguf ${path}: tensor ${t.name}: unsupported type ${String(t.type)} (F32, F16)`);
    head.string(t.name);
    head.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) head.u64(t.shape[i]!); // ne0 = innermost
    head.u32(GGML_TYPE[t.type]);
    head.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + n * (t.type === 'F32' ? 4 : 2), alignment);
  }
  const headBytes = head.concat();
  const dataStart = alignUp(headBytes.length, alignment);

  writeFileAtomically(path, `gguf ${path}`, (write) => {
    write(headBytes);
    write(new Uint8Array(dataStart - headBytes.length));
    let pos = 0;
    tensors.forEach((t, i) => {
      if (pos < offsets[i]!) write(new Uint8Array(offsets[i]! - pos));
      pos = offsets[i]!;
      const bytes = t.type === 'F32' ? new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) : new Uint8Array(f32ToF16(t.data).buffer);
      write(bytes);
      pos += bytes.length;
    });
    const end = alignUp(pos, alignment);
    if (end > pos) write(new Uint8Array(end - pos));
  });
}

// ---------------------------------------------------------------------------------------------
// Llama export

/** Tokenizer metadata for the GGUF file (filled by the tokenizer code). */
export interface GgufTokenizerInput {
  /** "llama": SentencePiece-style vocabulary with scores; "gpt2": byte-level BPE with merges. */
  model: 'llama' | 'gpt2';
  tokens: string[];
  scores?: number[];
  /**
   * llama.cpp token types (GGUF_TOKEN_TYPE). When absent: BOS/EOS/pad are CONTROL, "<unk>" is
   * UNKNOWN, "<0xNN>" byte-fallback pieces of a "llama" vocabulary are BYTE, the rest NORMAL.
   */
  tokenTypes?: number[];
  /** BPE merges "a b" (required for "gpt2"). */
  merges?: string[];
  /** llama.cpp pre-tokenizer name for "gpt2" vocabularies (tokenizer.ggml.pre), e.g. "gpt-2", "llama-bpe", "qwen2", "smollm". */
  pre?: string;
  bosId: number;
  eosId: number;
  padId?: number;
  unkId?: number;
  addBos: boolean;
  addEos?: boolean;
  chatTemplate?: string;
}

export interface LlamaGgufOptions {
  tokenizer: GgufTokenizerInput;
  /** F16: every matrix in half precision, 1-D tensors stay F32 (default F32). */
  dtype?: 'F32' | 'F16';
  /** general.name */
  name?: string;
}

function defaultTokenTypes(tok: GgufTokenizerInput): number[] {
  const control = new Set([tok.bosId, tok.eosId, ...(tok.padId !== undefined ? [tok.padId] : [])]);
  return tok.tokens.map((t, i) => {
    if (control.has(i)) return GGUF_TOKEN_TYPE.CONTROL;
    if (i === tok.unkId || t === '<unk>') return GGUF_TOKEN_TYPE.UNKNOWN;
    if (tok.model === 'llama' && /^<0x[0-9A-Fa-f]{2}>$/.test(t)) return GGUF_TOKEN_TYPE.BYTE;
    return GGUF_TOKEN_TYPE.NORMAL;
  });
}

/** general.* keys, after checking the tokenizer against the model (architecture keys go next). */
function generalMetadata(arch: string, cfg: ModelConfig, opts: LlamaGgufOptions, src: string): Map<string, GgufValue> {
  const tok = opts.tokenizer;
  const V = tok.tokens.length;
  if (V !== cfg.vocabSize) throw new Error(`${src}: tokenizer has ${V} tokens but the model vocab_size is ${cfg.vocabSize}`);
  const checkLen = (what: string, arr: unknown[] | undefined) => {
    if (arr && arr.length !== V) throw new Error(`${src}: tokenizer ${what} has ${arr.length} entries for ${V} tokens`);
  };
  checkLen('scores', tok.scores);
  checkLen('tokenTypes', tok.tokenTypes);
  for (const [what, id] of [['bosId', tok.bosId], ['eosId', tok.eosId], ['padId', tok.padId], ['unkId', tok.unkId]] as const) {
    if (id !== undefined && (!Number.isInteger(id) || id < 0 || id >= V)) throw new Error(`${src}: tokenizer ${what} ${id} is outside the vocabulary of ${V}`);
  }
  if (tok.model === 'gpt2' && !tok.merges) throw new Error(`${src}: a "gpt2" (byte-level BPE) tokenizer needs merges`);
  const md = new Map<string, GgufValue>();
  md.set('general.architecture', { type: 'string', value: arch });
  if (opts.name) md.set('general.name', { type: 'string', value: opts.name });
  md.set('general.file_type', { type: 'u32', value: (opts.dtype ?? 'F32') === 'F32' ? 0 : 1 }); // LLAMA_FTYPE_ALL_F32 / MOSTLY_F16
  return md;
}

/** tokenizer.ggml.* keys (and the chat template). */
function addTokenizerMetadata(md: Map<string, GgufValue>, tok: GgufTokenizerInput): void {
  const u32 = (v: number): GgufValue => ({ type: 'u32', value: v });
  const str = (v: string): GgufValue => ({ type: 'string', value: v });
  md.set('tokenizer.ggml.model', str(tok.model));
  if (tok.model === 'gpt2') md.set('tokenizer.ggml.pre', str(tok.pre ?? 'default'));
  md.set('tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tok.tokens });
  if (tok.scores) md.set('tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: tok.scores });
  else if (tok.model === 'llama') md.set('tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: tok.tokens.map(() => 0) });
  md.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: tok.tokenTypes ?? defaultTokenTypes(tok) });
  if (tok.merges) md.set('tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: tok.merges });
  md.set('tokenizer.ggml.bos_token_id', u32(tok.bosId));
  md.set('tokenizer.ggml.eos_token_id', u32(tok.eosId));
  if (tok.unkId !== undefined) md.set('tokenizer.ggml.unknown_token_id', u32(tok.unkId));
  if (tok.padId !== undefined) md.set('tokenizer.ggml.padding_token_id', u32(tok.padId));
  md.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: tok.addBos });
  md.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: tok.addEos ?? false });
  if (tok.chatTemplate) md.set('tokenizer.chat_template', str(tok.chatTemplate));
}

/**
 * The metadata and tensors of a GGUF for the architecture's llama.cpp layout (its file's GgufLayout):
 * the declared weights in order, read under their Hugging Face names, in the model layout
 * ([out, in]; GPT-2's Conv1D weights transposed), renamed and re-laid as the layout says.
 */
function buildArchitectureGguf(cfg: ModelConfig, weights: WeightMap, opts: LlamaGgufOptions): { metadata: Map<string, GgufValue>; tensors: GgufTensorInput[] } {
  const src = 'GGUF export';
  const def = architectureDef(cfg.architecture);
  const layout = def.gguf;
  if (!layout) throw new Error(`${src}: the ${cfg.architecture} architecture has no llama.cpp layout`);
  layout.check(cfg, src);
  const arch = layout.arch(cfg);
  const md = generalMetadata(arch, cfg, opts, src);
  for (const [key, type, value] of layout.params(cfg)) md.set(`${arch}.${key}`, { type, value } as GgufValue);
  addTokenizerMetadata(md, opts.tokenizer);
  const dtype = opts.dtype ?? 'F32';
  // GPT2Model checkpoints lack the "transformer." prefix the declaration's file names carry.
  const named = cfg.architecture === 'gpt2' && !weights.has('transformer.wte.weight') ? normalizeWeightNames(cfg, weights) : weights;
  const written = new Map<string, Weight>();
  for (const d of declaredWeights(cfg)) {
    const file = getWeight(named, d.hfName, d.hfShape, src);
    let w: Weight = d.hfTransposed ? { shape: [...d.shape], data: transpose2d(file) } : file;
    if (layout.layout) w = layout.layout(d.name, w, cfg);
    written.set(layout.name(d.name), w);
  }
  const order = [...written.keys()];
  for (const e of layout.extra?.(cfg, written) ?? []) {
    const at = e.after === null ? order.length : order.indexOf(e.after) + 1;
    order.splice(at, 0, e.name);
    written.set(e.name, e.weight);
  }
  // Like convert_hf_to_gguf: 1-D tensors stay F32 whatever the file type.
  const tensors: GgufTensorInput[] = order.map((name) => {
    const w = written.get(name)!;
    return { name, shape: w.shape, data: w.data, type: w.shape.length === 1 ? 'F32' : dtype };
  });
  return { metadata: md, tensors };
}

/** The metadata and tensors of a Llama-family (Llama, Qwen2) GGUF, without writing them (see writeLlamaGguf). */
export function buildLlamaGguf(cfg: ModelConfig, weights: WeightMap, opts: LlamaGgufOptions): { metadata: Map<string, GgufValue>; tensors: GgufTensorInput[] } {
  if (cfg.architecture !== 'llama' && cfg.architecture !== 'qwen2') throw new Error(`GGUF export: only Llama-family models (Llama, Qwen2) export to GGUF here, got ${cfg.architecture}`);
  return buildArchitectureGguf(cfg, weights, opts);
}

/** The metadata and tensors of a GPT-2 GGUF (convert_hf_to_gguf.py's GPT2Model). */
export function buildGpt2Gguf(cfg: ModelConfig, weights: WeightMap, opts: LlamaGgufOptions): { metadata: Map<string, GgufValue>; tensors: GgufTensorInput[] } {
  if (cfg.architecture !== 'gpt2') throw new Error(`GGUF export: buildGpt2Gguf needs a GPT-2 model, got ${cfg.architecture}`);
  return buildArchitectureGguf(cfg, weights, opts);
}

/** GGUF metadata and tensors for any architecture this project trains (Llama, Qwen2, GPT-2). */
export function buildModelGguf(cfg: ModelConfig, weights: WeightMap, opts: LlamaGgufOptions): { metadata: Map<string, GgufValue>; tensors: GgufTensorInput[] } {
  return buildArchitectureGguf(cfg, weights, opts);
}

/** Exports a model (Llama, Qwen2 or GPT-2; HF names, float32 weights) to a GGUF v3 file llama.cpp loads. */
export function writeModelGguf(path: string, cfg: ModelConfig, weights: WeightMap, opts: LlamaGgufOptions): void {
  const { metadata, tensors } = buildModelGguf(cfg, weights, opts);
  writeGguf(path, metadata, tensors);
}

/** Exports a Llama-family model (Llama or Qwen2; HF names, float32 weights) to a GGUF v3 file llama.cpp loads. */
export function writeLlamaGguf(path: string, cfg: ModelConfig, weights: WeightMap, opts: LlamaGgufOptions): void {
  const { metadata, tensors } = buildLlamaGguf(cfg, weights, opts);
  writeGguf(path, metadata, tensors);
}

// ---------------------------------------------------------------------------------------------
// Reader (whole file in memory: meant for inspecting and testing exports)

export interface GgufTensorInfo {
  name: string;
  /** GGUF order: ne[0] is the innermost dimension. */
  ne: number[];
  /** PyTorch order (ne reversed). */
  shape: number[];
  type: number;
  /** Absolute byte offset in the file. */
  offset: number;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  dataStart: number;
  /** The tensor's data as float32 (F32 and F16 tensors). */
  tensorData(name: string): Float32Array;
}

/** Reads a GGUF file (v2 or v3): header, metadata, tensor infos; tensor data on demand. */
export function readGguf(path: string): GgufFile {
  const buf = readFileSync(path);
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`gguf ${path}: ${what} (at byte ${pos} of ${buf.length})`);
  };
  const need = (n: number) => {
    if (pos + n > buf.length) fail(`truncated: need ${n} more bytes`);
  };
  const u32 = () => { need(4); const v = buf.readUInt32LE(pos); pos += 4; return v; };
  const u64 = () => {
    need(8);
    const v = buf.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`u64 value ${v} too large`);
    return Number(v);
  };
  const str = () => {
    const n = u64();
    need(n);
    const s = buf.toString('utf8', pos, pos + n);
    pos += n;
    return s;
  };
  const scalar = (t: number): GgufScalar => {
    switch (VT_NAME[t]) {
      case 'u8': need(1); return buf.readUInt8(pos++);
      case 'i8': need(1); return buf.readInt8(pos++);
      case 'u16': { need(2); const v = buf.readUInt16LE(pos); pos += 2; return v; }
      case 'i16': { need(2); const v = buf.readInt16LE(pos); pos += 2; return v; }
      case 'u32': return u32();
      case 'i32': { need(4); const v = buf.readInt32LE(pos); pos += 4; return v; }
      case 'f32': { need(4); const v = buf.readFloatLE(pos); pos += 4; return v; }
      case 'f64': { need(8); const v = buf.readDoubleLE(pos); pos += 8; return v; }
      case 'u64': { need(8); const v = buf.readBigUInt64LE(pos); pos += 8; return v; }
      case 'i64': { need(8); const v = buf.readBigInt64LE(pos); pos += 8; return v; }
      case 'bool': need(1); return buf.readUInt8(pos++) !== 0;
      case 'string': return str();
      default: return fail(`unknown metadata value type ${t}`);
    }
  };
  if (u32() !== GGUF_MAGIC) fail('not a GGUF file (bad magic)');
  const version = u32();
  if (version !== 2 && version !== 3) fail(`unsupported GGUF version ${version}`);
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    if (t === VT.array) {
      const it = u32();
      const n = u64();
      const items: GgufScalar[] = [];
      for (let j = 0; j < n; j++) items.push(scalar(it));
      metadata.set(key, { type: 'array', itemType: VT_NAME[it] as GgufScalarType, value: items });
    } else {
      metadata.set(key, { type: VT_NAME[t] as GgufScalarType, value: scalar(t) });
    }
  }
  const alignValue = metadata.get('general.alignment')?.value;
  const alignment = typeof alignValue === 'number' ? alignValue : GGUF_DEFAULT_ALIGNMENT;
  const raw: { name: string; ne: number[]; type: number; rel: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    if (nd > 4) fail(`tensor ${name}: ${nd} dimensions (max 4)`);
    const ne = Array.from({ length: nd }, () => u64());
    const type = u32();
    const rel = u64();
    if (rel % alignment !== 0) fail(`tensor ${name}: offset ${rel} not aligned to ${alignment}`);
    raw.push({ name, ne, type, rel });
  }
  const dataStart = alignUp(pos, alignment);
  const tensors: GgufTensorInfo[] = raw.map((r) => {
    const n = r.ne.reduce((a, b) => a * b, 1);
    const size = r.type === GGML_TYPE.F32 ? 4 : r.type === GGML_TYPE.F16 ? 2 : 0;
    const offset = dataStart + r.rel;
    if (size > 0 && offset + n * size > buf.length) throw new Error(`gguf ${path}: tensor ${r.name} data runs past the end of the file`);
    return { name: r.name, ne: r.ne, shape: [...r.ne].reverse(), type: r.type, offset };
  });
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return {
    path, version, alignment, metadata, tensors, dataStart,
    tensorData(name: string): Float32Array {
      const t = byName.get(name);
      if (!t) throw new Error(`gguf ${path}: no tensor ${name}`);
      const n = t.ne.reduce((a, b) => a * b, 1);
      if (t.type === GGML_TYPE.F32) {
        const out = new Float32Array(n);
        new Uint8Array(out.buffer).set(buf.subarray(t.offset, t.offset + 4 * n));
        return out;
      }
      if (t.type === GGML_TYPE.F16) {
        const h = new Uint16Array(n);
        new Uint8Array(h.buffer).set(buf.subarray(t.offset, t.offset + 2 * n));
        return f16ToF32(h);
      }
      throw new Error(`gguf ${path}: tensor ${name} has ggml type ${t.type}; only F32 (0) and F16 (1) are read`);
    },
  };
}

/** A metadata value as a plain JS value (arrays as arrays), or undefined. */
export function ggufGet(file: GgufFile, key: string): GgufScalar | GgufScalar[] | undefined {
  return file.metadata.get(key)?.value;
}
