// dpo-ts as a library: the same layers the `dpo` command is built from, by namespace.
export * as tensor from './tensor/index.js';
export * as models from './models/index.js';
export * as data from './data/index.js';
export * as losses from './losses/index.js';
export * as tokenizers from './io/tokenizers/index.js';
export { loadHfDirectory, saveHfDirectory } from './io/hf-dir.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';
export { readLlama2cCheckpoint } from './io/llama2c.js';
export { writeLlamaGguf, writeModelGguf } from './io/gguf.js';
export { generate, generateTokens, sampleToken, type SamplingOptions } from './models/generate.js';
export { runDpo, type DpoRunOptions } from './train/dpo.js';
export { runSft, type SftRunOptions } from './train/sft.js';
export { scorePairs } from './train/score.js';
export { parseDpoConfig, parseSftConfig, readConfigFile, type DpoConfig, type SftConfig } from './train/config.js';
