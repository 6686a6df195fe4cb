// Reads preference pairs to be (re-)labeled by people, through the project's data layer
// (src/data): every format and file kind the DPO trainer reads — standard prompt/chosen/rejected,
// conversational (TRL messages), implicit prompt (chosen/rejected sharing a prefix, e.g. HH-RLHF),
// OpenAI preference fine-tuning; JSONL, JSON, Parquet, optionally gzipped — with the same column
// mapping and bad-row policy. Bad rows are reported with file:line (BadDataError).
import type { ChatMessage } from '../io/tokenizer.js';
import { loadPreferenceData, type LoadSummary } from '../data/load.js';
import type { ColumnMapping, OnBadRow, PreferenceExample, PreferenceFormat } from '../data/types.js';

export type ChatTurn = ChatMessage;

export interface PairForAnnotation {
  format: 'text' | 'chat';
  prompt: string | ChatTurn[];
  chosen: string;
  rejected: string;
  /** Line number in the source file (1-based; for JSON arrays and Parquet, row index + 1), for messages. */
  line: number;
}

export interface ReadPairsOptions {
  /** Force a format instead of detecting it from the first rows. */
  format?: PreferenceFormat;
  /** Rename source columns, e.g. {prompt: 'question', chosen: 'good', rejected: 'bad'}. */
  columns?: ColumnMapping;
  /** 'error' (default): throw listing the bad rows; 'skip': drop them (counted in the summary). */
  onBadRow?: OnBadRow;
  /** Turn boundary of implicit text prompts (default "\n\nAssistant:"). */
  promptBoundary?: string;
}

export interface ReadPairsResult {
  pairs: PairForAnnotation[];
  /** What the data layer read: detected format, rows read, bad rows by reason. */
  summary: LoadSummary;
}

/**
 * A response given as messages, as one text for the reviewer. Responses are normally a single
 * assistant turn; when a response spans several turns (e.g. a tool call and its result), the
 * non-assistant turns are labeled with their role so the reviewer sees who said what.
 */
export function responseText(msgs: readonly ChatMessage[]): string {
  return msgs.map((m) => (m.role === 'assistant' ? m.content : `[${m.role}] ${m.content}`)).join('\n\n');
}

/** A normalized preference example in the annotation store's shape. */
export function toAnnotationPair(e: PreferenceExample): PairForAnnotation {
  const line = e.loc.line ?? (e.loc.row ?? 0) + 1;
  if (e.kind === 'text') return { format: 'text', prompt: e.prompt, chosen: e.chosen, rejected: e.rejected, line };
  return {
    format: 'chat',
    prompt: e.prompt.map((m) => ({ role: m.role, content: m.content })),
    chosen: responseText(e.chosen),
    rejected: responseText(e.rejected),
    line,
  };
}

export async function readPairsForAnnotation(files: string | readonly string[], opts: ReadPairsOptions = {}): Promise<ReadPairsResult> {
  const data = await loadPreferenceData(files, {
    format: opts.format,
    columns: opts.columns,
    onBadRow: opts.onBadRow ?? 'error',
    promptBoundary: opts.promptBoundary,
  });
  return { pairs: data.examples.map(toAnnotationPair), summary: data.summary };
}
