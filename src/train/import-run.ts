// `dpo import-run RUN_OUTPUT/`: a Hugging Face Trainer / TRL output directory (full model or PEFT
// adapter, trainer_state.json with its log_history) becomes a normal dpo-ts run directory:
//
//   OUT/metrics.jsonl     the log history under our names (TRL's "eval_x" → "eval/x"; the rest
//                         are already TRL's names, which are ours)
//   OUT/config.json, model.safetensors (or shards), tokenizer files: a Hugging Face directory that
//                         `dpo eval`, `dpo score`, `dpo convert` and `dpo annotate add-prompts` load.
//                         A PEFT adapter is merged into its base model (W + (α/r)·B·A, α/√r with
//                         use_rslora, per-module rank_pattern / alpha_pattern; modules_to_save
//                         weights replace the base's); the adapter itself is kept under OUT/adapter/.
//                         A reward-model adapter (task_type SEQ_CLS, TRL's RewardTrainer with LoRA)
//                         becomes a *ForSequenceClassification directory with its saved score head.
//   OUT/import.json       where it came from, the trainer's summary, the watchdogs' findings
//
// Weights are copied byte for byte unless a dtype change is asked (job save_dtype or --dtype).
// Everything is written into OUT.tmp-PID and renamed at the end.

import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadHfDirectory, normalizeWeightNames, saveHfDirectory, TOKENIZER_FILE_NAMES } from '../io/hf-dir.js';
import { readSafetensorsHeader } from '../io/safetensors.js';
import { loadModel, loadTokenizerFor } from '../io/load-model.js';
import { attachPeftAdapter, isPeftAdapterDir, readPeftAdapter } from '../io/peft.js';
import { isSequenceClassificationDir, loadSequenceClassifier, saveSequenceClassifier } from '../io/reward-dir.js';
import { listCheckpoints } from './checkpoint.js';
import { dpoWatchdogs } from './dpo.js';
import type { DpoConfig } from './config.js';

export interface ImportRunOptions {
  out: string;
  /** Base model of a PEFT adapter (default: the adapter's base_model_name_or_path when it exists here, else the job's model/ beside the run). */
  base?: string;
  /** Weight dtype of the written model (default: the job's save_dtype; unchanged when the files already have it). */
  dtype?: 'float32' | 'bfloat16';
  force?: boolean;
  quiet?: boolean;
}

export interface ImportRunResult {
  dir: string;
  /** full: a causal LM (DPO, SFT, GRPO, RLOO, PPO policy); reward-model: a *ForSequenceClassification (RewardTrainer). */
  kind: 'full' | 'adapter' | 'reward-model';
  /** Whether a PEFT adapter was merged into its base (kind adapter, or a LoRA reward model). */
  merged: boolean;
  /** The base model an adapter was merged into. */
  base: string | null;
  /** The directory the model came from (the run, or its newest checkpoint). */
  modelSource: string;
  trainRecords: number;
  evalRecords: number;
  globalStep: number | null;
  warnings: string[];
}

/** One log_history entry → a metrics.jsonl record in our names, or null for the run summary. */
export function metricsRecord(entry: Record<string, unknown>): { kind: 'train' | 'eval' | 'summary'; rec: Record<string, number> } {
  const rec: Record<string, number> = {};
  const isEval = Object.keys(entry).some((k) => k.startsWith('eval_'));
  const isSummary = 'train_runtime' in entry;
  for (const [k, v] of Object.entries(entry)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) continue;
    rec[k.startsWith('eval_') ? `eval/${k.slice(5)}` : k] = v;
  }
  return { kind: isSummary ? 'summary' : isEval ? 'eval' : 'train', rec };
}

function readJson(path: string, what: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`import-run: ${what} ${path}: ${(e as Error).message}`);
  }
}

/** The dtype of a directory's weight files ('F32', 'BF16', 'F16', or 'mixed'). */
function weightDtype(files: string[]): string {
  const seen = new Set<string>();
  for (const f of files) for (const t of readSafetensorsHeader(f).tensors) seen.add(t.dtype);
  return seen.size === 1 ? [...seen][0]! : 'mixed';
}

const WEIGHT_FILE = /^(model\.safetensors|model\.safetensors\.index\.json|model-\d+-of-\d+\.safetensors)$/;

export async function importRun(src: string, opts: ImportRunOptions): Promise<ImportRunResult> {
  const run = resolve(src);
  if (!existsSync(run) || !statSync(run).isDirectory()) throw new Error(`import-run: ${src} is not a directory`);
  const out = resolve(opts.out);
  if (out === run) throw new Error('import-run: --out must differ from the run directory');
  if (existsSync(out) && readdirSync(out).length > 0 && !opts.force) throw new Error(`import-run: ${out} exists and is not empty (pass --force to replace it)`);

  // The finished run, or (stopped early) its newest checkpoint.
  let modelDir = run;
  let statePath = join(run, 'trainer_state.json');
  const hasModel = (d: string): boolean => existsSync(join(d, 'config.json')) || isPeftAdapterDir(d);
  if (!existsSync(statePath) || !hasModel(run)) {
    const newest = listCheckpoints(run).at(-1);
    if (!newest || !hasModel(newest.dir)) {
      throw new Error(`import-run: ${src} has neither a finished model (config.json + model.safetensors, or adapter_config.json) with trainer_state.json nor a checkpoint-N/ holding one`);
    }
    modelDir = newest.dir;
    if (!existsSync(statePath)) statePath = join(newest.dir, 'trainer_state.json');
  }
  if (!existsSync(statePath)) throw new Error(`import-run: no trainer_state.json in ${src} (train.py writes it with trainer.save_state())`);
  const state = readJson(statePath, 'trainer state');
  if (!Array.isArray(state.log_history)) throw new Error(`import-run: ${statePath}: log_history is missing or not a list`);
  const jobPath = [join(run, 'dpo_ts_job.json'), join(modelDir, 'dpo_ts_job.json')].find((p) => existsSync(p));
  const job = jobPath ? readJson(jobPath, 'job manifest') : null;
  const jobImport = (job?.import ?? {}) as { save_dtype?: 'float32' | 'bfloat16'; watchdogs?: boolean };
  const dtype = opts.dtype ?? jobImport.save_dtype;

  // ---- metrics ----
  const train: Record<string, number>[] = [], evals: Record<string, number>[] = [], lines: string[] = [];
  let summary: Record<string, number> | null = null;
  (state.log_history as unknown[]).forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new Error(`import-run: ${statePath}: log_history[${i}] is not an object`);
    const { kind, rec } = metricsRecord(entry as Record<string, unknown>);
    if (kind === 'summary') {
      summary = rec;
      return;
    }
    (kind === 'eval' ? evals : train).push(rec);
    lines.push(JSON.stringify(rec));
  });
  const warnings = jobImport.watchdogs === false ? [] : dpoWatchdogs({ rpo_alpha: (job?.dpo_ts_config as DpoConfig | undefined)?.rpo_alpha ?? null } as DpoConfig)(train);

  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    writeFileSync(join(tmp, 'metrics.jsonl'), lines.map((l) => `${l}\n`).join(''));
    const tokenizerFiles = TOKENIZER_FILE_NAMES.filter((f) => existsSync(join(modelDir, f))).map((f) => join(modelDir, f));
    let kind: ImportRunResult['kind'];
    let mergedInto: string | null = null;
    if (isPeftAdapterDir(modelDir)) {
      const adapter = readPeftAdapter(modelDir);
      const declared = adapter.baseModel;
      // The job's own model/ folder when the run sits in the job folder (JOB/output/, as train.py writes it):
      // the adapter names the path it had on the GPU machine.
      const jobModel = job?.model as { ref?: unknown; hub?: unknown } | undefined;
      const inJob = jobModel && jobModel.hub === false && typeof jobModel.ref === 'string'
        ? [join(run, '..', jobModel.ref), join(run, '..', '..', jobModel.ref)].find((d) => existsSync(join(d, 'config.json')))
        : undefined;
      const base = opts.base ?? (declared && existsSync(declared) ? declared : inJob ?? null);
      if (!base) {
        throw new Error(`import-run: ${modelDir} is a PEFT adapter whose base model ${declared ? `"${declared}" ${/^[\w.-]+\/[\w.-]+$/.test(declared) && !declared.startsWith('.') ? 'looks like a Hugging Face hub id; it is not a directory on this machine (dpo-ts reads local directories only, it downloads nothing)' : 'is not on this machine'}` : 'is not named'}; pass --base DIR (the job's model/ folder or the same model as a local Hugging Face directory)`);
      }
      const baseTok = existsSync(base) && statSync(base).isDirectory() ? TOKENIZER_FILE_NAMES.filter((f) => existsSync(join(base, f))).map((f) => join(base, f)) : [];
      const tokFiles = tokenizerFiles.length ? tokenizerFiles : baseTok;
      const want = dtype === 'bfloat16' ? 'BF16' : 'F32';
      mergedInto = resolve(base);
      if (adapter.taskType === 'SEQ_CLS') {
        // TRL's RewardTrainer with a LoRA config: the body's adapters plus the score head (modules_to_save).
        kind = 'reward-model';
        const tokenizer = await loadTokenizerFor(tokenizerFiles.length ? modelDir : base);
        const { model: rm, trainedHead } = loadSequenceClassifier(base, { padTokenId: tokenizer.padId });
        const head = adapter.saved.get('score.weight');
        if (!head && !trainedHead) throw new Error(`import-run: ${join(modelDir, 'adapter_model.safetensors')} has no score.weight (modules_to_save ["score"]) and the base ${base} has no trained head: the reward head would be random`);
        if (head) {
          if (head.data.length !== rm.score.size) throw new Error(`import-run: ${modelDir}: score.weight has shape [${head.shape}], expected [${rm.score.shape}] (num_labels 1)`);
          rm.score.data.set(head.data);
        }
        const rest = [...adapter.saved.keys()].filter((k) => k !== 'score.weight');
        if (rest.length > 0) throw new Error(`import-run: ${modelDir}: modules_to_save weights ${rest.join(', ')} of a reward model are not supported (only the score head)`);
        attachPeftAdapter(adapter, rm.body.linears(), rm.config.architecture);
        for (const l of rm.body.linears()) l.mergeLora();
        saveSequenceClassifier(tmp, rm, { dtype: want, tokenizerFiles: tokFiles });
      } else {
        kind = 'adapter';
        const loaded = loadModel(base);
        const { model } = loaded;
        attachPeftAdapter(adapter, model.linears(), model.config.architecture);
        for (const l of model.linears()) l.mergeLora();
        const weights = model.exportWeights();
        // modules_to_save (e.g. lm_head, embed_tokens): the adapter's full copy replaces the base weight.
        for (const [name, w] of normalizeWeightNames(model.config, adapter.saved)) {
          const have = weights.get(name);
          if (!have) throw new Error(`import-run: ${modelDir}: modules_to_save weight ${name} is not a weight of the base model ${base}${model.config.tieWordEmbeddings && name === 'lm_head.weight' ? ' (its LM head is tied to the embeddings)' : ''}`);
          if (have.data.length !== w.data.length) throw new Error(`import-run: ${modelDir}: modules_to_save weight ${name} has shape [${w.shape}], the base model's [${have.shape}]`);
          weights.set(name, { shape: [...have.shape], data: w.data });
        }
        saveHfDirectory(tmp, { config: model.config, weights, dtype: want, generation: loaded.generation, tokenizerFiles: loaded.format === 'hf' || tokenizerFiles.length ? tokFiles : [] });
      }
      mkdirSync(join(tmp, 'adapter'));
      for (const f of ['adapter_config.json', 'adapter_model.safetensors']) copyFileSync(join(modelDir, f), join(tmp, 'adapter', f));
    } else {
      // Loads (and validates names and shapes) before anything is copied: a reward model (RewardTrainer's
      // *ForSequenceClassification, which `dpo rm score` and the reward functions read) or a causal LM.
      const rm = isSequenceClassificationDir(modelDir);
      kind = rm ? 'reward-model' : 'full';
      const save = rm
        ? (want: 'F32' | 'BF16') => saveSequenceClassifier(tmp, loadSequenceClassifier(modelDir).model, { dtype: want, tokenizerFiles })
        : (want: 'F32' | 'BF16') => {
          const hf = loadHfDirectory(modelDir);
          saveHfDirectory(tmp, { config: hf.config, weights: hf.weights, dtype: want, generation: hf.generation, tokenizerFiles });
        };
      const weightFiles = readdirSync(modelDir).filter((f) => WEIGHT_FILE.test(f));
      const want = dtype === 'bfloat16' ? 'BF16' : dtype === 'float32' ? 'F32' : null;
      const have = weightDtype(weightFiles.filter((f) => f.endsWith('.safetensors')).map((f) => join(modelDir, f)));
      if (want === null || want === have) {
        if (rm) loadSequenceClassifier(modelDir);
        else loadHfDirectory(modelDir);
        for (const f of ['config.json', 'generation_config.json', ...weightFiles]) if (existsSync(join(modelDir, f))) copyFileSync(join(modelDir, f), join(tmp, f));
        for (const f of tokenizerFiles) copyFileSync(f, join(tmp, f.slice(modelDir.length + 1)));
      } else save(want);
    }
    const globalStep = typeof state.global_step === 'number' ? state.global_step : null;
    const record = {
      imported_from: run,
      model_source: modelDir,
      kind,
      merged_into: mergedInto,
      global_step: globalStep,
      epoch: typeof state.epoch === 'number' ? state.epoch : null,
      trainer_summary: summary,
      job: job ? { trainer: job.trainer, trl_version: job.trl_version, created: job.created } : null,
      train_records: train.length,
      eval_records: evals.length,
      warnings,
      imported: new Date().toISOString(),
    };
    writeFileSync(join(tmp, 'import.json'), `${JSON.stringify(record, null, 2)}\n`);
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    return { dir: out, kind, merged: mergedInto !== null, base: mergedInto, modelSource: modelDir, trainRecords: train.length, evalRecords: evals.length, globalStep, warnings };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
