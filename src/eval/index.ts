/**
 * `dpo-ts/eval`: a policy against its reference on prompts (what `dpo eval` runs): samples,
 * mean reward by sentiment judges, KL(π‖π_ref), win rate, implicit-reward accuracy. The built-in
 * judges need the optional packages sentiment, wink-sentiment and vader-sentiment (loaded when a
 * judge first scores; a missing one is a MissingPackageError naming it).
 *
 * @packageDocumentation
 */
export * from './evaluate.js';
export * from './judges.js';
export * from './sample.js';
export * from './run.js';
