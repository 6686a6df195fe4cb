// `dpo demo --two-groups`: whose preferences does a model learn? Two simulated labeller groups
// judge the same kind of pairs with opposite preferences on one attribute (responses made of
// letters a–m or of n–z); one group gives most of the labels. DPO on the pooled data, then the
// implicit-reward accuracy per group on held-out pairs (equal numbers from each group): the
// model learns the majority's taste, and the slice gap shows it.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { llamaConfig } from '../models/architectures.js';
import { saveHfDirectory } from '../io/hf-dir.js';
import { saveTokenizerFiles, trainByteLevelBpe } from '../io/tokenizers/index.js';
import { sliceTable, type SliceReport } from '../losses/reward.js';
import { randomModel } from '../models/index.js';
import { Rng } from '../tensor/random.js';
import { parseDpoConfig } from '../train/config.js';
import { runDpo } from '../train/dpo.js';
import { scorePairs } from '../eval/score.js';

export interface TwoGroupOptions {
  out: string;
  /** Share of the training labels given by the majority group (default 0.8). */
  majorityShare?: number;
  trainPairs?: number;
  /** Held-out pairs per group. */
  evalPairsPerGroup?: number;
  steps?: number;
  seed?: number;
  quiet?: boolean;
}

export interface TwoGroupResult {
  out: string;
  trainPairs: number;
  majorityShare: number;
  bySlice: SliceReport;
  accuracy: number;
}

export const MAJORITY = 'majority';
export const MINORITY = 'minority';

interface Row {
  prompt: string;
  chosen: string;
  rejected: string;
  group: string;
}

/**
 * Pairs of responses that differ in one attribute: one response uses letters a–m, the other n–z.
 * The majority group prefers a–m, the minority n–z.
 */
export function twoGroupPairs(n: number, majorityShare: number, seed: number): Row[] {
  const r = new Rng(seed);
  const word = (lo: number): string => Array.from({ length: 2 + r.int(3) }, () => String.fromCharCode(97 + lo + r.int(13))).join('');
  const rows: Row[] = [];
  const nMajority = Math.round(n * majorityShare);
  for (let i = 0; i < n; i++) {
    const prompt = `Q${r.int(1000)}: ${word(r.int(2) * 13)} ${word(r.int(2) * 13)}?`;
    const first = ` ${word(0)} ${word(0)}.`;
    const second = ` ${word(13)} ${word(13)}.`;
    const group = i < nMajority ? MAJORITY : MINORITY;
    rows.push(group === MAJORITY ? { prompt, chosen: first, rejected: second, group } : { prompt, chosen: second, rejected: first, group });
  }
  // Interleave the groups (training order should not separate them).
  for (let i = rows.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  return rows;
}

const jsonl = (path: string, rows: readonly object[]): string => {
  writeFileSync(path, rows.map((x) => JSON.stringify(x)).join('\n') + '\n');
  return path;
};

export async function runTwoGroupDemo(o: TwoGroupOptions): Promise<TwoGroupResult> {
  const out = resolve(o.out);
  const seed = o.seed ?? 0;
  const share = o.majorityShare ?? 0.8;
  if (!(share > 0.5 && share < 1)) throw new Error(`demo --two-groups: the majority share must be in (0.5, 1), got ${share}`);
  const log = (m: string) => {
    if (!o.quiet) process.stderr.write(`${m}\n`);
  };
  const nTrain = o.trainPairs ?? 160;
  const nEval = o.evalPairsPerGroup ?? 32;
  mkdirSync(join(out, 'data'), { recursive: true });
  const train = twoGroupPairs(nTrain, share, seed + 1);
  const held = [...twoGroupPairs(nEval * 2, 0.5, seed + 2)];
  const trainFile = jsonl(join(out, 'data', 'train.jsonl'), train);
  const evalFile = jsonl(join(out, 'data', 'heldout.jsonl'), held);

  // A tiny Llama with a tokenizer trained on the task's text.
  const base = join(out, 'base');
  mkdirSync(base, { recursive: true });
  const text = twoGroupPairs(400, 0.5, seed + 99).flatMap((p) => [p.prompt + p.chosen, p.prompt + p.rejected]);
  const tok = trainByteLevelBpe(text, { vocabSize: 320, specialTokens: ['<|endoftext|>', '<|bos|>'], minFrequency: 2 });
  await saveTokenizerFiles(base, tok, { bos: '<|bos|>', eos: '<|endoftext|>', pad: '<|endoftext|>', addBos: true });
  const cfg = llamaConfig({
    vocabSize: 320, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2,
    maxPositions: 128, tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: [0],
  });
  saveHfDirectory(base, { config: cfg, weights: randomModel(cfg, seed + 1).exportWeights() });

  log(`two groups: ${train.filter((x) => x.group === MAJORITY).length} pairs from the majority, ${train.filter((x) => x.group === MINORITY).length} from the minority (opposite preference); DPO on all of them`);
  const policy = join(out, 'policy');
  const r = await runDpo({
    model: base, data: [trainFile], outputDir: policy, quiet: o.quiet ?? false,
    config: parseDpoConfig({
      learning_rate: 3e-3, beta: 0.1, per_device_train_batch_size: 8, max_length: 64, max_prompt_length: 32,
      logging_steps: 5, save_steps: 0, seed: seed + 7, warmup_ratio: 0, lr_scheduler_type: 'constant', max_steps: o.steps ?? 40,
    }),
  });
  if (r.stoppedBecause) throw new Error(`demo --two-groups: DPO stopped: ${r.stoppedBecause}`);
  const scored = await scorePairs({ model: policy, ref: base, data: [evalFile], beta: 0.1, slice: ['group'], quiet: true });
  const bySlice = scored.bySlice[0]!;
  const result: TwoGroupResult = { out, trainPairs: train.length, majorityShare: share, bySlice, accuracy: scored.summary.accuracy.accuracy };
  writeFileSync(join(out, 'two_groups.json'), `${JSON.stringify(result, null, 2)}\n`);
  if (!o.quiet) {
    process.stdout.write(
      `\nheld-out implicit-reward accuracy ${result.accuracy.toFixed(3)} overall; per labeller group:\n${sliceTable(bySlice)}` +
        `The model learned the ${bySlice.best} group's preference and not the ${bySlice.worst} group's; ` +
        `\`dpo annotate export --group-balance\` and \`dpo data check --slice\` show and reduce such gaps.\n`,
    );
  }
  return result;
}
