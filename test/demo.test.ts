// The demo end to end at tiny settings (a CI-sized run of `dpo demo`): DPO raises the ground-truth
// reward over the reference for every β on held-out prompts, KL grows as β falls, the report files
// exist and parse, and the base model is cached. Plus the report's HTML escaping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PRETRAIN } from '../src/train/pretrain.js';
import { DEFAULT_SETTINGS, ensureBaseModel, runDemo, type DemoSettings } from '../src/demo/run.js';
import { writeReport } from '../src/demo/report.js';
import { evaluationTable } from '../src/eval/evaluate.js';
import { frontierChart, lineChart, niceTicks } from '../src/demo/plots.js';
import { promptsFrom, splitCorpus, loadMobyDick } from '../src/demo/corpus.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';

const TINY: DemoSettings = {
  shape: { vocabSize: 512, hiddenSize: 64, numLayers: 2, numHeads: 2, intermediateSize: 192, contextLength: 64 },
  pretrain: { ...DEFAULT_PRETRAIN, steps: 150, batchSize: 16, learningRate: 4e-3, warmupSteps: 10, evalSteps: 0 },
  trainPrompts: 800,
  pairPrompts: 32,
  evalPrompts: 64,
  samplesPerPrompt: 8,
  evalSamples: 8,
  maxNewTokens: 24,
  dpo: { learningRate: 2e-3, epochs: 4, batchSize: 16, warmupRatio: 0.1 },
};

function pngOk(path: string): boolean {
  const b = readFileSync(path);
  return b.length > 1000 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
}

/** Minimal well-formedness check of generated SVG: one root, balanced tags. */
function svgBalanced(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    if (m[3]) continue;
    if (m[1]) {
      if (stack.pop() !== m[2]) return false;
    } else stack.push(m[2]!);
  }
  return stack.length === 0 && svg.startsWith('<svg') && svg.trimEnd().endsWith('</svg>');
}

test('corpus: held-out chapters give distinct prompts; none is a held-in prompt', () => {
  const { heldIn, heldOut } = splitCorpus(loadMobyDick());
  assert.equal(heldIn.length + heldOut.length, 136);
  assert.deepEqual(heldOut.map((c) => c.number), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130]);
  const pin = promptsFrom(heldIn), pout = promptsFrom(heldOut);
  assert.ok(pin.length > 1000 && pout.length > 100, `${pin.length} held-in, ${pout.length} held-out prompts`);
  for (const p of pin.slice(0, 50)) {
    const n = p.split(' ').length;
    assert.ok(n >= 3 && n <= 6, p);
  }
  const inSet = new Set(pin);
  assert.ok(pout.filter((p) => inSet.has(p)).length < pout.length * 0.05, 'held-out prompts are (almost all) new text');
});

test('plots: ticks cover the data; charts are balanced SVG; errors name the chart', () => {
  const t = niceTicks(0.13, 0.87);
  assert.ok(t[0]! <= 0.13 && t.at(-1)! >= 0.87 && t.length >= 3 && t.length <= 8, t.join(','));
  const svg = lineChart({ title: 'a <b>', xLabel: 'x', yLabel: 'y' }, [{ name: 's&p', points: [[0, 1], [1, 2]] }]);
  assert.ok(svgBalanced(svg));
  assert.match(svg, /a &lt;b&gt;/);
  assert.match(svg, /s&amp;p/);
  assert.ok(svgBalanced(frontierChart({ title: 'f', xLabel: 'KL', yLabel: 'r' }, [{ name: 'ref', x: 0, y: 0.1, yErr: 0.05 }, { name: 'β', x: 2, y: 0.5, xErr: 0.1 }])));
  assert.throws(() => lineChart({ title: 'empty', xLabel: '', yLabel: '' }, [{ name: 'n', points: [[0, NaN]] }]), /lineChart "empty": no finite points/);
});

test('report: every generated and corpus text is escaped in the HTML', () => {
  const out = mkdtempSync(join(tmpdir(), 'demo-report-'));
  try {
    const evil = '<script>alert(1)</script>&"\'';
    const sample = { prompt: evil, completion: evil, rewards: { afinn: 1 }, logRatio: 0 };
    const model = (name: string, beta: number | null) => ({
      name, beta, rewards: { afinn: { mean: 1, stderr: 0.1, n: 1 } }, kl: { mean: beta ? 1 : 0, stderr: 0, n: 1 },
      winRate: 0.5, implicitAccuracy: NaN, implicitMargin: NaN, meanTokens: 3, samples: [sample],
      quality: { perplexity: beta ? 30 : 10, fluencyPerplexity: null, offTopK: 0.1, topK: 10, distinct1: 0.5, distinct2: 0.8, repeatShare: 0, selfSimilarity: 0.1, meanTokens: 3, truncatedShare: 1 },
      verdict: beta ? 'collapsed' as const : 'fluent' as const, verdictReasons: beta ? [evil] : [],
    });
    mkdirSync(join(out, 'plots'));
    writeReport(out, {
      evaluation: { primary: 'afinn', fluencyModel: null, bestTradeOff: null, prompts: 1, samplesPerPrompt: 1, heldOutPairs: 0, models: [model('reference', null), model(evil, 0.1)] },
      curves: { [evil]: { train: [{ step: 1, loss: 0.7 }, { step: 2, loss: 0.6 }], eval: [] } },
      timings: { total: 1 }, settings: DEFAULT_SETTINGS, betas: [0.1], basePath: evil, baseCached: true, promptSource: evil,
      trainPairs: 1, heldOutPairs: 0, trainPairExamples: [{ prompt: evil, chosen: evil, rejected: evil, score_chosen: 1, score_rejected: 0 }],
      pretrainMetrics: [], pretrainSummary: null, seed: 0,
    });
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.ok(!html.includes('<script'), 'no raw script tag');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;'));
    for (const f of readdirSync(join(out, 'plots')).filter((f) => f.endsWith('.svg'))) {
      assert.ok(!readFileSync(join(out, 'plots', f), 'utf8').includes('<script'), f);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});


test('demo (tiny settings): every β beats the reference on held-out prompts, KL grows as β falls, a fluent β with a reward gain, files parse, base is cached', async () => {
  const root = mkdtempSync(join(tmpdir(), 'demo-run-'));
  const cacheDir = join(root, 'cache');
  const out = join(root, 'out');
  try {
    const betas = [0.05, 0.5];
    const r = await runDemo({ out, betas, seed: 0, cacheDir, settings: TINY, quiet: true, methods: ['dpo'] });
    assert.equal(r.baseCached, false);
    const ev = r.evaluation;
    const ref = ev.models[0]!;
    const byBeta = new Map(ev.models.slice(1).map((m) => [m.beta!, m]));
    for (const b of betas) {
      const m = byBeta.get(b)!;
      assert.ok(m.rewards.afinn!.mean > ref.rewards.afinn!.mean,
        `β=${b}: mean AFINN ${m.rewards.afinn!.mean.toFixed(3)} should exceed the reference's ${ref.rewards.afinn!.mean.toFixed(3)}`);
      assert.ok(m.kl.mean > 0, `β=${b}: KL ${m.kl.mean}`);
    }
    assert.ok(byBeta.get(0.05)!.kl.mean > byBeta.get(0.5)!.kl.mean,
      `KL should grow as β falls: β=0.05 ${byBeta.get(0.05)!.kl.mean.toFixed(3)}, β=0.5 ${byBeta.get(0.5)!.kl.mean.toFixed(3)}`);

    // Fluency: every policy has a verdict; at least one β is fluent and beats the reference on every
    // judge (the best trade-off the report names).
    for (const m of ev.models.slice(1)) assert.ok(['fluent', 'degrading', 'collapsed'].includes(m.verdict), `${m.name}: ${m.verdict}`);
    const good = ev.models.slice(1).filter((m) => m.verdict === 'fluent' && m.rewards.afinn!.mean > ref.rewards.afinn!.mean + 2 * m.rewards.afinn!.stderr);
    assert.ok(good.length >= 1, `a fluent β with a reward gain: ${ev.models.map((m) => `${m.name} ${m.verdict} ${m.rewards.afinn!.mean.toFixed(2)} ppl ${m.quality.perplexity.toFixed(1)}`).join(', ')}`);
    assert.ok(ev.bestTradeOff !== null && good.some((m) => m.name === ev.bestTradeOff), `best trade-off ${ev.bestTradeOff}`);
    const table = evaluationTable(ev, 'training reward');
    const fluencyHead = table.split('\n').find((l) => l.startsWith('model') && l.includes('verdict'))!;
    assert.match(fluencyHead, /ppl \(ref\) .*distinct-2 .*repeat 3\+ .*verdict$/);
    for (const m of ev.models.slice(1)) assert.match(table, new RegExp(`\\n${m.name.replace('.', '\\.')} .* ${m.verdict}\\n`));
    assert.match(table, new RegExp(`Best trade-off: ${ev.bestTradeOff!.replace('.', '\\.')} — fluent`));

    // Files: summary, data, models, plots (SVG + PNG), report.
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { evaluation: { models: { verdict: string; quality: { perplexity: number } }[]; bestTradeOff: string }; train_pairs: number };
    assert.equal(summary.evaluation.models.length, 3);
    assert.equal(summary.evaluation.bestTradeOff, ev.bestTradeOff);
    for (const m of summary.evaluation.models) assert.ok(m.verdict && Number.isFinite(m.quality.perplexity));
    assert.equal(summary.train_pairs, r.trainPairs);
    const pairs = readFileSync(join(out, 'data', 'train_pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(pairs.length, r.trainPairs);
    for (const p of pairs) assert.ok((p.score_chosen as number) > (p.score_rejected as number));
    for (const f of ['frontier_afinn', 'frontier_senticon', 'frontier_vader', 'fluency_afinn', 'fluency_senticon', 'fluency_vader', 'train_loss', 'train_rewards_accuracies', 'train_rewards_margins', 'pretrain_loss']) {
      const svg = readFileSync(join(out, 'plots', `${f}.svg`), 'utf8');
      assert.ok(svgBalanced(svg), `${f}.svg is balanced SVG`);
      assert.ok(pngOk(join(out, 'plots', `${f}.png`)), `${f}.png is a PNG`);
    }
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<\/html>\s*$/);
    assert.equal((html.match(/<svg /g) ?? []).length, 10, 'all plots are inline');
    // The judges' independence from AFINN: lexicon overlap from the packages' data, r on the samples.
    assert.match(html, /How independent are the judges of AFINN\?/);
    assert.match(html, /<tr><td>senticon<\/td><td>\d+ stems<\/td><td>\d+\.\d% \(\d+\)<\/td><td>\d+\.\d% of \d+<\/td><td>-?\d\.\d{3}<\/td><\/tr>/);
    const indep = (summary as unknown as { judges_vs_afinn: { judge: string; overlap: { shareOfJudgeInAfinn: number } | null; samples: number }[] }).judges_vs_afinn;
    assert.deepEqual(indep.map((x) => x.judge), ['afinn', 'senticon', 'vader']);
    assert.equal(indep[0]!.overlap!.shareOfJudgeInAfinn, 1);
    assert.ok(indep[1]!.overlap!.shareOfJudgeInAfinn < 0.15);
    assert.equal(indep[0]!.samples, 3 * ev.prompts * ev.samplesPerPrompt);
    assert.match(html, /<p class="summary">Best trade-off: /);
    assert.match(html, /<th>verdict<\/th>/);
    for (const b of betas) assert.ok(existsSync(join(out, 'models', `beta-${b}`, 'model.safetensors')));
    const policy = await loadModelAndTokenizer(join(out, 'models', 'beta-0.05'));
    assert.equal(policy.tokenizer.vocabSize, TINY.shape.vocabSize);

    // The base model is cached: a second call finds it without training.
    const again = await ensureBaseModel(cacheDir, TINY, false, true, () => {});
    assert.deepEqual(again, { dir: r.basePath, cached: true });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
