// The RLHF runs as library calls (what `dpo rm`, `dpo rm score`, `dpo grpo`, `dpo rloo` and
// `dpo ppo` run), exported by the package as the `rl` namespace.
export * from './rm.js';
export * from './grpo.js';
export * from './ppo.js';
export * from './rl-config.js';
export * from './rewards.js';
export * from './online-dpo.js';
export * from './feedback-loop.js';
export * from './pair-judge.js';
export type { RlLoopResult, RlRunOptions } from './rollout.js';
export type { ScaleRewards } from '../losses/rl.js';
export { SequenceClassifier, type HiddenLM } from '../models/reward.js';
