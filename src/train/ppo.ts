// PPO for language models with TRL's PPOTrainer semantics (the "PPOv2" design, trl/experimental/ppo
// in TRL v1.9.0): per update, one completion per prompt from the KV-cache sampler (response_length,
// temperature, stop_token / stop_token_id), the score of a reward model or reward function at the
// end (missing_eos_penalty), per-token reward −kl_coef·KL(π‖π_ref) (k1 or k3) with the score
// added after the last token, optional reward whitening, GAE (gamma, lam) with a value model,
// whitened advantages, then num_ppo_epochs passes of num_mini_batches shuffled mini-batches with
// the clipped policy loss + vf_coef × the clipped value loss.
//
// Value model: value_model_path, else a copy of the reward model (a trained RM in reward_funcs),
// else the policy's starting weights with a fresh head; with use_peft and no value_model_path the
// value head sits on the policy's own body (one base in memory, the adapters shared).

import { createHash } from 'node:crypto';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { gae, klEstimate, ppoMasks, ppoPolicyLoss, ppoRewards, ppoValueLoss, whitenAdvantages, whitenRewards } from '../losses/rl.js';
import { SequenceClassifier } from '../models/reward.js';
import { loadSequenceClassifier } from '../io/reward-dir.js';
import type { PpoConfig } from './rl-config.js';
import { loadRewardFunction, type RewardFunction } from './rewards.js';
import { completionTokenLogprobs, completionTokenLogprobValues, frozenReference, loadPrompts, mean, runRlLoop, sampleRollout, takeRows, type RlLoopResult, type RlRunOptions } from './rollout.js';
import { fingerprintSettings, loadTrainable, loopConfig, saveTrainedModel } from './setup.js';

/** TRL's INVALID_LOGPROB: the log-prob written past a response's end (so its KL is 0). */
export const INVALID_LOGPROB = 1.0;

/** The options of the PPO trainer. */
export type PpoRunOptions = RlRunOptions<PpoConfig>;

interface PpoRollout {
  promptIds: number[][];
  completionIds: number[][];
  cols: number;
  logprobs: Float64Array;
  values: Float64Array;
  advantages: Float64Array;
  returns: Float64Array;
  valid: Float64Array;
  validP1: Float64Array;
}

/** TRL's sequence_lengths: index of the last response token before the first pad (−1 if it starts with one). */
export function responseSequenceLengths(completions: readonly (readonly number[])[], padId: number): Int32Array {
  return Int32Array.from(completions, (c) => {
    const i = c.indexOf(padId);
    return (i < 0 ? c.length : i) - 1;
  });
}

export async function runPpo(opts: PpoRunOptions): Promise<RlLoopResult> {
  const cfg = opts.config;
  const { loaded, lora } = await loadTrainable(opts.model, opts.tokenizer, cfg);
  const { model: policy, tokenizer } = loaded;
  policy.ctx.rng = null; // no dropout (TRL disables it for PPO)
  const prompts = await loadPrompts(opts.prompts, tokenizer, cfg.prompt_column, cfg.max_prompt_length);
  const rewardFns = opts.rewardFunctions ?? await Promise.all(cfg.reward_funcs.map((s) => loadRewardFunction(s, policy.config.vocabSize)));
  const weights = cfg.reward_weights ?? rewardFns.map(() => 1);
  const padId = tokenizer.padId;
  const stopId = cfg.stop_token_id ?? (cfg.stop_token === 'eos' ? tokenizer.eosId : null);
  const reference = frozenReference(policy, lora !== null, opts.model);

  // ---- value model ----
  let value: SequenceClassifier;
  let valueShared = false;
  const rmFn = rewardFns.find((f) => f.model);
  if (cfg.value_model_path) value = loadSequenceClassifier(cfg.value_model_path, { padTokenId: padId, seed: cfg.seed }).model;
  else if (lora) {
    value = SequenceClassifier.fromCausalLM(policy, padId, cfg.seed);
    valueShared = true;
  } else if (rmFn) value = loadSequenceClassifier(rmFn.name, { padTokenId: padId }).model;
  else value = loadSequenceClassifier(opts.model, { padTokenId: padId, seed: cfg.seed }).model;
  if (!valueShared) {
    for (const [name, t] of value.parameters()) {
      t.requiresGrad = true;
      t.name = `value_model.${name}`; // checkpoint names apart from the policy's
    }
    value.body.ctx.rng = null;
  }
  value.score.requiresGrad = true;
  const params = [...new Set<Tensor>([...policy.trainableParameters(), ...value.trainableParameters()])];
  const micro = cfg.per_device_train_batch_size;
  const promptsPerUpdate = micro * cfg.gradient_accumulation_steps * cfg.num_mini_batches;
  if (!opts.quiet) {
    process.stderr.write(
      `ppo: ${prompts.length} prompts, ${promptsPerUpdate} rollouts per update, ${cfg.num_ppo_epochs} epochs × ${cfg.num_mini_batches} mini-batches; ` +
      `rewards ${rewardFns.map((f) => f.name).join(', ')}; value model ${cfg.value_model_path ?? (valueShared ? 'shared body (LoRA)' : rmFn ? `copy of ${rmFn.name}` : `${opts.model} + fresh head`)}\n`,
    );
  }

  const valuePositions = (promptIds: readonly (readonly number[])[], completionIds: readonly (readonly number[])[], seq: number, C: number, seqLens: Int32Array): Int32Array => {
    const pos = new Int32Array(promptIds.length * C).fill(-1);
    promptIds.forEach((p, r) => {
      const last = Math.min(C - 1, seqLens[r]! + 1, completionIds[r]!.length);
      for (let t = 0; t <= last; t++) pos[r * C + t] = r * seq + p.length - 1 + t;
    });
    return pos;
  };

  const fingerprint = createHash('sha256');
  fingerprint.update('dpo-ts ppo v1');
  fingerprint.update(fingerprintSettings(cfg));
  for (const p of prompts) fingerprint.update(Int32Array.from([...p.ids, -1]));
  fingerprint.update(`${policy.config.architecture}:${params.length}:${rewardFns.map((f) => f.name).join(',')}:${valueShared}`);

  return runRlLoop<PpoRollout>({
    params,
    numPrompts: prompts.length,
    promptsPerUpdate,
    rollout: async (idx, seed) => {
      const rowPrompts = idx.map((i) => prompts[i]!.ids);
      const ro = sampleRollout(policy, tokenizer, rowPrompts, {
        maxNewTokens: cfg.response_length, temperature: cfg.temperature, topK: 0, topP: 1, seed, stopId,
      });
      const B = rowPrompts.length, C = ro.cols;
      const seqLens = responseSequenceLengths(ro.completionIds, padId);
      const { valid, validP1 } = ppoMasks(seqLens, C);
      const fwd = (m: Parameters<typeof completionTokenLogprobs>[0]): Float64Array =>
        completionTokenLogprobValues(m, ro.promptIds, ro.completionIds, C, padId, cfg.temperature);
      const logprobs = fwd(policy);
      const refLogprobs = reference.run(fwd);
      for (let i = 0; i < B * C; i++) {
        if (!valid[i]) {
          logprobs[i] = INVALID_LOGPROB;
          refLogprobs[i] = INVALID_LOGPROB;
        }
      }
      const values = T.noGrad(() => {
        const seq = Math.max(...ro.promptIds.map((p, r) => p.length + ro.completionIds[r]!.length));
        const ids = new Int32Array(B * seq).fill(padId);
        ro.promptIds.forEach((p, r) => {
          ids.set(p, r * seq);
          ids.set(ro.completionIds[r]!, r * seq + p.length);
        });
        const v = value.values({ ids, batch: B, seq });  // (no tape: its intermediates go back at once)
        const pos = valuePositions(ro.promptIds, ro.completionIds, seq, C, seqLens);
        const out = Float64Array.from(pos, (p) => (p >= 0 ? v.data[p]! : 0));
        T.disposeWithBase(v);
        return out;
      });
      // scores
      const texts = idx.map((i) => prompts[i]!.text);
      const scores = new Float64Array(B);
      const metrics: Record<string, number> = {};
      for (let f = 0; f < rewardFns.length; f++) {
        const r = await rewardFns[f]!.score({ prompts: texts, completions: ro.texts, promptIds: ro.promptIds, completionIds: ro.completionIds });
        for (let b = 0; b < B; b++) scores[b] += weights[f]! * r[b]!;
        if (rewardFns.length > 1) metrics[`objective/scores/${rewardFns[f]!.name}`] = mean(r);
      }
      const eos = tokenizer.eosId;
      let eosCount = 0;
      for (let b = 0; b < B; b++) {
        const hasEos = eos !== null && ro.completionIds[b]!.includes(eos);
        if (hasEos) eosCount++;
        if (!hasEos && cfg.missing_eos_penalty !== null) scores[b] -= cfg.missing_eos_penalty;
      }
      const rw = ppoRewards(logprobs, refLogprobs, scores, seqLens, C, cfg.kl_coef, cfg.kl_estimator);
      const rewards = cfg.whiten_rewards ? whitenRewards(rw.rewards, validP1) : rw.rewards;
      const g = gae(rewards, values, B, C, cfg.gamma, cfg.lam);
      const advantages = whitenAdvantages(g.advantages, valid);
      // metrics (TRL's names; per-sequence sums averaged over the batch)
      const kl = klEstimate(logprobs, refLogprobs, cfg.kl_estimator);
      let klSum = 0, nsSum = 0, entSum = 0;
      for (let i = 0; i < B * C; i++) {
        klSum += kl[i]!;
        nsSum += rw.nonScore[i]!;
        if (valid[i]) entSum -= logprobs[i]!;
      }
      metrics['objective/kl'] = klSum / B;
      metrics['objective/entropy'] = entSum / B;
      metrics['objective/non_score_reward'] = nsSum / B;
      metrics['objective/scores'] = mean(scores);
      metrics['objective/rlhf_reward'] = nsSum / B + mean(scores);
      metrics['val/num_eos_tokens'] = eosCount;
      metrics['completions/mean_length'] = mean(ro.completionIds.map((c) => c.length));
      let tokens = 0;
      for (let b = 0; b < B; b++) tokens += ro.promptIds[b]!.length + ro.completionIds[b]!.length;
      return {
        data: { promptIds: ro.promptIds, completionIds: ro.completionIds, cols: C, logprobs, values, advantages, returns: g.returns, valid, validP1 },
        rows: B, metrics, tokens,
      };
    },
    microBatch: (d, rows, gradScale) => {
      const C = d.cols;
      const pIds = rows.map((r) => d.promptIds[r]!), cIds = rows.map((r) => d.completionIds[r]!);
      const lp = completionTokenLogprobs(policy, pIds, cIds, C, padId, cfg.temperature);
      const valid = takeRows(d.valid, rows, C), validP1 = takeRows(d.validP1, rows, C);
      const newLp = Float64Array.from(lp.values, (v, i) => (valid[i] ? v : INVALID_LOGPROB));
      const pg = ppoPolicyLoss(newLp, takeRows(d.logprobs, rows, C), takeRows(d.advantages, rows, C), valid, cfg.cliprange);
      // The tape roots are released now, not left to the GC (twice a micro-batch).
      T.backward(lp.tensor, lp.scatter(pg.grad.map((x) => x * gradScale)), { releaseRoot: true });
      const seq = lp.block.seq;
      const seqLens = Int32Array.from(rows, (_, i) => {
        let s = -1;
        for (let t = 0; t < C; t++) if (valid[i * C + t]) s = t;
        return s;
      });
      const vt = value.values(lp.block);
      const pos = valuePositions(pIds, cIds, seq, C, seqLens);
      const vpred = Float64Array.from(pos, (p) => (p >= 0 ? vt.data[p]! : 0));
      const vf = ppoValueLoss(vpred, takeRows(d.values, rows, C), takeRows(d.returns, rows, C), validP1, cfg.cliprange_value);
      const gv = new Float32Array(vt.size);
      pos.forEach((p, i) => {
        if (p >= 0) gv[p] = vf.grad[i]! * cfg.vf_coef * gradScale;
      });
      T.backward(vt, gv, { releaseRoot: true });
      return {
        loss: pg.loss + cfg.vf_coef * vf.loss,
        'policy/approxkl_avg': pg.approxKl,
        'policy/clipfrac_avg': pg.clipfrac,
        'loss/policy_avg': pg.loss,
        'loss/value_avg': vf.loss,
        'val/clipfrac_avg': vf.clipfrac,
        'val/ratio': pg.ratioMean,
      };
    },
    saveFinal: (dir) => saveTrainedModel(dir, { ...loaded, lora }, { dtype: cfg.save_dtype }),
  }, {
    loop: loopConfig(cfg, opts, fingerprint.digest('hex')),
    epochs: cfg.num_ppo_epochs,
    numMiniBatches: cfg.num_mini_batches,
    microBatchSize: micro,
    barKeys: ['objective/scores', 'objective/kl'],
  });
}
