// The RLHF side's options → TRL v1.9.0 configs, option by option, as trl-translate.ts does for
// DPO/SFT: `dpo rm` → RewardConfig, `dpo grpo` → GRPOConfig, `dpo rloo` → RLOOConfig, `dpo ppo` →
// the experimental PPOConfig (trl.experimental.ppo). Every option of our schemas has exactly one
// rule (the Record types make a new option without a rule a compile error): it writes config keys,
// hands the option to another part of the job (data export, train.py, PEFT config), or refuses
// with the option's name.

import type { GrpoConfig, PpoConfig, RewardConfig } from './rl-config.js';
import { COMMON_RULES, translateConfig, TRL_VERSION, type Translation, type TranslationContext } from './trl-translate.js';

/** Facts of an RL export beyond the options. */
export interface RlTranslationContext extends TranslationContext {
  /** Reward model: pairs max_length cut (ours truncates; TRL's RewardTrainer drops them). */
  lengthTruncated?: number;
  /** Reward functions that cannot go to TRL, with the reason (refused under reward_funcs). */
  rewardRefusals?: string[];
  /** How the reward functions went (for the note). */
  rewardDetail?: string;
  /** PPO: the value model's source (for the note), or why it cannot go. */
  valueDetail?: string;
  valueRefusal?: string | undefined;
  /** PPO: prompts per update (per_device_train_batch_size × gradient_accumulation_steps × num_mini_batches). */
  ppoBatch?: number;
}

type Rule<C> = (value: never, cfg: C, ctx: RlTranslationContext, api: { set(key: string, value: unknown, detail?: string): void; handledBy(to: string, detail?: string): void; refuse(reason: string): void }) => void;

const same: Rule<object> = (value: unknown, _c, _x, api) => api.set('', value);
const notUsed = (detail: string): Rule<object> => (_v, _c, _x, api) => api.handledBy('not used', detail);
/** An option the target class lacks: fine at its default (with the reason), refused otherwise. */
const onlyDefault = (def: unknown, why: string): Rule<object> => (v: unknown, _c, _x, api) =>
  (JSON.stringify(v) === JSON.stringify(def) ? api.handledBy('not used', `${JSON.stringify(def)}: ${why}`) : api.refuse(why));

/** max_prompt_length: ours cuts prompts; TRL v1.9.0 has no such option for these trainers. */
const promptLength = (cls: string): Rule<object> => (v: unknown, _c, ctx, api) => {
  if (ctx.promptTruncated > 0) {
    return api.refuse(`cuts ${ctx.promptTruncated} prompt${ctx.promptTruncated === 1 ? '' : 's'} of this data (${String(v)} tokens); TRL v${TRL_VERSION}'s ${cls} has no max_prompt_length. Raise or unset it, or shorten the prompts`);
  }
  api.handledBy('not needed', v === null ? 'null' : `no prompt of the exported data exceeds ${String(v)} tokens`);
};

const rewardFuncs: Rule<object> = (_v, _c, ctx, api) => {
  if (ctx.rewardRefusals && ctx.rewardRefusals.length) return api.refuse(ctx.rewardRefusals.join('; '));
  api.handledBy('train.py reward_funcs', ctx.rewardDetail);
};

// ---------------------------------------------------------------- RewardConfig

export const REWARD_RULES: { [K in keyof RewardConfig]-?: Rule<RewardConfig> } = {
  ...(COMMON_RULES as unknown as { [K in keyof RewardConfig]-?: Rule<RewardConfig> }),
  max_length: (v: number | null, _c, ctx, api) => {
    const n = ctx.lengthTruncated ?? 0;
    if (n > 0) return api.refuse(`cuts ${n} pair${n === 1 ? '' : 's'} of this data (${v} tokens); TRL v${TRL_VERSION}'s RewardTrainer drops pairs longer than max_length instead of truncating them. Raise it or shorten the pairs`);
    api.set('', v);
  },
  truncation_mode: (v: string, _c, ctx, api) => api.handledBy('not needed', `${v}: no pair of the exported data is cut (TRL's RewardTrainer has no truncation_mode)`),
  max_prompt_length: promptLength('RewardConfig'),
  center_rewards_coefficient: same,
  margin_column: (v: string | null, _c, _x, api) => api.handledBy('data export', v === null ? 'no margins' : `the "${v}" column written as TRL's "margin" column when the data has it`),
  router_aux_loss_coef: notUsed('RewardConfig has no MoE load-balancing loss; no MoE architecture here'),
  padding_free: onlyDefault(false, `TRL v${TRL_VERSION}'s RewardConfig has no padding_free`),
};

// ---------------------------------------------------------------- GRPOConfig / RLOOConfig

const onlineCommon = {
  max_length: notUsed('the on-line trainers read max_prompt_length and the completion length'),
  padding_free: onlyDefault(false, `TRL v${TRL_VERSION}'s on-line trainers have no padding_free`),
  max_prompt_length: promptLength('config'),
  reward_funcs: rewardFuncs,
  prompt_column: (v: string, _c: unknown, _x: unknown, api: { handledBy(to: string, d?: string): void }) => api.handledBy('data export', `the "${v}" column written as TRL's "prompt" column`),
};

/** Options of GrpoConfigSchema that only GRPO (not RLOO) reads: under `dpo rloo`, fine at their defaults only. */
const grpoOnly = (name: string, rule: Rule<GrpoConfig>, def: unknown): Rule<GrpoConfig> => (v: never, cfg, ctx, api) => {
  if (!cfg.rloo) return rule(v, cfg, ctx, api);
  if (JSON.stringify(v) === JSON.stringify(def)) return api.handledBy('not used', 'a GRPO option; dpo rloo does not read it');
  api.refuse(`${name} is a GRPO option that dpo rloo does not read; TRL's RLOOConfig has no equivalent`);
};

export const GRPO_RULES: { [K in keyof GrpoConfig]-?: Rule<GrpoConfig> } = {
  ...(COMMON_RULES as unknown as { [K in keyof GrpoConfig]-?: Rule<GrpoConfig> }),
  ...onlineCommon,
  temperature: same,
  top_p: same,
  top_k: same,
  reward_weights: same,
  max_steps: same,
  num_train_epochs: same,
  per_device_train_batch_size: (v: number, _c, _x, api) => api.set('', v, 'completions per device and micro-batch, as ours (a multiple of num_generations)'),
  num_generations: same,
  max_completion_length: same,
  beta: same,
  num_iterations: same,
  epsilon: same,
  epsilon_high: same,
  delta: grpoOnly('delta', same, null),
  importance_sampling_level: grpoOnly('importance_sampling_level', same, 'token'),
  loss_type: grpoOnly('loss_type', same, 'dapo'),
  scale_rewards: grpoOnly('scale_rewards', (v: boolean | string, _c, _x, api) => api.set('', v === true ? 'group' : v === false ? 'none' : v), 'group'),
  multi_objective_aggregation: grpoOnly('multi_objective_aggregation', same, 'sum_then_normalize'),
  mask_truncated_completions: same,
  sapo_temperature_pos: grpoOnly('sapo_temperature_pos', same, 1.0),
  sapo_temperature_neg: grpoOnly('sapo_temperature_neg', same, 1.05),
  rloo: (v: boolean, _c, _x, api) => api.handledBy(v ? 'RLOOConfig / RLOOTrainer' : 'GRPOConfig / GRPOTrainer', 'the trainer of the job'),
  normalize_advantages: (v: boolean, cfg, _x, api) => {
    if (cfg.rloo) return api.set('', v);
    if (v) return api.refuse('an RLOO option (dpo rloo); dpo grpo does not read it');
    api.handledBy('not used', 'an RLOO option');
  },
};

// ---------------------------------------------------------------- PPOConfig (trl.experimental.ppo)

export const PPO_RULES: { [K in keyof PpoConfig]-?: Rule<PpoConfig> } = {
  ...(COMMON_RULES as unknown as { [K in keyof PpoConfig]-?: Rule<PpoConfig> }),
  ...onlineCommon,
  max_prompt_length: (v: number | null, _c, ctx, api) => api.handledBy('data export', v === null
    ? 'null'
    : `prompts written as our token ids (TRL's PPO input_ids column), ${ctx.promptTruncated} of them cut to their last ${v} tokens as dpo ppo does`),
  router_aux_loss_coef: notUsed('PPOConfig has no MoE load-balancing loss; no MoE architecture here'),
  pad_to_multiple_of: onlyDefault(null, `TRL v${TRL_VERSION}'s PPOConfig has no pad_to_multiple_of`),
  use_peft: (v: boolean, _c, _x, api) => (v
    ? api.refuse('dpo ppo with use_peft puts the value head on the policy\'s own body (one base in memory); TRL\'s PPOTrainer keeps a separate value model, so the run would differ')
    : api.handledBy('not used', 'full fine-tuning')),
  temperature: same,
  top_p: onlyDefault(1, 'dpo ppo samples with temperature only (as TRL\'s PPOTrainer); top_p is not read'),
  top_k: onlyDefault(0, 'dpo ppo samples with temperature only (as TRL\'s PPOTrainer); top_k is not read'),
  reward_weights: (v: number[] | null, _c, _x, api) => (v === null || (v.length === 1 && v[0] === 1)
    ? api.handledBy('not used', 'one reward model, weight 1')
    : api.refuse('TRL\'s PPOTrainer scores with one reward model, unweighted')),
  max_steps: (v: number, _c, ctx, api) => {
    if (v <= 0) return api.handledBy('PPOConfig.num_train_epochs', 'total_episodes defaults to num_train_epochs × the prompts');
    api.set('total_episodes', v * (ctx.ppoBatch ?? 1), `max_steps × ${ctx.ppoBatch} prompts per update (on one process; TRL counts episodes over all processes)`);
  },
  num_train_epochs: (v: number, cfg, _x, api) => (cfg.max_steps > 0 ? api.handledBy('not used', 'max_steps is set (total_episodes)') : api.set('', v)),
  per_device_train_batch_size: same,
  num_mini_batches: same,
  num_ppo_epochs: same,
  response_length: same,
  stop_token: same,
  stop_token_id: same,
  missing_eos_penalty: same,
  whiten_rewards: same,
  kl_coef: same,
  kl_estimator: same,
  cliprange: same,
  vf_coef: same,
  cliprange_value: same,
  gamma: same,
  lam: same,
  value_model_path: (_v, _c, ctx, api) => (ctx.valueRefusal ? api.refuse(ctx.valueRefusal) : api.handledBy('train.py value model', ctx.valueDetail)),
};

export function translateRewardConfig(cfg: RewardConfig, ctx: RlTranslationContext): Translation {
  const t = translateConfig(REWARD_RULES as never, cfg, ctx, 'RewardConfig');
  // Our models run without dropout (TRL's RewardConfig default too).
  t.config.disable_dropout = true;
  t.notes.push({ option: '(dropout)', value: false, to: 'RewardConfig.disable_dropout', detail: 'dpo rm trains without dropout' });
  return t;
}

export function translateGrpoConfig(cfg: GrpoConfig, ctx: RlTranslationContext): Translation {
  const cls = cfg.rloo ? 'RLOOConfig' : 'GRPOConfig';
  const t = translateConfig(GRPO_RULES as never, cfg, ctx, cls);
  // dpo grpo/rloo sample and train without dropout; TRL's default (disable_dropout false) keeps it.
  t.config.disable_dropout = true;
  t.notes.push({ option: '(dropout)', value: false, to: `${cls}.disable_dropout`, detail: `dpo ${cfg.rloo ? 'rloo' : 'grpo'} runs without dropout` });
  return t;
}

export function translatePpoConfig(cfg: PpoConfig, ctx: RlTranslationContext): Translation {
  // TRL's PPOTrainer disables dropout in every model itself, as ours.
  return translateConfig(PPO_RULES as never, cfg, ctx, 'PPOConfig');
}
