// Configuration of the RLHF trainers with TRL v1.9.0's names: RewardConfig (`dpo rm`),
// GRPOConfig (`dpo grpo`, and RLOO as `dpo rloo`: RLOOConfig's names), and the experimental
// PPOConfig (`dpo ppo`). The options every trainer shares (learning_rate, batch sizes, LoRA,
// logging/saving, ...) come from config.ts; unknown keys get the same "did you mean" errors.

import { z } from 'zod';
import { grpoLossTypes } from '../losses/rl.js';
import { commonTrainingOptions as common, validateConfig } from './config.js';

const positiveInt = z.number().int().positive();

export const RewardConfigSchema = z.object({
  ...common,
  learning_rate: z.number().positive().default(1e-4),
  max_length: positiveInt.nullable().default(1024),
  /** Eisenstein et al. 2023: adds c·mean((r_c + r_r)²) so rewards stay centred at 0. */
  center_rewards_coefficient: z.number().min(0).nullable().default(null),
  /** Column holding a per-pair margin (TRL reads `margin`); null = none even if present. */
  margin_column: z.string().nullable().default('margin'),
  max_prompt_length: positiveInt.nullable().default(null),
  truncation_mode: z.enum(['keep_end', 'keep_start']).default('keep_end'),
}).strict();

/** Options shared by the on-line trainers (generation, reward functions, reference). */
export const onlineOptions = {
  /** Prompts longer than this (tokens) are cut from the left (TRL max_prompt_length). */
  max_prompt_length: positiveInt.nullable().default(512),
  temperature: z.number().positive().default(1.0),
  top_p: z.number().gt(0).max(1).default(1.0),
  top_k: z.number().int().min(0).default(0),
  /** Built-in reward functions (afinn, vader, length), JS modules (path.mjs[#export]) or reward-model directories. */
  reward_funcs: z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(z.string()).min(1)).default(['afinn']),
  reward_weights: z.preprocess((v) => (typeof v === 'number' ? [v] : v), z.array(z.number()).nullable()).default(null),
  /** Total optimizer updates; -1 = num_train_epochs passes over the prompts. */
  max_steps: z.number().int().default(-1),
  num_train_epochs: z.number().positive().default(1),
  /** Column with the prompt text (or chat messages) in the prompt file. */
  prompt_column: z.string().default('prompt'),
};

export const GrpoConfigSchema = z.object({
  ...common,
  ...onlineOptions,
  learning_rate: z.number().positive().default(1e-6),
  /** Completions per optimizer micro-batch (TRL: must be a multiple of num_generations). */
  per_device_train_batch_size: positiveInt.default(8),
  num_generations: z.number().int().min(2).default(8),
  max_completion_length: positiveInt.default(256),
  beta: z.number().min(0).default(0),
  num_iterations: positiveInt.default(1),
  epsilon: z.number().positive().default(0.2),
  epsilon_high: z.number().positive().nullable().default(null),
  delta: z.number().positive().nullable().default(null),
  importance_sampling_level: z.enum(['token', 'sequence']).default('token'),
  loss_type: z.enum(grpoLossTypes as unknown as [string, ...string[]]).default('dapo'),
  scale_rewards: z.union([z.enum(['group', 'batch', 'none']), z.boolean()]).default('group'),
  multi_objective_aggregation: z.enum(['sum_then_normalize', 'normalize_then_sum']).default('sum_then_normalize'),
  mask_truncated_completions: z.boolean().default(false),
  sapo_temperature_pos: z.number().positive().default(1.0),
  sapo_temperature_neg: z.number().positive().default(1.05),
  /** RLOO (`dpo rloo`): leave-one-out baseline, sequence-level KL in the reward, sequence ratios. */
  rloo: z.boolean().default(false),
  /** RLOO: whiten the advantages over the batch (TRL RLOOConfig normalize_advantages). */
  normalize_advantages: z.boolean().default(false),
}).strict();

export const PpoConfigSchema = z.object({
  ...common,
  ...onlineOptions,
  learning_rate: z.number().positive().default(3e-6),
  per_device_train_batch_size: positiveInt.default(4),
  num_mini_batches: positiveInt.default(1),
  num_ppo_epochs: positiveInt.default(4),
  response_length: positiveInt.default(53),
  temperature: z.number().positive().default(0.7),
  /** "eos": responses end at the tokenizer's EOS; null: at stop_token_id, else run to response_length. */
  stop_token: z.enum(['eos']).nullable().default(null),
  stop_token_id: z.number().int().min(0).nullable().default(null),
  missing_eos_penalty: z.number().nullable().default(null),
  whiten_rewards: z.boolean().default(false),
  kl_coef: z.number().min(0).default(0.05),
  kl_estimator: z.enum(['k1', 'k3']).default('k1'),
  cliprange: z.number().positive().default(0.2),
  vf_coef: z.number().min(0).default(0.1),
  cliprange_value: z.number().positive().default(0.2),
  gamma: z.number().min(0).max(1).default(1.0),
  lam: z.number().min(0).max(1).default(0.95),
  /** Value model (default: the reward model when it is a trained RM, else the policy with a fresh head). */
  value_model_path: z.string().nullable().default(null),
}).strict();

export type RewardConfig = z.infer<typeof RewardConfigSchema>;
export type GrpoConfig = z.infer<typeof GrpoConfigSchema>;
export type PpoConfig = z.infer<typeof PpoConfigSchema>;

export function parseRewardConfig(file: Record<string, unknown>, overrides: Record<string, unknown> = {}, source = 'config'): RewardConfig {
  return validateConfig(RewardConfigSchema, { ...file, ...overrides }, source);
}

export function parseGrpoConfig(file: Record<string, unknown>, overrides: Record<string, unknown> = {}, source = 'config'): GrpoConfig {
  const cfg = validateConfig(GrpoConfigSchema, { ...file, ...overrides }, source);
  if (cfg.per_device_train_batch_size % cfg.num_generations !== 0) {
    throw new Error(`${source}: per_device_train_batch_size (${cfg.per_device_train_batch_size}) must be a multiple of num_generations (${cfg.num_generations}): each prompt's completions form one group`);
  }
  if (cfg.reward_weights && cfg.reward_weights.length !== cfg.reward_funcs.length) {
    throw new Error(`${source}: reward_weights has ${cfg.reward_weights.length} entries for ${cfg.reward_funcs.length} reward_funcs`);
  }
  if (cfg.importance_sampling_level === 'sequence' && !['grpo', 'sapo'].includes(cfg.loss_type)) {
    throw new Error(`${source}: importance_sampling_level "sequence" works with loss_type grpo or sapo, not ${cfg.loss_type}`);
  }
  return cfg;
}

export function parsePpoConfig(file: Record<string, unknown>, overrides: Record<string, unknown> = {}, source = 'config'): PpoConfig {
  const cfg = validateConfig(PpoConfigSchema, { ...file, ...overrides }, source);
  if (cfg.reward_weights && cfg.reward_weights.length !== cfg.reward_funcs.length) {
    throw new Error(`${source}: reward_weights has ${cfg.reward_weights.length} entries for ${cfg.reward_funcs.length} reward_funcs`);
  }
  return cfg;
}

export const rewardOptionNames = Object.keys(RewardConfigSchema.shape);
export const grpoOptionNames = Object.keys(GrpoConfigSchema.shape);
export const ppoOptionNames = Object.keys(PpoConfigSchema.shape);
