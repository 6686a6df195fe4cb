import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  readSafetensors, readSafetensorsHeader, readShardedSafetensors, writeSafetensors,
} from '../src/io/safetensors.js';
import { bitsToF32, f32ToBits, makeWeight, type WeightMap } from '../src/io/weights.js';
import { bitsEqual, randomWeight, rng, tempDir } from './fixtures/io/helpers.js';

/** A safetensors file from a header object and a data buffer, built by hand (not by the writer). */
function rawFile(header: unknown, data: Uint8Array | number[] = [], headerText?: string): Buffer {
  const json = Buffer.from(headerText ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.from(data)]);
}

function withFile(name: string, bytes: Buffer, fn: (path: string) => void): void {
  const { dir, cleanup } = tempDir('st');
  try {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    fn(p);
  } finally {
    cleanup();
  }
}

test('F32 round trip is bit-exact (NaN payload, -0, inf, subnormal); layout follows the spec', () => {
  const { dir, cleanup } = tempDir('st-rt');
  try {
    const special = new Float32Array(6);
    new Uint32Array(special.buffer).set([0x7fc12345, 0x80000000, 0x7f800000, 0x00000001, 0xff7fffff, 0x3f800000]);
    const r = rng(42);
    const w: WeightMap = new Map([
      ['z.weight', randomWeight([3, 5], r)],
      ['a.bias', { shape: [6], data: special }],
      ['m.scalar', makeWeight([], Float32Array.from([2.5]))],
      ['m.empty', makeWeight([0, 4])],
    ]);
    const p = join(dir, 'model.safetensors');
    writeSafetensors(p, w, { metadata: { note: 'x' } });
    assert.deepEqual(readdirSync(dir), ['model.safetensors'], 'no temporary file left behind');
    const bytes = readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0, 'data buffer starts 8-byte aligned');
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    assert.deepEqual(header.__metadata__, { note: 'x', format: 'pt' });
    assert.deepEqual(Object.keys(header).filter((k) => k !== '__metadata__'), ['a.bias', 'm.empty', 'm.scalar', 'z.weight']);
    assert.deepEqual(header['a.bias'], { dtype: 'F32', shape: [6], data_offsets: [0, 24] });
    const back = readSafetensors(p);
    assert.equal(back.size, 4);
    for (const [name, t] of w) {
      assert.deepEqual(back.get(name)!.shape, t.shape);
      assert.ok(bitsEqual(back.get(name)!.data, t.data), name);
    }
    const h = readSafetensorsHeader(p);
    assert.equal(h.metadata.format, 'pt');
    assert.equal(h.tensors.length, 4);
    const only = readSafetensors(p, { filter: (name) => name.startsWith('z') });
    assert.deepEqual([...only.keys()], ['z.weight']);
  } finally {
    cleanup();
  }
});

test('BF16 and F16 writing round to nearest even; reading converts back', () => {
  const { dir, cleanup } = tempDir('st-16');
  try {
    const vals = [0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x7f800001, 0x00018000];
    const data = new Float32Array(new Uint32Array(vals).buffer);
    const w: WeightMap = new Map([['t', { shape: [2, 3], data }]]);
    const p = join(dir, 'b.safetensors');
    writeSafetensors(p, w, { dtype: 'BF16' });
    const bytes = readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.match(bytes.subarray(8, 8 + n).toString(), /"dtype":"BF16","shape":\[2,3\],"data_offsets":\[0,12\]/);
    const raw = new Uint16Array(bytes.buffer.slice(bytes.byteOffset + 8 + n, bytes.byteOffset + bytes.length));
    assert.deepEqual([...raw], [0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x7fc0, 0x0002]);
    const back = new Uint32Array(readSafetensors(p).get('t')!.data.buffer);
    assert.deepEqual([...back], [0x3f800000, 0x3f800000, 0x3f820000, 0x3f810000, 0x7fc00000, 0x00020000]);

    const p16 = join(dir, 'h.safetensors');
    writeSafetensors(p16, new Map([['t', { shape: [4], data: Float32Array.from([1, 65520, 2 ** -24, -0.5]) }]]), { dtype: 'F16' });
    assert.deepEqual([...readSafetensors(p16).get('t')!.data], [1, Infinity, 2 ** -24, -0.5]);
  } finally {
    cleanup();
  }
});

test('reads F16, BF16, F64, I64, I32, I16, I8, U8, BOOL files written by hand', () => {
  const f16 = new Uint16Array([0x3c00, 0x0001, 0x7c00, 0xfe00]);
  const bf16 = new Uint16Array([0x3f80, 0xc040]);
  const f64 = new Float64Array([0.1, -1e300]);
  const i64 = new BigInt64Array([-5n, 16777216n]);
  const i32 = new Int32Array([7, -16777216]);
  const i16 = new Int16Array([-300]);
  const i8 = new Int8Array([-7]);
  const parts = [f16, bf16, f64, i64, i32, i16, i8].map((a) => new Uint8Array(a.buffer));
  const u8 = new Uint8Array([255]);
  const bool = new Uint8Array([1]);
  const all = [...parts, u8, bool];
  const off: number[] = [0];
  for (const p of all) off.push(off[off.length - 1]! + p.length);
  const names = ['f16', 'bf16', 'f64', 'i64', 'i32', 'i16', 'i8', 'u8', 'bool'];
  const dtypes = ['F16', 'BF16', 'F64', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];
  const shapes = [[4], [2], [2], [2], [2], [1], [1], [1], [1]];
  const header: Record<string, unknown> = {};
  names.forEach((n, i) => {
    header[n] = { dtype: dtypes[i], shape: shapes[i], data_offsets: [off[i], off[i + 1]] };
  });
  const data = Buffer.concat(all.map((a) => Buffer.from(a)));
  withFile('mixed.safetensors', rawFile(header, data), (p) => {
    const w = readSafetensors(p);
    const got = (n: string) => [...w.get(n)!.data];
    assert.deepEqual(got('f16').slice(0, 3), [1, 2 ** -24, Infinity]);
    assert.ok(Number.isNaN(got('f16')[3]));
    assert.deepEqual(got('bf16'), [1, -3]);
    assert.deepEqual(got('f64'), [bitsToF32(f32ToBits(0.1)), -Infinity]);
    assert.deepEqual(got('i64'), [-5, 16777216]);
    assert.deepEqual(got('i32'), [7, -16777216]);
    assert.deepEqual(got('i16'), [-300]);
    assert.deepEqual(got('i8'), [-7]);
    assert.deepEqual(got('u8'), [255]);
    assert.deepEqual(got('bool'), [1]);
  });
  // Integers beyond 2^24 are not silently rounded.
  const big = new BigInt64Array([16777217n]);
  withFile('big.safetensors', rawFile({ x: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(big.buffer)), (p) => {
    assert.throws(() => readSafetensors(p), /big\.safetensors: tensor x: I64 value 16777217 at element 0 is not exactly representable/);
  });
});

test('every malformed file is a clear error naming the file and the problem', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const eight = new Array(8).fill(0);
  const cases: [string, Buffer, RegExp][] = [
    ['empty file', Buffer.alloc(0), /file is 0 bytes, too short for the 8-byte header length/],
    ['truncated length', Buffer.alloc(5), /file is 5 bytes/],
    ['header beyond file', (() => { const b = rawFile(ok, eight); b.writeBigUInt64LE(10000n, 0); return b; })(), /header length 10000 goes beyond the end of the \d+-byte file/],
    ['absurd header length', (() => { const b = rawFile(ok, eight); b.writeBigUInt64LE(0xffffffffffffn, 0); return b; })(), /exceeds the 100000000-byte limit/],
    ['bad JSON', rawFile(null, eight, '{"w": {"dtype": "F32",'), /header is not valid JSON/],
    ['not an object', rawFile(null, [], '[1, 2]'), /does not start with '\{'/],
    ['JSON null entry', rawFile({ w: null }, []), /tensor w: entry is not an object/],
    ['truncated data', rawFile(ok, [0, 0, 0, 0]), /tensor w: data_offsets \[0, 8\] beyond the 4-byte data buffer \(truncated file\?\)/],
    ['offsets out of range', rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, eight), /data_offsets \[8, 16\] beyond the 8-byte data buffer/],
    ['end before begin', rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, eight), /end before begin/],
    ['overlap', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight), /tensor b: data_offsets \[4, 8\] overlap tensor a/],
    ['hole', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight), /hole of 4 bytes before it/],
    ['trailing bytes', rawFile(ok, [...eight, 1, 2, 3]), /3 bytes after the last tensor are not described/],
    ['unknown dtype', rawFile({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, eight), /tensor w: unknown dtype "Q4" \(supported: F32, F16, BF16/],
    ['unsupported dtype', rawFile({ w: { dtype: 'F8_E4M3', shape: [8], data_offsets: [0, 8] } }, eight), /tensor w: not supported dtype "F8_E4M3"/],
    ['shape/byte mismatch', rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, eight), /tensor w: shape \[3\] of F32 needs 12 bytes, data_offsets \[0, 8\] hold 8/],
    ['bad shape', rawFile({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, eight), /shape \[-2\] is not a list of non-negative integers/],
    ['missing offsets', rawFile({ w: { dtype: 'F32', shape: [2] } }, eight), /data_offsets undefined is not \[begin, end\]/],
    ['missing dtype', rawFile({ w: { shape: [2], data_offsets: [0, 8] } }, eight), /tensor w: dtype missing/],
    ['bad metadata', rawFile({ __metadata__: { n: 1 }, ...ok }, eight), /__metadata__\.n is not a string/],
    ['bad UTF-8', rawFile(null, [], '{"?": 1}').fill(0xff, 10, 11), /not valid UTF-8/],
  ];
  for (const [what, bytes, re] of cases) {
    withFile('bad.safetensors', bytes, (p) => {
      assert.throws(() => readSafetensors(p), (e: Error) => {
        assert.match(e.message, /^safetensors .*bad\.safetensors: /, `${what}: message names the file: ${e.message}`);
        assert.match(e.message, re, `${what}: ${e.message}`);
        return true;
      }, what);
    });
  }
  assert.throws(() => readSafetensors('/nonexistent/x.safetensors'), /safetensors \/nonexistent\/x\.safetensors: cannot open/);
});

test('sharded checkpoints: index, consistency checks', () => {
  const { dir, cleanup } = tempDir('st-shard');
  try {
    const r = rng(5);
    const a = randomWeight([4, 4], r), b = randomWeight([3], r), c = randomWeight([2, 2], r);
    writeSafetensors(join(dir, 's1.safetensors'), new Map([['a', a], ['b', b]]));
    writeSafetensors(join(dir, 's2.safetensors'), new Map([['c', c]]));
    const index = join(dir, 'model.safetensors.index.json');
    writeFileSync(index, JSON.stringify({ metadata: { total_size: 92 }, weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' } }));
    const w = readShardedSafetensors(index);
    assert.deepEqual([...w.keys()].sort(), ['a', 'b', 'c']);
    assert.ok(bitsEqual(w.get('c')!.data, c.data));

    writeFileSync(index, JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's2.safetensors', c: 's2.safetensors' } }));
    assert.throws(() => readShardedSafetensors(index), /tensor b is in shard s1\.safetensors, the index says s2\.safetensors/);
    writeFileSync(index, JSON.stringify({ weight_map: { a: 's1.safetensors', c: 's2.safetensors' } }));
    assert.throws(() => readShardedSafetensors(index), /shard s1\.safetensors holds tensor b that the index does not list/);
    writeFileSync(index, JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors', d: 's2.safetensors' } }));
    assert.throws(() => readShardedSafetensors(index), /tensor d is listed for shard s2\.safetensors but not in it/);
    writeFileSync(index, JSON.stringify({ weight_map: { a: 's9.safetensors' } }));
    assert.throws(() => readShardedSafetensors(index), /shard s9\.safetensors does not exist/);
    writeFileSync(index, JSON.stringify({ weight_map: { a: '../etc/passwd' } }));
    assert.throws(() => readShardedSafetensors(index), /is not a plain shard file name/);
    writeFileSync(index, '{"weight_map": ');
    assert.throws(() => readShardedSafetensors(index), /model\.safetensors\.index\.json: cannot read JSON/);
  } finally {
    cleanup();
  }
});
