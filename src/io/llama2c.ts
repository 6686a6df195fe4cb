// llama2.c model checkpoints (karpathy/llama2.c export.py), read into Hugging Face Llama names.
//
// Legacy (version 0): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; vocab_size < 0 means an unshared classifier), then float32 tensors:
//   token_embedding [V,D], rms_att [L,D], wq [L,D,D], wk [L,KV,D], wv [L,KV,D], wo [L,D,D],
//   rms_ffn [L,D], w1 [L,H,D], w2 [L,D,H], w3 [L,H,D], rms_final [D],
//   freq_cis_real [T,hd/2], freq_cis_imag [T,hd/2], wcls [V,D] (only when unshared).
// Version 1: u32 magic 0x616b3432 ("ak42"), int32 version = 1, the same 7 int32 (vocab_size
// positive), u8 shared_classifier, zero padding to 256 bytes, then float32 tensors:
//   rms_att, rms_ffn, rms_final, token_embedding, wq, wk, wv, wo, w1, w2, w3, wcls (if unshared).
// Version 2 (int8 Q8_0) is rejected with a clear error.
//
// llama2.c applies RoPE to interleaved pairs (2i, 2i+1) of each head; Hugging Face Llama rotates
// halves (i, i + hd/2). wq / wk rows are permuted accordingly (convert_llama_weights_to_hf.py's
// `permute`), so a Hugging Face-convention forward pass reproduces llama2.c exactly.

import { closeSync, fstatSync, openSync } from 'node:fs';
import { llamaConfig, type ModelConfig } from './config.js';
import {
  getWeight, permuteHalvesToInterleaved, permuteInterleavedToHalves, readExactly, writeFileAtomically, type Weight, type WeightMap,
} from './weights.js';

export const LLAMA2C_MAGIC = 0x616b3432;
const V1_HEADER_BYTES = 256;

export interface Llama2cHeader {
  version: 0 | 1;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** Byte offset of the first tensor. */
  dataStart: number;
}

export interface Llama2cCheckpoint {
  header: Llama2cHeader;
  /** A Llama config (RMSNorm eps 1e-5, RoPE theta 10000, BOS 1, EOS 2: llama2.c's constants). */
  config: ModelConfig;
  /** Hugging Face names; q/k rows in rotate_half order; lm_head.weight only when unshared. */
  weights: WeightMap;
}

function fail(path: string, what: string): never {
  throw new Error(`llama2.c checkpoint ${path}: ${what}`);
}

function readFully(fd: number, buf: Uint8Array, position: number, path: string): void {
  readExactly(fd, buf, position, `llama2.c checkpoint ${path}`);
}

function parseHeader(fd: number, path: string, fileSize: number): Llama2cHeader {
  if (fileSize < 28) fail(path, `file is ${fileSize} bytes, shorter than the 28-byte header`);
  const head = new Uint8Array(Math.min(fileSize, V1_HEADER_BYTES));
  readFully(fd, head, 0, path);
  const dv = new DataView(head.buffer);
  let version: 0 | 1 = 0;
  let at = 0;
  let shared: boolean;
  if (dv.getUint32(0, true) === LLAMA2C_MAGIC) {
    const v = dv.getInt32(4, true);
    if (v === 2) fail(path, 'version 2 (int8 Q8_0 quantised) is not supported; export with --version 0 or 1');
    if (v !== 1) fail(path, `unknown version ${v} after the "ak42" magic (supported: legacy and 1)`);
    if (fileSize < V1_HEADER_BYTES) fail(path, `version 1 file is ${fileSize} bytes, shorter than its 256-byte header`);
    version = 1;
    at = 8;
  }
  const ints = Array.from({ length: 7 }, (_, i) => dv.getInt32(at + 4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = ints as [number, number, number, number, number, number, number];
  if (version === 1) shared = dv.getUint8(36) !== 0;
  else shared = vocabRaw > 0;
  const vocabSize = Math.abs(vocabRaw);
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  const vals = [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen];
  vals.forEach((v, i) => {
    if (!(v > 0) || v > 1 << 24) fail(path, `header field ${names[i]} = ${ints[i]} is out of range (not a llama2.c checkpoint?)`);
  });
  if (dim % nHeads !== 0) fail(path, `dim ${dim} is not divisible by n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) fail(path, `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) fail(path, `head size ${dim / nHeads} is odd (RoPE needs pairs)`);
  return {
    version, dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen,
    sharedClassifier: shared, dataStart: version === 1 ? V1_HEADER_BYTES : 28,
  };
}

interface Section {
  /** HF name template; {l} is replaced by the layer index. null: skipped (llama2.c RoPE tables). */
  name: string | null;
  /** Shape of one tensor (per layer when perLayer). */
  shape: number[];
  perLayer: boolean;
}

/** Tensors in file order for a header. */
function sections(h: Llama2cHeader): Section[] {
  const D = h.dim, H = h.hiddenDim, V = h.vocabSize;
  const KV = (h.dim / h.nHeads) * h.nKvHeads;
  const hs = h.dim / h.nHeads;
  const layer = (name: string, shape: number[]): Section => ({ name: `model.layers.{l}.${name}`, shape, perLayer: true });
  const emb: Section = { name: 'model.embed_tokens.weight', shape: [V, D], perLayer: false };
  const rmsAtt = layer('input_layernorm.weight', [D]);
  const rmsFfn = layer('post_attention_layernorm.weight', [D]);
  const rmsFinal: Section = { name: 'model.norm.weight', shape: [D], perLayer: false };
  const matrices = [
    layer('self_attn.q_proj.weight', [D, D]),
    layer('self_attn.k_proj.weight', [KV, D]),
    layer('self_attn.v_proj.weight', [KV, D]),
    layer('self_attn.o_proj.weight', [D, D]),
  ];
  const ffn = [
    layer('mlp.gate_proj.weight', [H, D]), // w1
    layer('mlp.down_proj.weight', [D, H]), // w2
    layer('mlp.up_proj.weight', [H, D]), // w3
  ];
  const cls: Section[] = h.sharedClassifier ? [] : [{ name: 'lm_head.weight', shape: [V, D], perLayer: false }];
  if (h.version === 1) return [rmsAtt, rmsFfn, rmsFinal, emb, ...matrices, ...ffn, ...cls];
  const freq: Section = { name: null, shape: [h.seqLen, hs / 2], perLayer: false };
  return [emb, rmsAtt, ...matrices, rmsFfn, ...ffn, rmsFinal, freq, freq, ...cls];
}

function sectionFloats(s: Section, nLayers: number): number {
  return s.shape.reduce((a, b) => a * b, 1) * (s.perLayer ? nLayers : 1);
}

/** Reads the header only. */
export function readLlama2cHeader(path: string): Llama2cHeader {
  const fd = openSync(path, 'r');
  try {
    return parseHeader(fd, path, fstatSync(fd).size);
  } finally {
    closeSync(fd);
  }
}

/** Reads a llama2.c checkpoint (legacy or version 1) into a Llama config and HF-named weights. */
export function readLlama2cCheckpoint(path: string): Llama2cCheckpoint {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new Error(`llama2.c checkpoint ${path}: cannot open: ${(e as Error).message}`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    const h = parseHeader(fd, path, fileSize);
    const secs = sections(h);
    const floats = secs.reduce((a, s) => a + sectionFloats(s, h.nLayers), 0);
    const expected = h.dataStart + 4 * floats;
    if (fileSize !== expected) {
      fail(path, `file is ${fileSize} bytes but the header (dim ${h.dim}, hidden ${h.hiddenDim}, ${h.nLayers} layers, ` +
        `${h.nHeads}/${h.nKvHeads} heads, vocab ${h.vocabSize}, seq ${h.seqLen}, ${h.sharedClassifier ? 'shared' : 'unshared'} classifier, ` +
        `version ${h.version}) needs ${expected}${fileSize < expected ? ' (truncated?)' : ''}`);
    }
    const weights: WeightMap = new Map();
    let pos = h.dataStart;
    for (const s of secs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const count = s.perLayer ? h.nLayers : 1;
      for (let l = 0; l < count; l++) {
        if (s.name !== null) {
          const data = new Float32Array(n);
          readFully(fd, new Uint8Array(data.buffer), pos, path);
          weights.set(s.name.replace('{l}', String(l)), { shape: [...s.shape], data });
        }
        pos += 4 * n;
      }
    }
    for (let l = 0; l < h.nLayers; l++) {
      const q = `model.layers.${l}.self_attn.q_proj.weight`;
      const k = `model.layers.${l}.self_attn.k_proj.weight`;
      weights.set(q, permuteInterleavedToHalves(weights.get(q)!, h.nHeads));
      weights.set(k, permuteInterleavedToHalves(weights.get(k)!, h.nKvHeads));
    }
    const config = llamaConfig({
      vocabSize: h.vocabSize, hiddenSize: h.dim, intermediateSize: h.hiddenDim, numLayers: h.nLayers,
      numHeads: h.nHeads, numKvHeads: h.nKvHeads, maxPositions: h.seqLen, normEps: 1e-5, ropeTheta: 10000,
      tieWordEmbeddings: h.sharedClassifier,
    });
    return { header: h, config, weights };
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a llama2.c checkpoint (version 0 = legacy, read by llama2.c's run.c; version 1 = "ak42"
 * header). Only plain Llama configs fit the format: no biases, SiLU, unscaled RoPE, head_dim =
 * hidden/heads. q/k rows go back to the interleaved layout. The RoPE tables of the legacy format
 * use theta = config.ropeTheta.
 */
export function writeLlama2cCheckpoint(path: string, config: ModelConfig, weights: WeightMap, opts: { version?: 0 | 1 } = {}): void {
  const version = opts.version ?? 1;
  const why =
    config.architecture !== 'llama' ? `architecture ${config.architecture}` :
    config.attentionBias || config.attentionOutputBias || config.mlpBias ? 'linear biases' :
    config.activation !== 'silu' ? `activation ${config.activation}` :
    config.ropeScaling !== null ? `rope_scaling ${config.ropeScaling.type}` :
    config.headDim * config.numHeads !== config.hiddenSize ? `head_dim ${config.headDim} != hidden/heads` : null;
  if (why) throw new Error(`writeLlama2cCheckpoint ${path}: the llama2.c format cannot hold a model with ${why}`);
  const h: Llama2cHeader = {
    version, dim: config.hiddenSize, hiddenDim: config.intermediateSize, nLayers: config.numLayers,
    nHeads: config.numHeads, nKvHeads: config.numKvHeads, vocabSize: config.vocabSize, seqLen: config.maxPositions,
    sharedClassifier: config.tieWordEmbeddings, dataStart: version === 1 ? V1_HEADER_BYTES : 28,
  };
  const src = `writeLlama2cCheckpoint ${path}`;
  const tensorFor = (name: string, shape: number[]): Weight => {
    const w = getWeight(weights, name, shape, src);
    if (name.endsWith('q_proj.weight')) return permuteHalvesToInterleaved(w, h.nHeads);
    if (name.endsWith('k_proj.weight')) return permuteHalvesToInterleaved(w, h.nKvHeads);
    return w;
  };
  const header = new DataView(new ArrayBuffer(h.dataStart));
  let at = 0;
  if (version === 1) {
    header.setUint32(0, LLAMA2C_MAGIC, true);
    header.setInt32(4, 1, true);
    at = 8;
  }
  const vocabField = version === 0 && !h.sharedClassifier ? -h.vocabSize : h.vocabSize;
  [h.dim, h.hiddenDim, h.nLayers, h.nHeads, h.nKvHeads, vocabField, h.seqLen].forEach((v, i) => header.setInt32(at + 4 * i, v, true));
  if (version === 1) header.setUint8(36, h.sharedClassifier ? 1 : 0);

  // Check every tensor before creating the file (q/k are permuted copies; the rest are views).
  const ordered: (Weight | null)[] = [];
  for (const s of sections(h)) {
    const count = s.perLayer ? h.nLayers : 1;
    for (let l = 0; l < count; l++) ordered.push(s.name === null ? null : tensorFor(s.name.replace('{l}', String(l)), s.shape));
  }

  writeFileAtomically(path, src, (write) => {
    write(new Uint8Array(header.buffer));
    let freqIndex = 0;
    for (const w of ordered) {
      if (w !== null) {
        write(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
        continue;
      }
      // freq_cis_real then freq_cis_imag, as llama2.c's precompute_freqs_cis(head_size, seq_len).
      const hs = h.dim / h.nHeads;
      const table = new Float32Array(h.seqLen * (hs / 2));
      for (let t = 0; t < h.seqLen; t++) {
        for (let i = 0; i < hs / 2; i++) {
          const angle = t / Math.pow(config.ropeTheta, (2 * i) / hs);
          table[t * (hs / 2) + i] = freqIndex === 0 ? Math.cos(angle) : Math.sin(angle);
        }
      }
      freqIndex++;
      write(new Uint8Array(table.buffer));
    }
  });
}
