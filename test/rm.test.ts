// Reward models (`dpo rm`): the sequence-classification head (read at the last non-padding token,
// gradient checked by finite differences), training on a learnable preference rule, the saved
// transformers-style directory (Llama and GPT-2), reload giving the same scores, LoRA (merged),
// margins and `dpo rm score`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { parseModelConfig } from '../src/io/config.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { randomModel } from '../src/models/index.js';
import { lastNonPadIndex, SequenceClassifier } from '../src/models/reward.js';
import { isSequenceClassificationDir, loadSequenceClassifier, saveSequenceClassifier } from '../src/io/reward-dir.js';
import { rewardModelLoss } from '../src/losses/rl.js';
import { parseRewardConfig } from '../src/train/rl-config.js';
import { readMargins, runRewardModel, scoreWithRewardModel } from '../src/train/rm.js';
import { buildProgram } from '../src/cli/index.js';
import { numericGradient } from './helpers/numeric.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const modelDir = await makeTinyModelDir();
const dataDir = tmp('rm-data-');
const trainFile = writeJsonl(join(dataDir, 'train.jsonl'), syntheticPairs(96, 11));
const evalFile = writeJsonl(join(dataDir, 'eval.jsonl'), syntheticPairs(48, 12));
const base = {
  learning_rate: 3e-3, per_device_train_batch_size: 8, per_device_eval_batch_size: 16, max_length: 64,
  logging_steps: 4, save_steps: 0, seed: 5, lr_scheduler_type: 'constant', num_train_epochs: 1,
};

test('lastNonPadIndex follows transformers: the rightmost position whose id is not the pad id', () => {
  const ids = Int32Array.from([5, 6, 7, 0, 0, /**/ 5, 0, 9, 0, 0, /**/ 0, 0, 0, 0, 0, /**/ 1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from(lastNonPadIndex(ids, 4, 5, 0)), [2, 2, 0, 4]);
});

test('the reward is the score head on the last non-padding hidden state; its gradient matches finite differences', () => {
  const cfg = parseModelConfig({
    architectures: ['LlamaForCausalLM'], vocab_size: 40, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1,
    num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, tie_word_embeddings: true,
  });
  const rm = SequenceClassifier.fromCausalLM(randomModel(cfg, 3), 0, 1);
  const ids = Int32Array.from([3, 4, 5, 6, 0, 0, /**/ 7, 8, 0, 0, 0, 0, /**/ 9, 10, 11, 12, 13, 14, /**/ 2, 3, 4, 0, 0, 0]);
  const B = 4, S = 6, d = 16;
  const r = T.noGrad(() => rm.rewards(ids, B, S));
  const h = T.noGrad(() => rm.body.hidden({ ids, batch: B, seq: S }));
  const last = lastNonPadIndex(ids, B, S, 0);
  for (let b = 0; b < B; b++) {
    let dot = 0;
    for (let k = 0; k < d; k++) dot += h.data[(b * S + last[b]!) * d + k]! * rm.score.data[k]!;
    assert.ok(Math.abs(dot - r.data[b]!) < 1e-5, `row ${b}: ${dot} vs ${r.data[b]}`);
  }
  // Padding after the last token does not change a row's reward.
  const longer = new Int32Array(B * 8);
  for (let b = 0; b < B; b++) longer.set(ids.subarray(b * S, (b + 1) * S), b * 8);
  const r2 = T.noGrad(() => rm.rewards(longer, B, 8));
  for (let b = 0; b < B; b++) assert.ok(Math.abs(r2.data[b]! - r.data[b]!) < 1e-5);
  // BT loss gradient through the model, w.r.t. the score head, against finite differences.
  const loss = (): number => {
    const v = T.noGrad(() => rm.rewards(ids, B, S));
    return rewardModelLoss([v.data[0]!, v.data[2]!], [v.data[1]!, v.data[3]!], { centerRewardsCoefficient: 0.1 }).loss;
  };
  const rv = rm.rewards(ids, B, S);
  const res = rewardModelLoss([rv.data[0]!, rv.data[2]!], [rv.data[1]!, rv.data[3]!], { centerRewardsCoefficient: 0.1 });
  T.backward(rv, Float32Array.from([res.gradChosen[0]!, res.gradRejected[0]!, res.gradChosen[1]!, res.gradRejected[1]!]));
  const w64 = Float64Array.from(rm.score.data);
  const fd = numericGradient(() => {
    rm.score.data.set(Float32Array.from(w64));
    return loss();
  }, w64, 1e-3);
  rm.score.data.set(Float32Array.from(w64));
  const g = rm.score.grad!;
  for (let k = 0; k < d; k++) assert.ok(Math.abs(g[k]! - fd[k]!) < 2e-3 + 2e-2 * Math.abs(fd[k]!), `score.weight[${k}]: ${g[k]} vs fd ${fd[k]}`);
});

test('dpo rm learns the rule (held-out accuracy ≥ 0.9), saves a LlamaForSequenceClassification directory, and reloads to the same scores', async () => {
  const out = tmp('rm-out-');
  const res = await runRewardModel({
    model: modelDir, data: [trainFile], evalData: [evalFile], outputDir: out, quiet: true,
    config: parseRewardConfig({ ...base, max_steps: 36, center_rewards_coefficient: 0.01 }),
  });
  assert.equal(res.stoppedBecause, null);
  const ev = res.evalHistory.at(-1)!;
  assert.ok(ev['eval/accuracy']! >= 0.9, `held-out accuracy ${ev['eval/accuracy']}`);
  assert.ok(ev['eval/margin']! > 0);
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  for (const k of ['loss', 'accuracy', 'margin', 'rewards/chosen', 'rewards/rejected', 'grad_norm', 'learning_rate']) assert.ok(k in lines[0], `metrics lack ${k}`);
  assert.ok(lines[0].loss > lines.filter((l) => 'loss' in l).at(-1).loss, 'loss did not fall');

  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['LlamaForSequenceClassification']);
  assert.equal(cfg.num_labels, 1);
  assert.deepEqual(cfg.id2label, { 0: 'LABEL_0' });
  assert.equal(cfg.pad_token_id, 0);
  const w = readSafetensors(join(out, 'model.safetensors'));
  assert.deepEqual(w.get('score.weight')!.shape, [1, 32]);
  assert.ok(!w.has('lm_head.weight'));
  assert.ok(w.has('model.embed_tokens.weight') && w.has('model.layers.0.self_attn.q_proj.weight'));
  assert.ok(isSequenceClassificationDir(out) && !isSequenceClassificationDir(modelDir));

  const a = await scoreWithRewardModel({ model: out, data: [evalFile], quiet: true });
  assert.ok(a.accuracy >= 0.9);
  // Reload → save again → reload: the same rewards, bit for bit.
  const again = tmp('rm-resave-');
  saveSequenceClassifier(again, loadSequenceClassifier(out).model, { tokenizerFiles: [join(out, 'tokenizer.json'), join(out, 'tokenizer_config.json')] });
  const b = await scoreWithRewardModel({ model: again, data: [evalFile], quiet: true });
  assert.deepEqual(b.pairs.map((p) => [p.chosen, p.rejected]), a.pairs.map((p) => [p.chosen, p.rejected]));
  // The CLI prints per-response rewards as JSON lines.
  const outFile = join(tmp('rm-cli-'), 'scores.jsonl');
  await buildProgram().parseAsync(['node', 'dpo', 'rm', 'score', '--model', out, '--data', evalFile, '--out', outFile, '--quiet']);
  const rows = readFileSync(outFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, 48);
  assert.deepEqual(rows.map((r) => r.chosen), a.pairs.map((p) => p.chosen));
});

test('LoRA reward model: adapters train, the output is a merged sequence-classification directory', async () => {
  const out = tmp('rm-lora-');
  const res = await runRewardModel({
    model: modelDir, data: [trainFile], outputDir: out, quiet: true,
    config: parseRewardConfig({ ...base, max_steps: 6, use_peft: true, lora_r: 4, lora_alpha: 8, lora_dropout: 0, learning_rate: 1e-2 }),
  });
  assert.equal(res.stoppedBecause, null);
  const merged = readSafetensors(join(out, 'model.safetensors'));
  const orig = readSafetensors(join(modelDir, 'model.safetensors'));
  const q = 'model.layers.0.self_attn.q_proj.weight';
  assert.ok(merged.get(q)!.data.some((v, i) => v !== orig.get(q)!.data[i]), 'LoRA update not merged into the weights');
  assert.ok(![...merged.keys()].some((k) => k.includes('lora_')));
  const s = await scoreWithRewardModel({ model: out, data: [evalFile], quiet: true });
  assert.equal(s.pairs.length, 48);
});

test('Qwen2 reward model: Qwen2ForSequenceClassification with q/k/v biases, reload gives the same rewards', () => {
  const cfg = parseModelConfig({
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 40, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1,
    num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, tie_word_embeddings: false,
  });
  const rm = SequenceClassifier.fromCausalLM(randomModel(cfg, 5), 39, 2);
  const dir = tmp('rm-qwen2-');
  saveSequenceClassifier(dir, rm);
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.deepEqual(c.architectures, ['Qwen2ForSequenceClassification']);
  assert.equal(c.model_type, 'qwen2');
  const w = readSafetensors(join(dir, 'model.safetensors'));
  assert.ok(w.has('model.layers.0.self_attn.q_proj.bias') && w.has('score.weight') && !w.has('lm_head.weight'));
  const ids = Int32Array.from([1, 2, 3, 39, 4, 5, 6, 7]);
  const r1 = T.noGrad(() => rm.rewards(ids, 2, 4)), r2 = T.noGrad(() => loadSequenceClassifier(dir).model.rewards(ids, 2, 4));
  assert.deepEqual(Array.from(r2.data), Array.from(r1.data));
});

test('GPT-2 reward model: GPT2ForSequenceClassification names, reload gives the same rewards', () => {
  const cfg = parseModelConfig({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 50, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32 });
  const rm = SequenceClassifier.fromCausalLM(randomModel(cfg, 2), 49, 4);
  const dir = tmp('rm-gpt2-');
  saveSequenceClassifier(dir, rm);
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.deepEqual(c.architectures, ['GPT2ForSequenceClassification']);
  assert.equal(c.pad_token_id, 49);
  const w = readSafetensors(join(dir, 'model.safetensors'));
  assert.ok(w.has('transformer.h.0.attn.c_attn.weight') && w.has('score.weight') && !w.has('lm_head.weight'));
  const back = loadSequenceClassifier(dir).model;
  const ids = Int32Array.from([1, 2, 3, 49, 4, 5, 6, 7]);
  const r1 = T.noGrad(() => rm.rewards(ids, 2, 4)), r2 = T.noGrad(() => back.rewards(ids, 2, 4));
  assert.deepEqual(Array.from(r2.data), Array.from(r1.data));
});

test('margins: read per pair from the margin column; a bad value names file and line', async () => {
  const d = tmp('rm-margin-');
  const rows = syntheticPairs(8, 3).map((p, i) => ({ ...p, margin: i * 0.5 }));
  const f = writeJsonl(join(d, 'm.jsonl'), rows);
  const out = tmp('rm-margin-out-');
  const res = await runRewardModel({ model: modelDir, data: [f], outputDir: out, quiet: true, config: parseRewardConfig({ ...base, max_steps: 2, logging_steps: 1 }) });
  assert.equal(res.steps, 2);
  const { preparePreferenceData } = await import('../src/data/prepare.js');
  const { loadTokenizer } = await import('../src/io/tokenizers/index.js');
  const prep = await preparePreferenceData([f], await loadTokenizer(modelDir));
  assert.deepEqual(Array.from((await readMargins([f], prep.pairs, 'margin'))!), rows.map((r) => r.margin));
  writeFileSync(f, rows.map((r, i) => JSON.stringify(i === 3 ? { ...r, margin: 'big' } : r)).join('\n'));
  await assert.rejects(readMargins([f], prep.pairs, 'margin'), /m\.jsonl:4: margin: expected a finite number/);
  assert.throws(() => parseRewardConfig({ center_reward_coefficient: 0.1 }), /did you mean "center_rewards_coefficient"/);
});

test('reward scoring without a tape leaves no tensor buffer live (the hidden states, the head\'s output and the rewards go back to the pool)', async () => {
  const { rewardModelScores } = await import('../src/train/rewards.js');
  const body = randomModel(parseModelConfig({ model_type: 'llama', vocab_size: 40, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32 }), 3);
  const rm = SequenceClassifier.fromCausalLM(body, 0, 1);
  const live = T.memoryStats().currentBytes;
  const scores = rewardModelScores(rm, [[1, 5, 6], [1, 7]], [[8, 9], [10, 11, 12]], 1);
  assert.equal(scores.length, 2);
  assert.ok(Array.from(scores).every(Number.isFinite));
  // Before: the final hidden states and the rewards' buffer were left to the garbage collector.
  assert.equal(T.memoryStats().currentBytes, live, 'reward scoring left tensor buffers live');
});
