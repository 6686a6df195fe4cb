// Generation speed (KV-cache decoding) of ours against llama.cpp (node-llama-cpp's CPU build) on
// the same weights exported to GGUF F32, in the same run, same thread count:
//
//   npx tsc -p . && node dist/bench/generate.js [--models stories260K,smollm135] [--threads 2]
//       [--batch 8] [--prompt 16] [--tokens 128] [--rounds 2] [--json out.json]
//
// Models: stories260K (/work/shared/models/stories260K, skipped when absent) and a randomly
// initialized SmolLM2-135M-shaped Llama (d 576, 30 layers, 9 heads / 3 KV heads, ffn 1536,
// vocab 49152, tied embeddings). For each: single stream (1 prompt) and batched (--batch prompts
// decoded together), greedy, --tokens new tokens after a --prompt-token prompt (no stop tokens).
// tokens/s = generated tokens / wall time from the first prompt token in to the last token out
// (the short prompt's prefill included, the same for both). Rounds alternate ours and llama.cpp;
// the table gives medians, min–max, and the ratio ours/llama.cpp per round.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernels } from '../src/tensor/backend.js';
import { llamaConfig, type ModelConfig } from '../src/io/config.js';
import { readLlama2cCheckpoint } from '../src/io/llama2c.js';
import { writeLlamaGguf, type GgufTokenizerInput } from '../src/io/gguf.js';
import { createModel, randomModel, type CausalLM } from '../src/models/index.js';
import type { WeightMap } from '../src/io/weights.js';
import { Rng } from '../src/tensor/random.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

const threads = Number(arg('threads', '2'));
const batch = Number(arg('batch', '8'));
const promptLen = Number(arg('prompt', '16'));
const newTokens = Number(arg('tokens', '128'));
const rounds = Number(arg('rounds', '2'));
const modelNames = arg('models', 'stories260K,smollm135').split(',');
const STORIES = process.env.DPO_STORIES260K ?? '/work/shared/models/stories260K/stories260K.bin';

kernels().setNumThreads(threads);

/** A SentencePiece-style vocabulary of placeholder pieces (the bench feeds token ids directly). */
function placeholderTokenizer(n: number): GgufTokenizerInput {
  // llama.cpp's SentencePiece tokenizer falls back to the 256 byte pieces for unknown text (and
  // node-llama-cpp tokenizes a few strings at load), so they must all exist.
  const bytes = Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`);
  const tokens = ['<unk>', '<s>', '</s>', ...bytes];
  for (let i = tokens.length; i < n; i++) tokens.push(`\u2581t${i}`);
  return { model: 'llama', tokens, scores: tokens.map((_, i) => -i), bosId: 1, eosId: 2, addBos: true };
}

interface Bench {
  name: string;
  config: ModelConfig;
  weights: WeightMap;
  model: CausalLM;
}

function loadBench(name: string): Bench | string {
  if (name === 'stories260K') {
    if (!existsSync(STORIES)) return `${STORIES} absent`;
    const { config, weights } = readLlama2cCheckpoint(STORIES);
    return { name, config, weights, model: createModel(config, weights, STORIES) };
  }
  if (name === 'smollm135') {
    const config = llamaConfig({
      vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKvHeads: 3,
      maxPositions: 2048, ropeTheta: 100000, tieWordEmbeddings: true,
    });
    const model = randomModel(config, 0);
    return { name, config, weights: model.exportWeights(), model };
  }
  return `unknown model ${name} (stories260K | smollm135)`;
}

/** B prompts of promptLen ids (BOS first), the same for ours and llama.cpp. */
function prompts(B: number, V: number): number[][] {
  const rng = new Rng(7);
  return Array.from({ length: B }, () => [1, ...Array.from({ length: promptLen - 1 }, () => 4 + rng.int(V - 4))]);
}

function argmax(x: Float32Array): number {
  let m = -Infinity, best = 0;
  for (let i = 0; i < x.length; i++) {
    if (x[i]! > m) {
      m = x[i]!;
      best = i;
    }
  }
  return best;
}

/** Ours: greedy decoding through the KV cache; returns tokens/s and the generated ids. */
function runOurs(b: Bench, ps: number[][]): { tokS: number; tokens: number[][] } {
  const B = ps.length, V = b.config.vocabSize;
  const t0 = performance.now();
  const cache = b.model.newCache(B, promptLen + newTokens);
  const ids = Int32Array.from(ps.flat());
  let logits = b.model.forwardCached(ids, promptLen, cache, null);
  const out: number[][] = ps.map(() => []);
  const step = new Int32Array(B);
  for (let t = 0; t < newTokens; t++) {
    for (let r = 0; r < B; r++) {
      step[r] = argmax(logits.subarray(r * V, (r + 1) * V));
      out[r]!.push(step[r]!);
    }
    if (t + 1 < newTokens) logits = b.model.forwardCached(step, 1, cache, null);
  }
  return { tokS: (B * newTokens) / ((performance.now() - t0) / 1000), tokens: out };
}

// node-llama-cpp, typed loosely (optional dev dependency, imported by a variable name).
interface LlamaCpp {
  loadModel(opts: { modelPath: string }): Promise<LlamaCppModel>;
  dispose(): Promise<void>;
}
interface LlamaCppModel {
  createContext(opts: object): Promise<{ getSequence(): { evaluate(tokens: number[], opts: object): AsyncIterable<number> }; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}

async function runLlamaCpp(model: LlamaCppModel, ps: number[][]): Promise<{ tokS: number; tokens: number[][] }> {
  const B = ps.length;
  const context = await model.createContext({
    contextSize: B * (promptLen + newTokens + 8), sequences: B, threads, batchSize: Math.max(B * promptLen, 32),
  });
  try {
    const seqs = ps.map(() => context.getSequence());
    const t0 = performance.now();
    // All rows evaluate concurrently: node-llama-cpp decodes their pending tokens in one batch.
    const tokens = await Promise.all(ps.map(async (p, r) => {
      const got: number[] = [];
      for await (const tok of seqs[r]!.evaluate(p, { temperature: 0 })) {
        got.push(tok);
        if (got.length >= newTokens) break;
      }
      return got;
    }));
    return { tokS: (B * newTokens) / ((performance.now() - t0) / 1000), tokens };
  } finally {
    await context.dispose();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

async function main(): Promise<void> {
  const require = createRequire(import.meta.url);
  let llama: LlamaCpp | null = null;
  let noLlama = '';
  try {
    require.resolve('node-llama-cpp');
    const moduleName = 'node-llama-cpp';
    const { getLlama } = (await import(moduleName)) as { getLlama(opts: object): Promise<LlamaCpp> };
    llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  } catch (e) {
    noLlama = `node-llama-cpp unavailable: ${(e as Error).message.split('\n')[0]}`;
    console.error(noLlama);
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-generate-'));
  const rows: Record<string, unknown>[] = [];
  console.error(`generate: threads ${threads}, prompt ${promptLen}, ${newTokens} new tokens, batch 1 and ${batch}, ${rounds} rounds; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  try {
    for (const name of modelNames) {
      const b = loadBench(name);
      if (typeof b === 'string') {
        console.error(`${name}: skipped (${b})`);
        continue;
      }
      let cpp: LlamaCppModel | null = null;
      if (llama) {
        const path = join(dir, `${name}-f32.gguf`);
        writeLlamaGguf(path, b.config, b.weights, { tokenizer: placeholderTokenizer(b.config.vocabSize), dtype: 'F32' });
        cpp = await llama.loadModel({ modelPath: path });
      }
      for (const B of [1, batch]) {
        const ps = prompts(B, b.config.vocabSize);
        // Warm-up (pages in the weights, JIT, thread pools): one untimed single-row run each.
        runOurs(b, ps.slice(0, 1));
        if (cpp) await runLlamaCpp(cpp, ps.slice(0, 1));
        const ours: number[] = [], theirs: number[] = [], ratio: number[] = [], load: number[] = [];
        let agree = NaN;
        for (let r = 0; r < rounds; r++) {
          load.push(loadavg()[0]!);
          // Alternate who goes first.
          const o1 = r % 2 === 0 ? runOurs(b, ps) : null;
          const c = cpp ? await runLlamaCpp(cpp, ps) : null;
          const o = o1 ?? runOurs(b, ps);
          ours.push(o.tokS);
          if (c) {
            theirs.push(c.tokS);
            ratio.push(o.tokS / c.tokS);
            // Greedy tokens agreeing with llama.cpp (leading run of row 0): a sanity check that
            // both run the same model (random weights can diverge later on near-ties).
            let k = 0;
            while (k < newTokens && o.tokens[0]![k] === c.tokens[0]![k]) k++;
            agree = k;
          }
          console.error(`  ${name} batch ${B} round ${r}: ours ${o.tokS.toFixed(1)} tok/s` +
            (c ? `, llama.cpp ${c.tokS.toFixed(1)} tok/s, ratio ${(o.tokS / c.tokS).toFixed(2)}` : ''));
        }
        rows.push({ model: name, batch: B, ours: median(ours), oursAll: ours, llamacpp: median(theirs), llamacppAll: theirs, ratio: median(ratio), ratioAll: ratio, agree, load });
      }
      if (cpp) await cpp.dispose();
    }
  } finally {
    if (llama) await llama.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const spread = (xs: number[], d = 1): string => (xs.length ? `${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)}` : '-');
  const header = ['model', 'batch', 'ours tok/s', 'min–max', 'llama.cpp tok/s', 'min–max', 'ratio (spread)', 'greedy agree', 'load'];
  const table = rows.map((r) => [String(r.model), String(r.batch), f(r.ours as number), spread(r.oursAll as number[]),
    f(r.llamacpp as number), spread(r.llamacppAll as number[]), `${f(r.ratio as number, 2)} (${spread(r.ratioAll as number[], 2)})`,
    Number.isFinite(r.agree) ? `${r.agree}/${newTokens}` : '-', spread(r.load as number[], 2)]);
  const w = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (t: string[]): string => t.map((x, i) => x.padEnd(w[i]!)).join('  ');
  console.log(`threads ${threads}, prompt ${promptLen} tokens, ${newTokens} new tokens per row, greedy, F32${noLlama ? `; ${noLlama}` : ''}`);
  console.log(line(header));
  for (const t of table) console.log(line(t));
  const jsonPath = arg('json', '');
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ threads, promptLen, newTokens, rows }, null, 1));
}

await main();
