import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16ToF32, bitsToF32, f16BitsToF32Bits, f16ToF32, f32BitsToBf16Bits, f32BitsToF16Bits, f32ToBf16, f32ToBits, f32ToF16,
  getWeight, makeWeight, permuteHalvesToInterleaved, permuteInterleavedToHalves, countParameters, cloneWeights, type WeightMap,
} from '../src/io/weights.js';
import { bitsEqual, randomWeight, rng } from './fixtures/io/helpers.js';

const hex = (n: number) => `0x${n.toString(16)}`;

test('f16 → f32: known bit patterns (zeros, normals, subnormals, max, inf, NaN)', () => {
  const cases: [number, number][] = [
    [0x0000, 0x00000000], [0x8000, 0x80000000], [0x3c00, 0x3f800000], [0xc000, 0xc0000000],
    [0x3555, 0x3eaaa000], [0x7bff, 0x477fe000], [0x0400, 0x38800000], // smallest normal 2^-14
    [0x0001, 0x33800000], [0x8001, 0xb3800000], [0x03ff, 0x387fc000], [0x0200, 0x38000000], // subnormals
    [0x7c00, 0x7f800000], [0xfc00, 0xff800000], [0x7e00, 0x7fc00000], [0x7c01, 0x7f802000], // inf, NaN payloads
  ];
  for (const [h, f] of cases) assert.equal(f16BitsToF32Bits(h), f, `${hex(h)} → ${hex(f16BitsToF32Bits(h))}, expected ${hex(f)}`);
  // The table path agrees with the bit path on every one of the 65536 halves.
  const all = new Uint16Array(65536).map((_, i) => i);
  const out = new Uint32Array(f16ToF32(all).buffer);
  for (let h = 0; h < 65536; h++) if (out[h] !== f16BitsToF32Bits(h)) assert.fail(`table mismatch at ${hex(h)}`);
  assert.equal(bitsToF32(f16BitsToF32Bits(0x0001)), 2 ** -24);
});

test('f32 → f16: round to nearest even, overflow, underflow, subnormals, NaN', () => {
  const cases: [number, number][] = [
    [1.0, 0x3c00], [-2.0, 0xc000], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [-0, 0x8000], [1e-10, 0x0000],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [3 * 2 ** -25, 0x0002], [5 * 2 ** -25, 0x0002],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1023.5 * 2 ** -24, 0x0400], [2 ** -14, 0x0400],
  ];
  for (const [x, h] of cases) assert.equal(f32BitsToF16Bits(f32ToBits(x)), h, `${x} → ${hex(f32BitsToF16Bits(f32ToBits(x)))}, expected ${hex(h)}`);
  assert.equal(f32BitsToF16Bits(0x7fc00000), 0x7e00);
  assert.equal(f32BitsToF16Bits(0x7f800001) & 0x7e00, 0x7e00, 'signalling NaN stays NaN');
  // Every half survives f16 → f32 → f16 unchanged (NaNs keep their top payload bits).
  for (let h = 0; h < 65536; h++) {
    const back = f32BitsToF16Bits(f16BitsToF32Bits(h));
    const isNan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNan ? (back & 0x7e00) !== 0x7e00 : back !== h) assert.fail(`${hex(h)} round trip gave ${hex(back)}`);
  }
  const arr = f32ToF16(new Float32Array([1, 65520, 2 ** -24]));
  assert.deepEqual([...arr], [0x3c00, 0x7c00, 0x0001]);
});

test('bf16: round to nearest even, NaN stays quiet, subnormals exact', () => {
  const cases: [number, number][] = [
    [0x3f800000, 0x3f80], [0x3f808000, 0x3f80], [0x3f818000, 0x3f82], [0x3f808001, 0x3f81], [0x3f80ffff, 0x3f81],
    [0x7f7fffff, 0x7f80], [0x7f800000, 0x7f80], [0xff800000, 0xff80], [0x7f800001, 0x7fc0], [0xffc00000, 0xffc0],
    [0x00008000, 0x0000], [0x00018000, 0x0002], [0x80000000, 0x8000],
  ];
  for (const [f, b] of cases) assert.equal(f32BitsToBf16Bits(f), b, `${hex(f)} → ${hex(f32BitsToBf16Bits(f))}, expected ${hex(b)}`);
  const back = new Uint32Array(bf16ToF32(new Uint16Array([0x0001, 0x3f80, 0xff80, 0x7fc1])).buffer);
  assert.deepEqual([...back], [0x00010000, 0x3f800000, 0xff800000, 0x7fc10000]);
  assert.deepEqual([...f32ToBf16(new Float32Array([1, -2]))], [0x3f80, 0xc000]);
});

test('RoPE row permutations: known mapping and exact inverses', () => {
  // 2 heads of size 4, 1 column: row value = its index.
  const w = makeWeight([8, 1], Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]));
  const halves = permuteInterleavedToHalves(w, 2);
  assert.deepEqual([...halves.data], [0, 2, 1, 3, 4, 6, 5, 7]);
  const r = rng(1);
  const big = randomWeight([6 * 8, 5], r);
  assert.ok(bitsEqual(permuteHalvesToInterleaved(permuteInterleavedToHalves(big, 6), 6).data, big.data));
  assert.ok(bitsEqual(permuteInterleavedToHalves(permuteHalvesToInterleaved(big, 3), 3).data, big.data));
  assert.throws(() => permuteInterleavedToHalves(makeWeight([6, 2]), 4), /6 rows do not split into 4 heads/);
});

test('weight helpers check shapes and name what is wrong', () => {
  const m: WeightMap = new Map([['a', makeWeight([2, 3])]]);
  assert.equal(countParameters(m), 6);
  assert.throws(() => getWeight(m, 'b', undefined, 'model.safetensors'), /model\.safetensors: missing tensor b/);
  assert.throws(() => getWeight(m, 'a', [3, 2]), /tensor a has shape \[2, 3\], expected \[3, 2\]/);
  assert.throws(() => makeWeight([2, 2], new Float32Array(3)), /needs 4 elements, data has 3/);
  const c = cloneWeights(m);
  c.get('a')!.data[0] = 1;
  assert.equal(m.get('a')!.data[0], 0);
});
