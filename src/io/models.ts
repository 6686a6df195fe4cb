// The public `models` namespace (dpo.models): the models layer plus loading models from disk.
// A re-export only; the definitions live in src/models and io/load-model.ts.

export * from '../models/index.js';
export * from './load-model.js';
