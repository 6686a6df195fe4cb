// The models layer: the architectures (one file each, listed in architectures.ts), the shared
// decoder pieces, generation. Loading from disk is io's (io/load-model.ts).

export { LlamaModel } from './llama.js';
export { Gpt2Model } from './gpt2.js';
export { createModel, randomModel, SUPPORTED_ARCHITECTURES, ARCHITECTURES, architectureDef, declaredWeights, expectedWeightShapes } from './architectures.js';
export * from './model.js';
export * from './decoder.js';
