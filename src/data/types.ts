// Shared types of the preference/SFT data pipeline: where a record came from, what was wrong with
// it, and the normalized example shapes every later stage (tokenize, batch, audit) works on.

import type { ChatMessage } from '../io/tokenizer.js';

/** Where a record came from: 1-based line for JSON lines, 0-based row index for JSON arrays/Parquet. */
export interface SourceLoc {
  file: string;
  line?: number;
  row?: number;
}

/** "file:12" for JSON lines, "file[row 3]" for array/columnar JSON and Parquet. */
export function formatLoc(loc: SourceLoc): string {
  if (loc.line !== undefined) return `${loc.file}:${loc.line}`;
  if (loc.row !== undefined) return `${loc.file}[row ${loc.row}]`;
  return loc.file;
}

/**
 * Rows held in memory: objects in any format the files may hold (`{prompt, chosen, rejected}`,
 * message lists, OpenAI preference rows, ...), as an array, an iterable or an async iterable.
 */
export type InMemoryRows = Iterable<object> | AsyncIterable<object>;

/** Where examples come from: a file, several files, or rows in memory. */
export type DataSource = string | readonly string[] | InMemoryRows;

/** The file name in-memory rows are reported under (`(in memory)[row 3]`). */
export const IN_MEMORY = '(in memory)';

/** A data source as a list of files and in-memory row sets. */
export function dataSourceParts(src: DataSource): (string | InMemoryRows)[] {
  if (typeof src === 'string') return [src];
  if (Array.isArray(src) && src.every((x) => typeof x === 'string')) return [...(src as readonly string[])];
  if (typeof (src as Iterable<object>)[Symbol.iterator] === 'function' || typeof (src as AsyncIterable<object>)[Symbol.asyncIterator] === 'function') {
    return [src as InMemoryRows];
  }
  throw new TypeError('data: expected a file path, a list of paths, or an (async) iterable of row objects');
}

/** How a data source is named in summaries and errors. */
export function dataSourceName(part: string | InMemoryRows): string {
  return typeof part === 'string' ? part : IN_MEMORY;
}

export type BadRowReason =
  | 'invalid_json'
  | 'not_an_object'
  | 'missing_field'
  | 'ill_typed'
  | 'empty_response'
  | 'identical_responses'
  | 'no_common_prompt'
  | 'template_mismatch'
  | 'prompt_too_long'
  | 'no_trained_tokens';

export const BAD_ROW_REASONS: readonly BadRowReason[] = [
  'invalid_json',
  'not_an_object',
  'missing_field',
  'ill_typed',
  'empty_response',
  'identical_responses',
  'no_common_prompt',
  'template_mismatch',
  'prompt_too_long',
  'no_trained_tokens',
];

export interface BadRow {
  loc: SourceLoc;
  reason: BadRowReason;
  /** Human-readable detail naming the field, e.g. "chosen: expected a string, got number". */
  message: string;
}

export type OnBadRow = 'error' | 'skip';

/** How many problems one "bad data" error lists before summarizing the rest as a count. */
export const MAX_LISTED_PROBLEMS = 20;

/** Thrown (policy onBadRow = 'error') when any row is bad: lists the first 20, counts all. */
export class BadDataError extends Error {
  readonly badRows: readonly BadRow[];
  constructor(what: string, badRows: readonly BadRow[]) {
    const listed = badRows.slice(0, MAX_LISTED_PROBLEMS).map((b) => `  ${formatLoc(b.loc)}: ${b.reason}: ${b.message}`);
    const more = badRows.length > MAX_LISTED_PROBLEMS ? [`  ... and ${badRows.length - MAX_LISTED_PROBLEMS} more`] : [];
    super(
      `${what}: ${badRows.length} bad row${badRows.length === 1 ? '' : 's'} ` +
        `(${countByReasonText(badRows)}); pass onBadRow: 'skip' to drop them\n` +
        [...listed, ...more].join('\n'),
    );
    this.name = 'BadDataError';
    this.badRows = badRows;
  }
}

export function countByReason(badRows: readonly BadRow[]): Partial<Record<BadRowReason, number>> {
  const counts: Partial<Record<BadRowReason, number>> = {};
  for (const b of badRows) counts[b.reason] = (counts[b.reason] ?? 0) + 1;
  return counts;
}

function countByReasonText(badRows: readonly BadRow[]): string {
  return Object.entries(countByReason(badRows))
    .map(([r, n]) => `${r} ${n}`)
    .join(', ');
}

/** Preference formats (TRL names in parentheses). */
export type PreferenceFormat =
  /** prompt/chosen/rejected strings ("standard, explicit prompt"). */
  | 'standard'
  /** prompt = message list, chosen/rejected = assistant message lists ("conversational"). */
  | 'conversational'
  /** chosen/rejected only: full texts or message lists sharing a prefix ("implicit prompt"). */
  | 'implicit'
  /** input.messages, preferred_output, non_preferred_output (OpenAI preference fine-tuning). */
  | 'openai';

export type SftFormat =
  /** prompt/completion strings (or message lists: conversational prompt-completion). */
  | 'prompt_completion'
  /** messages list; only assistant turns are trained. */
  | 'messages';

export type DataFormat = PreferenceFormat | SftFormat;

export const PREFERENCE_FORMATS: readonly PreferenceFormat[] = ['standard', 'conversational', 'implicit', 'openai'];
export const SFT_FORMATS: readonly SftFormat[] = ['prompt_completion', 'messages'];

/**
 * Rename source columns to the canonical names, e.g. {prompt: 'question', chosen: 'good',
 * rejected: 'bad'}. Dotted paths reach into nested objects ("meta.question").
 */
export type ColumnMapping = Partial<
  Record<'prompt' | 'chosen' | 'rejected' | 'completion' | 'messages' | 'input' | 'preferred_output' | 'non_preferred_output', string>
>;

/**
 * One preference pair after format normalization. Text pairs keep raw strings (tokenized as is,
 * like TRL); chat pairs keep messages (rendered with the tokenizer's chat template).
 */
export type PreferenceExample =
  | {
      kind: 'text';
      /** Dataset row (0-based, over all files, counting only valid rows). */
      index: number;
      loc: SourceLoc;
      prompt: string;
      chosen: string;
      rejected: string;
      /** Values of the requested slice columns (LoadOptions.sliceColumns), as strings. */
      slices?: Record<string, string>;
    }
  | {
      kind: 'chat';
      index: number;
      loc: SourceLoc;
      prompt: ChatMessage[];
      chosen: ChatMessage[];
      rejected: ChatMessage[];
      slices?: Record<string, string>;
    };

export type SftExample =
  | { kind: 'text'; index: number; loc: SourceLoc; prompt: string; completion: string }
  | { kind: 'chat'; index: number; loc: SourceLoc; messages: ChatMessage[] };

/** The value a row without a slice column gets. */
export const MISSING_SLICE = '(missing)';

export type TruncationMode = 'keep_end' | 'keep_start';
