// `dpo train`, `dpo sft`, `dpo score`.
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { dpoOptionNames, sftOptionNames } from '../train/config.js';
import { addConfigFlags, loadDpoConfig, loadSftConfig } from './config-flags.js';
import { collectList as collect } from './args.js';


/** Help texts of the options `train` and `sft` share; `ref` and `cacheDir` are train's alone. */
interface RunOptionHelp {
  model: string;
  data: string;
  evalData: string;
  config: string;
  output: string;
  ref?: string;
  tokenizer: string;
  cacheDir?: string;
}

/** Adds the model/data/output/resume options of a training command, in the order --help lists them. */
function addRunOptions(cmd: Command, help: RunOptionHelp): Command {
  cmd
    .requiredOption('--model <path>', help.model)
    .requiredOption('--data <file>', help.data, collect)
    .option('--eval-data <file>', help.evalData, collect)
    .option('--config <file>', help.config)
    .option('--output <dir>', `${help.output} (default: the config's output_dir)`);
  if (help.ref !== undefined) cmd.option('--ref <path>', help.ref);
  cmd
    .option('--tokenizer <path>', help.tokenizer)
    .option('--resume [checkpoint]', 'continue from the newest checkpoint in --output (or the given one)');
  if (help.cacheDir !== undefined) cmd.option('--cache-dir <dir>', help.cacheDir);
  return cmd.option('--quiet', 'no progress output');
}

/**
 * Ctrl-C during training: the first stops the run between two micro-batches (the checkpoints
 * written so far stay; --resume continues from the newest), a second one quits at once.
 */
async function interruptible<R>(run: (signal: AbortSignal) => Promise<R>): Promise<R | null> {
  const controller = new AbortController();
  const onInterrupt = (): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\ninterrupted: stopping after the current micro-batch (Ctrl-C again to quit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onInterrupt);
  try {
    return await run(controller.signal);
  } catch (e) {
    if (!controller.signal.aborted) throw e;
    process.stderr.write('training stopped by the interrupt; the checkpoints written so far are kept: continue with --resume\n');
    process.exitCode = 130;
    return null;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

/** The parsed options of addRunOptions as the run functions take them. */
function runOptions(opts: Record<string, unknown>, configOutputDir: string | null) {
  const outputDir = (opts.output as string | undefined) ?? configOutputDir;
  if (!outputDir) throw new Error('no output directory: pass --output DIR (or output_dir in the --config file)');
  opts.resolvedOutput = outputDir;
  return {
    model: opts.model as string,
    tokenizer: opts.tokenizer as string | undefined,
    data: opts.data as string[],
    evalData: opts.evalData as string[] | undefined,
    outputDir,
    // --resume alone: the newest checkpoint; --resume PATH: that one.
    resume: opts.resume === undefined ? false : opts.resume === true ? true : (opts.resume as string),
    quiet: Boolean(opts.quiet),
  };
}

export function registerTrainingCommands(program: Command): void {
  const train = program
    .command('train')
    .description('DPO (and its loss family) on preference data; every TRL DPOConfig option is also a flag (--beta 0.1, --loss-type ipo, ...)');
  addRunOptions(train, {
    model: 'starting policy: a Hugging Face directory or a llama2.c .bin checkpoint',
    data: 'training preference data (.jsonl/.json/.parquet, optionally .gz); repeatable',
    evalData: 'evaluation preference data; repeatable',
    config: 'YAML or JSON config with TRL DPOConfig names (flags override it)',
    output: 'output directory: checkpoints, metrics.jsonl, the final model',
    ref: 'reference model (default: a frozen copy of --model; with LoRA: the base with adapters off)',
    tokenizer: 'tokenizer directory or llama2.c tokenizer .bin (default: the model\'s)',
    cacheDir: 'where precomputed reference log-probs are cached',
  });
  addConfigFlags(train, dpoOptionNames);
  train.action(async (opts: Record<string, unknown>) => {
    const config = loadDpoConfig(opts);
    const { runDpo } = await import('../train/dpo.js');
    const res = await interruptible((signal) => runDpo({
      ...runOptions(opts, config.output_dir), ref: opts.ref as string | undefined, config, cacheDir: opts.cacheDir as string | undefined, signal,
    }));
    if (res) report(res, opts);
  });

  const sft = program
    .command('sft')
    .description('supervised fine-tuning on prompt/completion data (loss on the completion) or messages data (every token, or assistant turns with --assistant-only-loss true); TRL SFTConfig options as flags');
  addRunOptions(sft, {
    model: 'starting model: a Hugging Face directory or a llama2.c .bin checkpoint',
    data: 'training data; repeatable',
    evalData: 'evaluation data; repeatable',
    config: 'YAML or JSON config (flags override it)',
    output: 'output directory',
    tokenizer: 'tokenizer (default: the model\'s)',
  });
  addConfigFlags(sft, sftOptionNames);
  sft.action(async (opts: Record<string, unknown>) => {
    const config = loadSftConfig(opts);
    const { runSft } = await import('../train/sft.js');
    const res = await interruptible((signal) => runSft({ ...runOptions(opts, config.output_dir), config, signal }));
    if (res) report(res, opts);
  });

  program
    .command('score')
    .description('implicit reward β·log(π/π_ref) of each response and the pairwise accuracy: the trained policy as a reward model')
    .requiredOption('--model <path>', 'trained policy')
    .requiredOption('--ref <path>', 'reference model (the policy\'s starting point)')
    .requiredOption('--data <file>', 'preference data; repeatable', collect)
    .option('--beta <beta>', 'β used in training', '0.1')
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--batch-size <n>', 'pairs per forward', '8')
    .option('--max-length <n>', 'truncate prompt+response to this many tokens')
    .option('--out <file>', 'write per-pair scores as JSON lines')
    .option('--slice <column>', 'accuracy and mean reward per value of this column (e.g. group, source), with the best−worst gap; repeatable', collect)
    .option('--quiet', 'no progress output')
    .action(async (opts: Record<string, string | boolean | string[] | undefined>) => {
      const { scorePairs } = await import('../eval/score.js');
      const { sliceTable } = await import('../losses/reward.js');
      const { pairs, summary, bySlice } = await scorePairs({
        model: opts.model as string, ref: opts.ref as string, data: opts.data as string[], tokenizer: opts.tokenizer as string | undefined,
        beta: Number(opts.beta), batchSize: Number(opts.batchSize), maxLength: opts.maxLength ? Number(opts.maxLength) : undefined,
        quiet: Boolean(opts.quiet), slice: opts.slice as string[] | undefined,
      });
      if (typeof opts.out === 'string') writeFileSync(opts.out, pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
      process.stdout.write(
        `pairs: ${pairs.length}\naccuracy: ${summary.accuracy.accuracy.toFixed(4)}\nmean margin: ${summary.meanMargin.toFixed(4)}\n` +
        `mean reward chosen: ${summary.meanChosenReward.toFixed(4)}  rejected: ${summary.meanRejectedReward.toFixed(4)}\n`,
      );
      for (const r of bySlice) process.stdout.write(`\n${sliceTable(r)}`);
    });
}

/** The output directory a run used (for the closing line). */
function outputDirOf(opts: Record<string, unknown>): string {
  return String(opts.resolvedOutput ?? opts.output);
}

function report(res: { steps: number; stoppedBecause: string | null; warnings: string[]; history: Record<string, number>[]; evalHistory: Record<string, number>[] }, opts: Record<string, unknown>): void {
  const last = res.history.at(-1);
  const ev = res.evalHistory.at(-1);
  if (!opts.quiet) {
    process.stderr.write(`done: ${res.steps} steps${last ? `, loss ${last.loss?.toFixed(4)}` : ''}${ev ? `, eval loss ${ev['eval/loss']?.toFixed(4)}` : ''}; output in ${outputDirOf(opts)}\n`);
    for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
  }
  if (res.stoppedBecause && res.stoppedBecause !== 'stopAfterSteps') {
    process.stderr.write(`stopped: ${res.stoppedBecause}\n`);
    process.exitCode = 2;
  }
}
