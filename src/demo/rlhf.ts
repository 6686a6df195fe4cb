// The demo's RLHF arms, next to DPO on the same base model, prompts and ground-truth reward
// (AFINN), as in the DPO paper's controlled-sentiment experiment (§6.1, Figure 2):
//   PPO     — a reward model trained by `dpo rm` on the demo's own preference pairs, then PPO
//             against it, for each KL coefficient;
//   PPO-GT  — PPO against the ground-truth reward itself, for each KL coefficient;
//   GRPO    — GRPO against the ground-truth reward, for each β (KL coefficient).
// Each arm records its cost: wall time, peak tensor memory, generated tokens, optimizer steps.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import { parseGrpoConfig, parsePpoConfig, parseRewardConfig } from '../train/rl-config.js';
import { runGrpo } from '../train/grpo.js';
import { runPpo } from '../train/ppo.js';
import { runRewardModel } from '../train/rm.js';

/** Every arm `--methods` can select: offline DPO, the RLHF arms, and iterative / online DPO (loop-arms.ts). */
export const RL_METHODS = ['dpo', 'ppo', 'grpo', 'iterative', 'online'] as const;
export type DemoMethod = (typeof RL_METHODS)[number];
/** The arms of a run without --methods: all of them. */
export const DEFAULT_METHODS: readonly DemoMethod[] = RL_METHODS;

export interface RlArmSettings {
  /** KL coefficients of the PPO and PPO-GT arms (TRL kl_coef). */
  klCoefs: number[];
  /** β (KL coefficients) of the GRPO arms. */
  grpoBetas: number[];
  rmSteps: number;
  rmLearningRate: number;
  ppoSteps: number;
  /** Prompts per PPO update (per_device_train_batch_size, one mini-batch). */
  ppoBatch: number;
  ppoEpochs: number;
  ppoLearningRate: number;
  grpoSteps: number;
  /** Completions per GRPO update (prompts × num_generations). */
  grpoBatch: number;
  numGenerations: number;
  grpoLearningRate: number;
}

// AFINN scores most short completions 0, so the online arms need larger groups and a learning
// rate near DPO's to move at all in a few dozen updates (tuned on the --quick base).
export const DEFAULT_RL: RlArmSettings = {
  klCoefs: [0.05, 0.2], grpoBetas: [0.04, 0.2],
  rmSteps: 100, rmLearningRate: 1e-3,
  ppoSteps: 30, ppoBatch: 16, ppoEpochs: 4, ppoLearningRate: 1e-3,
  grpoSteps: 30, grpoBatch: 32, numGenerations: 8, grpoLearningRate: 1e-3,
};

export const QUICK_RL: RlArmSettings = { ...DEFAULT_RL, klCoefs: [0.1], grpoBetas: [0.1], rmSteps: 40, ppoSteps: 12, grpoSteps: 12, ppoLearningRate: 2e-3, grpoLearningRate: 2e-3 };

/** One row of the cost table. */
export interface MethodCost {
  method: string;
  arm: string;
  seconds: number;
  peakTensorBytes: number;
  generatedTokens: number;
  optimizerSteps: number;
}

export interface RlArm {
  name: string;
  method: 'PPO' | 'PPO-GT' | 'GRPO' | 'Iterative DPO' | 'Online DPO';
  /** The KL coefficient: the β of the implicit reward β·log π/π_ref that this arm's optimum has. */
  beta: number;
  dir: string;
  history: Record<string, number>[];
}

/** Runs a phase and measures its wall time and peak tensor memory. */
export async function measured<X>(f: () => Promise<X>): Promise<{ value: X; seconds: number; peakBytes: number }> {
  T.resetPeak();
  const t = Date.now();
  const value = await f();
  return { value, seconds: (Date.now() - t) / 1000, peakBytes: T.memoryStats().peakBytes };
}

const generated = (h: Record<string, number>[], rowsPerStep: number): number =>
  Math.round(h.reduce((s, r) => s + (r['completions/mean_length'] ?? 0) * rowsPerStep, 0));

export async function runRlArms(o: {
  basePath: string; out: string; trainPairsFile: string; heldPairsFile: string | null; prompts: readonly string[];
  methods: readonly DemoMethod[]; rl: RlArmSettings; maxNewTokens: number; maxPositions: number; seed: number;
  threads?: number; quiet: boolean; log: (m: string) => void;
}): Promise<{ arms: RlArm[]; costs: MethodCost[]; rmAccuracy: number | null }> {
  const { rl } = o;
  const arms: RlArm[] = [];
  const costs: MethodCost[] = [];
  const promptsFile = join(o.out, 'data', 'rl_prompts.jsonl');
  writeFileSync(promptsFile, o.prompts.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
  const common = { logging_steps: 1, save_steps: 0, seed: o.seed, lr_scheduler_type: 'constant', ...(o.threads ? { num_threads: o.threads } : {}) };
  const maxPrompt = Math.max(8, Math.min(64, o.maxPositions - o.maxNewTokens - 2));
  let rmAccuracy: number | null = null;

  if (o.methods.includes('ppo')) {
    const rmDir = join(o.out, 'models', 'reward-model');
    o.log(`reward model: ${rl.rmSteps} steps of \`dpo rm\` on the training pairs`);
    const rm = await measured(() => runRewardModel({
      model: o.basePath, data: [o.trainPairsFile], evalData: o.heldPairsFile ? [o.heldPairsFile] : undefined, outputDir: rmDir, quiet: o.quiet,
      config: parseRewardConfig({ ...common, learning_rate: rl.rmLearningRate, per_device_train_batch_size: 16, max_steps: rl.rmSteps, max_length: o.maxPositions, logging_steps: 5 }),
    }));
    rmAccuracy = rm.value.evalHistory.at(-1)?.['eval/accuracy'] ?? null;
    costs.push({ method: 'PPO', arm: 'reward model', seconds: rm.seconds, peakTensorBytes: rm.peakBytes, generatedTokens: 0, optimizerSteps: rm.value.steps });
    if (rmAccuracy !== null) o.log(`reward model: held-out pair accuracy ${rmAccuracy.toFixed(3)}`);
    for (const [method, reward] of [['PPO', rmDir], ['PPO-GT', 'afinn']] as const) {
      for (const kl of rl.klCoefs) {
        const name = `${method} kl=${kl}`;
        const dir = join(o.out, 'models', `${method.toLowerCase()}-kl-${kl}`);
        o.log(`${name}: ${rl.ppoSteps} updates of ${rl.ppoBatch} rollouts × ${rl.ppoEpochs} epochs`);
        const r = await measured(() => runPpo({
          model: o.basePath, prompts: [promptsFile], outputDir: dir, quiet: o.quiet,
          config: parsePpoConfig({
            ...common, reward_funcs: [reward], kl_coef: kl, learning_rate: rl.ppoLearningRate, per_device_train_batch_size: rl.ppoBatch,
            num_mini_batches: 1, num_ppo_epochs: rl.ppoEpochs, response_length: o.maxNewTokens, temperature: 1, stop_token: 'eos',
            max_steps: rl.ppoSteps, max_prompt_length: maxPrompt,
          }, {}, `demo ${name}`),
        }));
        if (r.value.stoppedBecause) throw new Error(`demo: ${name} stopped: ${r.value.stoppedBecause}`);
        arms.push({ name, method, beta: kl, dir, history: r.value.history });
        costs.push({ method, arm: name, seconds: r.seconds, peakTensorBytes: r.peakBytes, generatedTokens: generated(r.value.history, rl.ppoBatch), optimizerSteps: r.value.steps * rl.ppoEpochs });
      }
    }
  }
  if (o.methods.includes('grpo')) {
    for (const beta of rl.grpoBetas) {
      const name = `GRPO β=${beta}`;
      const dir = join(o.out, 'models', `grpo-beta-${beta}`);
      o.log(`${name}: ${rl.grpoSteps} updates of ${rl.grpoBatch / rl.numGenerations} prompts × ${rl.numGenerations} completions`);
      const r = await measured(() => runGrpo({
        model: o.basePath, prompts: [promptsFile], outputDir: dir, quiet: o.quiet,
        config: parseGrpoConfig({
          ...common, reward_funcs: ['afinn'], beta, learning_rate: rl.grpoLearningRate, per_device_train_batch_size: rl.grpoBatch,
          num_generations: rl.numGenerations, max_completion_length: o.maxNewTokens, max_steps: rl.grpoSteps, max_prompt_length: maxPrompt,
        }, {}, `demo ${name}`),
      }));
      if (r.value.stoppedBecause) throw new Error(`demo: ${name} stopped: ${r.value.stoppedBecause}`);
      arms.push({ name, method: 'GRPO', beta, dir, history: r.value.history });
      costs.push({ method: 'GRPO', arm: name, seconds: r.seconds, peakTensorBytes: r.peakBytes, generatedTokens: generated(r.value.history, rl.grpoBatch), optimizerSteps: r.value.steps });
    }
  }
  return { arms, costs, rmAccuracy };
}


/** The cost table as Markdown-ish text (also embedded in the report). */
export function costTable(costs: readonly MethodCost[]): string {
  const rows = costs.map((c) => `| ${c.method} | ${c.arm} | ${c.seconds.toFixed(1)} | ${(c.peakTensorBytes / 2 ** 20).toFixed(1)} | ${c.generatedTokens} | ${c.optimizerSteps} |`);
  return ['| method | arm | wall s | peak tensor MiB | generated tokens | optimizer steps |', '|---|---|---|---|---|---|', ...rows].join('\n') + '\n';
}

/** The method a demo model belongs to, from its name (DPO models are named β=…). */
export function methodOf(name: string, isReference: boolean): 'reference' | 'DPO' | 'PPO' | 'PPO-GT' | 'GRPO' | 'Iterative DPO' | 'Online DPO' {
  if (isReference) return 'reference';
  if (name.startsWith('Iterative DPO')) return 'Iterative DPO';
  if (name.startsWith('Online DPO')) return 'Online DPO';
  if (name.startsWith('PPO-GT')) return 'PPO-GT';
  if (name.startsWith('PPO')) return 'PPO';
  if (name.startsWith('GRPO')) return 'GRPO';
  return 'DPO';
}
