/**
 * dpo-ts as a library: load models and tokenizers, generate, train with DPO (and its loss
 * family) or SFT on files or rows in memory, score, audit data, convert and export.
 *
 * Naming rule: options that are TRL options (the `config` of runDpo/runSft: `beta`, `loss_type`,
 * `learning_rate`, ...) and metric names (`loss`, `rewards/chosen`, `grad_norm`, ...) keep TRL's
 * snake_case names; everything else is camelCase.
 *
 * The heavy parts are subpaths with optional dependencies: `dpo-ts/eval` (sentiment judges),
 * `dpo-ts/annotate` (annotation server: better-sqlite3, marked, sanitize-html) and `dpo-ts/demo`.
 *
 * @packageDocumentation
 */

// ---- the layers, by namespace ----
export * as tensor from './tensor/index.js';
export * as models from './io/models.js';
export * as data from './data/index.js';
export * as losses from './losses/index.js';
export * as tokenizers from './io/tokenizers/index.js';
/** Reward models, GRPO/RLOO and PPO (`dpo rm`, `dpo grpo`, `dpo rloo`, `dpo ppo`). */
export * as rl from './train/rl-api.js';

// ---- models and tokenizers ----
export { createModel, randomModel } from './models/index.js';
export { loadModel, loadModelAndTokenizer, loadTokenizerFor, type LoadedModel } from './io/load-model.js';
export type { CausalLM, TokenBlock } from './models/model.js';
export { KVCache } from './models/kv-cache.js';
export { loadTokenizer } from './io/tokenizers/index.js';
export type { Tokenizer, ChatMessage, EncodeOptions } from './io/tokenizer.js';
export type { ModelConfig, GenerationDefaults, Architecture } from './io/config.js';
export type { WeightMap, Weight } from './io/weights.js';
export { loadHfDirectory, saveHfDirectory, type HfDirectory, type SaveHfOptions, type LoadHfOptions } from './io/hf-dir.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';
export { readLlama2cCheckpoint } from './io/llama2c.js';
export { writeLlamaGguf, writeModelGguf } from './io/gguf.js';
export { convertModel, type ConvertOptions } from './io/convert.js';
export { MissingPackageError, OPTIONAL_PACKAGES, type OptionalPackage } from './io/optional-deps.js';

// ---- generation ----
export { generate, generateTokens, sampleToken, type SamplingOptions, type GenerateResult, type StreamCallback } from './models/generate.js';

// ---- training ----
export { runDpo, type DpoRunOptions, type DpoRunResult } from './train/dpo.js';
export { runSft, type SftRunOptions, type SftRunResult } from './train/sft.js';
export { scorePairs, type ScoreOptions, type ScoreResult, type ScoredPair } from './eval/score.js';
export type { PairScores, PairwiseAccuracy } from './losses/reward.js';
export {
  parseDpoConfig, parseSftConfig, readConfigFile, DpoConfigSchema, SftConfigSchema, dpoOptionNames, sftOptionNames,
  type DpoConfig, type SftConfig, type DpoConfigInput, type SftConfigInput,
} from './train/config.js';
export {
  saveModel, resolveModel, loadAdapter,
  type ModelInput, type TokenizerInput, type ModelWithTokenizer, type SavableModel, type SaveModelOptions, type TrainedRun,
} from './train/setup.js';
export type { TrainingEvents, StepRecord, CheckpointRecord, LoopResult } from './train/loop.js';
export type { LoraSettings } from './nn/lora.js';
export {
  pretrain, pretrainModelConfig, readDocuments, splitParagraphs, DEFAULT_PRETRAIN,
  type PretrainOptions, type PretrainResult, type PretrainSettings, type ModelShape,
} from './train/pretrain.js';

// ---- data ----
export {
  loadPreferenceData, loadSftData, preparePreferenceData, prepareSftData, auditPreferenceData, auditVerdict, renderAuditText,
  type AuditOptions, type AuditReport, type AuditVerdict, type LoadSummary, type LoadOptions, type PrepareOptions, type DataSource, type InMemoryRows, type PreferenceExample, type SftExample,
} from './data/index.js';

// ---- types the API above refers to ----
export type { NormalizeOptions, Normalized, PreferenceCore, SftCore, Problem, Core } from './data/formats.js';
export type { PairResult, RenderedPair, SftResult } from './data/tokenize.js';
export type { Activation, RopeScaling } from './models/config.js';
export type { ConfigFields } from './models/config.js';
export type { LlamaGgufOptions, GgufTokenizerInput } from './io/gguf.js';
export type { SafetensorsWriteDtype, ReadSafetensorsOptions, WriteSafetensorsOptions } from './io/safetensors.js';
export type { Llama2cCheckpoint, Llama2cHeader } from './io/llama2c.js';
export type { ChatTemplateVariables } from './io/tokenizers/chat.js';
export type { PostProcessorJson, TokenizerModelJson } from './io/tokenizers/hf.js';
export type { Gpt2Layer } from './models/gpt2.js';
export type { LlamaLayer } from './models/llama.js';
export type { ArchitectureDef, DeclareWeight, WeightInit, GgufLayout, GgufParam } from './models/architecture.js';
export type { DeclaredWeight } from './models/architectures.js';
export { Linear, type ForwardContext, type LoraAdapter } from './nn/linear.js';
export type { ScheduleType } from './train/schedule.js';
export type { DataFormat, PreferenceFormat, SftFormat, ColumnMapping, OnBadRow, BadRow, BadRowReason, SourceLoc, TruncationMode } from './data/types.js';
export type { Tensor } from './tensor/index.js';
export type { LexicalStats, NearDuplicateCluster } from './data/diversity.js';
export type { SliceReport } from './losses/reward.js';
