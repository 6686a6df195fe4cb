// add-prompts: two candidate responses per prompt from a local model. The model is injected as a
// CandidateGenerator so this file does not depend on src/models (the CLI builds one from a model).
import { readFileSync } from 'node:fs';
import type { ChatTurn } from './import.js';
import { insertItem, type DB } from './store.js';
import { yieldToEventLoop } from '../train/loop.js';

export interface SamplingOptions {
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  /** Base seed; the generator derives per-prompt seeds from it. */
  seed: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 0.8, topP: 0.95, topK: 0, maxNewTokens: 256, seed: 1 };

export type CandidateGenerator = (prompt: string, n: 2, opts: SamplingOptions) => Promise<string[]>;

export interface PromptForAnnotation {
  prompt: string;
  line: number;
}

/** JSONL of {"prompt": "..."} (a bare JSON string per line is accepted too). */
export function readPromptsFile(file: string): PromptForAnnotation[] {
  const out: PromptForAnnotation[] = [];
  const lines = readFileSync(file, 'utf8').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i]!.trim();
    if (s === '') continue;
    const where = `${file}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(s);
    } catch (e) {
      throw new Error(`${where}: invalid JSON: ${(e as Error).message}`);
    }
    const p = typeof obj === 'string' ? obj : (obj as { prompt?: unknown } | null)?.prompt;
    if (typeof p !== 'string' || p.trim() === '') throw new Error(`${where}: expected {"prompt": "<non-empty string>"}`);
    out.push({ prompt: p, line: i + 1 });
  }
  return out;
}

export interface AddPromptsResult {
  added: number;
  /** Already in the project with the same sampling settings (generation skipped). */
  skipped: number;
  /** The model gave two identical candidates: nothing to compare, not added. */
  identical: number;
}

/**
 * The SQLite page cache add-prompts runs with (KiB): SQLite's own default. better-sqlite3 builds
 * SQLite with 16 MB per connection, which fills as the project grows — a 5,000-prompt run's C heap
 * crept 9 → 13 MiB, 20,000 prompts' to 18 MiB — while this job needs only the few pages of one
 * uid lookup and one insert per prompt (measured no slower at 2 MB, see README).
 */
export const ADD_PROMPTS_CACHE_KIB = 2000;

/** Runs fn with the connection's SQLite page cache at most `kib` KiB, then restores its setting. */
async function withPageCacheAtMost<R>(db: DB, kib: number, fn: () => Promise<R>): Promise<R> {
  const before = db.pragma('cache_size', { simple: true }) as number; // negative: KiB; positive: pages
  const beforeKib = before < 0 ? -before : (before * (db.pragma('page_size', { simple: true }) as number)) / 1024;
  if (beforeKib > kib) db.pragma(`cache_size = -${kib}`);
  try {
    return await fn();
  } finally {
    if (db.open) db.pragma(`cache_size = ${before}`);
  }
}

export async function addPrompts(
  db: DB,
  prompts: readonly PromptForAnnotation[],
  generate: CandidateGenerator,
  opts: SamplingOptions,
  source: string,
  onProgress?: (done: number, total: number) => void,
): Promise<AddPromptsResult> {
  return withPageCacheAtMost(db, ADD_PROMPTS_CACHE_KIB, async () => {
    const res: AddPromptsResult = { added: 0, skipped: 0, identical: 0 };
    const settings = JSON.stringify(opts);
    for (let i = 0; i < prompts.length; i++) {
      const p = prompts[i]!;
      // The uid covers prompt + sampling settings, checked before generating: re-running the same
      // command resumes where it stopped instead of paying for generation again.
      const uidKey = ['prompt', p.prompt, settings];
      if (insertItem.exists(db, uidKey)) {
        res.skipped++;
        continue;
      }
      const cands = await generate(p.prompt, 2, opts);
      // One turn of the event loop per prompt: the FinalizationRegistry callbacks that account for
      // the generator's dropped tensors run only then (else the buffer pool's bookkeeping grows).
      await yieldToEventLoop();
      if (!Array.isArray(cands) || cands.length !== 2 || !cands.every((c) => typeof c === 'string')) {
        throw new Error(`add-prompts: generator returned ${Array.isArray(cands) ? cands.length : typeof cands} candidates for prompt at line ${p.line}, expected 2 strings`);
      }
      if (cands[0] === cands[1]) {
        res.identical++;
        continue;
      }
      insertItem(db, {
        uidKey,
        format: 'text',
        prompt: p.prompt,
        responseA: cands[0]!,
        responseB: cands[1]!,
        source,
        gold: null,
        meta: { sampling: opts, line: p.line },
      });
      res.added++;
      onProgress?.(i + 1, prompts.length);
    }
    return res;
  });
}

export type { ChatTurn };
