// Evaluation as one library call (what `dpo eval` runs): a policy against its reference on
// prompts, judged by the sentiment judges: mean reward, KL(π‖π_ref), win rate, implicit-reward accuracy.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { sliceValue } from '../data/formats.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { resolveModel, type ModelInput, type TokenizerInput } from '../train/setup.js';
import { JUDGE_NAMES, makeJudge, type Judge, type JudgeName } from './judges.js';
import { DEFAULT_TOP_K, evaluateAgainstReference, type EvaluationResult, type IdPair } from './evaluate.js';

function jsonlRows(path: string, what: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${what} ${path}: ${(e as Error).message}`);
  }
  const rows: Record<string, unknown>[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      const v = JSON.parse(line) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
      rows.push(v as Record<string, unknown>);
    } catch (e) {
      throw new Error(`${what} ${path} line ${i + 1}: ${(e as Error).message}`);
    }
  });
  return rows;
}

/** Prompts from a .jsonl file ("prompt" field) or a text file (one prompt per non-empty line). */
export function readPrompts(path: string): string[] {
  if (path.endsWith('.jsonl')) {
    return jsonlRows(path, 'prompts').map((r, i) => {
      if (typeof r.prompt !== 'string') throw new Error(`prompts ${path} row ${i + 1}: "prompt" is missing or not a string`);
      return r.prompt;
    });
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`prompts ${path}: ${(e as Error).message}`);
  }
  return text.split('\n').map((l) => l.trimEnd()).filter((l) => l.length > 0);
}

/** Preference pairs {prompt, chosen, rejected} (plain text) as token ids; `sliceColumns` are carried as the pairs' slices. */
export function readIdPairs(path: string, tok: Tokenizer, sliceColumns: readonly string[] = []): IdPair[] {
  return jsonlRows(path, 'pairs').map((r, i) => {
    for (const k of ['prompt', 'chosen', 'rejected']) {
      if (typeof r[k] !== 'string') throw new Error(`pairs ${path} row ${i + 1}: "${k}" is missing or not a string`);
    }
    return {
      prompt: tok.encode(r.prompt as string, { addBos: true }),
      chosen: tok.encode(r.chosen as string, { addBos: false }),
      rejected: tok.encode(r.rejected as string, { addBos: false }),
      ...(sliceColumns.length ? { slices: Object.fromEntries(sliceColumns.map((c) => [c, sliceValue(r, c)])) } : {}),
    };
  });
}

export interface EvaluateModelOptions {
  /** The policy: a path or a model in memory. */
  model: ModelInput;
  /** The reference (e.g. the model DPO started from): a path or a model in memory. */
  ref: ModelInput;
  /** Tokenizer shared by both (default: the policy's). */
  tokenizer?: TokenizerInput | undefined;
  /** Prompts in memory, or a file (.jsonl with "prompt", or text with one prompt per line). */
  prompts: string | readonly string[];
  /** Held-out pairs for implicit-reward accuracy: token ids, or a .jsonl file of prompt/chosen/rejected texts. */
  pairs?: string | readonly IdPair[] | undefined;
  /** Primary reward: a judge name (default afinn) or a judge; the other built-in judges are reported as held-out. */
  reward?: JudgeName | Judge | string | undefined;
  /** Extra judges of your own, reported next to the built-in ones. */
  judges?: readonly Judge[] | undefined;
  /** β of the policy (scales the implicit reward; default 0.1). */
  beta?: number | undefined;
  /** Samples per prompt (default 4). */
  samplesPerPrompt?: number | undefined;
  /** Tokens per completion (default 24). */
  maxNewTokens?: number | undefined;
  /** Sampling seed (default 0). */
  seed?: number | undefined;
  quiet?: boolean | undefined;
  /** Slice columns of the pairs file: implicit-reward accuracy per value (needs pairs from a file). */
  slice?: readonly string[] | undefined;
  /** A second, independent model (with its own tokenizer) for the perplexity of the samples; the verdict uses it too. */
  fluencyModel?: ModelInput | undefined;
  /** k of the share of sampled tokens outside the reference's top-k (default 10). */
  topK?: number | undefined;
}

/** Evaluates a policy against its reference (the library form of `dpo eval`). */
export async function evaluateModel(opts: EvaluateModelOptions): Promise<EvaluationResult> {
  const reward = opts.reward ?? 'afinn';
  const primary = typeof reward === 'string' ? makeJudge(reward) : reward;
  const judges = [primary, ...JUDGE_NAMES.filter((n) => n !== primary.name).map((n) => makeJudge(n)), ...(opts.judges ?? [])];
  const pol = await resolveModel(opts.model, opts.tokenizer, 'eval model');
  const ref = await resolveModel(opts.ref, opts.tokenizer ?? pol.tokenizer, 'eval ref');
  if (ref.tokenizer.vocabSize !== pol.tokenizer.vocabSize) {
    throw new Error(`eval: the policy's tokenizer has ${pol.tokenizer.vocabSize} tokens and the reference's ${ref.tokenizer.vocabSize}; they must share one`);
  }
  const prompts = typeof opts.prompts === 'string' ? readPrompts(opts.prompts) : opts.prompts;
  if (opts.slice?.length && typeof opts.pairs !== 'string') throw new Error('eval: --slice needs --pairs (the held-out pairs carry the slice column)');
  const pairs = typeof opts.pairs === 'string' ? readIdPairs(opts.pairs, pol.tokenizer, opts.slice ?? []) : opts.pairs;
  const fluency = opts.fluencyModel ? await resolveModel(opts.fluencyModel, undefined, 'eval fluency model') : null;
  return evaluateAgainstReference({
    ref: ref.model, refName: 'reference', tokenizer: pol.tokenizer, prompts, judges,
    policies: [{ name: 'policy', model: pol.model, beta: opts.beta ?? 0.1 }],
    ...(pairs !== undefined ? { pairs } : {}),
    fluencyModel: fluency
      ? { name: typeof opts.fluencyModel === 'string' ? basename(opts.fluencyModel) : 'fluency model', model: fluency.model, tokenizer: fluency.tokenizer }
      : null,
    settings: {
      samplesPerPrompt: opts.samplesPerPrompt ?? 4, maxNewTokens: opts.maxNewTokens ?? 24, seed: opts.seed ?? 0, quiet: opts.quiet ?? false,
      topK: opts.topK ?? DEFAULT_TOP_K,
    },
  });
}
