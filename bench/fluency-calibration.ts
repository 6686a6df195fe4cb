// Where the verdict thresholds (FLUENCY_THRESHOLDS in src/train/sample-quality.ts) come from: the
// reference's own figures. A model is sampled on held-out prompts at temperature 1 with several
// seeds (how much the figures move by chance), hotter (temperature 1.3: sloppier but still its own
// text; 2: gibberish) and colder (0.5: repetitive), and every run is compared with the first
// temperature-1 run exactly as `dpo eval` compares a policy with its reference.
//
//   npx tsc -p . && node dist/bench/fluency-calibration.js --model DIR_OR_BIN [--prompts FILE]
//       [--prompt-count 128] [--samples 4] [--max-new-tokens 24] [--seeds 3] [--temps 1.3,2,0.5]
//       [--top-k 10] [--threads 2]
//
// Prompts default to the demo's held-out evaluation prompts (Moby-Dick sentence starts).
import { cpus, loadavg } from 'node:os';
import { kernels } from '../src/tensor/backend.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { readPrompts } from '../src/eval/index.js';
import { sampleCompletions, type Completions } from '../src/eval/sample.js';
import { fluencyVerdict, sampleQuality, scoreTokens, type SampleQuality } from '../src/train/sample-quality.js';
import { loadMobyDick, promptsFrom, splitCorpus, spread } from '../src/demo/corpus.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

const modelPath = arg('model', '');
if (!modelPath) {
  process.stderr.write('usage: node dist/bench/fluency-calibration.js --model DIR_OR_BIN [--prompts FILE] ...\n');
  process.exit(2);
}
const threads = Number(arg('threads', String(cpus().length)));
kernels().setNumThreads(threads);
const count = Number(arg('prompt-count', '128'));
const samples = Number(arg('samples', '4'));
const maxNew = Number(arg('max-new-tokens', '24'));
const seeds = Number(arg('seeds', '3'));
const temps = arg('temps', '1.3,2,0.5').split(',').map(Number);
const topK = Number(arg('top-k', '10'));
const promptFile = arg('prompts', '');

const { model, tokenizer: tok } = await loadModelAndTokenizer(modelPath);
const all = promptFile ? readPrompts(promptFile) : promptsFrom(splitCorpus(loadMobyDick()).heldOut).filter((_, i) => i % 2 === 0);
const prompts = spread(all, count);
const ids = prompts.map((p) => tok.encode(p, { addBos: true }));

process.stdout.write(`CPU ${cpus()[0]?.model ?? '?'}, kernels ${kernels().name ?? 'native'}, ${threads} threads, load ${loadavg()[0]!.toFixed(1)}\n`);
process.stdout.write(`model ${modelPath}; ${prompts.length} prompts × ${samples} samples, ${maxNew} new tokens, top-${topK}\n\n`);

const measure = (temperature: number, seed: number): { q: SampleQuality; comp: Completions } => {
  const comp = sampleCompletions(model, tok, ids, { samplesPerPrompt: samples, maxNewTokens: maxNew, seed, temperature, quiet: true });
  const ref = scoreTokens(model, comp.promptIndex.map((p) => ids[p]!), comp.tokens, { padId: tok.padId, topK });
  return { q: sampleQuality({ texts: comp.texts, promptIndex: comp.promptIndex, ref, stopped: comp.stopped, topK }), comp };
};

const base = measure(1, 0);
const runs: { label: string; temperature: number; seed: number }[] = [];
for (let s = 1; s < seeds; s++) runs.push({ label: `T=1 seed ${s}`, temperature: 1, seed: s });
for (const t of temps) runs.push({ label: `T=${t}`, temperature: t, seed: 0 });
const head = ['run', 'ppl', 'ppl ×', `off top-${topK}`, 'off ×', 'distinct-2', 'd2 ×', 'repeat', 'self-sim', 'verdict', 'example'];
const rows: string[][] = [];
const row = (label: string, q: SampleQuality, verdict: string, example: string): void => {
  rows.push([
    label, q.perplexity.toFixed(2), (q.perplexity / base.q.perplexity).toFixed(2), `${(100 * q.offTopK).toFixed(1)}%`,
    (q.offTopK / Math.max(base.q.offTopK, 1e-3)).toFixed(2), q.distinct2.toFixed(3), (q.distinct2 / base.q.distinct2).toFixed(2),
    `${(100 * q.repeatShare).toFixed(0)}%`, q.selfSimilarity.toFixed(3), verdict, JSON.stringify(example.slice(0, 60)),
  ]);
};
row('T=1 seed 0 (baseline)', base.q, '-', base.comp.texts[0]!);
for (const r of runs) {
  const { q, comp } = measure(r.temperature, r.seed);
  const v = fluencyVerdict(q, base.q);
  row(r.label, q, v.verdict, comp.texts[0]!);
}
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i]!.length)));
const line = (c: string[]): string => c.map((x, i) => (i === 0 || i === c.length - 1 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
process.stdout.write([line(head), ...rows.map(line)].join('\n') + '\n');
