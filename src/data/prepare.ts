// One call from files to training-ready tokenized rows: load (detect/validate) then tokenize
// (render/truncate). With onBadRow 'error', problems of both stages are reported together in
// one error, so a user fixes the data in one pass.

import type { Tokenizer } from '../io/tokenizer.js';
import { loadPreferenceData, loadSftData } from './load.js';
import type { LoadOptions, LoadSummary } from './load.js';
import { tokenizePreferenceData, tokenizeSftData } from './tokenize.js';
import type { SftLossMask, TokenizedPair, TokenizedSft, TokenizeSummary, TruncationOptions } from './tokenize.js';
import type { DataFormat, DataSource, PreferenceExample, SftExample } from './types.js';
import { BadDataError } from './types.js';

export interface PrepareOptions extends LoadOptions, TruncationOptions {}

export interface PreparedPreferenceData {
  format: DataFormat;
  /** The valid examples as read (pairs[i].index points into this list). */
  examples: PreferenceExample[];
  pairs: TokenizedPair[];
  load: LoadSummary;
  tokenize: TokenizeSummary;
}

export interface PreparedSftData {
  format: DataFormat;
  /** The valid examples as read (rows[i].index points into this list). */
  examples: SftExample[];
  rows: TokenizedSft[];
  load: LoadSummary;
  tokenize: TokenizeSummary;
}

/** Loads and tokenizes preference data; every dropped row is in load.badRows or tokenize.badRows. */
export async function preparePreferenceData(files: DataSource, tok: Tokenizer, opts: PrepareOptions = {}): Promise<PreparedPreferenceData> {
  const loaded = await loadPreferenceData(files, { ...opts, onBadRow: 'skip' });
  const tokenized = tokenizePreferenceData(tok, loaded.examples, { ...opts, onBadRow: 'skip' });
  const bad = [...loaded.summary.badRows, ...tokenized.summary.badRows];
  if (bad.length > 0 && (opts.onBadRow ?? 'error') === 'error') {
    throw new BadDataError(`${loaded.summary.files.join(', ')} (format ${loaded.format})`, bad);
  }
  return { format: loaded.format, examples: loaded.examples, pairs: tokenized.pairs, load: loaded.summary, tokenize: tokenized.summary };
}

/** Loads and tokenizes SFT data (prompt/completion or messages; only completions/assistant turns trained). */
export async function prepareSftData(
  files: DataSource,
  tok: Tokenizer,
  opts: Omit<PrepareOptions, 'maxPromptLength' | 'maxCompletionLength' | 'truncationMode'> & SftLossMask = {},
): Promise<PreparedSftData> {
  const loaded = await loadSftData(files, { ...opts, onBadRow: 'skip' });
  const tokenized = tokenizeSftData(tok, loaded.examples, {
    maxLength: opts.maxLength, onBadRow: 'skip', completionOnlyLoss: opts.completionOnlyLoss, assistantOnlyLoss: opts.assistantOnlyLoss,
  });
  const bad = [...loaded.summary.badRows, ...tokenized.summary.badRows];
  if (bad.length > 0 && (opts.onBadRow ?? 'error') === 'error') {
    throw new BadDataError(`${loaded.summary.files.join(', ')} (format ${loaded.format})`, bad);
  }
  return { format: loaded.format, examples: loaded.examples, rows: tokenized.rows, load: loaded.summary, tokenize: tokenized.summary };
}
