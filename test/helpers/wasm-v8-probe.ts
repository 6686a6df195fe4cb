// The wasm engine probe (test/fixtures/wasm-v8-arm64/README.md): runs the fixture's dot() — native/gemm.cc's
// 16-partial-sum Dot compiled alone with SIMD128 — on lengths with and without a remainder and compares it
// with the same float32 arithmetic in JavaScript (exact: the order of the additions is fixed).
// Run as a script (`node [--no-liftoff|--liftoff-only] wasm-v8-probe.js`), it prints
// {"node": version, "arch", "wrong": n, "total": n, "first": "..."} as JSON.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES } from './fixtures.js';

export const PROBE_WASM = join(FIXTURES, 'wasm-v8-arm64', 'dot.wasm');

export interface ProbeResult { node: string; arch: string; wrong: number; total: number; first: string | null }

/** float32 reference of dot.c, addition by addition. */
function dotRef(a: Float32Array, b: Float32Array): number {
  const part = new Float32Array(16);
  let k = 0;
  for (; k + 16 <= a.length; k += 16) for (let l = 0; l < 16; l++) part[l] = Math.fround(part[l]! + Math.fround(a[k + l]! * b[k + l]!));
  for (let l = 0; k < a.length; k++, l++) part[l] = Math.fround(part[l]! + Math.fround(a[k]! * b[k]!));
  let s = 0;
  for (let l = 0; l < 16; l++) s = Math.fround(s + part[l]!);
  return s;
}

export async function runProbe(reps = 20): Promise<ProbeResult> {
  const WA = (globalThis as unknown as { WebAssembly: { instantiate(b: Uint8Array, i: object): Promise<{ instance: { exports: Record<string, unknown> } }> } }).WebAssembly;
  const { instance } = await WA.instantiate(readFileSync(PROBE_WASM), {});
  const dot = instance.exports.dot as (a: number, b: number, k: bigint) => number;
  const mem = new Float32Array((instance.exports.memory as { buffer: ArrayBuffer }).buffer);
  const aAt = 1024, bAt = 4096; // float offsets, above the module's data and stack
  let wrong = 0, total = 0, first: string | null = null;
  for (let rep = 0; rep < reps; rep++) {
    for (const K of [1, 5, 15, 16, 17, 31, 32, 33, 61, 600]) {
      const a = Float32Array.from({ length: K }, (_, i) => (i % 7) - 3 + 0.25 * (i % 3));
      const b = Float32Array.from({ length: K }, (_, i) => ((i * 5) % 11) - 5);
      mem.set(a, aAt); mem.set(b, bAt);
      const got = dot(aAt * 4, bAt * 4, BigInt(K)), want = dotRef(a, b);
      total++;
      if (got !== want) { wrong++; first ??= `K=${K}: got ${got}, want ${want}`; }
    }
  }
  return { node: process.version, arch: process.arch, wrong, total, first };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await runProbe()));
}
