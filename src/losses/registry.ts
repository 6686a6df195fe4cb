// The registry of preference losses: every loss_type, in one list, with what it declares about
// itself (spec.ts). The dispatcher (index.ts), the config checks (train/config.ts), the TRL export and
// the trainer ask it; nothing else keeps a list of loss names.

import { editDistance } from './math.js';
import {
  aotPairSpec, aotSpec, apoDownSpec, apoZeroSpec, bcoPairSpec, discopopSpec, exoPairSpec, hingeSpec, ipoSpec,
  ncaPairSpec, robustSpec, sigmoidNormSpec, sigmoidSpec, sppoHardSpec,
} from './pairwise.js';
import { orpoSpec, simpoSpec } from './reference-free.js';
import { sftSpec } from './sft.js';
import type { LossSpec } from './spec.js';
import type { LossParams } from './types.js';

/** Every loss, in the order of TRL's documentation (the order of `lossTypes`). */
export const lossSpecs = [
  sigmoidSpec, robustSpec, ipoSpec, hingeSpec, bcoPairSpec, exoPairSpec, ncaPairSpec, sppoHardSpec, aotSpec,
  aotPairSpec, apoZeroSpec, apoDownSpec, discopopSpec, sigmoidNormSpec, simpoSpec, orpoSpec, sftSpec,
] as const;

export type LossType = (typeof lossSpecs)[number]['name'];

/** Every loss type computePreferenceLoss accepts (TRL's loss_type names; `sft` as in TRL v1.x). */
export const lossTypes: readonly LossType[] = lossSpecs.map((s) => s.name);

const byName = new Map<string, LossSpec>();
for (const s of lossSpecs) {
  byName.set(s.name, s);
  for (const a of s.aliases ?? []) byName.set(a, s);
}

/** Every name computePreferenceLoss accepts: the loss types and their aliases (TRL v1.9's aot_unpaired). */
export const lossTypeNames: readonly string[] = [...lossTypes, ...lossSpecs.flatMap((s) => s.aliases ?? [])];

/** The loss-type names (with aliases) label_smoothing affects (TRL v1.9.0); the others ignore it. */
export const labelSmoothingLossTypes: readonly string[] = lossSpecs.filter((s) => s.labelSmoothing).flatMap((s) => [s.name, ...(s.aliases ?? [])]);

/** The reference-free loss types (they need no reference model). */
export const referenceFreeLossTypes: readonly LossType[] = lossSpecs.filter((s) => s.referenceFree).map((s) => s.name);

/** Maps a loss-type name (or alias) to its canonical name; unknown names throw with a suggestion. */
export function resolveLossType(name: string): LossType {
  const s = byName.get(name);
  if (s !== undefined) return s.name as LossType;
  const candidates = lossTypeNames;
  const lower = String(name).toLowerCase();
  // A name that is part of a valid one ('nca' → 'nca_pair') or contains one ('simpo_loss' →
  // 'simpo') is the likeliest intent; otherwise the smallest edit distance wins.
  const partOf = candidates.filter((c) => c.includes(lower)).sort((a, b) => a.length - b.length);
  const contains = candidates.filter((c) => lower.includes(c)).sort((a, b) => b.length - a.length);
  let best = partOf[0] ?? contains[0] ?? candidates[0];
  if (partOf.length === 0 && contains.length === 0) {
    let bestD = Infinity;
    for (const c of candidates) {
      const d = editDistance(lower, c);
      if (d < bestD) {
        bestD = d;
        best = c;
      }
    }
  }
  throw new Error(`unknown loss type '${name}'; did you mean '${byName.get(best)!.name}'? Valid loss types: ${lossTypes.join(', ')}`);
}

/** The declaration of a loss type (or alias); unknown names throw as resolveLossType does. */
export function lossSpec(name: string): LossSpec {
  return byName.get(resolveLossType(name))!;
}

/** The loss_type setting (one name or a list) as a list of names. */
function namesOf(lossType: string | readonly string[]): readonly string[] {
  return typeof lossType === 'string' ? [lossType] : lossType;
}

/** True when no loss of the setting needs a reference model (the trainer then loads none). */
export function isReferenceFree(lossType: string | readonly string[]): boolean {
  return namesOf(lossType).every((n) => lossSpec(n).referenceFree === true);
}

/** True when the setting adds the shared token-mean NLL term (so chosen token counts are needed). */
export function usesNllTerm(lossType: string | readonly string[], params: LossParams): boolean {
  return params.rpoAlpha !== undefined || namesOf(lossType).some((n) => lossSpec(n).usesNll?.(params) === true);
}

/** True when a loss of the setting keeps state across batches in `field` (the trainer creates it). */
export function needsLossState(lossType: string | readonly string[], field: 'bcoState'): boolean {
  return namesOf(lossType).some((n) => lossSpec(n).state === field);
}

