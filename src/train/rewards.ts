// Reward functions for the on-line trainers (PPO, GRPO, RLOO), named in `reward_funcs`:
//   afinn              — AFINN-165 sum of word scores (npm `sentiment`, with negation)
//   vader              — VADER compound score in [−1, 1] (npm `vader-sentiment`)
//   ./file.mjs[#name]  — a JS module exporting (default, or `name`) a function
//                        ({prompts, completions, completionIds}) => number[] | Promise<number[]>
//                        (TRL's reward-function contract: one float per completion)
//   DIR                — a reward model trained by `dpo rm` (any *ForSequenceClassification
//                        directory with the policy's tokenizer), scoring prompt + completion ids.

import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as T from '../tensor/index.js';
import type { SequenceClassifier } from '../models/reward.js';
import { isSequenceClassificationDir, loadSequenceClassifier } from '../io/reward-dir.js';

const require = createRequire(import.meta.url);

export interface RewardInput {
  prompts: readonly string[];
  completions: readonly string[];
  /** Prompt token ids per completion (as the policy saw them). */
  promptIds: readonly (readonly number[])[];
  /** Completion token ids (the stop token included when generation stopped on it). */
  completionIds: readonly (readonly number[])[];
}

export interface RewardFunction {
  name: string;
  /** The reward model, when the function is one (PPO initialises its value model from it). */
  model?: SequenceClassifier;
  score(input: RewardInput): Promise<Float64Array>;
}

export const BUILTIN_REWARDS = ['afinn', 'vader'] as const;

function loadPackage<T>(pkg: string): T {
  try {
    return require(pkg) as T;
  } catch (e) {
    throw new Error(`reward: the npm package ${pkg} is not installed (${(e as Error).message}); run npm ci`);
  }
}

function textReward(name: string, f: (text: string) => number): RewardFunction {
  return { name, score: async ({ completions }) => Float64Array.from(completions, f) };
}

/** The text scorer of a built-in reward (AFINN-165 sum, or VADER compound). */
export function builtinTextScorer(name: (typeof BUILTIN_REWARDS)[number]): (text: string) => number {
  if (name === 'afinn') {
    const S = loadPackage<new () => { analyze(t: string): { score: number } }>('sentiment');
    const a = new S();
    return (t) => a.analyze(t).score;
  }
  const v = loadPackage<{ SentimentIntensityAnalyzer: { polarity_scores(t: string): { compound: number } } }>('vader-sentiment');
  return (t) => v.SentimentIntensityAnalyzer.polarity_scores(t).compound;
}

/** Rewards from a sequence-classification model over prompt + completion ids (batched, no tape). */
export function rewardModelScores(rm: SequenceClassifier, promptIds: readonly (readonly number[])[], completionIds: readonly (readonly number[])[], batchSize = 16): Float64Array {
  const n = promptIds.length;
  const out = new Float64Array(n);
  T.noGrad(() => {
    for (let s = 0; s < n; s += batchSize) {
      const rows = Math.min(batchSize, n - s);
      const seqs = Array.from({ length: rows }, (_, j) => [...promptIds[s + j]!, ...completionIds[s + j]!]);
      const Tn = Math.max(...seqs.map((q) => q.length));
      const ids = new Int32Array(rows * Tn).fill(rm.padTokenId);
      seqs.forEach((q, j) => ids.set(q, j * Tn));
      const r = rm.rewards(ids, rows, Tn);
      for (let j = 0; j < rows; j++) out[s + j] = r.data[j]!;
      T.disposeWithBase(r);
    }
  });
  return out;
}

/** Resolves one `reward_funcs` entry. vocabSize: the policy's, checked against a reward model's. */
export async function loadRewardFunction(spec: string, vocabSize: number): Promise<RewardFunction> {
  if ((BUILTIN_REWARDS as readonly string[]).includes(spec)) return textReward(spec, builtinTextScorer(spec as (typeof BUILTIN_REWARDS)[number]));
  const [file, exportName] = spec.split('#') as [string, string | undefined];
  if (/\.(m?js|cjs)$/.test(file)) {
    if (!existsSync(file)) throw new Error(`reward function ${spec}: no such file ${file}`);
    const mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
    const fn = mod[exportName ?? 'default'] ?? (exportName ? undefined : mod.reward);
    if (typeof fn !== 'function') {
      throw new Error(`reward function ${spec}: the module exports no function ${exportName ? `"${exportName}"` : 'as default (or "reward")'}; exports: ${Object.keys(mod).join(', ') || 'none'}`);
    }
    return {
      name: spec,
      score: async (input) => {
        const r = await (fn as (a: unknown) => unknown)({ prompts: input.prompts, completions: input.completions, completionIds: input.completionIds });
        if (!Array.isArray(r) && !(r instanceof Float64Array) && !(r instanceof Float32Array)) throw new Error(`reward function ${spec}: returned ${typeof r}, expected an array of numbers`);
        const arr = Float64Array.from(r as ArrayLike<number>);
        if (arr.length !== input.completions.length) throw new Error(`reward function ${spec}: returned ${arr.length} rewards for ${input.completions.length} completions`);
        const bad = arr.findIndex((x) => !Number.isFinite(x));
        if (bad >= 0) throw new Error(`reward function ${spec}: reward ${bad} is ${(r as ArrayLike<number>)[bad]} (need finite numbers)`);
        return arr;
      },
    };
  }
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    if (!isSequenceClassificationDir(spec)) throw new Error(`reward function ${spec}: the directory is not a reward model (config.json names no *ForSequenceClassification); train one with \`dpo rm\``);
    const { model } = loadSequenceClassifier(spec);
    if (model.config.vocabSize !== vocabSize) throw new Error(`reward model ${spec}: vocabulary of ${model.config.vocabSize} tokens, the policy has ${vocabSize}; a reward model must share the policy's tokenizer`);
    for (const p of model.parameters().values()) p.requiresGrad = false;
    return { name: spec, model, score: async ({ promptIds, completionIds }) => rewardModelScores(model, promptIds, completionIds) };
  }
  throw new Error(`reward function "${spec}": not a built-in (${BUILTIN_REWARDS.join(', ')}), a .js/.mjs module, or a reward-model directory`);
}
