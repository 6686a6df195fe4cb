// Loading whole data sets: read every file, detect the format from the first rows, normalize and
// validate each row. Bad rows either throw one error listing them (onBadRow 'error', default) or
// are dropped and counted by reason (onBadRow 'skip'); nothing is silently lost.

import { readRecords } from './readers.js';
import type { FileKind, RawRecord } from './readers.js';
import { applyColumns, detectFormat, DETECT_ROWS, normalizePreference, normalizeSft, sliceValue } from './formats.js';
import type { NormalizeOptions } from './formats.js';
import type {
  BadRow,
  BadRowReason,
  ColumnMapping,
  DataFormat,
  DataSource,
  InMemoryRows,
  OnBadRow,
  PreferenceExample,
  PreferenceFormat,
  SftExample,
  SftFormat,
  SourceLoc,
} from './types.js';
import { BadDataError, countByReason, dataSourceName, dataSourceParts, PREFERENCE_FORMATS, SFT_FORMATS } from './types.js';

export interface LoadOptions extends NormalizeOptions {
  /** Force a format instead of detecting it from the first rows. */
  format?: DataFormat;
  /** Rename source columns to canonical names, e.g. {prompt: 'question', chosen: 'good', rejected: 'bad'}. */
  columns?: ColumnMapping;
  /** Default 'error': throw listing the first 20 problems; 'skip': drop and count them. */
  onBadRow?: OnBadRow;
  /** Force the file kind (jsonl/json/parquet) instead of using the extension. */
  fileKind?: FileKind;
  /** Stop after this many valid examples (for previews and quick runs). */
  limit?: number;
  /**
   * Columns (dotted paths allowed, read before the column mapping) whose values each example
   * carries in `slices` (e.g. "group", "source", "meta.annotator_group"): per-slice audit and evaluation.
   */
  sliceColumns?: readonly string[];
}

export interface LoadSummary {
  files: string[];
  format: DataFormat;
  /** Records read (valid + bad). */
  rowsRead: number;
  valid: number;
  bad: number;
  badByReason: Partial<Record<BadRowReason, number>>;
  badRows: BadRow[];
}

export interface LoadedData<E> {
  examples: E[];
  format: DataFormat;
  summary: LoadSummary;
}

type ObjectRecord = { loc: SourceLoc; value: Record<string, unknown>; original: Record<string, unknown> };

/**
 * Streams the records of several files as either valid objects or bad rows, with the first
 * DETECT_ROWS objects buffered so the format can be detected before anything is normalized.
 */
async function* objectRecords(files: readonly (string | InMemoryRows)[], opts: LoadOptions): AsyncGenerator<ObjectRecord | BadRow> {
  for (const file of files) {
    if (typeof file === 'string') {
      for await (const rec of readRecords(file, { kind: opts.fileKind })) yield toObject(rec, opts.columns);
    } else {
      let row = 0;
      for await (const value of file) yield toObject({ loc: { file: dataSourceName(file), row: row++ }, value }, opts.columns);
    }
  }
}

function toObject(rec: RawRecord, columns: ColumnMapping | undefined): ObjectRecord | BadRow {
  if (rec.error !== undefined) return { loc: rec.loc, reason: 'invalid_json', message: rec.error };
  const v = rec.value;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return { loc: rec.loc, reason: 'not_an_object', message: `expected a JSON object per row, got ${v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v}` };
  }
  return { loc: rec.loc, value: applyColumns(v as Record<string, unknown>, columns), original: v as Record<string, unknown> };
}

function isBad(r: ObjectRecord | BadRow): r is BadRow {
  return 'reason' in r;
}

/**
 * Generic loader: normalize(row, format) turns each object into an example or a problem.
 * Yields examples as they are read (streaming), then returns the summary.
 */
async function* streamExamples<E>(
  sources: readonly (string | InMemoryRows)[],
  opts: LoadOptions,
  want: 'preference' | 'sft',
  normalize: (row: Record<string, unknown>, format: DataFormat) => ReturnType<typeof normalizePreference> | ReturnType<typeof normalizeSft>,
  summary: LoadSummary,
): AsyncGenerator<E> {
  const allowed: readonly string[] = want === 'preference' ? PREFERENCE_FORMATS : SFT_FORMATS;
  if (opts.format !== undefined && !allowed.includes(opts.format)) {
    throw new Error(`format "${opts.format}" is not a ${want} format (expected one of: ${allowed.join(', ')})`);
  }
  const files = sources.map(dataSourceName);
  const it = objectRecords(sources, opts);
  const head: (ObjectRecord | BadRow)[] = [];
  let objects = 0;
  while (objects < DETECT_ROWS) {
    const n = await it.next();
    if (n.done) break;
    head.push(n.value);
    if (!isBad(n.value)) objects++;
  }
  const objs = head.filter((r): r is ObjectRecord => !isBad(r));
  if (objs.length === 0 && opts.format === undefined) {
    if (head.length === 0) throw new Error(`${files.join(', ')}: no records`);
    // Only unparseable rows: report them rather than a detection failure.
    summary.badRows.push(...head.filter(isBad));
    summary.rowsRead = head.length;
    summary.bad = head.length;
    summary.badByReason = countByReason(summary.badRows);
    if ((opts.onBadRow ?? 'error') === 'error') throw new BadDataError(`${files.join(', ')}`, summary.badRows);
    return;
  }
  const format = opts.format ?? detectFormat(objs, want);
  summary.format = format;
  const limit = opts.limit ?? Infinity;

  let index = 0;
  const handle = (r: ObjectRecord | BadRow): E | null => {
    summary.rowsRead++;
    if (isBad(r)) {
      summary.badRows.push(r);
      return null;
    }
    const res = normalize(r.value, format);
    if (!res.ok) {
      summary.badRows.push({ loc: r.loc, reason: res.reason, message: res.message });
      return null;
    }
    const slices = opts.sliceColumns?.length ? Object.fromEntries(opts.sliceColumns.map((c) => [c, sliceValue(r.original, c)])) : undefined;
    return { ...res.example, index: index++, loc: r.loc, ...(slices ? { slices } : {}) } as E;
  };
  const drain = async function* (): AsyncGenerator<ObjectRecord | BadRow> {
    yield* head;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  };
  for await (const r of drain()) {
    if (index >= limit) break;
    const e = handle(r);
    if (e !== null) yield e;
  }
  summary.valid = index;
  summary.bad = summary.badRows.length;
  summary.badByReason = countByReason(summary.badRows);
  if (summary.bad > 0 && (opts.onBadRow ?? 'error') === 'error') throw new BadDataError(`${files.join(', ')} (format ${format})`, summary.badRows);
}

function emptySummary(sources: readonly (string | InMemoryRows)[]): LoadSummary {
  return { files: sources.map(dataSourceName), format: 'standard', rowsRead: 0, valid: 0, bad: 0, badByReason: {}, badRows: [] };
}

/**
 * Streams preference examples from one or more files. Bad rows are checked at the end of the
 * stream (policy 'error' throws after the last row, so every problem is listed at once).
 * The summary object is filled in as the stream is consumed.
 */
export function streamPreferenceExamples(
  files: DataSource,
  opts: LoadOptions = {},
): { examples: AsyncGenerator<PreferenceExample>; summary: LoadSummary } {
  const list = dataSourceParts(files);
  const summary = emptySummary(list);
  const promptBoundary = opts.promptBoundary;
  const examples = streamExamples<PreferenceExample>(
    list,
    opts,
    'preference',
    (row, f) => normalizePreference(row, f as PreferenceFormat, { promptBoundary }),
    summary,
  );
  return { examples, summary };
}

/** Loads all preference examples of one or more files into memory. */
export async function loadPreferenceData(files: DataSource, opts: LoadOptions = {}): Promise<LoadedData<PreferenceExample>> {
  const { examples, summary } = streamPreferenceExamples(files, opts);
  const out: PreferenceExample[] = [];
  for await (const e of examples) out.push(e);
  return { examples: out, format: summary.format, summary };
}

/** Loads all SFT examples (prompt/completion or messages) of one or more files into memory. */
export async function loadSftData(files: DataSource, opts: LoadOptions = {}): Promise<LoadedData<SftExample>> {
  const list = dataSourceParts(files);
  const summary = emptySummary(list);
  summary.format = 'prompt_completion';
  const out: SftExample[] = [];
  for await (const e of streamExamples<SftExample>(list, opts, 'sft', (row, f) => normalizeSft(row, f as SftFormat), summary)) out.push(e);
  return { examples: out, format: summary.format, summary };
}
