// Causal attention kernels: the float64 reference against finite differences, the native
// flash-style kernels against the reference (AVX-512, AVX2 and portable paths), KV-cache decoding,
// thread-count determinism and fully masked rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Buf, Kernels } from '../src/tensor/kernels.js';
import { referenceKernels } from '../src/tensor/backend.js';
import { nativeForTests, spawnNode, wasmRerun } from './helpers/native.js';
import { mulberry32 as rng } from './helpers/rng.js';

const ref = referenceKernels;
// Without CI a missing addon skips with the reason; under CI these tests run and fail.
const { native: nat, skip: nativeSkip, mustFail } = nativeForTests(['attentionForward', 'attentionBackward']);
const skipNative = mustFail ? false : nativeSkip;
const nativeReady = nat !== null;

function native(): Kernels {
  assert.ok(nat, `CI is set but ${nativeSkip}`);
  return nat;
}

function randn<T extends Buf>(make: new (n: number) => T, n: number, r: () => number, s = 1): T {
  const x = new make(n);
  for (let i = 0; i < n; i++) x[i] = s * (r() * 2 - 1);
  return x;
}

interface Shape { B: number; T: number; H: number; Hkv: number; D: number; kvStart?: number[] }

function label(s: Shape): string {
  return `B=${s.B} T=${s.T} H=${s.H} Hkv=${s.Hkv} D=${s.D}${s.kvStart ? ` kvStart=[${s.kvStart}]` : ''}`;
}

/**
 * Largest |a − b| divided by the largest |b| (at least 0.1: some exact gradients are 0, e.g. dq
 * for T = 1, where float32 leaves ~1e-8). −inf entries must match exactly.
 */
function relErr(a: Buf, b: Buf, what: string): number {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  let diff = 0, mag = 0.1;
  for (let i = 0; i < a.length; i++) {
    if (b[i] === -Infinity || a[i] === -Infinity) {
      assert.equal(a[i], b[i], `${what}[${i}]: ${a[i]} vs ${b[i]}`);
      continue;
    }
    assert.ok(Number.isFinite(a[i]), `${what}[${i}] = ${a[i]} is not finite`);
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    mag = Math.max(mag, Math.abs(b[i]));
  }
  return diff / mag;
}

interface Problem<T extends Buf> {
  q: T; k: T; v: T; dout: T; kvStart: Int32Array | null; scale: number;
}

function problem<T extends Buf>(make: new (n: number) => T, s: Shape, seed: number): Problem<T> {
  const r = rng(seed);
  return {
    q: randn(make, s.B * s.T * s.H * s.D, r, 1.5),
    k: randn(make, s.B * s.T * s.Hkv * s.D, r, 1.5),
    v: randn(make, s.B * s.T * s.Hkv * s.D, r),
    dout: randn(make, s.B * s.T * s.H * s.D, r),
    kvStart: s.kvStart ? Int32Array.from(s.kvStart) : null,
    scale: 1 / Math.sqrt(s.D),
  };
}

function forward<T extends Buf>(kern: Kernels, make: new (n: number) => T, s: Shape, p: Problem<T>) {
  const out = new make(s.B * s.T * s.H * s.D);
  const lse = new make(s.B * s.H * s.T);
  kern.attentionForward(p.q, p.k, p.v, out, lse, s.B, s.T, s.T, s.H, s.Hkv, s.D, p.scale, s.T * s.Hkv * s.D, p.kvStart);
  return { out, lse };
}

function forwardBackward<T extends Buf>(kern: Kernels, make: new (n: number) => T, s: Shape, p: Problem<T>) {
  const { out, lse } = forward(kern, make, s, p);
  // Fill with NaN: the kernel must overwrite every element.
  const dq = new make(p.q.length).fill(NaN), dk = new make(p.k.length).fill(NaN), dv = new make(p.v.length).fill(NaN);
  kern.attentionBackward(p.dout, p.q, p.k, p.v, out, lse, dq, dk, dv, s.B, s.T, s.H, s.Hkv, s.D, p.scale, p.kvStart);
  return { out, lse, dq, dk, dv };
}

test('reference backward matches finite differences (float64, GQA, kvStart, odd T and D)', () => {
  const shapes: Shape[] = [
    { B: 1, T: 1, H: 4, Hkv: 2, D: 3 },
    { B: 2, T: 5, H: 4, Hkv: 2, D: 3, kvStart: [0, 2] },
    { B: 1, T: 13, H: 4, Hkv: 2, D: 8, kvStart: [4] },
    { B: 2, T: 13, H: 4, Hkv: 4, D: 8, kvStart: [1, 0] },
  ];
  for (const [si, s] of shapes.entries()) {
    const p = problem(Float64Array, s, 100 + si);
    const g = forwardBackward(ref, Float64Array, s, p);
    // loss = Σ out ∘ dout, so dout is its gradient with respect to out.
    const loss = (): number => {
      const { out } = forward(ref, Float64Array, s, p);
      let l = 0;
      for (let i = 0; i < out.length; i++) l += out[i] * p.dout[i];
      return l;
    };
    const h = 1e-5;
    for (const [name, x, grad] of [['q', p.q, g.dq], ['k', p.k, g.dk], ['v', p.v, g.dv]] as const) {
      for (let i = 0; i < x.length; i++) {
        const x0 = x[i];
        x[i] = x0 + h;
        const lp = loss();
        x[i] = x0 - h;
        const lm = loss();
        x[i] = x0;
        const num = (lp - lm) / (2 * h);
        assert.ok(Math.abs(num - grad[i]) <= 1e-7 + 1e-6 * Math.abs(num),
          `${label(s)}: d${name}[${i}] analytic ${grad[i]} vs numeric ${num}`);
      }
    }
  }
});

const parityShapes: Shape[] = [
  { B: 1, T: 1, H: 2, Hkv: 2, D: 8 },
  { B: 2, T: 7, H: 3, Hkv: 3, D: 8, kvStart: [0, 3] },
  { B: 1, T: 19, H: 4, Hkv: 2, D: 3 },
  { B: 1, T: 33, H: 2, Hkv: 1, D: 256, kvStart: [2] },
  { B: 1, T: 63, H: 2, Hkv: 1, D: 64 },
  { B: 2, T: 130, H: 9, Hkv: 3, D: 80, kvStart: [5, 70] },
  { B: 1, T: 257, H: 2, Hkv: 2, D: 128, kvStart: [100] },
  { B: 1, T: 257, H: 9, Hkv: 3, D: 64 },
];

test('native forward and backward match the reference (float32)', { skip: skipNative }, () => {
  const kern = native();
  for (const [si, s] of parityShapes.entries()) {
    const p = problem(Float32Array, s, 200 + si);
    const want = forwardBackward(ref, Float32Array, s, p);
    const got = forwardBackward(kern, Float32Array, s, p);
    for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
      const e = relErr(got[name], want[name], `${label(s)} ${name}`);
      assert.ok(e < 1e-5, `${label(s)}: ${name} relative error ${e.toExponential(2)}`);
    }
  }
});

// The addon picks its AVX-512 path at load time on this machine (DPO_NATIVE_ISA=avx2 selects the
// AVX2+FMA one, DPO_NATIVE_ISA=generic the portable one) and its backward scheme by the task count (DPO_ATTENTION_BACKWARD=fused|two-pass
// forces one), so the parity and KV-cache tests rerun in child processes for every combination. Each child
// also prints a digest of its gradients: both schemes add every element in the same order, so
// per ISA they must agree bit for bit (the scheme may then depend on the thread count).
const child = Boolean(process.env.DPO_ATTENTION_TEST_CHILD);
if (child && nativeReady) {
  test('child: digest of the native gradients', async () => {
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256');
    for (const [si, s] of parityShapes.entries()) {
      const got = forwardBackward(native(), Float32Array, s, problem(Float32Array, s, 200 + si));
      for (const name of ['dq', 'dk', 'dv'] as const) hash.update(new Uint8Array(got[name].buffer));
    }
    console.log(`DIGEST ${hash.digest('hex')}`);
  });
}

// What each child runs on its path: parity, the KV cache (NaN past Tk), thread-count determinism,
// rows with no visible key, and the digest.
const childTests = 'native forward and backward match|KV cache \\(Tq|bit-identical with 1 and 2|rows with no visible key|child: digest';
test('native AVX2 and portable paths and both backward schemes match the reference; the schemes agree bit for bit', { skip: child ? 'already in a child process' : skipNative }, () => {
  native();
  const byIsa = new Map<string, string>();
  for (const isa of ['', 'avx2', 'generic']) {
    const digests: string[] = [];
    for (const scheme of ['fused', 'two-pass']) {
      // NODE_TEST_CONTEXT (set by an outer `node --test`) would make the child report in binary form.
      const env: NodeJS.ProcessEnv = { ...process.env, DPO_NATIVE_ISA: isa, DPO_ATTENTION_BACKWARD: scheme, DPO_ATTENTION_TEST_CHILD: '1' };
      delete env.NODE_TEST_CONTEXT;
      // The file itself, run directly (no --test: no grandchild process), reporting TAP.
      const r = spawnNode(
        ['--test-reporter=tap', `--test-name-pattern=${childTests}`, fileURLToPath(import.meta.url)],
        { env, encoding: 'utf8', timeout: 120_000 },
      );
      const what = `DPO_NATIVE_ISA=${isa || '(auto)'} DPO_ATTENTION_BACKWARD=${scheme}`;
      const summary = (r.stdout ?? '').split('\n').filter((l) => /^# (pass|fail)/.test(l)).join(', ');
      assert.equal(r.status, 0, `parity failed with ${what}:\n${r.stdout}\n${r.stderr}`);
      assert.match(summary, /# pass 5.*# fail 0/, `${what}: ${summary}`);
      const digest = /DIGEST ([0-9a-f]{64})/.exec(r.stdout ?? '');
      assert.ok(digest, `${what}: no digest in the child's output:\n${r.stdout}`);
      digests.push(digest[1]!);
    }
    assert.equal(digests[0], digests[1], `DPO_NATIVE_ISA=${isa || '(auto)'}: fused and two-pass gradients differ`);
    byIsa.set(isa, digests[0]!);
  }
  // The AVX2 path does the AVX-512 path's arithmetic (same FMA chains, exp and reduction order), so
  // the automatic choice — AVX-512, AVX2, or the portable path on a CPU without AVX2, which the
  // avx2 cap then also selects — gives the same gradients bit for bit.
  assert.equal(byIsa.get('avx2'), byIsa.get(''), 'DPO_NATIVE_ISA=avx2 gradients differ from the automatic path');
});

/** KV cache [B, cap, Hkv, D] with batch stride `stride`, filled with NaN beyond the first Tk keys. */
function toCache(x: Float32Array, B: number, Tk: number, rowLen: number, stride: number): Float32Array {
  const c = new Float32Array(B * stride).fill(NaN);
  for (let b = 0; b < B; b++) c.set(x.subarray(b * Tk * rowLen, (b + 1) * Tk * rowLen), b * stride);
  return c;
}

test('KV cache (Tq < Tk, kvBatchStride > Tk·Hkv·D): native matches reference, NaN past Tk never read', { skip: skipNative }, () => {
  const kern = native();
  const cases = [
    { B: 2, Tq: 5, Tk: 37, cap: 48, H: 6, Hkv: 2, D: 64, kvStart: [0, 9] },
    { B: 3, Tq: 1, Tk: 130, cap: 140, H: 4, Hkv: 4, D: 80, kvStart: [2, 0, 129] },
    { B: 1, Tq: 70, Tk: 200, cap: 256, H: 3, Hkv: 1, D: 128, kvStart: null },
  ];
  for (const [ci, c] of cases.entries()) {
    const r = rng(300 + ci);
    const rowLen = c.Hkv * c.D, stride = c.cap * rowLen + 3; // +3: items need not be cap-aligned
    const q = randn(Float32Array, c.B * c.Tq * c.H * c.D, r, 1.5);
    const k = toCache(randn(Float32Array, c.B * c.Tk * rowLen, r, 1.5), c.B, c.Tk, rowLen, stride);
    const v = toCache(randn(Float32Array, c.B * c.Tk * rowLen, r), c.B, c.Tk, rowLen, stride);
    const kvStart = c.kvStart ? Int32Array.from(c.kvStart) : null;
    const run = (kk: Kernels) => {
      const out = new Float32Array(q.length), lse = new Float32Array(c.B * c.H * c.Tq);
      kk.attentionForward(q, k, v, out, lse, c.B, c.Tq, c.Tk, c.H, c.Hkv, c.D, 1 / Math.sqrt(c.D), stride, kvStart);
      return { out, lse };
    };
    const want = run(ref), got = run(kern);
    const what = `cache case ${ci}`;
    assert.ok(relErr(got.out, want.out, `${what} out`) < 1e-5, `${what}: out differs`);
    assert.ok(relErr(got.lse, want.lse, `${what} lse`) < 1e-5, `${what}: lse differs`);
  }
});

test('incremental decoding: Tq=1 (and a 3-token chunk) over a cache equals the last rows of full attention', () => {
  const s: Shape = { B: 2, T: 77, H: 6, Hkv: 2, D: 16, kvStart: [0, 4] };
  const p = problem(Float32Array, s, 400);
  const rowLen = s.Hkv * s.D, cap = 96, stride = cap * rowLen;
  const kc = toCache(p.k, s.B, s.T, rowLen, stride), vc = toCache(p.v, s.B, s.T, rowLen, stride);
  const backends = nativeReady ? [ref, native()] : [ref];
  for (const kern of backends) {
    const full = forward(kern, Float32Array, s, p);
    for (const Tq of [1, 3]) {
      // The last Tq queries of every batch item, as a decoder would feed them.
      const q = new Float32Array(s.B * Tq * s.H * s.D);
      for (let b = 0; b < s.B; b++) {
        q.set(p.q.subarray(((b * s.T + s.T - Tq) * s.H) * s.D, (b + 1) * s.T * s.H * s.D), b * Tq * s.H * s.D);
      }
      const out = new Float32Array(q.length), lse = new Float32Array(s.B * s.H * Tq);
      kern.attentionForward(q, kc, vc, out, lse, s.B, Tq, s.T, s.H, s.Hkv, s.D, p.scale, stride, p.kvStart);
      for (let b = 0; b < s.B; b++) {
        for (let t = 0; t < Tq; t++) {
          const T = s.T - Tq + t;
          for (let h = 0; h < s.H; h++) {
            const lf = full.lse[(b * s.H + h) * s.T + T], li = lse[(b * s.H + h) * Tq + t];
            assert.ok(Math.abs(lf - li) < 1e-5, `${kern.name} Tq=${Tq} b=${b} h=${h}: lse ${li} vs ${lf}`);
            for (let d = 0; d < s.D; d++) {
              const of = full.out[((b * s.T + T) * s.H + h) * s.D + d];
              const oi = out[((b * Tq + t) * s.H + h) * s.D + d];
              assert.ok(Math.abs(of - oi) < 1e-5, `${kern.name} Tq=${Tq} b=${b} t=${t} h=${h} d=${d}: ${oi} vs ${of}`);
            }
          }
        }
      }
    }
  }
});

test('native results are bit-identical with 1 and 2 threads', { skip: skipNative }, () => {
  const kern = native();
  // The second shape has 3 (batch, KV head) tasks: fused backward on 1 thread, two passes on 2.
  const shapes: Shape[] = [{ B: 2, T: 200, H: 6, Hkv: 2, D: 64, kvStart: [0, 37] }, { B: 1, T: 200, H: 6, Hkv: 3, D: 64, kvStart: [37] }];
  const before = kern.numThreads();
  try {
    for (const s of shapes) {
      const p = problem(Float32Array, s, 500);
      kern.setNumThreads(1);
      const one = forwardBackward(kern, Float32Array, s, p);
      kern.setNumThreads(2);
      const two = forwardBackward(kern, Float32Array, s, p);
      for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
        assert.deepEqual(new Uint32Array(two[name].buffer), new Uint32Array(one[name].buffer), `${label(s)}: ${name} differs`);
      }
    }
  } finally {
    kern.setNumThreads(before);
  }
});

test('rows with no visible key: out 0, lse −inf, zero gradients, no NaN (both backends)', () => {
  // Item 0: keys 0..5 masked (rows 0..5 see nothing). Item 1: kvStart beyond T masks everything.
  const s: Shape = { B: 2, T: 70, H: 4, Hkv: 2, D: 8, kvStart: [6, 1000] };
  const p = problem(Float32Array, s, 600);
  const backends = nativeReady ? [ref, native()] : [ref];
  for (const kern of backends) {
    const g = forwardBackward(kern, Float32Array, s, p);
    for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
      for (const x of g[name]) assert.ok(!Number.isNaN(x), `${kern.name}: NaN in ${name}`);
    }
    for (let b = 0; b < s.B; b++) {
      const ks = s.kvStart![b];
      for (let t = 0; t < s.T; t++) {
        for (let h = 0; h < s.H; h++) {
          const lse = g.lse[(b * s.H + h) * s.T + t];
          const o = ((b * s.T + t) * s.H + h) * s.D;
          if (t < ks) {
            assert.equal(lse, -Infinity, `${kern.name} b=${b} t=${t} h=${h}: lse`);
            for (let d = 0; d < s.D; d++) {
              assert.equal(g.out[o + d], 0, `${kern.name} b=${b} t=${t}: out`);
              assert.equal(g.dq[o + d], 0, `${kern.name} b=${b} t=${t}: dq`);
            }
          } else {
            assert.ok(Number.isFinite(lse), `${kern.name} b=${b} t=${t} h=${h}: lse ${lse}`);
          }
        }
        if (t < ks) {
          for (let i = 0; i < s.Hkv * s.D; i++) {
            const o = (b * s.T + t) * s.Hkv * s.D + i;
            assert.equal(g.dk[o], 0, `${kern.name} b=${b} key ${t}: dk`);
            assert.equal(g.dv[o], 0, `${kern.name} b=${b} key ${t}: dv`);
          }
        }
      }
    }
  }
});

test('short buffers and bad heads throw RangeError naming the kernel', () => {
  const backends = nativeReady ? [ref, native()] : [ref];
  for (const kern of backends) {
    const B = 1, T = 4, H = 2, Hkv = 1, D = 8;
    const q = new Float32Array(B * T * H * D), kv = new Float32Array(B * T * Hkv * D);
    const out = new Float32Array(q.length), lse = new Float32Array(B * H * T);
    assert.throws(() => kern.attentionForward(q, kv.subarray(1), kv, out, lse, B, T, T, H, Hkv, D, 1, T * Hkv * D, null),
      (e: Error) => e instanceof RangeError && /attentionForward: k has 31 elements, needs (at least )?32/.test(e.message));
    assert.throws(() => kern.attentionForward(q, kv, kv, out, lse, B, T, T, 3, Hkv + 1, D, 1, T * 2 * D, null),
      (e: Error) => e instanceof RangeError && /attentionForward: H must be a multiple of Hkv/.test(e.message));
    assert.throws(() => kern.attentionForward(q, kv, kv, out, lse, B, T, T, H, Hkv, D, 1, T * Hkv * D - 1, null),
      (e: Error) => e instanceof RangeError && /attentionForward: kvBatchStride/.test(e.message));
    assert.throws(() => kern.attentionBackward(q, q, kv, kv, out, lse, q, kv, kv.subarray(8), B, T, H, Hkv, D, 1, null),
      (e: Error) => e instanceof RangeError && /attentionBackward: dv has 24 elements/.test(e.message));
    assert.throws(() => kern.attentionBackward(q, q, kv, kv, out, lse, q, kv, kv, B, T, H, Hkv, D, 1, Int32Array.of(-1)),
      (e: Error) => e instanceof RangeError && /attentionBackward: kvStart\[0\] = -1/.test(e.message));
  }
});

// The same parity, cache, thread and error tests against the WebAssembly build of the kernels.
wasmRerun(import.meta.url, 'native forward and backward|KV cache|bit-identical|no visible key|short buffers', { minPassed: 5 });
