// A constant an op saves for its backward (the segment matrix of the per-sequence sums, the
// reward model's position selection) is built with tensor(…, { transient: true }): backward
// releases its buffer after the last node that saved it, as it does an intermediate's. Before,
// such a leaf waited for the garbage collector, one per training step (share_prompt's tree layout
// made it a 21 KB-per-step rise of the demo's live tensor bytes until a full collection, and a
// working set, so a pool bound, 2.4x as large).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { memoryStats } from '../src/tensor/memory.js';
import { sequenceSumsOnTape } from '../src/models/logprobs.js';
import { selectPositions } from '../src/models/reward.js';

/** Live tensor bytes (as requested) added by fn and still held after it, with its grads counted apart. */
function heldAfter(fn: () => T.Tensor[]): { delta: number; gradBytes: number } {
  const before = memoryStats().currentBytes;
  const leaves = fn();
  let gradBytes = 0;
  for (const l of leaves) gradBytes += (l.grad?.length ?? 0) * 4;
  const delta = memoryStats().currentBytes - before;
  for (const l of leaves) {
    if (l.grad) T.release(l.grad);
    l.grad = null;
    l.dispose();
  }
  return { delta, gradBytes };
}

test('per-sequence sums on the tape (tree / padded index): backward releases the segment matrix', () => {
  const rows = 8, seqLen = 250, N = 1000;
  const paddedIndex = Int32Array.from({ length: N }, (_, i) => Math.floor(i / (N / rows)) * seqLen + (i % (N / rows)));
  const r = heldAfter(() => {
    const lp = T.tensor(Float32Array.from({ length: N }, (_, i) => -((i % 7) + 1) / 10), [N], { requiresGrad: true });
    const sums = sequenceSumsOnTape(lp, { rows, seqLen, paddedIndex, alsoUnweighted: true });
    const loss = T.sum(sums, 0);
    T.backward(loss);
    // Each row's sum counts its tokens twice (weighted with weight 1, and unweighted): d/dlp = 2.
    assert.ok(Array.from(lp.grad!).every((g) => g === 2), 'gradient of the sums');
    loss.dispose();
    sums.dispose();
    return [lp];
  });
  // Still held: the input's buffer and its gradient. The [2·rows, N] segment matrix (64 KB) is not.
  assert.equal(r.delta, N * 4 + r.gradBytes, `held ${r.delta} bytes after backward`);
});

test('the reward model\'s position selection: backward releases the selection matrix', () => {
  const batch = 6, seq = 300;
  const r = heldAfter(() => {
    const v = T.tensor(Float32Array.from({ length: batch * seq }, (_, i) => i / 100), [batch * seq], { requiresGrad: true });
    const idx = Int32Array.from({ length: batch }, (_, b) => (b * 37) % seq);
    const out = selectPositions(v, idx, batch, seq);
    assert.deepEqual(Array.from(out.data), Array.from(idx, (p, b) => Math.fround((b * seq + p) / 100)));
    const loss = T.sum(out, 0);
    T.backward(loss);
    loss.dispose();
    out.dispose();
    return [v];
  });
  assert.equal(r.delta, batch * seq * 4 + r.gradBytes, `held ${r.delta} bytes after backward`);
});

test('a transient constant cannot require a gradient', () => {
  assert.throws(() => T.tensor([1, 2], [2], { transient: true, requiresGrad: true }), /transient constant cannot require a gradient/);
});

test('backward(…, { releaseRoot: true }) also releases the root (a view\'s base), never a leaf or a retained root', () => {
  const n = 500;
  // The root is a view (reshape) of the sums' matmul output: the base's buffer goes back.
  const r = heldAfter(() => {
    const lp = T.tensor(Float32Array.from({ length: n }, (_, i) => -i / n), [n], { requiresGrad: true });
    const sums = sequenceSumsOnTape(lp, { rows: 4, seqLen: n / 4, paddedIndex: Int32Array.from({ length: n }, (_, i) => i) });
    assert.ok(sums.isView, 'the sums are a reshaped view');
    const before = Array.from(sums.data);
    T.backward(sums, Float32Array.of(1, 2, 3, 4), { releaseRoot: true });
    assert.equal(sums.size, 4);
    assert.equal(sums.data.length, 0, 'the root still has its data');
    assert.ok(before.every(Number.isFinite));
    assert.deepEqual(Array.from(lp.grad!.subarray(0, 3)), [1, 1, 1]);
    return [lp];
  });
  assert.equal(r.delta, n * 4 + r.gradBytes, `held ${r.delta} bytes after backward`);
  // Without the option the root stays the caller's (as before).
  const kept = heldAfter(() => {
    const x = T.tensor(Float32Array.from({ length: n }, (_, i) => i), [n], { requiresGrad: true });
    const y = T.scale(x, 2);
    T.backward(y);
    assert.equal(y.data[3], 6);
    const yBytes = y.data.length * 4;
    y.dispose();
    assert.equal(yBytes, n * 4);
    return [x];
  });
  assert.equal(kept.delta, n * 4 + kept.gradBytes);
  // A retained root keeps its data; a leaf root too.
  const x = T.tensor(Float32Array.from({ length: 8 }, (_, i) => i), [8], { requiresGrad: true });
  const y = T.scale(x, 3).retain();
  T.backward(y, undefined, { releaseRoot: true });
  assert.equal(y.data[2], 6, 'a retained root was released');
  assert.deepEqual(Array.from(x.grad!), new Array(8).fill(3));
  T.backward(x, undefined, { releaseRoot: true });
  assert.equal(x.data[2], 2, 'a leaf root (a parameter) was released');
  y.dispose();
  x.dispose();
});
