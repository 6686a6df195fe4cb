// `dpo train`'s kernel line (stderr, before the first step): the backend and GEMM micro-kernel,
// the thread count and, under bf16 autocast, the bf16 GEMM path that runs (amx only after its
// start-up self-check against the emulator, see native/gemm_bf16.cc).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gemmBf16Path } from '../src/tensor/backend.js';
import { parseDpoConfig } from '../src/train/config.js';
import { runDpo } from '../src/train/dpo.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

test('dpo train names the bf16 GEMM path in its kernel line (bf16 runs only)', async () => {
  const modelDir = await makeTinyModelDir();
  const dir = mkdtempSync(join(tmpdir(), 'bf16-kernel-line-'));
  const data = writeJsonl(join(dir, 'train.jsonl'), syntheticPairs(8, 1));
  const cfg = { per_device_train_batch_size: 4, max_length: 32, max_prompt_length: 16, max_steps: 1, save_steps: 0, eval_steps: 0, logging_steps: 1 };
  const lines = async (bf16: boolean): Promise<string[]> => {
    const out: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => { out.push(String(chunk)); return true; }) as typeof process.stderr.write;
    try {
      await runDpo({ model: modelDir, data: [data], outputDir: join(dir, `out-${bf16}`), config: parseDpoConfig({ ...cfg, bf16 }) });
    } finally {
      process.stderr.write = write;
    }
    return out.join('').split('\n').filter((l) => l.startsWith('kernels: '));
  };
  const bf = await lines(true);
  assert.equal(bf.length, 1, bf.join('\n'));
  assert.match(bf[0]!, new RegExp(`; bf16 GEMM: ${gemmBf16Path()}$`));
  const f32 = await lines(false);
  assert.equal(f32.length, 1);
  assert.doesNotMatch(f32[0]!, /bf16/);
});
