// GRPO (Shao et al. 2024, "DeepSeekMath", TRL GRPOTrainer semantics) and RLOO (Ahmadian et al.
// 2024, TRL RLOOTrainer) on the shared rollout engine: per update, prompts × num_generations
// completions from the KV-cache sampler, rewards from reward functions (built-in, JS module or a
// trained reward model) with reward_weights, group-relative advantages (GRPO) or leave-one-out
// baselines (RLOO), and the clipped policy loss of the chosen loss_type, with an optional KL
// penalty to the frozen reference (beta). No value model.

import { createHash } from 'node:crypto';
import * as T from '../tensor/index.js';
import { grpoAdvantages, grpoLoss, meanStd, rlooAdvantages, rlooLoss, type GrpoLossType, type ScaleRewards } from '../losses/rl.js';
import type { GrpoConfig } from './rl-config.js';
import { loadRewardFunction, type RewardFunction } from './rewards.js';
import {
  completionTokenLogprobs, completionTokenLogprobValues, frozenReference, loadPrompts, mean, runRlLoop, sampleRollout, takeRows, type RlLoopResult, type RlRunOptions,
} from './rollout.js';
import { fingerprintSettings, loadTrainable, loopConfig, saveTrainedModel } from './setup.js';

/** The options of the GRPO trainer. */
export type GrpoRunOptions = RlRunOptions<GrpoConfig>;

interface GrpoRollout {
  promptIds: number[][];
  completionIds: number[][];
  cols: number;
  mask: Float64Array;
  advantages: Float64Array;
  old: Float64Array | null;
  ref: Float64Array | null;
  /** Active completion tokens of the whole rollout (dapo/cispo normalizer). */
  activeTokens: number;
}

/**
 * The loss mask [rows, cols] of a rollout: 1 on each completion's tokens (its stop token
 * included); with maskTruncated (TRL mask_truncated_completions) a completion that ran to the
 * length limit without a stop token is left out entirely. active = the mask's sum.
 */
export function completionMask(completionIds: readonly (readonly number[])[], stopped: readonly boolean[], cols: number, maskTruncated: boolean): { mask: Float64Array; active: number } {
  const mask = new Float64Array(completionIds.length * cols);
  let active = 0;
  completionIds.forEach((c, r) => {
    if (maskTruncated && !stopped[r]) return;
    for (let t = 0; t < c.length; t++) {
      mask[r * cols + t] = 1;
      active++;
    }
  });
  return { mask, active };
}

export function scaleRewardsOption(v: GrpoConfig['scale_rewards']): ScaleRewards {
  return v === true ? 'group' : v === false ? 'none' : v;
}

export async function runGrpo(opts: GrpoRunOptions): Promise<RlLoopResult> {
  const cfg = opts.config;
  const { loaded, lora } = await loadTrainable(opts.model, opts.tokenizer, cfg);
  const { model: policy, tokenizer } = loaded;
  policy.ctx.rng = null; // no dropout in RL (TRL disables it): ratios compare like with like
  const params = policy.trainableParameters();
  const prompts = await loadPrompts(opts.prompts, tokenizer, cfg.prompt_column, cfg.max_prompt_length);
  const rewardFns = opts.rewardFunctions ?? await Promise.all(cfg.reward_funcs.map((s) => loadRewardFunction(s, policy.config.vocabSize)));
  const weights = cfg.reward_weights ?? rewardFns.map(() => 1);
  const G = cfg.num_generations;
  const perUpdate = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps;
  const promptsPerUpdate = perUpdate / G;
  const rloo = cfg.rloo;
  const needRef = cfg.beta !== 0;
  const reference = needRef ? frozenReference(policy, lora !== null, opts.model) : null;
  const padId = tokenizer.padId;
  const stopId = tokenizer.eosId;
  const temperature = cfg.temperature;
  const lossOpts = {
    lossType: cfg.loss_type as GrpoLossType, beta: cfg.beta, epsilon: cfg.epsilon, epsilonHigh: cfg.epsilon_high, delta: cfg.delta,
    importanceSamplingLevel: cfg.importance_sampling_level, maxCompletionLength: cfg.max_completion_length,
    sapoTemperaturePos: cfg.sapo_temperature_pos, sapoTemperatureNeg: cfg.sapo_temperature_neg,
  };
  if (!opts.quiet) {
    process.stderr.write(`${rloo ? 'rloo' : 'grpo'}: ${prompts.length} prompts, ${promptsPerUpdate} × ${G} completions per update; rewards ${rewardFns.map((f) => f.name).join(', ')}\n`);
  }

  const noGradLogps = (m: Parameters<typeof completionTokenLogprobs>[0], p: number[][], c: number[][], cols: number): Float64Array =>
    completionTokenLogprobValues(m, p, c, cols, padId, temperature);

  const fingerprint = createHash('sha256');
  fingerprint.update(`dpo-ts ${rloo ? 'rloo' : 'grpo'} v1`);
  fingerprint.update(fingerprintSettings(cfg));
  for (const p of prompts) fingerprint.update(Int32Array.from([...p.ids, -1]));
  fingerprint.update(`${policy.config.architecture}:${params.length}:${rewardFns.map((f) => f.name).join(',')}`);

  return runRlLoop<GrpoRollout>({
    params,
    numPrompts: prompts.length,
    promptsPerUpdate,
    rollout: async (idx, seed) => {
      const rowsPrompts = idx.flatMap((i) => Array.from({ length: G }, () => prompts[i]!.ids));
      const ro = sampleRollout(policy, tokenizer, rowsPrompts, {
        maxNewTokens: cfg.max_completion_length, temperature, topK: cfg.top_k, topP: cfg.top_p, seed, stopId,
      });
      const N = rowsPrompts.length, C = ro.cols, F = rewardFns.length;
      const perFunc = new Float64Array(N * F);
      const metrics: Record<string, number> = {};
      const texts = idx.flatMap((i) => Array.from({ length: G }, () => prompts[i]!.text));
      for (let f = 0; f < F; f++) {
        const r = await rewardFns[f]!.score({ prompts: texts, completions: ro.texts, promptIds: ro.promptIds, completionIds: ro.completionIds });
        for (let i = 0; i < N; i++) perFunc[i * F + f] = r[i]!;
        metrics[`rewards/${rewardFns[f]!.name}/mean`] = mean(r);
        metrics[`rewards/${rewardFns[f]!.name}/std`] = meanStd(r).std;
      }
      const { mask, active } = completionMask(ro.completionIds, ro.stopped, C, cfg.mask_truncated_completions);
      const old = cfg.num_iterations > 1 || (rloo && cfg.beta !== 0) ? noGradLogps(policy, ro.promptIds, ro.completionIds, C) : null;
      const ref = reference ? reference.run((m) => noGradLogps(m, ro.promptIds, ro.completionIds, C)) : null;
      let advantages: Float64Array, rewards: Float64Array;
      if (rloo) {
        const summed = Float64Array.from({ length: N }, (_, i) => {
          let s = 0;
          for (let f = 0; f < F; f++) s += weights[f]! * perFunc[i * F + f]!;
          return s;
        });
        ({ advantages, rewards } = rlooAdvantages(summed, G, { beta: cfg.beta, old: old ?? undefined, ref: ref ?? undefined, mask, cols: C, normalize: cfg.normalize_advantages }));
      } else {
        ({ advantages, rewards } = grpoAdvantages(perFunc, F, weights, G, scaleRewardsOption(cfg.scale_rewards), cfg.multi_objective_aggregation));
      }
      // TRL's logged reward is the weighted sum before normalization (GDPO aggregation aside).
      const summedRaw = Float64Array.from({ length: N }, (_, i) => {
        let s = 0;
        for (let f = 0; f < F; f++) s += weights[f]! * perFunc[i * F + f]!;
        return s;
      });
      metrics.reward = mean(summedRaw);
      let stdSum = 0, zeroStd = 0;
      for (let g = 0; g < N / G; g++) {
        const s = meanStd(summedRaw.subarray(g * G, (g + 1) * G)).std;
        stdSum += s;
        if (s === 0) zeroStd++;
      }
      metrics.reward_std = stdSum / (N / G);
      metrics.frac_reward_zero_std = zeroStd / (N / G);
      if (rloo) metrics['rewards/after_kl'] = mean(rewards);
      const lengths = ro.completionIds.map((c) => c.length);
      metrics['completions/mean_length'] = mean(lengths);
      metrics['completions/clipped_ratio'] = ro.stopped.filter((s) => !s).length / N;
      let tokens = 0;
      for (let r = 0; r < N; r++) tokens += ro.promptIds[r]!.length + lengths[r]!;
      return {
        data: { promptIds: ro.promptIds, completionIds: ro.completionIds, cols: C, mask, advantages, old, ref, activeTokens: active },
        rows: N, metrics, tokens,
      };
    },
    microBatch: (d, rows, gradScale) => {
      const C = d.cols, R = rows.length;
      const lp = completionTokenLogprobs(policy, rows.map((r) => d.promptIds[r]!), rows.map((r) => d.completionIds[r]!), C, padId, temperature);
      const logp = lp.values;
      const mask = takeRows(d.mask, rows, C);
      const old = d.old ? takeRows(d.old, rows, C) : logp; // on-policy: the ratio is 1 (its gradient is not)
      const adv = Float64Array.from(rows, (r) => d.advantages[r]!);
      const out: Record<string, number> = {};
      let grad: Float64Array, scale = gradScale, loss: number;
      if (rloo) {
        const res = rlooLoss(logp, old, mask, adv, R, C, cfg.epsilon, cfg.epsilon_high);
        grad = res.grad;
        loss = res.loss;
        out['clip_ratio/region_mean'] = res.clipfrac;
      } else {
        const ref = d.ref ? takeRows(d.ref, rows, C) : null;
        const res = grpoLoss(logp, old, ref, mask, adv, R, C, lossOpts);
        grad = res.grad;
        loss = res.loss;
        if (cfg.beta !== 0) out.kl = res.meanKl;
        out['clip_ratio/low_mean'] = res.clipRatio.lowMean;
        out['clip_ratio/high_mean'] = res.clipRatio.highMean;
        out['clip_ratio/region_mean'] = res.clipRatio.regionMean;
        if (cfg.loss_type === 'dapo' || cfg.loss_type === 'cispo') {
          // TRL normalizes these by the active tokens of the whole accumulated batch.
          let micro = 0;
          for (let i = 0; i < mask.length; i++) micro += mask[i]!;
          scale = micro / Math.max(1, d.activeTokens);
        }
      }
      out.loss = loss * scale / gradScale;
      const g = lp.scatter(grad.map((x) => x * scale));
      // The tape's root is released now, not left to the GC (once a step).
      T.backward(lp.tensor, g, { releaseRoot: true });
      return out;
    },
    saveFinal: (dir) => saveTrainedModel(dir, { ...loaded, lora }, { dtype: cfg.save_dtype }),
  }, {
    loop: loopConfig(cfg, opts, fingerprint.digest('hex')),
    epochs: cfg.num_iterations,
    numMiniBatches: 1,
    microBatchSize: cfg.per_device_train_batch_size,
    barKeys: ['reward', 'loss'],
  });
}
