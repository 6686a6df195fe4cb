// The real-model, real-data and golden fixtures, in the repository (test/fixtures/), so a clone in any
// directory runs every test; ../shared is for benches only. Sources and licenses: test/fixtures/README.md.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** test/fixtures in the source tree (this module runs as dist/test/helpers/fixtures.js). */
export const FIXTURES = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'test', 'fixtures');

/** stories260K, a real pretrained llama2.c checkpoint (MIT), and its 512-token tokenizer. */
export const STORIES260K = join(FIXTURES, 'models', 'stories260K', 'stories260K.bin');
export const TOK512 = join(FIXTURES, 'models', 'stories260K', 'tok512.bin');
/** A Hugging Face GPT-2 directory with random weights (config, safetensors, vocab.json, merges.txt). */
export const TINY_GPT2 = join(FIXTURES, 'models', 'tiny-gpt2-random');
/** The first 400 rows of Anthropic HH-RLHF helpful-base test plus its row 722 (401 rows; 2 bad: one empty
 *  rejected response at line 121, one identical pair at line 401). */
export const HH_RLHF = join(FIXTURES, 'data', 'hh-rlhf', 'helpful-base-test-401.jsonl.gz');
/** The first 60 rows of orca_dpo_pairs validation (OpenAI preference fine-tuning format). */
export const ORCA = join(FIXTURES, 'data', 'orca-dpo-pairs', 'validation-60.jsonl');
/** PyTorch-computed golden vectors (dpo_losses.json, dpo_losses_more.json, rl_losses.json). */
export const GOLDEN_DIR = join(FIXTURES, 'golden');
