// The CandidateGenerator of `dpo annotate add-prompts` backed by a local model (src/models): a
// Hugging Face directory or a llama2.c checkpoint with its tokenizer. Kept apart from generate.ts
// so the store and its tests do not load the model stack.
import type { Tokenizer } from '../io/tokenizer.js';
import { generate } from '../models/generate.js';
import { loadModelAndTokenizer } from '../io/load-model.js';
import type { CausalLM } from '../models/model.js';
import type { CandidateGenerator } from './generate.js';

/** FNV-1a over the UTF-16 code units: a stable 32-bit hash of the prompt text. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The text the model continues: the prompt as a user turn when the tokenizer has a chat template. */
export function promptText(tokenizer: Tokenizer, prompt: string): string {
  if (tokenizer.chatTemplate === null) return prompt;
  return tokenizer.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true });
}

/**
 * Two candidates per prompt, sampled in one batch of the same prompt twice. generateTokens keeps
 * one RNG per batch row (seeded from seed + row), so the two rows are different samples. The seed
 * of a prompt is derived from the base seed and the prompt text, not from its position in the
 * file: re-running or reordering the prompts file gives each prompt the same candidates.
 */
export function modelCandidateGenerator(model: CausalLM, tokenizer: Tokenizer, source = 'model'): CandidateGenerator {
  return async (prompt, n, opts) => {
    const text = promptText(tokenizer, prompt);
    const promptTokens = tokenizer.encode(text).length;
    const room = model.config.maxPositions - promptTokens;
    if (room < 1) {
      throw new Error(
        `add-prompts: ${source}: prompt "${prompt.slice(0, 40)}${prompt.length > 40 ? '…' : ''}" is ${promptTokens} tokens, ` +
          `the model has only ${model.config.maxPositions} positions`,
      );
    }
    const res = generate(model, tokenizer, Array.from({ length: n }, () => text), {
      temperature: opts.temperature,
      topP: opts.topP,
      topK: opts.topK,
      // A response cannot run past the model's context; shorter responses are fine to compare.
      maxNewTokens: Math.min(opts.maxNewTokens, room),
      seed: (opts.seed + hash32(prompt)) >>> 0,
      stopIds: tokenizer.stopIds,
    });
    return res.texts;
  };
}

/** Loads a local model and its tokenizer and returns a generator over it (for `add-prompts --model`). */
export async function loadLocalCandidateGenerator(modelPath: string): Promise<CandidateGenerator> {
  const { model, tokenizer } = await loadModelAndTokenizer(modelPath);
  return modelCandidateGenerator(model, tokenizer, modelPath);
}
