// `dpo demo`: the built-in main job (see run.ts). Options: --out, --quick, --fresh, --model,
// --prompts, --betas, --seed, --threads, --cache-dir.

import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_BETAS, runDemo } from '../demo/run.js';
import { runTwoGroupDemo } from '../demo/groups.js';
import { RL_METHODS, type DemoMethod } from '../demo/rlhf.js';
import { intArg } from './args.js';

export function parseMethods(v: string): DemoMethod[] {
  const m = v.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = m.filter((x) => !(RL_METHODS as readonly string[]).includes(x));
  if (m.length === 0 || bad.length) throw new InvalidArgumentError(`--methods takes a comma-separated list of ${RL_METHODS.join(', ')}, got "${v}"`);
  return [...new Set(m)] as DemoMethod[];
}

function parseBetas(v: string): number[] {
  const betas = v.split(',').map((x) => Number(x.trim()));
  if (betas.length === 0 || betas.some((b) => !Number.isFinite(b) || b <= 0)) {
    throw new InvalidArgumentError(`--betas must be comma-separated positive numbers, got "${v}"`);
  }
  return betas;
}

export function registerDemoCommands(program: Command): Command {
  return program
    .command('demo')
    .description('the built-in main job: pretrain a tiny Llama (cached), build sentiment preference pairs, DPO for several β, evaluate reward vs KL on held-out prompts, write an HTML report with plots')
    .option('--out <dir>', 'output folder', './dpo-demo-out')
    .option('--quick', 'a smaller run (about 2 minutes)')
    .option('--fresh', 'rebuild the cached base model')
    .option('--model <path>', 'use this model instead of the pretrained base (Hugging Face directory or llama2.c checkpoint; trained more gently: one epoch at learning rate 2e-4)')
    .option('--prompts <file>', 'prompts (.txt lines or .jsonl "prompt"); every fifth is held out. Default: sentence starts of Moby-Dick')
    .option('--betas <list>', 'DPO β values', parseBetas, DEFAULT_BETAS)
    .option('--methods <list>', 'arms to run: dpo, ppo (a reward model + PPO, and PPO against the ground truth), grpo', parseMethods, ['dpo', 'ppo', 'grpo'])
    .option('--seed <n>', 'seed', intArg('--seed', 0), 0)
    .option('--threads <n>', 'kernel threads (default: all cores)', intArg('--threads', 1))
    .option('--cache-dir <dir>', 'cache folder (default $DPO_CACHE_DIR, $XDG_CACHE_HOME/dpo-ts or ~/.cache/dpo-ts)')
    .option('--two-groups', 'instead: the two-group task (two simulated labeller groups with opposite preferences, one in the majority) and the per-group accuracy gap (a few seconds)')
    .option('--quiet', 'no progress output and no table')
    .action(async (o: Record<string, unknown>) => {
      if (o.twoGroups) {
        if (o.threads) (await import('../tensor/backend.js')).kernels().setNumThreads(o.threads as number);
        await runTwoGroupDemo({ out: o.out as string, seed: o.seed as number, quiet: Boolean(o.quiet) });
        return;
      }
      await runDemo({
        out: o.out as string, quick: Boolean(o.quick), fresh: Boolean(o.fresh), model: o.model as string | undefined,
        prompts: o.prompts as string | undefined, betas: o.betas as number[], seed: o.seed as number,
        threads: o.threads as number | undefined, cacheDir: o.cacheDir as string | undefined, quiet: Boolean(o.quiet),
        methods: o.methods as DemoMethod[],
      });
    });
}
