// The DPO variants of TRL v1.9.0's DPOConfig: f-DPO (f_divergence_type), sigmoid_norm, WPO
// (use_weighting), LD-DPO (ld_alpha) and TR-DPO (sync_ref_model). Loss values are hand-derived from
// the published formulas (numbers computed independently in double precision; the derivation is
// in each comment), gradients are checked by central finite differences, and the trainer-side
// pieces (token weights, WPO normalizer, the reference sync and its checkpointing) against direct
// computations.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { computePreferenceLoss, fDivergenceScores, ldTokenWeights, lossTypes, wpoPairWeights, type LossParams, type PreferenceLogps } from '../src/losses/index.js';
import { collatePreference, mulberry32, type TokenizedPair } from '../src/data/index.js';
import { ldBatchWeights, mixReferenceToward, runDpo, sequenceLogps } from '../src/train/dpo.js';
import { parseDpoConfig } from '../src/train/config.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const f64 = (a: number[]) => Float64Array.from(a);
const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

// One pair: policy chosen −10, rejected −12; reference −11, −11.5; β = 0.1 → log-ratios x_c = 1, x_r = −0.5.
const one: PreferenceLogps = { policyChosen: f64([-10]), policyRejected: f64([-12]), refChosen: f64([-11]), refRejected: f64([-11.5]), chosenTokens: [4], rejectedTokens: [5] };

test('f-DPO scores and losses: hand-derived values (TRL v1.9.0 _compute_loss)', () => {
  // s(x): reverse_kl x; forward_kl −e^(−x); js_divergence log σ(x); alpha_divergence (α = 0.5) e^(−x/2)/(−1/2).
  const want: Record<string, { sc: number; sr: number; sigmoid: number; hinge: number; nca_pair: number; apo_down: number }> = {
    reverse_kl: { sc: 1, sr: -0.5, sigmoid: 0.6209570477895321, hinge: 0.85, nca_pair: 1.3508248141169994, apo_down: 0.9875493421351904 },
    forward_kl: { sc: -0.36787944117144233, sr: -1.6487212707001282, sigmoid: 0.6311543835721054, hinge: 0.8719158170471314, nca_pair: 1.3562240601192626, apo_down: 0.9930018469679762 },
    js_divergence: { sc: -0.31326168751822286, sr: -0.9740769841801067, sigmoid: 0.6606521625101546, hinge: 0.9339184703338116, nca_pair: 1.3705507522741087, apo_down: 1.0084648141622539 },
    alpha_divergence: { sc: -1.2130613194252668, sr: -2.568050833375483, sigmoid: 0.6276909470685579, hinge: 0.8645010486049785, nca_pair: 1.3592875555976993, apo_down: 0.9911561829025967 },
  };
  for (const [type, w] of Object.entries(want)) {
    const s = fDivergenceScores(f64([1, -0.5]), type as never, 0.5);
    close(s.s[0]!, w.sc, 1e-14, `${type} s(1)`);
    close(s.s[1]!, w.sr, 1e-14, `${type} s(−0.5)`);
    // sigmoid: −log σ(β(s_c − s_r)); hinge: relu(1 − β(s_c − s_r)); nca_pair: −ls(βs_c) − ½ls(−βs_c) − ½ls(−βs_r);
    // apo_down: σ(β x_c) + 1 − σ(β(s_c − s_r)) (its first half keeps the raw log-ratio, as TRL).
    for (const loss of ['sigmoid', 'hinge', 'nca_pair', 'apo_down'] as const) {
      const r = computePreferenceLoss(loss, one, { beta: 0.1, fDivergenceType: type as never, fAlphaDivergenceCoef: 0.5 });
      close(r.loss, w[loss], 1e-13, `${type} ${loss}`);
      // The implicit rewards stay β·(log π − log π_ref), as TRL logs them.
      close(r.metrics['rewards/chosen']!, 0.1, 1e-14, `${type} ${loss} reward`);
    }
  }
  // α → 1 falls back to reverse_kl (TRL: |α − 1| < 1e-6).
  const a1 = computePreferenceLoss('sigmoid', one, { beta: 0.1, fDivergenceType: 'alpha_divergence', fAlphaDivergenceCoef: 1 });
  close(a1.loss, want.reverse_kl!.sigmoid, 1e-15, 'alpha 1');
  // TRL clamps (α − 1)x at 80: beyond it the score is constant and its gradient 0.
  const far = fDivergenceScores(f64([-200]), 'alpha_divergence', 0.5);
  close(far.s[0]!, Math.exp(80) / -0.5, 1e-14, 'clamped score');
  assert.equal(far.ds[0], 0);
});

test('sigmoid_norm: −log σ(β(x_c/T_c − x_r/T_r)), hand-derived', () => {
  // β(1/4 − (−0.5)/5) = 0.035 → −log σ(0.035) = 0.6758002977448283.
  close(computePreferenceLoss('sigmoid_norm', one, { beta: 0.1 }).loss, 0.6758002977448283, 1e-14, 'sigmoid_norm');
});

function randomBatch(seed: number, n: number): PreferenceLogps {
  const rnd = mulberry32(seed);
  const chosenTokens = Array.from({ length: n }, () => 4 + Math.floor(rnd() * 40));
  const rejectedTokens = Array.from({ length: n }, () => 4 + Math.floor(rnd() * 40));
  const pc = chosenTokens.map((t) => -t * (0.2 + 1.5 * rnd()));
  const pr = rejectedTokens.map((t) => -t * (0.2 + 1.5 * rnd()));
  return {
    policyChosen: f64(pc), policyRejected: f64(pr),
    refChosen: f64(pc.map((v) => v + 4 * (rnd() - 0.5))), refRejected: f64(pr.map((v) => v + 4 * (rnd() - 0.5))),
    chosenTokens, rejectedTokens,
  };
}

function fdCheck(lossType: string | string[], logps: PreferenceLogps, params: LossParams, what: string): void {
  const base = computePreferenceLoss(lossType, logps, params);
  for (const [field, grad] of [['policyChosen', base.gradPolicyChosen], ['policyRejected', base.gradPolicyRejected]] as const) {
    const arr = logps[field];
    for (let i = 0; i < arr.length; i++) {
      const h = 1e-5 * Math.max(1, Math.abs(arr[i]!));
      const plus = new Float64Array(arr), minus = new Float64Array(arr);
      plus[i] += h;
      minus[i] -= h;
      const fd = (computePreferenceLoss(lossType, { ...logps, [field]: plus }, params).loss - computePreferenceLoss(lossType, { ...logps, [field]: minus }, params).loss) / (2 * h);
      const tol = 1e-6 * Math.max(Math.abs(fd), Math.abs(grad[i]!)) + 1e-9 * Math.max(1, Math.abs(base.loss));
      assert.ok(Math.abs(fd - grad[i]!) <= tol, `${what}: d/d${field}[${i}] analytic ${grad[i]} vs finite difference ${fd}`);
    }
  }
}

const fdParams: Record<string, LossParams> = {
  sigmoid: {}, robust: { labelSmoothing: 0.2 }, ipo: {}, hinge: { beta: 0.05 }, bco_pair: {}, exo_pair: { labelSmoothing: 0.01 },
  nca_pair: {}, sppo_hard: { beta: 0.5 }, aot: { labelSmoothing: 0.05 }, aot_pair: { labelSmoothing: 0.05 }, apo_zero: { beta: 0.2 },
  apo_down: { beta: 0.2 }, discopop: {}, sigmoid_norm: {}, simpo: { beta: 2 }, orpo: {}, sft: {},
};

test('finite differences: every reference-based loss under every f-divergence', () => {
  let k = 0;
  for (const fType of ['forward_kl', 'js_divergence', 'alpha_divergence'] as const) {
    for (const alpha of fType === 'alpha_divergence' ? [0.3, 0.5, 1.7] : [0.5]) {
      for (const t of lossTypes) {
        if (t === 'simpo' || t === 'orpo' || t === 'sft') continue;
        fdCheck(t, randomBatch(10 + k++, 5), { beta: 0.1, ...fdParams[t], fDivergenceType: fType, fAlphaDivergenceCoef: alpha }, `${t} ${fType} α=${alpha}`);
      }
    }
  }
  assert.throws(() => computePreferenceLoss('simpo', { ...randomBatch(1, 3), refChosen: undefined, refRejected: undefined }, { fDivergenceType: 'js_divergence' }), /needs reference log-probs/);
});

test('WPO pair weights: each pair\'s loss times w_c·w_r, finite differences, refused for aot', () => {
  // w_y = exp(Σ_t (log p_t − log Σp²) / T): rows with aligned sums −2 over 4 tokens and −1.5 over 3 → e^(−0.5)·e^(−0.5).
  const w = wpoPairWeights([-2], [4], [-1.5], [3]);
  close(w[0]!, Math.exp(-1), 1e-15, 'wpo weight');
  const b = randomBatch(77, 6);
  const pw = f64([0.3, 1, 0.05, 2, 0.7, 0.9]);
  const plain = computePreferenceLoss('sigmoid', b, { beta: 0.1 });
  const weighted = computePreferenceLoss('sigmoid', b, { beta: 0.1, pairWeights: pw });
  let want = 0;
  for (let i = 0; i < 6; i++) want += (pw[i]! * plain.losses[i]!) / 6;
  close(weighted.loss, want, 1e-14, 'weighted mean');
  for (const t of ['sigmoid', 'ipo', 'discopop', 'apo_down', 'sft', 'sigmoid_norm']) {
    fdCheck(t, b, { beta: 0.1, ...fdParams[t], pairWeights: pw }, `${t} + WPO`);
  }
  fdCheck(['sigmoid', 'sft'], b, { beta: 0.1, lossWeights: [1, 0.5], pairWeights: pw, fDivergenceType: 'js_divergence' }, 'sigmoid+sft, WPO, js');
  assert.throws(() => computePreferenceLoss('aot', b, { pairWeights: pw }), /sorted rank/);
});

test('LD-DPO token weights: the first min(Lc, Lr) scored tokens weigh 1, the rest α (TRL comp_pos ≤ shared_len)', () => {
  assert.deepEqual([...ldTokenWeights(5, 3, 0.25)], [1, 1, 1, 0.25, 0.25]);
  assert.deepEqual([...ldTokenWeights(2, 3, 0.25)], [1, 1]);
  assert.throws(() => ldTokenWeights(2, 1, 1.5), /ld_alpha/);
  const loc = { file: 'm', line: 1 };
  const pair: TokenizedPair = { index: 0, loc, promptIds: [1, 2], chosenIds: [3, 4, 5, 6], rejectedIds: [7, 8], promptTruncated: false, chosenTruncated: false, rejectedTruncated: false };
  const b = collatePreference([pair], { padId: 0 });
  // Rows: [1 2 3 4 5 6] and [1 2 7 8 0 0]; positions t whose next token is a response token are scored:
  // chosen t = 1..4 (4 tokens), rejected t = 1..2 (2): shared 2.
  const w = ldBatchWeights(b, 0.5);
  assert.deepEqual([...w], [0, 1, 1, 0.5, 0.5, 0, /* rejected */ 0, 1, 1, 0, 0, 0]);
});

const modelDir = await makeTinyModelDir({ seed: 18 });
const dataDir = mkdtempSync(join(tmpdir(), 'trl-variants-'));
const trainFile = writeJsonl(join(dataDir, 'train.jsonl'), syntheticPairs(32, 5));

test('sequenceLogps: LD weights and the plain sums from one forward, padded and padding-free; WPO normalizer', async () => {
  const { model, tokenizer } = await loadModelAndTokenizer(modelDir);
  const enc = syntheticPairs(3, 9).map((p, i): TokenizedPair => ({
    index: i, loc: { file: 'x', line: i + 1 },
    promptIds: tokenizer.encode(p.prompt), chosenIds: [...tokenizer.encode(p.chosen, { addBos: false }), tokenizer.eosId!],
    rejectedIds: [...tokenizer.encode(p.rejected + ' more', { addBos: false }), tokenizer.eosId!],
    promptTruncated: false, chosenTruncated: false, rejectedTruncated: false,
  }));
  const batch = collatePreference(enc, { padId: tokenizer.padId });
  const rows = 2 * batch.pairs, T_ = batch.seqLen;
  const w = ldBatchWeights(batch, 0.3);
  const lp = T.noGrad(() => model.tokenLogprobs({ ids: batch.inputIds, batch: rows, seq: T_ }, batch.targets));
  const want = new Float64Array(2 * rows);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < T_; t++) {
      want[r] += w[r * T_ + t]! * lp.data[r * T_ + t]!;
      want[rows + r] += lp.data[r * T_ + t]!;
    }
  }
  // Padded, padding-free, and share_prompt's tree (the default).
  for (const [paddingFree, sharePrompt] of [[false, false], [true, false], [false, true]] as const) {
    const sq = new Float32Array(rows * T_);
    const got = T.noGrad(() => sequenceLogps(model, batch, paddingFree, { tokenWeights: w, alsoUnweighted: true, logSumSqProbs: sq, sharePrompt }));
    assert.equal(got.size, 2 * rows);
    for (let i = 0; i < 2 * rows; i++) close(got.data[i]!, want[i]!, 1e-5, `padding_free ${paddingFree} share_prompt ${sharePrompt} sum ${i}`);
    // log Σ_v p_v² ≤ max log p_v ≤ 0 and ≥ log(1/V), for every scored position.
    for (let i = 0; i < rows * T_; i++) {
      if (batch.targets[i]! < 0) continue;
      assert.ok(sq[i]! <= 1e-6 && sq[i]! >= -Math.log(model.config.vocabSize) - 1e-4, `logSumSq ${sq[i]}`);
    }
  }
});

test('lmHeadLogprobs logSumSqProbs equals logsumexp(2z) − 2·logsumexp(z) from the full logits', () => {
  const rnd = mulberry32(3);
  const N = 5, d = 4, V = 7;
  const h = T.tensor(Float32Array.from({ length: N * d }, () => rnd() * 2 - 1), [N, d]);
  const W = T.tensor(Float32Array.from({ length: V * d }, () => rnd() * 4 - 2), [V, d]);
  const targets = Int32Array.from([0, -1, 3, 6, 2]);
  const sq = new Float32Array(N);
  T.noGrad(() => T.lmHeadLogprobs(h, W, targets, { logSumSqProbs: sq }));
  for (let i = 0; i < N; i++) {
    if (targets[i]! < 0) {
      assert.equal(sq[i], 0);
      continue;
    }
    const z = Array.from({ length: V }, (_, v) => { let s = 0; for (let k = 0; k < d; k++) s += h.data[i * d + k]! * W.data[v * d + k]!; return s; });
    const lse = (a: number[]) => { const m = Math.max(...a); return m + Math.log(a.reduce((s, x) => s + Math.exp(x - m), 0)); };
    close(sq[i]!, lse(z.map((x) => 2 * x)) - 2 * lse(z), 1e-5, `row ${i}`);
  }
});

test('TR-DPO: the reference moves to α·policy + (1 − α)·reference every ref_model_sync_steps, and resume restores it', async () => {
  const base = {
    learning_rate: 5e-3, beta: 0.1, per_device_train_batch_size: 8, max_length: 64, logging_steps: 1, seed: 3,
    lr_scheduler_type: 'constant', max_steps: 4, save_steps: 2, sync_ref_model: true, ref_model_sync_steps: 2, ref_model_mixup_alpha: 0.6,
  };
  const outA = mkdtempSync(join(tmpdir(), 'trdpo-a-'));
  const a = await runDpo({ model: modelDir, data: [trainFile], outputDir: outA, quiet: true, config: parseDpoConfig(base) });
  // checkpoint-2: the sync after step 2 ran before the save. ref = fround(0.6·policy₂ + 0.4·initial).
  const initial = readSafetensors(join(modelDir, 'model.safetensors'));
  const pol2 = readSafetensors(join(outA, 'checkpoint-2', 'weights.safetensors'));
  const ref2 = readSafetensors(join(outA, 'checkpoint-2', 'ref_model.safetensors'));
  let changed = 0;
  for (const [name, r] of ref2) {
    const p = pol2.get(name)!, i0 = initial.get(name)!;
    for (let k = 0; k < r.data.length; k += 7) {
      assert.equal(r.data[k], Math.fround(0.6 * p.data[k]! + 0.4 * i0.data[k]!), `${name}[${k}]`);
      if (r.data[k] !== i0.data[k]) changed++;
    }
  }
  assert.ok(changed > 0, 'the reference changed (TRL test_train_with_sync_ref_model)');
  // Without the sync the reference stays put: the losses after the first sync differ.
  const noSync = await runDpo({ model: modelDir, data: [trainFile], outputDir: mkdtempSync(join(tmpdir(), 'trdpo-n-')), quiet: true, config: parseDpoConfig({ ...base, sync_ref_model: false, ref_model_sync_steps: 512, ref_model_mixup_alpha: 0.6 }) });
  assert.deepEqual(noSync.history.slice(0, 2).map((h) => h.loss), a.history.slice(0, 2).map((h) => h.loss));
  assert.notDeepEqual(noSync.history.slice(2).map((h) => h.loss), a.history.slice(2).map((h) => h.loss));
  // Killed after step 2 and resumed: bit-identical to the uninterrupted run.
  const outB = mkdtempSync(join(tmpdir(), 'trdpo-b-'));
  await runDpo({ model: modelDir, data: [trainFile], outputDir: outB, quiet: true, stopAfterSteps: 2, config: parseDpoConfig(base) });
  const b = await runDpo({ model: modelDir, data: [trainFile], outputDir: outB, quiet: true, resume: true, config: parseDpoConfig(base) });
  // (A resumed run's history is the whole run's: metrics.jsonl up to the checkpoint is read back.)
  assert.deepEqual(b.history.map((h) => h.loss), a.history.map((h) => h.loss));
  // The soft update itself.
  const { model: m1 } = await loadModelAndTokenizer(modelDir);
  const { model: m2 } = await loadModelAndTokenizer(modelDir);
  for (const t of m2.parameters().values()) t.data.fill(1);
  mixReferenceToward(m1, m2, 0.25);
  const [name, t] = [...m1.parameters()][0]!;
  assert.equal(t.data[0], Math.fround(0.25 + 0.75 * initial.get(name)!.data[0]!));
});

test('WPO, LD-DPO and f-DPO train end to end (finite, and different from plain DPO)', async () => {
  const base = { learning_rate: 5e-3, beta: 0.1, per_device_train_batch_size: 8, max_length: 64, logging_steps: 1, seed: 3, max_steps: 2, save_steps: 0 };
  const run = async (extra: Record<string, unknown>) =>
    (await runDpo({ model: modelDir, data: [trainFile], outputDir: mkdtempSync(join(tmpdir(), 'var-')), quiet: true, config: parseDpoConfig({ ...base, ...extra }) })).history;
  const plain = await run({});
  for (const extra of [{ use_weighting: true }, { ld_alpha: 0.5 }, { ld_alpha: 0.5, loss_type: ['sigmoid', 'sft'], loss_weights: [1, 0.2] }, { f_divergence_type: 'js_divergence' }, { loss_type: 'sigmoid_norm' }]) {
    const h = await run(extra);
    assert.ok(h.every((r) => Number.isFinite(r.loss!)), JSON.stringify(extra));
    assert.notEqual(h[0]!.loss, plain[0]!.loss, JSON.stringify(extra));
    if ('use_weighting' in extra) assert.ok(h[0]!['wpo/weight']! > 0);
  }
  // ld_alpha 1 is plain DPO (TRL: "ld_alpha=1.0 applies no weighting").
  const ld1 = await run({ ld_alpha: 1 });
  for (let i = 0; i < plain.length; i++) close(ld1[i]!.loss!, plain[i]!.loss!, 1e-5, `ld_alpha 1 step ${i}`);
});

test('TRL TestDPOTrainer.test_train_loss_types: every v1.9.0 loss type trains (parameters change)', async () => {
  // TRL parametrizes over its loss types with learning_rate 0.1 (label_smoothing 1e-3 for exo_pair)
  // and checks that every parameter changed; aot_unpaired is spelled aot_pair here (same loss).
  const types = ['sigmoid', 'hinge', 'ipo', 'exo_pair', 'nca_pair', 'robust', 'bco_pair', 'sppo_hard', 'aot', 'aot_pair', 'apo_zero', 'apo_down', 'discopop', 'sft', 'sigmoid_norm'];
  const initial = readSafetensors(join(modelDir, 'model.safetensors'));
  for (const loss_type of types) {
    const out = mkdtempSync(join(tmpdir(), `lt-${loss_type}-`));
    await runDpo({
      model: modelDir, data: [trainFile], outputDir: out, quiet: true,
      config: parseDpoConfig({ loss_type, label_smoothing: loss_type === 'exo_pair' ? 1e-3 : 0, learning_rate: 0.1, max_steps: 1, max_length: 64, save_steps: 0 }),
    });
    const after = readSafetensors(join(out, 'model.safetensors'));
    for (const [name, w] of initial) {
      const a = after.get(name)!;
      assert.ok(a.data.some((v, i) => v !== w.data[i]), `${loss_type}: parameter ${name} has not changed`);
    }
  }
});

test('disable_dropout (TRL default true) turns LoRA dropout off; false keeps it', async () => {
  const base = { learning_rate: 5e-3, per_device_train_batch_size: 8, max_length: 64, logging_steps: 1, seed: 3, max_steps: 2, save_steps: 0, use_peft: true, lora_r: 4 };
  const run = async (extra: Record<string, unknown>) =>
    (await runDpo({ model: modelDir, data: [trainFile], outputDir: mkdtempSync(join(tmpdir(), 'drop-')), quiet: true, config: parseDpoConfig({ ...base, ...extra }) })).history.map((h) => h.loss);
  const off = await run({ lora_dropout: 0.5 });
  assert.deepEqual(off, await run({ lora_dropout: 0 }), 'disable_dropout: true trains as if lora_dropout were 0');
  assert.notDeepEqual(await run({ lora_dropout: 0.5, disable_dropout: false }), off, 'disable_dropout: false applies lora_dropout');
});

test('precompute_ref_batch_size: the reference pass runs in batches of that size (same values up to float rounding, own cache entry)', async () => {
  const base = { learning_rate: 5e-3, per_device_train_batch_size: 8, max_length: 64, logging_steps: 1, seed: 3, max_steps: 2, save_steps: 0, precompute_ref_log_probs: true };
  const cacheDir = mkdtempSync(join(tmpdir(), 'prb-cache-'));
  const run = (extra: Record<string, unknown>) =>
    runDpo({ model: modelDir, data: [trainFile], outputDir: mkdtempSync(join(tmpdir(), 'prb-')), cacheDir, quiet: true, config: parseDpoConfig({ ...base, ...extra }) });
  const a = await run({});
  const b = await run({ precompute_ref_batch_size: 3 });
  assert.equal(b.refCacheHit, false, 'a different batch size is a different cache entry');
  for (let i = 0; i < a.history.length; i++) close(b.history[i]!.loss!, a.history[i]!.loss!, 1e-5, `step ${i}`);
});
