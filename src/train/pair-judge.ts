// Judges that label a policy's own samples, for online DPO (`dpo online`) and the feedback loop
// (`dpo loop`). One spec string names one of:
//   afinn | vader      — a built-in reward function (src/train/rewards.ts): scores each completion
//   DIR                — a reward model (*ForSequenceClassification directory, as `dpo rm` writes it
//                        or transformers saves it): scores each completion
//   file.mjs[#name]    — a JS module exporting `judge(prompt, a, b)` (or the named export), which
//                        returns which completion is better: 0 or "a" (the first), 1 or "b" (the
//                        second), or "tie"; a module without `judge` is read as a reward function
//                        ({prompts, completions, completionIds}) => number[] (TRL's contract).
// A judge that throws or returns anything else stops with a message naming the prompt and pair.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadRewardFunction, type RewardFunction, type RewardInput } from './rewards.js';

export type PairVerdict = 'a' | 'b' | 'tie';

/** A judge that compares two completions of one prompt. */
export interface PairwiseJudge {
  kind: 'pairwise';
  name: string;
  compare(prompt: string, a: string, b: string): Promise<PairVerdict>;
}

/** A judge that scores completions (reward function or reward model). */
export interface ScoringJudge {
  kind: 'scores';
  name: string;
  reward: RewardFunction;
}

export type SampleJudge = PairwiseJudge | ScoringJudge;

/** Raised when a judge fails or answers garbage: names the pair; nothing of the round is written. */
export class JudgeError extends Error {}

function short(s: string, n = 60): string {
  const t = JSON.stringify(s);
  return t.length > n ? `${t.slice(0, n - 1)}…"` : t;
}

/** Reads a pairwise verdict: 0 / "a" (first better), 1 / "b" (second better), "tie". */
export function parseVerdict(v: unknown): PairVerdict | null {
  if (v === 0 || v === 'a' || v === 'A') return 'a';
  if (v === 1 || v === 'b' || v === 'B') return 'b';
  if (v === 'tie') return 'tie';
  return null;
}

/** Resolves a judge spec (see the file comment). vocabSize: the policy's, checked against a reward model's. */
export async function loadSampleJudge(spec: string, vocabSize: number): Promise<SampleJudge> {
  const [file, exportName] = spec.split('#') as [string, string | undefined];
  if (/\.(m?js|cjs)$/.test(file)) {
    if (!existsSync(file)) throw new Error(`judge ${spec}: no such file ${file}`);
    const mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
    const fn = mod[exportName ?? 'judge'];
    if (typeof fn === 'function') {
      return {
        kind: 'pairwise', name: spec,
        compare: async (prompt, a, b) => {
          let r: unknown;
          try {
            r = await (fn as (p: string, a: string, b: string) => unknown)(prompt, a, b);
          } catch (e) {
            throw new JudgeError(`judge ${spec} threw on prompt ${short(prompt)} (a ${short(a, 40)}, b ${short(b, 40)}): ${(e as Error).message}`);
          }
          const v = parseVerdict(r);
          if (v === null) {
            throw new JudgeError(`judge ${spec} returned ${(JSON.stringify(r) ?? String(r)).slice(0, 40)} for prompt ${short(prompt)} (a ${short(a, 40)}, b ${short(b, 40)}); expected 0 or "a", 1 or "b", or "tie"`);
          }
          return v;
        },
      };
    }
    if (exportName !== undefined) throw new Error(`judge ${spec}: the module exports no function "${exportName}"; exports: ${Object.keys(mod).join(', ') || 'none'}`);
  }
  return { kind: 'scores', name: spec, reward: await loadRewardFunction(spec, vocabSize) };
}

/** Scores completions with a scoring judge; a failure names the first completion of the batch. */
export async function judgeScores(j: ScoringJudge, input: RewardInput): Promise<Float64Array> {
  try {
    return await j.reward.score(input);
  } catch (e) {
    throw new JudgeError(`judge ${j.name} failed on prompt ${short(input.prompts[0] ?? '')} and ${input.completions.length - 1} more completions: ${(e as Error).message}`);
  }
}
