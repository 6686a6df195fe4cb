// Held-out judges: the Senticon judge on hand-made sentences, agreement with nlp.js's own (async)
// API, lexicon overlaps with AFINN computed from the packages' data, and the correlation table.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { judgeLexicon, lexiconOverlap, makeJudge } from '../src/eval/judges.js';
import { independenceTable, judgeIndependence, pearson } from '../src/eval/independence.js';
import type { EvaluationResult, ModelEvaluation } from '../src/eval/evaluate.js';

const require = createRequire(import.meta.url);

test('senticon judge: clearly positive sentences score > 0, clearly negative < 0, negation flips', () => {
  const j = makeJudge('senticon');
  for (const t of ['I love this beautiful day, I am so happy', 'What a kind and gracious friend', 'She smiled with joy and hope']) {
    assert.ok(j.score(t) > 0, `${t}: ${j.score(t)}`);
  }
  for (const t of ['The ugly, nasty room made me sick', 'I hate the pain and the fear', 'He was sad and angry and hurt']) {
    assert.ok(j.score(t) < 0, `${t}: ${j.score(t)}`);
  }
  assert.ok(j.score('I am happy') > 0 && j.score('I am not happy') < 0);
  assert.equal(j.score('the cat sat on the mat'), 0);
  assert.equal(j.score(''), 0);
});

test('senticon judge: the same scores as nlp.js\'s documented async API', async () => {
  const { containerBootstrap } = require('@nlpjs/core') as { containerBootstrap(): { use(x: unknown): void } };
  const { SentimentAnalyzer } = require('@nlpjs/sentiment') as { SentimentAnalyzer: new (s: object) => { process(i: object): Promise<{ sentiment: { score: number; type: string } }> } };
  const { LangEn } = require('@nlpjs/lang-en') as { LangEn: unknown };
  const container = containerBootstrap();
  container.use(LangEn);
  const analyzer = new SentimentAnalyzer({ container });
  const j = makeJudge('senticon');
  for (const text of ['I love cats', 'a good, happy and wonderful day; I love it', 'It was not a nice, calm evening. Never again!', 'Once upon a time']) {
    const r = await analyzer.process({ locale: 'en', text });
    assert.equal(r.sentiment.type, 'senticon');
    assert.equal(j.score(text), r.sentiment.score, text);
  }
});

test('lexicon overlap with AFINN: computed from the packages\' data', () => {
  const afinnLabels = Object.keys(JSON.parse(readFileSync(require.resolve('sentiment/languages/en/labels.json'), 'utf8')) as Record<string, number>);
  const senticon = (require('@nlpjs/lang-en') as { SentimentEn: { senticon: Record<string, number> } }).SentimentEn.senticon;
  const self = lexiconOverlap('afinn');
  assert.equal(self.judgeEntries, afinnLabels.length);
  assert.deepEqual([self.shareOfJudgeInAfinn, self.shareOfAfinnCovered], [1, 1]);

  // Senticon is compared on Porter stems, recomputed here with the stemmer package directly.
  const { StemmerEn } = require('@nlpjs/lang-en-min') as { StemmerEn: new () => { stem(w: string): string } };
  const stemmer = new StemmerEn();
  const afinnStems = new Set(afinnLabels.map((w) => stemmer.stem(w.toLowerCase())));
  const stems = Object.keys(senticon);
  const inAfinn = stems.filter((k) => afinnStems.has(k)).length;
  const covered = afinnLabels.filter((w) => stemmer.stem(w.toLowerCase()) in senticon).length;
  const s = lexiconOverlap('senticon');
  assert.deepEqual([s.unit, s.judgeEntries, s.judgeInAfinn, s.afinnCovered], ['stem', stems.length, inAfinn, covered]);
  assert.ok(s.shareOfJudgeInAfinn < 0.15, `senticon: ${s.shareOfJudgeInAfinn} of its stems are AFINN stems`);
  // Common sentiment words are in every lexicon: 'good' counts, a Senticon-only stem does not.
  assert.ok(judgeLexicon('senticon').keys.has(stemmer.stem('good')) && afinnStems.has(stemmer.stem('good')));

  const v = lexiconOverlap('vader');
  assert.equal(v.unit, 'word');
  assert.ok(v.judgeEntries > 7000 && v.shareOfAfinnCovered > 0.5 && v.shareOfJudgeInAfinn > 0.25, JSON.stringify(v));
  assert.ok(s.shareOfJudgeInAfinn < v.shareOfJudgeInAfinn);
});

test('pearson: known values and degenerate inputs', () => {
  assert.equal(pearson([1, 2, 3], [2, 4, 6]), 1);
  assert.equal(pearson([1, 2, 3], [3, 2, 1]), -1);
  // x = [1,2,3,4], y = [1,3,2,4]: cov 1.0 (sum 4/4... ), r = 0.8 by hand: Sxy = 4, Sxx = Syy = 5.
  assert.ok(Math.abs(pearson([1, 2, 3, 4], [1, 3, 2, 4]) - 0.8) < 1e-12);
  assert.ok(Number.isNaN(pearson([1, 1, 1], [1, 2, 3])));
  assert.ok(Number.isNaN(pearson([1], [1])));
  assert.throws(() => pearson([1, 2], [1]), /pearson: 2 vs 1 values/);
});

test('judgeIndependence: overlap per lexicon judge, r with AFINN over every sample, a row for a custom judge', () => {
  const texts = ['I love this happy day', 'I hate this ugly day', 'a calm and kind friend', 'the pain and fear', 'a table'];
  const judges = ['afinn', 'senticon', 'vader'].map((n) => makeJudge(n));
  const model = (name: string, idx: number[]): ModelEvaluation => ({
    name, beta: null, rewards: {}, kl: { mean: 0, stderr: 0, n: 0 }, winRate: 0, implicitAccuracy: NaN, implicitMargin: 0, meanTokens: 0,
    samples: idx.map((i) => ({ prompt: '', completion: texts[i]!, logRatio: 0, rewards: { ...Object.fromEntries(judges.map((j) => [j.name, j.score(texts[i]!)])), length: texts[i]!.length } })),
  });
  const models = [model('ref', [0, 1, 2]), model('pol', [3, 4])];
  for (const m of models) m.rewards = Object.fromEntries(Object.keys(m.samples[0]!.rewards).map((k) => [k, { mean: 0, stderr: 0, n: 0 }]));
  const ev: EvaluationResult = { primary: 'afinn', prompts: 1, samplesPerPrompt: 1, heldOutPairs: 0, models };
  const rows = judgeIndependence(ev);
  assert.deepEqual(rows.map((r) => r.judge), ['afinn', 'senticon', 'vader', 'length']);
  assert.equal(rows[0]!.correlationWithAfinn, 1);
  assert.equal(rows[0]!.samples, 5);
  const all = models.flatMap((m) => m.samples);
  assert.equal(rows[1]!.correlationWithAfinn, pearson(all.map((x) => x.rewards.senticon!), all.map((x) => x.rewards.afinn!)));
  assert.equal(rows[3]!.overlap, null);
  assert.deepEqual(rows[1]!.overlap, lexiconOverlap('senticon'));
  const table = independenceTable(rows);
  assert.match(table, /^judge +lexicon entries +of them in AFINN +AFINN covered +r with AFINN \(5 samples\)/);
  assert.match(table, /\nafinn +3382 words +100\.0% \(3382\) +100\.0% of 3382 +1\.000\n/);
  assert.match(table, /\nlength +no lexicon +- +- +-?\d\.\d{3}\n/);
});
