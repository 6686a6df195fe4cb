// What SFT and DPO runs set up the same way: threads, model + tokenizer, LoRA adapters, the
// loop configuration from TRL-named options, and how the trained model is saved.
import { copyFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { kernels } from '../tensor/backend.js';
import { loadModelAndTokenizer, type LoadedModel } from '../models/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { attachLora, defaultLoraTargets, savePeftAdapter, type LoraSettings } from '../nn/peft.js';
import { saveHfDirectory } from '../io/hf-dir.js';
import type { SftConfig } from './config.js';
import type { LoopConfig } from './loop.js';

/** The options every training config has (DpoConfig extends them). */
type CommonConfig = Omit<SftConfig, 'completion_only_loss' | 'assistant_only_loss'>;

export interface RunBasics {
  outputDir: string;
  resume?: boolean | string;
  stopAfterSteps?: number;
  quiet?: boolean;
  onLog?: (rec: Record<string, number>) => void;
}

/** Loads the model and tokenizer and, with use_peft, freezes the base and attaches adapters. */
export async function loadTrainable(modelPath: string, tokenizerPath: string | undefined, cfg: CommonConfig): Promise<{
  loaded: LoadedModel & { tokenizer: Tokenizer };
  lora: LoraSettings | null;
}> {
  if (cfg.num_threads) kernels().setNumThreads(cfg.num_threads);
  const loaded = await loadModelAndTokenizer(modelPath, tokenizerPath);
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

/** The training-loop configuration from TRL-named options. */
export function loopConfig(cfg: CommonConfig, run: RunBasics, fingerprint: string, watch?: LoopConfig['watch']): LoopConfig {
  return {
    outputDir: run.outputDir,
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
    watch,
  };
}

/** Settings that may change across a resume without changing the run (excluded from its fingerprint). */
export function fingerprintSettings(cfg: CommonConfig): string {
  return JSON.stringify({
    ...cfg, num_threads: null, logging_steps: null, eval_steps: null, save_steps: null, save_total_limit: null,
    eval_strategy: null, save_strategy: null, output_dir: null,
  });
}

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

/** Writes the trained model: a Hugging Face directory, or a PEFT adapter when training LoRA. */
export function saveTrainedModel(
  dir: string, loaded: LoadedModel, tokenizerPath: string | undefined,
  lora: LoraSettings | null, dtype: 'float32' | 'bfloat16',
): void {
  const { model } = loaded;
  if (lora) {
    savePeftAdapter(dir, model.linears(), lora, model.config.architecture, loaded.source);
    return;
  }
  const files = copyTokenizerFiles(loaded, tokenizerPath);
  saveHfDirectory(dir, {
    config: model.config,
    weights: model.exportWeights(),
    dtype: dtype === 'bfloat16' ? 'BF16' : 'F32',
    generation: loaded.generation,
    tokenizerFiles: files.filter((f) => !f.endsWith('.bin') || basename(f) === 'tokenizer.bin'),
  });
  // A llama2.c tokenizer travels as tokenizer.bin (our loader reads it from the directory).
  const bin = files.find((f) => f.endsWith('.bin') && basename(f) !== 'tokenizer.bin');
  if (bin) copyFileSync(bin, join(dir, 'tokenizer.bin'));
}
