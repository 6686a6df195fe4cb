// What every field of TRL v1.9.0's DPOConfig and SFTConfig (with transformers' TrainingArguments
// under them) means here: supported with TRL's default and meaning, accepted only at values that
// mean the same on this CPU trainer, or refused with why and what to use instead. Nothing is
// accepted and ignored. The field list itself is generated from TRL's sources
// (trl-fields.generated.ts); the README table is rendered from this file and the config schemas
// (renderTrlTable, `node scripts/trl-readme.mjs`), and a test fails when either is stale.

import { DPOConfig_FIELDS, SFTConfig_FIELDS, TRL_VERSION, TRANSFORMERS_VERSION, type TrlField } from './trl-fields.generated.js';

export { TRL_VERSION, TRANSFORMERS_VERSION };
export type TrlConfigName = 'DPOConfig' | 'SFTConfig';

export type FieldPolicy =
  /** In our schema, with TRL's default and meaning (note: what to know). */
  | { kind: 'supported'; note?: string }
  /** Accepted only at these values (TRL's default when `accept` is 'default'), which mean the same here. */
  | { kind: 'values'; accept: readonly unknown[] | 'default'; why: string }
  /** Refused at any value. */
  | { kind: 'refused'; why: string };

const supported = (note?: string): FieldPolicy => ({ kind: 'supported', ...(note ? { note } : {}) });
const defaultOnly = (why: string): FieldPolicy => ({ kind: 'values', accept: 'default', why });
const only = (accept: readonly unknown[], why: string): FieldPolicy => ({ kind: 'values', accept, why });

const ONE_PROCESS = 'dpo-ts trains in one process on the CPU: there is nothing distributed to configure';
const NO_HUB = 'dpo-ts never uploads (no network while training); upload output_dir yourself, e.g. `huggingface-cli upload`';
const NO_GPU = 'there is no GPU path: the kernels compute in float32 on the CPU';
const LOG_FILE = 'metrics go to output_dir/metrics.jsonl (and the progress bar; --quiet hides it)';
const TORCH_ONLY = 'a PyTorch/accelerate mechanism with no counterpart here';
const DATALOADER = 'batches are collated in the training process from tokenized data in memory; there are no data-loader workers';
const EVAL_IS_LOSS = 'evaluation computes the DPO/SFT loss and metrics on the eval data after every eval_steps steps and at the end';

/** Policy of every TRL v1.9.0 field (DPOConfig ∪ SFTConfig); the test checks it covers both lists exactly. */
export const TRL_FIELD_POLICY: Readonly<Record<string, FieldPolicy>> = {
  // ---- TrainingArguments: the run ----
  output_dir: supported('`--output` wins when both are given'),
  per_device_train_batch_size: supported(),
  per_device_eval_batch_size: supported(),
  num_train_epochs: supported(),
  max_steps: supported(),
  learning_rate: supported(),
  lr_scheduler_type: supported('`linear`, `cosine`, `constant`; other schedulers are refused'),
  lr_scheduler_kwargs: defaultOnly('none of the supported schedulers takes extra parameters'),
  warmup_steps: supported('an integer number of steps, or a fraction in (0, 1) of the total steps (transformers 5)'),
  optim: only(['adamw_torch', 'adamw_torch_fused', 'adamw'], 'the optimizer is AdamW (decoupled weight decay, as torch.optim.AdamW); other optimizers are not implemented'),
  optim_args: defaultOnly('the AdamW settings are adam_beta1, adam_beta2, adam_epsilon and weight_decay'),
  optim_target_modules: defaultOnly('GaLore/APOLLO-style optimizers are not implemented'),
  weight_decay: supported(),
  adam_beta1: supported(),
  adam_beta2: supported(),
  adam_epsilon: supported(),
  gradient_accumulation_steps: supported(),
  average_tokens_across_devices: defaultOnly(`${ONE_PROCESS}; there is one device`),
  max_grad_norm: supported(),
  label_smoothing_factor: defaultOnly('the trainers compute their own losses (for DPO use label_smoothing with loss_type robust, exo_pair, aot or aot_unpaired)'),
  bf16: supported('true: bf16 autocast as on a CPU with torch.autocast — linear layers and the LM head multiply in bfloat16 (AVX512_BF16 `vdpbf16ps` where the CPU has it) with float32 accumulation; weights, gradients, AdamW moments, norms, attention, softmax, log-probs and losses stay float32. null (TRL: on where supported) and false: float32 here'),
  fp16: defaultOnly(`${NO_GPU}; fp16 mixed precision is not available`),
  bf16_full_eval: defaultOnly(NO_GPU),
  fp16_full_eval: defaultOnly(NO_GPU),
  tf32: defaultOnly(NO_GPU),
  gradient_checkpointing: supported('each decoder block keeps only its input while training and is recomputed in backward: gradients bit-identical, peak memory down, steps slower (see the README\'s memory section); false keeps every activation'),
  gradient_checkpointing_kwargs: defaultOnly('checkpointing here has no options (always the non-reentrant kind, per decoder block)'),
  torch_compile: defaultOnly(TORCH_ONLY),
  torch_compile_backend: defaultOnly(TORCH_ONLY),
  torch_compile_mode: defaultOnly(TORCH_ONLY),
  use_liger_kernel: defaultOnly(`${TORCH_ONLY}: the native kernels are always used (the LM head already skips prompt and padding rows)`),
  liger_kernel_config: defaultOnly(TORCH_ONLY),
  use_cache: defaultOnly('training forwards never keep a KV cache'),
  neftune_noise_alpha: defaultOnly('NEFTune embedding noise is not implemented'),
  torch_empty_cache_steps: defaultOnly(TORCH_ONLY),
  auto_find_batch_size: defaultOnly('there is no out-of-memory retry loop; choose per_device_train_batch_size and gradient_accumulation_steps'),
  activation_offloading: defaultOnly(`activations already live in CPU memory (${NO_GPU})`),
  // ---- logging ----
  logging_strategy: only(['steps'], 'metrics are logged every logging_steps steps'),
  logging_steps: supported('an integer (fractions of the run are refused)'),
  logging_first_step: defaultOnly('the first record is written at step logging_steps'),
  log_on_each_node: defaultOnly(ONE_PROCESS),
  logging_nan_inf_filter: defaultOnly('a NaN/Inf loss stops the run instead (watchdog), keeping the last good checkpoint'),
  include_num_input_tokens_seen: defaultOnly(`tokens/s is logged with every record; ${LOG_FILE}`),
  log_level: defaultOnly('progress and warnings go to stderr; --quiet silences progress'),
  log_level_replica: defaultOnly(ONE_PROCESS),
  disable_tqdm: defaultOnly('use --quiet to hide the progress bar'),
  report_to: only(['none', [], null], LOG_FILE),
  run_name: defaultOnly(LOG_FILE),
  project: defaultOnly(LOG_FILE),
  trackio_space_id: defaultOnly(LOG_FILE),
  trackio_bucket_id: defaultOnly(LOG_FILE),
  trackio_static_space_id: defaultOnly(LOG_FILE),
  // ---- evaluation ----
  eval_strategy: supported(`'no' or 'steps' ('epoch' is refused); ${EVAL_IS_LOSS}; 'steps' without eval_steps evaluates every logging_steps steps, as TRL`),
  eval_steps: supported('an integer; evaluation also runs when eval_steps is set without eval_strategy (TRL needs eval_strategy: steps)'),
  eval_delay: defaultOnly(EVAL_IS_LOSS),
  prediction_loss_only: defaultOnly(EVAL_IS_LOSS),
  eval_on_start: defaultOnly(EVAL_IS_LOSS),
  eval_do_concat_batches: defaultOnly(EVAL_IS_LOSS),
  eval_use_gather_object: defaultOnly(ONE_PROCESS),
  eval_accumulation_steps: defaultOnly(EVAL_IS_LOSS),
  include_for_metrics: defaultOnly(EVAL_IS_LOSS),
  batch_eval_metrics: defaultOnly(EVAL_IS_LOSS),
  // ---- checkpoints ----
  save_only_model: defaultOnly('checkpoints always hold the optimizer, scheduler, sampler and RNG state, so --resume continues bit-identically'),
  save_strategy: supported("'steps' (a checkpoint every save_steps steps) or 'no' (none; the final model is always saved); 'epoch' and 'best' are refused"),
  save_steps: supported('an integer'),
  save_on_each_node: defaultOnly(ONE_PROCESS),
  save_total_limit: supported(),
  enable_jit_checkpoint: defaultOnly(TORCH_ONLY),
  push_to_hub: defaultOnly(NO_HUB),
  hub_token: defaultOnly(NO_HUB),
  hub_private_repo: defaultOnly(NO_HUB),
  hub_model_id: defaultOnly(NO_HUB),
  hub_strategy: defaultOnly(NO_HUB),
  hub_always_push: defaultOnly(NO_HUB),
  hub_revision: defaultOnly(NO_HUB),
  load_best_model_at_end: defaultOnly('the final model is the last step; pick a checkpoint-N/ by the eval/loss in metrics.jsonl'),
  metric_for_best_model: defaultOnly('load_best_model_at_end is not implemented'),
  greater_is_better: defaultOnly('load_best_model_at_end is not implemented'),
  ignore_data_skip: defaultOnly('--resume restores the sampler position exactly, skipping nothing twice'),
  restore_callback_states_from_checkpoint: defaultOnly('there are no callbacks'),
  resume_from_checkpoint: defaultOnly('use --resume [checkpoint]'),
  // ---- reproducibility and devices ----
  full_determinism: only([false, true], 'runs are always bit-identical for the same seed and thread count, which is what true asks for'),
  seed: supported(),
  data_seed: supported('seeds the batch sampler (shuffling, length grouping); unset: seed'),
  use_cpu: only([false, true], 'everything runs on the CPU either way'),
  accelerator_config: defaultOnly(ONE_PROCESS),
  parallelism_config: defaultOnly(ONE_PROCESS),
  // ---- data loading ----
  dataloader_drop_last: defaultOnly('the last, smaller batch of an epoch is kept, as TRL does by default'),
  dataloader_num_workers: defaultOnly(DATALOADER),
  dataloader_pin_memory: defaultOnly(DATALOADER),
  dataloader_persistent_workers: defaultOnly(DATALOADER),
  dataloader_prefetch_factor: defaultOnly(DATALOADER),
  dataloader_multiprocessing_context: defaultOnly(DATALOADER),
  dataloader_in_order: defaultOnly(DATALOADER),
  remove_unused_columns: defaultOnly('the data readers keep only the columns they use (see `columns`)'),
  label_names: defaultOnly('labels are the response (DPO) or completion/assistant (SFT) tokens'),
  train_sampling_strategy: supported("'random' or 'group_by_length' (pairs of similar length batched together); 'sequential' and 'batch_rebalance' are refused"),
  length_column_name: defaultOnly('lengths come from the tokenized data'),
  // ---- distributed ----
  ddp_find_unused_parameters: defaultOnly(ONE_PROCESS),
  ddp_bucket_cap_mb: defaultOnly(ONE_PROCESS),
  ddp_broadcast_buffers: defaultOnly(ONE_PROCESS),
  ddp_static_graph: defaultOnly(ONE_PROCESS),
  ddp_backend: defaultOnly(ONE_PROCESS),
  ddp_timeout: defaultOnly(ONE_PROCESS),
  fsdp: defaultOnly(ONE_PROCESS),
  fsdp_config: defaultOnly(ONE_PROCESS),
  deepspeed: defaultOnly(ONE_PROCESS),
  local_rank: defaultOnly(ONE_PROCESS),
  debug: defaultOnly(TORCH_ONLY),
  skip_memory_metrics: defaultOnly('peak memory is not logged per step'),
  do_train: defaultOnly('`dpo train` / `dpo sft` train; the flag is for scripts, as in transformers'),
  do_eval: defaultOnly('evaluation runs when eval data is given (see eval_strategy)'),
  do_predict: defaultOnly('there is no prediction pass; use `dpo generate` or `dpo score`'),

  // ---- TRL: model ----
  model_init_kwargs: only([null, { dtype: 'float32' }, { torch_dtype: 'float32' }, { dtype: 'auto' }], `${NO_GPU}: weights load as float32 whatever the checkpoint's dtype`),
  trust_remote_code: defaultOnly('no Python code from a model repository runs here; the architectures are Llama, Mistral, Qwen2 and GPT-2'),
  router_aux_loss_coef: supported('has no effect: no Mixture-of-Experts architecture is implemented (TRL: "for other models it does nothing")'),
  disable_dropout: supported('true turns LoRA dropout off, as TRL; the models here have no other dropout layers'),
  pad_token: defaultOnly("deprecated in TRL; the pad id is the tokenizer's pad token (else EOS)"),
  chat_template_path: defaultOnly("the tokenizer's own chat template is used (tokenizer_config.json / chat_template.jinja next to --tokenizer)"),
  // ---- TRL: data ----
  dataset_num_proc: defaultOnly('tokenization runs in the training process (one core: it takes seconds for typical data sets); num_threads sets the kernel threads'),
  max_length: supported(),
  truncation_mode: supported("'keep_start' (TRL's default: each row keeps its first max_length tokens; a pair whose prompt fills max_length is dropped, as TRL does) or 'keep_end' (each row keeps its last max_length tokens: the oldest prompt tokens go, nothing is dropped)"),
  padding_free: supported(),
  pad_to_multiple_of: supported(),
  dataset_text_field: defaultOnly('SFT text data is read from `prompt`/`completion` or `messages` (rename columns with `columns`)'),
  dataset_kwargs: defaultOnly('dataset preparation is always on'),
  eos_token: defaultOnly("the tokenizer's EOS ends every completion (a chat turn ends with the template's own end-of-turn token)"),
  shuffle_dataset: defaultOnly('the sampler shuffles every epoch (seeded by seed)'),
  packing: defaultOnly('SFT sequences are padded per batch; padding_free: true removes the padding instead'),
  packing_strategy: defaultOnly('packing is not implemented; see padding_free'),
  eval_packing: defaultOnly('packing is not implemented; see padding_free'),
  completion_only_loss: supported('prompt-completion data: null or true trains the completion only, false the prompt too'),
  assistant_only_loss: supported('messages data: false trains every token of the conversation (as TRL), true only the assistant turns up to their end-of-turn token'),
  // ---- TRL: DPO ----
  precompute_ref_log_probs: supported(),
  precompute_ref_batch_size: supported(),
  loss_type: supported('a name or a list; also the extensions simpo, orpo (reference-free) and aot_pair (= aot_unpaired)'),
  loss_weights: supported(),
  ld_alpha: supported(),
  f_divergence_type: supported(),
  f_alpha_divergence_coef: supported(),
  label_smoothing: supported('used by robust, exo_pair, aot, aot_unpaired (and simpo); with sigmoid it is refused, as TRL v1.9.0 no longer smooths the sigmoid loss'),
  beta: supported(),
  use_weighting: supported(),
  discopop_tau: supported(),
  sync_ref_model: supported(),
  ref_model_mixup_alpha: supported(),
  ref_model_sync_steps: supported(),
};

/** Our own options (not TRL v1.9.0 DPOConfig/SFTConfig fields) and what they are. */
export const EXTENSIONS: Readonly<Record<string, string>> = {
  max_prompt_length: 'TRL < 1.0: cap on prompt tokens, applied before max_length (keep_end keeps its end and BOS, keep_start its start); default off',
  max_completion_length: 'TRL < 1.0: cap on each response, applied before max_length; default off',
  rpo_alpha: "TRL < 1.0 RPO: adds rpo_alpha × the chosen NLL (TRL v1.9.0 way: loss_type [sigmoid, sft] with loss_weights [1, α])",
  simpo_gamma: "SimPO's target margin γ (TRL's CPOConfig) for loss_type simpo",
  cpo_alpha: "TRL's CPOConfig: loss_type simpo adds cpo_alpha × the chosen NLL (default 1.0, as CPOTrainer; 0 = SimPO as published)",
  warmup_ratio: 'transformers < 5: warmup as a fraction of the total steps (transformers 5: warmup_steps < 1)',
  group_by_length: "transformers < 5: same as train_sampling_strategy: 'group_by_length'",
  dataset_format: 'force the data format instead of detecting it',
  columns: 'map source column names to prompt/chosen/rejected/...',
  on_bad_row: "'error' (default) stops on bad rows listing file:line; 'skip' drops and counts them",
  eval_split: 'fraction of the training data held out for evaluation when no eval file is given',
  use_peft: "TRL's ModelConfig: train LoRA adapters",
  lora_r: "TRL's ModelConfig",
  lora_alpha: "TRL's ModelConfig",
  lora_dropout: "TRL's ModelConfig (off while training with disable_dropout, as TRL)",
  lora_target_modules: "TRL's ModelConfig",
  save_dtype: 'dtype of the saved weights (float32 or bfloat16)',
  frozen_dtype: "'bfloat16' keeps frozen linear weights (the reference copy, a LoRA base) only as bf16: half their memory, products on the bf16 GEMM; default float32",
  num_threads: 'kernel threads (default: DPO_NUM_THREADS or the number of cores)',
  watchdogs: 'explain over-optimization and falling chosen log-probs in warnings',
  sample_checks: 'at every evaluation, sample eval prompts and judge fluency and diversity against the reference (eval/samples/*, a collapse watchdog)',
  share_prompt: "compute each pair's shared prompt once (tree packing, padding-free; default true); false runs it twice as TRL does, with the same values",
};

/** Names TRL used before v1.9.0 (or TRL's other configs) that v1.9.0's DPOConfig/SFTConfig do not have. */
export const NOT_IN_TRL: Readonly<Record<string, string>> = {
  max_target_length: 'not in TRL v1.9.0 (encoder-decoder only); use max_length',
  padding_value: "not in TRL v1.9.0: the pad id is the tokenizer's pad token",
  label_pad_token_id: 'not in TRL v1.9.0: response tokens are selected by the completion mask, never by a label pad id',
  use_logits_to_keep: 'not in TRL v1.9.0: the LM head here already computes logits only for response tokens',
  generate_during_eval: 'not in TRL v1.9.0: set sample_checks: true (samples judged at every evaluation), or compare policy and reference with `dpo eval`',
  ref_model_init_kwargs: 'not in TRL v1.9.0: the reference loads like the policy (float32); give a different one with --ref',
  model_adapter_name: 'not in TRL v1.9.0: one adapter is trained (use_peft)',
  ref_adapter_name: 'not in TRL v1.9.0: with use_peft the reference is the base with adapters off',
  force_use_ref_model: 'not in TRL v1.9.0: with use_peft the reference is the base with adapters off; --ref loads another model',
  reference_free: "not in TRL v1.9.0: use a reference-free loss_type (simpo, orpo) or loss_type sft",
  use_num_logits_to_keep: 'not in TRL v1.9.0: the LM head here already computes logits only for response tokens',
  evaluation_strategy: 'renamed eval_strategy in transformers',
  dataset_batch_size: 'not in TRL v1.9.0 (tokenization is not batched here)',
  max_seq_length: 'renamed max_length in TRL v0.20',
  tf32_full_eval: NO_GPU,
  torch_dtype: 'a model_init_kwargs key in TRL (model_init_kwargs: {dtype: float32})',
  model_name_or_path: "TRL CLI's ModelConfig: pass --model (a local Hugging Face directory or llama2.c checkpoint)",
  dataset_name: "TRL CLI's ScriptArguments: pass --data FILE (JSONL, JSON or Parquet; nothing is downloaded)",
  dataset_train_split: "TRL CLI's ScriptArguments: pass --data FILE (and --eval-data FILE)",
  dataset_test_split: "TRL CLI's ScriptArguments: pass --eval-data FILE (or eval_split)",
  model_revision: "TRL CLI's ModelConfig: --model is a local directory or file (nothing is downloaded)",
  attn_implementation: "TRL CLI's ModelConfig: attention always runs on the native fused kernel",
};

/** Where a field means something else in SFTConfig than in DPOConfig. */
export const SFT_POLICY: Readonly<Record<string, FieldPolicy>> = {
  loss_type: only([null, 'nll', 'chunked_nll'], 'the SFT loss is the token-mean NLL of the trained tokens (chunked_nll is the same loss computed in chunks); dft is not implemented'),
  truncation_mode: only(['keep_start'], "SFT rows keep their first max_length tokens (TRL's default; keep_end is deprecated in TRL)"),
  max_length: supported('rows keep their first max_length tokens; rows left without a trained token are dropped, as TRL does'),
};

/** The policy of a field in one config. */
export function policyOf(config: TrlConfigName, name: string): FieldPolicy | undefined {
  return (config === 'SFTConfig' ? SFT_POLICY[name] : undefined) ?? TRL_FIELD_POLICY[name];
}

function fieldsOf(config: TrlConfigName): readonly TrlField[] {
  return config === 'DPOConfig' ? DPOConfig_FIELDS : SFTConfig_FIELDS;
}

/** TRL's field named `name` in `config`, or undefined. */
export function trlField(config: TrlConfigName, name: string): TrlField | undefined {
  return fieldsOf(config).find((f) => f.name === name);
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The values a 'values' policy accepts for one config's field. */
export function acceptedValues(config: TrlConfigName, name: string): unknown[] {
  const p = policyOf(config, name);
  if (!p || p.kind !== 'values') return [];
  if (p.accept !== 'default') return [...p.accept];
  const f = trlField(config, name);
  if (!f) return [];
  return f.defaultCandidates ? [...f.defaultCandidates] : [f.default];
}

/**
 * Checks the TRL fields of a raw config that our schema does not hold: drops those set to a value
 * that means the same here, and throws for the rest (and for names TRL v1.9.0 does not have that
 * older TRL versions did), each with why and what to use instead. Returns the remaining object.
 */
export function applyTrlPolicy(config: TrlConfigName, raw: Record<string, unknown>, schemaKeys: readonly string[], source: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (schemaKeys.includes(key)) {
      out[key] = value;
      continue;
    }
    const field = trlField(config, key);
    const policy = policyOf(config, key);
    if (field && policy) {
      if (policy.kind === 'values') {
        const ok = acceptedValues(config, key);
        if (ok.some((v) => deepEqual(v, value))) continue;
        problems.push(`${key}: ${JSON.stringify(value)} is not supported: ${policy.why} (accepted: ${ok.map((v) => JSON.stringify(v)).join(', ')})`);
      } else if (policy.kind === 'refused') {
        problems.push(`${key} is not supported: ${policy.why}`);
      } else {
        out[key] = value;
      }
      continue;
    }
    if (NOT_IN_TRL[key] !== undefined) {
      problems.push(`${key}: ${NOT_IN_TRL[key]}`);
      continue;
    }
    if (field === undefined && trlField(config === 'DPOConfig' ? 'SFTConfig' : 'DPOConfig', key) !== undefined && !schemaKeys.includes(key)) {
      problems.push(`${key} is a TRL ${config === 'DPOConfig' ? 'SFTConfig' : 'DPOConfig'} field, not a ${config} one`);
      continue;
    }
    out[key] = value;
  }
  if (problems.length > 0) throw new Error(`${source} (TRL ${TRL_VERSION} ${config} names): ${problems.join('; ')}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The README table

function fmt(v: unknown): string {
  if (v === undefined) return '';
  const s = JSON.stringify(v);
  return '`' + s.replace(/\|/g, '\\|') + '`';
}

function statusCell(config: TrlConfigName, name: string, ours: Record<string, unknown>): string {
  const field = trlField(config, name)!;
  const p = policyOf(config, name);
  if (!p) return '**missing policy**';
  if (p.kind === 'supported') {
    const d = name in ours ? ours[name] : undefined;
    const differs = d !== undefined && !deepEqual(d, field.default) && !(Array.isArray(field.default) && deepEqual([d], field.default));
    return `supported${differs ? ` (default ${fmt(d)})` : ''}${p.note ? `: ${p.note}` : ''}`;
  }
  if (p.kind === 'values') return `only ${acceptedValues(config, name).map(fmt).join(', ')}: ${p.why}`;
  return `refused: ${p.why}`;
}

/**
 * The README table: every field of TRL's DPOConfig and SFTConfig (one row per name, in TRL's
 * order), TRL's default, and what `dpo train` / `dpo sft` do with it; then our extensions.
 * `dpoDefaults` / `sftDefaults`: our schemas' defaults (parse of {}).
 */
export function renderTrlTable(dpoDefaults: Record<string, unknown>, sftDefaults: Record<string, unknown>): string {
  const names: string[] = [];
  for (const f of [...DPOConfig_FIELDS, ...SFTConfig_FIELDS]) if (!names.includes(f.name)) names.push(f.name);
  const lines = [
    `| field | in (declared by) | TRL ${TRL_VERSION} default | here |`,
    '| --- | --- | --- | --- |',
  ];
  for (const name of names) {
    const d = trlField('DPOConfig', name);
    const s = trlField('SFTConfig', name);
    const f = (d ?? s)!;
    const dflt = (x: TrlField) => fmt(x.defaultCandidates ?? x.default);
    const defaults = d && s && !deepEqual(d.default, s.default) ? `DPO ${dflt(d)}, SFT ${dflt(s)}` : dflt(f);
    const where = d && s ? (d.declaredIn === s.declaredIn ? `DPO, SFT (${d.declaredIn})` : `DPO, SFT (own fields)`) : d ? `DPO (${d.declaredIn})` : `SFT (${s!.declaredIn})`;
    let here: string;
    if (d && s) {
      const cd = statusCell('DPOConfig', name, dpoDefaults), cs = statusCell('SFTConfig', name, sftDefaults);
      here = cd === cs ? cd : `DPO: ${cd}; SFT: ${cs}`;
    } else here = d ? statusCell('DPOConfig', name, dpoDefaults) : statusCell('SFTConfig', name, sftDefaults);
    lines.push(`| \`${name}\` | ${where} | ${defaults} | ${here} |`);
  }
  lines.push('', '| extension (not a TRL v1.9.0 field) | in | default | what it is |', '| --- | --- | --- | --- |');
  for (const [name, what] of Object.entries(EXTENSIONS)) {
    const inD = name in dpoDefaults, inS = name in sftDefaults;
    const dflt = fmt(inD ? dpoDefaults[name] : sftDefaults[name]);
    lines.push(`| \`${name}\` | ${[inD ? 'DPO' : '', inS ? 'SFT' : ''].filter(Boolean).join(', ')} | ${dflt} | ${what} |`);
  }
  lines.push('', `Refused with a pointer to the ${TRL_VERSION} way: ${Object.keys(NOT_IN_TRL).map((k) => `\`${k}\``).join(', ')}.`);
  return lines.join('\n') + '\n';
}
