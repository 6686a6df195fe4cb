// What every causal language model in the project provides (CausalLM) and its input (TokenBlock).
// The shared implementation pieces live in decoder.ts.

import type { Tensor } from '../tensor/index.js';
import type { ModelConfig } from './config.js';
import type { WeightMap } from '../tensor/weight-map.js';
import type { Linear, ForwardContext } from '../nn/linear.js';
import type { KVCache } from './kv-cache.js';

/** Inputs of a training-style forward: a [batch, seq] block of token ids. */
export interface TokenBlock {
  ids: Int32Array;
  batch: number;
  seq: number;
  /**
   * First real position of each row (left padding, generation); null = 0 for all rows.
   * Positions count from there: position of token t in row b is max(0, t − kvStart[b]).
   */
  kvStart?: Int32Array | null;
  /**
   * Padding-free packing: the lengths of sequences laid back to back in the single row (batch 1,
   * Σ = seq). Each sequence gets positions from 0 and attends only to itself.
   */
  segments?: Int32Array | null;
  /**
   * With segments, sequences sharing rows (a tree, e.g. a preference pair's prompt computed once
   * before its chosen and rejected branches): sequence s is the packed rows
   * packedRows[o_s .. o_s + segments[s] − 1] (Σ segments = packedRows.length; seq = the distinct
   * rows, each read by at least one sequence and at the same position in every one that reads it).
   * Absent: each sequence is its own run of consecutive rows.
   */
  packedRows?: Int32Array | null;
}

export interface CausalLM {
  readonly config: ModelConfig;
  /** Every parameter by its Hugging Face name (LoRA adapters included when attached). */
  parameters(): Map<string, Tensor>;
  /** Parameters that train (requiresGrad). */
  trainableParameters(): Tensor[];
  /** The linear layers by module path (for LoRA targeting). */
  linears(): Linear[];
  /** Forward context (adapters on/off, dropout RNG). */
  ctx: ForwardContext;
  /**
   * log p(targets[b, t] | ids[b, ≤t]) for every position: shape [batch·seq]; targets −1 → 0.
   * Records the tape when grad is enabled. Never materializes the full logits. opts.meanLogits
   * ([batch·seq]) receives each position's mean logit over the vocabulary (TRL's logits/* metrics).
   * opts.temperature divides the logits first (log-probs of the distribution sampled at that
   * temperature, as the RL trainers need).
   */
  tokenLogprobs(block: TokenBlock, targets: Int32Array, opts?: { meanLogits?: Float32Array; logSumSqProbs?: Float32Array; temperature?: number }): Tensor;
  /** Logits of the last position of each row after feeding ids through the cache: [batch, vocab]. */
  forwardCached(ids: Int32Array, tNew: number, cache: KVCache, kvStart: Int32Array | null): Float32Array;
  newCache(batch: number, capacity: number): KVCache;
  /** Weights in Hugging Face names and layouts (for saving). */
  exportWeights(): WeightMap;
}
