// save_total_limit pruning: the newest `keep` complete checkpoints stay; the leftovers of a write
// or a removal interrupted by a kill (checkpoint-N.tmp-PID, checkpoint-N.del-PID) are cleaned by
// the next save; a removal takes the checkpoint out of the listing in one rename, so a kill can
// never leave a half-removed checkpoint-N that later prunes would neither count nor remove.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { AdamW } from '../src/train/optimizer.js';
import { listCheckpoints, loadCheckpoint, saveCheckpoint, type TrainerState } from '../src/train/checkpoint.js';

function state(step: number): TrainerState {
  return { step, epoch: 0, sampler: { epoch: 0, position: step }, rng: [1, 2, 3, 4], fingerprint: 'f' };
}

test('save_total_limit keeps the newest checkpoints and cleans the leftovers of interrupted writes and removals', () => {
  const out = mkdtempSync(join(tmpdir(), 'ck-prune-'));
  // What a kill leaves behind: a removal under way (old code: a half-removed checkpoint-N) and a write under way.
  for (const left of ['checkpoint-1.del-4242', 'checkpoint-5.tmp-4243']) {
    mkdirSync(join(out, left));
    writeFileSync(join(out, left, 'weights.safetensors'), 'partial');
  }
  const w = T.tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true, name: 'w' });
  const opt = new AdamW([w]);
  for (const step of [2, 4, 6]) {
    w.data[0] = step;
    saveCheckpoint(out, [w], opt, state(step), 2);
  }
  assert.deepEqual(readdirSync(out).sort(), ['checkpoint-4', 'checkpoint-6']);
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), [4, 6]);
  const back = T.tensor([0, 0, 0, 0], [2, 2], { requiresGrad: true, name: 'w' });
  assert.equal(loadCheckpoint(join(out, 'checkpoint-6'), [back], new AdamW([back])).step, 6);
  assert.equal(back.data[0], 6);
});

test('a removal goes through one rename: the removed checkpoint leaves the listing before its files are deleted', () => {
  const out = mkdtempSync(join(tmpdir(), 'ck-prune-'));
  const w = T.tensor([1, 2], [2], { requiresGrad: true, name: 'w' });
  const opt = new AdamW([w]);
  saveCheckpoint(out, [w], opt, state(1), 1);
  // This process's own leftover .del- from an earlier removal that was cut short does not block the next one.
  mkdirSync(join(out, `checkpoint-1.del-${process.pid}`));
  saveCheckpoint(out, [w], opt, state(2), 1);
  assert.deepEqual(readdirSync(out), ['checkpoint-2']);
});
