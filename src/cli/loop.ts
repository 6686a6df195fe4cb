// `dpo loop` (iterative DPO: rounds of sample → label → train → evaluate, with a judge or people)
// and `dpo online` (online DPO, TRL OnlineDPOConfig options as flags).
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { readConfigFile } from '../train/config.js';
import { addConfigFlags, configOverrides } from './config-flags.js';
import { collectList as collect } from './args.js';
import { loopOptionNames } from '../train/feedback-loop.js';
import { onlineDpoOptionNames, parseOnlineDpoConfig } from '../train/online-dpo.js';

export function registerLoopCommands(program: Command): void {
  const loop = program
    .command('loop')
    .description('iterative DPO: rounds of sampling the policy, labelling its samples (a judge, a reward model, or people through `dpo annotate`), training and evaluating')
    .argument('<dir>', 'the loop directory (round-K/ folders, loop.jsonl, report.md)')
    .requiredOption('--model <path>', 'the initial policy: a Hugging Face directory or a llama2.c .bin checkpoint')
    .option('--config <file>', 'YAML or JSON: rounds, prompts, candidates_per_prompt, pairing, reference, judge, eval_prompts, ... and any `dpo train` option')
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--resume', 'continue the loop in <dir> where it stopped (finished phases and rounds are kept)')
    .option('--quiet', 'no progress output');
  addConfigFlags(loop, loopOptionNames);
  loop.action(async (dir: string, opts: Record<string, unknown>) => {
    const overrides = configOverrides(opts, loopOptionNames);
    const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : undefined;
    const config = file || Object.keys(overrides).length ? { ...(file ?? {}), ...overrides } : undefined;
    const { runFeedbackLoop } = await import('../train/feedback-loop.js');
    const { peopleForLoop } = await import('../annotate/loop-people.js');
    const people = peopleForLoop(dir, config, Boolean(opts.quiet));
    const recs = await runFeedbackLoop({
      dir, model: opts.model as string, tokenizer: opts.tokenizer as string | undefined, config, resume: Boolean(opts.resume), quiet: Boolean(opts.quiet), people,
    });
    if (!opts.quiet) {
      const { renderLoopReport } = await import('../train/feedback-loop.js');
      process.stderr.write(`${renderLoopReport(recs)}\nreport: ${resolve(dir, 'report.md')}\n`);
    }
  });

  const online = program
    .command('online')
    .description('online DPO: per step two completions per prompt from the current policy, judged, then the DPO loss on the fresh pair (TRL OnlineDPOConfig options as flags)')
    .requiredOption('--model <path>', 'starting policy (and frozen reference): a Hugging Face directory or a llama2.c .bin checkpoint')
    .requiredOption('--prompts <file>', 'prompts (a prompt column, or preference data); repeatable', collect)
    .option('--ref <path>', 'a separate reference model (default: a frozen copy of --model)')
    .option('--config <file>', 'YAML or JSON config with OnlineDPOConfig names (flags override it)')
    .requiredOption('--output <dir>', 'output directory: checkpoints, metrics.jsonl, the final policy')
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--resume [checkpoint]', 'continue from the newest checkpoint in --output (or the given one)')
    .option('--quiet', 'no progress output');
  addConfigFlags(online, onlineDpoOptionNames);
  online.action(async (opts: Record<string, unknown>) => {
    const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
    const config = parseOnlineDpoConfig(file, configOverrides(opts, onlineDpoOptionNames), typeof opts.config === 'string' ? opts.config : 'options');
    const { runOnlineDpo } = await import('../train/online-dpo.js');
    const res = await runOnlineDpo({
      model: opts.model as string, ref: opts.ref as string | undefined, tokenizer: opts.tokenizer as string | undefined, prompts: opts.prompts as string[],
      config, outputDir: opts.output as string, resume: opts.resume === undefined ? false : opts.resume === true ? true : (opts.resume as string), quiet: Boolean(opts.quiet),
    });
    const last = res.history.at(-1);
    if (!opts.quiet) process.stderr.write(`done: ${res.steps} steps${last ? `, loss ${last.loss?.toFixed(4)}, objective/kl ${last['objective/kl']?.toFixed(4)}` : ''}; output in ${String(opts.output)}\n`);
    if (res.stoppedBecause && res.stoppedBecause !== 'stopAfterSteps') {
      process.stderr.write(`stopped: ${res.stoppedBecause}\n`);
      process.exitCode = 2;
    }
  });
}
