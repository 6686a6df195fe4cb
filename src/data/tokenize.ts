// Tokenization for DPO and SFT, following TRL's conventions (pinned reference: TRL v1.9.0):
// - the prompt is tokenized on its own, with BOS per the tokenizer's convention, exactly once;
// - each response is tokenized as TRL does, within prompt + response (split after the prompt's
//   tokens), and ends with EOS exactly once; a chat response whose template already ends the turn
//   with a stop token gets no extra EOS (whitespace after that token, e.g. ChatML's newline, is
//   left out: the model never generates it, while TRL trains on it);
// - labels only on response tokens;
// - truncation exactly as TRL v1.9.0's DataCollatorForPreference: each row (prompt + chosen,
//   prompt + rejected) is sliced to max_length on its own, `keep_start` keeping its first
//   max_length tokens (a pair whose prompt alone fills max_length is dropped, as TRL's
//   _prepare_dataset filter drops it) and `keep_end` its last max_length tokens (the oldest prompt
//   tokens go first; nothing is ever dropped). With keep_end the two rows of a pair may keep
//   different amounts of the prompt.
// - extensions from TRL before v1.0 (not in v1.9.0, off by default): max_prompt_length cuts the
//   prompt first (keep_end keeps its end and a leading BOS, keep_start its start) and
//   max_completion_length each response's end, neither inside a run of special tokens.

import type { ChatMessage, Tokenizer } from '../io/tokenizer.js';
import type { BadRow, BadRowReason, OnBadRow, PreferenceExample, SftExample, SourceLoc, TruncationMode } from './types.js';
import { BadDataError, countByReason, formatLoc } from './types.js';

export interface TruncationOptions {
  /** TRL max_length: cap on each row (prompt + chosen, prompt + rejected), applied per truncationMode. */
  maxLength?: number;
  /** Extension (TRL < 1.0): cap on prompt tokens, applied first. */
  maxPromptLength?: number;
  /** Extension (TRL < 1.0): cap on each response's tokens (after the prompt cap, before max_length). */
  maxCompletionLength?: number;
  /** TRL truncation_mode: 'keep_start' (default, as TRL v1.9.0) keeps each row's first max_length
   *  tokens, 'keep_end' its last ones. Also which end of the prompt max_prompt_length keeps. */
  truncationMode?: TruncationMode;
}

export interface TokenizeOptions extends TruncationOptions {
  /** Default 'error': throw listing the first 20 problems; 'skip': drop and count them. */
  onBadRow?: OnBadRow;
}

export interface TokenizedPair {
  /** Dataset row of the example. */
  index: number;
  loc: SourceLoc;
  promptIds: number[];
  /** Response tokens (EOS included unless truncated away). */
  chosenIds: number[];
  rejectedIds: number[];
  promptTruncated: boolean;
  chosenTruncated: boolean;
  rejectedTruncated: boolean;
  /** Slice column values of the row (LoadOptions.sliceColumns), for per-slice evaluation. */
  slices?: Record<string, string>;
  /** keep_end truncation: leading promptIds tokens the chosen / rejected row does not keep
   *  (absent or 0: the row starts with the whole promptIds). Read rows with pairRow(). */
  chosenPromptStart?: number;
  rejectedPromptStart?: number;
  /** Tokens truncation removed: from the prompt (the larger of the two rows' losses) and from each response. */
  cut?: { prompt: number; chosen: number; rejected: number };
}

/** The prompt and response tokens of one row of a pair (chosen or rejected), after truncation. */
export function pairRow(p: TokenizedPair, side: 'chosen' | 'rejected'): { prompt: readonly number[]; response: readonly number[] } {
  const start = (side === 'chosen' ? p.chosenPromptStart : p.rejectedPromptStart) ?? 0;
  return { prompt: start > 0 ? p.promptIds.slice(start) : p.promptIds, response: side === 'chosen' ? p.chosenIds : p.rejectedIds };
}

/** Length of one row of a pair (prompt part + response). */
export function pairRowLength(p: TokenizedPair, side: 'chosen' | 'rejected'): number {
  const start = (side === 'chosen' ? p.chosenPromptStart : p.rejectedPromptStart) ?? 0;
  return p.promptIds.length - start + (side === 'chosen' ? p.chosenIds.length : p.rejectedIds.length);
}

/** The longer row of a pair (what it takes in a padded batch). */
export function pairLength(p: TokenizedPair): number {
  return Math.max(pairRowLength(p, 'chosen'), pairRowLength(p, 'rejected'));
}

export interface TokenizeSummary {
  /** Examples given. */
  rows: number;
  /** Examples kept. */
  kept: number;
  /** Rows with any truncation (prompt or a response). */
  truncatedRows: number;
  promptTruncated: number;
  /** Rows where chosen or rejected was cut. */
  responseTruncated: number;
  /** Tokens truncation removed, over all kept rows: prompt (per pair, the larger of its two rows' losses) and responses. */
  tokensCut: { prompt: number; chosen: number; rejected: number };
  /** The most tokens one pair lost (prompt + both responses). */
  maxTokensCutPerPair: number;
  dropped: number;
  droppedByReason: Partial<Record<BadRowReason, number>>;
  badRows: BadRow[];
}

function checkPositive(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`tokenize: ${name} must be a positive integer, got ${v}`);
}

export function checkTruncation(opts: TruncationOptions): void {
  checkPositive('maxLength', opts.maxLength);
  checkPositive('maxPromptLength', opts.maxPromptLength);
  checkPositive('maxCompletionLength', opts.maxCompletionLength);
  const mode = opts.truncationMode;
  if (mode !== undefined && mode !== 'keep_end' && mode !== 'keep_start') {
    throw new Error(`tokenize: truncationMode must be 'keep_end' or 'keep_start', got ${JSON.stringify(mode)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Token-level helpers

/** Encodes a prompt with BOS per the tokenizer's convention; a doubled leading BOS is collapsed. */
export function encodePrompt(tok: Tokenizer, text: string): number[] {
  const ids = tok.encode(text);
  // A template that renders BOS as text plus a tokenizer that adds BOS would give two; keep one.
  if (tok.bosId !== null) while (ids.length >= 2 && ids[0] === tok.bosId && ids[1] === tok.bosId) ids.shift();
  return ids;
}

/**
 * If ids end the turn with a stop token (optionally followed by whitespace-only tokens, like
 * ChatML's "<|im_end|>\n"), returns the length up to and including that stop token; else -1.
 */
export function turnEnd(tok: Tokenizer, ids: readonly number[]): number {
  for (let i = ids.length - 1; i >= 0; i--) {
    if (tok.stopIds.includes(ids[i]!)) {
      if (i === ids.length - 1) return ids.length;
      return tok.decode(ids.slice(i + 1)).trim() === '' ? i + 1 : -1;
    }
    if (tok.isSpecial(ids[i]!)) return -1;
  }
  return -1;
}

/**
 * Response tokens ending with exactly one stop: the turn's own stop token when the text already
 * has one (anything after it is whitespace the model never generates, so it is dropped), else EOS.
 */
export function encodeResponse(tok: Tokenizer, text: string): number[] {
  return endWithStop(tok, tok.encode(text, { addBos: false }));
}

/** Response ids ended with exactly one stop token: cut after the turn's own stop token, else EOS appended. */
function endWithStop(tok: Tokenizer, ids: number[]): number[] {
  const end = turnEnd(tok, ids);
  if (end >= 0) return ids.slice(0, end);
  if (tok.eosId === null) throw new Error('tokenize: the tokenizer has no eosId, so responses cannot be ended with EOS');
  ids.push(tok.eosId);
  return ids;
}

/** Whether position i..i+1 is inside a run of special tokens (a cut there would split it). */
function insideSpecialRun(tok: Tokenizer, ids: readonly number[], cut: number): boolean {
  return cut > 0 && cut < ids.length && tok.isSpecial(ids[cut - 1]!) && tok.isSpecial(ids[cut]!);
}

/** Keeps the first n tokens, moving the cut back to the start of a special-token run it would split. */
export function keepStart(tok: Tokenizer, ids: readonly number[], n: number): number[] {
  if (ids.length <= n) return [...ids];
  let cut = n;
  while (insideSpecialRun(tok, ids, cut)) cut--;
  // Only special tokens up to n: cutting inside the run beats returning nothing.
  if (cut === 0) cut = n;
  return ids.slice(0, cut);
}

/** Keeps at most n tokens from the end, plus a leading BOS, never starting inside a special-token run. */
export function keepEnd(tok: Tokenizer, ids: readonly number[], n: number): number[] {
  if (ids.length <= n) return [...ids];
  const head = tok.bosId !== null && ids[0] === tok.bosId ? 1 : 0;
  const budget = n - head;
  if (budget <= 0) return ids.slice(0, n);
  let start = ids.length - budget;
  while (insideSpecialRun(tok, ids, start)) start++;
  if (start >= ids.length) start = ids.length - budget;
  return [...ids.slice(0, head), ...ids.slice(start)];
}

// ---------------------------------------------------------------------------------------------
// Rendering

export type RenderedPair = { prompt: string; chosen: string; rejected: string; chat: boolean };

/** Renders a chat response as the full conversation's rendering minus the prompt's (with generation prompt). */
function renderChatResponse(
  tok: Tokenizer,
  prompt: readonly ChatMessage[],
  promptText: string,
  response: readonly ChatMessage[],
  name: string,
): { ok: true; text: string } | { ok: false; message: string } {
  const full = tok.applyChatTemplate([...prompt, ...response], { addGenerationPrompt: false });
  if (!full.startsWith(promptText)) {
    return {
      ok: false,
      message:
        `${name}: the chat template's rendering of prompt+${name} does not start with its rendering of the prompt ` +
        `with add_generation_prompt (prompt renders as ${JSON.stringify(promptText.slice(-60))})`,
    };
  }
  return { ok: true, text: full.slice(promptText.length) };
}

/** Text of prompt and responses: raw for text pairs, chat-template rendered for chat pairs. */
export function renderPreference(tok: Tokenizer, ex: PreferenceExample): { ok: true; value: RenderedPair } | { ok: false; message: string } {
  if (ex.kind === 'text') return { ok: true, value: { prompt: ex.prompt, chosen: ex.chosen, rejected: ex.rejected, chat: false } };
  const promptText = tok.applyChatTemplate(ex.prompt, { addGenerationPrompt: true });
  const c = renderChatResponse(tok, ex.prompt, promptText, ex.chosen, 'chosen');
  if (!c.ok) return c;
  const r = renderChatResponse(tok, ex.prompt, promptText, ex.rejected, 'rejected');
  if (!r.ok) return r;
  return { ok: true, value: { prompt: promptText, chosen: c.text, rejected: r.text, chat: true } };
}

// ---------------------------------------------------------------------------------------------
// Preference pairs

export type PairResult = { ok: true; pair: TokenizedPair } | { ok: false; reason: BadRowReason; message: string };

/** Untruncated token ids of a pair (prompt with BOS, responses ending with one stop token). */
export interface EncodedPair {
  promptIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
}

/**
 * Response tokens as TRL v1.9.0 gets them: the prompt + response text tokenized as one sequence and
 * split after the prompt's token count (so a word at the boundary is tokenized as in the running
 * text: a SentencePiece tokenizer gives "▁To", not the "▁" "▁To" of the response alone), then ended
 * with exactly one stop token as encodeResponse does.
 */
function encodeJointResponse(tok: Tokenizer, prompt: string, promptIds: readonly number[], response: string): number[] {
  return endWithStop(tok, encodePrompt(tok, prompt + response).slice(promptIds.length));
}

/** Renders and tokenizes one preference example, without truncation. */
export function encodePair(tok: Tokenizer, ex: PreferenceExample): { ok: true; value: EncodedPair } | { ok: false; reason: BadRowReason; message: string } {
  const rendered = renderPreference(tok, ex);
  if (!rendered.ok) return { ok: false, reason: 'template_mismatch', message: rendered.message };
  const { prompt, chosen, rejected } = rendered.value;
  const promptIds = encodePrompt(tok, prompt);
  const chosenIds = encodeJointResponse(tok, prompt, promptIds, chosen);
  const rejectedIds = encodeJointResponse(tok, prompt, promptIds, rejected);
  for (const [name, ids] of [['chosen', chosenIds], ['rejected', rejectedIds]] as const) {
    // Only the stop token left: the response text merged into the prompt's last token.
    if (ids.length < 2 && (name === 'chosen' ? chosen : rejected).trim() !== '') {
      return { ok: false, reason: 'template_mismatch', message: `${name}: tokenizing prompt + ${name} as one text leaves no ${name} token after the prompt's tokens` };
    }
  }
  return { ok: true, value: { promptIds, chosenIds, rejectedIds } };
}

/**
 * Truncates one encoded pair: the extensions max_prompt_length and max_completion_length first,
 * then TRL v1.9.0's max_length on each row per truncation_mode (see the header).
 */
export function truncatePair(tok: Tokenizer, ex: Pick<PreferenceExample, 'index' | 'loc' | 'slices'>, enc: EncodedPair, opts: TruncationOptions = {}): PairResult {
  let { promptIds, chosenIds, rejectedIds } = enc;
  const mode = opts.truncationMode ?? 'keep_start';
  const fullPrompt = promptIds.length;
  if (opts.maxPromptLength !== undefined && promptIds.length > opts.maxPromptLength) {
    promptIds = mode === 'keep_end' ? keepEnd(tok, promptIds, opts.maxPromptLength) : keepStart(tok, promptIds, opts.maxPromptLength);
  }
  if (opts.maxCompletionLength !== undefined) {
    if (chosenIds.length > opts.maxCompletionLength) chosenIds = keepStart(tok, chosenIds, opts.maxCompletionLength);
    if (rejectedIds.length > opts.maxCompletionLength) rejectedIds = keepStart(tok, rejectedIds, opts.maxCompletionLength);
  }
  const P = promptIds.length;
  let chosenPromptStart = 0;
  let rejectedPromptStart = 0;
  const maxLength = opts.maxLength;
  if (maxLength !== undefined) {
    if (mode === 'keep_start') {
      // TRL v1.9.0 drops these rows before training (nothing of the response would survive).
      if (P >= maxLength) {
        const after = P < fullPrompt ? ` (${P} after max_prompt_length ${opts.maxPromptLength})` : '';
        return {
          ok: false,
          reason: 'prompt_too_long',
          message:
            `prompt is ${fullPrompt} tokens${after}, so truncation_mode keep_start at max_length ${maxLength} leaves no response token ` +
            '(TRL drops such rows too); truncation_mode keep_end keeps the end of the conversation instead',
        };
      }
      if (chosenIds.length > maxLength - P) chosenIds = chosenIds.slice(0, maxLength - P);
      if (rejectedIds.length > maxLength - P) rejectedIds = rejectedIds.slice(0, maxLength - P);
    } else {
      // Each row keeps its last maxLength tokens: prompt tokens go first, then the response's start.
      const keepEndRow = (ids: number[]): [number, number[]] => {
        const drop = P + ids.length - maxLength;
        if (drop <= 0) return [0, ids];
        if (drop <= P) return [drop, ids];
        return [P, ids.slice(drop - P)];
      };
      [chosenPromptStart, chosenIds] = keepEndRow(chosenIds);
      [rejectedPromptStart, rejectedIds] = keepEndRow(rejectedIds);
    }
  }
  const cut = {
    prompt: fullPrompt - P + Math.max(chosenPromptStart, rejectedPromptStart),
    chosen: enc.chosenIds.length - chosenIds.length,
    rejected: enc.rejectedIds.length - rejectedIds.length,
  };
  const pair: TokenizedPair = {
    index: ex.index,
    loc: ex.loc,
    promptIds,
    chosenIds,
    rejectedIds,
    promptTruncated: cut.prompt > 0,
    chosenTruncated: cut.chosen > 0,
    rejectedTruncated: cut.rejected > 0,
  };
  if (chosenPromptStart > 0) pair.chosenPromptStart = chosenPromptStart;
  if (rejectedPromptStart > 0) pair.rejectedPromptStart = rejectedPromptStart;
  if (cut.prompt + cut.chosen + cut.rejected > 0) pair.cut = cut;
  if (ex.slices) pair.slices = ex.slices;
  return { ok: true, pair };
}

/** Tokenizes and truncates one preference example. */
export function tokenizePair(tok: Tokenizer, ex: PreferenceExample, opts: TruncationOptions = {}): PairResult {
  checkTruncation(opts);
  const enc = encodePair(tok, ex);
  if (!enc.ok) return enc;
  return truncatePair(tok, ex, enc.value, opts);
}

/** Adds one pair's truncation to the summary counts. */
export function countTruncation(summary: TokenizeSummary, p: TokenizedPair): void {
  if (p.promptTruncated) summary.promptTruncated++;
  if (p.chosenTruncated || p.rejectedTruncated) summary.responseTruncated++;
  if (p.promptTruncated || p.chosenTruncated || p.rejectedTruncated) summary.truncatedRows++;
  if (p.cut) {
    summary.tokensCut.prompt += p.cut.prompt;
    summary.tokensCut.chosen += p.cut.chosen;
    summary.tokensCut.rejected += p.cut.rejected;
    summary.maxTokensCutPerPair = Math.max(summary.maxTokensCutPerPair, p.cut.prompt + p.cut.chosen + p.cut.rejected);
  }
}

export function emptyTokenizeSummary(rows: number): TokenizeSummary {
  return {
    rows, kept: 0, truncatedRows: 0, promptTruncated: 0, responseTruncated: 0,
    tokensCut: { prompt: 0, chosen: 0, rejected: 0 }, maxTokensCutPerPair: 0, dropped: 0, droppedByReason: {}, badRows: [],
  };
}

export function finishSummary(summary: TokenizeSummary, what: string, onBadRow: OnBadRow | undefined): void {
  summary.dropped = summary.badRows.length;
  summary.droppedByReason = countByReason(summary.badRows);
  if (summary.dropped > 0 && (onBadRow ?? 'error') === 'error') throw new BadDataError(what, summary.badRows);
}

/** Tokenizes preference examples; prompt-too-long and template problems are bad rows. */
export function tokenizePreferenceData(
  tok: Tokenizer,
  examples: readonly PreferenceExample[],
  opts: TokenizeOptions = {},
): { pairs: TokenizedPair[]; summary: TokenizeSummary } {
  checkTruncation(opts);
  const summary = emptyTokenizeSummary(examples.length);
  const pairs: TokenizedPair[] = [];
  for (const ex of examples) {
    let res: PairResult;
    try {
      res = tokenizePair(tok, ex, opts);
    } catch (e) {
      throw new Error(`${formatLoc(ex.loc)}: tokenize: ${(e as Error).message}`);
    }
    if (!res.ok) {
      summary.badRows.push({ loc: ex.loc, reason: res.reason, message: res.message });
      continue;
    }
    pairs.push(res.pair);
    countTruncation(summary, res.pair);
  }
  summary.kept = pairs.length;
  finishSummary(summary, 'tokenize preference data', opts.onBadRow);
  return { pairs, summary };
}

// ---------------------------------------------------------------------------------------------
// SFT

export interface TokenizedSft {
  index: number;
  loc: SourceLoc;
  ids: number[];
  /** 1 where the token is trained (a label: completion / assistant tokens), else 0. */
  trained: Uint8Array;
  truncated: boolean;
}

export type SftResult = { ok: true; row: TokenizedSft } | { ok: false; reason: BadRowReason; message: string };

/** Segments of a rendered conversation: [text, trained], where trained marks assistant turns. */
function chatSegments(tok: Tokenizer, messages: readonly ChatMessage[]): { ok: true; segs: [string, boolean][] } | { ok: false; message: string } {
  const full = tok.applyChatTemplate(messages, { addGenerationPrompt: false });
  const segs: [string, boolean][] = [];
  let pos = 0;
  for (let i = 0; i < messages.length; i++) {
    if (messages[i]!.role !== 'assistant') continue;
    // Rendering of everything before the turn, ending with the assistant header; then through it.
    const before = i === 0 ? '' : tok.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
    const through = tok.applyChatTemplate(messages.slice(0, i + 1), { addGenerationPrompt: false });
    if (!full.startsWith(before) || !through.startsWith(before) || !full.startsWith(through) || before.length < pos) {
      return {
        ok: false,
        message: `messages[${i}]: the chat template does not render the conversation as a prefix-consistent sequence of turns, so assistant tokens cannot be located`,
      };
    }
    if (before.length > pos) segs.push([full.slice(pos, before.length), false]);
    segs.push([full.slice(before.length, through.length), true]);
    pos = through.length;
  }
  if (pos < full.length) segs.push([full.slice(pos), false]);
  return { ok: true, segs };
}

/** Which SFT tokens carry the loss (TRL v1.9.0 SFTConfig names and defaults). */
export interface SftLossMask {
  /** Prompt-completion data: null/true (default) trains only the completion, false the prompt too. */
  completionOnlyLoss?: boolean | null;
  /** Messages data: false (TRL's default) trains every token of the conversation, true only assistant turns. */
  assistantOnlyLoss?: boolean;
}

/**
 * Tokenizes one SFT example: BOS per convention, labels per SftLossMask; max_length keeps the first
 * tokens (TRL's keep_start slice); a row left without a trained token is a bad row (TRL drops it).
 */
export function tokenizeSft(tok: Tokenizer, ex: SftExample, opts: Pick<TruncationOptions, 'maxLength'> & SftLossMask = {}): SftResult {
  checkPositive('maxLength', opts.maxLength);
  const ids: number[] = [];
  const trained: number[] = [];
  if (ex.kind === 'text') {
    const p = encodePrompt(tok, ex.prompt);
    if (opts.maxLength !== undefined && p.length >= opts.maxLength) {
      return { ok: false, reason: 'prompt_too_long', message: `prompt is ${p.length} tokens, max_length ${opts.maxLength} leaves no room for the completion` };
    }
    // As TRL: the completion tokenized within prompt + completion, split after the prompt's tokens.
    const c = encodeJointResponse(tok, ex.prompt, p, ex.completion);
    const promptTrained = opts.completionOnlyLoss === false ? 1 : 0;
    for (const id of p) (ids.push(id), trained.push(promptTrained));
    for (const id of c) (ids.push(id), trained.push(1));
  } else {
    const segs = chatSegments(tok, ex.messages);
    if (!segs.ok) return { ok: false, reason: 'template_mismatch', message: segs.message };
    let first = true;
    for (const [text, isTrained] of segs.segs) {
      if (text === '') continue;
      const seg = first ? encodePrompt(tok, text) : tok.encode(text, { addBos: false });
      first = false;
      // Train up to the turn's stop token; whitespace after it is context, never generated.
      const end = isTrained ? turnEnd(tok, seg) : -1;
      for (let k = 0; k < seg.length; k++) {
        ids.push(seg[k]!);
        trained.push(!opts.assistantOnlyLoss || (isTrained && (end < 0 || k < end)) ? 1 : 0);
      }
    }
    // A template without end-of-turn tokens: end the final assistant turn with EOS.
    const last = ex.messages[ex.messages.length - 1]!;
    if (last.role === 'assistant' && turnEnd(tok, ids) < 0) {
      if (tok.eosId === null) throw new Error('tokenize: the tokenizer has no eosId, so the final assistant turn cannot be ended');
      ids.push(tok.eosId);
      trained.push(1);
    }
  }
  let truncated = false;
  let n = ids.length;
  if (opts.maxLength !== undefined && n > opts.maxLength) {
    n = opts.maxLength;
    truncated = true;
  }
  const mask = Uint8Array.from(trained.slice(0, n));
  if (!mask.includes(1)) {
    return { ok: false, reason: 'no_trained_tokens', message: `no completion/assistant token left within max_length ${opts.maxLength ?? '(none)'}` };
  }
  return { ok: true, row: { index: ex.index, loc: ex.loc, ids: ids.slice(0, n), trained: mask, truncated } };
}

/** Tokenizes SFT examples (max_length cuts the end); rows with nothing left to train are bad rows. */
export function tokenizeSftData(
  tok: Tokenizer,
  examples: readonly SftExample[],
  opts: Pick<TokenizeOptions, 'maxLength' | 'onBadRow'> & SftLossMask = {},
): { rows: TokenizedSft[]; summary: TokenizeSummary } {
  const summary = emptyTokenizeSummary(examples.length);
  const rows: TokenizedSft[] = [];
  for (const ex of examples) {
    let res: SftResult;
    try {
      res = tokenizeSft(tok, ex, opts);
    } catch (e) {
      throw new Error(`${formatLoc(ex.loc)}: tokenize: ${(e as Error).message}`);
    }
    if (!res.ok) {
      summary.badRows.push({ loc: ex.loc, reason: res.reason, message: res.message });
      continue;
    }
    rows.push(res.row);
    if (res.row.truncated) (summary.truncatedRows++, summary.responseTruncated++);
  }
  summary.kept = rows.length;
  finishSummary(summary, 'tokenize SFT data', opts.onBadRow);
  return { rows, summary };
}
