// What the page does with the library, in one place (the Web Worker runs it; the Node tests run
// the same bundle): load a model from the volume, sample two answers per prompt, train with the
// library's DPO trainer (runDpo) on the labels, answer before/after with implicit rewards, and
// export through the library's writers. No Node built-ins: file access is the volume's.
import { setKernels } from '../tensor/backend.js';
import type { Kernels } from '../tensor/kernels.js';
import { referenceKernels } from '../tensor/reference/index.js';
import { createModel, type CausalLM } from '../models/index.js';
import { loadModelAndTokenizer } from '../io/load-model.js';
import { generate } from '../models/generate.js';
import type { Tokenizer } from '../models/tokenizer.js';
import type { GenerationDefaults } from '../io/config.js';
import { cloneWeights, type WeightMap } from '../io/weights.js';
import { convertModel } from '../io/convert.js';
import { attachLora } from '../nn/lora.js';
import { modelCandidateGenerator, promptText } from '../annotate/local-model.js';
import { loadPreferenceData } from '../data/load.js';
import { runDpo } from '../train/dpo.js';
import { saveTrainedModel } from '../train/setup.js';
import { scorePairs } from '../eval/score.js';
import type { DpoConfigInput } from '../train/config.js';
import type { StepRecord } from '../train/loop.js';
import { volume } from './volume.js';
import type { PreferenceRow } from './labels.js';

export type { PreferenceRow };

export interface ModelInfo {
  source: string;
  format: string;
  architecture: string;
  parameters: number;
  vocabSize: number;
  layers: number;
  hidden: number;
  maxPositions: number;
}

export interface SampleSettings {
  temperature: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
}

export const DEFAULT_SAMPLING: SampleSettings = { temperature: 1, topP: 0.95, maxNewTokens: 48, seed: 1 };


/** The page's training settings; everything else is DPOConfig's default. */
export interface TrainSettings {
  beta: number;
  lossType: string;
  learningRate: number;
  steps: number;
  lora: boolean;
  loraR?: number;
  batchSize?: number;
  seed?: number;
}

/** The DPOConfig (TRL names) a page run uses: `dpo train --config` with this file repeats it. */
export function dpoConfigOf(s: TrainSettings): DpoConfigInput {
  return {
    beta: s.beta,
    loss_type: s.lossType,
    learning_rate: s.learningRate,
    max_steps: s.steps,
    per_device_train_batch_size: s.batchSize ?? 4,
    logging_steps: 1,
    seed: s.seed ?? 42,
    use_peft: s.lora,
    ...(s.lora ? { lora_r: s.loraR ?? 8, lora_alpha: 2 * (s.loraR ?? 8) } : {}),
  } as DpoConfigInput;
}

export interface CompareRow {
  prompt: string;
  before: string;
  after: string;
  /** β·(log π − log π_ref) of each answer under the trained policy against the loaded model. */
  rewardBefore: number;
  rewardAfter: number;
}

export class WebEngine {
  private model: CausalLM | null = null;
  private tokenizer: Tokenizer | null = null;
  private generation: GenerationDefaults | null = null;
  private source = '';
  private format = '';
  /** The weights as loaded: the reference of every run and the "before" of the comparison. */
  private initial: WeightMap | null = null;
  private lastBeta = 0.1;
  private exports = 0;

  constructor(kernels: Kernels = referenceKernels) {
    setKernels(kernels);
  }

  /** Puts files into the volume (paths absolute, e.g. /models/mine/config.json). */
  addFiles(files: readonly { path: string; bytes: Uint8Array }[]): void {
    for (const f of files) volume.writeFile(f.path, f.bytes);
  }

  /** Removes a directory of the volume (a failed or replaced upload). */
  removeDir(path: string): void {
    if (volume.exists(path)) volume.remove(path, true);
  }

  /**
   * Loads a Hugging Face directory or llama2.c checkpoint from the volume with the library's loader
   * (its errors name the file and field). The previous model stays loaded when this one fails.
   */
  async load(path: string): Promise<ModelInfo> {
    const loaded = await loadModelAndTokenizer(path);
    this.model = loaded.model;
    this.tokenizer = loaded.tokenizer;
    this.generation = loaded.generation;
    this.source = loaded.source;
    this.format = loaded.format;
    this.initial = cloneWeights(loaded.model.exportWeights());
    return this.info();
  }

  info(): ModelInfo {
    const m = this.need();
    const c = m.config;
    let n = 0;
    for (const t of m.parameters().values()) n += t.size;
    return { source: this.source, format: this.format, architecture: c.architecture, parameters: n, vocabSize: c.vocabSize, layers: c.numLayers, hidden: c.hiddenSize, maxPositions: c.maxPositions };
  }

  private need(): CausalLM {
    if (!this.model || !this.tokenizer) throw new Error('no model loaded');
    return this.model;
  }

  /** Two sampled answers per prompt (annotate's generator: a prompt's seed comes from its text). */
  async sample(prompts: readonly string[], s: SampleSettings = DEFAULT_SAMPLING): Promise<{ prompt: string; a: string; b: string }[]> {
    const gen = modelCandidateGenerator(this.need(), this.tokenizer!, this.source);
    const out: { prompt: string; a: string; b: string }[] = [];
    for (const prompt of prompts) {
      const [a, b] = await gen(prompt, 2, { temperature: s.temperature, topP: s.topP, topK: 0, maxNewTokens: s.maxNewTokens, seed: s.seed });
      out.push({ prompt, a: a!, b: b! });
    }
    return out;
  }

  /** Reads a preference file from the volume with the library's reader (errors name file and line). */
  async readPreferences(path: string): Promise<PreferenceRow[]> {
    const data = await loadPreferenceData(path);
    return data.examples.map((e) => {
      const x = e as unknown as { prompt?: unknown; chosen?: unknown; rejected?: unknown };
      if (typeof x.prompt !== 'string' || typeof x.chosen !== 'string' || typeof x.rejected !== 'string') {
        throw new Error(`${path}: only plain-text prompt/chosen/rejected pairs can be labelled here (format ${data.format})`);
      }
      return { prompt: x.prompt, chosen: x.chosen, rejected: x.rejected };
    });
  }

  /**
   * Trains the loaded model in place with runDpo (reference: the loaded weights). `onStep` gets
   * every step's metrics; aborting `signal` stops between micro-batches and keeps the weights so far.
   */
  async train(rows: readonly PreferenceRow[], s: TrainSettings, onStep: (r: StepRecord) => void, signal?: AbortSignal): Promise<{ steps: number; stopped: boolean }> {
    const model = this.need();
    if (rows.length === 0) throw new Error('no labelled pairs to train on (label some answers or import a preference JSONL)');
    // Each run starts from the loaded weights with the loaded model as its reference, so a second
    // run is the same as a first run with the new labels.
    this.reset();
    let steps = 0;
    const run = runDpo({
      model: { model, source: this.source, format: this.format as 'hf', generation: this.generation },
      tokenizer: this.tokenizer!,
      data: rows.map((r) => ({ ...r })),
      config: dpoConfigOf(s),
      quiet: true,
      signal,
      on: { step: (r) => { steps = r.step; onStep(r); } },
    });
    try {
      await run;
    } catch (e) {
      if (!signal?.aborted) throw e;
      return { steps, stopped: true };
    }
    this.lastBeta = s.beta;
    return { steps, stopped: false };
  }

  /** Back to the loaded weights (adapters dropped). */
  reset(): void {
    const model = this.need();
    for (const lin of model.linears()) lin.lora = null;
    for (const [name, t] of model.parameters()) {
      const w = this.initial!.get(name);
      if (w) t.data.set(w.data);
      t.requiresGrad = true;
    }
  }

  /** The reference: the loaded weights in a model of their own. */
  private referenceModel(): CausalLM {
    return createModel(this.need().config, cloneWeights(this.initial!), `${this.source} (as loaded)`);
  }

  /** The trained weights with LoRA adapters merged (Linear.mergeLora on a copy), what exports write. */
  mergedWeights(): WeightMap {
    const model = this.need();
    if (!model.linears().some((l) => l.lora)) return model.exportWeights();
    const copy = createModel(model.config, cloneWeights(model.exportWeights()), 'merged copy');
    const byPath = new Map(copy.linears().map((l) => [l.path, l]));
    for (const lin of model.linears()) {
      if (!lin.lora) continue;
      const c = byPath.get(lin.path)!;
      attachLora([c], { r: lin.lora.rank, alpha: lin.lora.alpha, dropout: 0, targetModules: [lin.path.split('.').at(-1)!] }, 0);
      c.lora!.A.data.set(lin.lora.A.data);
      c.lora!.B.data.set(lin.lora.B.data);
      c.mergeLora();
    }
    return copy.exportWeights();
  }

  /**
   * The same prompts answered by the loaded and the trained model (same seeds, so only the weights
   * differ), with each answer's implicit reward under the trained policy (the library's scorePairs).
   */
  async compare(prompts: readonly string[], s: SampleSettings = DEFAULT_SAMPLING): Promise<CompareRow[]> {
    const model = this.need(), tok = this.tokenizer!;
    const ref = this.referenceModel();
    const answer = (m: CausalLM, prompt: string, i: number): string => {
      const text = promptText(tok, prompt);
      const room = m.config.maxPositions - tok.encode(text).length;
      if (room < 1) throw new Error(`prompt "${prompt.slice(0, 40)}" fills the model's ${m.config.maxPositions} positions`);
      return generate(m, tok, [text], { temperature: s.temperature, topP: s.topP, maxNewTokens: Math.min(s.maxNewTokens, room), seed: s.seed + i, stopIds: tok.stopIds }).texts[0]!;
    };
    const rows = prompts.map((prompt, i) => ({ prompt, before: answer(ref, prompt, i), after: answer(model, prompt, i) }));
    const scored = await scorePairs({
      model,
      ref,
      tokenizer: tok,
      data: rows.map((r) => ({ prompt: r.prompt, chosen: r.after || ' ', rejected: r.before || ' ' })),
      beta: this.lastBeta,
      quiet: true,
    });
    const byIndex = new Map(scored.pairs.map((p) => [p.index, p]));
    return rows.map((r, i) => ({ ...r, rewardAfter: byIndex.get(i)?.chosenReward ?? NaN, rewardBefore: byIndex.get(i)?.rejectedReward ?? NaN }));
  }

  /** The trained model as a Hugging Face directory (the library's writer): its files by name. */
  exportHf(): [string, Uint8Array][] {
    const model = this.need();
    const dir = `/export/hf-${++this.exports}`;
    const merged = createModel(model.config, this.mergedWeights(), 'export');
    saveTrainedModel(dir, { model: merged, tokenizer: this.tokenizer!, generation: this.generation });
    const files = volume.walk(dir);
    volume.remove(dir, true);
    return files;
  }

  /** The trained model as GGUF (llama.cpp), converted from the Hugging Face export by `dpo convert`'s code. */
  async exportGguf(dtype: 'f32' | 'f16' = 'f32'): Promise<Uint8Array> {
    const files = this.exportHf();
    const dir = `/export/gguf-src-${this.exports}`;
    for (const [name, bytes] of files) volume.writeFile(`${dir}/${name}`, bytes);
    const out = `/export/model-${this.exports}.gguf`;
    try {
      await convertModel(dir, out, { dtype });
      return volume.readFile(out);
    } finally {
      volume.remove(dir, true);
      if (volume.exists(out)) volume.remove(out);
    }
  }
}
