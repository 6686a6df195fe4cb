// Padding-free packing against padded batches: the policy forward + backward of DPO batches whose
// sequence lengths vary as in real preference data, same model, same tokens, one run.
//
//   npx tsc -p . && node dist/bench/padding-free.js [--config small|llama135|mid] [--pairs 4] [--min 64] [--max 512] [--rounds 3] [--threads 2]
//
// Lengths are drawn uniformly in [min, max] per sequence (seeded); the padded batch is padded to
// its longest row. Prints the wall time per batch of each mode (median over rounds, interleaved)
// and the share of padding in the padded batch.
import * as T from '../src/tensor/index.js';
import { kernels } from '../src/tensor/backend.js';
import { parseModelConfig } from '../src/io/config.js';
import { randomModel } from '../src/models/index.js';
import { sequenceLogps } from '../src/train/dpo.js';
import type { PreferenceBatch } from '../src/data/batch.js';
import { Rng } from '../src/tensor/random.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}
const CONFIGS: Record<string, Record<string, unknown>> = {
  mid: { architectures: ['LlamaForCausalLM'], vocab_size: 8192, hidden_size: 384, intermediate_size: 1024, num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 2, max_position_embeddings: 1024 },
  small: { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024 },
  llama135: {
    architectures: ['LlamaForCausalLM'], vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
    num_attention_heads: 9, num_key_value_heads: 3, max_position_embeddings: 1024, tie_word_embeddings: true,
  },
};
const configName = arg('config', 'mid');
kernels().setNumThreads(Number(arg('threads', '2')));
const pairs = Number(arg('pairs', '4')), lo = Number(arg('min', '64')), hi = Number(arg('max', '512')), rounds = Number(arg('rounds', '3'));
const cfg = parseModelConfig(CONFIGS[configName]!, configName);
const model = randomModel(cfg, 0);
const rng = new Rng(3);
const rows = 2 * pairs;
const lengths = Int32Array.from({ length: rows }, () => lo + rng.int(hi - lo + 1));
const S = Math.max(...lengths);
const inputIds = new Int32Array(rows * S), targets = new Int32Array(rows * S).fill(-1);
for (let r = 0; r < rows; r++) {
  const n = lengths[r]!, prompt = Math.floor(n / 4);
  for (let t = 0; t < n; t++) inputIds[r * S + t] = rng.int(cfg.vocabSize);
  for (let t = prompt; t + 1 < n; t++) targets[r * S + t] = inputIds[r * S + t + 1]!;
}
const batch: PreferenceBatch = { pairs, seqLen: S, inputIds, targets, lengths, responseTokens: lengths.map((n) => n - Math.floor(n / 4) - 1), indices: [] };
const real = lengths.reduce((a, b) => a + b, 0);

function step(paddingFree: boolean): number {
  const t0 = performance.now();
  const seq = sequenceLogps(model, batch, paddingFree, { sharePrompt: false });  // padded vs packed rows, the prompt twice
  T.backward(seq, new Float32Array(rows).fill(1));
  T.zeroGrad(model.trainableParameters());
  return (performance.now() - t0) / 1000;
}
step(false);
step(true);
const times: Record<'padded' | 'packed', number[]> = { padded: [], packed: [] };
for (let r = 0; r < rounds; r++) {
  times.padded.push(step(false));
  times.packed.push(step(true));
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const p = med(times.padded), k = med(times.packed);
console.log(`${configName}: ${rows} sequences, lengths ${lo}–${hi} (${real} real tokens, padded ${rows * S}: ${(100 * (1 - real / (rows * S))).toFixed(0)}% padding), ${kernels().numThreads()} threads`);
console.log(`  padded ${p.toFixed(3)} s/batch (${(real / p).toFixed(0)} real tok/s)   packed ${k.toFixed(3)} s/batch (${(real / k).toFixed(0)} real tok/s)   speed-up ${(p / k).toFixed(2)}x`);
