// Ground-truth and held-out sentiment judges for generated text, from npm packages:
//   afinn — `sentiment` (AFINN-165 word list with negation), the sum of word scores;
//   senticon — `@nlpjs/sentiment` + `@nlpjs/lang-en` (MIT, AXA Group Operations Spain): the English
//           Senticon lexicon nlp.js ships (13 232 Porter stems with scores in [−1, 1], a WordNet-derived
//           lexicon built independently of AFINN; the package gives no separate data licence, so it is
//           covered by the package's MIT licence), stemmed tokens, negation by not/no/never/neither;
//   vader — `vader-sentiment` (VADER rules: intensifiers, "but", caps), the compound score in [−1, 1].
// The demo trains on afinn only; senticon and vader are judges the training never saw. How much of
// each judge's vocabulary is AFINN's is measured from the packages' own data by lexiconOverlap().
// (wink-sentiment was dropped as a judge: 99.6% of its words are AFINN-165 words.)

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { requireOptional, resolveOptional } from '../io/optional-deps.js';

export const JUDGE_NAMES = ['afinn', 'senticon', 'vader'] as const;
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
interface NlpjsSentiment {
  prepare(locale: string, text: string, settings: undefined, stemmed: boolean): string[];
  calculate(input: Record<string, unknown>): { sentiment: { score: number } };
}
interface NlpjsEn {
  LangEn: unknown;
  SentimentEn: { senticon: Record<string, number>; negations: { words: string[] }; stemmed: boolean };
}
interface Senticon { analyzer: NlpjsSentiment; en: NlpjsEn['SentimentEn']; stem(word: string): string }
interface VaderModule {
  SentimentIntensityAnalyzer: { polarity_scores(text: string): { compound: number } };
}

let afinn: { analyze(text: string): { score: number } } | null = null;
let senticon: Senticon | null = null;
let vader: VaderModule | null = null;

function loadSenticon(): Senticon {
  const core = requireOptional<{ containerBootstrap(): { use(x: unknown): void; get(name: string): { stem(w: string): string } } }>('@nlpjs/core');
  const { SentimentAnalyzer } = requireOptional<{ SentimentAnalyzer: new (s: { container: unknown }) => NlpjsSentiment }>('@nlpjs/sentiment');
  const en = requireOptional<NlpjsEn>('@nlpjs/lang-en');
  const container = core.containerBootstrap();
  container.use(en.LangEn);
  const stemmer = container.get('stemmer-en');
  return { analyzer: new SentimentAnalyzer({ container }), en: en.SentimentEn, stem: (w) => stemmer.stem(w) };
}

export function makeJudge(name: string): Judge {
  switch (name) {
    case 'afinn':
      return {
        name, description: 'AFINN-165 sum of word scores (npm sentiment)',
        score: (t) => (afinn ??= new (requireOptional<SentimentCtor>('sentiment'))()).analyze(t).score,
      };
    case 'senticon':
      return {
        name, description: 'Senticon sum of stem scores with negation (npm @nlpjs/sentiment, @nlpjs/lang-en)',
        score: (t) => {
          const s = (senticon ??= loadSenticon());
          // nlp.js's own steps, called synchronously: its stemming tokenizer, then its scoring.
          const input: Record<string, unknown> = {
            locale: 'en', text: t,
            sentimentDictionary: { type: 'senticon', dictionary: s.en.senticon, negations: s.en.negations.words, stemmed: s.en.stemmed },
          };
          input.tokens = s.analyzer.prepare('en', t, undefined, s.en.stemmed);
          return s.analyzer.calculate(input).sentiment.score;
        },
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

/** A lexicon judge's vocabulary as its scorer looks words up. */
export interface JudgeLexicon {
  /** Entries of the lexicon, in the form the scorer matches (lower-cased words, or Porter stems). */
  keys: Set<string>;
  /** Maps a word to that form. */
  keyOf(word: string): string;
  unit: 'word' | 'stem';
  /** Where the entries come from. */
  source: string;
}

/** The lexicon a judge scores with, read from its npm package's own data. */
export function judgeLexicon(name: JudgeName): JudgeLexicon {
  switch (name) {
    case 'afinn': {
      // Read from the file: the package adds its emoji scores to the required object once it has scored.
      requireOptional<SentimentCtor>('sentiment');
      const labels = JSON.parse(readFileSync(resolveOptional('sentiment', 'languages/en/labels.json'), 'utf8')) as Record<string, number>;
      return { keys: new Set(Object.keys(labels).map((w) => w.toLowerCase())), keyOf: (w) => w.toLowerCase(), unit: 'word', source: 'sentiment/languages/en/labels.json (AFINN-165)' };
    }
    case 'senticon': {
      const s = (senticon ??= loadSenticon());
      return { keys: new Set(Object.keys(s.en.senticon)), keyOf: (w) => s.stem(w.toLowerCase()), unit: 'stem', source: '@nlpjs/lang-en src/sentiment/senticon_en.json' };
    }
    case 'vader': {
      // The lexicon file the package's bundle was generated from: token, mean, sd, ratings (tab-separated).
      const file = join(dirname(resolveOptional('vader-sentiment', 'package.json')), 'vader_lexicon.txt');
      const keys = new Set<string>();
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const tok = line.split('\t')[0]!;
        if (tok && line.includes('\t')) keys.add(tok.toLowerCase());
      }
      return { keys, keyOf: (w) => w.toLowerCase(), unit: 'word', source: 'vader-sentiment/vader_lexicon.txt' };
    }
  }
}

export interface LexiconOverlap {
  judge: JudgeName;
  unit: 'word' | 'stem';
  /** Entries in the judge's lexicon. */
  judgeEntries: number;
  /** Of those, how many are AFINN words (compared in the judge's form: stems for a stemming judge). */
  judgeInAfinn: number;
  afinnEntries: number;
  /** AFINN words the judge's lexicon has an entry for (in the judge's form). */
  afinnCovered: number;
  /** judgeInAfinn / judgeEntries. */
  shareOfJudgeInAfinn: number;
  /** afinnCovered / afinnEntries. */
  shareOfAfinnCovered: number;
}

/** How much of a judge's lexicon is AFINN-165's word list, computed from the packages' data. */
export function lexiconOverlap(name: JudgeName): LexiconOverlap {
  const j = judgeLexicon(name);
  const afinnWords = [...judgeLexicon('afinn').keys];
  const afinnAsJudge = new Set(afinnWords.map((w) => j.keyOf(w)));
  let judgeInAfinn = 0;
  for (const k of j.keys) if (afinnAsJudge.has(k)) judgeInAfinn++;
  const afinnCovered = afinnWords.filter((w) => j.keys.has(j.keyOf(w))).length;
  return {
    judge: name, unit: j.unit, judgeEntries: j.keys.size, judgeInAfinn, afinnEntries: afinnWords.length, afinnCovered,
    shareOfJudgeInAfinn: judgeInAfinn / j.keys.size, shareOfAfinnCovered: afinnCovered / afinnWords.length,
  };
}
