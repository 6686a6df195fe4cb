// safetensors reading and writing (https://huggingface.co/docs/safetensors).
//
// Layout: u64 little-endian N, then N bytes of JSON header {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__"?: {string: string}}, then the byte buffer; offsets are relative to
// the buffer start (8 + N). The buffer must be covered exactly: no holes, no overlaps.
//
// Reading is positional (fs.readSync per tensor), so peak memory stays near the float32 size of
// the model: F32 tensors are read straight into their Float32Array, 16-bit tensors go through one
// reusable chunk buffer. Every malformed file gives an Error naming the file and the problem.

import { closeSync, existsSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, numel, readExactly, shapeString, sortedNames, writeFileAtomically,
  type Weight, type WeightMap,
} from './weights.js';

/** dtypes this module converts to float32 on read. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
/** dtypes this module writes. */
export type SafetensorsWriteDtype = 'F32' | 'F16' | 'BF16';

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};
// Named in errors so a user sees the dtype is known but not convertible (quantised formats).
const KNOWN_UNSUPPORTED = ['F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'U16', 'U32', 'U64', 'C64'];

/** Same bound as the reference implementation: a header beyond it is a corrupt length field. */
const MAX_HEADER_BYTES = 100_000_000;
/** Chunk for converting non-F32 tensors (bytes). */
const CHUNK_BYTES = 8 << 20;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** Byte offset of the data buffer (8 + header length). */
  dataStart: number;
  metadata: Record<string, string>;
  /** In file order (by offset). */
  tensors: SafetensorsTensorInfo[];
}

function fail(path: string, what: string): never {
  throw new Error(`safetensors ${path}: ${what}`);
}

function readFully(fd: number, buf: Uint8Array, position: number, path: string): void {
  readExactly(fd, buf, position, `safetensors ${path}`);
}

function parseHeaderFromFd(fd: number, path: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) fail(path, `file is ${fileSize} bytes, too short for the 8-byte header length (truncated?)`);
  const lenBuf = new Uint8Array(8);
  readFully(fd, lenBuf, 0, path);
  const headerLen64 = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) fail(path, `header length ${headerLen64} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  const headerLen = Number(headerLen64);
  if (8 + headerLen > fileSize) fail(path, `header length ${headerLen} goes beyond the end of the ${fileSize}-byte file (truncated?)`);
  const headerBytes = new Uint8Array(headerLen);
  readFully(fd, headerBytes, 8, path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail(path, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(path, `header does not start with '{' (got ${JSON.stringify(text.slice(0, 16))})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(path, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail(path, 'header JSON is not an object');

  const dataStart = 8 + headerLen;
  const bufferLen = fileSize - dataStart;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(path, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(path, `__metadata__.${k} is not a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(path, `tensor ${name}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string') fail(path, `tensor ${name}: dtype missing or not a string`);
    if (!(dtype in DTYPE_BYTES)) {
      const why = KNOWN_UNSUPPORTED.includes(dtype) ? 'not supported' : 'unknown';
      fail(path, `tensor ${name}: ${why} dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(path, `tensor ${name}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(path, `tensor ${name}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] of non-negative integers`);
    }
    const [b, e] = offsets as [number, number];
    if (e < b) fail(path, `tensor ${name}: data_offsets [${b}, ${e}] end before begin`);
    if (e > bufferLen) fail(path, `tensor ${name}: data_offsets [${b}, ${e}] beyond the ${bufferLen}-byte data buffer (truncated file?)`);
    const expected = numel(shape as number[]) * DTYPE_BYTES[dtype as SafetensorsDtype];
    if (e - b !== expected) {
      fail(path, `tensor ${name}: shape ${shapeString(shape as number[])} of ${dtype} needs ${expected} bytes, data_offsets [${b}, ${e}] hold ${e - b}`);
    }
    tensors.push({ name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  // The buffer must be tiled exactly in offset order (zero-size tensors may sit anywhere).
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = dataStart;
  let prev = '';
  for (const t of tensors) {
    if (t.begin < pos) fail(path, `tensor ${t.name}: data_offsets [${t.begin - dataStart}, ${t.end - dataStart}] overlap tensor ${prev}`);
    if (t.begin > pos) fail(path, `tensor ${t.name}: hole of ${t.begin - pos} bytes before it in the data buffer (at offset ${pos - dataStart})`);
    pos = t.end;
    if (t.end > t.begin) prev = t.name;
  }
  if (pos !== fileSize) fail(path, `${fileSize - pos} bytes after the last tensor are not described by the header`);
  return { path, fileSize, dataStart, metadata, tensors };
}

/** Reads and validates the header only (no tensor data). */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openFile(path);
  try {
    return parseHeaderFromFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

function openFile(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new Error(`safetensors ${path}: cannot open: ${(e as Error).message}`);
  }
}

/** Reads one tensor's bytes and converts them into a new float32 weight. */
function readTensor(fd: number, t: SafetensorsTensorInfo, path: string, chunk: { buf: Uint8Array | null }): Weight {
  const n = numel(t.shape);
  const out = new Float32Array(n);
  if (n === 0) return { shape: [...t.shape], data: out };
  if (t.dtype === 'F32') {
    // Straight into the result's memory: no intermediate copy.
    readFully(fd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), t.begin, path);
    return { shape: [...t.shape], data: out };
  }
  const size = DTYPE_BYTES[t.dtype];
  if (!chunk.buf) chunk.buf = new Uint8Array(CHUNK_BYTES);
  const perChunk = Math.floor(CHUNK_BYTES / size);
  for (let start = 0; start < n; start += perChunk) {
    const count = Math.min(perChunk, n - start);
    // The chunk buffer is 8-byte aligned at offset 0, so typed views over it are always legal.
    const bytes = chunk.buf.subarray(0, count * size);
    readFully(fd, bytes, t.begin + start * size, path);
    const dst = out.subarray(start, start + count);
    convertChunk(t, bytes, dst, start, path);
  }
  return { shape: [...t.shape], data: out };
}

function convertChunk(t: SafetensorsTensorInfo, bytes: Uint8Array, dst: Float32Array, start: number, path: string): void {
  const count = dst.length;
  const buf = bytes.buffer;
  switch (t.dtype) {
    case 'F16':
      f16ToF32(new Uint16Array(buf, 0, count), dst);
      return;
    case 'BF16':
      bf16ToF32(new Uint16Array(buf, 0, count), dst);
      return;
    case 'F64': {
      const s = new Float64Array(buf, 0, count);
      for (let i = 0; i < count; i++) dst[i] = s[i]!; // rounds to nearest float32
      return;
    }
    case 'I64': {
      const s = new BigInt64Array(buf, 0, count);
      for (let i = 0; i < count; i++) {
        const v = s[i]!;
        // Integers are converted only where float32 holds them exactly (|v| <= 2^24).
        if (v > 16777216n || v < -16777216n) fail(path, `tensor ${t.name}: I64 value ${v} at element ${start + i} is not exactly representable as float32`);
        dst[i] = Number(v);
      }
      return;
    }
    case 'I32': {
      const s = new Int32Array(buf, 0, count);
      for (let i = 0; i < count; i++) {
        const v = s[i]!;
        if (v > 16777216 || v < -16777216) fail(path, `tensor ${t.name}: I32 value ${v} at element ${start + i} is not exactly representable as float32`);
        dst[i] = v;
      }
      return;
    }
    case 'I16': {
      const s = new Int16Array(buf, 0, count);
      for (let i = 0; i < count; i++) dst[i] = s[i]!;
      return;
    }
    case 'I8': {
      const s = new Int8Array(buf, 0, count);
      for (let i = 0; i < count; i++) dst[i] = s[i]!;
      return;
    }
    case 'U8':
    case 'BOOL': {
      for (let i = 0; i < count; i++) dst[i] = bytes[i]!;
      return;
    }
    case 'F32':
      dst.set(new Float32Array(buf, 0, count));
      return;
  }
}

export interface ReadSafetensorsOptions {
  /** Load only the tensors for which this returns true. */
  filter?: (name: string) => boolean;
  /** Add into this map instead of a new one (a duplicate name is an error). */
  into?: WeightMap;
}

/** Reads a .safetensors file into float32 weights. */
export function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): WeightMap {
  const out: WeightMap = opts.into ?? new Map();
  const fd = openFile(path);
  try {
    const header = parseHeaderFromFd(fd, path);
    const chunk = { buf: null as Uint8Array | null };
    for (const t of header.tensors) {
      if (opts.filter && !opts.filter(t.name)) continue;
      if (out.has(t.name)) fail(path, `tensor ${t.name} is already loaded from another file`);
      out.set(t.name, readTensor(fd, t, path, chunk));
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** The file name of the sharded-checkpoint index in a Hugging Face directory. */
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

export interface SafetensorsIndex {
  metadata: Record<string, unknown>;
  /** tensor name → shard file name (relative to the index's directory). */
  weightMap: Record<string, string>;
}

/** Reads and validates model.safetensors.index.json. */
export function readSafetensorsIndex(indexPath: string): SafetensorsIndex {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new Error(`safetensors index ${indexPath}: cannot read JSON: ${(e as Error).message}`);
  }
  const obj = json as Record<string, unknown> | null;
  const wm = obj?.weight_map;
  if (!obj || typeof obj !== 'object' || !wm || typeof wm !== 'object' || Array.isArray(wm)) {
    throw new Error(`safetensors index ${indexPath}: missing "weight_map" object`);
  }
  for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== 'string' || file.length === 0 || file.includes('/') || file.includes('\\') || file.startsWith('.')) {
      throw new Error(`safetensors index ${indexPath}: weight_map[${JSON.stringify(name)}] = ${JSON.stringify(file)} is not a plain shard file name`);
    }
  }
  const metadata = obj.metadata && typeof obj.metadata === 'object' ? (obj.metadata as Record<string, unknown>) : {};
  return { metadata, weightMap: wm as Record<string, string> };
}

/**
 * Reads a sharded checkpoint: every shard named in the index, checking that each tensor is in
 * the shard the index says and that no shard holds tensors the index does not list.
 */
export function readShardedSafetensors(indexPath: string, opts: { filter?: (name: string) => boolean } = {}): WeightMap {
  const index = readSafetensorsIndex(indexPath);
  const dir = dirname(indexPath);
  const shards = [...new Set(Object.values(index.weightMap))].sort();
  const out: WeightMap = new Map();
  for (const shard of shards) {
    const path = join(dir, shard);
    if (!existsSync(path)) throw new Error(`safetensors index ${indexPath}: shard ${shard} does not exist`);
    const header = readSafetensorsHeader(path);
    for (const t of header.tensors) {
      const listed = index.weightMap[t.name];
      if (listed === undefined) throw new Error(`safetensors index ${indexPath}: shard ${shard} holds tensor ${t.name} that the index does not list`);
      if (listed !== shard) throw new Error(`safetensors index ${indexPath}: tensor ${t.name} is in shard ${shard}, the index says ${listed}`);
    }
    readSafetensors(path, { filter: opts.filter, into: out });
  }
  for (const [name, shard] of Object.entries(index.weightMap)) {
    if (opts.filter && !opts.filter(name)) continue;
    if (!out.has(name)) throw new Error(`safetensors index ${indexPath}: tensor ${name} is listed for shard ${shard} but not in it`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface WriteSafetensorsOptions {
  /** dtype of every tensor in the file (default F32). BF16 / F16 round to nearest even. */
  dtype?: SafetensorsWriteDtype;
  /** String metadata; "format": "pt" is always set (what transformers expects). */
  metadata?: Record<string, string>;
}

const WRITE_BYTES: Record<SafetensorsWriteDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Bytes the tensors take in a file of the given dtype (for shard planning). */
export function safetensorsDataBytes(weights: WeightMap, dtype: SafetensorsWriteDtype = 'F32'): number {
  let n = 0;
  for (const w of weights.values()) n += w.data.length * WRITE_BYTES[dtype];
  return n;
}

/**
 * Writes weights to `path`: tensors sorted by name, header padded with spaces to a multiple of 8
 * bytes (so the data buffer is 8-byte aligned), written to a temporary file then renamed so a
 * reader never sees a half-written file.
 */
export function writeSafetensors(path: string, weights: WeightMap, opts: WriteSafetensorsOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  if (!(dtype in WRITE_BYTES)) throw new Error(`safetensors ${path}: cannot write dtype ${String(dtype)} (F32, F16, BF16)`);
  const size = WRITE_BYTES[dtype];
  const names = sortedNames(weights);
  const header: Record<string, unknown> = { __metadata__: { ...(opts.metadata ?? {}), format: 'pt' } };
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new Error(`safetensors ${path}: "__metadata__" cannot be a tensor name`);
    const w = weights.get(name)!;
    if (w.data.length !== numel(w.shape)) {
      throw new Error(`safetensors ${path}: tensor ${name} has shape ${shapeString(w.shape)} but ${w.data.length} elements`);
    }
    const bytes = w.data.length * size;
    header[name] = { dtype, shape: w.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + jsonBytes) % 8)) % 8);
  const headerBuf = Buffer.from(json, 'utf8');

  writeFileAtomically(path, `safetensors ${path}`, (write) => {
    const lenBuf = Buffer.alloc(8);
    lenBuf.writeBigUInt64LE(BigInt(headerBuf.length));
    write(lenBuf);
    write(headerBuf);
    const chunkElems = CHUNK_BYTES / 2;
    const half = dtype === 'F32' ? null : new Uint16Array(chunkElems);
    for (const name of names) {
      const data = weights.get(name)!.data;
      if (!half) {
        write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        continue;
      }
      for (let s = 0; s < data.length; s += chunkElems) {
        const part = data.subarray(s, Math.min(data.length, s + chunkElems));
        const out = half.subarray(0, part.length);
        if (dtype === 'BF16') f32ToBf16(part, out);
        else f32ToF16(part, out);
        write(new Uint8Array(out.buffer, 0, out.length * 2));
      }
    }
  });
}
