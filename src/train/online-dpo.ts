// Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"; TRL
// OnlineDPOTrainer semantics, v1.9.0): per step, two completions per prompt from the current
// policy (KV-cache sampler, max_new_tokens, temperature, top_k, top_p), judged by reward functions
// / a reward model (higher score wins, the first on a tie; missing_eos_penalty is subtracted from
// the score of a completion without EOS) or by a pairwise judge, then the DPO loss (any loss_type of
// src/losses) on that fresh pair against the frozen reference. Log-probs are taken at temperature
// 1, summed over the completion tokens (the EOS included). Metrics carry TRL's names:
// objective/kl (mean Σ_t log π − log π_ref per completion), objective/entropy (mean −Σ_t log π),
// objective/non_score_reward (−β·kl), objective/rlhf_reward (score + non_score_reward),
// objective/scores, objective/scores_margin, rewards/{chosen,rejected,margins,accuracies},
// logps/{chosen,rejected}, val/contain_eos_token, beta. Runs on the shared rollout engine
// (rollout.ts): checkpoints, metrics.jsonl and bit-identical --resume.

import { createHash } from 'node:crypto';
import { z } from 'zod';
import * as T from '../tensor/index.js';
import { computePreferenceLoss, needsLossState, resolveLossType } from '../losses/index.js';
import { commonTrainingOptions, DpoConfigSchema, validateConfig } from './config.js';
import { onlineOptions } from './rl-config.js';
import { lossParams } from './dpo.js';
import { loadRewardFunction } from './rewards.js';
import { judgeScores, loadSampleJudge, type SampleJudge } from './pair-judge.js';
import { completionTokenLogprobs, frozenReference, loadPrompts, mean, runRlLoop, sampleRollout, type RlLoopResult } from './rollout.js';
import { fingerprintSettings, loadTrainable, loopConfig, resolveModel, saveTrainedModel, type ModelInput, type TokenizerInput } from './setup.js';

const positiveInt = z.number().int().positive();
const d = DpoConfigSchema.shape;

/** TRL v1.9.0 OnlineDPOConfig's options (with DPOConfig's loss options for the other loss types). */
export const OnlineDpoConfigSchema = z.object({
  ...commonTrainingOptions,
  ...onlineOptions,
  learning_rate: z.number().positive().default(5e-7),
  max_new_tokens: positiveInt.default(64),
  /** Prompt + completion tokens at most: prompts are cut from the left to leave max_new_tokens. */
  max_length: positiveInt.default(512),
  temperature: z.number().positive().default(0.9),
  /** Subtracted from the score of a completion that did not end with EOS (scoring judges). */
  missing_eos_penalty: z.number().nullable().default(null),
  /**
   * Pairs whose two completions score the same (or a pairwise judge calls a tie): "first_wins"
   * trains on them with the first as chosen (TRL); "skip" leaves them out of the loss, which a
   * coarse reward (a word-list score that is 0 for most texts) needs, since its ties carry no preference.
   */
  tie_pairs: z.enum(['first_wins', 'skip']).default('first_wins'),
  /** A pairwise judge module (file.mjs[#export] exporting judge(prompt, a, b)); replaces reward_funcs. */
  judge: z.string().nullable().default(null),
  disable_dropout: z.boolean().default(true),
  beta: d.beta, loss_type: d.loss_type, loss_weights: d.loss_weights, label_smoothing: d.label_smoothing,
  rpo_alpha: d.rpo_alpha, cpo_alpha: d.cpo_alpha, simpo_gamma: d.simpo_gamma, discopop_tau: d.discopop_tau,
  f_divergence_type: d.f_divergence_type, f_alpha_divergence_coef: d.f_alpha_divergence_coef,
}).strict();

export type OnlineDpoConfig = z.infer<typeof OnlineDpoConfigSchema>;
export type OnlineDpoConfigInput = z.input<typeof OnlineDpoConfigSchema>;
export const onlineDpoOptionNames = Object.keys(OnlineDpoConfigSchema.shape);

export function parseOnlineDpoConfig(file: Record<string, unknown>, overrides: Record<string, unknown> = {}, source = 'config'): OnlineDpoConfig {
  const cfg = validateConfig(OnlineDpoConfigSchema, { ...file, ...overrides }, source);
  const types = (typeof cfg.loss_type === 'string' ? [cfg.loss_type] : cfg.loss_type).map((t) => resolveLossType(t));
  if (needsLossState(types, 'bcoState')) throw new Error(`${source}: loss_type ${types.join(', ')}: a loss that keeps a running state across offline batches (bco_pair) is not supported online (use sigmoid, ipo, ...)`);
  if (cfg.loss_weights && cfg.loss_weights.length !== types.length) throw new Error(`${source}: loss_weights has ${cfg.loss_weights.length} entries for ${types.length} loss types`);
  if (cfg.reward_weights && cfg.reward_weights.length !== cfg.reward_funcs.length) {
    throw new Error(`${source}: reward_weights has ${cfg.reward_weights.length} entries for ${cfg.reward_funcs.length} reward_funcs`);
  }
  if (cfg.max_new_tokens >= cfg.max_length) throw new Error(`${source}: max_new_tokens (${cfg.max_new_tokens}) must be below max_length (${cfg.max_length}) to leave room for the prompt`);
  return cfg;
}

export interface OnlineDpoRunOptions {
  /** Starting policy (a path or a model in memory, trained in place). */
  model: ModelInput;
  tokenizer?: TokenizerInput | undefined;
  /** Reference model (default: a frozen copy of the starting policy; with LoRA the base). */
  ref?: ModelInput | undefined;
  prompts: string[];
  config: OnlineDpoConfigInput;
  outputDir: string;
  resume?: boolean | string | undefined;
  quiet?: boolean | undefined;
  stopAfterSteps?: number | undefined;
  onLog?: ((rec: Record<string, number>) => void) | undefined;
  /** A judge given directly (library use), instead of config.judge / config.reward_funcs. */
  judge?: SampleJudge | undefined;
  /** Called with each step's judged pairs (texts and token ids; score null with a pairwise judge). */
  onPairs?: ((pairs: OnlinePair[]) => void) | undefined;
}

/** One fresh pair of a step, as judged. */
export interface OnlinePair {
  prompt: string;
  promptIds: number[];
  chosen: string;
  rejected: string;
  chosenIds: number[];
  rejectedIds: number[];
  chosenScore: number | null;
  rejectedScore: number | null;
}

interface OnlinePairs {
  promptIds: number[][];
  completionIds: number[][];
  /** Per pair: rows of the chosen and rejected completion. */
  chosen: number[];
  rejected: number[];
  refSums: Float64Array;
  /** Per row score (NaN with a pairwise judge). */
  scores: Float64Array | null;
  /** Per pair: a tie left out of the loss (tie_pairs: skip). */
  skip: boolean[];
  cols: number;
}

export async function runOnlineDpo(opts: OnlineDpoRunOptions): Promise<RlLoopResult> {
  const cfg = parseOnlineDpoConfig(opts.config as Record<string, unknown>);
  const { loaded, lora } = await loadTrainable(opts.model, opts.tokenizer, cfg);
  const { model: policy, tokenizer } = loaded;
  policy.ctx.rng = null; // dropout off (TRL disable_dropout); LoRA dropout would need an RNG stream
  const params = policy.trainableParameters();
  const room = cfg.max_length - cfg.max_new_tokens;
  const prompts = await loadPrompts(opts.prompts, tokenizer, cfg.prompt_column, Math.min(room, cfg.max_prompt_length ?? room));
  const vocab = policy.config.vocabSize;
  const judge: SampleJudge | null = opts.judge ?? (cfg.judge !== null ? await loadSampleJudge(cfg.judge, vocab) : null);
  const rewardFns = judge ? [] : await Promise.all(cfg.reward_funcs.map((s) => loadRewardFunction(s, vocab)));
  const weights = cfg.reward_weights ?? rewardFns.map(() => 1);
  const judgeName = judge ? judge.name : rewardFns.map((f) => f.name).join('+');
  let reference: { run<X>(f: (ref: Parameters<typeof completionTokenLogprobs>[0]) => X): X };
  if (opts.ref !== undefined) {
    const r = (await resolveModel(opts.ref, opts.tokenizer ?? tokenizer, 'ref')).model;
    for (const p of r.parameters().values()) p.requiresGrad = false;
    reference = { run: (f) => f(r) };
  } else {
    reference = frozenReference(policy, lora !== null, typeof opts.model === 'string' ? opts.model : loaded.source);
  }
  const padId = tokenizer.padId;
  const stopId = tokenizer.eosId;
  const B = cfg.per_device_train_batch_size;
  const params_ = lossParams(cfg, undefined);
  if (!opts.quiet) process.stderr.write(`online dpo: ${prompts.length} prompts, ${B * cfg.gradient_accumulation_steps} × 2 completions per step; judge ${judgeName}\n`);

  const rowSums = (values: Float64Array, rows: number, cols: number): Float64Array => {
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) for (let t = 0; t < cols; t++) out[r] += values[r * cols + t]!;
    return out;
  };

  const fingerprint = createHash('sha256');
  fingerprint.update('dpo-ts online-dpo v1');
  fingerprint.update(fingerprintSettings(cfg));
  for (const p of prompts) fingerprint.update(Int32Array.from([...p.ids, -1]));
  fingerprint.update(`${policy.config.architecture}:${params.length}:${judgeName}`);

  return runRlLoop<OnlinePairs>({
    params,
    numPrompts: prompts.length,
    promptsPerUpdate: B * cfg.gradient_accumulation_steps,
    rollout: async (idx, seed) => {
      const n = idx.length;
      // TRL's layout: rows 0..n−1 the first completion of each prompt, rows n..2n−1 the second.
      const rowPrompts = [...idx, ...idx].map((i) => prompts[i]!.ids);
      const ro = sampleRollout(policy, tokenizer, rowPrompts, {
        maxNewTokens: cfg.max_new_tokens, temperature: cfg.temperature, topK: cfg.top_k, topP: cfg.top_p, seed, stopId,
      });
      const texts = [...idx, ...idx].map((i) => prompts[i]!.text);
      let scores: Float64Array | null = null;
      const firstWins: boolean[] = [];
      const tie: boolean[] = [];
      if (judge?.kind === 'pairwise') {
        for (let i = 0; i < n; i++) {
          const v = await judge.compare(texts[i]!, ro.texts[i]!, ro.texts[n + i]!);
          firstWins.push(v !== 'b');
          tie.push(v === 'tie');
        }
      } else {
        const input = { prompts: texts, completions: ro.texts, promptIds: ro.promptIds, completionIds: ro.completionIds };
        scores = new Float64Array(2 * n);
        if (judge) scores.set(await judgeScores(judge, input));
        else {
          for (let f = 0; f < rewardFns.length; f++) {
            const r = await rewardFns[f]!.score(input);
            for (let i = 0; i < 2 * n; i++) scores[i] += weights[f]! * r[i]!;
          }
        }
        if (cfg.missing_eos_penalty !== null) for (let i = 0; i < 2 * n; i++) if (!ro.stopped[i]) scores[i] -= cfg.missing_eos_penalty;
        for (let i = 0; i < n; i++) {
          firstWins.push(scores[i]! >= scores[n + i]!);
          tie.push(scores[i] === scores[n + i]);
        }
      }
      const chosen = firstWins.map((w, i) => (w ? i : n + i));
      const rejected = firstWins.map((w, i) => (w ? n + i : i));
      const refSums = reference.run((m) => T.noGrad(() => {
        const lp = completionTokenLogprobs(m, ro.promptIds, ro.completionIds, ro.cols, padId, 1);
        lp.tensor.dispose();
        return rowSums(lp.values, 2 * n, ro.cols);
      }));
      opts.onPairs?.(chosen.map((c, i) => ({
        prompt: texts[c]!, promptIds: ro.promptIds[c]!, chosen: ro.texts[c]!, rejected: ro.texts[rejected[i]!]!,
        chosenIds: ro.completionIds[c]!, rejectedIds: ro.completionIds[rejected[i]!]!,
        chosenScore: scores ? scores[c]! : null, rejectedScore: scores ? scores[rejected[i]!]! : null,
      })));
      const skip = tie.map((t) => t && cfg.tie_pairs === 'skip');
      const metrics: Record<string, number> = { 'val/contain_eos_token': ro.stopped.filter(Boolean).length / (2 * n), beta: cfg.beta };
      if (cfg.tie_pairs === 'skip') metrics.tie_pairs_skipped = skip.filter(Boolean).length / n;
      if (scores) {
        metrics['objective/scores'] = mean(scores);
        metrics['objective/scores_margin'] = mean(chosen.map((c, i) => scores![c]! - scores![rejected[i]!]!));
      }
      let tokens = 0;
      for (let r = 0; r < 2 * n; r++) tokens += ro.promptIds[r]!.length + ro.completionIds[r]!.length;
      return { data: { promptIds: ro.promptIds, completionIds: ro.completionIds, chosen, rejected, refSums, scores, skip, cols: ro.cols }, rows: n, metrics, tokens };
    },
    microBatch: (dt, all, gradScale) => {
      const pairs = all.filter((i) => !dt.skip[i]);
      const P = pairs.length;
      if (P === 0) return {}; // only ties: nothing to learn from this micro-batch
      const rows = [...pairs.map((i) => dt.chosen[i]!), ...pairs.map((i) => dt.rejected[i]!)];
      const C = Math.max(1, ...rows.map((r) => dt.completionIds[r]!.length));
      const lp = completionTokenLogprobs(policy, rows.map((r) => dt.promptIds[r]!), rows.map((r) => dt.completionIds[r]!), C, padId, 1);
      const sums = rowSums(lp.values, 2 * P, C);
      const ref = Float64Array.from(rows, (r) => dt.refSums[r]!);
      const lengths = rows.map((r) => dt.completionIds[r]!.length);
      const res = computePreferenceLoss(cfg.loss_type, {
        policyChosen: sums.slice(0, P), policyRejected: sums.slice(P), refChosen: ref.slice(0, P), refRejected: ref.slice(P),
        chosenTokens: lengths.slice(0, P), rejectedTokens: lengths.slice(P),
      }, params_);
      // ∂loss/∂(row sum) reaches every completion token of the row.
      const g = new Float64Array(2 * P * C);
      for (let r = 0; r < 2 * P; r++) {
        const gr = (r < P ? res.gradPolicyChosen[r]! : res.gradPolicyRejected[r - P]!) * gradScale;
        for (let t = 0; t < lengths[r]!; t++) g[r * C + t] = gr;
      }
      T.backward(lp.tensor, lp.scatter(g), { releaseRoot: true });
      const kl = Float64Array.from(sums, (s, r) => s - ref[r]!);
      const out: Record<string, number> = {
        loss: res.loss,
        'rewards/chosen': mean(res.chosenRewards), 'rewards/rejected': mean(res.rejectedRewards),
        'rewards/margins': mean(res.margins), 'rewards/accuracies': mean(res.rewardAccuracies),
        'logps/chosen': mean(sums.subarray(0, P)), 'logps/rejected': mean(sums.subarray(P)),
        'objective/kl': mean(kl), 'objective/entropy': -mean(sums), 'objective/non_score_reward': -cfg.beta * mean(kl),
      };
      if (dt.scores) out['objective/rlhf_reward'] = mean(Float64Array.from(rows, (r, k) => dt.scores![r]! - cfg.beta * kl[k]!));
      if (res.nll !== undefined) out.nll_loss = res.nll;
      return out;
    },
    saveFinal: (dir) => saveTrainedModel(dir, { ...loaded, lora }, { dtype: cfg.save_dtype }),
  }, {
    loop: loopConfig(cfg, opts, fingerprint.digest('hex')),
    epochs: 1,
    numMiniBatches: 1,
    microBatchSize: B,
    barKeys: scoresKeys(judge),
  });
}

function scoresKeys(judge: SampleJudge | null): string[] {
  return judge?.kind === 'pairwise' ? ['loss', 'rewards/margins', 'objective/kl'] : ['objective/scores', 'loss', 'objective/kl'];
}
