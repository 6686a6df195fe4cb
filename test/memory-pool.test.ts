// The tensor buffer pool (src/tensor/memory.ts): size classes reuse buffers across lengths, the
// retained bytes stay under a bound derived from the working set and stop growing after warm-up
// on a run of varying lengths, and pooling never changes results (DPO losses and weights are
// bit-identical with and without the pool, with reused non-zeroed buffers poisoned by NaN), and
// long loops (RL steps, add-prompts) give the event loop the turns the pool's accounting needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { llamaConfig } from '../src/io/config.js';
import { randomModel } from '../src/models/index.js';
import { Rng } from '../src/tensor/random.js';
import { mallocInfo, tuneMalloc, userChoseMalloc } from '../src/tensor/allocator.js';
import { nativeKernels } from '../src/tensor/backend.js';
import { POOL_MIN_LIMIT_BYTES } from '../src/tensor/memory.js';
import { AdamW } from '../src/train/optimizer.js';
import { parseDpoConfig } from '../src/train/config.js';
import { runDpo } from '../src/train/dpo.js';
import { makeRlTask, makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';
import { runGrpo } from '../src/train/grpo.js';
import { parseGrpoConfig } from '../src/train/rl-config.js';
import { addPrompts, DEFAULT_SAMPLING } from '../src/annotate/generate.js';
import { openDatabase } from '../src/annotate/db.js';
import { dbPath, initProject } from '../src/annotate/store.js';

// The defaults (this test runs without DPO_POOL_LIMIT_MB).
const DEFAULTS = { ...T.poolConfig() };
assert.deepEqual({ classes: DEFAULTS.classes, limitBytes: DEFAULTS.limitBytes, freeDropped: DEFAULTS.freeDropped }, { classes: 'classes', limitBytes: 'auto', freeDropped: true });

function restoreDefaults(): void {
  T.configurePool(DEFAULTS);
  T.setPoolPoison(false);
}

test('size classes: at most 12.5% over the request, 8 per power of two, monotone', () => {
  let prev = 0;
  const perOctave = new Map<number, Set<number>>();
  for (let n = 1; n <= 70000; n++) {
    const c = T.sizeClass(n, 'classes');
    assert.ok(c >= n, `class ${c} < ${n}`);
    if (n > 16) assert.ok(c <= n * 1.125, `class ${c} of ${n} wastes more than 12.5%`);
    assert.ok(c >= prev, 'classes not monotone');
    prev = c;
    const o = Math.ceil(Math.log2(n));
    if (!perOctave.has(o)) perOctave.set(o, new Set());
    perOctave.get(o)!.add(c);
  }
  for (const [o, set] of perOctave) if (o >= 5 && 2 ** o <= 70000) assert.equal(set.size, 8, `octave 2^${o}: ${set.size} classes`);
  assert.equal(T.sizeClass(1000, 'exact'), 1000);
  // Large sizes (past 2^31 elements the exponent comes from log2).
  assert.equal(T.sizeClass(2 ** 31 + 1, 'classes'), 2 ** 31 + 2 ** 28);
});

test('buffers are reused across lengths of one class, zeroed when asked, views of the requested length', () => {
  restoreDefaults();
  const a = T.alloc('float32', 1000, false);
  a.fill(7);
  T.release(a);
  const before = T.memoryStats();
  const b = T.alloc('float32', 990); // same class (1024): reused and cleared
  assert.equal(b.length, 990);
  assert.equal(b.buffer, a.buffer);
  assert.ok(b.every((x) => x === 0));
  assert.equal(T.memoryStats().poolHits, before.poolHits + 1);
  T.release(b);
  const c = T.alloc('float32', 1020, false); // not zeroed: old contents are fine, the kernel overwrites
  assert.equal(c.buffer, a.buffer);
  assert.equal(c.length, 1020);
  T.release(c);
  // float64 and float32 never share a class.
  const d = T.alloc('float64', 512);
  assert.notEqual(d.buffer, a.buffer);
  T.release(d);
  // Releasing twice, or a buffer that did not come from alloc(), is ignored.
  T.release(d);
  T.release(new Float32Array(10));
  T.clearPool();
  assert.equal(T.memoryStats().pooledBytes, 0);
});

test('the bound: pooled bytes never exceed it; least recently requested classes go first', () => {
  restoreDefaults();
  T.setPoolLimit(64 * 1024);
  try {
    // Two classes in use: 2 × 16 KiB (4096 floats) and 2 × 8 KiB (2048 floats)...
    const old = [T.alloc('float32', 4096), T.alloc('float32', 4096)];
    const mid = [T.alloc('float32', 2048), T.alloc('float32', 2048)];
    for (const b of [...old, ...mid]) T.release(b);
    assert.equal(T.memoryStats().pooledBytes, 2 * 16384 + 2 * 8192);
    // ...then the lengths change: 1200 floats (class 1280, too small to borrow a 2048 block).
    // The new class takes over and the 4096 class (not requested since) is dropped first.
    const t = T.alloc('float32', 2000); // class 2048: touches it
    T.release(t);
    const fresh = Array.from({ length: 5 }, () => T.alloc('float32', 1200));
    assert.equal(fresh[0]!.buffer.byteLength, 1280 * 4);
    for (const b of fresh) T.release(b);
    const s = T.memoryStats();
    assert.ok(s.pooledBytes <= 64 * 1024, `pooled ${s.pooledBytes}`);
    assert.ok(s.poolEvictedBytes > 0);
    const m = [T.alloc('float32', 2048), T.alloc('float32', 2048)];
    assert.equal(T.memoryStats().poolHits, s.poolHits + 2, 'the recently used class was evicted before the stale one');
    const o = [T.alloc('float32', 4096), T.alloc('float32', 4096)];
    assert.ok(T.memoryStats().poolMisses > s.poolMisses, 'the stale class was not evicted');
    for (const b of [...m, ...o]) T.release(b);
    assert.ok(T.memoryStats().pooledBytes <= 64 * 1024);
    // A shorter request borrows a block of a larger class (up to 1.5x), a much shorter one does not.
    T.clearPool();
    const big = T.alloc('float32', 4000);
    T.release(big);
    const borrowed = T.alloc('float32', 3000);
    assert.equal(borrowed.buffer, big.buffer);
    assert.equal(borrowed.length, 3000);
    T.release(borrowed);
    assert.notEqual(T.alloc('float32', 2000).buffer, big.buffer);
    // A buffer larger than the bound is never pooled.
    T.release(T.alloc('float32', 100000));
    assert.ok(T.memoryStats().pooledBytes <= 64 * 1024);
    // 0 disables pooling.
    T.setPoolLimit(0);
    const x = T.alloc('float32', 100);
    T.release(x);
    assert.equal(T.memoryStats().pooledBytes, 0);
    assert.notEqual(T.alloc('float32', 100).buffer, x.buffer);
  } finally {
    restoreDefaults();
  }
});

test('the auto bound caps every byte the pool owns (live + idle), before a new block is allocated', () => {
  restoreDefaults();
  const F = T.poolConfig().factor;
  assert.equal(T.poolConfig().bound, 'owned');
  const owned = (): number => T.memoryStats().heldBytes + T.memoryStats().pooledBytes;
  try {
    // One "step" of 40 × 64 KiB: the working set; released, its blocks are idle in the pool.
    const first = Array.from({ length: 40 }, () => T.alloc('float32', 16384, false));
    const ws = T.memoryStats().workingSetBytes;
    assert.ok(ws >= 40 * 65536);
    for (const b of first) T.release(b);
    assert.ok(T.memoryStats().pooledBytes >= 40 * 65536 * 0.99);
    // The lengths change: 30 × 24,000 floats (class 24,576, 96 KiB: no 64 KiB block fits). Every
    // request is a new block; idle ones go first, so the owned bytes stay under the bound at every
    // point of the step, its peak included (the working set grows with the live bytes).
    const second: Float32Array[] = [];
    for (let i = 0; i < 30; i++) {
      second.push(T.alloc('float32', 24000, false) as Float32Array);
      const s = T.memoryStats();
      assert.ok(owned() <= Math.max(s.poolLimitBytes, s.heldBytes), `owned ${owned()} > bound ${s.poolLimitBytes} after ${i + 1} requests`);
      assert.equal(s.poolLimitBytes, Math.max(POOL_MIN_LIMIT_BYTES, F * s.workingSetBytes));
    }
    assert.ok(T.memoryStats().poolEvictedBytes > 0);
    if (nativeKernels()) assert.ok(first.some((b) => b.buffer.byteLength === 0), 'the evicted idle blocks were not freed');
    for (const b of second) T.release(b);
    assert.ok(owned() <= T.memoryStats().poolLimitBytes);
    // The previous bound (idle bytes ≤ 2 × the working set) lets the idle blocks sit on top of the
    // live ones: the same sequence owns more than 1.75 × the working set at its peak.
    T.configurePool({ bound: 'idle', factor: 2 });
    const a = Array.from({ length: 40 }, () => T.alloc('float32', 16384, false));
    for (const b of a) T.release(b);
    let worst = 0;
    const b2 = Array.from({ length: 30 }, () => {
      const x = T.alloc('float32', 24000, false);
      worst = Math.max(worst, owned() / T.memoryStats().workingSetBytes);
      return x;
    });
    for (const b of b2) T.release(b);
    assert.ok(worst > F, `the idle bound owned at most ${worst.toFixed(2)} × the working set`);
  } finally {
    restoreDefaults();
  }
});

test('blocks the pool drops are freed at once, not left to the GC (native addon); glibc\'s mmap threshold is fixed', { skip: nativeKernels() ? false : 'no native addon' }, () => {
  restoreDefaults();
  try {
    // Pooling off: every released buffer is freed (its ArrayBuffer detached) on release.
    T.setPoolLimit(0);
    const base = process.memoryUsage().arrayBuffers;
    const s0 = T.memoryStats();
    const bufs = Array.from({ length: 16 }, () => T.alloc('float32', 2 ** 18)); // 16 × 1 MiB
    assert.ok(process.memoryUsage().arrayBuffers >= base + 16 * 2 ** 20);
    for (const b of bufs) T.release(b);
    for (const b of bufs) assert.equal(b.buffer.byteLength, 0, 'a released buffer was not freed');
    assert.equal(T.memoryStats().freedBytes - s0.freedBytes, 16 * 2 ** 20);
    assert.ok(process.memoryUsage().arrayBuffers < base + 2 ** 20, 'the external memory of freed buffers is still counted');
    // An evicted block is freed; a pooled one is kept intact.
    T.setPoolLimit(64 * 1024);
    const a = T.alloc('float32', 8192), b = T.alloc('float32', 4096); // 32 KiB and 16 KiB
    T.release(a);
    T.release(b);
    const c = [T.alloc('float32', 2000), T.alloc('float32', 2000), T.alloc('float32', 2000)]; // class 2048 (8 KiB): new blocks
    for (const x of c) T.release(x);
    const d = Array.from({ length: 4 }, () => T.alloc('float32', 3000)); // class 3072 (12 KiB): evicts the least recent (a's class)
    for (const x of d) T.release(x);
    assert.equal(a.buffer.byteLength, 0, 'the evicted block was not freed');
    assert.ok(T.memoryStats().pooledBytes <= 64 * 1024);
    assert.equal(d[3]!.buffer.byteLength, 3072 * 4, 'a pooled block must stay intact');
    // freeDropped: false (the former behaviour) leaves dropped blocks to the GC: the check above can fail.
    T.configurePool({ limitBytes: 0, freeDropped: false });
    const e = T.alloc('float32', 1000);
    T.release(e);
    assert.equal(e.buffer.byteLength, 4000);
  } finally {
    restoreDefaults();
  }
  // glibc (≥ 2.33, as on the Linux machines this runs on): the first allocation fixed the mmap threshold.
  if (mallocInfo() !== null) assert.equal(tuneMalloc(), !userChoseMalloc(process.env));
  assert.equal(userChoseMalloc({ DPO_MALLOC_TUNE: '0' }), true);
  assert.equal(userChoseMalloc({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536' }), true);
  assert.equal(userChoseMalloc({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }), false);
});

interface Trace {
  pooled: number[];
  retained: number[];
  limit: number[];
  /** Cumulative pool hits and misses after each step. */
  hits: number[];
  misses: number[];
}

/** Training steps (forward + backward + AdamW) of a small Llama on batches of the given lengths. */
function trainTrace(lengths: readonly number[], seed = 3): Trace {
  const cfg = llamaConfig({ vocabSize: 96, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, maxPositions: 64, tieWordEmbeddings: true, bosTokenId: 1, eosTokenId: [0] });
  const model = randomModel(cfg, seed);
  const params = model.trainableParameters();
  const opt = new AdamW(params, { weightDecay: 0.01 });
  const rng = new Rng(seed);
  const tr: Trace = { pooled: [], retained: [], limit: [], hits: [], misses: [] };
  const s0 = T.memoryStats();
  for (const len of lengths) {
    const batch = 4;
    const ids = Int32Array.from({ length: batch * len }, () => 2 + rng.int(94));
    const targets = Int32Array.from({ length: batch * len }, (_, i) => ((i % len) < len - 1 ? ids[i + 1]! : -1));
    const lp = model.tokenLogprobs({ ids, batch, seq: len }, targets);
    const loss = T.scale(T.sumAll(lp), -1 / (batch * len));
    T.backward(loss);
    opt.update(1e-3);
    T.zeroGrad(params);
    const s = T.memoryStats();
    tr.pooled.push(s.pooledBytes);
    tr.retained.push(s.pooledBytes + s.heldBytes);
    tr.limit.push(s.poolLimitBytes);
    tr.hits.push(s.poolHits - s0.poolHits);
    tr.misses.push(s.poolMisses - s0.poolMisses);
  }
  return tr;
}

/** Problems of a trace after warm-up (the first third): pooled over the bound, retained bytes still growing. */
function flatnessProblems(tr: Trace): string[] {
  const out: string[] = [];
  const n = tr.pooled.length, w = Math.floor(n / 3);
  for (let i = 0; i < n; i++) if (tr.pooled[i]! > tr.limit[i]!) out.push(`step ${i}: pooled ${tr.pooled[i]} > bound ${tr.limit[i]}`);
  const maxOf = (a: number[]) => Math.max(...a);
  const middle = maxOf(tr.retained.slice(w, 2 * w)), last = maxOf(tr.retained.slice(2 * w));
  const warm = maxOf(tr.retained.slice(0, w));
  if (middle > warm * 1.05) out.push(`retained bytes grew after warm-up: ${warm} → ${middle}`);
  if (last > middle * 1.05) out.push(`retained bytes still growing: ${middle} → ${last}`);
  return out;
}

test('a run of varying lengths: retained bytes stay under the bound and stop growing after warm-up', () => {
  restoreDefaults();
  // Warm-up covers every length (a sweep), then 240 steps in random order.
  const rng = new Rng(5);
  const all = Array.from({ length: 40 }, (_, i) => 9 + i);
  const lengths = [...all, ...Array.from({ length: 260 }, () => all[rng.int(all.length)]!)];
  const tr = trainTrace(lengths);
  assert.deepEqual(flatnessProblems(tr), []);
  // After warm-up nearly every request is served from the pool.
  const h = tr.hits.at(-1)! - tr.hits[99]!, m = tr.misses.at(-1)! - tr.misses[99]!;
  assert.ok(h / (h + m) > 0.8, `hit rate after warm-up ${h}/${h + m}`);
  // The auto bound follows the working set: (nearly) flat after warm-up, far below the former 4 GiB.
  const lim = tr.limit.slice(100);
  assert.ok(Math.max(...lim) <= 1.05 * Math.min(...lim), `bound moved after warm-up: ${Math.min(...lim)} → ${Math.max(...lim)}`);
  assert.ok(lim[0]! < 64 * 2 ** 20, `bound ${lim[0]}`);
});

test('the flatness check catches a pool that keeps growing (the former exact-size 4 GiB pool)', () => {
  // The longest batch first (it sets the working set), then random lengths: with exact-size keys
  // every length not seen before adds blocks, for as long as new lengths come.
  const rng = new Rng(9);
  const lengths = [63, ...Array.from({ length: 90 }, () => 4 + rng.int(60))];
  T.configurePool({ classes: 'exact', limitBytes: 4096 * 2 ** 20 });
  try {
    const problems = flatnessProblems(trainTrace(lengths));
    assert.ok(problems.some((p) => p.includes('growing') || p.includes('grew')), problems.join('; '));
  } finally {
    restoreDefaults();
  }
  // The same lengths with size classes and the auto bound stay flat.
  assert.deepEqual(flatnessProblems(trainTrace(lengths)), []);
});

test('DPO with the pool (non-zeroed reused buffers poisoned with NaN) is bit-identical to DPO without it', async () => {
  const modelDir = await makeTinyModelDir({ seed: 4 });
  const dataDir = mkdtempSync(join(tmpdir(), 'dpo-pool-data-'));
  // Pairs of varying lengths, so batches are padded to different lengths.
  const pairs = syntheticPairs(48, 21).map((p, i) => ({ ...p, chosen: p.chosen.repeat(1 + (i % 4)), rejected: p.rejected.repeat(1 + ((i * 3) % 5)) }));
  const file = writeJsonl(join(dataDir, 'train.jsonl'), pairs);
  const cfg = parseDpoConfig({
    learning_rate: 3e-3, beta: 0.1, per_device_train_batch_size: 4, max_length: 96, logging_steps: 1, save_steps: 0, seed: 7,
    warmup_ratio: 0, lr_scheduler_type: 'constant', max_steps: 8, rpo_alpha: 0.5,
  });
  const run = async (): Promise<{ losses: number[]; weights: Buffer }> => {
    const out = mkdtempSync(join(tmpdir(), 'dpo-pool-out-'));
    const r = await runDpo({ model: modelDir, data: [file], outputDir: out, quiet: true, config: cfg });
    return { losses: r.history.map((h) => h.loss!), weights: readFileSync(join(out, 'model.safetensors')) };
  };
  try {
    T.setPoolLimit(0);
    const plain = await run();
    restoreDefaults();
    T.setPoolPoison(true);
    const pooled = await run();
    const again = await run(); // now with a warm pool: nearly every buffer is a reused one
    assert.ok(T.memoryStats().poolHits > 1000);
    // A tight bound (owned bytes ≤ 1.05 × the working set): idle blocks are dropped before new ones
    // are allocated, mid-step.
    T.configurePool({ factor: 1.05 });
    const e0 = T.memoryStats().poolEvictedBytes;
    const tight = await run();
    assert.ok(T.memoryStats().poolEvictedBytes > e0, 'the tight bound evicted nothing');
    assert.deepEqual(tight.losses, plain.losses);
    assert.ok(tight.weights.equals(plain.weights), 'final weights differ with a tight bound');
    assert.ok(plain.losses.every(Number.isFinite));
    assert.deepEqual(pooled.losses, plain.losses);
    assert.deepEqual(again.losses, plain.losses);
    assert.ok(pooled.weights.equals(plain.weights), 'final weights differ with the pool');
    assert.ok(again.weights.equals(plain.weights), 'final weights differ with a warm pool');
  } finally {
    restoreDefaults();
  }
});

test('long loops give the event loop a turn per step, so the pool accounts for tensors dropped without release()', async () => {
  // The FinalizationRegistry callbacks that subtract dropped tensors from the live bytes run only
  // between event-loop turns; a loop that only awaits resolved promises never lets them run (a
  // 5,000-step GRPO soak held 84 MiB of long-dead buffers in the books, and its bound grew with them).
  /** Calls between which no event-loop turn came. */
  const watch = () => {
    let turned = true, stalls = 0, calls = 0;
    return {
      tick(): void {
        if (calls++ > 0 && !turned) stalls++;
        turned = false;
        setImmediate(() => (turned = true));
      },
      get stalls() { return stalls; },
      get calls() { return calls; },
    };
  };
  const { modelDir, promptsFile, rewardModule } = await makeRlTask();
  const w = watch();
  await runGrpo({
    model: modelDir, prompts: [promptsFile], outputDir: mkdtempSync(join(tmpdir(), 'pool-grpo-')), quiet: true,
    config: parseGrpoConfig({ reward_funcs: [rewardModule], per_device_train_batch_size: 8, num_generations: 4, max_completion_length: 4, max_steps: 3, logging_steps: 1, save_steps: 0, seed: 1 }),
    onLog: () => w.tick(),
  });
  assert.equal(w.calls, 3);
  assert.equal(w.stalls, 0, 'GRPO steps ran without an event-loop turn in between');
  const project = mkdtempSync(join(tmpdir(), 'pool-addprompts-'));
  initProject(project, {});
  const db = openDatabase(dbPath(project));
  const g = watch();
  await addPrompts(db, [1, 2, 3].map((i) => ({ prompt: `p${i}`, line: i })), async (p) => (g.tick(), [`${p} a`, `${p} b`]), DEFAULT_SAMPLING, 'test');
  db.close();
  assert.equal(g.calls, 3);
  assert.equal(g.stalls, 0, 'add-prompts generated without an event-loop turn in between');
});
