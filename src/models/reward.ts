// Sequence-classification models (reward and value models): a causal LM body with a scalar head
// `score.weight` [1, hidden] on the final hidden states, as transformers'
// LlamaForSequenceClassification / Qwen2ForSequenceClassification / GPT2ForSequenceClassification
// with num_labels 1. A sequence's reward is the head read at its last non-padding token, found as
// transformers does: the rightmost position whose id is not pad_token_id. A value model reads the
// head at every position.
//
// Read and written (io/reward-dir.ts) as a normal Hugging Face directory (config.json with the ForSequenceClassification
// architecture, num_labels 1, pad_token_id; model.safetensors with the body and score.weight, no
// LM head), so transformers' AutoModelForSequenceClassification loads it.

import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import type { ModelConfig } from './config.js';
import type { WeightMap } from '../tensor/weight-map.js';
import { weightOf } from './decoder.js';
import type { CausalLM, TokenBlock } from './model.js';

const CAUSAL_TO_CLS: Record<string, string> = { llama: 'LlamaForSequenceClassification', qwen2: 'Qwen2ForSequenceClassification', gpt2: 'GPT2ForSequenceClassification' };
/** ForSequenceClassification class → the causal LM class of its body. */
export const CLS_TO_CAUSAL: Record<string, string> = {
  LlamaForSequenceClassification: 'LlamaForCausalLM', MistralForSequenceClassification: 'MistralForCausalLM',
  Qwen2ForSequenceClassification: 'Qwen2ForCausalLM', GPT2ForSequenceClassification: 'GPT2LMHeadModel',
};

/** A causal LM body whose final hidden states can be read ([batch·seq, hidden]). */
export type HiddenLM = CausalLM & { hidden(block: TokenBlock): Tensor };

function asHidden(model: CausalLM): HiddenLM {
  if (typeof (model as Partial<HiddenLM>).hidden !== 'function') throw new Error(`sequence classification: the ${model.config.architecture} model does not expose hidden states`);
  return model as HiddenLM;
}

/** The index of each row's last non-padding token (transformers' rule; 0 for an all-padding row). */
export function lastNonPadIndex(ids: Int32Array, batch: number, seq: number, padId: number): Int32Array {
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    for (let t = seq - 1; t >= 0; t--) {
      if (ids[b * seq + t] !== padId) {
        out[b] = t;
        break;
      }
    }
  }
  return out;
}

export class SequenceClassifier {
  readonly body: HiddenLM;

  constructor(body: CausalLM, readonly score: Tensor, public padTokenId: number, readonly rawConfig: Record<string, unknown> = {}) {
    this.body = asHidden(body);
    const d = body.config.hiddenSize;
    if (score.shape.length !== 2 || score.shape[0] !== 1 || score.shape[1] !== d) {
      throw new Error(`sequence classification: score.weight has shape [${score.shape.join(', ')}], expected [1, ${d}] (num_labels 1)`);
    }
  }

  /** A fresh head N(0, 0.02) on a causal LM (transformers' initializer_range), seeded. */
  static fromCausalLM(body: CausalLM, padTokenId: number, seed = 0): SequenceClassifier {
    const rng = new Rng(seed ^ 0x5c0e);
    const d = body.config.hiddenSize;
    const w = new Float32Array(d);
    for (let i = 0; i < d; i++) w[i] = rng.normal() * 0.02;
    return new SequenceClassifier(body, T.fromBuffer(w, [1, d], { requiresGrad: true, name: 'score.weight' }), padTokenId);
  }

  get config(): ModelConfig {
    return this.body.config;
  }

  /**
   * Head output at every position: [batch·seq] (on the tape when grad is enabled; without it,
   * tidy releases the hidden states at once instead of leaving them to the garbage collector).
   */
  values(block: TokenBlock): Tensor {
    const N = block.batch * block.seq;
    return T.tidy(() => T.reshape(T.matmul(this.body.hidden(block), this.score, { transB: true }), [N]));
  }

  /** Per-row rewards [batch]: the head at each row's last non-padding token. */
  rewards(ids: Int32Array, batch: number, seq: number): Tensor {
    const idx = lastNonPadIndex(ids, batch, seq, this.padTokenId);
    return T.tidy(() => selectPositions(this.values({ ids, batch, seq }), idx, batch, seq));
  }

  parameters(): Map<string, Tensor> {
    const m = new Map(this.body.parameters());
    m.set('score.weight', this.score);
    return m;
  }

  trainableParameters(): Tensor[] {
    return [...this.parameters().values()].filter((t) => t.requiresGrad);
  }

  /** Hugging Face weights: the body's (no LM head) and score.weight. */
  exportWeights(): WeightMap {
    const w = this.body.exportWeights();
    w.delete('lm_head.weight');
    w.set('score.weight', weightOf(this.score));
    return w;
  }

  /** config.json fields of the sequence-classification directory. */
  configJson(): { config: ModelConfig; extra: Record<string, unknown> } {
    const arch = CAUSAL_TO_CLS[this.config.architecture]!;
    return {
      config: this.config,
      extra: {
        architectures: [arch], num_labels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 },
        pad_token_id: this.padTokenId, problem_type: 'regression',
      },
    };
  }
}

/** Rows of a [batch·seq] tensor at one position per row → [batch] (a 0/1 selection product). */
export function selectPositions(v: Tensor, idx: Int32Array, batch: number, seq: number): Tensor {
  const sel = new Float32Array(batch * batch * seq);
  for (let b = 0; b < batch; b++) sel[b * batch * seq + b * seq + idx[b]!] = 1;
  return T.reshape(T.matmul(T.tensor(sel, [batch, batch * seq], { transient: true }), T.reshape(v, [batch * seq, 1])), [batch]);
}
