// Training configuration with TRL's names (DPOConfig / SFTConfig / TrainingArguments, and
// ModelConfig's LoRA fields), validated with zod. A YAML or JSON file, overridden by CLI flags.
// An unknown key is an error that suggests the closest valid name.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { editDistance } from '../losses/math.js';
import { lossTypes } from '../losses/index.js';

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

/** Options common to SFT and DPO training. */
const common = {
  learning_rate: z.number().positive(),
  per_device_train_batch_size: positiveInt.default(8),
  per_device_eval_batch_size: positiveInt.default(8),
  gradient_accumulation_steps: positiveInt.default(1),
  num_train_epochs: z.number().positive().default(3),
  max_steps: z.number().int().default(-1),
  max_length: positiveInt.nullable().default(1024),
  lr_scheduler_type: z.enum(['constant', 'linear', 'cosine']).default('linear'),
  warmup_ratio: z.number().min(0).max(1).default(0),
  warmup_steps: nonNegInt.default(0),
  weight_decay: z.number().min(0).default(0),
  adam_beta1: z.number().min(0).lt(1).default(0.9),
  adam_beta2: z.number().min(0).lt(1).default(0.999),
  adam_epsilon: z.number().positive().default(1e-8),
  max_grad_norm: z.number().min(0).default(1),
  logging_steps: positiveInt.default(10),
  eval_steps: nonNegInt.nullable().default(null),
  save_steps: nonNegInt.default(500),
  save_total_limit: positiveInt.nullable().default(null),
  seed: z.number().int().default(42),
  group_by_length: z.boolean().default(false),
  pad_to_multiple_of: positiveInt.nullable().default(null),
  /** Pack each batch's sequences back to back in one row (no padding through the model). */
  padding_free: z.boolean().default(false),
  dataset_format: z.string().nullable().default(null),
  columns: z.record(z.string(), z.string()).nullable().default(null),
  on_bad_row: z.enum(['error', 'skip']).default('error'),
  /** Fraction of the training file held out for evaluation when no eval file is given. */
  eval_split: z.number().min(0).lt(1).default(0),
  use_peft: z.boolean().default(false),
  lora_r: positiveInt.default(16),
  lora_alpha: z.number().positive().default(32),
  lora_dropout: z.number().min(0).lt(1).default(0.05),
  lora_target_modules: z.array(z.string()).nullable().default(null),
  save_dtype: z.enum(['float32', 'bfloat16']).default('float32'),
  num_threads: positiveInt.nullable().default(null),
};

export const DpoConfigSchema = z.object({
  ...common,
  learning_rate: z.number().positive().default(1e-6),
  beta: z.number().positive().default(0.1),
  loss_type: z.union([z.string(), z.array(z.string()).min(1)]).default('sigmoid'),
  loss_weights: z.array(z.number()).nullable().default(null),
  label_smoothing: z.number().min(0).max(0.5).default(0),
  rpo_alpha: z.number().nullable().default(null),
  simpo_gamma: z.number().default(0.5),
  discopop_tau: z.number().positive().default(0.05),
  max_prompt_length: positiveInt.nullable().default(512),
  max_completion_length: positiveInt.nullable().default(null),
  truncation_mode: z.enum(['keep_end', 'keep_start']).default('keep_end'),
  precompute_ref_log_probs: z.boolean().default(false),
  /** Watchdogs: warn or stop on over-optimization and falling chosen log-probs. */
  watchdogs: z.boolean().default(true),
}).strict();

export const SftConfigSchema = z.object({
  ...common,
  learning_rate: z.number().positive().default(2e-5),
}).strict();

/** A validated DPO configuration: every TRL DPOConfig option, defaults filled in. */
export type DpoConfig = z.infer<typeof DpoConfigSchema>;
/** A validated SFT configuration. */
export type SftConfig = z.infer<typeof SftConfigSchema>;
/** DPO options as a caller gives them (TRL's snake_case names; every option optional). */
export type DpoConfigInput = z.input<typeof DpoConfigSchema>;
/** SFT options as a caller gives them (every option optional). */
export type SftConfigInput = z.input<typeof SftConfigSchema>;

/** Reads a YAML or JSON config file into a plain object (no validation yet). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`config ${path}: ${(e as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new Error(`config ${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  if (obj === null || obj === undefined) return {};
  if (typeof obj !== 'object' || Array.isArray(obj)) throw new Error(`config ${path}: the top level must be a mapping of option names to values`);
  return obj as Record<string, unknown>;
}

function closest(name: string, valid: readonly string[]): string | null {
  let best: string | null = null, bestD = Infinity;
  for (const v of valid) {
    const d = editDistance(name.toLowerCase(), v);
    if (d < bestD) {
      bestD = d;
      best = v;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

function validate<S extends z.ZodObject>(schema: S, raw: Record<string, unknown>, source: string): z.infer<S> {
  const valid = Object.keys(schema.shape);
  const unknown = Object.keys(raw).filter((k) => !valid.includes(k));
  if (unknown.length > 0) {
    const lines = unknown.map((k) => {
      const s = closest(k, valid);
      return `unknown option "${k}"${s ? ` (did you mean "${s}"?)` : ''}`;
    });
    throw new Error(`${source}: ${lines.join('; ')}. Valid options: ${valid.join(', ')}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const msgs = r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new Error(`${source}: ${msgs.join('; ')}`);
  }
  return r.data;
}

/** Validates a DPO config (file values overridden by flags), checking loss names too. */
export function parseDpoConfig(file: Record<string, unknown>, overrides: Record<string, unknown> = {}, source = 'config'): DpoConfig {
  const cfg = validate(DpoConfigSchema, { ...file, ...overrides }, source);
  const names = typeof cfg.loss_type === 'string' ? [cfg.loss_type] : cfg.loss_type;
  for (const n of names) {
    if (!(lossTypes as readonly string[]).includes(n)) {
      const s = closest(n, lossTypes);
      throw new Error(`${source}: loss_type "${n}" is not a loss${s ? ` (did you mean "${s}"?)` : ''}; valid: ${lossTypes.join(', ')}`);
    }
  }
  if (cfg.loss_weights && cfg.loss_weights.length !== names.length) {
    throw new Error(`${source}: loss_weights has ${cfg.loss_weights.length} entries for ${names.length} loss types`);
  }
  return cfg;
}

export function parseSftConfig(file: Record<string, unknown>, overrides: Record<string, unknown> = {}, source = 'config'): SftConfig {
  return validate(SftConfigSchema, { ...file, ...overrides }, source);
}

/** Option names (for CLI help and suggestions). */
export const dpoOptionNames = Object.keys(DpoConfigSchema.shape);
export const sftOptionNames = Object.keys(SftConfigSchema.shape);

/** The options every training config shares and the validator, for the RLHF configs (rl-config.ts). */
export const commonTrainingOptions = common;
export { validate as validateConfig, closest as closestName };
