// `dpo rm` (+ `dpo rm score`), `dpo grpo`, `dpo rloo`, `dpo ppo`: the RLHF side. Every TRL
// RewardConfig / GRPOConfig / PPOConfig option is also a flag (--kl-coef 0.05, ...).
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { readConfigFile } from '../train/config.js';
import {
  grpoOptionNames, parseGrpoConfig, parsePpoConfig, parseRewardConfig, ppoOptionNames, rewardOptionNames,
} from '../train/rl-config.js';
import { addConfigFlags, configOverrides } from './config-flags.js';
import { collectList as collect } from './args.js';


function fileConfig(opts: Record<string, unknown>): { file: Record<string, unknown>; source: string } {
  return typeof opts.config === 'string' ? { file: readConfigFile(opts.config), source: opts.config } : { file: {}, source: 'options' };
}

function resumeOf(opts: Record<string, unknown>): boolean | string {
  return opts.resume === undefined ? false : opts.resume === true ? true : (opts.resume as string);
}

function finish(res: { steps: number; stoppedBecause: string | null; history: Record<string, number>[] }, opts: Record<string, unknown>, keys: string[]): void {
  const last = res.history.at(-1);
  if (!opts.quiet) {
    const parts = keys.filter((k) => last?.[k] !== undefined).map((k) => `${k} ${last![k]!.toFixed(4)}`);
    process.stderr.write(`done: ${res.steps} steps${parts.length ? `, ${parts.join(', ')}` : ''}; output in ${String(opts.output)}\n`);
  }
  if (res.stoppedBecause && res.stoppedBecause !== 'stopAfterSteps') {
    process.stderr.write(`stopped: ${res.stoppedBecause}\n`);
    process.exitCode = 2;
  }
}

export function registerRlCommands(program: Command): void {
  const rm = program
    .command('rm')
    .description('train a reward model (Bradley–Terry on preference pairs; TRL RewardConfig options as flags); `dpo rm score` scores pairs with one')
    .argument('[action]', '"score": per-response rewards and pairwise accuracy of a trained reward model (--model, --data, --out)')
    .option('--model <path>', 'training: an SFT/base model (a fresh score head) or a reward-model directory; score: the reward model')
    .option('--data <file>', 'preference data (any format `dpo train` reads; optional `margin` column); repeatable', collect)
    .option('--eval-data <file>', 'evaluation preference data; repeatable', collect)
    .option('--config <file>', 'YAML or JSON config with TRL RewardConfig names (flags override it)')
    .option('--output <dir>', 'output directory: checkpoints, metrics.jsonl, the reward model (a *ForSequenceClassification directory)')
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--resume [checkpoint]', 'continue from the newest checkpoint in --output (or the given one)')
    .option('--batch-size <n>', 'score: pairs per forward', '8')
    .option('--out <file>', 'score: write per-pair rewards as JSON lines (default: stdout)')
    .option('--quiet', 'no progress output');
  addConfigFlags(rm, rewardOptionNames);
  rm.action(async (action: string | undefined, opts: Record<string, unknown>) => {
    if (action !== undefined && action !== 'score') throw new Error(`rm: unknown action "${action}" (the only one is "score")`);
    const required = action === 'score' ? ['model', 'data'] : ['model', 'data', 'output'];
    for (const k of required) if (opts[k] === undefined) throw new Error(`rm${action ? ` ${action}` : ''}: --${k} is required`);
    if (action === 'score') {
      const { scoreWithRewardModel } = await import('../train/rm.js');
      const r = await scoreWithRewardModel({
        model: opts.model as string, data: opts.data as string[], tokenizer: opts.tokenizer as string | undefined,
        batchSize: Number(opts.batchSize), maxLength: typeof opts.maxLength === 'string' ? Number(opts.maxLength) : undefined, quiet: Boolean(opts.quiet),
      });
      const lines = r.pairs.map((p) => JSON.stringify(p)).join('\n') + '\n';
      if (typeof opts.out === 'string') writeFileSync(opts.out, lines);
      else process.stdout.write(lines);
      if (!opts.quiet || typeof opts.out === 'string') {
        process.stderr.write(
          `pairs: ${r.pairs.length}\naccuracy: ${r.accuracy.toFixed(4)}\nmean margin: ${r.meanMargin.toFixed(4)}\n` +
          `mean reward chosen: ${r.meanChosen.toFixed(4)}  rejected: ${r.meanRejected.toFixed(4)}\n`,
        );
      }
      return;
    }
    const { file, source } = fileConfig(opts);
    const config = parseRewardConfig(file, configOverrides(opts, rewardOptionNames), source);
    const { runRewardModel } = await import('../train/rm.js');
    const res = await runRewardModel({
      model: opts.model as string, tokenizer: opts.tokenizer as string | undefined, data: opts.data as string[],
      evalData: opts.evalData as string[] | undefined, config, outputDir: opts.output as string, resume: resumeOf(opts), quiet: Boolean(opts.quiet),
    });
    finish(res, opts, ['loss', 'accuracy', 'margin']);
  });

  for (const name of ['grpo', 'rloo'] as const) {
    const cmd = program
      .command(name)
      .description(name === 'grpo'
        ? 'GRPO on prompts: group-relative advantages over num_generations samples per prompt, no value model (TRL GRPOConfig options as flags)'
        : 'RLOO on prompts: leave-one-out baseline over num_generations samples per prompt (GRPOConfig/RLOOConfig options as flags)')
      .requiredOption('--model <path>', 'starting policy: a Hugging Face directory or a llama2.c .bin checkpoint')
      .requiredOption('--prompts <file>', 'prompts: JSONL/JSON/Parquet with a prompt column (text or messages), or preference data (its prompts are used); repeatable', collect)
      .option('--config <file>', 'YAML or JSON config with TRL GRPOConfig names (flags override it)')
      .requiredOption('--output <dir>', 'output directory: checkpoints, metrics.jsonl, the final policy')
      .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
      .option('--resume [checkpoint]', 'continue from the newest checkpoint in --output (or the given one)')
      .option('--quiet', 'no progress output');
    addConfigFlags(cmd, grpoOptionNames);
    cmd.action(async (opts: Record<string, unknown>) => {
      const { file, source } = fileConfig(opts);
      const overrides = configOverrides(opts, grpoOptionNames);
      const config = parseGrpoConfig(file, name === 'rloo' ? { rloo: true, ...overrides } : overrides, source);
      const { runGrpo } = await import('../train/grpo.js');
      const res = await runGrpo({
        model: opts.model as string, tokenizer: opts.tokenizer as string | undefined, prompts: opts.prompts as string[],
        config, outputDir: opts.output as string, resume: resumeOf(opts), quiet: Boolean(opts.quiet),
      });
      finish(res, opts, ['reward', 'kl', 'loss']);
    });
  }

  const ppo = program
    .command('ppo')
    .description('PPO against a reward model or reward function, with a value model and a KL penalty to the reference (TRL PPOConfig options as flags)')
    .requiredOption('--model <path>', 'starting policy (and frozen reference): a Hugging Face directory or a llama2.c .bin checkpoint')
    .requiredOption('--prompts <file>', 'prompts (a prompt column, or preference data); repeatable', collect)
    .option('--config <file>', 'YAML or JSON config with TRL PPOConfig names (flags override it)')
    .requiredOption('--output <dir>', 'output directory: checkpoints, metrics.jsonl, the final policy')
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--resume [checkpoint]', 'continue from the newest checkpoint in --output (or the given one)')
    .option('--quiet', 'no progress output');
  addConfigFlags(ppo, ppoOptionNames);
  ppo.action(async (opts: Record<string, unknown>) => {
    const { file, source } = fileConfig(opts);
    const config = parsePpoConfig(file, configOverrides(opts, ppoOptionNames), source);
    const { runPpo } = await import('../train/ppo.js');
    const res = await runPpo({
      model: opts.model as string, tokenizer: opts.tokenizer as string | undefined, prompts: opts.prompts as string[],
      config, outputDir: opts.output as string, resume: resumeOf(opts), quiet: Boolean(opts.quiet),
    });
    finish(res, opts, ['objective/scores', 'objective/kl', 'objective/rlhf_reward']);
  });
}
