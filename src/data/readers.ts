// Record readers: JSON lines (streamed), JSON (array, {"data": [...]}, or HF-style columnar) and
// Parquet (row group by row group), each optionally gzip'd. Every record keeps its source
// location; a JSON line that does not parse becomes an error record (the caller decides whether
// that throws or is skipped), never a silent drop.

import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { gunzipSync, createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import type { AsyncBuffer } from 'hyparquet';
import type { SourceLoc } from './types.js';

export type FileKind = 'jsonl' | 'json' | 'parquet';

/** One record read from a file: its parsed value, or why it could not be parsed. */
export type RawRecord = { loc: SourceLoc; value: unknown; error?: undefined } | { loc: SourceLoc; value?: undefined; error: string };

export interface ReadOptions {
  /** Override the file kind detected from the extension (and, failing that, the content). */
  kind?: FileKind;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const PARQUET_MAGIC = 'PAR1';

function stripGz(path: string): string {
  return path.toLowerCase().endsWith('.gz') ? path.slice(0, -3) : path;
}

async function readHead(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function isGzip(path: string): Promise<boolean> {
  const head = await readHead(path, 2);
  return head.length === 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
}

/** File kind from the extension (ignoring .gz), else sniffed from the first bytes. */
export async function detectFileKind(path: string): Promise<FileKind> {
  const base = stripGz(path).toLowerCase();
  if (base.endsWith('.jsonl') || base.endsWith('.ndjson')) return 'jsonl';
  if (base.endsWith('.json')) return 'json';
  if (base.endsWith('.parquet') || base.endsWith('.pq')) return 'parquet';
  let head = await readHead(path, 64 * 1024);
  if (head.length >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) {
    // Partial gzip streams throw in gunzipSync; read the whole file then (only for sniffing).
    head = gunzipSync(await readFile(path)).subarray(0, 64 * 1024);
  }
  if (head.subarray(0, 4).toString('latin1') === PARQUET_MAGIC) return 'parquet';
  const text = head.toString('utf8').replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('[')) return 'json';
  return 'jsonl';
}

function openTextStream(path: string, gz: boolean): Readable {
  const raw = createReadStream(path);
  if (!gz) return raw;
  const gunzip = createGunzip();
  raw.on('error', (e) => gunzip.destroy(e));
  return raw.pipe(gunzip);
}

async function readWholeFile(path: string): Promise<Buffer> {
  const buf = await readFile(path);
  if (buf.length >= 2 && buf[0] === GZIP_MAGIC[0] && buf[1] === GZIP_MAGIC[1]) {
    try {
      return gunzipSync(buf);
    } catch (e) {
      throw new Error(`${path}: gzip data is corrupt (${(e as Error).message})`);
    }
  }
  return buf;
}

/** Streams the records of a data file (JSONL line by line, Parquet row group by row group). */
export async function* readRecords(path: string, opts: ReadOptions = {}): AsyncGenerator<RawRecord> {
  const kind = opts.kind ?? (await detectFileKind(path));
  if (kind === 'jsonl') yield* readJsonLines(path);
  else if (kind === 'json') yield* readJsonFile(path);
  else yield* readParquet(path);
}

/** Streams a JSON lines file; blank lines are skipped, bad lines are error records naming the line. */
export async function* readJsonLines(path: string): AsyncGenerator<RawRecord> {
  const gz = await isGzip(path);
  const stream = openTextStream(path, gz);
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (let line of lines) {
      lineNo++;
      if (lineNo === 1) line = line.replace(/^\uFEFF/, '');
      if (line.trim() === '') continue;
      const loc = { file: path, line: lineNo };
      try {
        yield { loc, value: JSON.parse(line) as unknown };
      } catch (e) {
        yield { loc, error: `invalid JSON: ${(e as Error).message}` };
      }
    }
  } catch (e) {
    throw new Error(`${path}:${lineNo + 1}: cannot read (${(e as Error).message})`);
  } finally {
    lines.close();
    stream.destroy();
  }
}

/** 1-based line and column of a character offset. */
function lineColOf(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

/** Where JSON.parse failed, from V8's message ("... at position 123" or "(line 3 column 5)"). */
function jsonErrorLine(text: string, message: string): { line: number; col: number } | null {
  const lc = /line (\d+) column (\d+)/.exec(message);
  if (lc) return { line: Number(lc[1]), col: Number(lc[2]) };
  const pos = /at position (\d+)/.exec(message);
  if (pos) return lineColOf(text, Number(pos[1]));
  if (/Unexpected end of JSON input/.test(message)) return lineColOf(text, text.length);
  return null;
}

/**
 * A JSON file: an array of records, {"data": [...]}, or HF-style columnar {"col": [...], ...}.
 * A JSON file holding one object per line (what `datasets.to_json` writes by default) is read
 * as JSON lines. The whole file is parsed at once: JSON arrays cannot be streamed with JSON.parse.
 */
export async function* readJsonFile(path: string): AsyncGenerator<RawRecord> {
  const text = (await readWholeFile(path)).toString('utf8').replace(/^\uFEFF/, '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const firstLine = text.trimStart().split('\n', 1)[0] ?? '';
    let firstLineIsObject = false;
    try {
      const v = JSON.parse(firstLine) as unknown;
      firstLineIsObject = typeof v === 'object' && v !== null && !Array.isArray(v);
    } catch {
      firstLineIsObject = false;
    }
    if (firstLineIsObject) {
      yield* readJsonLines(path);
      return;
    }
    const where = jsonErrorLine(text, msg);
    throw new Error(`${path}${where ? `:${where.line}:${where.col}` : ''}: invalid JSON: ${msg}`);
  }
  const rows = jsonRows(parsed, path);
  for (let i = 0; i < rows.length; i++) yield { loc: { file: path, row: i }, value: rows[i] };
}

function jsonRows(parsed: unknown, path: string): unknown[] {
  if (Array.isArray(parsed)) return parsed;
  if (typeof parsed === 'object' && parsed !== null) {
    const obj = parsed as Record<string, unknown>;
    if ('data' in obj && (Array.isArray(obj.data) || (typeof obj.data === 'object' && obj.data !== null))) {
      return jsonRows(obj.data, path);
    }
    const cols = Object.entries(obj);
    if (cols.length > 0 && cols.every(([, v]) => Array.isArray(v))) return columnarToRows(cols as [string, unknown[]][], path);
    throw new Error(
      `${path}: JSON object is neither {"data": [...]} nor columnar (every value an array); keys: ${Object.keys(obj).join(', ')}`,
    );
  }
  throw new Error(`${path}: JSON top level must be an array or an object, got ${typeof parsed}`);
}

function columnarToRows(cols: [string, unknown[]][], path: string): Record<string, unknown>[] {
  const n = cols[0]![1].length;
  for (const [name, values] of cols) {
    if (values.length !== n) {
      throw new Error(`${path}: columnar JSON: column "${name}" has ${values.length} values, column "${cols[0]![0]}" has ${n}`);
    }
  }
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const row: Record<string, unknown> = {};
    for (const [name, values] of cols) row[name] = values[i];
    rows.push(row);
  }
  return rows;
}

/**
 * A Parquet file as hyparquet's AsyncBuffer: each slice read through a file handle (node:fs/promises
 * open, which the browser bundle serves from its volume; hyparquet's own asyncBufferFromFile is Node-only).
 */
async function fileAsyncBuffer(path: string): Promise<AsyncBuffer> {
  const fh = await open(path, 'r');
  let size: number;
  try {
    size = (await fh.stat()).size;
  } finally {
    await fh.close();
  }
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      const h = await open(path, 'r');
      try {
        const buf = new Uint8Array(Math.max(0, end - start));
        const { bytesRead } = await h.read(buf, 0, buf.byteLength, start);
        return buf.buffer.slice(0, bytesRead);
      } finally {
        await h.close();
      }
    },
  };
}

/** Parquet, read one row group at a time; a .gz'd Parquet file is decompressed in memory first. */
export async function* readParquet(path: string): AsyncGenerator<RawRecord> {
  let file: AsyncBuffer;
  if (await isGzip(path)) {
    const buf = await readWholeFile(path);
    file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  } else {
    file = await fileAsyncBuffer(path);
  }
  let meta;
  try {
    meta = await parquetMetadataAsync(file);
  } catch (e) {
    throw new Error(`${path}: not a readable Parquet file (${(e as Error).message})`);
  }
  let rowStart = 0;
  for (const group of meta.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file, metadata: meta, rowStart, rowEnd });
    } catch (e) {
      throw new Error(`${path}[rows ${rowStart}..${rowEnd - 1}]: cannot decode Parquet (${(e as Error).message})`);
    }
    for (let i = 0; i < rows.length; i++) yield { loc: { file: path, row: rowStart + i }, value: normalizeParquetValue(rows[i]) };
    rowStart = rowEnd;
  }
}

/** Parquet lists/structs come back as plain arrays/objects already; only bigint needs care. */
function normalizeParquetValue(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(normalizeParquetValue);
  if (v && typeof v === 'object' && !(v instanceof Date) && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = normalizeParquetValue(x);
    return out;
  }
  return v;
}
