// `dpo export-job --trainer rm|grpo|rloo|ppo`: the RLHF runs handed to TRL v1.9.0, as
// trl-export.ts does for DPO/SFT (the same job folder, accelerate files and launch scripts):
//
//   rm    RewardConfig + RewardTrainer: preference pairs (TRL's columns, `margin` when the data has one)
//   grpo  GRPOConfig + GRPOTrainer, rloo RLOOConfig + RLOOTrainer: prompt-only data (`prompt`)
//   ppo   the experimental PPOConfig + PPOTrainer (trl.experimental.ppo): prompts as our token ids
//         (`input_ids`, what TRL's PPOTrainer reads), a reward model and a value model
//
// Reward functions: the built-in `afinn` becomes a Python function in the job (rewards.py, checked
// against ours by the tests); a reward model trained by `dpo rm` is copied in as a model path;
// `vader` and JS modules are refused by name (no exact Python equivalent here).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { formatLoc } from '../data/types.js';
import { preparePreferenceData } from '../data/prepare.js';
import type { ChatMessage, Tokenizer } from '../io/tokenizer.js';
import { loadTokenizerFor } from '../io/load-model.js';
import { isSequenceClassificationDir } from '../io/reward-dir.js';
import { BUILTIN_REWARDS } from './rewards.js';
import { readMargins } from './rm.js';
import { preferencePrepareOptions } from './dpo.js';
import { loadPrompts, type Prompt } from './rollout.js';
import type { GrpoConfig, PpoConfig, RewardConfig } from './rl-config.js';
import { assembleJob, checkJobTarget, dataSplits, preferenceAudit, trlRow, TRAIN_PY, type ExportJobResult, type ExportSftJobOptions } from './trl-export.js';
import { translateGrpoConfig, translatePpoConfig, translateRewardConfig } from './trl-translate-rl.js';
import { TRL_VERSION } from './trl-translate.js';

const require = createRequire(import.meta.url);

/** Where rewards.py lives in the source tree (next to train.py). */
export const REWARDS_PY = join(TRAIN_PY, '..', 'rewards.py');

type JobTarget = Omit<ExportSftJobOptions, 'config' | 'data'>;

export interface ExportRmJobOptions extends JobTarget {
  data: string[];
  config: RewardConfig;
}

export interface ExportOnlineJobOptions<C> extends JobTarget {
  /** Prompt files (a prompt column, or preference data), as `dpo grpo --prompts`. */
  prompts: string[];
  config: C;
}

/** The word and negator lists of npm `sentiment` that dpo-ts's `afinn` reward scores with. */
export function afinnLists(): { labels: Record<string, number>; negators: string[]; version: string } {
  const version = (require('sentiment/package.json') as { version: string }).version;
  const labels = { ...(require('sentiment/languages/en/labels.json') as Record<string, number>), ...(require('sentiment/build/emoji.json') as Record<string, number>) };
  const negators = Object.keys(require('sentiment/languages/en/negators.json') as Record<string, number>);
  return { labels, negators, version };
}

/** How one reward_funcs entry goes to TRL: a Python function, a model path, or a refusal. */
export type RewardExport =
  | { kind: 'python'; spec: string; function: string }
  | { kind: 'model'; spec: string; dir: string }
  | { kind: 'refused'; spec: string; reason: string };

export function rewardExport(spec: string, index: number): RewardExport {
  if (spec === 'afinn') return { kind: 'python', spec, function: 'afinn' };
  if (spec === 'vader') {
    return { kind: 'refused', spec, reason: 'vader: dpo-ts scores with the npm port vader-sentiment, which is not provably identical to Python\'s vaderSentiment; no exact Python version is exported' };
  }
  if ((BUILTIN_REWARDS as readonly string[]).includes(spec)) return { kind: 'refused', spec, reason: `${spec}: no Python version of this built-in` };
  if (/\.(m?js|cjs)(#.*)?$/.test(spec)) return { kind: 'refused', spec, reason: `${spec}: a JavaScript reward function cannot run in TRL (Python); port it to a Python function f(prompts, completions, **kwargs)` };
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    if (!isSequenceClassificationDir(spec)) return { kind: 'refused', spec, reason: `${spec}: not a reward model (config.json names no *ForSequenceClassification)` };
    return { kind: 'model', spec, dir: `reward_models/${index}` };
  }
  return { kind: 'refused', spec, reason: `"${spec}": not a built-in, a JS module or a reward-model directory` };
}

/** A prompt as TRL's prompt column: chat messages when our trainers render it with the chat template. */
export function trlPrompt(p: Prompt, tok: Tokenizer): string | ChatMessage[] {
  // dpo grpo/rloo/ppo wrap a text prompt as a user turn when the tokenizer has a chat template; TRL
  // applies the template only to conversational rows, so such a prompt goes as one user message.
  if (typeof p.source === 'string' && tok.chatTemplate !== null) return [{ role: 'user', content: p.source }];
  return p.source;
}

function onlineDifferences(extra: string[] = []): string[] {
  return [
    'TRL computes in bf16 mixed precision (`bf16: true`; ours is float32) and samples with its own random numbers: expect the same curves, not the same completions.',
    'TRL decodes completions with `skip_special_tokens` and hands the texts to the reward functions; a reward model re-tokenizes prompt + completion text (ours scores the sampled ids).',
    'Prompts and batches come from TRL\'s sampler with the same seed, not ours.',
    ...extra,
  ];
}

/** Python reward files and job.json entries for the reward functions; throws RefusedOptions listing the refused ones via the translation. */
function rewardParts(specs: readonly string[]): {
  exports: RewardExport[]; refusals: string[]; extraFiles: Record<string, string>; extraModels: Record<string, string>; jobFuncs: object[]; detail: string;
} {
  const exports = specs.map((s, i) => rewardExport(s, i));
  const refusals = exports.filter((e): e is Extract<RewardExport, { kind: 'refused' }> => e.kind === 'refused').map((e) => e.reason);
  const extraFiles: Record<string, string> = {};
  const extraModels: Record<string, string> = {};
  const jobFuncs: object[] = [];
  for (const e of exports) {
    if (e.kind === 'python') {
      extraFiles['rewards.py'] = readFileSync(REWARDS_PY, 'utf8');
      const a = afinnLists();
      extraFiles['rewards/afinn.json'] = `${JSON.stringify({ source: `npm sentiment ${a.version} (MIT); AFINN-165 word list by Finn Årup Nielsen, and the package's emoji scores`, labels: a.labels, negators: a.negators })}\n`;
      jobFuncs.push({ kind: 'python', module: 'rewards.py', function: e.function, spec: e.spec });
    } else if (e.kind === 'model') {
      extraModels[e.dir] = e.spec;
      jobFuncs.push({ kind: 'model', path: e.dir, spec: e.spec });
    }
  }
  const detail = exports.map((e) => (e.kind === 'python' ? `${e.spec} → rewards.py ${e.function}()` : e.kind === 'model' ? `${e.spec} → ${e.dir}/` : e.spec)).join(', ');
  return { exports, refusals, extraFiles, extraModels, jobFuncs, detail };
}

/** `dpo export-job --trainer rm`: the same pairs and options as `dpo rm`, for TRL's RewardTrainer. */
export async function exportTrlRmJob(opts: ExportRmJobOptions): Promise<ExportJobResult> {
  const cfg = opts.config;
  checkJobTarget(opts);
  const tokenizer = await loadTokenizerFor(opts.model, opts.tokenizer);
  const prepOpts = preferencePrepareOptions(cfg);
  const { train, trainRows, evalRows, evalExamples } = await dataSplits(opts, cfg, async (files) => {
    const d = await preparePreferenceData(files, tokenizer, prepOpts);
    return { ...d, rows: d.pairs };
  });
  // Margins by source location (the eval split takes rows out of the training files).
  const margins = new Map<string, number>();
  if (cfg.margin_column) {
    for (const [files, pairs] of [[opts.data, train.pairs], [opts.evalData ?? [], opts.evalData?.length ? evalRows : []]] as const) {
      if (files.length === 0 || pairs.length === 0) continue;
      const m = await readMargins(files, pairs, cfg.margin_column);
      if (m) pairs.forEach((p, i) => margins.set(formatLoc(p.loc), m[i]!));
    }
  }
  const all = [...trainRows, ...evalRows];
  const { config: trlConfig, notes } = translateRewardConfig(cfg, {
    promptTruncated: all.filter((p) => p.promptTruncated).length,
    completionTruncated: 0,
    lengthTruncated: all.filter((p) => p.chosenTruncated || p.rejectedTruncated).length,
    hasEval: evalRows.length > 0, modelDropout: {},
  });
  const row = (p: (typeof trainRows)[number], exs: typeof train.examples): object => {
    const m = margins.get(formatLoc(p.loc));
    return m === undefined ? trlRow(exs[p.index]!) : { ...trlRow(exs[p.index]!), margin: m };
  };
  const audit = await preferenceAudit(opts, tokenizer, prepOpts);
  return assembleJob({
    opts, cfg, trainer: 'reward', trlConfig, notes, audit, format: train.format,
    columns: train.examples[0]?.kind === 'chat' ? 'conversational' : 'standard',
    trainRows: trainRows.map((p) => row(p, train.examples)),
    evalRows: evalRows.map((p) => row(p, evalExamples)),
    dropped: train.load.bad + train.tokenize.dropped, droppedByReason: { ...train.load.badByReason, ...train.tokenize.droppedByReason },
    refLogps: false, importSettings: { save_dtype: cfg.save_dtype, watchdogs: false },
    jobExtra: { margins: margins.size > 0 },
    differences: [
      'TRL computes in bf16 mixed precision (`bf16: true`; ours is float32): expect the same curves, not the same bits.',
      'TRL tokenizes prompt + response as one text (ours tokenizes them apart); a response can start with a different token where the tokenizer merges across the boundary.',
      'A model without a score head gets a fresh one from transformers (its own random initialisation, not ours).',
      'The data order comes from TRL\'s sampler with the same seed, not ours.',
    ],
  });
}

async function promptRows(opts: ExportOnlineJobOptions<GrpoConfig | PpoConfig>): Promise<{ prompts: Prompt[]; tokenizer: Tokenizer }> {
  const cfg = opts.config;
  checkJobTarget(opts);
  const tokenizer = await loadTokenizerFor(opts.model, opts.tokenizer);
  const prompts = await loadPrompts(opts.prompts, tokenizer, cfg.prompt_column, cfg.max_prompt_length);
  return { prompts, tokenizer };
}

/** `dpo export-job --trainer grpo|rloo`: the same prompts and options, for TRL's GRPOTrainer / RLOOTrainer. */
export async function exportTrlGrpoJob(opts: ExportOnlineJobOptions<GrpoConfig>): Promise<ExportJobResult> {
  const cfg = opts.config;
  const { prompts, tokenizer } = await promptRows(opts);
  const rw = rewardParts(cfg.reward_funcs);
  const { config: trlConfig, notes } = translateGrpoConfig(cfg, {
    promptTruncated: prompts.filter((p) => p.truncated).length, completionTruncated: 0, hasEval: false, modelDropout: {},
    rewardRefusals: rw.refusals, rewardDetail: rw.detail,
  });
  const rows = prompts.map((p) => ({ prompt: trlPrompt(p, tokenizer) }));
  return assembleJob({
    opts: { ...opts, data: opts.prompts }, cfg, trainer: cfg.rloo ? 'rloo' : 'grpo', trlConfig, notes, audit: null, format: 'prompts',
    columns: rows.some((r) => Array.isArray(r.prompt)) ? 'conversational prompt-only' : 'standard prompt-only',
    trainRows: rows, evalRows: [], dropped: 0, droppedByReason: {}, refLogps: false,
    importSettings: { save_dtype: cfg.save_dtype, watchdogs: false },
    extraFiles: rw.extraFiles, extraModels: rw.extraModels, jobExtra: { reward_funcs: rw.jobFuncs }, unit: 'prompts', batchUnit: 'completions',
    differences: onlineDifferences(),
  });
}

/** `dpo export-job --trainer ppo`: the same prompts, reward model and options, for TRL's experimental PPOTrainer. */
export async function exportTrlPpoJob(opts: ExportOnlineJobOptions<PpoConfig>): Promise<ExportJobResult> {
  const cfg = opts.config;
  const { prompts, tokenizer } = await promptRows(opts);
  const rw = rewardParts(cfg.reward_funcs);
  const models = rw.exports.filter((e) => e.kind === 'model');
  const refusals = [...rw.refusals];
  if (rw.exports.length !== 1 || models.length !== 1) {
    const python = rw.exports.filter((e) => e.kind === 'python').map((e) => e.spec);
    refusals.push(`TRL v${TRL_VERSION}'s PPOTrainer scores with exactly one reward model (a directory trained by dpo rm)${python.length ? `, not a reward function (${python.join(', ')})` : ''}`);
  }
  const extraModels: Record<string, string> = {};
  let value: { path: string; source: string; fresh_head: boolean };
  let valueRefusal: string | undefined;
  if (cfg.value_model_path) {
    if (!isSequenceClassificationDir(cfg.value_model_path)) valueRefusal = `${cfg.value_model_path} is not a *ForSequenceClassification directory`;
    extraModels.value_model = cfg.value_model_path;
    value = { path: 'value_model', source: cfg.value_model_path, fresh_head: false };
  } else if (models.length === 1) value = { path: 'reward_model', source: models[0]!.spec, fresh_head: false };
  else value = { path: 'model', source: opts.model, fresh_head: true };
  if (models.length === 1) extraModels.reward_model = models[0]!.spec;
  const ppoBatch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * cfg.num_mini_batches;
  const { config: trlConfig, notes } = translatePpoConfig(cfg, {
    promptTruncated: prompts.filter((p) => p.truncated).length, completionTruncated: 0, hasEval: false, modelDropout: {},
    rewardRefusals: refusals, rewardDetail: models.length === 1 ? `${models[0]!.spec} → reward_model/ (PPOTrainer reward_model)` : rw.detail,
    valueDetail: value.fresh_head ? 'the policy with a fresh score head (AutoModelForSequenceClassification, num_labels 1)' : `${value.source} → ${value.path}/`,
    ppoBatch, valueRefusal,
  });
  const rows = prompts.map((p) => ({ prompt: trlPrompt(p, tokenizer), input_ids: p.ids }));
  return assembleJob({
    opts: { ...opts, data: opts.prompts }, cfg, trainer: 'ppo', trlConfig, notes, audit: null, format: 'prompts',
    columns: 'prompt-only, with input_ids', trainRows: rows, evalRows: [], dropped: 0, droppedByReason: {}, refLogps: false,
    importSettings: { save_dtype: cfg.save_dtype, watchdogs: false },
    extraModels, jobExtra: { reward_model: 'reward_model', value_model: value }, unit: 'prompts', batchUnit: 'rollouts (per mini-batch)',
    differences: onlineDifferences([
      'TRL\'s PPOTrainer reads the `input_ids` column: our tokens of each prompt (chat template and max_prompt_length applied as dpo ppo does); it pads with the tokenizer\'s pad token (the EOS when it has none, as ours).',
      ...(value.fresh_head ? ['The value model\'s fresh score head is transformers\' random initialisation, not ours.'] : []),
    ]),
  });
}
