// lmHeadLogprobs without grad (a reference model's log-probs): the logits of up to maxLogitsBytes
// (512 MiB) in one GEMM, so W is packed (under bf16 autocast: converted) once, not once per 128 MiB
// chunk; keepLogits: false (gradient checkpointing, the memory floor) keeps the 128 MiB chunks.
// Same results either way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { kernels, setKernels } from '../src/tensor/backend.js';
import type { Kernels } from '../src/tensor/kernels.js';
import { mulberry32 as rng } from './helpers/rng.js';

/** Runs fn with every gemm / gemmBf16 call's row count recorded. */
function gemmRows<T>(fn: () => T): { result: T; rows: number[] } {
  const base = kernels();
  const rows: number[] = [];
  const spy = Object.create(base) as Kernels;
  spy.gemm = (...a: Parameters<Kernels['gemm']>) => {
    rows.push(a[2]);
    return base.gemm(...a);
  };
  spy.gemmBf16 = (...a: Parameters<Kernels['gemmBf16']>) => {
    rows.push(a[2]);
    return base.gemmBf16(...a);
  };
  setKernels(spy);
  try {
    return { result: fn(), rows };
  } finally {
    setKernels(base);
  }
}

test('lmHeadLogprobs without grad: one GEMM up to the 512 MiB budget; 128 MiB chunks with keepLogits false; same log-probs', () => {
  // 600 rows × 65,536 ids × 4 bytes = 150 MiB of logits: over one 128 MiB chunk (512 rows).
  const N = 600, V = 65536, d = 4;
  const r = rng(5);
  const h = T.tensor(Float32Array.from({ length: N * d }, () => r() * 2 - 1), [N, d]);
  const W = T.tensor(Float32Array.from({ length: V * d }, () => r() * 2 - 1), [V, d]);
  const targets = Int32Array.from({ length: N }, (_, i) => (i % 7 === 3 ? -1 : (i * 7919) % V));
  const rowsWithTarget = targets.filter((t) => t >= 0).length;
  for (const precision of ['float32', 'bf16'] as const) {
    T.withMatmulPrecision(precision, () => {
      const whole = gemmRows(() => T.noGrad(() => T.lmHeadLogprobs(h, W, targets)));
      assert.deepEqual(whole.rows, [rowsWithTarget], `${precision}: one GEMM over every row with a target`);
      const chunked = gemmRows(() => T.noGrad(() => T.lmHeadLogprobs(h, W, targets, { keepLogits: false })));
      assert.deepEqual(chunked.rows, [512, rowsWithTarget - 512], `${precision}: 128 MiB chunks under keepLogits: false`);
      // Each logit's sum runs along d only: the chunking cannot change a bit.
      assert.deepEqual(whole.result.data, chunked.result.data, precision);
      const small = gemmRows(() => T.noGrad(() => T.lmHeadLogprobs(h, W, targets, { maxLogitsBytes: 64 * 2 ** 20 })));
      assert.deepEqual(small.rows, [256, 256, rowsWithTarget - 512], `${precision}: a smaller budget still bounds the chunks`);
      assert.deepEqual(small.result.data, whole.result.data, precision);
    });
  }
});
