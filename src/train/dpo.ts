// DPO training (Rafailov et al. 2023) and its loss family, end to end: model + tokenizer,
// preference data, the frozen reference (a copy, the base with LoRA adapters disabled, or
// log-probs precomputed once and cached on disk), the shared training loop, metrics with TRL's
// names, watchdogs, and the final model as a Hugging Face directory or a PEFT adapter.

import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { gemmBf16Path, kernelPath } from '../tensor/backend.js';
import { matmulPrecision, withMatmulPrecision } from '../tensor/autocast.js';
import {
  computePreferenceLoss, isReferenceFree, ldTokenWeights, needsLossState, newBcoRunningMean, usesNllTerm, wpoPairWeights, type BcoRunningMean, type LossParams,
} from '../losses/index.js';
import { BatchSampler, collatePreference, packPreferenceTree, packRows, pairLengths, permutation, type PreferenceBatch } from '../data/batch.js';
import { preparePreferenceData, type PrepareOptions, type PreparedPreferenceData } from '../data/prepare.js';
import type { TokenizedPair } from '../data/tokenize.js';
import type { DataFormat, DataSource } from '../data/types.js';
import { cloneWeights } from '../io/weights.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { createModel, type CausalLM } from '../models/index.js';
import type { TokenBlock } from '../models/model.js';
import { indexedRowSums, sequenceSums, sequenceSumsOnTape } from '../models/logprobs.js';
import { fingerprintSettings, loadTrainable, loopConfig, resolveModel, saveModel, type ModelInput, type TokenizerInput, type TrainedRun } from './setup.js';
import { formatMemoryReport, memoryFloor } from './memory-report.js';
import { storeFrozenLinearsAsBf16 } from '../nn/linear.js';
import { storeFrozenEmbeddingsAsBf16 } from '../models/decoder.js';
import { bf16Storage } from '../tensor/bf16-ops.js';
import { parseDpoConfig, type DpoConfig, type DpoConfigInput } from './config.js';
import { evalMeans, runTrainingLoop, yieldToEventLoop, type MicroResult, type TrainingEvents } from './loop.js';
import { ProgressBar } from '../util/progress.js';
import { checkSamples, fluencyVerdict, type SampleQuality } from './sample-quality.js';
import { writeFileAtomic } from '../util/fs.js';

/** The config fields the preference losses read. */
export type LossOptionName = 'beta' | 'label_smoothing' | 'rpo_alpha' | 'cpo_alpha' | 'simpo_gamma' | 'discopop_tau' | 'loss_weights' | 'f_divergence_type' | 'f_alpha_divergence_coef';

export interface DpoRunOptions {
  /**
   * Starting policy (and default reference): a path (Hugging Face directory or llama2.c file) or a
   * model in memory. A model object is trained in place.
   */
  model: ModelInput;
  /** Tokenizer path or object (default: the model's; required for a bare model object). */
  tokenizer?: TokenizerInput | undefined;
  /** A separate reference model (default: a frozen copy of the starting policy). */
  ref?: ModelInput | undefined;
  /** Training pairs: file(s), or rows in memory (`{prompt, chosen, rejected}`, conversational, ...). */
  data: DataSource;
  /** Held-out pairs evaluated every eval_steps and at the end. */
  evalData?: DataSource | undefined;
  /** TRL DPOConfig options (snake_case); anything left out takes its default. Validated here. */
  config?: DpoConfigInput | undefined;
  /** Where metrics.jsonl, checkpoints (save_steps) and the final model go (default: config.output_dir); without either nothing is written. */
  outputDir?: string | undefined;
  /** Continue from the newest checkpoint in outputDir (true) or the given checkpoint directory. */
  resume?: boolean | string | undefined;
  /** No progress bar or messages on stderr. */
  quiet?: boolean | undefined;
  /** Where precomputed reference log-probs are cached (default ~/.cache/dpo-ts/ref-logps). */
  cacheDir?: string | undefined;
  /** Stop after this many steps in this process (tests). */
  stopAfterSteps?: number | undefined;
  /** Handlers for step, log, eval, checkpoint and warning events (awaited). */
  on?: TrainingEvents | undefined;
  /** Aborting stops training between two micro-batches; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Tokens per sample of the sample_checks check (default max_completion_length, else 64). */
  generateMaxNewTokens?: number | undefined;
}

/** A finished (or watchdog-stopped) run: the trained model in memory, its metrics and data counts. */
export interface DpoRunResult extends TrainedRun<DpoConfig> {
  trainPairs: number;
  evalPairs: number;
  /** Whether reference log-probs came from the on-disk cache. */
  refCacheHit: boolean | null;
}

/**
 * LD-DPO token weights of a batch in its padded layout (rows·seqLen): in each pair, the first
 * min(Lc, Lr) scored tokens of each row weigh 1 and the rest ld_alpha (L = the row's scored
 * response tokens, TRL's shifted completion mask); unscored positions 0.
 */
export function ldBatchWeights(batch: PreferenceBatch, alpha: number): Float32Array {
  const P = batch.pairs, T_ = batch.seqLen;
  const w = new Float32Array(2 * P * T_);
  const scored = (r: number): number => {
    let n = 0;
    for (let t = 0; t < T_; t++) if (batch.targets[r * T_ + t]! >= 0) n++;
    return n;
  };
  for (let i = 0; i < P; i++) {
    const shared = Math.min(scored(i), scored(P + i));
    for (const r of [i, P + i]) {
      const tw = ldTokenWeights(scored(r), shared, alpha);
      let k = 0;
      for (let t = 0; t < T_; t++) if (batch.targets[r * T_ + t]! >= 0) w[r * T_ + t] = tw[k++]!;
    }
  }
  return w;
}

/** Options of sequenceLogps beyond the plain per-row sums. */
export interface SequenceLogpsOptions {
  /** Receives each position's mean logit (padded layout). */
  meanLogits?: Float32Array;
  /** Receives each scored position's log Σ_v p_v² (padded layout; WPO). */
  logSumSqProbs?: Float32Array;
  /** Per-token weights in the padded layout (LD-DPO): the sums become Σ w_t·log p_t. */
  tokenWeights?: Float32Array;
  /** Also return the unweighted sums: the result is [2·rows2] = [weighted rows..., unweighted rows...]. */
  alsoUnweighted?: boolean;
  /** Each pair's shared prompt computed once (share_prompt, default true): tree packing, padding-free. */
  sharePrompt?: boolean;
}

/** A preference batch's real tokens packed into one row (padding-free), chosen rows first. */
export function packPreferenceBatch(batch: PreferenceBatch): ReturnType<typeof packRows> {
  return packRows(batch.inputIds, batch.targets, batch.lengths.subarray(0, 2 * batch.pairs), batch.seqLen);
}

/**
 * The packed layout sequenceLogps / referenceLogps run a batch in: share_prompt's tree (each
 * pair's prompt once, then both branches), padding_free's rows back to back, or null (padded).
 */
function packedLayout(batch: PreferenceBatch, paddingFree: boolean, sharePrompt: boolean): { block: TokenBlock; targets: Int32Array; paddedIndex: Int32Array } | null {
  if (sharePrompt) {
    const p = packPreferenceTree(batch);
    return { block: { ids: p.ids, batch: 1, seq: p.ids.length, segments: p.lengths, packedRows: p.rows }, targets: p.targets, paddedIndex: p.paddedIndex };
  }
  if (!paddingFree) return null;
  const p = packPreferenceBatch(batch);
  return { block: { ids: p.ids, batch: 1, seq: p.ids.length, segments: p.lengths }, targets: p.targets, paddedIndex: p.paddedIndex };
}

/**
 * Summed response log-probs of each row of a preference batch: a [2·pairs] tensor (chosen rows
 * first), on the tape when grad is enabled. sharePrompt (default) packs each pair as a tree: the
 * prompt rows both sequences share run through the model once, then the chosen and the rejected
 * branch (padding-free; packPreferenceTree). Without it, paddingFree packs the rows' real tokens
 * into one sequence (TRL's padding_free), so the linear layers never see padding (the LM head
 * skips it either way); else the padded rows. All layouts compute the same values.
 * meanLogits (padded layout, rows·seqLen) receives each position's mean logit.
 */
export function sequenceLogps(model: CausalLM, batch: PreferenceBatch, paddingFree: boolean, opts: Float32Array | SequenceLogpsOptions = {}): Tensor {
  const o: SequenceLogpsOptions = opts instanceof Float32Array ? { meanLogits: opts } : opts;
  const { meanLogits, logSumSqProbs, tokenWeights } = o;
  const rows = 2 * batch.pairs, T_ = batch.seqLen;
  const p = packedLayout(batch, paddingFree, o.sharePrompt ?? true);
  if (p) {
    const N = p.targets.length;
    const packedMean = meanLogits ? new Float32Array(N) : undefined;
    const packedSq = logSumSqProbs ? new Float32Array(N) : undefined;
    const lp = model.tokenLogprobs(p.block, p.targets, { meanLogits: packedMean, logSumSqProbs: packedSq });
    if (meanLogits && packedMean) p.paddedIndex.forEach((j, i) => (meanLogits[j] = packedMean[i]!));
    if (logSumSqProbs && packedSq) p.paddedIndex.forEach((j, i) => (logSumSqProbs[j] = packedSq[i]!));
    return sequenceSumsOnTape(lp, { rows, seqLen: T_, paddedIndex: p.paddedIndex, tokenWeights, alsoUnweighted: o.alsoUnweighted });
  }
  const lp = model.tokenLogprobs({ ids: batch.inputIds, batch: rows, seq: T_ }, batch.targets, { meanLogits, logSumSqProbs });
  return sequenceSumsOnTape(lp, { rows, seqLen: T_, tokenWeights, alsoUnweighted: o.alsoUnweighted });
}

/**
 * Reference log-probs of a batch under a frozen model (no tape, activations dropped), in the
 * layout sequenceLogps uses for the same flags (sharePrompt default true).
 */
export function referenceLogps(ref: CausalLM, batch: PreferenceBatch, paddingFree = false, tokenWeights?: Float32Array, sharePrompt = true): Float64Array {
  const rows = 2 * batch.pairs;
  return T.noGrad(() => {
    const p = packedLayout(batch, paddingFree, sharePrompt);
    if (p) {
      const lp = ref.tokenLogprobs(p.block, p.targets);
      const s = indexedRowSums(lp.data, p.paddedIndex, rows, batch.seqLen, tokenWeights);
      lp.dispose();
      return s;
    }
    const lp = ref.tokenLogprobs({ ids: batch.inputIds, batch: rows, seq: batch.seqLen }, batch.targets);
    const s = sequenceSums(lp.data, new Array<number>(rows).fill(batch.seqLen), tokenWeights);
    lp.dispose();
    return s;
  });
}

function hashWeights(h: ReturnType<typeof createHash>, model: CausalLM): void {
  // Weights stored as bf16 (frozen_dtype) are hashed by their bf16 bits (tagged: not float32 bytes).
  const linearBf16 = new Map(model.linears().filter((l) => l.weightBf16).map((l) => [l.weight, l.weightBf16!]));
  for (const [name, t] of model.parameters()) {
    if (name.includes('lora_')) continue;
    h.update(name);
    const bits = linearBf16.get(t) ?? bf16Storage(t);
    if (bits) h.update('bf16:');
    const d = bits ?? t.data;
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
}

function hashPairs(h: ReturnType<typeof createHash>, pairs: readonly TokenizedPair[]): void {
  for (const p of pairs) {
    h.update(Int32Array.from([p.index, p.promptIds.length, p.chosenIds.length, p.rejectedIds.length]));
    // keep_end truncation: where each row's prompt starts (absent = 0, so older fingerprints stand).
    if (p.chosenPromptStart || p.rejectedPromptStart) h.update(Int32Array.from([-1, p.chosenPromptStart ?? 0, p.rejectedPromptStart ?? 0]));
    h.update(Int32Array.from(p.promptIds));
    h.update(Int32Array.from(p.chosenIds));
    h.update(Int32Array.from(p.rejectedIds));
  }
}

/** dpo-ts's version (package.json above this file), part of the reference cache's inputs. */
function packageVersion(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++, d = dirname(d)) {
    const p = join(d, 'package.json');
    if (!existsSync(p)) continue;
    const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'dpo-ts') return String(pkg.version);
  }
  return 'unknown';
}

const REF_CACHE_MAGIC = 'dpo-ts ref-logps v2\n';

/**
 * Everything cached reference log-probs depend on besides the weights, the data and the batching
 * (which name the cache file): the model config (every parsed field and config.json itself), the
 * backend, GEMM micro-kernel, thread count and native addon, and the dpo-ts version. Kept in the
 * file's header; a cache written under different inputs is not used, and the message names them.
 */
function refCacheInputs(ref: CausalLM): Record<string, unknown> {
  const { raw, ...parsed } = ref.config;
  const k = kernelPath();
  return {
    modelConfig: parsed,
    configJson: createHash('sha256').update(JSON.stringify(raw)).digest('hex').slice(0, 16),
    backend: k.backend,
    gemmKernel: k.gemmKernel,
    threads: k.threads,
    nativeAddon: k.addon,
    // bf16 autocast changes every product (absent in float32 runs: their headers stay as they were).
    ...(matmulPrecision() === 'bf16' ? { matmulPrecision: 'bf16', gemmBf16: gemmBf16Path() } : {}),
    dpoTs: packageVersion(),
  };
}

/** The inputs that differ between a cache header and now, as "name: old → new" (config fields one by one). */
function changedInputs(old: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const out: string[] = [];
  const show = (v: unknown): string => JSON.stringify(v) ?? 'none';
  for (const key of new Set([...Object.keys(old), ...Object.keys(now)])) {
    const a = old[key], b = now[key];
    if (show(a) === show(b)) continue;
    if (key === 'modelConfig' && a && b && typeof a === 'object' && typeof b === 'object') {
      const ao = a as Record<string, unknown>, bo = b as Record<string, unknown>;
      for (const f of new Set([...Object.keys(ao), ...Object.keys(bo)])) {
        if (show(ao[f]) !== show(bo[f])) out.push(`model config ${f}: ${show(ao[f])} → ${show(bo[f])}`);
      }
    } else out.push(`${key}: ${show(a)} → ${show(b)}`);
  }
  return out;
}

/** Reads a cache file; returns its values, or why they cannot be used. */
function readRefCache(path: string, n: number, inputs: Record<string, unknown>): { all: Float64Array } | { reason: string } {
  const buf = readFileSync(path);
  const magic = Buffer.from(REF_CACHE_MAGIC);
  if (buf.byteLength < magic.length + 4 || !buf.subarray(0, magic.length).equals(magic)) return { reason: 'not a dpo-ts v2 reference cache (older format or damaged)' };
  const headerLen = buf.readUInt32LE(magic.length);
  const start = magic.length + 4 + headerLen;
  let header: { pairs: number; sha256: string; inputs: Record<string, unknown> };
  try {
    header = JSON.parse(buf.subarray(magic.length + 4, start).toString('utf8'));
  } catch {
    return { reason: 'damaged header' };
  }
  const payload = buf.subarray(start);
  if (header.pairs !== n || payload.byteLength !== 16 * n) return { reason: `it holds ${header.pairs} pairs, the data has ${n}` };
  if (createHash('sha256').update(payload).digest('hex') !== header.sha256) return { reason: 'checksum mismatch (the file is damaged)' };
  const changed = changedInputs(header.inputs ?? {}, inputs);
  if (changed.length) return { reason: `computed under different inputs: ${changed.join('; ')}` };
  return { all: new Float64Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength)) };
}

/**
 * Reference log-probs for every pair, computed once in the batches of the first epoch (`order`;
 * the trainer passes the sampler's, group_by_length included) and cached on disk. In the first
 * epoch they equal the live reference bit for bit; later epochs compose batches differently, and
 * a pair's values can differ from a live reference's in the last bits (padding length and
 * kernel blocking change with the batch). The file name is a fingerprint of the reference
 * weights, the tokenized data (tokenizer + data file + truncation) and the batching; the header
 * holds the other inputs (refCacheInputs) and a checksum of the values.
 */
export function precomputeReferenceLogps(
  ref: CausalLM, pairs: readonly TokenizedPair[], order: readonly (readonly number[])[], padId: number,
  padToMultipleOf: number | undefined, cacheDir: string, quiet: boolean, paddingFree = false, ldAlpha: number | null = null, sharePrompt = true,
): { chosen: Float64Array; rejected: Float64Array; hit: boolean; path: string; stale: string | null } {
  const h = createHash('sha256');
  h.update('dpo-ts ref-logps v2');
  hashWeights(h, ref);
  hashPairs(h, pairs);
  // share_prompt's tree is padding-free itself (padding_free then changes nothing); without it the key is as before.
  h.update(JSON.stringify({ order, padId, padToMultipleOf: padToMultipleOf ?? null, paddingFree: paddingFree && !sharePrompt, ...(ldAlpha !== null ? { ldAlpha } : {}), ...(sharePrompt ? { sharePrompt } : {}) }));
  const fp = h.digest('hex').slice(0, 32);
  const path = join(cacheDir, `${fp}.bin`);
  const n = pairs.length;
  const inputs = refCacheInputs(ref);
  let stale: string | null = null;
  if (existsSync(path)) {
    const r = readRefCache(path, n, inputs);
    if ('all' in r) return { chosen: r.all.slice(0, n), rejected: r.all.slice(n), hit: true, path, stale: null };
    stale = r.reason;
    if (!quiet) process.stderr.write(`reference log-prob cache ${path} not used: ${stale}; recomputing\n`);
  }
  const chosen = new Float64Array(n), rejected = new Float64Array(n);
  const bar = new ProgressBar('reference log-probs', n, { unit: 'pair', quiet });
  let done = 0;
  for (const idx of order) {
    const batch = collatePreference(idx.map((i) => pairs[i]!), { padId, padToMultipleOf });
    const s = referenceLogps(ref, batch, paddingFree, ldAlpha !== null ? ldBatchWeights(batch, ldAlpha) : undefined, sharePrompt);
    idx.forEach((i, j) => {
      chosen[i] = s[j]!;
      rejected[i] = s[batch.pairs + j]!;
    });
    done += idx.length;
    bar.update(done);
  }
  bar.finish();
  mkdirSync(cacheDir, { recursive: true });
  const all = new Float64Array(2 * n);
  all.set(chosen, 0);
  all.set(rejected, n);
  const payload = new Uint8Array(all.buffer);
  const header = Buffer.from(JSON.stringify({ pairs: n, sha256: createHash('sha256').update(payload).digest('hex'), inputs }));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.byteLength);
  writeFileAtomic(path, Buffer.concat([Buffer.from(REF_CACHE_MAGIC), len, header, payload]));
  return { chosen, rejected, hit: false, path, stale };
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'dpo-ts');
}

/** The loss hyper-parameters of a DPO-family config (also used by online DPO). */
export function lossParams(cfg: Pick<DpoConfig, LossOptionName>, bcoState: BcoRunningMean | undefined): LossParams {
  return {
    beta: cfg.beta,
    labelSmoothing: cfg.label_smoothing,
    rpoAlpha: cfg.rpo_alpha ?? undefined,
    cpoAlpha: cfg.cpo_alpha,
    simpoGamma: cfg.simpo_gamma,
    discopopTau: cfg.discopop_tau,
    lossWeights: cfg.loss_weights ?? undefined,
    bcoState,
    fDivergenceType: cfg.f_divergence_type,
    fAlphaDivergenceCoef: cfg.f_alpha_divergence_coef,
  };
}

/** Watchdogs on the logged training records: explanations, not just numbers. */
export function dpoWatchdogs(cfg: DpoConfig): (history: readonly Record<string, number>[]) => string[] {
  return (history) => {
    const out: string[] = [];
    const last = history.at(-1);
    if (!last) return out;
    const recent = history.slice(-3);
    const margins = recent.map((r) => r['rewards/margins'] ?? 0);
    if (recent.length === 3 && (last.loss ?? 1) < 0.02 && margins.every((m, i) => i === 0 || m > margins[i - 1]!) && margins[2]! > 10) {
      out.push(
        `over-optimization: the loss is ${last.loss!.toExponential(2)} and reward margins keep growing (${margins.map((m) => m.toFixed(1)).join(' → ')}). ` +
        'The policy is separating the training pairs far beyond what the data supports; consider a larger beta, ' +
        'the ipo loss (bounded margins), the robust loss with label_smoothing, fewer steps, or evaluating on held-out pairs.',
      );
    }
    const lp = history.slice(-4).map((r) => r['logps/chosen'] ?? 0);
    const first = history[0]!['logps/chosen'] ?? 0;
    if (lp.length === 4 && lp.every((v, i) => i === 0 || v < lp[i - 1]!) && lp[3]! < first - Math.max(1, 0.1 * Math.abs(first)) && !cfg.rpo_alpha) {
      out.push(
        `chosen log-probs are falling steadily (${lp.map((v) => v.toFixed(1)).join(' → ')}, from ${first.toFixed(1)}): DPO is lowering the ` +
        'likelihood of the preferred responses too, only less than the rejected ones. Set rpo_alpha (e.g. 1.0) to add an NLL term on chosen.',
      );
    }
    return out;
  };
}

const VERDICT_CODE = { fluent: 0, degrading: 1, collapsed: 2 } as const;
/** Prompts and samples per prompt of the sample_checks check. */
const CHECK_PROMPTS = 32, CHECK_SAMPLES = 2, CHECK_TOP_K = 10;

/**
 * sample_checks: at every evaluation the policy samples completions of (up to 32) eval
 * prompts with fixed seeds; their fluency and diversity are compared with the reference's own
 * samples of the same prompts (src/train/sample-quality.ts) and logged as eval/samples/*
 * (verdict 0 fluent, 1 degrading, 2 collapsed); the texts go to eval_generations.jsonl, and the
 * watchdog warns when the verdict is no longer "fluent".
 */
function makeSampleCheck(
  cfg: DpoConfig, opts: DpoRunOptions, evalPairs: readonly TokenizedPair[], model: CausalLM, refModel: CausalLM | null,
  withAdaptersOff: ((f: () => Float64Array) => Float64Array) | null, tokenizer: { padId: number; stopIds: readonly number[]; decode(ids: readonly number[], o?: { skipSpecialTokens?: boolean }): string },
): { run(step: number): Record<string, number>; watch(evalHistory: readonly Record<string, number>[]): string[] } | null {
  const say = (m: string): void => {
    if (!opts.quiet) process.stderr.write(`sample_checks: ${m}\n`);
  };
  if (evalPairs.length === 0) {
    say('no eval set, nothing to sample');
    return null;
  }
  if (!refModel) {
    say(`the loss (${String(cfg.loss_type)}) has no reference model to compare samples with; skipped`);
    return null;
  }
  const seen = new Set<string>();
  const prompts: number[][] = [];
  for (const p of evalPairs) {
    const key = p.promptIds.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    prompts.push(p.promptIds);
    if (prompts.length === CHECK_PROMPTS) break;
  }
  const longest = Math.max(...prompts.map((p) => p.length));
  const maxNewTokens = Math.min(opts.generateMaxNewTokens ?? cfg.max_completion_length ?? 64, model.config.maxPositions - longest);
  if (maxNewTokens < 1) {
    say(`eval prompts of ${longest} tokens leave no room to generate in ${model.config.maxPositions} positions; skipped`);
    return null;
  }
  // LoRA: the reference is the policy with adapters off, for sampling and scoring alike.
  const withRef = <R>(f: () => R): R => {
    if (!withAdaptersOff) return f();
    let out: R | undefined;
    withAdaptersOff(() => {
      out = f();
      return new Float64Array(0);
    });
    return out as R;
  };
  const o = {
    samplesPerPrompt: CHECK_SAMPLES, maxNewTokens, seed: cfg.seed, padId: tokenizer.padId, stopIds: tokenizer.stopIds, topK: CHECK_TOP_K,
    decode: (ids: number[]) => tokenizer.decode(ids, { skipSpecialTokens: true }), withReference: withRef,
  };
  const ref = withRef(() => checkSamples(refModel, refModel, prompts, { ...o, withReference: undefined }));
  const refQ: SampleQuality = ref.quality;
  const outDir = opts.outputDir;
  const file = outDir !== undefined ? join(outDir, 'eval_generations.jsonl') : null;
  if (file !== null && !opts.resume) rmSync(file, { force: true });
  say(`${prompts.length} eval prompts × ${CHECK_SAMPLES} samples of up to ${maxNewTokens} tokens at every evaluation; reference perplexity ${refQ.perplexity.toFixed(2)}`);
  const reasons = new Map<number, string[]>();
  return {
    run(step) {
      const c = checkSamples(model, refModel, prompts, o);
      const v = fluencyVerdict(c.quality, refQ);
      reasons.set(step, v.reasons);
      if (outDir !== undefined && file !== null) {
        mkdirSync(outDir, { recursive: true });
        appendFileSync(file, c.texts.map((t, r) => JSON.stringify({
          step, prompt: tokenizer.decode(prompts[c.promptIndex[r]!]!, { skipSpecialTokens: true }), policy: t, reference: ref.texts[r], verdict: v.verdict,
        })).join('\n') + '\n');
      }
      const q = c.quality;
      return {
        'samples/perplexity': q.perplexity, 'samples/perplexity_ratio': q.perplexity / refQ.perplexity,
        'samples/off_top_k': q.offTopK, 'samples/distinct_1': q.distinct1, 'samples/distinct_2': q.distinct2,
        'samples/repeat_share': q.repeatShare, 'samples/self_similarity': q.selfSimilarity,
        'samples/mean_tokens': q.meanTokens, 'samples/truncated': q.truncatedShare, 'samples/verdict': VERDICT_CODE[v.verdict],
      };
    },
    watch(evalHistory) {
      const last = evalHistory.at(-1);
      const code = last?.['eval/samples/verdict'];
      if (last === undefined || code === undefined || code === 0) return [];
      const verdict = code === 2 ? 'collapsed' : 'degrading';
      const fluentBefore = [...evalHistory].reverse().find((r) => r['eval/samples/verdict'] === 0);
      return [
        `samples are ${verdict} at step ${last.step}: ${(reasons.get(last.step!) ?? []).join('; ')}. ` +
        'The reward can still be rising while the text stops reading like the reference (over-optimization, reward hacking). ' +
        `See eval_generations.jsonl; ${fluentBefore ? `step ${fluentBefore.step} was still fluent — stop near there (a checkpoint), or ` : ''}` +
        'use a larger beta, a lower learning rate or fewer epochs.',
      ];
    },
  };
}

/** How a DPO (or reward-model) config reads and tokenizes preference data (`dpo train`, `dpo rm`, `dpo export-job`). */
export function preferencePrepareOptions(
  cfg: Pick<DpoConfig, 'dataset_format' | 'columns' | 'on_bad_row' | 'max_length' | 'max_prompt_length' | 'truncation_mode'> & { max_completion_length?: number | null },
): PrepareOptions {
  return {
    format: (cfg.dataset_format ?? undefined) as DataFormat | undefined,
    columns: cfg.columns ?? undefined,
    onBadRow: cfg.on_bad_row,
    maxLength: cfg.max_length ?? undefined,
    maxPromptLength: cfg.max_prompt_length ?? undefined,
    maxCompletionLength: cfg.max_completion_length ?? undefined,
    truncationMode: cfg.truncation_mode,
  };
}

/** TR-DPO needs the reference to have the policy's parameters, name for name and shape for shape. */
function checkSyncable(policy: CausalLM, ref: CausalLM): void {
  const pp = policy.parameters(), rp = ref.parameters();
  for (const [name, t] of pp) {
    if (name.includes('lora_')) continue;
    const r = rp.get(name);
    if (!r || r.size !== t.size) {
      throw new Error(`sync_ref_model: the reference has ${r ? `${r.size} values` : 'no parameter'} for ${name} (the policy ${t.size}): TR-DPO mixes them, so they must match`);
    }
  }
}

/** TR-DPO soft update, in place: ref ← α·policy + (1 − α)·ref (TRL: mixup of every parameter). */
export function mixReferenceToward(ref: CausalLM, policy: CausalLM, alpha: number): void {
  const pp = policy.parameters();
  for (const [name, r] of ref.parameters()) {
    const p = pp.get(name);
    if (!p) continue;
    const rd = r.data, pd = p.data;
    for (let i = 0; i < rd.length; i++) rd[i] = Math.fround(alpha * pd[i]! + (1 - alpha) * rd[i]!);
  }
}

const REF_WEIGHTS_FILE = 'ref_model.safetensors';

function saveReferenceWeights(ref: CausalLM, dir: string): void {
  writeSafetensors(join(dir, REF_WEIGHTS_FILE), ref.exportWeights());
}

function loadReferenceWeights(ref: CausalLM, dir: string): void {
  const path = join(dir, REF_WEIGHTS_FILE);
  if (!existsSync(path)) throw new Error(`resume from ${dir}: no ${REF_WEIGHTS_FILE}; the checkpoint was not made with sync_ref_model`);
  const w = readSafetensors(path);
  for (const [name, t] of ref.parameters()) {
    const v = w.get(name);
    if (!v || v.data.length !== t.size) throw new Error(`resume from ${dir}: ${REF_WEIGHTS_FILE} has no weights of ${t.size} values for ${name}`);
    t.data.set(v.data);
  }
}

/** The eval_split hold-out: which training rows become eval rows (the same for `dpo train` and `dpo export-job`). */
export function splitEval(n: number, fraction: number, seed: number): { train: number[]; eval: number[] } {
  const perm = permutation(n, seed ^ 0xe7a1, 0);
  const nEval = Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
  return { train: perm.slice(nEval).sort((a, b) => a - b), eval: perm.slice(0, nEval).sort((a, b) => a - b) };
}

/**
 * Trains a policy with DPO (or another loss of the family) and returns it in memory. Yields to
 * the event loop between micro-batches, honours `signal`, and reports through `on`.
 */
export async function runDpo(opts: DpoRunOptions): Promise<DpoRunResult> {
  const cfg = parseDpoConfig(opts.config ?? {});
  return withMatmulPrecision(cfg.bf16 === true ? 'bf16' : 'float32', () => runDpoWith(opts, cfg));
}

async function runDpoWith(opts: DpoRunOptions, cfg: DpoConfig): Promise<DpoRunResult> {
  const { loaded, lora } = await loadTrainable(opts.model, opts.tokenizer, cfg);
  const { model, tokenizer } = loaded;
  model.ctx.gradientCheckpointing = cfg.gradient_checkpointing;
  const params = model.trainableParameters();
  await yieldToEventLoop(opts.signal);

  // ---- data ----
  const prep = (files: DataSource): Promise<PreparedPreferenceData> => preparePreferenceData(files, tokenizer, preferencePrepareOptions(cfg));
  const train = await prep(opts.data);
  await yieldToEventLoop(opts.signal);
  let trainPairs = train.pairs;
  let evalPairs: TokenizedPair[] = [];
  if (opts.evalData !== undefined && !(Array.isArray(opts.evalData) && opts.evalData.length === 0)) evalPairs = (await prep(opts.evalData)).pairs;
  else if (cfg.eval_split > 0 && trainPairs.length > 1) {
    const s = splitEval(trainPairs.length, cfg.eval_split, cfg.seed);
    evalPairs = s.eval.map((i) => trainPairs[i]!);
    trainPairs = s.train.map((i) => trainPairs[i]!);
  }
  if (trainPairs.length === 0) throw new Error(`no usable training pairs in ${train.load.files.join(', ')}`);
  if (!opts.quiet) {
    const t = train.tokenize;
    process.stderr.write(
      `data: ${trainPairs.length} training pairs${evalPairs.length ? `, ${evalPairs.length} eval pairs` : ''} (format ${train.format}); ` +
      `${t.truncatedRows} truncated, ${t.dropped + train.load.bad} dropped\n`,
    );
    const tooLong = t.droppedByReason.prompt_too_long ?? 0;
    if (tooLong > 0) {
      process.stderr.write(
        `  ${tooLong} pairs dropped because their prompt alone fills max_length ${cfg.max_length} (truncation_mode keep_start, ` +
        "as TRL does); truncation_mode: keep_end keeps them, cutting the oldest prompt tokens\n",
      );
    }
  }
  const padId = tokenizer.padId;
  const padToMultipleOf = cfg.pad_to_multiple_of ?? undefined;
  const collate = (pairs: readonly TokenizedPair[]): PreferenceBatch => collatePreference(pairs, { padId, padToMultipleOf });

  // ---- reference ----
  const referenceFree = isReferenceFree(cfg.loss_type);
  let refModel: CausalLM | null = null;
  let withAdaptersOff: ((f: () => Float64Array) => Float64Array) | null = null;
  if (!referenceFree) {
    if (opts.ref !== undefined) {
      const r = await resolveModel(opts.ref, opts.tokenizer ?? tokenizer, 'ref');
      refModel = r.model;
    } else if (lora) {
      // The base model with adapters disabled: no second copy of the weights.
      refModel = model;
      withAdaptersOff = (f) => {
        model.ctx.adaptersEnabled = false;
        try {
          return f();
        } finally {
          model.ctx.adaptersEnabled = true;
        }
      };
    } else {
      refModel = createModel(model.config, cloneWeights(model.exportWeights()), `${loaded.source} (reference copy)`);
    }
    if (refModel !== model) for (const p of refModel.parameters().values()) p.requiresGrad = false;
    // Its LM head then computes logits in 128 MiB chunks too (no-grad passes otherwise take 512 MiB at once).
    if (refModel !== model) refModel.ctx.gradientCheckpointing = cfg.gradient_checkpointing;
  }
  await yieldToEventLoop(opts.signal);
  const paddingFree = cfg.padding_free, sharePrompt = cfg.share_prompt;
  const ldAlpha = cfg.ld_alpha;
  const liveRef = (batch: PreferenceBatch, w?: Float32Array): Float64Array =>
    withAdaptersOff ? withAdaptersOff(() => referenceLogps(refModel!, batch, paddingFree, w, sharePrompt)) : referenceLogps(refModel!, batch, paddingFree, w, sharePrompt);
  // TR-DPO needs a reference of its own to move toward the policy (config refuses LoRA and precompute).
  if (cfg.sync_ref_model) {
    if (referenceFree || !refModel || refModel === model) {
      throw new Error('sync_ref_model: TR-DPO needs a separate reference model (a reference-based loss_type, without use_peft)');
    }
    checkSyncable(model, refModel);
  }

  // frozen_dtype bfloat16: the frozen weights (LoRA base incl. its embeddings, separate reference
  // copy) only as bf16 — before reference log-probs are precomputed, so they come from the very
  // weights the run holds (and the cache key hashes the bf16 bits).
  let frozenBf16Bytes = 0;
  if (cfg.frozen_dtype === 'bfloat16') {
    if (cfg.sync_ref_model) throw new Error('frozen_dtype: bfloat16 cannot be used with sync_ref_model (TR-DPO updates the reference weights)');
    if (lora) frozenBf16Bytes += storeFrozenLinearsAsBf16(model.linears()) + storeFrozenEmbeddingsAsBf16(model);
    if (refModel && refModel !== model) frozenBf16Bytes += storeFrozenLinearsAsBf16(refModel.linears()) + storeFrozenEmbeddingsAsBf16(refModel);
  }
  let refCacheHit: boolean | null = null;
  let trainRef: { chosen: Float64Array; rejected: Float64Array } | null = null;
  let evalRef: { chosen: Float64Array; rejected: Float64Array } | null = null;
  if (!referenceFree && cfg.precompute_ref_log_probs) {
    const cacheDir = join(opts.cacheDir ?? defaultCacheDir(), 'ref-logps');
    // The first epoch's batches as the training loop's sampler makes them (group_by_length included;
    // precompute_ref_batch_size, when set, batches differently).
    const order = new BatchSampler(trainPairs.length, {
      batchSize: cfg.precompute_ref_batch_size ?? cfg.per_device_train_batch_size, seed: cfg.seed,
      lengths: cfg.group_by_length ? pairLengths(trainPairs) : undefined,
    }).epochBatches(0);
    const compute = (pairs: TokenizedPair[], ord: number[][]) =>
      withAdaptersOff
        ? (() => {
            model.ctx.adaptersEnabled = false;
            try {
              return precomputeReferenceLogps(refModel!, pairs, ord, padId, padToMultipleOf, cacheDir, opts.quiet ?? false, paddingFree, ldAlpha, sharePrompt);
            } finally {
              model.ctx.adaptersEnabled = true;
            }
          })()
        : precomputeReferenceLogps(refModel!, pairs, ord, padId, padToMultipleOf, cacheDir, opts.quiet ?? false, paddingFree, ldAlpha, sharePrompt);
    const tr = compute(trainPairs, order);
    trainRef = tr;
    refCacheHit = tr.hit;
    if (evalPairs.length) {
      const evOrder: number[][] = [];
      const evBs = cfg.precompute_ref_batch_size ?? cfg.per_device_eval_batch_size;
      for (let i = 0; i < evalPairs.length; i += evBs) {
        evOrder.push(Array.from({ length: Math.min(evBs, evalPairs.length - i) }, (_, j) => i + j));
      }
      evalRef = compute(evalPairs, evOrder);
    }
    if (!opts.quiet) process.stderr.write(`reference log-probs: ${tr.hit ? 'loaded from cache' : 'computed and cached'} (${tr.path})\n`);
    // A separate reference copy is no longer needed (unless samples are checked against it): free its weights.
    if (refModel !== model && !cfg.sample_checks) refModel = null;
  }
  if (!opts.quiet) {
    // The kernel line: which GEMM (and, under bf16 autocast, which bf16 GEMM path: amx only after
    // its start-up self-check) this run multiplies with.
    const kp = kernelPath();
    process.stderr.write(`kernels: ${kp.backend}${kp.gemmKernel ? `/${kp.gemmKernel}` : ''}, ${kp.threads} threads` +
      `${matmulPrecision() === 'bf16' ? `; bf16 GEMM: ${gemmBf16Path()}` : ''}\n`);
    const ref = refModel && refModel !== model ? refModel.parameters().values() : null;
    process.stderr.write(`${formatMemoryReport(memoryFloor(model.parameters().values(), params, ref, frozenBf16Bytes))}\n`);
  }

  const lossTypes = cfg.loss_type;
  const usesNll = usesNllTerm(lossTypes, { rpoAlpha: cfg.rpo_alpha ?? undefined, cpoAlpha: cfg.cpo_alpha });
  // bco_pair's δ: the running mean of the training batches' mean reward, checkpointed with the
  // run (TrainTask.lossState) so a resume continues it bit for bit. Evaluation folds each eval
  // batch into a copy and leaves the training state alone.
  let bcoState: BcoRunningMean | undefined =
    needsLossState(lossTypes, 'bcoState') ? newBcoRunningMean() : undefined;

  /** Forward (+ backward when training) of one batch; returns metric sums. */
  const runBatch = (pairIdx: readonly number[], pairs: readonly TokenizedPair[], ref: typeof trainRef, gradScale: number | null): MicroResult => {
    const batch = collate(pairIdx.map((i) => pairs[i]!));
    const P = batch.pairs, rows = 2 * P, T_ = batch.seqLen;
    const meanLogits = new Float32Array(rows * T_);
    // LD-DPO weights the log-probs; the NLL term and WPO then also need the plain sums.
    const ldW = ldAlpha !== null ? ldBatchWeights(batch, ldAlpha) : undefined;
    const logSumSq = cfg.use_weighting ? new Float32Array(rows * T_) : undefined;
    const alsoUnweighted = ldW !== undefined && (usesNll || cfg.use_weighting);
    // Evaluation runs under noGrad: tidy releases the forward's tensors there (the tape does in training).
    const seq = T.tidy(() => sequenceLogps(model, batch, paddingFree, { meanLogits, logSumSqProbs: logSumSq, tokenWeights: ldW, alsoUnweighted, sharePrompt }));
    const all = Float64Array.from(seq.data);
    const pol = all.subarray(0, rows);
    const plain = alsoUnweighted ? all.subarray(rows) : pol;
    let tokens = 0;
    for (let r = 0; r < rows; r++) tokens += batch.lengths[r]!;
    if (!pol.every(Number.isFinite)) {
      // Diverged weights: report a non-finite loss (the loop stops cleanly) instead of back-propagating.
      return { sums: { loss: NaN }, count: P, tokens };
    }
    let refC: Float64Array | undefined, refR: Float64Array | undefined;
    if (!referenceFree) {
      if (ref) {
        refC = Float64Array.from(pairIdx, (i) => ref.chosen[i]!);
        refR = Float64Array.from(pairIdx, (i) => ref.rejected[i]!);
      } else {
        const s = liveRef(batch, ldW);
        refC = s.slice(0, P);
        refR = s.slice(P);
      }
    }
    // WPO: w = exp(mean_t [log p_t − log Σ_v p_v²]) per row over its scored tokens, chosen × rejected.
    let pairWeights: Float64Array | undefined;
    if (logSumSq) {
      const aligned = new Float64Array(rows), scored = new Int32Array(rows);
      for (let r = 0; r < rows; r++) {
        let sq = 0;
        for (let t = 0; t < T_; t++) {
          if (batch.targets[r * T_ + t]! < 0) continue;
          sq += logSumSq[r * T_ + t]!;
          scored[r]!++;
        }
        aligned[r] = plain[r]! - sq;
      }
      pairWeights = wpoPairWeights(aligned.subarray(0, P), scored.subarray(0, P), aligned.subarray(P), scored.subarray(P));
    }
    const res = computePreferenceLoss(lossTypes, {
      policyChosen: pol.slice(0, P), policyRejected: pol.slice(P),
      refChosen: refC, refRejected: refR,
      chosenTokens: batch.responseTokens.slice(0, P), rejectedTokens: batch.responseTokens.slice(P),
      // With LD-DPO the NLL term stays the plain token-mean cross-entropy, as TRL's sft loss.
      ...(alsoUnweighted && usesNll ? { chosenNllSum: Float64Array.from(plain.subarray(0, P), (v) => -v) } : {}),
    }, { ...lossParams(cfg, bcoState), pairWeights });
    if (gradScale !== null) {
      if (res.bcoState) bcoState = res.bcoState;
      const g = new Float32Array(seq.size);
      for (let i = 0; i < P; i++) {
        g[i] = res.gradPolicyChosen[i]! * gradScale;
        g[P + i] = res.gradPolicyRejected[i]! * gradScale;
        // ∂/∂(plain chosen sum) = −∂/∂chosenNllSum.
        if (res.gradChosenNllSum) g[rows + i] = -res.gradChosenNllSum[i]! * gradScale;
      }
      // The sums (the tape's root) were copied into `all`: released now, not left to the GC.
      T.backward(seq, g, { releaseRoot: true });
    } else T.disposeWithBase(seq);
    // Mean logit over each row's response tokens (TRL's logits/chosen and logits/rejected).
    let lc = 0, lr = 0, nc = 0, nr = 0;
    for (let r = 0; r < rows; r++) {
      for (let t = 0; t < T_; t++) {
        if (batch.targets[r * T_ + t]! < 0) continue;
        if (r < P) {
          lc += meanLogits[r * T_ + t]!;
          nc++;
        } else {
          lr += meanLogits[r * T_ + t]!;
          nr++;
        }
      }
    }
    const sum = (a: ArrayLike<number>): number => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += a[i]!;
      return s;
    };
    const sums: Record<string, number> = {
      loss: res.loss * P,
      'rewards/chosen': sum(res.chosenRewards),
      'rewards/rejected': sum(res.rejectedRewards),
      'rewards/accuracies': sum(res.rewardAccuracies),
      'rewards/margins': sum(res.margins),
      ...(pairWeights ? { 'wpo/weight': sum(pairWeights) } : {}),
      'logps/chosen': sum(pol.subarray(0, P)),
      'logps/rejected': sum(pol.subarray(P)),
      'logits/chosen': nc ? (lc / nc) * P : 0,
      'logits/rejected': nr ? (lr / nr) * P : 0,
    };
    if (res.nll !== undefined) sums.nll_loss = res.nll * P;
    if (res.metrics.bco_delta !== undefined) sums.bco_delta = res.metrics.bco_delta * P;
    return { sums, count: P, tokens };
  };

  // ---- samples generated during evaluation (sample_checks) ----
  // TR-DPO moves its reference toward the policy: samples are judged against a frozen copy of the start.
  const checkRef = cfg.sync_ref_model && refModel ? createModel(refModel.config, cloneWeights(refModel.exportWeights()), 'reference at the start (sample checks)') : refModel;
  const sampleCheck = cfg.sample_checks ? makeSampleCheck(cfg, opts, evalPairs, model, checkRef, withAdaptersOff, tokenizer) : null;

  const evaluate = (step: number): Record<string, number> | null => {
    const out = evalMeans(evalPairs.length, cfg.per_device_eval_batch_size, (idx) => T.noGrad(() => runBatch(idx, evalPairs, evalRef, null)));
    if (out === null) return null;
    if (sampleCheck) Object.assign(out, sampleCheck.run(step));
    return out;
  };

  const fingerprint = createHash('sha256');
  fingerprint.update(fingerprintSettings(cfg));
  hashPairs(fingerprint, trainPairs);
  fingerprint.update(`${model.config.architecture}:${params.length}`);

  const result = await runTrainingLoop({
    numExamples: trainPairs.length,
    lengths: pairLengths(trainPairs),
    params,
    trainMicroBatch: (idx, scale, rng) => {
      // disable_dropout (TRL's default): no dropout anywhere (here: LoRA dropout), as TRL.
      model.ctx.rng = cfg.disable_dropout ? null : rng;
      return runBatch(idx, trainPairs, trainRef, scale);
    },
    ...(cfg.sync_ref_model && refModel
      ? {
          // TR-DPO (TRL's SyncRefModelCallback): after every ref_model_sync_steps-th optimizer step,
          // π_ref ← α·π_θ + (1 − α)·π_ref. The reference's weights are part of every checkpoint.
          afterStep: (step: number) => {
            if (step % cfg.ref_model_sync_steps === 0) mixReferenceToward(refModel!, model, cfg.ref_model_mixup_alpha);
          },
          extraState: {
            save: (dir: string) => saveReferenceWeights(refModel!, dir),
            load: (dir: string) => loadReferenceWeights(refModel!, dir),
          },
        }
      : {}),
    evaluate,
    lossState: { get: () => bcoState, set: (s) => (bcoState = s as BcoRunningMean | undefined) },
    saveFinal: (dir) => saveModel(dir, { ...loaded, lora }, { dtype: cfg.save_dtype }),
  }, loopConfig(cfg, opts, fingerprint.digest('hex'), cfg.watchdogs ? dpoWatchdogs(cfg) : undefined, cfg.watchdogs && sampleCheck ? sampleCheck.watch : undefined)).finally(() => {
    model.ctx.rng = null;
  });
  return {
    ...result, model, tokenizer, generation: loaded.generation, lora, source: loaded.source, format: loaded.format, config: cfg,
    trainPairs: trainPairs.length, evalPairs: evalPairs.length, refCacheHit,
  };
}


export type { Tensor };
