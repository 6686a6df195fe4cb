// Training checkpoints: everything needed to continue bit-identically — trainable weights,
// optimizer moments, step, schedule position, data position and RNG state.
//
// Layout: OUTPUT/checkpoint-STEP/{weights.safetensors, optimizer.safetensors, trainer_state.json}.
// A checkpoint is written into checkpoint-STEP.tmp-PID and renamed when complete, so a run killed
// mid-write leaves the previous checkpoints intact; trainer_state.json is written last and marks a
// complete checkpoint. Only the newest `keep` checkpoints are kept.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { WeightMap } from '../io/weights.js';
import type { Tensor } from '../tensor/index.js';
import type { AdamW } from './optimizer.js';

export interface TrainerState {
  /** Optimizer steps completed. */
  step: number;
  /** Fractional epoch reached. */
  epoch: number;
  sampler: { epoch: number; position: number };
  /** Dropout RNG state (xoshiro128**). */
  rng: number[];
  /** Any loss state carried between steps (e.g. bco_pair's running mean). */
  lossState?: unknown;
  /** A hash of the settings that must not change across a resume. */
  fingerprint: string;
  /** Kernel threads of the run that wrote it (a resume with another count warns). */
  threads?: number;
  /** Backend and GEMM micro-kernel of the run that wrote it, e.g. "native/avx512" (others warn). */
  kernels?: string;
  /** Free-form extras (the metrics not yet logged: logWindow). */
  extra?: Record<string, unknown>;
}

const STATE_FILE = 'trainer_state.json';

export function saveCheckpoint(
  outputDir: string, params: readonly Tensor[], opt: AdamW, state: TrainerState, keep: number, extra?: (dir: string) => void,
): string {
  const final = join(outputDir, `checkpoint-${state.step}`);
  const tmp = `${final}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const weights: WeightMap = new Map();
  for (const p of params) weights.set(p.name!, { shape: [...p.shape], data: p.data as Float32Array });
  writeSafetensors(join(tmp, 'weights.safetensors'), weights);
  const o = opt.state();
  const moments: WeightMap = new Map();
  for (const p of params) {
    moments.set(`m.${p.name}`, { shape: [p.size], data: o.m.get(p.name!)! });
    moments.set(`v.${p.name}`, { shape: [p.size], data: o.v.get(p.name!)! });
  }
  writeSafetensors(join(tmp, 'optimizer.safetensors'), moments, { metadata: { step: String(o.step) } });
  extra?.(tmp);
  writeFileSync(join(tmp, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  pruneCheckpoints(outputDir, keep);
  return final;
}

/** Complete checkpoints in outputDir, oldest first. */
export function listCheckpoints(outputDir: string): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: join(outputDir, m[0]) }))
    .filter((c) => existsSync(join(c.dir, STATE_FILE)))
    .sort((a, b) => a.step - b.step);
}

/**
 * Keeps the newest `keep` checkpoints (save_total_limit). A checkpoint leaves the listing in one
 * step — renamed to `checkpoint-N.del-PID`, then removed — so a kill during a removal leaves a
 * `.del-` leftover (cleaned by the next save), never a half-removed `checkpoint-N` that no later
 * prune would count or remove (recursive removal deletes file by file).
 */
function pruneCheckpoints(outputDir: string, keep: number): void {
  if (!(keep > 0)) return;
  const all = listCheckpoints(outputDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) {
    const doomed = `${c.dir}.del-${process.pid}`;
    rmSync(doomed, { recursive: true, force: true });
    renameSync(c.dir, doomed);
    rmSync(doomed, { recursive: true, force: true });
  }
  // Leftovers of interrupted writes (another process's .tmp-) and removals (.del-).
  for (const name of readdirSync(outputDir)) {
    const m = /^checkpoint-\d+\.(tmp|del)-(\d+)$/.exec(name);
    if (m && !(m[1] === 'tmp' && Number(m[2]) === process.pid)) rmSync(join(outputDir, name), { recursive: true, force: true });
  }
}

/** Restores weights and optimizer state in place; returns the trainer state. */
export function loadCheckpoint(dir: string, params: readonly Tensor[], opt: AdamW): TrainerState {
  const statePath = join(dir, STATE_FILE);
  if (!existsSync(statePath)) throw new Error(`checkpoint ${dir}: no ${STATE_FILE} (incomplete checkpoint)`);
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
  const weights = readSafetensors(join(dir, 'weights.safetensors'));
  for (const p of params) {
    const w = weights.get(p.name!);
    if (!w) throw new Error(`checkpoint ${dir}: no weights for parameter ${p.name}`);
    if (w.data.length !== p.size) throw new Error(`checkpoint ${dir}: ${p.name} has ${w.data.length} elements, the model has ${p.size}`);
    p.data.set(w.data);
  }
  const moments = readSafetensors(join(dir, 'optimizer.safetensors'));
  const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
  for (const p of params) {
    const mm = moments.get(`m.${p.name}`), vv = moments.get(`v.${p.name}`);
    if (!mm || !vv) throw new Error(`checkpoint ${dir}: no optimizer state for ${p.name}`);
    m.set(p.name!, mm.data);
    v.set(p.name!, vv.data);
  }
  opt.load({ step: state.step, m, v });
  return state;
}
