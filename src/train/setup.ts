// What SFT and DPO runs set up the same way: threads, model + tokenizer (paths or objects in
// memory), LoRA adapters, the loop configuration from TRL-named options, and saving the trained model.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { kernels } from '../tensor/backend.js';
import { type CausalLM } from '../models/index.js';
import { loadModelAndTokenizer, loadTokenizerFor, type LoadedModel } from '../io/load-model.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { GenerationDefaults } from '../io/config.js';
import { loadTokenizer } from '../io/tokenizers/index.js';
import { tokenizerFilesFor } from '../io/tokenizers/save.js';
import { attachLora, type LoraSettings } from '../nn/lora.js';
import { loadPeftAdapter, savePeftAdapter } from '../io/peft.js';
import { defaultLoraTargets } from '../models/architectures.js';
import { saveHfDirectory } from '../io/hf-dir.js';
import type { SftConfig } from './config.js';
import type { LoopConfig, LoopResult, TrainingEvents } from './loop.js';

/** The options every training config has (DpoConfig extends them). */
type CommonConfig = Omit<SftConfig, 'completion_only_loss' | 'assistant_only_loss'>;

/**
 * A model to start from: a path (Hugging Face directory or llama2.c checkpoint), a model in
 * memory, or what loadModelAndTokenizer returned.
 */
export type ModelInput = string | CausalLM | LoadedModel;

/** A tokenizer: a path (directory or llama2.c .bin) or one in memory. */
export type TokenizerInput = string | Tokenizer;

/** A model with its tokenizer, as training runs hold (and return) them. */
export type ModelWithTokenizer = LoadedModel & { tokenizer: Tokenizer };

export interface RunBasics {
  outputDir?: string | undefined;
  resume?: boolean | string | undefined;
  stopAfterSteps?: number | undefined;
  quiet?: boolean | undefined;
  /** Called with every logged record (the RL runs' option; the library's runs use on.log). */
  onLog?: ((rec: Record<string, number>) => void) | undefined;
  on?: TrainingEvents | undefined;
  signal?: AbortSignal | undefined;
}

function isCausalLM(m: ModelInput): m is CausalLM {
  return typeof m === 'object' && typeof (m as CausalLM).tokenLogprobs === 'function';
}

/** Resolves a model input (path or object) and its tokenizer (path, object, or the model's own). */
export async function resolveModel(model: ModelInput, tokenizer?: TokenizerInput, what = 'model'): Promise<ModelWithTokenizer> {
  let loaded: ModelWithTokenizer;
  if (typeof model === 'string') {
    loaded = await loadModelAndTokenizer(model, typeof tokenizer === 'string' ? tokenizer : undefined);
    if (typeof tokenizer === 'object') loaded = { ...loaded, tokenizer };
  } else {
    const base: LoadedModel = isCausalLM(model) ? { model, source: 'model in memory', format: 'memory', generation: null } : model;
    let tok: Tokenizer;
    if (typeof tokenizer === 'object') tok = tokenizer;
    else if (typeof tokenizer === 'string') tok = await loadTokenizer(tokenizer);
    else if ('tokenizer' in base && typeof (base as ModelWithTokenizer).tokenizer === 'object') tok = (base as ModelWithTokenizer).tokenizer;
    else if (base.format !== 'memory') tok = await loadTokenizerFor(base.source);
    else throw new Error(`${what}: a model given as an object needs its tokenizer (pass tokenizer: a path or a loaded Tokenizer)`);
    loaded = { ...base, tokenizer: tok };
  }
  if (loaded.tokenizer.vocabSize > loaded.model.config.vocabSize) {
    throw new Error(`${what} ${loaded.source}: the tokenizer has ${loaded.tokenizer.vocabSize} tokens but the model only ${loaded.model.config.vocabSize}`);
  }
  return loaded;
}

/** Resolves the model and tokenizer and, with use_peft, freezes the base and attaches adapters. */
export async function loadTrainable(modelInput: ModelInput, tokenizerInput: TokenizerInput | undefined, cfg: CommonConfig): Promise<{
  loaded: ModelWithTokenizer;
  lora: LoraSettings | null;
}> {
  if (cfg.num_threads) kernels().setNumThreads(cfg.num_threads);
  const loaded = await resolveModel(modelInput, tokenizerInput);
  const { model } = loaded;
  if (!cfg.use_peft) return { loaded, lora: null };
  const lora: LoraSettings = {
    r: cfg.lora_r, alpha: cfg.lora_alpha, dropout: cfg.lora_dropout,
    targetModules: cfg.lora_target_modules ?? defaultLoraTargets(model.config.architecture),
  };
  for (const p of model.parameters().values()) p.requiresGrad = false;
  attachLora(model.linears(), lora, cfg.seed);
  return { loaded, lora };
}

/** What a finished (or watchdog-stopped) run returns: the trained model in memory and its metrics. */
export interface TrainedRun<C> extends LoopResult {
  /** The trained model (the same object as a model passed in). Save it with saveModel(dir, result). */
  model: CausalLM;
  tokenizer: Tokenizer;
  generation: GenerationDefaults | null;
  /** LoRA settings when use_peft trained adapters (saveModel then writes a PEFT adapter). */
  lora: LoraSettings | null;
  /** Where the starting model came from. */
  source: string;
  /** The starting model's format (a result is itself a ModelInput for scorePairs, evaluateModel, another run). */
  format: LoadedModel['format'];
  /** The validated configuration the run used (defaults filled in). */
  config: C;
}

/** The training-loop configuration from TRL-named options. */
export function loopConfig(cfg: CommonConfig, run: RunBasics, fingerprint: string, watch?: LoopConfig['watch'], watchEval?: LoopConfig['watchEval']): LoopConfig {
  return {
    // TRL's output_dir in the config when the caller gives no directory.
    outputDir: run.outputDir ?? cfg.output_dir ?? undefined,
    learningRate: cfg.learning_rate,
    lrSchedulerType: cfg.lr_scheduler_type,
    // transformers 5: warmup_steps < 1 is a fraction of the total steps (ceil), as warmup_ratio was.
    warmupRatio: cfg.warmup_steps > 0 && cfg.warmup_steps < 1 ? cfg.warmup_steps : cfg.warmup_ratio,
    warmupSteps: cfg.warmup_steps >= 1 ? cfg.warmup_steps : 0,
    weightDecay: cfg.weight_decay,
    adamBeta1: cfg.adam_beta1,
    adamBeta2: cfg.adam_beta2,
    adamEpsilon: cfg.adam_epsilon,
    maxGradNorm: cfg.max_grad_norm,
    batchSize: cfg.per_device_train_batch_size,
    gradientAccumulationSteps: cfg.gradient_accumulation_steps,
    numTrainEpochs: cfg.num_train_epochs,
    maxSteps: cfg.max_steps,
    loggingSteps: cfg.logging_steps,
    evalSteps: cfg.eval_steps ?? (cfg.eval_strategy === 'steps' ? cfg.logging_steps : 0),
    saveSteps: cfg.save_strategy === 'no' ? 0 : cfg.save_steps,
    saveTotalLimit: cfg.save_total_limit ?? 0,
    seed: cfg.seed,
    ...(cfg.data_seed !== null ? { dataSeed: cfg.data_seed } : {}),
    groupByLength: cfg.group_by_length || cfg.train_sampling_strategy === 'group_by_length',
    resume: run.resume ?? false,
    fingerprint,
    stopAfterSteps: run.stopAfterSteps,
    quiet: run.quiet,
    onLog: run.onLog,
    events: run.on,
    signal: run.signal,
    watch,
    watchEval,
  };
}

/** Settings that may change across a resume without changing the run (excluded from its fingerprint). */
export function fingerprintSettings(cfg: CommonConfig): string {
  // Options that do not change the weights (how often to log/eval/save, sample checks) may change on resume.
  return JSON.stringify({
    ...cfg, num_threads: null, logging_steps: null, eval_steps: null, save_steps: null, save_total_limit: null,
    eval_strategy: null, save_strategy: null, output_dir: null, sample_checks: null,
  });
}

/** The tokenizer files of a model directory (or a llama2.c tokenizer file) to copy next to a saved model. */
export function copyTokenizerFiles(loaded: LoadedModel, tokenizerPath: string | undefined): string[] {
  const files: string[] = [];
  const src = tokenizerPath ?? (loaded.format === 'hf' ? loaded.source : null);
  if (src && existsSync(src)) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt', 'chat_template.jinja', 'tokenizer.bin']) {
      if (existsSync(join(src, f))) files.push(join(src, f));
    }
    if (src.endsWith('.bin')) files.push(src);
  }
  return files;
}

/** A trained (or any) model with what saving it needs. */
export interface SavableModel {
  model: CausalLM;
  tokenizer: Tokenizer;
  /** generation_config.json to write (sampling defaults, stop ids). */
  generation?: GenerationDefaults | null | undefined;
  /** Set when the model carries LoRA adapters: then only the adapter is saved (PEFT layout). */
  lora?: LoraSettings | null | undefined;
  /** Where the base model came from (the adapter's base_model_name_or_path). */
  source?: string | undefined;
}

export interface SaveModelOptions {
  /** Weight dtype of model.safetensors (default float32). */
  dtype?: 'float32' | 'bfloat16' | undefined;
}

/**
 * Writes a model: a Hugging Face directory (config.json, model.safetensors, tokenizer files,
 * generation_config.json) that transformers and this library load, or, for a model training
 * LoRA adapters, a PEFT adapter directory.
 */
export async function saveModel(dir: string, m: SavableModel, opts: SaveModelOptions = {}): Promise<void> {
  saveTrainedModel(dir, m, opts);
}

/** saveModel, synchronously (the training loops' final save). */
export function saveTrainedModel(dir: string, m: SavableModel, opts: SaveModelOptions = {}): void {
  const { model } = m;
  if (m.lora) {
    savePeftAdapter(dir, model.linears(), m.lora, model.config.architecture, m.source ?? 'unknown');
    return;
  }
  saveHfDirectory(dir, {
    config: model.config,
    weights: model.exportWeights(),
    dtype: opts.dtype === 'bfloat16' ? 'BF16' : 'F32',
    generation: m.generation ?? null,
    tokenizerFiles: tokenizerFilesFor(m.tokenizer, model.config.maxPositions),
  });
}

/**
 * Applies a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) to a
 * model in place; returns the adapter's settings and the base model it names.
 */
export function loadAdapter(model: CausalLM, dir: string): LoraSettings & { baseModel: string | null } {
  return loadPeftAdapter(dir, model.linears(), model.config.architecture);
}
