// LoRA adapters in PEFT's on-disk format: adapter_config.json + adapter_model.safetensors with
// keys "base_model.model.<module path>.lora_A.weight" ([r, in]) and ".lora_B.weight" ([out, r]),
// so adapters trained here load in PEFT (and PEFT adapters load here). Module paths as PEFT names
// them come from the architecture's declaration (peftModulePath).
//
// What PEFT (save_and_load.get_peft_model_state_dict) writes besides the adapters: the full weights
// of its `modules_to_save` under the module's own name, "base_model.model.<module>.<param>" (the
// ModulesToSaveWrapper's copy, adapter name stripped), e.g. "base_model.model.score.weight", the
// sequence-classification head TRL's RewardTrainer trains with task_type SEQ_CLS (PEFT adds
// "classifier" and "score" to modules_to_save for that task). The scaling of each adapter is
// lora_alpha / r, or lora_alpha / √r with use_rslora; rank_pattern / alpha_pattern override r and
// lora_alpha per module (the first key, a regular expression, that matches the end of the module
// path at a dot boundary, as PEFT's get_pattern_key).

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../tensor/random.js';
import type { Linear } from '../nn/linear.js';
import type { LoraSettings } from '../nn/lora.js';
import { peftModulePath } from '../models/architectures.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import type { Weight, WeightMap } from './weights.js';
import { writeFileAtomic } from '../util/fs.js';

const PREFIX = 'base_model.model.';

/** Full module path as PEFT names it (GPT-2 modules live under "transformer."). */
function peftPath(lin: Linear, architecture: string): string {
  return peftModulePath(architecture, lin.path);
}

export interface SavePeftOptions {
  /** PEFT task type (default CAUSAL_LM; SEQ_CLS for a reward model). */
  taskType?: 'CAUSAL_LM' | 'SEQ_CLS';
  /** Full weights of modules_to_save by their name in the model ("score.weight"). */
  saved?: WeightMap;
}

export function savePeftAdapter(dir: string, linears: readonly Linear[], s: LoraSettings, architecture: string, baseModel: string, opts: SavePeftOptions = {}): void {
  mkdirSync(dir, { recursive: true });
  const weights: WeightMap = new Map();
  for (const l of linears) {
    if (!l.lora) continue;
    const p = `${PREFIX}${peftPath(l, architecture)}`;
    weights.set(`${p}.lora_A.weight`, { shape: [...l.lora.A.shape], data: l.lora.A.data as Float32Array });
    weights.set(`${p}.lora_B.weight`, { shape: [...l.lora.B.shape], data: l.lora.B.data as Float32Array });
  }
  if (weights.size === 0) throw new Error('savePeftAdapter: the model has no LoRA adapters');
  const saved = opts.saved ?? new Map();
  for (const [name, w] of saved) weights.set(`${PREFIX}${name}`, w);
  writeSafetensors(join(dir, 'adapter_model.safetensors'), weights);
  const modules = [...new Set([...saved.keys()].map((k) => k.split('.').slice(0, -1).join('.')))];
  const config = {
    peft_type: 'LORA',
    task_type: opts.taskType ?? 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: s.r,
    lora_alpha: s.alpha,
    lora_dropout: s.dropout,
    target_modules: [...s.targetModules],
    bias: 'none',
    fan_in_fan_out: architecture === 'gpt2',
    inference_mode: true,
    use_rslora: s.rslora ?? false,
    modules_to_save: modules.length > 0 ? modules : null,
  };
  writeFileAtomic(join(dir, 'adapter_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

export function isPeftAdapterDir(dir: string): boolean {
  return existsSync(join(dir, 'adapter_config.json'));
}

/** One adapted module of a PEFT LoRA file. */
export interface PeftModuleAdapter {
  A: Weight;
  B: Weight;
  rank: number;
  alpha: number;
}

/** A PEFT LoRA adapter as read from disk, checked against everything a merge must honour. */
export interface PeftAdapter extends LoraSettings {
  configPath: string;
  taskType: string | null;
  baseModel: string | null;
  /** By PEFT module path without "base_model.model." ("model.layers.0.self_attn.q_proj"). */
  modules: Map<string, PeftModuleAdapter>;
  /** modules_to_save: full weights by their name in the base model ("score.weight", "lm_head.weight"). */
  saved: WeightMap;
}

/** PEFT's get_pattern_key: the first rank_pattern / alpha_pattern key naming this module. */
function patternValue(pattern: unknown, modulePath: string): number | undefined {
  if (typeof pattern !== 'object' || pattern === null) return undefined;
  for (const [key, v] of Object.entries(pattern as Record<string, unknown>)) {
    const re = new RegExp(`^(.*\\.)?(${key})$`); // PEFT: re.match(rf"(.*\.)?({key})$", module_name)
    if (re.test(modulePath)) return Number(v);
  }
  return undefined;
}

/** Reads and checks a PEFT LoRA adapter directory; refuses, by name, any setting a merge would get wrong. */
export function readPeftAdapter(dir: string): PeftAdapter {
  const cfgPath = join(dir, 'adapter_config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`PEFT adapter ${cfgPath}: ${(e as Error).message}`);
  }
  if (cfg.peft_type !== 'LORA') throw new Error(`PEFT adapter ${cfgPath}: peft_type ${String(cfg.peft_type)} is not supported (only LORA)`);
  const r = Number(cfg.r), alpha = Number(cfg.lora_alpha ?? 8); // PEFT LoraConfig default lora_alpha 8
  if (!(r > 0) || !Number.isInteger(r)) throw new Error(`PEFT adapter ${cfgPath}: invalid r ${String(cfg.r)}`);
  if (!(alpha > 0)) throw new Error(`PEFT adapter ${cfgPath}: invalid lora_alpha ${String(cfg.lora_alpha)}`);
  const nonEmpty = (v: unknown): boolean => v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0) && !(typeof v === 'object' && Object.keys(v as object).length === 0);
  // Settings that change what the adapter computes beyond W + s·B·A (or add weights we do not model).
  const unsupported = [
    cfg.use_dora === true && 'use_dora (weight-decomposed LoRA)',
    cfg.bias !== undefined && cfg.bias !== 'none' && `bias "${String(cfg.bias)}"`,
    cfg.lora_bias === true && 'lora_bias',
    nonEmpty(cfg.layer_replication) && 'layer_replication',
    nonEmpty(cfg.trainable_token_indices) && 'trainable_token_indices',
    nonEmpty(cfg.target_parameters) && 'target_parameters',
  ].filter((x): x is string => typeof x === 'string');
  if (unsupported.length > 0) throw new Error(`PEFT adapter ${cfgPath}: ${unsupported.join(', ')} not supported (LoRA on linear layers, bias "none"; rsLoRA, rank_pattern, alpha_pattern and modules_to_save are)`);
  const toSave = Array.isArray(cfg.modules_to_save) ? (cfg.modules_to_save as unknown[]).map(String) : [];
  const rslora = cfg.use_rslora === true;
  const file = join(dir, 'adapter_model.safetensors');
  if (!existsSync(file)) throw new Error(`PEFT adapter ${dir}: no adapter_model.safetensors`);
  const weights = readSafetensors(file);
  const modules = new Map<string, PeftModuleAdapter>();
  const saved: WeightMap = new Map();
  for (const [key, w] of weights) {
    if (!key.startsWith(PREFIX)) throw new Error(`PEFT adapter ${file}: tensor ${key} does not start with "${PREFIX}" (not a PeftModel's LoRA file)`);
    const name = key.slice(PREFIX.length);
    const m = /^(.+)\.lora_([AB])\.weight$/.exec(name);
    if (m) {
      const entry = modules.get(m[1]!) ?? ({} as PeftModuleAdapter);
      entry[m[2] as 'A' | 'B'] = w;
      modules.set(m[1]!, entry);
      continue;
    }
    const module = name.split('.').slice(0, -1).join('.');
    if (!/\blora_/.test(name) && toSave.some((t) => module === t || module.endsWith(`.${t}`))) {
      saved.set(name, w);
      continue;
    }
    throw new Error(`PEFT adapter ${file}: tensor ${key} is neither a LoRA lora_A/lora_B weight nor a weight of modules_to_save ${JSON.stringify(toSave)}`);
  }
  for (const [path, e] of modules) {
    if (!e.A || !e.B) throw new Error(`PEFT adapter ${file}: ${PREFIX}${path} has only one of lora_A / lora_B`);
    const rank = patternValue(cfg.rank_pattern, path) ?? r;
    if (e.A.shape.length !== 2 || e.B.shape.length !== 2 || e.A.shape[0] !== rank || e.B.shape[1] !== rank) {
      throw new Error(`PEFT adapter ${file}: ${PREFIX}${path} has lora_A [${e.A.shape}] and lora_B [${e.B.shape}], expected rank ${rank} (r${patternValue(cfg.rank_pattern, path) !== undefined ? ' from rank_pattern' : ''})`);
    }
    e.rank = rank;
    e.alpha = patternValue(cfg.alpha_pattern, path) ?? alpha;
  }
  if (modules.size === 0) throw new Error(`PEFT adapter ${file}: no lora_A / lora_B tensors`);
  return {
    configPath: cfgPath, taskType: typeof cfg.task_type === 'string' ? cfg.task_type : null,
    baseModel: typeof cfg.base_model_name_or_path === 'string' ? cfg.base_model_name_or_path : null,
    r, alpha, dropout: Number(cfg.lora_dropout ?? 0), rslora,
    targetModules: Array.isArray(cfg.target_modules) ? (cfg.target_modules as string[]) : typeof cfg.target_modules === 'string' ? [cfg.target_modules] : [],
    modules, saved,
  };
}

/** Attaches an adapter read by readPeftAdapter to the model's matching linear layers (every adapted module must match). */
export function attachPeftAdapter(adapter: PeftAdapter, linears: readonly Linear[], architecture: string): void {
  const rng = new Rng(0);
  let attached = 0;
  for (const l of linears) {
    const path = peftPath(l, architecture);
    const e = adapter.modules.get(path);
    if (!e) continue;
    const lora = l.attachLora(e.rank, e.alpha, adapter.dropout, rng, adapter.rslora ?? false);
    if (e.A.data.length !== lora.A.size || e.B.data.length !== lora.B.size) {
      throw new Error(`PEFT adapter ${adapter.configPath}: ${PREFIX}${path} has shapes [${e.A.shape}] / [${e.B.shape}], expected [${lora.A.shape}] / [${lora.B.shape}]`);
    }
    lora.A.data.set(e.A.data);
    lora.B.data.set(e.B.data);
    attached++;
  }
  if (attached !== adapter.modules.size) {
    const known = new Set(linears.map((l) => peftPath(l, architecture)));
    const missing = [...adapter.modules.keys()].filter((p) => !known.has(p));
    throw new Error(`PEFT adapter ${adapter.configPath}: ${adapter.modules.size} adapted modules in the file, ${attached} match this model (no ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''})`);
  }
}

/**
 * Reads a PEFT LoRA adapter and attaches it to the matching layers. Returns the settings. An adapter
 * with modules_to_save weights is refused here (they replace base weights: readPeftAdapter + attachPeftAdapter
 * let the caller place them).
 */
export function loadPeftAdapter(dir: string, linears: readonly Linear[], architecture: string): LoraSettings & { baseModel: string | null } {
  const adapter = readPeftAdapter(dir);
  if (adapter.saved.size > 0) throw new Error(`PEFT adapter ${dir}: modules_to_save weights (${[...adapter.saved.keys()].join(', ')}) are not loaded onto a training model; import the run with \`dpo import-run\`, which places them`);
  attachPeftAdapter(adapter, linears, architecture);
  const { r, alpha, dropout, targetModules, rslora, baseModel } = adapter;
  return { r, alpha, dropout, targetModules, ...(rslora ? { rslora } : {}), baseModel };
}
