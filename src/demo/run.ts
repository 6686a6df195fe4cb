// `dpo demo`: the DPO paper's controlled-sentiment experiment (Rafailov et al. 2023, §6.1) in
// miniature, offline, start to finish:
//   1. base model: a tiny Llama pretrained here on Moby-Dick with its own BPE tokenizer (a normal
//      Hugging Face directory, cached), or any model given with --model;
//   2. preference data: prompts are short prefixes of held-in text; the base samples several
//      completions per prompt; the AFINN sentiment score ranks them; best and worst form a pair;
//   3. DPO against the frozen base for several β;
//   4. evaluation on held-out prompts: reward (AFINN and two judges training never saw), KL(π‖π_ref)
//      from samples, win rate, implicit-reward accuracy on held-out pairs;
//   5. an output folder: report.html, plots (SVG + PNG), data, models, summary.json.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { kernels } from '../tensor/backend.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { type CausalLM } from '../models/index.js';
import { loadModel, loadModelAndTokenizer } from '../io/load-model.js';
import { parseDpoConfig } from '../train/config.js';
import { defaultCacheDir, runDpo } from '../train/dpo.js';
import { formatDuration } from '../util/progress.js';
import { DEFAULT_PRETRAIN, pretrain } from '../train/pretrain.js';
import { evaluateAgainstReference, evaluationTable, type EvaluationResult, type IdPair } from '../eval/evaluate.js';
import { allJudges, makeJudge } from '../eval/judges.js';
import { readPrompts } from '../eval/run.js';
import { sampleCompletions } from '../eval/sample.js';
import { CORPUS_NAME, loadMobyDick, promptsFrom, splitCorpus, spread } from './corpus.js';
import { writeReport } from './report.js';
import { independenceTable, judgeIndependence } from '../eval/independence.js';
import { DEFAULT_SETTINGS, PRETRAINED_DPO, QUICK_SETTINGS, type DemoSettings } from './settings.js';
import { costTable, DEFAULT_RL, measured, RL_METHODS, runRlArms, type DemoMethod, type MethodCost } from './rlhf.js';

export { DEFAULT_BETAS, DEFAULT_SETTINGS, PRETRAINED_DPO, QUICK_SETTINGS, type DemoSettings } from './settings.js';

export interface DemoOptions {
  out: string;
  quick?: boolean;
  fresh?: boolean;
  /** A Hugging Face directory or llama2.c checkpoint to use instead of the pretrained base. */
  model?: string;
  /** Prompts file (.txt lines or .jsonl "prompt"); default: sentence starts of Moby-Dick. */
  prompts?: string;
  betas: number[];
  seed: number;
  threads?: number;
  /** Cache root (default $XDG_CACHE_HOME/dpo-ts or ~/.cache/dpo-ts; env DPO_CACHE_DIR overrides). */
  cacheDir?: string;
  /** Replace the preset (tests use tiny settings). */
  settings?: DemoSettings;
  quiet?: boolean;
  /** Which arms to run (default all: dpo, ppo (with PPO-GT), grpo). */
  methods?: DemoMethod[];
}

export interface DemoResult {
  out: string;
  basePath: string;
  baseCached: boolean;
  evaluation: EvaluationResult;
  timings: Record<string, number>;
  trainPairs: number;
  heldOutPairs: number;
  files: string[];
  /** Cost per training run (DPO per β, reward model, PPO, PPO-GT, GRPO arms). */
  costs: MethodCost[];
}

export function demoCacheDir(explicit?: string): string {
  return explicit ?? process.env.DPO_CACHE_DIR ?? defaultCacheDir();
}

/** Where the base model of these settings is cached. */
export function baseModelDir(cacheRoot: string, s: DemoSettings): string {
  const key = createHash('sha256').update(JSON.stringify({ v: 1, corpus: CORPUS_NAME, shape: s.shape, pretrain: { ...DEFAULT_PRETRAIN, ...s.pretrain } })).digest('hex').slice(0, 16);
  return join(cacheRoot, 'demo-base', key);
}

/**
 * The pretrained base model directory: from the cache, or pretrained now (into a temporary
 * directory renamed into place, so an interrupted run never leaves a half-written cache entry).
 */
export async function ensureBaseModel(cacheRoot: string, s: DemoSettings, fresh: boolean, quiet: boolean, log: (m: string) => void): Promise<{ dir: string; cached: boolean }> {
  const dir = baseModelDir(cacheRoot, s);
  const done = join(dir, 'pretrain_summary.json');
  if (fresh && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  if (existsSync(done)) return { dir, cached: true };
  const { heldIn, heldOut } = splitCorpus(loadMobyDick());
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const r = await pretrain({
    docs: heldIn.flatMap((c) => c.paragraphs), evalDocs: heldOut.flatMap((c) => c.paragraphs),
    shape: s.shape, settings: s.pretrain, outputDir: tmp, quiet, onPhase: log,
  });
  const summary = {
    corpus: CORPUS_NAME, parameters: r.parameters, train_tokens: r.trainTokens, eval_tokens: r.evalTokens, steps: r.steps,
    eval_loss_before: r.initialEvalLoss, eval_loss_after: r.finalEvalLoss, shape: s.shape, settings: { ...DEFAULT_PRETRAIN, ...s.pretrain },
  };
  writeFileSync(join(tmp, 'pretrain_summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, '..'), { recursive: true });
  renameSync(tmp, dir);
  log(`base model: held-out loss ${r.initialEvalLoss.toFixed(3)} → ${r.finalEvalLoss.toFixed(3)} (perplexity ${Math.exp(r.finalEvalLoss).toFixed(1)}); cached in ${dir}`);
  return { dir, cached: false };
}

interface PromptSets {
  train: string[];
  pairs: string[];
  eval: string[];
  source: string;
}

function promptSets(s: DemoSettings, file: string | undefined): PromptSets {
  let heldIn: string[], heldOut: string[], source: string;
  if (file) {
    const all = readPrompts(file);
    // Every fifth prompt is held out.
    heldIn = all.filter((_, i) => i % 5 !== 4);
    heldOut = all.filter((_, i) => i % 5 === 4);
    source = file;
  } else {
    const c = splitCorpus(loadMobyDick());
    heldIn = promptsFrom(c.heldIn);
    heldOut = promptsFrom(c.heldOut);
    source = `${CORPUS_NAME}: sentence starts; chapters 10, 20, ..., 130 held out`;
  }
  const evalPool = heldOut.filter((_, i) => i % 2 === 0), pairPool = heldOut.filter((_, i) => i % 2 === 1);
  if (heldIn.length < 2 || evalPool.length < 1 || pairPool.length < 1) throw new Error(`demo: too few prompts in ${source} (${heldIn.length} held-in, ${heldOut.length} held-out)`);
  return { train: spread(heldIn, s.trainPrompts), pairs: spread(pairPool, s.pairPrompts), eval: spread(evalPool, s.evalPrompts), source };
}

interface PairRow {
  prompt: string;
  chosen: string;
  rejected: string;
  score_chosen: number;
  score_rejected: number;
}

/** Samples completions, scores them with AFINN, keeps best vs worst per prompt (ties dropped). */
function makePairs(model: CausalLM, tok: Tokenizer, prompts: string[], s: DemoSettings, seed: number, label: string, quiet: boolean): { rows: PairRow[]; ids: IdPair[]; samples: number } {
  const afinn = makeJudge('afinn');
  const promptIds = prompts.map((p) => tok.encode(p, { addBos: true }));
  const comp = sampleCompletions(model, tok, promptIds, { samplesPerPrompt: s.samplesPerPrompt, maxNewTokens: s.maxNewTokens, seed, label, quiet });
  const scores = comp.texts.map((t) => afinn.score(t));
  const rows: PairRow[] = [];
  const ids: IdPair[] = [];
  for (let p = 0; p < prompts.length; p++) {
    const rs = Array.from({ length: s.samplesPerPrompt }, (_, j) => p * s.samplesPerPrompt + j);
    let best = rs[0]!, worst = rs[0]!;
    for (const r of rs) {
      if (scores[r]! > scores[best]!) best = r;
      if (scores[r]! < scores[worst]!) worst = r;
    }
    if (scores[best]! === scores[worst]!) continue;
    // An empty completion cannot be a response in a preference pair.
    if (!comp.texts[best]!.trim() || !comp.texts[worst]!.trim()) continue;
    rows.push({ prompt: prompts[p]!, chosen: comp.texts[best]!, rejected: comp.texts[worst]!, score_chosen: scores[best]!, score_rejected: scores[worst]! });
    ids.push({ prompt: promptIds[p]!, chosen: comp.tokens[best]!, rejected: comp.tokens[worst]! });
  }
  return { rows, ids, samples: comp.texts.length };
}

function writeJsonl(path: string, rows: readonly object[]): void {
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

const betaName = (b: number): string => `β=${b}`;

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = Date.now();
  const preset = o.settings ?? (o.quick ? QUICK_SETTINGS : DEFAULT_SETTINGS);
  const s: DemoSettings = o.model && !o.settings ? { ...preset, dpo: PRETRAINED_DPO } : preset;
  const quiet = o.quiet ?? false;
  const log = (m: string): void => {
    if (!quiet) process.stderr.write(`${m}\n`);
  };
  if (o.betas.length === 0 || o.betas.some((b) => !(b > 0))) throw new Error(`demo: --betas must be positive numbers, got ${o.betas.join(',')}`);
  if (o.threads) kernels().setNumThreads(o.threads);
  const methods = o.methods ?? [...RL_METHODS];
  if (methods.length === 0 || methods.some((m) => !(RL_METHODS as readonly string[]).includes(m))) throw new Error(`demo: --methods must be a list of ${RL_METHODS.join(', ')}, got ${methods.join(',')}`);
  const costs: MethodCost[] = [];
  const out = resolve(o.out);
  for (const d of ['data', 'models', 'plots']) mkdirSync(join(out, d), { recursive: true });
  const cacheRoot = demoCacheDir(o.cacheDir);
  const timings: Record<string, number> = {};
  const phase = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
    const t = Date.now();
    const r = await f();
    timings[name] = (Date.now() - t) / 1000;
    return r;
  };

  // ---- 1. base model ----
  let basePath: string, baseCached: boolean;
  if (o.model) {
    basePath = resolve(o.model);
    baseCached = true;
    log(`base model: ${basePath}`);
  } else {
    const b = await phase('pretrain', async () => {
      // --quick reuses the full base model when it is already cached (same cost, better model).
      const full = baseModelDir(cacheRoot, DEFAULT_SETTINGS);
      if (o.quick && !o.settings && !o.fresh && existsSync(join(full, 'pretrain_summary.json'))) return { dir: full, cached: true };
      log(`base model: pretraining a tiny Llama on ${CORPUS_NAME} (cache: ${cacheRoot})`);
      return ensureBaseModel(cacheRoot, s, o.fresh ?? false, quiet, log);
    });
    basePath = b.dir;
    baseCached = b.cached;
    if (b.cached) log(`base model: cached (${basePath}); --fresh rebuilds it`);
  }
  const base = await loadModelAndTokenizer(basePath);
  const tok = base.tokenizer;

  // ---- 2. preference data ----
  const sets = promptSets(s, o.prompts);
  const data = await phase('preference data', () => {
    log(`preference data: ${sets.train.length} training prompts × ${s.samplesPerPrompt} samples, ${sets.pairs.length} held-out prompts; reward = AFINN`);
    const train = makePairs(base.model, tok, sets.train, s, o.seed, 'sample training pairs', quiet);
    const held = makePairs(base.model, tok, sets.pairs, s, o.seed + 7919, 'sample held-out pairs', quiet);
    return { train, held };
  });
  if (data.train.rows.length < 4) throw new Error(`demo: only ${data.train.rows.length} training pairs (most prompts' samples tied on AFINN); use more prompts or samples`);
  const trainFile = join(out, 'data', 'train_pairs.jsonl');
  const heldFile = join(out, 'data', 'heldout_pairs.jsonl');
  writeJsonl(trainFile, data.train.rows);
  writeJsonl(heldFile, data.held.rows);
  log(`preference data: ${data.train.rows.length} training pairs, ${data.held.rows.length} held-out pairs → ${join(out, 'data')}`);

  // ---- 3. DPO for each β ----
  const curves: Record<string, { train: Record<string, number>[]; eval: Record<string, number>[] }> = {};
  const warnings: Record<string, string[]> = {};
  const modelDirs: string[] = [];
  if (methods.includes('dpo')) await phase('dpo', async () => {
    for (const beta of o.betas) {
      const dir = join(out, 'models', `beta-${beta}`);
      const steps = Math.max(1, Math.ceil(data.train.rows.length / s.dpo.batchSize)) * s.dpo.epochs;
      log(`DPO ${betaName(beta)}: ${steps} steps of ${s.dpo.batchSize} pairs, learning rate ${s.dpo.learningRate}`);
      const config = parseDpoConfig({
        beta, learning_rate: s.dpo.learningRate, num_train_epochs: s.dpo.epochs,
        per_device_train_batch_size: s.dpo.batchSize, per_device_eval_batch_size: 32,
        max_length: base.model.config.maxPositions, max_prompt_length: Math.min(64, base.model.config.maxPositions - s.maxNewTokens - 2),
        logging_steps: 1, eval_steps: Math.max(1, Math.floor(steps / 6)), save_steps: 0, seed: o.seed,
        warmup_ratio: s.dpo.warmupRatio, lr_scheduler_type: 'linear', precompute_ref_log_probs: true,
        // Sample checks at every evaluation: the watchdog says when a run starts collapsing.
        sample_checks: true,
        ...(o.threads ? { num_threads: o.threads } : {}),
      }, {}, 'demo DPO config');
      const m = await measured(() => runDpo({
        model: basePath, data: [trainFile], evalData: data.held.rows.length ? [heldFile] : undefined,
        config, outputDir: dir, quiet, cacheDir: cacheRoot, generateMaxNewTokens: s.maxNewTokens,
      }));
      const r = m.value;
      costs.push({ method: 'DPO', arm: betaName(beta), seconds: m.seconds, peakTensorBytes: m.peakBytes, generatedTokens: 0, optimizerSteps: r.steps });
      if (r.stoppedBecause) throw new Error(`demo: DPO ${betaName(beta)} stopped: ${r.stoppedBecause}`);
      curves[betaName(beta)] = { train: r.history, eval: r.evalHistory };
      warnings[betaName(beta)] = r.warnings;
      modelDirs.push(dir);
    }
  });

  // ---- 3b. RLHF arms: reward model + PPO, PPO against the ground truth, GRPO ----
  const rlDone = methods.some((m) => m !== 'dpo')
    ? await phase('rlhf', () => runRlArms({
      basePath, out, trainPairsFile: trainFile, heldPairsFile: data.held.rows.length ? heldFile : null, prompts: sets.train,
      methods, rl: s.rl ?? DEFAULT_RL, maxNewTokens: s.maxNewTokens, maxPositions: base.model.config.maxPositions, seed: o.seed,
      threads: o.threads, quiet, log,
    }))
    : { arms: [], costs: [], rmAccuracy: null };
  costs.push(...rlDone.costs);

  // ---- 4. evaluation ----
  const evaluation = await phase('evaluation', () => {
    log(`evaluation: ${sets.eval.length} held-out prompts × ${s.evalSamples} samples per model; judges AFINN (training reward), Senticon, VADER (held out)`);
    const policies = [
      ...modelDirs.map((dir, i) => ({ name: betaName(o.betas[i]!), beta: o.betas[i]!, model: loadModel(dir).model })),
      // An RL arm's KL coefficient is the β of the implicit reward its optimum defines.
      ...rlDone.arms.map((a) => ({ name: a.name, beta: a.beta, model: loadModel(a.dir).model })),
    ];
    return evaluateAgainstReference({
      ref: base.model, refName: 'reference (base)', policies, tokenizer: tok, prompts: sets.eval, judges: allJudges(),
      pairs: data.held.ids.length ? data.held.ids : undefined,
      settings: { samplesPerPrompt: s.evalSamples, maxNewTokens: s.maxNewTokens, seed: o.seed + 104729, quiet },
    });
  });

  // ---- 5. outputs ----
  timings.total = (Date.now() - t0) / 1000;
  const pretrainSummary = existsSync(join(basePath, 'pretrain_summary.json')) ? JSON.parse(readFileSync(join(basePath, 'pretrain_summary.json'), 'utf8')) as Record<string, unknown> : null;
  const files = await phase('report', () => writeReport(out, {
    evaluation, curves, warnings, timings, settings: s, betas: o.betas, basePath, baseCached, promptSource: sets.source,
    trainPairs: data.train.rows.length, heldOutPairs: data.held.rows.length, trainPairExamples: data.train.rows.slice(0, 6),
    pretrainMetrics: readMetrics(join(basePath, 'metrics.jsonl')), pretrainSummary, seed: o.seed,
    ...(methods.some((m) => m !== 'dpo') ? { costs, rmAccuracy: rlDone.rmAccuracy } : {}),
  }));
  timings.total = (Date.now() - t0) / 1000;
  const summary = {
    base_model: basePath, base_cached: baseCached, betas: o.betas, seed: o.seed, settings: s, prompt_source: sets.source,
    train_pairs: data.train.rows.length, heldout_pairs: data.held.rows.length, timings_seconds: timings, methods, costs,
    reward_model_heldout_accuracy: rlDone.rmAccuracy, training_warnings: warnings,
    evaluation: { ...evaluation, models: evaluation.models.map(({ samples: _s, ...m }) => m) },
    judges_vs_afinn: judgeIndependence(evaluation),
  };
  writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  writeJsonl(join(out, 'data', 'eval_samples.jsonl'), evaluation.models.flatMap((m) => m.samples.map((x) => ({ model: m.name, ...x }))));
  files.push(join(out, 'summary.json'), join(out, 'data', 'eval_samples.jsonl'), trainFile, heldFile);
  if (!quiet) {
    process.stdout.write(`\n${evaluationTable(evaluation, 'training reward')}`);
    process.stdout.write(`\njudges vs AFINN (lexicon overlap from the packages' data; r over all samples)\n${independenceTable(judgeIndependence(evaluation))}`);
    process.stdout.write(`\n${costTable(costs)}`);
    process.stdout.write(`\nreport: ${join(out, 'report.html')}   total ${formatDuration(timings.total)} ` +
      `(${Object.entries(timings).filter(([k]) => k !== 'total').map(([k, v]) => `${k} ${formatDuration(v)}`).join(', ')})\n`);
  }
  return { out, basePath, baseCached, evaluation, timings, trainPairs: data.train.rows.length, heldOutPairs: data.held.rows.length, files, costs };
}

function readMetrics(path: string): Record<string, number>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, number>);
}
