// The architecture registry: every architecture file's ArchitectureDef, and what is derived from
// them — config.json ⇄ ModelConfig, model construction, the weight-name/shape table loaders
// validate against (by running the weight declaration), PEFT names. Adding an architecture:
// write its file (see ARCHITECTURE.md) and list its def here.

import type { Tensor } from '../tensor/index.js';
import type { WeightMap } from '../tensor/weight-map.js';
import type { ArchitectureDef } from './architecture.js';
import { ConfigFields, configError, idOrList, type Architecture, type ModelConfig } from './config.js';
import type { CausalLM } from './model.js';
import { GPT2 } from './gpt2.js';
import { LLAMA, llamaConfigJson } from './llama.js';

export const ARCHITECTURES: readonly ArchitectureDef[] = [LLAMA, GPT2];

/** Human-readable list of what loads (for help texts). */
export const SUPPORTED_ARCHITECTURES = ['llama (Llama 2/3, SmolLM, TinyLlama, Mistral)', 'qwen2', 'gpt2'];

/** The def that builds `architecture`. */
export function architectureDef(architecture: Architecture | string): ArchitectureDef {
  const def = ARCHITECTURES.find((a) => (a.names as readonly string[]).includes(architecture));
  if (!def) throw new Error(`unknown architecture ${JSON.stringify(architecture)} (known: ${ARCHITECTURES.flatMap((a) => a.names).join(', ')})`);
  return def;
}

function detectArchitecture(f: ConfigFields): [ArchitectureDef, Architecture] {
  const classes = Object.assign({}, ...ARCHITECTURES.map((a) => a.hfClasses)) as Record<string, Architecture>;
  const types = Object.assign({}, ...ARCHITECTURES.map((a) => a.modelTypes)) as Record<string, Architecture>;
  const supported = `supported: ${Object.keys(classes).join(', ')} (model_type ${Object.keys(types).join(', ')})`;
  const archs = f.raw.architectures;
  let arch: Architecture | undefined;
  if (Array.isArray(archs) && archs.length > 0) {
    for (const a of archs) if (typeof a === 'string' && a in classes) { arch = classes[a]!; break; }
    if (!arch) throw configError(f.source, `unsupported architecture ${JSON.stringify(archs)}; ${supported}`);
  } else {
    const mt = f.raw.model_type;
    if (typeof mt === 'string' && mt in types) arch = types[mt]!;
    else throw configError(f.source, `unsupported or missing model_type ${JSON.stringify(mt)} and no "architectures"; ${supported}`);
  }
  return [architectureDef(arch), arch];
}

/** Parses an already-loaded config.json object. `source` names it in errors. */
export function parseModelConfig(raw: Record<string, unknown>, source = 'config.json'): ModelConfig {
  const f = new ConfigFields(raw, source);
  const [def, architecture] = detectArchitecture(f);
  const cfg = def.parseConfig(f, architecture);
  if (cfg.ropeTheta < 0) throw configError(source, `rope_theta must be positive, got ${cfg.ropeTheta}`);
  if (!(cfg.normEps > 0)) throw configError(source, `norm epsilon must be positive, got ${cfg.normEps}`);
  return cfg;
}

/**
 * The config.json object for `cfg`: the raw fields it was parsed from (unknown ones kept), with
 * every field ModelConfig covers overwritten in the architecture's own naming.
 */
export function toHfConfigJson(cfg: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...cfg.raw };
  const def = architectureDef(cfg.architecture);
  def.writeConfig(cfg, out);
  // Only write tie_word_embeddings when it differs from transformers' default or was given.
  if (out.tie_word_embeddings !== undefined || cfg.tieWordEmbeddings !== def.tiedByDefault) out.tie_word_embeddings = cfg.tieWordEmbeddings;
  out.bos_token_id = cfg.bosTokenId;
  out.eos_token_id = idOrList(cfg.eosTokenId);
  if (cfg.padTokenId !== null || out.pad_token_id !== undefined) out.pad_token_id = cfg.padTokenId;
  return out;
}

/** A Llama ModelConfig from its dimensions (for checkpoints without config.json, e.g. llama2.c). */
export function llamaConfig(p: Parameters<typeof llamaConfigJson>[0]): ModelConfig {
  return parseModelConfig(llamaConfigJson(p), 'llamaConfig');
}

export function createModel(config: ModelConfig, weights: WeightMap, source = 'weights'): CausalLM {
  return architectureDef(config.architecture).fromWeights(config, weights, source);
}

export function randomModel(config: ModelConfig, seed = 0): CausalLM {
  return architectureDef(config.architecture).random(config, seed);
}

/** A declared parameter: model name and layout, and where and how the Hugging Face file stores it. */
export interface DeclaredWeight {
  name: string;
  shape: number[];
  hfName: string;
  hfShape: number[];
  /** Stored [in, out] in the file (GPT-2's Conv1D). */
  hfTransposed: boolean;
}

/**
 * Every parameter the architecture declares, by its model name, with its shape and Hugging Face
 * file name and layout: derived by running the constructor with shape-only placeholders (nothing
 * is allocated).
 */
export function declaredWeights(cfg: ModelConfig): DeclaredWeight[] {
  const def = architectureDef(cfg.architecture);
  const out: DeclaredWeight[] = [];
  def.build(cfg, (name, shape) => {
    const hfTransposed = def.hfTransposed(name);
    out.push({ name, shape: [...shape], hfName: def.hfName(name), hfShape: hfTransposed ? [shape[1]!, shape[0]!] : [...shape], hfTransposed });
    return Object.freeze({ name, shape: Object.freeze([...shape]) }) as unknown as Tensor;
  });
  return out;
}

/**
 * Hugging Face name → shape in the file of every parameter of the architecture. lm_head.weight is
 * listed only for untied models (for tied ones it may be present or absent).
 */
export function expectedWeightShapes(cfg: ModelConfig): Map<string, number[]> {
  return new Map(declaredWeights(cfg).map((w) => [w.hfName, w.hfShape]));
}

/** PEFT's default LoRA targets for an architecture. */
export function defaultLoraTargets(architecture: string): string[] {
  return [...architectureDef(architecture).loraTargets];
}

/** A linear layer's module path as PEFT names it (GPT-2 modules live under "transformer."). */
export function peftModulePath(architecture: string, path: string): string {
  return architectureDef(architecture).peftPath(path);
}

