// Model shapes of the step benches (random init): GPT-2 small and SmolLM2-135M, as the PyTorch
// reference in ../shared/bench, plus a tiny GPT-2 for smoke runs.
export const BENCH_SHAPES: Record<string, Record<string, unknown>> = {
  tiny: { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 512, n_embd: 64, n_layer: 4, n_head: 4, n_positions: 256, activation_function: 'gelu_new' },
  small: { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 512, activation_function: 'gelu_new' },
  llama135: {
    architectures: ['LlamaForCausalLM'], vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
    num_attention_heads: 9, num_key_value_heads: 3, max_position_embeddings: 512, rms_norm_eps: 1e-5, rope_theta: 100000, tie_word_embeddings: true,
  },
  // Llama-3.2-1B's shape (its config.json, sequence limited to the bench's 1024 tokens).
  llama1b: {
    architectures: ['LlamaForCausalLM'], vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
    num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 500000,
    rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    tie_word_embeddings: true,
  },
};

/** Seeded benchmark data (an LCG): n values uniform in [lo, hi). The same seed gives the same data in every bench. */
export function seededUniform(n: number, seed: number, lo = -0.5, hi = 0.5): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = lo + (s / 4294967296) * (hi - lo);
  }
  return x;
}
