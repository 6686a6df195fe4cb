// Ground-truth and held-out sentiment judges for generated text, from npm packages:
//   afinn — `sentiment` (AFINN-165 word list with negation), the sum of word scores;
//   wink  — `wink-sentiment` (AFINN plus emoticons, negation, its own tokenizer), the sum;
//   vader — `vader-sentiment` (VADER rules: intensifiers, "but", caps), the compound score in [−1, 1].
// The demo trains on afinn only; wink and vader are judges the training never saw.

import { requireOptional } from '../io/optional-deps.js';

export const JUDGE_NAMES = ['afinn', 'wink', 'vader'] as const;
export type JudgeName = (typeof JUDGE_NAMES)[number];

export interface Judge {
  name: JudgeName;
  /** What the number is, for reports. */
  description: string;
  score(text: string): number;
}

interface SentimentCtor {
  new (): { analyze(text: string): { score: number } };
}
type WinkFn = (text: string) => { score: number; normalizedScore: number };
interface VaderModule {
  SentimentIntensityAnalyzer: { polarity_scores(text: string): { compound: number } };
}

let afinn: { analyze(text: string): { score: number } } | null = null;
let wink: WinkFn | null = null;
let vader: VaderModule | null = null;



export function makeJudge(name: string): Judge {
  switch (name) {
    case 'afinn':
      return {
        name, description: 'AFINN-165 sum of word scores (npm sentiment)',
        score: (t) => (afinn ??= new (requireOptional<SentimentCtor>('sentiment'))()).analyze(t).score,
      };
    case 'wink':
      return {
        name, description: 'wink-sentiment sum of scores (AFINN + emoticons, negation)',
        score: (t) => (wink ??= requireOptional<WinkFn>('wink-sentiment'))(t).score,
      };
    case 'vader':
      return {
        name, description: 'VADER compound score in [-1, 1] (npm vader-sentiment)',
        score: (t) => (vader ??= requireOptional<VaderModule>('vader-sentiment')).SentimentIntensityAnalyzer.polarity_scores(t).compound,
      };
    default:
      throw new Error(`judge: unknown reward "${name}"; choose one of ${JUDGE_NAMES.join(', ')}`);
  }
}

export function allJudges(): Judge[] {
  return JUDGE_NAMES.map((n) => makeJudge(n));
}
