/**
 * `dpo-ts/eval`: a policy against its reference on prompts (what `dpo eval` runs): samples,
 * mean reward by sentiment judges, KL(π‖π_ref), win rate, implicit-reward accuracy. The built-in
 * judges need the optional packages sentiment, @nlpjs/core + @nlpjs/sentiment + @nlpjs/lang-en
 * (senticon) and vader-sentiment (loaded when a judge first scores; a missing one is a MissingPackageError naming it).
 *
 * @packageDocumentation
 */
export * from './evaluate.js';
export * from './judges.js';
export * from './sample.js';
export * from './run.js';
export * from './independence.js';
export type { SampleQuality, Verdict } from '../train/sample-quality.js';

// Types of the core package this entry's API refers to.
export type { CausalLM } from '../models/model.js';
export type { Tokenizer } from '../io/tokenizer.js';
export type { ModelInput, TokenizerInput } from '../train/setup.js';
export type { Rng } from '../tensor/random.js';
