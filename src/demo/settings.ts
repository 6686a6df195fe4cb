// The demo's settings: the base model's shape and pretraining, the prompt and sample counts, DPO's
// hyper-parameters and the β grid (full and --quick presets). Shared by run.ts and report.ts.
import type { ModelShape, PretrainSettings } from '../train/pretrain.js';
import { DEFAULT_PRETRAIN } from '../train/pretrain.js';
import { DEFAULT_RL, QUICK_RL, type RlArmSettings } from './rlhf.js';

export interface DemoSettings {
  /** Shape of the base model pretrained here. */
  shape: ModelShape;
  pretrain: Partial<PretrainSettings>;
  /** Prompts (held-in text) whose sampled completions become training pairs. */
  trainPrompts: number;
  /** Held-out prompts whose pairs are DPO's eval set and the implicit-accuracy pairs. */
  pairPrompts: number;
  /** Held-out prompts for reward / KL / win rate. */
  evalPrompts: number;
  /** Completions sampled per prompt for preference data. */
  samplesPerPrompt: number;
  /** Completions sampled per held-out prompt in the evaluation. */
  evalSamples: number;
  maxNewTokens: number;
  dpo: { learningRate: number; epochs: number; batchSize: number; warmupRatio: number };
  /** The RLHF arms (PPO, PPO-GT, GRPO); default DEFAULT_RL. */
  rl?: RlArmSettings;
}

export const DEFAULT_SETTINGS: DemoSettings = {
  shape: { vocabSize: 2048, hiddenSize: 128, numLayers: 4, numHeads: 4, intermediateSize: 384, contextLength: 128 },
  pretrain: { ...DEFAULT_PRETRAIN, steps: 600, learningRate: 3e-3, warmupSteps: 30, evalSteps: 100 },
  trainPrompts: 1200,
  pairPrompts: 96,
  evalPrompts: 128,
  samplesPerPrompt: 8,
  evalSamples: 8,
  maxNewTokens: 24,
  dpo: { learningRate: 5e-4, epochs: 2, batchSize: 16, warmupRatio: 0.1 },
  rl: DEFAULT_RL,
};

export const QUICK_SETTINGS: DemoSettings = {
  ...DEFAULT_SETTINGS,
  pretrain: { ...DEFAULT_PRETRAIN, steps: 200, learningRate: 4e-3, warmupSteps: 20, evalSteps: 50 },
  trainPrompts: 400,
  pairPrompts: 48,
  evalPrompts: 64,
  evalSamples: 4,
  dpo: { learningRate: 1e-3, epochs: 2, batchSize: 16, warmupRatio: 0.1 },
  rl: QUICK_RL,
};

/**
 * DPO settings for a pretrained model given with --model. A real pretrained model (stories260K)
 * has a sharp distribution that DPO pulls out of shape much sooner than the tiny Moby-Dick base:
 * at the base's settings (5e-4, 2 epochs) every β from 0.05 to 4 left stories260K degrading or
 * collapsed (word salad at β ≤ 0.1, one stock phrase for every prompt above), while one epoch at
 * 2e-4 keeps β = 0.5 fluent with most of the reward gain (AFINN 1.0 → 4.4) and still shows the
 * collapse of β = 0.01.
 */
export const PRETRAINED_DPO: DemoSettings['dpo'] = { learningRate: 2e-4, epochs: 1, batchSize: 16, warmupRatio: 0.1 };

/** The default β grid: an aggressive, a middle and a conservative setting (see the README). */
export const DEFAULT_BETAS = [0.01, 0.1, 0.5];
