// `dpo eval --model DIR --ref DIR --prompts FILE`: the demo's evaluation for any model pair, prompt
// file and reward: mean reward (all judges), KL(π‖π_ref) from samples, win rate against the
// reference, implicit-reward accuracy on held-out pairs. Prints a table; --out writes JSON.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { kernels } from '../tensor/backend.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { loadModelAndTokenizer } from '../models/index.js';
import { sliceValue } from '../data/formats.js';
import { JUDGE_NAMES, makeJudge } from './judges.js';
import { evaluateAgainstReference, evaluationTable, type IdPair } from './evaluate.js';

export * from './evaluate.js';
export * from './judges.js';
export * from './sample.js';

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

function intArg(name: string, min = 1) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got "${v}"`);
    return n;
  };
}

export function registerEvalCommands(program: Command): Command {
  return program
    .command('eval')
    .description('evaluate a policy against its reference on prompts: mean reward of samples, KL(π‖π_ref), win rate, implicit-reward accuracy')
    .requiredOption('--model <path>', 'policy: Hugging Face directory or llama2.c checkpoint')
    .requiredOption('--ref <path>', 'reference model (e.g. the model DPO started from)')
    .requiredOption('--prompts <file>', 'prompts: .jsonl with "prompt", or text with one prompt per line')
    .option('--reward <name>', `ground-truth reward (${JUDGE_NAMES.join(', ')}); the others are reported as held-out judges`, 'afinn')
    .option('--beta <x>', 'β of the policy (scales the implicit reward)', (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new InvalidArgumentError(`--beta must be a positive number, got "${v}"`);
      return n;
    }, 0.1)
    .option('--pairs <file>', 'held-out preference pairs (.jsonl prompt/chosen/rejected) for implicit-reward accuracy (default: pairs built from the reference\'s samples)')
    .option('--slice <column>', 'implicit-reward accuracy per value of this --pairs column (e.g. group), with the best−worst gap; repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .option('--samples <n>', 'samples per prompt', intArg('--samples'), 4)
    .option('--max-new-tokens <n>', 'tokens per completion', intArg('--max-new-tokens'), 24)
    .option('--seed <n>', 'sampling seed', intArg('--seed', 0), 0)
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--threads <n>', 'kernel threads', intArg('--threads'))
    .option('--out <file>', 'write the full result (with every sample) as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o: Record<string, unknown>) => {
      if (o.threads) kernels().setNumThreads(o.threads as number);
      const primary = makeJudge(o.reward as string);
      const judges = [primary, ...JUDGE_NAMES.filter((n) => n !== primary.name).map((n) => makeJudge(n))];
      const pol = await loadModelAndTokenizer(o.model as string, o.tokenizer as string | undefined);
      const ref = await loadModelAndTokenizer(o.ref as string, o.tokenizer as string | undefined);
      if (ref.tokenizer.vocabSize !== pol.tokenizer.vocabSize) {
        throw new Error(`eval: the policy's tokenizer has ${pol.tokenizer.vocabSize} tokens and the reference's ${ref.tokenizer.vocabSize}; they must share one`);
      }
      if (o.slice && !o.pairs) throw new Error('eval: --slice needs --pairs (the held-out pairs carry the slice column)');
      const prompts = readPrompts(o.prompts as string);
      const result = evaluateAgainstReference({
        ref: ref.model, refName: 'reference', tokenizer: pol.tokenizer, prompts, judges,
        policies: [{ name: 'policy', model: pol.model, beta: o.beta as number }],
        pairs: o.pairs ? readIdPairs(o.pairs as string, pol.tokenizer, (o.slice as string[] | undefined) ?? []) : undefined,
        settings: { samplesPerPrompt: o.samples as number, maxNewTokens: o.maxNewTokens as number, seed: o.seed as number, quiet: Boolean(o.quiet) },
      });
      process.stdout.write(evaluationTable(result));
      if (o.out) {
        mkdirSync(dirname(o.out as string), { recursive: true });
        writeFileSync(o.out as string, `${JSON.stringify({ model: o.model, ref: o.ref, prompts_file: o.prompts, ...result }, null, 2)}\n`);
      }
    });
}
