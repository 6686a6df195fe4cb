// The demo's on-policy DPO arms (`--methods iterative,online`), next to offline DPO on the same
// base model, prompts and ground-truth reward (AFINN):
//   Iterative DPO — `dpo loop`: `rounds` rounds, each sampling candidates from the latest policy on
//                   a new third of the training prompts, pairing best vs worst by AFINN and training
//                   DPO against the base (so its β means what offline DPO's does);
//   Online DPO    — `dpo online`: per step two completions per prompt from the current policy,
//                   the AFINN-better one chosen (ties left out), the DPO loss on that fresh pair.
// Both record their cost like the other arms: wall time, peak tensor memory, generated tokens,
// optimizer steps.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runFeedbackLoop } from '../train/feedback-loop.js';
import { runOnlineDpo } from '../train/online-dpo.js';
import { measured, type MethodCost, type RlArm } from './rlhf.js';

export interface LoopArmSettings {
  /** Rounds of the iterative arm; each samples a new 1/rounds share of the training prompts. */
  rounds: number;
  /** β of both arms (DPO's middle setting). */
  beta: number;
  /** Online DPO: optimizer steps, prompts per step (two completions each). */
  onlineSteps: number;
  onlineBatch: number;
  /** Online DPO's learning rate: at the offline arm's 1e-3 (--quick) AFINN did not move in 24 steps, at 2e-3 it rose 0.15 → 0.60. */
  onlineLearningRate: number;
}

export const DEFAULT_LOOP_ARMS: LoopArmSettings = { rounds: 3, beta: 0.1, onlineSteps: 60, onlineBatch: 16, onlineLearningRate: 2e-3 };
export const QUICK_LOOP_ARMS: LoopArmSettings = { ...DEFAULT_LOOP_ARMS, onlineSteps: 24 };

export async function runLoopArms(o: {
  basePath: string; out: string; prompts: readonly string[]; iterative: boolean; online: boolean; settings: LoopArmSettings;
  dpo: { learningRate: number; epochs: number; batchSize: number; warmupRatio: number };
  samplesPerPrompt: number; maxNewTokens: number; maxPositions: number; seed: number; threads?: number | undefined; quiet: boolean; log: (m: string) => void;
}): Promise<{ arms: RlArm[]; costs: MethodCost[] }> {
  const s = o.settings;
  const arms: RlArm[] = [];
  const costs: MethodCost[] = [];
  const promptsFile = join(o.out, 'data', 'loop_prompts.jsonl');
  writeFileSync(promptsFile, o.prompts.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
  const maxPrompt = Math.max(8, Math.min(64, o.maxPositions - o.maxNewTokens - 2));
  const common = { seed: o.seed, logging_steps: 1, save_steps: 0, lr_scheduler_type: 'linear' as const, warmup_ratio: o.dpo.warmupRatio, ...(o.threads ? { num_threads: o.threads } : {}) };

  if (o.iterative) {
    const name = `Iterative DPO β=${s.beta}`;
    const dir = join(o.out, 'models', 'iterative-dpo');
    rmSync(dir, { recursive: true, force: true }); // a rerun of the demo starts the loop afresh
    const perRound = Math.ceil(o.prompts.length / s.rounds);
    o.log(`${name}: ${s.rounds} rounds of ${perRound} prompts × ${o.samplesPerPrompt} samples from the latest policy, best vs worst by AFINN, DPO against the base`);
    const r = await measured(() => runFeedbackLoop({
      dir, model: o.basePath, quiet: o.quiet,
      config: {
        ...common, rounds: s.rounds, prompts: promptsFile, prompts_per_round: perRound, candidates_per_prompt: o.samplesPerPrompt,
        pairing: 'best_vs_worst', reference: 'initial', judge: 'afinn', max_new_tokens: o.maxNewTokens, sampling_temperature: 1,
        beta: s.beta, learning_rate: o.dpo.learningRate, num_train_epochs: o.dpo.epochs, per_device_train_batch_size: o.dpo.batchSize,
        max_length: o.maxPositions, max_prompt_length: maxPrompt,
      },
    }));
    let generated = 0;
    for (let k = 1; k <= s.rounds; k++) {
      for (const line of readFileSync(join(dir, `round-${k}`, 'samples.jsonl'), 'utf8').split('\n').filter(Boolean)) {
        generated += (JSON.parse(line) as { candidate_ids: number[][] }).candidate_ids.reduce((a, c) => a + c.length, 0);
      }
    }
    const rounds = r.value.filter((x) => x.round > 0);
    arms.push({ name, method: 'Iterative DPO', beta: s.beta, dir: join(dir, `round-${s.rounds}`, 'train'), history: [] });
    costs.push({ method: 'Iterative DPO', arm: name, seconds: r.seconds, peakTensorBytes: r.peakBytes, generatedTokens: generated, optimizerSteps: rounds.reduce((a, x) => a + x.train_steps, 0) });
    o.log(`${name}: ${rounds.map((x) => `round ${x.round} ${x.pairs} pairs`).join(', ')}`);
  }
  if (o.online) {
    const name = `Online DPO β=${s.beta}`;
    const dir = join(o.out, 'models', 'online-dpo');
    rmSync(dir, { recursive: true, force: true });
    o.log(`${name}: ${s.onlineSteps} steps of ${s.onlineBatch} prompts × 2 completions from the current policy, judged by AFINN`);
    let generated = 0;
    const r = await measured(() => runOnlineDpo({
      model: o.basePath, prompts: [promptsFile], outputDir: dir, quiet: o.quiet,
      onPairs: (ps) => {
        for (const p of ps) generated += p.chosenIds.length + p.rejectedIds.length;
      },
      config: {
        // AFINN is 0 for most short texts: pairs of equal scores carry no preference and are left out.
        ...common, reward_funcs: ['afinn'], tie_pairs: 'skip', beta: s.beta, learning_rate: s.onlineLearningRate, per_device_train_batch_size: s.onlineBatch,
        max_steps: s.onlineSteps, max_new_tokens: o.maxNewTokens, temperature: 1, max_length: o.maxPositions, max_prompt_length: maxPrompt,
      },
    }));
    if (r.value.stoppedBecause) throw new Error(`demo: ${name} stopped: ${r.value.stoppedBecause}`);
    arms.push({ name, method: 'Online DPO', beta: s.beta, dir, history: r.value.history });
    costs.push({ method: 'Online DPO', arm: name, seconds: r.seconds, peakTensorBytes: r.peakBytes, generatedTokens: generated, optimizerSteps: r.value.steps });
  }
  return { arms, costs };
}
