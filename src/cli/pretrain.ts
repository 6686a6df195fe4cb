// `dpo pretrain FILES... --out DIR`: parse, call train/pretrain.ts's pretrain(), print its summary.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { kernels } from '../tensor/backend.js';
import { DEFAULT_PRETRAIN, pretrain, readDocuments } from '../train/pretrain.js';
import { intArg, positiveNumberArg } from './args.js';

/** `dpo pretrain FILES... --out DIR`: tokenizer + tiny Llama from plain text. */
export function registerPretrainCommand(program: Command): Command {
  return program
    .command('pretrain')
    .description('pretrain a small Llama from plain text (.txt paragraphs or .jsonl "text"), with a BPE tokenizer trained on it; writes a Hugging Face directory')
    .argument('<files...>', 'training text files (.txt: blank-line separated documents; .jsonl: one {"text": ...} per line)')
    .requiredOption('--out <dir>', 'output Hugging Face directory')
    .option('--eval <files...>', 'held-out text files for the evaluation loss')
    .option('--tokenizer <dir>', 'use this tokenizer instead of training one')
    .option('--vocab-size <n>', 'BPE vocabulary size', intArg('--vocab-size', 257), 2048)
    .option('--hidden <n>', 'hidden size', intArg('--hidden'), 128)
    .option('--layers <n>', 'transformer layers', intArg('--layers'), 4)
    .option('--heads <n>', 'attention heads', intArg('--heads'), 4)
    .option('--intermediate <n>', 'MLP size', intArg('--intermediate'), 384)
    .option('--context <n>', 'context length (training block size)', intArg('--context', 2), 128)
    .option('--batch-size <n>', 'blocks per step', intArg('--batch-size'), DEFAULT_PRETRAIN.batchSize)
    .option('--steps <n>', 'optimizer steps', intArg('--steps'), DEFAULT_PRETRAIN.steps)
    .option('--lr <x>', 'peak learning rate (cosine schedule)', positiveNumberArg('--lr'), DEFAULT_PRETRAIN.learningRate)
    .option('--warmup <n>', 'warmup steps', intArg('--warmup', 0), DEFAULT_PRETRAIN.warmupSteps)
    .option('--seed <n>', 'seed', intArg('--seed', 0), DEFAULT_PRETRAIN.seed)
    .option('--threads <n>', 'kernel threads', intArg('--threads'))
    .option('--quiet', 'no progress output')
    .action(async (files: string[], o: Record<string, unknown>) => {
      if (o.threads) kernels().setNumThreads(o.threads as number);
      const docs = files.flatMap((f) => readDocuments(f));
      const evalDocs = ((o.eval as string[] | undefined) ?? []).flatMap((f) => readDocuments(f));
      const r = await pretrain({
        docs, evalDocs, outputDir: o.out as string, tokenizerDir: o.tokenizer as string | undefined, quiet: Boolean(o.quiet),
        shape: {
          vocabSize: o.vocabSize as number, hiddenSize: o.hidden as number, numLayers: o.layers as number,
          numHeads: o.heads as number, intermediateSize: o.intermediate as number, contextLength: o.context as number,
        },
        settings: {
          batchSize: o.batchSize as number, steps: o.steps as number, learningRate: o.lr as number,
          warmupSteps: o.warmup as number, seed: o.seed as number,
        },
      });
      const summary = {
        output: o.out, parameters: r.parameters, train_tokens: r.trainTokens, eval_tokens: r.evalTokens, steps: r.steps,
        final_train_loss: r.history.at(-1)?.loss ?? null,
        eval_loss_before: Number.isNaN(r.initialEvalLoss) ? null : r.initialEvalLoss,
        eval_loss_after: Number.isNaN(r.finalEvalLoss) ? null : r.finalEvalLoss,
      };
      writeFileSync(join(o.out as string, 'pretrain_summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    });
}
