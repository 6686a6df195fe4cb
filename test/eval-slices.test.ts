// Per-slice evaluation: accuracy and mean reward per slice with the best−worst gap (known values),
// `dpo score --slice` through scorePairs, `dpo eval`'s held-out pairs by slice, and the demo's
// two-group task, where the model learns the majority group's preference and not the minority's.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runTwoGroupDemo, MAJORITY, MINORITY } from '../src/demo/groups.js';
import { evaluateAgainstReference, evaluationTable } from '../src/eval/evaluate.js';
import { makeJudge } from '../src/eval/judges.js';
import { readIdPairs } from '../src/eval/index.js';
import { scoresBySlice, sliceTable } from '../src/losses/reward.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';

const dir = mkdtempSync(join(tmpdir(), 'dpo-slices-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('scoresBySlice: accuracy, mean rewards and margin per slice; the gap names the best and worst slice', () => {
  const r = scoresBySlice('group', ['a', 'a', 'b', 'a', 'b'], [1, 2, 0, 3, -1], [0, 3, 1, 1, 0]);
  assert.deepEqual(r.slices, [
    { slice: 'a', pairs: 3, accuracy: 2 / 3, meanChosenReward: 2, meanRejectedReward: 4 / 3, meanMargin: 2 / 3 },
    { slice: 'b', pairs: 2, accuracy: 0, meanChosenReward: -0.5, meanRejectedReward: 0.5, meanMargin: -1 },
  ]);
  assert.equal(r.accuracyGap, 2 / 3);
  assert.equal(r.best, 'a');
  assert.equal(r.worst, 'b');
  assert.match(sliceTable(r), /accuracy gap \(best − worst slice\): 0\.6667 \(a vs b\)/);
  assert.throws(() => scoresBySlice('g', ['a'], [1, 2], [0, 0]), /1 slice labels for 2 chosen/);
});

test('two-group demo: DPO on pooled labels learns the majority preference; the slice gap shows it (score --slice)', async () => {
  const out = join(dir, 'two');
  const r = await runTwoGroupDemo({ out, quiet: true, seed: 0 });
  assert.equal(r.trainPairs, 160);
  const by = Object.fromEntries(r.bySlice.slices.map((s) => [s.slice, s]));
  assert.equal(by[MAJORITY]!.pairs, 32);
  assert.equal(by[MINORITY]!.pairs, 32);
  assert.ok(by[MAJORITY]!.accuracy >= 0.9, `majority accuracy ${by[MAJORITY]!.accuracy}`);
  assert.ok(by[MINORITY]!.accuracy <= 0.1, `minority accuracy ${by[MINORITY]!.accuracy}`);
  assert.ok(r.bySlice.accuracyGap >= 0.8, `gap ${r.bySlice.accuracyGap}`);
  assert.equal(r.bySlice.best, MAJORITY);
  assert.ok(by[MAJORITY]!.meanMargin > 0 && by[MINORITY]!.meanMargin < 0);
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'two_groups.json'), 'utf8')).bySlice, JSON.parse(JSON.stringify(r.bySlice)));

  // dpo eval: the held-out pairs carry their group; implicit accuracy per group, same split.
  const pol = await loadModelAndTokenizer(join(out, 'policy'));
  const ref = await loadModelAndTokenizer(join(out, 'base'));
  const pairs = readIdPairs(join(out, 'data', 'heldout.jsonl'), pol.tokenizer, ['group']);
  const ev = evaluateAgainstReference({
    ref: ref.model, policies: [{ name: 'policy', model: pol.model, beta: 0.1 }], tokenizer: pol.tokenizer, prompts: ['Q1: ab?'],
    judges: [makeJudge('afinn')], pairs, settings: { samplesPerPrompt: 1, maxNewTokens: 2, seed: 0, quiet: true },
  });
  const s = ev.models[1]!.implicitBySlice![0]!;
  assert.equal(s.column, 'group');
  assert.deepEqual(s.slices.map((x) => [x.slice, x.pairs, x.accuracy]), r.bySlice.slices.map((x) => [x.slice, x.pairs, x.accuracy]));
  assert.match(evaluationTable(ev), /policy implicit acc by group: .*gap \d\.\d{3} \(majority vs minority\)/);
});
