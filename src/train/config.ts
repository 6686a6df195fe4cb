// Training configuration with TRL's names (DPOConfig / SFTConfig / TrainingArguments, and
// ModelConfig's LoRA fields), validated with zod. A YAML or JSON file, overridden by CLI flags.
// Every TRL v1.9.0 field is either in these schemas with TRL's default and meaning, or handled by
// trl-parity.ts (accepted only at values that mean the same here, else refused with why).
// An unknown key is an error that suggests the closest valid name.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { editDistance } from '../losses/math.js';
import { labelSmoothingLossTypes, lossSpec, lossSpecs, lossTypeNames, lossTypes } from '../losses/index.js';
import { applyTrlPolicy, type TrlConfigName } from './trl-parity.js';

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
  /** Steps, or (transformers 5) a fraction in (0, 1) of the total steps. */
  warmup_steps: z.number().min(0).refine((v) => v < 1 || Number.isInteger(v), 'an integer number of steps, or a fraction in (0, 1)').default(0),
  weight_decay: z.number().min(0).default(0),
  adam_beta1: z.number().min(0).lt(1).default(0.9),
  adam_beta2: z.number().min(0).lt(1).default(0.999),
  adam_epsilon: z.number().positive().default(1e-8),
  max_grad_norm: z.number().min(0).default(1),
  logging_steps: positiveInt.default(10),
  /** TRL: 'steps' evaluates every eval_steps (default logging_steps); 'no' only evaluates when eval_steps is set. */
  eval_strategy: z.enum(['no', 'steps']).default('no'),
  eval_steps: nonNegInt.nullable().default(null),
  /** TRL: 'steps' saves a checkpoint every save_steps; 'no' saves none (the final model is always written). */
  save_strategy: z.enum(['steps', 'no']).default('steps'),
  save_steps: nonNegInt.default(500),
  save_total_limit: positiveInt.nullable().default(null),
  seed: z.number().int().default(42),
  /** TRL data_seed: seeds the data sampler (default: seed). */
  data_seed: z.number().int().nullable().default(null),
  group_by_length: z.boolean().default(false),
  /** transformers 5: 'group_by_length' batches examples of similar length (same as group_by_length: true). */
  train_sampling_strategy: z.enum(['random', 'group_by_length']).default('random'),
  /** TRL's output_dir (--output wins). */
  output_dir: z.string().nullable().default(null),
  /** MoE load-balancing loss weight: no effect, no MoE architecture here (as TRL for dense models). */
  router_aux_loss_coef: z.number().default(0.001),
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
  /** bf16 autocast (transformers' name): matrix products in bfloat16 with float32 accumulation,
   *  everything else float32 (src/tensor/autocast.ts). null or false: float32 throughout. */
  bf16: z.boolean().nullable().default(null),
  /** Recompute each decoder block in backward instead of keeping its activations (TRL's default: on). */
  gradient_checkpointing: z.boolean().default(true),
  /** Frozen linear weights (a separate reference copy, a LoRA base) stored once as bfloat16. */
  frozen_dtype: z.enum(['float32', 'bfloat16']).default('float32'),
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
  /** simpo's NLL weight (TRL CPOConfig; 0 = SimPO as in its paper). */
  cpo_alpha: z.number().min(0).default(1),
  simpo_gamma: z.number().default(0.5),
  discopop_tau: z.number().positive().default(0.05),
  /** LD-DPO: response tokens past the shorter response's length count with weight ld_alpha. */
  ld_alpha: z.number().min(0).max(1).nullable().default(null),
  /** f-DPO: the divergence whose f'(π/π_ref) replaces the log-ratio in the score-based losses. */
  f_divergence_type: z.enum(['reverse_kl', 'forward_kl', 'js_divergence', 'alpha_divergence']).default('reverse_kl'),
  f_alpha_divergence_coef: z.number().default(0.5),
  /** WPO: weight each pair's loss by the policy's length-normalized sequence probabilities. */
  use_weighting: z.boolean().default(false),
  /** TR-DPO: every ref_model_sync_steps steps, π_ref ← α·π_θ + (1 − α)·π_ref. */
  sync_ref_model: z.boolean().default(false),
  ref_model_mixup_alpha: z.number().min(0).max(1).default(0.6),
  ref_model_sync_steps: positiveInt.default(512),
  /** Turn dropout off in policy and reference (here: LoRA dropout), as TRL does by default. */
  disable_dropout: z.boolean().default(true),
  /** Batch size of the reference pass of precompute_ref_log_probs (default per_device_train/eval_batch_size). */
  precompute_ref_batch_size: positiveInt.nullable().default(null),
  /** Extensions from TRL < 1.0 (v1.9.0 has neither): cap the prompt / each response before max_length. */
  max_prompt_length: positiveInt.nullable().default(null),
  max_completion_length: positiveInt.nullable().default(null),
  truncation_mode: z.enum(['keep_start', 'keep_end']).default('keep_start'),
  precompute_ref_log_probs: z.boolean().default(false),
  /** Watchdogs: warn or stop on over-optimization and falling chosen log-probs. */
  watchdogs: z.boolean().default(true),
  /**
   * At every evaluation, sample completions of eval prompts from the policy and measure their
   * fluency and diversity against the reference's own samples (eval/samples/* metrics,
   * eval_generations.jsonl; the watchdogs warn when the samples degrade or collapse).
   */
  sample_checks: z.boolean().default(false),
  /**
   * Compute each pair's shared prompt once (tree packing: the prompt, then the chosen and the
   * rejected branch; padding-free), in the policy and the reference. Same values as computing it
   * twice (TRL); false: padded rows, or padding_free's packing.
   */
  share_prompt: z.boolean().default(true),
}).strict();

export const SftConfigSchema = z.object({
  ...common,
  learning_rate: z.number().positive().default(2e-5),
  /** Prompt-completion data: null/true trains the completion only, false the prompt too (TRL). */
  completion_only_loss: z.boolean().nullable().default(null),
  /** Messages data: false (TRL's default) trains every token, true only the assistant turns. */
  assistant_only_loss: z.boolean().default(false),
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

/** Validates a raw config against a schema; with `trl`, TRL v1.9.0 fields outside the schema go through trl-parity.ts. */
function validate<S extends z.ZodObject>(schema: S, given: Record<string, unknown>, source: string, trl?: TrlConfigName): z.infer<S> {
  const valid = Object.keys(schema.shape);
  const raw = trl ? applyTrlPolicy(trl, given, valid, source) : given;
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
  const cfg = validate(DpoConfigSchema, { ...file, ...overrides }, source, 'DPOConfig');
  const names = typeof cfg.loss_type === 'string' ? [cfg.loss_type] : cfg.loss_type;
  for (const n of names) {
    if (!lossTypeNames.includes(n)) {
      const s = closest(n, lossTypes);
      throw new Error(`${source}: loss_type "${n}" is not a loss${s ? ` (did you mean "${s}"?)` : ''}; valid: ${lossTypes.join(', ')}`);
    }
  }
  // TRL v1.9.0 refuses exo_pair without label smoothing (log ε); see src/losses/index.ts.
  if (names.includes('exo_pair') && cfg.label_smoothing === 0) {
    throw new Error(`${source}: exo_pair needs label_smoothing > 0 (the EXO paper recommends 1e-3)`);
  }
  if (cfg.loss_weights && cfg.loss_weights.length !== names.length) {
    throw new Error(`${source}: loss_weights has ${cfg.loss_weights.length} entries for ${names.length} loss types`);
  }
  // Options that only act together with another one: a value that would change nothing is refused.
  const inert: string[] = [];
  const smoothers = labelSmoothingLossTypes;
  if (cfg.label_smoothing > 0 && !names.includes('sigmoid') && !names.some((n) => smoothers.includes(n))) {
    inert.push(`label_smoothing ${cfg.label_smoothing} acts only with loss_type ${smoothers.join(', ')}`);
  }
  // Loss-specific options (each loss declares its own, src/losses/registry.ts), at their TRL defaults.
  for (const [opt, def] of [['discopop_tau', 0.05], ['simpo_gamma', 0.5], ['cpo_alpha', 1]] as const) {
    if (cfg[opt] === def) continue;
    const users = lossSpecs.filter((s) => s.options?.includes(opt)).map((s) => s.name);
    if (!names.some((n) => (users as readonly string[]).includes(lossSpec(n).name))) inert.push(`${opt} acts only with loss_type ${users.join(', ')}`);
  }
  if (cfg.f_alpha_divergence_coef !== 0.5 && cfg.f_divergence_type !== 'alpha_divergence') {
    inert.push('f_alpha_divergence_coef acts only with f_divergence_type alpha_divergence');
  }
  if ((cfg.ref_model_mixup_alpha !== 0.6 || cfg.ref_model_sync_steps !== 512) && !cfg.sync_ref_model) {
    inert.push('ref_model_mixup_alpha and ref_model_sync_steps act only with sync_ref_model: true');
  }
  if (cfg.precompute_ref_batch_size !== null && !cfg.precompute_ref_log_probs) {
    inert.push('precompute_ref_batch_size acts only with precompute_ref_log_probs: true');
  }
  if (inert.length > 0) throw new Error(`${source}: ${inert.join('; ')} (as set, it would change nothing)`);
  if (cfg.label_smoothing > 0 && names.includes('sigmoid')) {
    throw new Error(
      `${source}: label_smoothing ${cfg.label_smoothing} with loss_type sigmoid: TRL v1.9.0's sigmoid loss has no label smoothing ` +
      '(conservative DPO was removed in TRL 1.0); for noisy labels use loss_type robust (0 ≤ label_smoothing < 0.5)',
    );
  }
  if (cfg.use_weighting && names.some((n) => lossSpec(n).rankIndexed)) {
    throw new Error(`${source}: use_weighting with loss_type aot/aot_unpaired: their losses are indexed by sorted rank, not by pair, so pair weights do not apply (TRL refuses this too)`);
  }
  // The reference-free losses on per-token averages (simpo, orpo; sft is only the NLL term, which either leaves alone).
  const refFree = names.filter((n) => lossSpec(n).referenceFree === true && lossSpec(n).perToken !== undefined);
  if (refFree.length > 0 && (cfg.f_divergence_type !== 'reverse_kl' || cfg.ld_alpha !== null)) {
    throw new Error(
      `${source}: f_divergence_type/ld_alpha with loss_type ${refFree.join(', ')}: these extensions are reference-free, while f-DPO ` +
      'transforms log π/π_ref and LD-DPO weights both models\' log-probs; use a reference-based loss_type',
    );
  }
  if (cfg.sync_ref_model && cfg.precompute_ref_log_probs) {
    throw new Error(
      `${source}: sync_ref_model with precompute_ref_log_probs: precomputed log-probs assume a fixed reference, but TR-DPO ` +
      'updates it during training (TRL refuses this too); set one of them to false',
    );
  }
  if (cfg.sync_ref_model && cfg.use_peft) {
    throw new Error(
      `${source}: sync_ref_model with use_peft: the reference is the base model with adapters off, so there is no separate ` +
      'reference to move toward the policy (TRL refuses this too); train without use_peft to use TR-DPO',
    );
  }
  return cfg;
}

export function parseSftConfig(file: Record<string, unknown>, overrides: Record<string, unknown> = {}, source = 'config'): SftConfig {
  return validate(SftConfigSchema, { ...file, ...overrides }, source, 'SFTConfig');
}

/** Option names (for CLI help and suggestions). */
export const dpoOptionNames = Object.keys(DpoConfigSchema.shape);
export const sftOptionNames = Object.keys(SftConfigSchema.shape);

/** The options every training config shares and the validator, for the RLHF configs (rl-config.ts). */
export const commonTrainingOptions = common;
export { validate as validateConfig, closest as closestName };
