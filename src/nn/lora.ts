// LoRA settings and attaching adapters to a model's linear layers. The PEFT on-disk format
// (adapter_config.json + adapter_model.safetensors) is read and written by io/peft.ts; each
// architecture's default target modules are declared in its file (models/architectures.ts).

import type { Linear } from './linear.js';
import { Rng } from '../tensor/random.js';

export interface LoraSettings {
  r: number;
  alpha: number;
  dropout: number;
  /** Module names as in PEFT ("q_proj", "v_proj", "c_attn", ...): a linear whose path ends in one. */
  targetModules: readonly string[];
  /** rsLoRA: scale α/√r instead of α/r (PEFT's use_rslora). */
  rslora?: boolean;
}

export function selectLoraTargets(linears: readonly Linear[], targets: readonly string[]): Linear[] {
  const chosen = linears.filter((l) => targets.some((t) => l.path === t || l.path.endsWith(`.${t}`)));
  if (chosen.length === 0) {
    const names = [...new Set(linears.map((l) => l.path.split('.').at(-1)!))];
    throw new Error(`LoRA: no linear layer matches target modules ${JSON.stringify(targets)}; this model has ${names.join(', ')}`);
  }
  return chosen;
}

/** Attaches fresh adapters (B = 0) to the target layers; freezes everything else. */
export function attachLora(linears: readonly Linear[], s: LoraSettings, seed: number): Linear[] {
  const rng = new Rng(seed ^ 0x10a);
  const chosen = selectLoraTargets(linears, s.targetModules);
  for (const l of chosen) l.attachLora(s.r, s.alpha, s.dropout, rng, s.rslora ?? false);
  return chosen;
}
