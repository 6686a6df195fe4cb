// Our training options → a TRL DPOConfig for the pinned TRL version (v1.9.0), option by option.
// Every option of DpoConfigSchema has exactly one rule here (the Record type makes a new option
// without a rule a compile error; test/trl-export.test.ts checks the schema's keys at run time
// too). A rule either writes DPOConfig keys, hands the option to another part of the job (data
// export, PEFT config, import), or refuses with the option's name: nothing is silently dropped.

import type { DpoConfig, SftConfig } from './config.js';
import { lossSpec, lossTypeNames } from '../losses/index.js';

/** The TRL release the exported job is written for. */
export const TRL_VERSION = '1.9.0';

/** What the rules need to know beyond the options: facts of the exported data. */
export interface TranslationContext {
  /** Pairs whose prompt max_prompt_length cut (our tokenization). */
  promptTruncated: number;
  /** Pairs with a response max_completion_length cut (our tokenization). */
  completionTruncated: number;
  /** Whether the job has an eval split. */
  hasEval: boolean;
  /** Numeric dropout settings of the model's config.json (name → value), e.g. GPT-2's resid_pdrop. */
  modelDropout: Record<string, number>;
  /** Which TRL trainer the job is for (default dpo). */
  trainer?: 'dpo' | 'sft';
  /** SFT: whether the data has conversations, and whether the chat template marks assistant turns ({% generation %}). */
  chatRows?: boolean;
  generationTags?: boolean;
}

/** How one option was carried over, for the job's translation table. */
export interface TranslationNote {
  option: string;
  value: unknown;
  /** Where it went: "DPOConfig.beta", "data export", "peft_config.json", "import-run", ... */
  to: string;
  detail?: string;
}

export class RefusedOptions extends Error {
  constructor(readonly refusals: { option: string; reason: string }[], className = 'DPOConfig') {
    super(
      `export-job: ${refusals.length} option${refusals.length === 1 ? '' : 's'} cannot be translated to TRL v${TRL_VERSION}'s ${className} ` +
      `(nothing was written):\n${refusals.map((r) => `  ${r.option}: ${r.reason}`).join('\n')}`,
    );
    this.name = 'RefusedOptions';
  }
}

interface RuleApi {
  /** Sets a DPOConfig key. */
  set(key: string, value: unknown, detail?: string): void;
  /** The option is carried by another part of the job. */
  handledBy(to: string, detail?: string): void;
  refuse(reason: string): void;
}

type Rule<C = DpoConfig> = (value: never, cfg: C, ctx: TranslationContext, api: RuleApi) => void;

/** The options SFT and DPO share. */
export type CommonConfig = Pick<SftConfig, keyof SftConfig & keyof DpoConfig>;

const same: Rule<CommonConfig> = (value: unknown, _cfg, _ctx, api) => api.set('', value);
const byData = (detail: string): Rule<CommonConfig> => (_v, _c, _x, api) => api.handledBy('data export', detail);
const byPeft = (field: string): Rule<CommonConfig> => (_v, cfg, _x, api) =>
  cfg.use_peft ? api.handledBy(`peft_config.json ${field}`) : api.handledBy('not used', 'use_peft is false');

/** Rules of the options every trainer has (SFTConfig's and DPOConfig's TrainingArguments part). */
export const COMMON_RULES: { [K in keyof CommonConfig]-?: Rule<CommonConfig> } = {
  learning_rate: same,
  per_device_train_batch_size: same,
  per_device_eval_batch_size: same,
  gradient_accumulation_steps: same,
  num_train_epochs: same,
  max_steps: same,
  // Each row (prompt + response) cut at max_length by truncation_mode, as TRL v1.9.0 (DPO: its own option; SFT: keep_start, TRL's default).
  max_length: same,
  lr_scheduler_type: (v: CommonConfig['lr_scheduler_type'], cfg, _x, api) => {
    // Ours warms up with any schedule; Hugging Face's "constant" never does.
    if (v === 'constant' && (cfg.warmup_steps > 0 || cfg.warmup_ratio > 0)) api.set('', 'constant_with_warmup', 'ours warms up before a constant rate');
    else api.set('', v);
  },
  // transformers 5.x has no warmup_ratio: warmup_steps takes a float in [0, 1) as the ratio (ceil(ratio · total), as ours).
  warmup_ratio: (v: number, cfg, _x, api) => {
    if (cfg.warmup_steps > 0) return api.handledBy('not used', 'warmup_steps is set and takes precedence (as in dpo-ts)');
    if (v >= 1) return api.refuse('1 (all steps) has no TrainingArguments form: transformers 5.x reads warmup_steps < 1 as a ratio; set warmup_steps to the step count');
    api.set('warmup_steps', v, 'transformers 5.x: a warmup_steps below 1 is the ratio of total steps');
  },
  warmup_steps: (v: number, cfg, _x, api) => (v > 0 || cfg.warmup_ratio === 0 ? api.set('', v) : api.handledBy('DPOConfig.warmup_steps', 'the ratio (see warmup_ratio)')),
  weight_decay: same,
  adam_beta1: same,
  adam_beta2: same,
  adam_epsilon: same,
  max_grad_norm: same,
  logging_steps: same,
  // Ours: 'steps' evaluates every eval_steps (default logging_steps, as TRL), and so does eval_steps alone.
  eval_strategy: (v: string, cfg, ctx, api) => {
    if (!ctx.hasEval) return api.handledBy('not used', 'no eval data');
    api.set('', v === 'steps' || (cfg.eval_steps ?? 0) > 0 ? 'steps' : 'no', 'and train.py evaluates once more at the end, as dpo-ts');
  },
  eval_steps: (v: number | null, cfg, ctx, api) => {
    if (!ctx.hasEval) return api.handledBy('not used', 'no eval data');
    if (v !== null && v > 0) api.set('', v);
    else if (cfg.eval_strategy === 'steps') api.handledBy('not needed', 'TRL also defaults eval_steps to logging_steps');
    else {
      api.handledBy('not used', 'evaluation at the end only: train.py calls trainer.evaluate() after training');
    }
  },
  save_strategy: (v: string, cfg, _x, api) => api.set('', v === 'no' || cfg.save_steps === 0 ? 'no' : 'steps'),
  save_steps: (v: number, cfg, _x, api) => {
    if (cfg.save_strategy === 'no') return api.handledBy('not used', 'save_strategy no');
    if (v > 0) {
      api.set('', v);
    } else api.handledBy('DPOConfig.save_strategy', 'save_steps 0: no checkpoints');
  },
  save_total_limit: same,
  seed: same,
  group_by_length: (_v, _c, _x, api) => api.handledBy('train_sampling_strategy', 'transformers 5.x names the sampler'),
  train_sampling_strategy: (v: string, cfg, _x, api) => api.set('', v === 'group_by_length' || cfg.group_by_length ? 'group_by_length' : 'random'),
  data_seed: same,
  router_aux_loss_coef: same,
  output_dir: (_v, _c, _x, api) => api.handledBy('train.py --output-dir', 'the job writes to output/ in its folder unless told otherwise'),
  pad_to_multiple_of: same,
  padding_free: (v: boolean, _c, _x, api) => {
    api.set('', v);
    if (v) api.set('model_init_kwargs.attn_implementation', 'flash_attention_2', 'TRL\'s padding_free needs FlashAttention (ours equals the padded computation)');
  },
  dataset_format: byData('rows normalized to TRL\'s standard or conversational columns'),
  columns: byData('source columns renamed to prompt/chosen/rejected'),
  on_bad_row: byData('bad rows refused or left out before writing'),
  eval_split: byData('the held-out rows written as data/eval.jsonl'),
  use_peft: (v: boolean, _c, _x, api) => (v ? api.handledBy('peft_config.json', 'train.py passes LoraConfig to DPOTrainer') : api.handledBy('not used', 'full fine-tuning')),
  lora_r: byPeft('r'),
  lora_alpha: byPeft('lora_alpha'),
  lora_dropout: (v: number, cfg, ctx, api) => {
    if (!cfg.use_peft) return api.handledBy('not used', 'use_peft is false');
    api.handledBy('peft_config.json lora_dropout', ctx.trainer === 'sft' ? 'SFTTrainer keeps it on, as dpo sft' : 'on only with disable_dropout false, in TRL as in dpo-ts');
  },
  lora_target_modules: byPeft('target_modules'),
  save_dtype: (v: string, _c, _x, api) => api.handledBy('import-run', `dpo import-run writes the model as ${v}`),
  num_threads: (_v, _c, _x, api) => api.handledBy('not used', 'CPU kernel threads of dpo-ts; no meaning on GPUs'),
  gradient_checkpointing: same,
  frozen_dtype: (_v, _c, _x, api) => api.handledBy('not used', 'dpo-ts memory option; on GPUs the job loads models as TRL does'),
  bf16: (_v, _c, _x, api) => api.handledBy('DPOConfig.bf16', 'the job trains in bf16 mixed precision on the GPU whatever dpo-ts used (TRL\'s default)'),
};

export const DPO_RULES: { [K in keyof DpoConfig]-?: Rule } = {
  ...COMMON_RULES,
  beta: same,
  loss_type: (v: string | string[], cfg, _x, api) => {
    const names = typeof v === 'string' ? [v] : v;
    const out: string[] = [];
    for (const n of names) {
      // Our loss → TRL v1.9.0's loss_type with the same formula (declared beside each loss; see src/losses/registry.ts).
      const m = lossTypeNames.includes(n) ? lossSpec(n).trl : undefined;
      if (m === undefined) return api.refuse(`loss "${n}" has no TRL v${TRL_VERSION} DPOTrainer equivalent`);
      if (typeof m !== 'string') return api.refuse(`loss "${n}": ${m.refuse}`);
      out.push(m);
    }
    if (names.includes('sigmoid') && cfg.label_smoothing > 0) {
      return api.refuse('sigmoid with label_smoothing (cDPO): TRL v1.9.0\'s sigmoid loss has no label smoothing');
    }
    if (cfg.rpo_alpha !== null && cfg.rpo_alpha !== undefined) {
      // RPO = the loss + α · token-mean NLL on chosen = TRL v1.9.0's "sft" loss with weight α.
      out.push('sft');
      api.set('loss_weights', [...(cfg.loss_weights ?? names.map(() => 1)), cfg.rpo_alpha], 'rpo_alpha as the weight of an added "sft" loss');
    }
    api.set('', out);
  },
  loss_weights: (v: number[] | null, cfg, _x, api) => {
    if (cfg.rpo_alpha !== null && cfg.rpo_alpha !== undefined) return api.handledBy('DPOConfig.loss_weights', 'with rpo_alpha appended (see loss_type)');
    api.set('', v);
  },
  label_smoothing: (v: number, cfg, _x, api) => {
    const names = typeof cfg.loss_type === 'string' ? [cfg.loss_type] : cfg.loss_type;
    if (names.includes('exo_pair') && v === 0) {
      // Ours replaces ε = 0 by 1e-3 for exo_pair (TRL v0.x did); v1.9.0 refuses 0.
      if (names.some((n) => n !== 'exo_pair' && lossTypeNames.includes(n) && lossSpec(n).labelSmoothing)) return api.refuse('exo_pair runs with ε = 1e-3 when label_smoothing is 0, but the other losses in the list use ε = 0; set label_smoothing explicitly');
      return api.set('', 1e-3, 'exo_pair with label_smoothing 0 runs with 1e-3 in dpo-ts');
    }
    api.set('', v);
  },
  rpo_alpha: (v: number | null, _c, _x, api) => (v === null ? api.handledBy('not used', 'null') : api.handledBy('DPOConfig.loss_type', 'an added "sft" loss weighted rpo_alpha')),
  cpo_alpha: (_v, cfg, _x, api) => {
    const names = typeof cfg.loss_type === 'string' ? [cfg.loss_type] : cfg.loss_type;
    if (names.includes('simpo')) api.refuse('only used by the simpo loss (refused under loss_type)');
    else api.handledBy('not used', 'only the simpo loss reads it');
  },
  sample_checks: (v: boolean, _c, _x, api) => (v
    ? api.refuse(`a dpo-ts extension (fluency checks of samples at every evaluation); TRL v${TRL_VERSION}'s DPOTrainer has no equivalent: set it to false for the exported job`)
    : api.handledBy('not used', 'off')),
  share_prompt: (_v, _c, _x, api) => api.handledBy('not used', `a dpo-ts speed-up with the same values: TRL v${TRL_VERSION} runs each pair's prompt through the model twice`),
  simpo_gamma: (_v, cfg, _x, api) => {
    const names = typeof cfg.loss_type === 'string' ? [cfg.loss_type] : cfg.loss_type;
    if (names.includes('simpo')) api.refuse('only used by the simpo loss (refused under loss_type)');
    else api.handledBy('not used', 'only the simpo loss reads it');
  },
  discopop_tau: same,
  ld_alpha: same,
  f_divergence_type: same,
  f_alpha_divergence_coef: same,
  use_weighting: same,
  sync_ref_model: same,
  ref_model_mixup_alpha: same,
  ref_model_sync_steps: same,
  precompute_ref_batch_size: same,
  disable_dropout: (v: boolean, _c, ctx, api) => {
    api.set('', v);
    // With it off TRL also runs the model's own dropout (GPT-2's resid_pdrop...); ours has none.
    if (!v) for (const [k, d] of Object.entries(ctx.modelDropout)) if (d !== 0) api.set(`model_init_kwargs.${k}`, 0, 'our models run without dropout');
  },
  max_prompt_length: (v: number | null, _c, ctx, api) => {
    if (ctx.promptTruncated > 0) {
      return api.refuse(`cuts ${ctx.promptTruncated} prompt${ctx.promptTruncated === 1 ? '' : 's'} of this data (${v} tokens); TRL v${TRL_VERSION} has no max_prompt_length (only max_length on prompt+response). Raise or unset it, or shorten the prompts`);
    }
    api.handledBy('not needed', `no prompt of the exported data exceeds ${v} tokens`);
  },
  max_completion_length: (v: number | null, _c, ctx, api) => {
    if (ctx.completionTruncated > 0) {
      return api.refuse(`cuts ${ctx.completionTruncated} response${ctx.completionTruncated === 1 ? '' : 's'} of this data (${v} tokens); TRL v${TRL_VERSION} has no max_completion_length`);
    }
    api.handledBy('not needed', v === null ? 'null' : `no response of the exported data exceeds ${v} tokens`);
  },
  truncation_mode: same,
  precompute_ref_log_probs: same,
  watchdogs: (v: boolean, _c, _x, api) => api.handledBy(v ? 'import-run' : 'not used', v ? 'dpo import-run runs the watchdogs on the imported metrics' : 'false'),
};

/** Keys set below a dotted path ("model_init_kwargs.attn_implementation") go into nested mappings. */
function setPath(out: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let o = out;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== 'object' || o[p] === null) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts.at(-1)!] = value;
}

export interface Translation {
  /** TRL config keyword arguments (without output_dir). */
  config: Record<string, unknown>;
  notes: TranslationNote[];
}
export type DpoTranslation = Translation;

/**
 * Translates validated options with a rule table. Throws RefusedOptions listing every option that
 * cannot be carried over (all of them at once).
 */
export function translateConfig<C extends object>(rules: { [K in keyof C]-?: Rule<C> }, cfg: C, ctx: TranslationContext, className: string): Translation {
  const config: Record<string, unknown> = {};
  const notes: TranslationNote[] = [];
  const refusals: { option: string; reason: string }[] = [];
  for (const option of Object.keys(cfg) as (keyof C & string)[]) {
    const rule = rules[option] as Rule<C> | undefined;
    const value = cfg[option];
    if (rule === undefined) {
      refusals.push({ option, reason: 'no translation to TRL is defined for this option' });
      continue;
    }
    rule(value as never, cfg, ctx, {
      set(key, v, detail) {
        const k = key === '' ? option : key;
        setPath(config, k, v);
        notes.push({ option, value, to: `${className}.${k}`, ...(detail ? { detail } : {}) });
      },
      handledBy(to, detail) {
        notes.push({ option, value, to, ...(detail ? { detail } : {}) });
      },
      refuse(reason) {
        refusals.push({ option, reason });
      },
    });
  }
  if (refusals.length > 0) throw new RefusedOptions(refusals, className);
  return { config, notes };
}

export function translateDpoConfig(cfg: DpoConfig, ctx: TranslationContext): Translation {
  return translateConfig(DPO_RULES, cfg, ctx, 'DPOConfig');
}

/** SFTConfig: the shared rules and the SFT loss masks (the same names and meaning in dpo sft). */
export const SFT_RULES: { [K in keyof SftConfig]-?: Rule<SftConfig> } = {
  ...COMMON_RULES,
  completion_only_loss: same,
  assistant_only_loss: (v: boolean, _c, ctx, api) => {
    if (v && ctx.chatRows && !ctx.generationTags) {
      return api.refuse('TRL computes assistant-only masks from {% generation %} markers in the chat template, and this template has none');
    }
    api.set('', v);
  },
};

export function translateSftConfig(cfg: SftConfig, ctx: TranslationContext): Translation {
  return translateConfig(SFT_RULES, cfg, ctx, 'SFTConfig');
}
