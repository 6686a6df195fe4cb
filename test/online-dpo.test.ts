// Online DPO (TRL OnlineDPOTrainer semantics) on a tiny model: one step matches a hand computation
// (fresh pair judged by a JS-module judge, sigmoid loss against a separate reference, AdamW step);
// TRL's metric names; the reward of a reward function rises; a judge returning garbage names the pair.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { parseOnlineDpoConfig, runOnlineDpo, type OnlinePair } from '../src/train/online-dpo.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const modelDir = await makeTinyModelDir();
const refDir = await makeTinyModelDir({ seed: 7 });
const dir = tmp('online-data-');
const promptsFile = writeJsonl(join(dir, 'prompts.jsonl'), syntheticPairs(32, 5).map((p) => ({ prompt: p.prompt })));
const letterScore = `(c) => { const l = c.replace(/[^a-z]/g, ''); let s = 0; for (const ch of l) s += ch < 'n' ? 1 : -1; return l.length ? s / l.length : 0; }`;
const judgeModule = join(dir, 'judge.mjs');
writeFileSync(judgeModule, `const score = ${letterScore};\nexport function judge(prompt, a, b) { return score(a) >= score(b) ? 0 : 1; }\n`);
const rewardModule = join(dir, 'reward.mjs');
writeFileSync(rewardModule, `const score = ${letterScore};\nexport default ({ completions }) => completions.map(score);\n`);
const garbageModule = join(dir, 'garbage.mjs');
writeFileSync(garbageModule, 'export function judge() { return "maybe"; }\n');
const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Σ_t log p(completion token t) of one sequence, unbatched, with the autograd tape. */
function seqLogp(model: Awaited<ReturnType<typeof loadModelAndTokenizer>>['model'], prompt: number[], completion: number[]): T.Tensor {
  const ids = Int32Array.from([...prompt, ...completion]);
  const targets = new Int32Array(ids.length).fill(-1);
  completion.forEach((c, t) => (targets[prompt.length - 1 + t] = c));
  return model.tokenLogprobs({ ids, batch: 1, seq: ids.length }, targets);
}
const sumAt = (t: T.Tensor, prompt: number[], n: number): number => {
  let s = 0;
  for (let k = 0; k < n; k++) s += t.data[prompt.length - 1 + k]!;
  return s;
};

test('online DPO: one step equals a hand computation (judge module, sigmoid, separate reference, AdamW)', async () => {
  const out = tmp('online-step-');
  const beta = 0.5, lr = 1e-2;
  let pairs: OnlinePair[] = [];
  const res = await runOnlineDpo({
    model: modelDir, ref: refDir, prompts: [promptsFile], outputDir: out, quiet: true,
    onPairs: (p) => (pairs = p),
    config: {
      judge: judgeModule, beta, learning_rate: lr, per_device_train_batch_size: 4, max_steps: 1, max_new_tokens: 8, temperature: 1,
      // adam_epsilon 1: the first AdamW step is lr·g/(|g| + 1), smooth in g, so it can be compared closely.
      adam_epsilon: 1, max_grad_norm: 0, lr_scheduler_type: 'constant', logging_steps: 1, save_steps: 0, seed: 3,
    },
  });
  assert.equal(res.steps, 1);
  assert.equal(pairs.length, 4);
  const { model: policy } = await loadModelAndTokenizer(modelDir);
  const { model: ref } = await loadModelAndTokenizer(refDir);
  const score = eval(letterScore) as (c: string) => number;
  let lossSum = 0, rc = 0, rr = 0, kl = 0;
  const params = policy.trainableParameters();
  for (const p of pairs) {
    assert.ok(score(p.chosen) >= score(p.rejected), `the judge's choice: ${p.chosen} vs ${p.rejected}`);
    const tc = seqLogp(policy, p.promptIds, p.chosenIds), tr = seqLogp(policy, p.promptIds, p.rejectedIds);
    const pc = sumAt(tc, p.promptIds, p.chosenIds.length), pr = sumAt(tr, p.promptIds, p.rejectedIds.length);
    const refc = T.noGrad(() => sumAt(seqLogp(ref, p.promptIds, p.chosenIds), p.promptIds, p.chosenIds.length));
    const refr = T.noGrad(() => sumAt(seqLogp(ref, p.promptIds, p.rejectedIds), p.promptIds, p.rejectedIds.length));
    const z = beta * ((pc - refc) - (pr - refr));
    lossSum += Math.log1p(Math.exp(-z));
    rc += beta * (pc - refc);
    rr += beta * (pr - refr);
    kl += (pc - refc) + (pr - refr);
    // ∂/∂pc of −log σ(z) / n = −β σ(−z) / n; ∂/∂pr the opposite.
    const gc = -beta / (1 + Math.exp(z)) / pairs.length;
    for (const [t, ids, g] of [[tc, p.chosenIds, gc], [tr, p.rejectedIds, -gc]] as const) {
      const grad = new Float32Array(t.size);
      for (let k = 0; k < ids.length; k++) grad[p.promptIds.length - 1 + k] = g;
      T.backward(t, grad);
    }
  }
  const rec = JSON.parse(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')[0]!) as Record<string, number>;
  const n = pairs.length;
  assert.ok(Math.abs(rec.loss! - lossSum / n) < 1e-4, `loss ${rec.loss} vs ${lossSum / n}`);
  assert.ok(Math.abs(rec['rewards/chosen']! - rc / n) < 1e-4);
  assert.ok(Math.abs(rec['rewards/rejected']! - rr / n) < 1e-4);
  assert.ok(Math.abs(rec['objective/kl']! - kl / (2 * n)) < 1e-3);
  assert.ok(Math.abs(rec['objective/non_score_reward']! + beta * kl / (2 * n)) < 1e-3);
  for (const k of ['objective/entropy', 'rewards/margins', 'rewards/accuracies', 'logps/chosen', 'logps/rejected', 'val/contain_eos_token', 'beta', 'grad_norm', 'learning_rate']) {
    assert.ok(k in rec, `missing metric ${k}`);
  }
  assert.ok(!('objective/scores' in rec), 'a pairwise judge gives no scores');
  // The saved policy = w − lr·g/(|g| + 1).
  const saved = readSafetensors(join(out, "model.safetensors"));
  let worst = 0, moved = 0, largest = 0;
  for (const p of params) {
    const after = saved.get(p.name!)!.data as Float32Array;
    for (let i = 0; i < p.size; i++) {
      const g = p.grad ? p.grad[i]! : 0;
      const expect = p.data[i]! - lr * (g / (Math.abs(g) + 1));
      worst = Math.max(worst, Math.abs(after[i]! - expect));
      if (after[i] !== p.data[i]) moved++;
      largest = Math.max(largest, Math.abs(expect - p.data[i]!));
    }
  }
  assert.ok(moved > 1000, `only ${moved} weights moved`);
  assert.ok(worst < 2e-6 && worst < largest / 100, `largest difference from the hand-computed step: ${worst} (largest step ${largest})`);
});

test('online DPO with a reward function raises its score; TRL scoring metrics; missing_eos_penalty', async () => {
  const out = tmp('online-rise-');
  const res = await runOnlineDpo({
    model: modelDir, prompts: [promptsFile], outputDir: out, quiet: true,
    config: {
      reward_funcs: [rewardModule], missing_eos_penalty: 0.5, beta: 0.1, learning_rate: 1e-2, per_device_train_batch_size: 8, max_steps: 16,
      max_new_tokens: 8, temperature: 1, lr_scheduler_type: 'constant', logging_steps: 1, save_steps: 0, seed: 1,
    },
  });
  assert.equal(res.stoppedBecause, null);
  const s = res.history.map((h) => h['objective/scores']!);
  assert.ok(avg(s.slice(-4)) > avg(s.slice(0, 4)) + 0.2, `score did not rise: ${s.map((x) => x.toFixed(2)).join(' ')}`);
  for (const k of ['objective/rlhf_reward', 'objective/scores_margin']) assert.ok(k in res.history[0]!, `missing ${k}`);
  assert.ok(res.history.every((h) => h['objective/scores_margin']! >= 0), 'the chosen completion never scores below the rejected one');
});

test('dpo online (the command): a run with flags writes metrics with TRL names and the policy', async () => {
  const { spawnSync } = await import('node:child_process');
  const out = tmp('online-cli-');
  const cli = new URL('../src/cli/index.js', import.meta.url).pathname;
  const r = spawnSync(process.execPath, [cli, 'online', '--model', modelDir, '--prompts', promptsFile, '--output', out, '--reward-funcs', rewardModule,
    '--max-steps', '2', '--max-new-tokens', '6', '--per-device-train-batch-size', '4', '--logging-steps', '1', '--quiet'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const recs = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  assert.equal(recs.length, 2);
  assert.ok('objective/rlhf_reward' in recs[0]! && 'val/contain_eos_token' in recs[0]!);
  const bad = spawnSync(process.execPath, [cli, 'online', '--model', modelDir, '--prompts', promptsFile, '--output', out, '--max-new-tokns', '3'], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
});

test('online DPO tie_pairs: skip leaves pairs the judge calls a tie out of the loss', async () => {
  const tieJudge = join(dir, 'tie.mjs');
  writeFileSync(tieJudge, 'export function judge() { return "tie"; }\n');
  const out = tmp('online-tie-');
  const res = await runOnlineDpo({
    model: modelDir, prompts: [promptsFile], outputDir: out, quiet: true,
    config: { judge: tieJudge, tie_pairs: 'skip', learning_rate: 1e-2, per_device_train_batch_size: 4, max_steps: 2, max_new_tokens: 4, logging_steps: 1, save_steps: 0 },
  });
  assert.equal(res.history[0]!.tie_pairs_skipped, 1);
  assert.ok(!('loss' in res.history[0]!), 'no pair was trained on');
  const before = readSafetensors(join(modelDir, 'model.safetensors')), after = readSafetensors(join(out, 'model.safetensors'));
  for (const [k, v] of before) assert.deepEqual(after.get(k)!.data, v.data, `${k} moved`);
});

test('online DPO: a judge that answers garbage stops with the prompt and pair named; config errors', async () => {
  await assert.rejects(
    runOnlineDpo({ model: modelDir, prompts: [promptsFile], outputDir: tmp('online-bad-'), quiet: true, config: { judge: garbageModule, max_steps: 1, max_new_tokens: 4 } }),
    /judge .*garbage\.mjs returned "maybe" for prompt "Q\d+.*expected 0 or "a"/,
  );
  assert.throws(() => parseOnlineDpoConfig({ loss_type: 'bco_pair' }), /bco_pair/);
  assert.throws(() => parseOnlineDpoConfig({ max_new_tokns: 3 }), /max_new_tokens/);
  assert.throws(() => parseOnlineDpoConfig({ max_new_tokens: 600 }), /below max_length/);
});
