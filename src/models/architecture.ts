// What an architecture file declares (llama.ts, gpt2.ts): how to read and write its config.json
// fields, how to build the model through one weight declaration `get(name, shape, init)`, how its
// weight names and layouts map to the Hugging Face files, and its PEFT (LoRA) target names. The
// registry (architectures.ts) derives everything else from this: config dispatch, the weight-name
// and shape table that loaders validate against, model construction.

import type { Tensor } from '../tensor/index.js';
import type { Weight, WeightMap } from '../tensor/weight-map.js';
import type { ConfigFields, ModelConfig, Architecture } from './config.js';
import type { CausalLM } from './model.js';

/** How a declared weight is initialized in a fresh model. */
export type WeightInit = 'normal' | 'ones' | 'zeros' | 'out';

/**
 * The one weight declaration: the constructor calls it for every parameter, with the model's own
 * name and layout. It returns the tensor (from a checkpoint, or freshly initialized); a constructor
 * must only store what it returns (the registry also runs it with shape-only placeholders).
 */
export type DeclareWeight = (name: string, shape: number[], init: WeightInit) => Tensor;

export interface ArchitectureDef {
  /** The ModelConfig.architecture values this file builds. */
  readonly names: readonly Architecture[];
  /** config.json "architectures" class names → architecture (e.g. LlamaForCausalLM → llama). */
  readonly hfClasses: Readonly<Record<string, Architecture>>;
  /** config.json "model_type" values → architecture (used when "architectures" is absent). */
  readonly modelTypes: Readonly<Record<string, Architecture>>;
  /** transformers' default for tie_word_embeddings. */
  readonly tiedByDefault: boolean;
  /** Parses the architecture's fields (the registry adds the checks common to all). */
  parseConfig(f: ConfigFields, architecture: Architecture): ModelConfig;
  /** Writes every field ModelConfig covers into `out` (a copy of the raw config.json), in the architecture's naming. */
  writeConfig(cfg: ModelConfig, out: Record<string, unknown>): void;
  /** Builds the model, declaring each weight through `get`. */
  build(config: ModelConfig, get: DeclareWeight): CausalLM;
  /** A model over checkpoint weights in Hugging Face names and layouts (shared where the layout allows). */
  fromWeights(config: ModelConfig, weights: WeightMap, source: string): CausalLM;
  /** A seeded random model. */
  random(config: ModelConfig, seed: number): CausalLM;
  /** Hugging Face file name of a declared weight (GPT-2: "transformer." prefix). */
  hfName(name: string): string;
  /** Whether a declared 2-D weight is stored transposed in the Hugging Face file (GPT-2's Conv1D weights: [in, out]). */
  hfTransposed(name: string): boolean;
  /** PEFT's default LoRA target modules (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
  readonly loraTargets: readonly string[];
  /** A linear layer's module path as PEFT names it. */
  peftPath(path: string): string;
  /** llama.cpp's (GGUF) layout, when the architecture exports there. */
  readonly gguf?: GgufLayout;
}

/** A GGUF hyper-parameter: key under "<arch>.", type, value. */
export type GgufParam = [key: string, type: 'u32' | 'f32' | 'string', value: number | string];

/**
 * How an architecture's declared weights map to llama.cpp's (convert_hf_to_gguf.py's) layout.
 * io/gguf.ts walks the declaration in order, reads each weight from the Hugging Face names, turns
 * it to the model layout ([out, in]), applies `layout`, and writes it under `name(...)`.
 */
export interface GgufLayout {
  /** llama.cpp's name of the architecture (general.architecture, the hyper-parameter prefix). */
  arch(cfg: ModelConfig): string;
  /** Throws, naming it, whatever llama.cpp's layout has no place for. */
  check(cfg: ModelConfig, source: string): void;
  /** Hyper-parameters, in file order. */
  params(cfg: ModelConfig): GgufParam[];
  /** GGUF tensor name of a declared weight (model name). */
  name(name: string): string;
  /** The weight in llama.cpp's layout (default: as declared). */
  layout?(name: string, w: Weight, cfg: ModelConfig): Weight;
  /** Tensors beyond the declared ones: each goes right after the GGUF tensor `after` (null: at the end). */
  extra?(cfg: ModelConfig, written: ReadonlyMap<string, Weight>): { after: string | null; name: string; weight: Weight }[];
}

/** A GGUF name from a table of (model-name pattern, GGUF name) pairs. */
export function ggufNameFrom(table: readonly [RegExp, string][], name: string): string {
  for (const [re, to] of table) if (re.test(name)) return name.replace(re, to);
  throw new Error(`GGUF export: no llama.cpp tensor for ${name}`);
}
