// Format detection and normalization: raw records → PreferenceExample / SftExample, or a BadRow
// saying which field is wrong and why. Detection looks at the keys of the first rows; an explicit
// `format` option overrides it.

import type { ChatMessage } from '../io/tokenizer.js';
import type {
  BadRow,
  ColumnMapping,
  DataFormat,
  PreferenceExample,
  PreferenceFormat,
  SftExample,
  SftFormat,
  SourceLoc,
} from './types.js';
import { formatLoc, MISSING_SLICE, PREFERENCE_FORMATS, SFT_FORMATS } from './types.js';

/** The turn boundary that ends an implicit text prompt (Anthropic HH-RLHF style). */
export const DEFAULT_PROMPT_BOUNDARY = '\n\nAssistant:';

/** How many rows format detection looks at. */
export const DETECT_ROWS = 32;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

export function getPath(obj: Record<string, unknown>, path: string): unknown {
  if (path in obj) return obj[path];
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** A slice column's value as a label: strings as they are, numbers and booleans printed, lists joined by "+". */
export function sliceValue(row: Record<string, unknown>, column: string): string {
  const v = getPath(row, column);
  if (v === undefined || v === null || v === '') return MISSING_SLICE;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return v.length ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join('+') : MISSING_SLICE;
  return JSON.stringify(v);
}

/** Applies the column mapping: canonical names get the mapped columns' values. */
export function applyColumns(obj: Record<string, unknown>, columns: ColumnMapping | undefined): Record<string, unknown> {
  if (!columns) return obj;
  const out: Record<string, unknown> = { ...obj };
  for (const [canonical, source] of Object.entries(columns)) {
    if (source === undefined || source === canonical) continue;
    out[canonical] = getPath(obj, source);
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The format a single (column-mapped) row looks like, or null. */
export function formatOfRow(row: Record<string, unknown>): DataFormat | null {
  if (isObject(row.input) && 'messages' in row.input && 'preferred_output' in row && 'non_preferred_output' in row) {
    return 'openai';
  }
  if ('chosen' in row && 'rejected' in row) {
    if (!('prompt' in row) || row.prompt === undefined || row.prompt === null) return 'implicit';
    return Array.isArray(row.prompt) ? 'conversational' : 'standard';
  }
  if ('messages' in row) return 'messages';
  if ('prompt' in row && 'completion' in row) return 'prompt_completion';
  return null;
}

/**
 * Detects the format from the first rows: the most common per-row format wins (rows that
 * disagree are reported later as bad rows with the missing field named).
 */
export function detectFormat(rows: readonly { loc: SourceLoc; value: Record<string, unknown> }[], want?: 'preference' | 'sft'): DataFormat {
  const votes = new Map<DataFormat, number>();
  for (const r of rows.slice(0, DETECT_ROWS)) {
    const f = formatOfRow(r.value);
    if (f === null) continue;
    if (want === 'preference' && !(PREFERENCE_FORMATS as readonly string[]).includes(f)) continue;
    if (want === 'sft' && !(SFT_FORMATS as readonly string[]).includes(f)) continue;
    votes.set(f, (votes.get(f) ?? 0) + 1);
  }
  let best: DataFormat | null = null;
  let bestN = 0;
  for (const [f, n] of votes) {
    if (n > bestN) {
      best = f;
      bestN = n;
    }
  }
  if (best === null) {
    const first = rows[0];
    const where = first ? `${formatLoc(first.loc)}: keys ${Object.keys(first.value).join(', ') || '(none)'}` : 'no rows';
    const expect =
      want === 'sft'
        ? 'prompt/completion or messages'
        : want === 'preference'
          ? 'prompt/chosen/rejected, chosen/rejected, or input/preferred_output/non_preferred_output'
          : 'a preference or SFT format';
    throw new Error(`cannot detect the data format from the first rows (${where}); expected ${expect}; pass format (and columns) explicitly`);
  }
  return best;
}

export type Problem = { ok: false; reason: BadRow['reason']; message: string };
type Check<T> = { ok: true; value: T } | Problem;
export type Normalized<T> = { ok: true; example: T } | Problem;

/** An example before it gets its dataset index and location. */
export type Core<E> = E extends unknown ? Omit<E, 'index' | 'loc'> : never;
export type PreferenceCore = Core<PreferenceExample>;
export type SftCore = Core<SftExample>;

function bad(reason: BadRow['reason'], message: string): Problem {
  return { ok: false, reason, message };
}

function needString(row: Record<string, unknown>, field: string): Check<string> {
  const v = row[field];
  if (v === undefined || v === null) return bad('missing_field', `${field}: missing`);
  if (typeof v !== 'string') return bad('ill_typed', `${field}: expected a string, got ${describe(v)}`);
  return { ok: true, value: v };
}

/** Message content: a string, or OpenAI-style text parts [{type: 'text', text}] joined. */
function messageContent(v: unknown, where: string): Check<string> {
  if (typeof v === 'string') return { ok: true, value: v };
  if (Array.isArray(v)) {
    let text = '';
    for (let i = 0; i < v.length; i++) {
      const p = v[i] as unknown;
      if (isObject(p) && p.type === 'text' && typeof p.text === 'string') text += p.text;
      else return bad('ill_typed', `${where}.content[${i}]: only text parts ({type: "text", text}) are supported, got ${JSON.stringify(p)?.slice(0, 60)}`);
    }
    return { ok: true, value: text };
  }
  if (v === undefined || v === null) return bad('missing_field', `${where}.content: missing`);
  return bad('ill_typed', `${where}.content: expected a string, got ${describe(v)}`);
}

function needMessages(v: unknown, field: string): Check<ChatMessage[]> {
  if (v === undefined || v === null) return bad('missing_field', `${field}: missing`);
  if (!Array.isArray(v)) return bad('ill_typed', `${field}: expected a list of messages, got ${describe(v)}`);
  const out: ChatMessage[] = [];
  for (let i = 0; i < v.length; i++) {
    const m = v[i] as unknown;
    const where = `${field}[${i}]`;
    if (!isObject(m)) return bad('ill_typed', `${where}: expected a message {role, content}, got ${describe(m)}`);
    if (m.role === undefined || m.role === null) return bad('missing_field', `${where}.role: missing`);
    if (typeof m.role !== 'string') return bad('ill_typed', `${where}.role: expected a string, got ${describe(m.role)}`);
    const c = messageContent(m.content, where);
    if (!c.ok) return c;
    out.push({ role: m.role, content: c.value });
  }
  return { ok: true, value: out };
}

/** A response given as messages must start with an assistant turn and not be empty. */
function checkResponseMessages(msgs: ChatMessage[], field: string): Check<ChatMessage[]> {
  if (msgs.length === 0) return bad('empty_response', `${field}: empty message list`);
  if (msgs[0]!.role !== 'assistant') return bad('ill_typed', `${field}[0].role: expected "assistant", got "${msgs[0]!.role}"`);
  if (msgs.every((m) => m.content.trim() === '')) return bad('empty_response', `${field}: assistant content is empty`);
  return { ok: true, value: msgs };
}

function sameMessages(a: readonly ChatMessage[], b: readonly ChatMessage[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.role !== b[i]!.role || a[i]!.content !== b[i]!.content) return false;
  return true;
}

/** Implicit text prompt: the common prefix up to and including its last turn boundary. */
export function splitImplicitText(chosen: string, rejected: string, boundary: string): { prompt: string; chosen: string; rejected: string } | null {
  const n = Math.min(chosen.length, rejected.length);
  let lcp = 0;
  while (lcp < n && chosen.charCodeAt(lcp) === rejected.charCodeAt(lcp)) lcp++;
  const at = chosen.lastIndexOf(boundary, lcp - boundary.length);
  if (at < 0 || lcp < boundary.length) return null;
  const end = at + boundary.length;
  return { prompt: chosen.slice(0, end), chosen: chosen.slice(end), rejected: rejected.slice(end) };
}

/** Implicit message prompt: the common leading messages. */
export function splitImplicitMessages(
  chosen: ChatMessage[],
  rejected: ChatMessage[],
): { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] } {
  let k = 0;
  while (
    k < chosen.length &&
    k < rejected.length &&
    chosen[k]!.role === rejected[k]!.role &&
    chosen[k]!.content === rejected[k]!.content
  ) {
    k++;
  }
  // Identical lists: back up so the "responses" are the final turns (reported as identical).
  if (k === chosen.length && k === rejected.length && k > 0) k--;
  return { prompt: chosen.slice(0, k), chosen: chosen.slice(k), rejected: rejected.slice(k) };
}

export interface NormalizeOptions {
  /** Turn boundary for implicit text prompts (default "\n\nAssistant:"). */
  promptBoundary?: string;
}


/** One column-mapped record → a preference example (without index/loc), or why it is bad. */
export function normalizePreference(
  row: Record<string, unknown>,
  format: PreferenceFormat,
  opts: NormalizeOptions = {},
): Normalized<PreferenceCore> {
  if (format === 'standard') {
    const p = needString(row, 'prompt');
    if (!p.ok) return p;
    const c = needString(row, 'chosen');
    if (!c.ok) return c;
    const r = needString(row, 'rejected');
    if (!r.ok) return r;
    return finishText(p.value, c.value, r.value);
  }
  if (format === 'implicit') {
    if (row.chosen === undefined || row.chosen === null) return bad('missing_field', 'chosen: missing');
    if (row.rejected === undefined || row.rejected === null) return bad('missing_field', 'rejected: missing');
    if (typeof row.chosen === 'string') {
      const r = needString(row, 'rejected');
      if (!r.ok) return r;
      const boundary = opts.promptBoundary ?? DEFAULT_PROMPT_BOUNDARY;
      if (row.chosen === r.value) return bad('identical_responses', 'chosen and rejected are identical');
      const split = splitImplicitText(row.chosen, r.value, boundary);
      if (split === null) return bad('no_common_prompt', `chosen and rejected share no prefix ending in ${JSON.stringify(boundary)}`);
      return finishText(split.prompt, split.chosen, split.rejected);
    }
    const c = needMessages(row.chosen, 'chosen');
    if (!c.ok) return c;
    const r = needMessages(row.rejected, 'rejected');
    if (!r.ok) return r;
    const split = splitImplicitMessages(c.value, r.value);
    if (split.prompt.length === 0) return bad('no_common_prompt', 'chosen and rejected share no leading messages');
    return finishChat(split.prompt, split.chosen, split.rejected);
  }
  if (format === 'conversational') {
    const p = needMessages(row.prompt, 'prompt');
    if (!p.ok) return p;
    const c = needMessages(row.chosen, 'chosen');
    if (!c.ok) return c;
    const r = needMessages(row.rejected, 'rejected');
    if (!r.ok) return r;
    return finishChat(p.value, c.value, r.value);
  }
  // openai
  if (!isObject(row.input)) {
    return row.input === undefined || row.input === null
      ? bad('missing_field', 'input: missing')
      : bad('ill_typed', `input: expected an object {messages}, got ${describe(row.input)}`);
  }
  const p = needMessages(row.input.messages, 'input.messages');
  if (!p.ok) return p;
  const c = needMessages(row.preferred_output, 'preferred_output');
  if (!c.ok) return c;
  const r = needMessages(row.non_preferred_output, 'non_preferred_output');
  if (!r.ok) return r;
  return finishChat(p.value, c.value, r.value, 'preferred_output', 'non_preferred_output');
}

function finishText(prompt: string, chosen: string, rejected: string): Normalized<{ kind: 'text'; prompt: string; chosen: string; rejected: string }> {
  if (chosen.trim() === '') return bad('empty_response', 'chosen: empty response');
  if (rejected.trim() === '') return bad('empty_response', 'rejected: empty response');
  if (chosen === rejected) return bad('identical_responses', 'chosen and rejected are identical');
  return { ok: true, example: { kind: 'text', prompt, chosen, rejected } };
}

function finishChat(
  prompt: ChatMessage[],
  chosen: ChatMessage[],
  rejected: ChatMessage[],
  chosenName = 'chosen',
  rejectedName = 'rejected',
): Normalized<{ kind: 'chat'; prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] }> {
  if (prompt.length === 0) return bad('missing_field', 'prompt: empty message list');
  const c = checkResponseMessages(chosen, chosenName);
  if (!c.ok) return c;
  const r = checkResponseMessages(rejected, rejectedName);
  if (!r.ok) return r;
  if (sameMessages(chosen, rejected)) return bad('identical_responses', `${chosenName} and ${rejectedName} are identical`);
  return { ok: true, example: { kind: 'chat', prompt, chosen, rejected } };
}

/** One column-mapped record → an SFT example (without index/loc), or why it is bad. */
export function normalizeSft(
  row: Record<string, unknown>,
  format: SftFormat,
): Normalized<SftCore> {
  if (format === 'prompt_completion') {
    if (Array.isArray(row.prompt) || Array.isArray(row.completion)) {
      // Conversational prompt-completion: train on the completion's assistant turns.
      const p = needMessages(row.prompt, 'prompt');
      if (!p.ok) return p;
      const c = needMessages(row.completion, 'completion');
      if (!c.ok) return c;
      const cc = checkResponseMessages(c.value, 'completion');
      if (!cc.ok) return cc;
      return { ok: true, example: { kind: 'chat', messages: [...p.value, ...c.value] } };
    }
    const p = needString(row, 'prompt');
    if (!p.ok) return p;
    const c = needString(row, 'completion');
    if (!c.ok) return c;
    if (c.value.trim() === '') return bad('empty_response', 'completion: empty');
    return { ok: true, example: { kind: 'text', prompt: p.value, completion: c.value } };
  }
  const m = needMessages(row.messages, 'messages');
  if (!m.ok) return m;
  if (m.value.length === 0) return bad('missing_field', 'messages: empty list');
  const assistant = m.value.filter((x) => x.role === 'assistant');
  if (assistant.length === 0) return bad('no_trained_tokens', 'messages: no assistant turn to train on');
  if (assistant.every((x) => x.content.trim() === '')) return bad('empty_response', 'messages: every assistant turn is empty');
  return { ok: true, example: { kind: 'chat', messages: m.value } };
}
