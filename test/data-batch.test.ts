// Batching: PreferenceBatch/SftBatch layout, padding and targets; the seeded sampler's
// determinism, epochs, resume from (epoch, position), drop-last and length grouping.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchSampler,
  collatePreference,
  collateSft,
  nextPreferenceBatch,
  pairLengths,
  permutation,
  type TokenizedPair,
  type TokenizedSft,
} from '../src/data/index.js';

const PAD = 999;

function pair(index: number, prompt: number[], chosen: number[], rejected: number[]): TokenizedPair {
  return {
    index,
    loc: { file: 'mem', line: index + 1 },
    promptIds: prompt,
    chosenIds: chosen,
    rejectedIds: rejected,
    promptTruncated: false,
    chosenTruncated: false,
    rejectedTruncated: false,
  };
}

test('PreferenceBatch: chosen rows first, rejected after, right-padded; targets only on response tokens', () => {
  const pairs = [pair(10, [1, 2, 3], [4, 5], [6]), pair(20, [7], [8, 9, 10, 11], [12, 13])];
  const b = collatePreference(pairs, { padId: PAD });
  assert.equal(b.pairs, 2);
  assert.equal(b.seqLen, 5); // longest row: [7, 8, 9, 10, 11]
  assert.deepEqual(b.indices, [10, 20]);
  const rows = (a: Int32Array) => Array.from({ length: 4 }, (_, r) => [...a.subarray(r * 5, r * 5 + 5)]);
  assert.deepEqual(rows(b.inputIds), [
    [1, 2, 3, 4, 5], // pair 0 chosen
    [7, 8, 9, 10, 11], // pair 1 chosen
    [1, 2, 3, 6, PAD], // pair 0 rejected
    [7, 12, 13, PAD, PAD], // pair 1 rejected
  ]);
  // targets[t] = next token when it is a response token: the last prompt position predicts the first response token.
  assert.deepEqual(rows(b.targets), [
    [-1, -1, 4, 5, -1],
    [8, 9, 10, 11, -1],
    [-1, -1, 6, -1, -1],
    [12, 13, -1, -1, -1],
  ]);
  assert.deepEqual([...b.lengths], [5, 5, 4, 3]);
  assert.deepEqual([...b.responseTokens], [2, 4, 1, 2]);
  // Labels counted from targets agree with responseTokens in every row.
  for (let r = 0; r < 4; r++) assert.equal(rows(b.targets)[r]!.filter((x) => x !== -1).length, b.responseTokens[r]);
});

test('PreferenceBatch: padToMultipleOf rounds seqLen up, padding carries no targets', () => {
  const b = collatePreference([pair(0, [1, 2, 3], [4, 5], [6])], { padId: PAD, padToMultipleOf: 8 });
  assert.equal(b.seqLen, 8);
  assert.equal(b.inputIds.length, 2 * 1 * 8);
  assert.deepEqual([...b.inputIds.subarray(8)], [1, 2, 3, 6, PAD, PAD, PAD, PAD]);
  assert.deepEqual([...b.targets.subarray(8)], [-1, -1, 6, -1, -1, -1, -1, -1]);
  assert.throws(() => collatePreference([], { padId: PAD }), /empty batch/);
});

test('SftBatch: one row per example, targets only where the next token is trained', () => {
  const rows: TokenizedSft[] = [
    { index: 3, loc: { file: 'mem', line: 1 }, ids: [1, 2, 3, 4], trained: Uint8Array.from([0, 0, 1, 1]), truncated: false },
    { index: 5, loc: { file: 'mem', line: 2 }, ids: [5, 6, 7, 8, 9, 10], trained: Uint8Array.from([0, 1, 0, 0, 1, 1]), truncated: false },
  ];
  const b = collateSft(rows, { padId: PAD });
  assert.equal(b.rows, 2);
  assert.equal(b.seqLen, 6);
  assert.deepEqual([...b.inputIds], [1, 2, 3, 4, PAD, PAD, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual([...b.targets], [-1, 3, 4, -1, -1, -1, 6, -1, -1, 9, 10, -1]);
  assert.deepEqual([...b.lengths], [4, 6]);
  assert.deepEqual([...b.trainedTokens], [2, 3]);
  assert.deepEqual(b.indices, [3, 5]);
});

test('permutation: deterministic per (seed, epoch), a true permutation, different across epochs and seeds', () => {
  const a = permutation(100, 42, 0);
  assert.deepEqual(a, permutation(100, 42, 0));
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.notDeepEqual(a, permutation(100, 42, 1));
  assert.notDeepEqual(a, permutation(100, 43, 0));
  // Pinned values: the shuffle must not change across versions, or resumed runs would diverge.
  assert.deepEqual(permutation(8, 1234, 0), [4, 3, 0, 5, 1, 2, 6, 7]);
  assert.deepEqual(permutation(10, 7, 3), [8, 0, 7, 1, 4, 3, 2, 5, 9, 6]);
});

test('BatchSampler: every epoch covers each example once; epochs roll over', () => {
  const s = new BatchSampler(10, { batchSize: 4, seed: 7 });
  assert.equal(s.batchesPerEpoch(), 3);
  for (let epoch = 0; epoch < 3; epoch++) {
    const seen: number[] = [];
    for (let k = 0; k < 3; k++) {
      const b = s.next();
      assert.equal(b.epoch, epoch);
      assert.equal(b.position, k);
      seen.push(...b.indices);
    }
    assert.deepEqual(seen.sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => i));
  }
  assert.deepEqual(s.state(), { epoch: 2, position: 3 });
  // Without shuffling: in order.
  const plain = new BatchSampler(5, { batchSize: 2, shuffle: false });
  assert.deepEqual([plain.next().indices, plain.next().indices, plain.next().indices], [[0, 1], [2, 3], [4]]);
});

test('BatchSampler: same seed → same batches; resume from (epoch, position) continues identically', () => {
  const opts = { batchSize: 3, seed: 2024 };
  const a = new BatchSampler(20, opts);
  const all = Array.from({ length: 25 }, () => a.next());
  const b = new BatchSampler(20, opts);
  assert.deepEqual(
    Array.from({ length: 25 }, () => b.next()),
    all,
  );
  // Stop after 11 batches, save the state, resume in a fresh sampler.
  const c = new BatchSampler(20, opts);
  for (let i = 0; i < 11; i++) c.next();
  const saved = c.state();
  assert.deepEqual(saved, { epoch: 1, position: 4 });
  const resumed = new BatchSampler(20, opts, saved);
  assert.deepEqual(
    Array.from({ length: 14 }, () => resumed.next()),
    all.slice(11),
  );
  assert.notDeepEqual(new BatchSampler(20, { ...opts, seed: 2025 }).next().indices, all[0]!.indices);
  assert.throws(() => new BatchSampler(20, opts, { epoch: 0, position: 99 }), /invalid resume state epoch 0, position 99/);
});

test('BatchSampler: dropLast drops the short batch', () => {
  const s = new BatchSampler(10, { batchSize: 4, seed: 1, dropLast: true });
  assert.equal(s.batchesPerEpoch(), 2);
  const seen = [s.next().indices, s.next().indices];
  assert.ok(seen.every((b) => b.length === 4));
  assert.equal(s.next().epoch, 1);
  assert.throws(() => new BatchSampler(3, { batchSize: 4, dropLast: true }), /gives no batches/);
});

test('BatchSampler: length grouping cuts padding and stays deterministic and complete', () => {
  const n = 400;
  // Deterministic lengths spread over 10..500.
  const lengths = Array.from({ length: n }, (_, i) => 10 + ((i * 7919) % 491));
  const padded = (s: BatchSampler) => {
    let total = 0;
    const seen: number[] = [];
    for (let k = 0; k < s.batchesPerEpoch(); k++) {
      const b = s.next().indices;
      seen.push(...b);
      total += Math.max(...b.map((i) => lengths[i]!)) * b.length;
    }
    assert.deepEqual(seen.sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
    return total;
  };
  const grouped = padded(new BatchSampler(n, { batchSize: 8, seed: 3, lengths, groupFactor: 10 }));
  const random = padded(new BatchSampler(n, { batchSize: 8, seed: 3 }));
  const real = lengths.reduce((a, b) => a + b, 0);
  assert.ok(grouped < random, `grouped ${grouped} should pad less than random ${random}`);
  assert.ok((grouped - real) / real < 0.25 * ((random - real) / real), `grouped padding ${grouped - real} vs random ${random - real}`);
  const a = new BatchSampler(n, { batchSize: 8, seed: 3, lengths });
  const b = new BatchSampler(n, { batchSize: 8, seed: 3, lengths }, { epoch: 0, position: 5 });
  for (let i = 0; i < 5; i++) a.next();
  assert.deepEqual(a.next(), b.next());
  assert.throws(() => new BatchSampler(n, { batchSize: 8, lengths: [1, 2] }), /lengths has 2 entries for 400 examples/);
});

test('nextPreferenceBatch: sampler positions map to pairs; batch indices are dataset rows', () => {
  const pairs = [pair(4, [1], [2], [3, 4]), pair(9, [5, 6], [7], [8]), pair(11, [1, 2, 3], [4, 5, 6], [7])];
  const s = new BatchSampler(3, { batchSize: 2, shuffle: false, lengths: pairLengths(pairs) });
  assert.deepEqual(pairLengths(pairs), [3, 3, 6]);
  const b = nextPreferenceBatch(pairs, s, { padId: PAD });
  // Length grouping sorts the mega-batch longest first.
  assert.deepEqual(b.indices, [11, 4]);
  assert.equal(b.seqLen, 6);
  assert.throws(() => nextPreferenceBatch(pairs.slice(1), s, { padId: PAD }), /sampler is over 3 examples, pairs has 2/);
});
