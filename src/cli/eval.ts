// `dpo eval --model DIR --ref DIR --prompts FILE`: the demo's evaluation for any model pair, prompt
// file and reward: mean reward (all judges), KL(π‖π_ref) from samples, win rate against the
// reference, implicit-reward accuracy on held-out pairs, and the samples' fluency, diversity and
// length with a verdict (fluent / degrading / collapsed; --fluency-model adds a second, independent
// perplexity). Prints tables; --out writes JSON.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { kernels } from '../tensor/backend.js';
import { JUDGE_NAMES } from '../eval/judges.js';
import { DEFAULT_TOP_K, evaluationTable } from '../eval/evaluate.js';
import { evaluateModel } from '../eval/run.js';
import { collectEach, intArg, positiveNumberArg } from './args.js';

export function registerEvalCommands(program: Command): Command {
  return program
    .command('eval')
    .description('evaluate a policy against its reference on prompts: mean reward of samples, KL(π‖π_ref), win rate, implicit-reward accuracy, fluency/diversity/length of the samples and a verdict (fluent, degrading, collapsed)')
    .requiredOption('--model <path>', 'policy: Hugging Face directory or llama2.c checkpoint')
    .requiredOption('--ref <path>', 'reference model (e.g. the model DPO started from)')
    .requiredOption('--prompts <file>', 'prompts: .jsonl with "prompt", or text with one prompt per line')
    .option('--reward <name>', `ground-truth reward (${JUDGE_NAMES.join(', ')}); the others are reported as held-out judges`, 'afinn')
    .option('--beta <x>', 'β of the policy (scales the implicit reward)', positiveNumberArg('--beta'), 0.1)
    .option('--pairs <file>', 'held-out preference pairs (.jsonl prompt/chosen/rejected) for implicit-reward accuracy (default: pairs built from the reference\'s samples)')
    .option('--slice <column>', 'implicit-reward accuracy per value of this --pairs column (e.g. group), with the best−worst gap; repeatable', collectEach)
    .option('--samples <n>', 'samples per prompt', intArg('--samples'), 4)
    .option('--max-new-tokens <n>', 'tokens per completion', intArg('--max-new-tokens'), 24)
    .option('--seed <n>', 'sampling seed', intArg('--seed', 0), 0)
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--fluency-model <path>', 'a second, independent model (its own tokenizer) for the perplexity of the samples')
    .option('--top-k <n>', 'k of the "tokens outside the reference\'s top-k" share', intArg('--top-k'), DEFAULT_TOP_K)
    .option('--threads <n>', 'kernel threads', intArg('--threads'))
    .option('--out <file>', 'write the full result (with every sample) as JSON')
    .option('--quiet', 'no progress output')
    .action(async (o: Record<string, unknown>) => {
      if (o.threads) kernels().setNumThreads(o.threads as number);
      const result = await evaluateModel({
        model: o.model as string, ref: o.ref as string, tokenizer: o.tokenizer as string | undefined,
        prompts: o.prompts as string, pairs: o.pairs as string | undefined, reward: o.reward as string, beta: o.beta as number,
        samplesPerPrompt: o.samples as number, maxNewTokens: o.maxNewTokens as number, seed: o.seed as number, quiet: Boolean(o.quiet),
        slice: o.slice as string[] | undefined,
        fluencyModel: o.fluencyModel as string | undefined, topK: o.topK as number,
      });
      process.stdout.write(evaluationTable(result));
      if (o.out) {
        mkdirSync(dirname(o.out as string), { recursive: true });
        writeFileSync(o.out as string, `${JSON.stringify({ model: o.model, ref: o.ref, prompts_file: o.prompts, ...result }, null, 2)}\n`);
      }
    });
}
