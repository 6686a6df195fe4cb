// LoRA adapters in PEFT's on-disk format: adapter_config.json + adapter_model.safetensors with
// keys "base_model.model.<module path>.lora_A.weight" ([r, in]) and ".lora_B.weight" ([out, r]),
// so adapters trained here load in PEFT (and PEFT adapters load here). Module paths as PEFT names
// them come from the architecture's declaration (peftModulePath).

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../tensor/random.js';
import type { Linear } from '../nn/linear.js';
import type { LoraSettings } from '../nn/lora.js';
import { peftModulePath } from '../models/architectures.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import type { WeightMap } from './weights.js';
import { writeFileAtomic } from '../util/fs.js';

/** Full module path as PEFT names it (GPT-2 modules live under "transformer."). */
function peftPath(lin: Linear, architecture: string): string {
  return peftModulePath(architecture, lin.path);
}

export function savePeftAdapter(dir: string, linears: readonly Linear[], s: LoraSettings, architecture: string, baseModel: string): void {
  mkdirSync(dir, { recursive: true });
  const weights: WeightMap = new Map();
  for (const l of linears) {
    if (!l.lora) continue;
    const p = `base_model.model.${peftPath(l, architecture)}`;
    weights.set(`${p}.lora_A.weight`, { shape: [...l.lora.A.shape], data: l.lora.A.data as Float32Array });
    weights.set(`${p}.lora_B.weight`, { shape: [...l.lora.B.shape], data: l.lora.B.data as Float32Array });
  }
  if (weights.size === 0) throw new Error('savePeftAdapter: the model has no LoRA adapters');
  writeSafetensors(join(dir, 'adapter_model.safetensors'), weights);
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: s.r,
    lora_alpha: s.alpha,
    lora_dropout: s.dropout,
    target_modules: [...s.targetModules],
    bias: 'none',
    fan_in_fan_out: architecture === 'gpt2',
    inference_mode: true,
    modules_to_save: null,
  };
  writeFileAtomic(join(dir, 'adapter_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

export function isPeftAdapterDir(dir: string): boolean {
  return existsSync(join(dir, 'adapter_config.json'));
}

/** Reads a PEFT LoRA adapter and attaches it to the matching layers. Returns the settings. */
export function loadPeftAdapter(dir: string, linears: readonly Linear[], architecture: string): LoraSettings & { baseModel: string | null } {
  const cfgPath = join(dir, 'adapter_config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`PEFT adapter ${cfgPath}: ${(e as Error).message}`);
  }
  if (cfg.peft_type !== 'LORA') throw new Error(`PEFT adapter ${cfgPath}: peft_type ${String(cfg.peft_type)} is not supported (only LORA)`);
  const r = Number(cfg.r), alpha = Number(cfg.lora_alpha ?? r);
  if (!(r > 0)) throw new Error(`PEFT adapter ${cfgPath}: invalid r ${String(cfg.r)}`);
  const weights = readSafetensors(join(dir, 'adapter_model.safetensors'));
  const rng = new Rng(0);
  let attached = 0;
  for (const l of linears) {
    const p = `base_model.model.${peftPath(l, architecture)}`;
    const A = weights.get(`${p}.lora_A.weight`), B = weights.get(`${p}.lora_B.weight`);
    if (!A && !B) continue;
    if (!A || !B) throw new Error(`PEFT adapter ${dir}: ${p} has only one of lora_A / lora_B`);
    const lora = l.attachLora(r, alpha, Number(cfg.lora_dropout ?? 0), rng);
    if (A.data.length !== lora.A.size || B.data.length !== lora.B.size) {
      throw new Error(`PEFT adapter ${dir}: ${p} has shapes [${A.shape}] / [${B.shape}], expected [${lora.A.shape}] / [${lora.B.shape}]`);
    }
    lora.A.data.set(A.data);
    lora.B.data.set(B.data);
    attached++;
  }
  const expected = [...weights.keys()].filter((k) => k.endsWith('.lora_A.weight')).length;
  if (attached !== expected) throw new Error(`PEFT adapter ${dir}: ${expected} adapted modules in the file, ${attached} match this model`);
  const targets = Array.isArray(cfg.target_modules) ? (cfg.target_modules as string[]) : [];
  return { r, alpha, dropout: Number(cfg.lora_dropout ?? 0), targetModules: targets, baseModel: typeof cfg.base_model_name_or_path === 'string' ? cfg.base_model_name_or_path : null };
}
