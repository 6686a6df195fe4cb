// `dpo export-job --engine trl`: the same model, data and options as `dpo train`, handed to Hugging
// Face TRL + accelerate as a self-contained job folder:
//
//   JOB/job.json              manifest: model, data, counts, the option-by-option translation
//   JOB/dpo_config.yaml       DPOConfig keyword arguments for the pinned TRL version
//   JOB/peft_config.json      LoraConfig keyword arguments (with use_peft)
//   JOB/data/train.jsonl      validated, normalized pairs with TRL's column names (+ eval.jsonl);
//                             train.parquet / eval.parquet with --data-format parquet (trl-data.ts)
//   JOB/data/audit.json       `dpo data check`'s report of the source data
//   JOB/model/ (JOB/ref_model/)  the model as a Hugging Face directory (unless a hub id is given)
//   JOB/accelerate/*.yaml     1 GPU, N GPUs (DDP, ZeRO-2, ZeRO-3, FSDP), N×M nodes (ZeRO-2/3, FSDP)
//   JOB/train.py, JOB/requirements.txt, JOB/launch/slurm.sbatch, JOB/launch/kubernetes.yaml, JOB/README.md
//
// Files are written into JOB.tmp-PID and renamed at the end, so a refused or failed export leaves
// nothing half-written.

import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { preparePreferenceData, prepareSftData } from '../data/prepare.js';
import { auditPreferenceData } from '../data/audit.js';
import { encodePair, renderPreference, type TokenizedPair } from '../data/tokenize.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { findTemplateProcessing, type PostProcessorJson } from '../io/tokenizers/hf.js';
import type { DataFormat, PreferenceExample, SftExample } from '../data/types.js';
import { isReferenceFree } from '../losses/index.js';
import { TOKENIZER_FILE_NAMES } from '../io/hf-dir.js';
import { convertModel } from '../io/convert.js';
import { loadModelAndTokenizer, loadTokenizerFor } from '../io/load-model.js';
import { defaultLoraTargets } from '../models/architectures.js';
import { classifierBodyConfig } from '../io/reward-dir.js';
import type { DpoConfig, SftConfig } from './config.js';
import { defaultCacheDir, precomputeReferenceLogps, preferencePrepareOptions, splitEval, type DpoRunOptions } from './dpo.js';
import { translateDpoConfig, translateSftConfig, TRL_VERSION, type CommonConfig, type TranslationNote } from './trl-translate.js';
import { JOB_DATA_FORMATS, writeJobData, type JobDataFormat } from './trl-data.js';

/** Exact versions for requirements.txt (see REQUIREMENTS below for where each comes from). */
export const PINNED = {
  trl: TRL_VERSION,
  transformers: '5.17.0',
  datasets: '5.0.1',
  accelerate: '1.15.0',
  torch: '2.13.0',
  peft: '0.21.0',
  deepspeed: '0.19.8',
  pyyaml: '6.0.3',
} as const;

/** `dpo train`'s model, data and options, and where the job goes. */
export interface ExportJobOptions {
  /** The model directory or llama2.c checkpoint `dpo train` would start from. */
  model: string;
  tokenizer?: string | undefined;
  ref?: string | undefined;
  /** Preference data files (read, validated and audited as `dpo train` does). */
  data: string[];
  evalData?: string[] | undefined;
  config: DpoConfig;
  cacheDir?: string | undefined;
  out: string;
  /** Reference the model by this Hugging Face hub id instead of copying --model into the job. */
  hubModel?: string;
  /** GPUs per node for the multi-GPU files (default 8). */
  gpusPerNode?: number;
  /** Nodes for the multi-node files (default 2). */
  nodes?: number;
  /**
   * Add our reference log-probs as TRL's ref_chosen_logps / ref_rejected_logps columns. Refused
   * unless TRL v1.9.0 provably tokenizes every pair as we do (see trlTokenizationMatches).
   */
  refLogps?: boolean;
  /** The data files' format: jsonl (default; load_dataset("json")) or parquet (load_dataset("parquet")). */
  dataFormat?: JobDataFormat;
  /** Replace an existing JOB folder. */
  force?: boolean;
  /** The command line that made the job (recorded in job.json). */
  command?: string;
  quiet?: boolean;
}

/** `dpo sft`'s arguments for an SFT job (no reference model). */
export interface ExportSftJobOptions extends Omit<ExportJobOptions, 'config' | 'ref' | 'refLogps' | 'cacheDir'> {
  config: SftConfig;
}

export interface ExportJobResult {
  dir: string;
  trainPairs: number;
  evalPairs: number;
  dropped: number;
  notes: TranslationNote[];
  files: string[];
}

/** A pair as TRL reads it: standard (strings) or conversational (message lists). */
export type TrlRow = { prompt: unknown; chosen: unknown; rejected: unknown };

export function trlRow(ex: PreferenceExample): TrlRow {
  return { prompt: ex.prompt, chosen: ex.chosen, rejected: ex.rejected };
}

/** Where train.py lives in the source tree (this module runs as dist/src/train/trl-export.js). */
export const TRAIN_PY = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'src', 'train', 'trl', 'train.py');

/**
 * YAML that PyYAML (YAML 1.1, what accelerate and TRL read it with) parses to the same values:
 * "no"/"yes"/"on" stay quoted strings, and floats in exponent form get the dot and signed
 * exponent YAML 1.1 requires (1e-8 → 1.0e-8; PyYAML reads 1e-8 as a string).
 */
export function pyYaml(value: unknown): string {
  return toYaml(value, { version: '1.1' }).replace(/(^|: |- )(-?\d+)(e[-+]\d+)$/gm, '$1$2.0$3');
}

function writeText(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** transformers' causal-LM class per model_type of the architectures dpo-ts reads. */
const CAUSAL_LM_CLASS: Record<string, string> = {
  llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', gpt2: 'GPT2LMHeadModel',
};

/** Model files TRL (transformers) reads from a Hugging Face directory. */
function copyHfModel(src: string, dst: string): void {
  const names = ['config.json', 'generation_config.json', 'model.safetensors', 'model.safetensors.index.json', ...TOKENIZER_FILE_NAMES];
  mkdirSync(dst, { recursive: true });
  for (const f of readdirSync(src)) {
    if (names.includes(f as (typeof names)[number]) || /^model-\d+-of-\d+\.safetensors$/.test(f)) copyFileSync(join(src, f), join(dst, f));
  }
  // A config naming the bare base model (e.g. "GPT2Model", as some test checkpoints do) would make
  // transformers load it without its LM head; dpo-ts reads it as the causal LM, so say so.
  const cfgPath = join(dst, 'config.json');
  const hfCfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as { architectures?: string[]; model_type?: string };
  const causal = CAUSAL_LM_CLASS[hfCfg.model_type ?? ''];
  const archs = hfCfg.architectures ?? [];
  if (causal && !archs.includes(causal) && !archs.some((x) => x.endsWith('ForSequenceClassification'))) writeFileSync(cfgPath, `${JSON.stringify({ ...hfCfg, architectures: [causal] }, null, 2)}\n`);
  const tok = ['tokenizer.json', 'tokenizer.model', 'vocab.json'];
  if (!tok.some((f) => existsSync(join(dst, f)))) {
    throw new Error(`export-job: ${src} has no tokenizer transformers can load (${tok.join(', ')}); a llama2.c tokenizer.bin needs \`dpo convert\` from the .bin checkpoint`);
  }
}

/** Copies (or converts from llama2.c) a model into the job as a Hugging Face directory. */
export async function placeModel(src: string, tokenizer: string | undefined, dst: string): Promise<void> {
  if (!existsSync(src)) throw new Error(`export-job: model ${src} does not exist`);
  if (statSync(src).isDirectory()) {
    copyHfModel(src, dst);
    if (tokenizer && statSync(tokenizer).isDirectory()) for (const f of TOKENIZER_FILE_NAMES) if (existsSync(join(tokenizer, f))) copyFileSync(join(tokenizer, f), join(dst, f));
  } else {
    await convertModel(src, dst, { tokenizer });
  }
}

export function dropoutSettings(modelDir: string): Record<string, number> {
  const path = join(modelDir, 'config.json');
  if (!existsSync(path)) return {};
  const cfg = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(cfg)) if (/(dropout|pdrop)$/.test(k) && typeof v === 'number') out[k] = v;
  return out;
}

// ---------------------------------------------------------------------------------------------
// accelerate configs (the layout of TRL's examples/accelerate_configs at v1.9.0)

export type Distributed = 'single' | 'ddp' | 'zero2' | 'zero3' | 'fsdp';

export interface AccelerateFile {
  name: string;
  kind: Distributed;
  machines: number;
  processes: number;
  config: Record<string, unknown>;
}

export function accelerateConfig(kind: Distributed, machines: number, processes: number): Record<string, unknown> {
  const c: Record<string, unknown> = {
    compute_environment: 'LOCAL_MACHINE',
    debug: false,
    distributed_type: { single: 'NO', ddp: 'MULTI_GPU', zero2: 'DEEPSPEED', zero3: 'DEEPSPEED', fsdp: 'FSDP' }[kind],
    downcast_bf16: 'no',
  };
  if (kind === 'single' || kind === 'ddp') c.gpu_ids = 'all';
  if (kind === 'zero2' || kind === 'zero3') {
    c.deepspeed_config = {
      deepspeed_multinode_launcher: 'standard',
      offload_optimizer_device: 'none',
      offload_param_device: 'none',
      zero3_init_flag: kind === 'zero3',
      ...(kind === 'zero3' ? { zero3_save_16bit_model: true } : {}),
      zero_stage: kind === 'zero2' ? 2 : 3,
    };
  }
  if (kind === 'fsdp') {
    c.fsdp_config = {
      fsdp_activation_checkpointing: false,
      fsdp_auto_wrap_policy: 'TRANSFORMER_BASED_WRAP',
      fsdp_cpu_ram_efficient_loading: true,
      fsdp_offload_params: false,
      fsdp_reshard_after_forward: true,
      // A full state dict on save: the output is an ordinary Hugging Face directory.
      fsdp_state_dict_type: 'FULL_STATE_DICT',
      fsdp_version: 2,
    };
  }
  Object.assign(c, {
    machine_rank: 0,
    main_training_function: 'main',
    mixed_precision: 'bf16',
    num_machines: machines,
    // accelerate counts processes over all machines.
    num_processes: processes,
    rdzv_backend: machines > 1 ? 'c10d' : 'static',
    same_network: true,
    tpu_env: [],
    tpu_use_cluster: false,
    tpu_use_sudo: false,
    use_cpu: false,
  });
  return c;
}

export function accelerateFiles(gpus: number, nodes: number): AccelerateFile[] {
  const files: AccelerateFile[] = [{ name: 'single_gpu.yaml', kind: 'single', machines: 1, processes: 1, config: accelerateConfig('single', 1, 1) }];
  for (const kind of ['ddp', 'zero2', 'zero3', 'fsdp'] as const) {
    files.push({ name: `${kind}_${gpus}gpu.yaml`, kind, machines: 1, processes: gpus, config: accelerateConfig(kind, 1, gpus) });
  }
  for (const kind of ['zero2', 'zero3', 'fsdp'] as const) {
    files.push({ name: `${kind}_${nodes}x${gpus}gpu.yaml`, kind, machines: nodes, processes: nodes * gpus, config: accelerateConfig(kind, nodes, nodes * gpus) });
  }
  return files;
}

// ---------------------------------------------------------------------------------------------
// requirements, launch files, README

export function requirementsTxt(usePeft: boolean): string {
  return [
    `# Exact versions for TRL v${TRL_VERSION}, written by dpo-ts export-job. All satisfy TRL v${TRL_VERSION}'s own`,
    '# requirements (pyproject.toml: transformers>=4.56.2 and !=5.1.0 with deepspeed, datasets>=4.7.0,',
    '# accelerate>=1.4.0, peft>=0.8.0, deepspeed>=0.14.4). transformers 5.17.0 is the release whose',
    '# TrainingArguments the DPOConfig field list in dpo-ts\'s tests was read from; trl, transformers, datasets,',
    '# accelerate, peft, torch (CPU build) and PyYAML are the set the dpo-ts repository ran an exported job with',
    '# (on CPU; see its README). deepspeed was not installed there. On GPUs install the torch build for your',
    '# CUDA (e.g. pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128) first.',
    `trl==${PINNED.trl}`,
    `transformers==${PINNED.transformers}`,
    `datasets==${PINNED.datasets}`,
    `accelerate==${PINNED.accelerate}`,
    `torch==${PINNED.torch}`,
    `deepspeed==${PINNED.deepspeed}`,
    `${usePeft ? '' : '# (not needed without LoRA) '}peft==${PINNED.peft}`,
    `PyYAML==${PINNED.pyyaml}`,
    '',
  ].join('\n');
}

function slurmScript(gpus: number, nodes: number): string {
  return `#!/bin/bash
# Slurm: ${nodes} nodes × ${gpus} GPUs, one accelerate launcher per node (written by dpo-ts export-job).
# Submit from the job folder: sbatch launch/slurm.sbatch  (CONFIG=accelerate/zero2_${nodes}x${gpus}gpu.yaml to change)
#SBATCH --job-name=dpo-trl
#SBATCH --nodes=${nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=${gpus}
#SBATCH --cpus-per-task=16
#SBATCH --exclusive
#SBATCH --output=slurm-%j.out
set -euo pipefail
cd "\${SLURM_SUBMIT_DIR}"
CONFIG="\${CONFIG:-accelerate/zero3_${nodes}x${gpus}gpu.yaml}"
export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export MASTER_PORT="\${MASTER_PORT:-29500}"
srun --kill-on-bad-exit=1 bash -c 'accelerate launch \\
  --config_file "'"$CONFIG"'" \\
  --num_machines "$SLURM_NNODES" \\
  --num_processes "$((SLURM_NNODES * ${gpus}))" \\
  --machine_rank "$SLURM_NODEID" \\
  --main_process_ip "$MASTER_ADDR" \\
  --main_process_port "$MASTER_PORT" \\
  train.py "$@"' -- "$@"
`;
}

function kubernetesManifest(gpus: number, nodes: number): string {
  const worker = (replicas: number) => `      replicas: ${replicas}
      restartPolicy: OnFailure
      template:
        spec:
          containers:
            - name: pytorch
              image: pytorch/pytorch:2.8.0-cuda12.8-cudnn9-devel   # the image of TRL v1.9.0's CI
              workingDir: /job
              command: ["bash", "-c"]
              args:
                - >-
                  pip install -r requirements.txt &&
                  accelerate launch --config_file accelerate/zero3_${nodes}x${gpus}gpu.yaml
                  --num_machines ${nodes} --num_processes ${nodes * gpus}
                  --machine_rank "$RANK" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT"
                  train.py --output-dir /job/output
              resources:
                limits:
                  nvidia.com/gpu: ${gpus}
              volumeMounts:
                - { name: job, mountPath: /job }
                - { name: shm, mountPath: /dev/shm }
          volumes:
            - name: job
              persistentVolumeClaim: { claimName: dpo-job }   # a volume holding this folder
            - name: shm
              emptyDir: { medium: Memory }`;
  return `# Kubernetes (Kubeflow Training Operator PyTorchJob): ${nodes} pods × ${gpus} GPUs. The operator sets
# MASTER_ADDR, MASTER_PORT and RANK (the pod's node rank) in every pod. Written by dpo-ts export-job.
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: dpo-trl
spec:
  pytorchReplicaSpecs:
    Master:
${worker(1)}
${nodes > 1 ? `    Worker:\n${worker(nodes - 1)}` : ''}
`;
}

interface ReadmeFacts {
  trainer: TrlTrainer;
  unit?: string | undefined;
  batchUnit?: string | undefined;
  differences?: string[] | undefined;
  className: string;
  configFile: string;
  model: string;
  /** The data files written (data/train.jsonl, data/eval.parquet, ...). */
  dataFiles: string[];
  /** Whether data/audit.json was written. */
  audit: boolean;
  trainRows: number;
  evalRows: number;
  dropped: number;
  format: string;
  gpus: number;
  nodes: number;
  accelerate: AccelerateFile[];
  notes: TranslationNote[];
  cfg: CommonConfig;
}

function jobReadme(f: ReadmeFacts): string {
  const perStep = f.cfg.per_device_train_batch_size * f.cfg.gradient_accumulation_steps;
  const table = f.notes.map((n) => `| \`${n.option}\` | \`${JSON.stringify(n.value)}\` | ${n.to} | ${n.detail ?? ''} |`).join('\n');
  const unit = f.unit ?? (f.trainer === 'dpo' || f.trainer === 'reward' ? 'pairs' : 'examples');
  const differences = f.differences ?? [
    'TRL computes in bf16 mixed precision (`bf16: true`, its default; ours is float32) and checkpoints\n  activations (`gradient_checkpointing`, its default): expect the same curves, not the same bits.',
    'TRL tokenizes the text itself (prompt + response in one call, then splits; ours tokenizes them apart),\n  so a response can start with a different token where the tokenizer merges across the boundary.',
    'The data order comes from TRL\'s sampler with the same seed, not ours.',
  ];
  return `# ${f.trainer.toUpperCase()} job for TRL v${TRL_VERSION} (exported by dpo-ts)

Model: \`${f.model}\`. Data: ${f.trainRows} training ${unit}${f.evalRows ? `, ${f.evalRows} eval ${unit}` : ''}
in ${f.dataFiles.map((d) => `\`${d}\``).join(' and ')} (source ${f.format}; ${f.dropped} rows left out as bad, see ${f.audit ? '`data/audit.json` and ' : ''}
\`job.json\`).

## Set up (every node)

    python3 -m venv .venv && . .venv/bin/activate
    pip install -r requirements.txt

## Launch

One GPU:

    accelerate launch --config_file accelerate/single_gpu.yaml train.py

One node with ${f.gpus} GPUs (plain data parallel, DeepSpeed ZeRO-2/ZeRO-3 or FSDP):

    accelerate launch --config_file accelerate/zero2_${f.gpus}gpu.yaml train.py

${f.nodes} nodes × ${f.gpus} GPUs: on every node, with that node's rank (0 on the node whose address is given):

    accelerate launch --config_file accelerate/zero3_${f.nodes}x${f.gpus}gpu.yaml \\
      --machine_rank RANK --main_process_ip ADDRESS_OF_RANK_0 --main_process_port 29500 train.py

Slurm: \`sbatch launch/slurm.sbatch\` (one launcher per node; \`CONFIG=accelerate/fsdp_${f.nodes}x${f.gpus}gpu.yaml sbatch ...\`
for another file). Kubernetes: \`launch/kubernetes.yaml\` is a Kubeflow PyTorchJob whose pods mount this folder
(a PersistentVolumeClaim named \`dpo-job\`) and launch the same command with the operator's RANK and MASTER_ADDR.
Other GPU counts: edit \`num_processes\` (all GPUs of all nodes) and \`num_machines\`, or pass
\`--num_processes\`/\`--num_machines\` to \`accelerate launch\`.

Files: ${f.accelerate.map((a) => `\`${a.name}\` (${a.machines}×${a.processes / a.machines})`).join(', ')}.

\`train.py --output-dir DIR\` chooses where the result goes (default \`output/\`); \`--resume\` continues from the
newest checkpoint there; \`python train.py --cpu\` runs the job without a GPU (a smoke test: set a small
\`max_steps\` in \`${f.configFile}\`). Bring the result back with

    dpo import-run output/ --out runs/trl-${f.trainer}

which writes \`metrics.jsonl\` with dpo-ts names and a model \`dpo eval\`, \`dpo score\`, \`dpo convert\` and
\`dpo annotate add-prompts\` read (a LoRA adapter is merged into this job's \`model/\`; with a hub model pass \`--base DIR\`, a local copy).

## Batch size

dpo-ts trained ${perStep} ${f.batchUnit ?? unit} per optimizer step (per_device_train_batch_size ${f.cfg.per_device_train_batch_size} ×
gradient_accumulation_steps ${f.cfg.gradient_accumulation_steps}). TRL multiplies that by the number of processes:
on ${f.gpus} GPUs a step sees ${perStep * f.gpus} ${f.batchUnit ?? unit}. To keep the optimization of a dpo-ts run, divide
\`gradient_accumulation_steps\` (or \`per_device_train_batch_size\`) in \`${f.configFile}\` by the GPU count
where it divides, and scale \`learning_rate\` with the batch if you change it.

## What differs from a dpo-ts run

${differences.map((d) => `- ${d}`).join('\n')}
- This export has not been run end to end on a GPU from this repository's machines (they have none);
  the files are checked by tests (config keys against TRL v${TRL_VERSION}'s ${f.className} fields,
  \`python3 -m py_compile train.py\`, the data read back, the accelerate files parsed).

## Every option, and where it went

| option | value | to | note |
|---|---|---|---|
${table}
`;
}

// ---------------------------------------------------------------------------------------------

/**
 * TRL v1.9.0's token ids for a pair (DPOTrainer._prepare_dataset), computed with our tokenizer:
 * text pairs get the EOS text appended to each response unless it already ends with it, then
 * prompt_ids = tok(prompt) and response ids = tok(prompt + response)[len(prompt_ids):], special
 * tokens added as the tokenizer's post-processor does; chat pairs tokenize the template's
 * rendering (generation prompt for the prompt, prompt + response for the rest) with no special
 * tokens added, as apply_chat_template(tokenize=True) does.
 */
export function trlTokenization(tok: Tokenizer, ex: PreferenceExample): { promptIds: number[]; chosenIds: number[]; rejectedIds: number[] } | { error: string } {
  const r = renderPreference(tok, ex);
  if (!r.ok) return { error: r.message };
  const { prompt, chosen, rejected, chat } = r.value;
  const opts = chat ? { addBos: false } : {};
  let eosText = '';
  if (!chat) {
    if (tok.eosId === null) return { error: 'the tokenizer has no EOS token' };
    eosText = tok.decode([tok.eosId], { skipSpecialTokens: false });
  }
  const withEos = (t: string): string => (chat || t.endsWith(eosText) ? t : t + eosText);
  const promptIds = tok.encode(prompt, opts);
  const cut = (full: number[]): number[] => full.slice(promptIds.length);
  return { promptIds, chosenIds: cut(tok.encode(prompt + withEos(chosen), opts)), rejectedIds: cut(tok.encode(prompt + withEos(rejected), opts)) };
}

/**
 * Whether transformers' tokenizer(text) adds exactly the special tokens our encode(text) does, for
 * the tokenizer.json in dir: its post-processor must add at most a leading BOS (nothing after the
 * text), and tokenizer_config.json's add_bos_token, when present, must agree with it. When they
 * disagree, which one transformers follows depends on the tokenizer class and the transformers
 * version (PreTrainedTokenizerFast follows the post-processor; we follow add_bos_token), so
 * nothing is provable.
 */
export function specialTokensMatchTransformers(dir: string, tok: Tokenizer): { ok: true } | { ok: false; reason: string } {
  const tjPath = join(dir, 'tokenizer.json');
  if (!existsSync(tjPath)) return { ok: false, reason: `${dir} has no tokenizer.json (transformers would convert another format itself)` };
  const tj = JSON.parse(readFileSync(tjPath, 'utf8')) as { post_processor?: PostProcessorJson | null };
  const tp = findTemplateProcessing(tj.post_processor);
  const single = tp?.single ?? [];
  const at = single.findIndex((x) => 'Sequence' in x);
  const before = at < 0 ? [] : single.slice(0, at), after = at < 0 ? [] : single.slice(at + 1);
  if (after.length > 0) return { ok: false, reason: 'tokenizer.json\'s post-processor appends special tokens after the text' };
  const specialIds = (x: (typeof single)[number]): number[] => {
    if (!('SpecialToken' in x)) return [];
    const st = (tp?.special_tokens as Record<string, { ids?: number[] }> | undefined)?.[x.SpecialToken.id];
    return st?.ids ?? [];
  };
  const ppBos = before.length === 1 && tok.bosId !== null && specialIds(before[0]!)[0] === tok.bosId;
  if (before.length > 1 || (before.length === 1 && !ppBos)) return { ok: false, reason: 'tokenizer.json\'s post-processor adds special tokens other than one BOS' };
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>) : {};
  if (typeof cfg.add_bos_token === 'boolean' && cfg.add_bos_token !== ppBos) {
    return { ok: false, reason: `tokenizer_config.json says add_bos_token ${cfg.add_bos_token} but tokenizer.json's post-processor ${ppBos ? 'adds' : 'does not add'} BOS; transformers' choice depends on the tokenizer class and version` };
  }
  if (tok.addsBosByDefault !== ppBos) return { ok: false, reason: `our tokenizer ${tok.addsBosByDefault ? 'adds' : 'does not add'} BOS, tokenizer.json's post-processor ${ppBos ? 'does' : 'does not'}` };
  return { ok: true };
}

/**
 * Whether TRL v1.9.0 feeds the model exactly the tokens we do for this pair, so our reference
 * log-probs are the ones TRL would compute: the same prompt, chosen and rejected ids (TRL's
 * procedure above, run with our implementation of the model's tokenizer.json), and no truncation
 * on our side (the full sequences then fit max_length, so TRL cuts nothing either).
 */
export function trlTokenizationMatches(tok: Tokenizer, ex: PreferenceExample, pair: TokenizedPair): { ok: true } | { ok: false; reason: string } {
  if (pair.promptTruncated || pair.chosenTruncated || pair.rejectedTruncated) return { ok: false, reason: 'truncated by max_length/max_prompt_length/max_completion_length' };
  const trl = trlTokenization(tok, ex);
  if ('error' in trl) return { ok: false, reason: trl.error };
  const same = (a: readonly number[], b: readonly number[]): number => {
    for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
    return -1;
  };
  for (const part of ['promptIds', 'chosenIds', 'rejectedIds'] as const) {
    const at = same(trl[part], pair[part]);
    if (at >= 0) {
      return { ok: false, reason: `${part.replace('Ids', '')} tokens differ at position ${at} (TRL: ${JSON.stringify(trl[part].slice(at, at + 4))}, ours: ${JSON.stringify(pair[part].slice(at, at + 4))})` };
    }
  }
  return { ok: true };
}

function countCompletionTruncated(tok: Parameters<typeof encodePair>[0], examples: readonly PreferenceExample[], pairs: readonly TokenizedPair[], max: number | null): number {
  if (max === null) return 0;
  let n = 0;
  for (const p of pairs) {
    if (!p.chosenTruncated && !p.rejectedTruncated) continue;
    const enc = encodePair(tok, examples[p.index]!);
    if (enc.ok && (enc.value.chosenIds.length > max || enc.value.rejectedIds.length > max)) n++;
  }
  return n;
}

export function checkJobTarget(opts: { out: string; force?: boolean; gpusPerNode?: number; nodes?: number }): void {
  const out = resolve(opts.out);
  if (existsSync(out) && readdirSync(out).length > 0 && !opts.force) throw new Error(`export-job: ${out} exists and is not empty (pass --force to replace it)`);
  const gpus = opts.gpusPerNode ?? 8, nodes = opts.nodes ?? 2;
  if (!(Number.isInteger(gpus) && gpus >= 1)) throw new Error(`export-job: --gpus must be a positive integer, got ${gpus}`);
  if (!(Number.isInteger(nodes) && nodes >= 2)) throw new Error(`export-job: --nodes must be an integer ≥ 2 (the multi-node files), got ${nodes}`);
}

/**
 * Training and eval rows as `dpo train` / `dpo sft` build them: eval rows from --eval-data, or
 * held out of the training rows by eval_split (the same split as the run would make).
 */
export async function dataSplits<D extends { rows: unknown[]; examples: unknown[] }>(
  opts: { data: string[]; evalData?: string[] }, cfg: { eval_split: number; seed: number },
  prepare: (files: string[]) => Promise<D>,
): Promise<{ train: D; trainRows: D['rows']; evalRows: D['rows']; evalExamples: D['examples'] }> {
  const train = await prepare(opts.data);
  let trainRows: D['rows'] = train.rows, evalRows: D['rows'] = [], evalExamples: D['examples'] = train.examples;
  if (opts.evalData && opts.evalData.length > 0) {
    const ev = await prepare(opts.evalData);
    evalRows = ev.rows;
    evalExamples = ev.examples;
  } else if (cfg.eval_split > 0 && trainRows.length > 1) {
    const s = splitEval(trainRows.length, cfg.eval_split, cfg.seed);
    evalRows = s.eval.map((i) => trainRows[i]!);
    trainRows = s.train.map((i) => trainRows[i]!);
  }
  if (trainRows.length === 0) throw new Error(`export-job: no usable training rows in ${opts.data.join(', ')}`);
  return { train, trainRows, evalRows, evalExamples };
}

export async function exportTrlJob(opts: ExportJobOptions): Promise<ExportJobResult> {
  const cfg = opts.config;
  checkJobTarget(opts);

  // ---- data: the same reading, validation and tokenization as `dpo train` ----
  const tokenizer = await loadTokenizerFor(opts.model, opts.tokenizer);
  const prepOpts = preferencePrepareOptions(cfg);
  const { train, trainRows: trainPairs, evalRows: evalPairs, evalExamples } = await dataSplits(opts, cfg, async (files) => {
    const d = await preparePreferenceData(files, tokenizer, prepOpts);
    return { ...d, rows: d.pairs };
  });
  const dropped = train.load.bad + train.tokenize.dropped;

  // ---- options ----
  const promptTruncated = [...trainPairs, ...evalPairs].filter((p) => p.promptTruncated).length;
  const completionTruncated =
    countCompletionTruncated(tokenizer, train.examples, trainPairs, cfg.max_completion_length) +
    countCompletionTruncated(tokenizer, evalExamples, evalPairs, cfg.max_completion_length);
  const modelIsDir = existsSync(opts.model) && statSync(opts.model).isDirectory();
  const { config: trlConfig, notes } = translateDpoConfig(cfg, {
    promptTruncated, completionTruncated, hasEval: evalPairs.length > 0,
    modelDropout: modelIsDir ? dropoutSettings(opts.model) : {},
  });
  // ---- optional reference log-probs (only when TRL provably sees our tokens) ----
  let refCols: { train: { chosen: Float64Array; rejected: Float64Array }; eval: { chosen: Float64Array; rejected: Float64Array } | null } | null = null;
  if (opts.refLogps) {
    if (isReferenceFree(cfg.loss_type)) throw new Error('export-job: --ref-logps: the loss uses no reference model');
    const ldAlpha = (cfg as Record<string, unknown>).ld_alpha;
    if (ldAlpha !== undefined && ldAlpha !== null) throw new Error('export-job: --ref-logps: with ld_alpha TRL weights the reference log-probs per token; not exported');
    if (opts.hubModel) throw new Error('export-job: --ref-logps refused: with --hub-model TRL loads the hub\'s tokenizer, which cannot be checked here');
    const tokDir = opts.tokenizer ?? opts.model;
    const special = existsSync(tokDir) && statSync(tokDir).isDirectory() ? specialTokensMatchTransformers(tokDir, tokenizer) : { ok: false as const, reason: `${tokDir} is not a Hugging Face directory with tokenizer.json` };
    if (!special.ok) throw new Error(`export-job: --ref-logps refused: TRL's tokenization cannot be proven equal to ours: ${special.reason}`);
    const failures: string[] = [];
    let failed = 0;
    const check = (ps: readonly TokenizedPair[], exs: readonly PreferenceExample[]): void => {
      for (const p of ps) {
        const m = trlTokenizationMatches(tokenizer, exs[p.index]!, p);
        if (m.ok) continue;
        failed++;
        if (failures.length < 5) failures.push(`  ${p.loc.file}${p.loc.line !== undefined ? `:${p.loc.line}` : `[row ${p.loc.row}]`}: ${m.reason}`);
      }
    };
    check(trainPairs, train.examples);
    check(evalPairs, evalExamples);
    if (failed > 0) {
      throw new Error(`export-job: --ref-logps refused: for ${failed} of ${trainPairs.length + evalPairs.length} pairs TRL v${TRL_VERSION} would not see our tokens, so our reference log-probs would not be its:\n${failures.join('\n')}`);
    }
    const ref = await loadModelAndTokenizer(opts.ref ?? opts.model, opts.tokenizer);
    const cacheDir = join(opts.cacheDir ?? defaultCacheDir(), 'ref-logps');
    const batches = (n: number, bs: number): number[][] => Array.from({ length: Math.ceil(n / bs) }, (_, b) => Array.from({ length: Math.min(bs, n - b * bs) }, (_, j) => b * bs + j));
    const run = (ps: TokenizedPair[], bs: number) =>
      precomputeReferenceLogps(ref.model, ps, batches(ps.length, bs), tokenizer.padId, cfg.pad_to_multiple_of ?? undefined, cacheDir, opts.quiet ?? true, cfg.padding_free, null, cfg.share_prompt);
    refCols = {
      train: run(trainPairs, cfg.per_device_train_batch_size),
      eval: evalPairs.length ? run(evalPairs, cfg.per_device_eval_batch_size) : null,
    };
    notes.push({ option: '--ref-logps', value: true, to: 'data columns ref_chosen_logps / ref_rejected_logps', detail: 'train.py hands them to TRL instead of a reference pass; DPOConfig.precompute_ref_log_probs set' });
    trlConfig.precompute_ref_log_probs = true;
  }
  const withRef = (rows: TrlRow[], cols: { chosen: Float64Array; rejected: Float64Array } | null | undefined): object[] =>
    cols ? rows.map((r, i) => ({ ...r, ref_chosen_logps: cols.chosen[i]!, ref_rejected_logps: cols.rejected[i]! })) : rows;

  const audit = await preferenceAudit(opts, tokenizer, prepOpts);
  return assembleJob({
    opts, cfg, trainer: 'dpo', trlConfig, notes, audit, format: train.format,
    columns: train.examples[0]?.kind === 'chat' ? 'conversational' : 'standard',
    trainRows: withRef(trainPairs.map((p) => trlRow(train.examples[p.index]!)), refCols?.train),
    evalRows: withRef(evalPairs.map((p) => trlRow(evalExamples[p.index]!)), refCols?.eval),
    dropped, droppedByReason: { ...train.load.badByReason, ...train.tokenize.droppedByReason },
    refLogps: refCols !== null, importSettings: { save_dtype: cfg.save_dtype, watchdogs: cfg.watchdogs, beta: cfg.beta },
  });
}

/** `dpo data check`'s report of a job's preference data (data/audit.json), read as the trainer reads it. */
export async function preferenceAudit(
  opts: { data: string[]; evalData?: string[] | undefined }, tokenizer: Tokenizer, prepOpts: ReturnType<typeof preferencePrepareOptions>,
): Promise<unknown> {
  return auditPreferenceData({
    train: opts.data, eval: opts.evalData && opts.evalData.length ? opts.evalData : undefined, tokenizer,
    format: prepOpts.format, columns: prepOpts.columns, maxLength: prepOpts.maxLength,
    maxPromptLength: prepOpts.maxPromptLength, maxCompletionLength: prepOpts.maxCompletionLength, truncationMode: prepOpts.truncationMode,
  });
}

/** The TRL trainers a job can be for, with their config class. */
export const TRL_TRAINER_CLASSES = {
  dpo: 'DPOConfig', sft: 'SFTConfig', reward: 'RewardConfig', grpo: 'GRPOConfig', rloo: 'RLOOConfig', ppo: 'PPOConfig',
} as const;
export type TrlTrainer = keyof typeof TRL_TRAINER_CLASSES;

export interface JobParts {
  opts: Omit<ExportSftJobOptions, 'config' | 'data'> & { ref?: string | undefined; data: string[] };
  cfg: CommonConfig;
  trainer: TrlTrainer;
  trlConfig: Record<string, unknown>;
  notes: TranslationNote[];
  audit: unknown;
  format: string;
  columns: string;
  trainRows: object[];
  evalRows: object[];
  dropped: number;
  droppedByReason: Record<string, number | undefined>;
  refLogps: boolean;
  importSettings: Record<string, unknown>;
  /** More files of the job (relative path → text or a directory to copy a model from), e.g. rewards.py. */
  extraFiles?: Record<string, string>;
  /** Models copied into the job besides the policy (relative dir → source). */
  extraModels?: Record<string, string>;
  /** More job.json fields (reward functions, value model, ...). */
  jobExtra?: Record<string, unknown>;
  /** What the README calls a row (default pairs / examples), and what a batch counts (default: the same). */
  unit?: string;
  batchUnit?: string;
  /** The README's "What differs from a dpo-ts run" items, replacing the DPO ones. */
  differences?: string[];
}

/** Writes the job folder (into OUT.tmp-PID, renamed at the end). */
export async function assembleJob(j: JobParts): Promise<ExportJobResult> {
  const { opts, cfg, notes } = j;
  const out = resolve(opts.out);
  const gpus = opts.gpusPerNode ?? 8, nodes = opts.nodes ?? 2;
  const className = TRL_TRAINER_CLASSES[j.trainer];
  const configFile = `${j.trainer}_config.yaml`;
  const modelIsDir = existsSync(opts.model) && statSync(opts.model).isDirectory();
  const trlConfig: Record<string, unknown> = {
    output_dir: 'output',
    ...j.trlConfig,
    bf16: true,
    report_to: 'none',
  };
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const files: string[] = [];
    const put = (rel: string, text: string): void => {
      writeText(join(tmp, rel), text);
      files.push(rel);
    };
    const dataFormat = opts.dataFormat ?? 'jsonl';
    const dataFile = (split: string): string => `data/${split}.${JOB_DATA_FORMATS[dataFormat].ext}`;
    writeJobData(join(tmp, dataFile('train')), j.trainRows, dataFormat);
    files.push(dataFile('train'));
    if (j.evalRows.length > 0) {
      writeJobData(join(tmp, dataFile('eval')), j.evalRows, dataFormat);
      files.push(dataFile('eval'));
    }
    if (j.audit !== null) put('data/audit.json', `${JSON.stringify(j.audit, null, 2)}\n`);

    // Model (and reference): copied in as Hugging Face directories, or referenced by hub id.
    let modelRef: string;
    if (opts.hubModel) modelRef = opts.hubModel;
    else {
      await placeModel(opts.model, opts.tokenizer, join(tmp, 'model'));
      modelRef = 'model';
      files.push('model/');
    }
    let refRef: string | null = null;
    const refSrc = 'ref' in opts ? opts.ref : undefined;
    if (refSrc) {
      await placeModel(refSrc, opts.tokenizer, join(tmp, 'ref_model'));
      refRef = 'ref_model';
      files.push('ref_model/');
    }

    for (const [rel, src] of Object.entries(j.extraModels ?? {})) {
      await placeModel(src, opts.tokenizer, join(tmp, rel));
      files.push(`${rel}/`);
    }
    for (const [rel, text] of Object.entries(j.extraFiles ?? {})) put(rel, text);

    let peft: Record<string, unknown> | null = null;
    if (cfg.use_peft) {
      // A reward model's directory names its *ForSequenceClassification class: its body's architecture.
      const arch = modelIsDir ? classifierBodyConfig(opts.model).architecture : 'llama';
      peft = {
        r: cfg.lora_r,
        lora_alpha: cfg.lora_alpha,
        lora_dropout: cfg.lora_dropout,
        target_modules: cfg.lora_target_modules ?? defaultLoraTargets(arch),
        bias: 'none',
        task_type: j.trainer === 'reward' ? 'SEQ_CLS' : 'CAUSAL_LM',
        // The reward head trains in full and is saved beside the adapters (TRL's RewardTrainer docs ask for
        // it; PEFT adds it for SEQ_CLS too); import-run puts it back on the merged model.
        ...(j.trainer === 'reward' ? { modules_to_save: ['score'] } : {}),
        ...(arch === 'gpt2' ? { fan_in_fan_out: true } : {}),
      };
      put('peft_config.json', `${JSON.stringify(peft, null, 2)}\n`);
    }

    put(configFile, `# TRL v${TRL_VERSION} ${className}, translated from dpo-ts options (see README.md for each option).\n${pyYaml(trlConfig)}`);
    const acc = accelerateFiles(gpus, nodes);
    for (const a of acc) put(`accelerate/${a.name}`, pyYaml(a.config));
    put('train.py', readFileSync(TRAIN_PY, 'utf8'));
    put('requirements.txt', requirementsTxt(cfg.use_peft));
    put('launch/slurm.sbatch', slurmScript(gpus, nodes));
    put('launch/kubernetes.yaml', kubernetesManifest(gpus, nodes));
    const job = {
      format: 'dpo-ts trl job',
      version: 1,
      engine: 'trl',
      trl_version: TRL_VERSION,
      trainer: j.trainer,
      created: new Date().toISOString(),
      command: opts.command ?? null,
      model: { ref: modelRef, hub: Boolean(opts.hubModel), source: opts.model },
      ref_model: refRef ? { ref: refRef, source: refSrc } : null,
      tokenizer_source: opts.tokenizer ?? null,
      config_file: configFile,
      peft_config_file: peft ? 'peft_config.json' : null,
      data: {
        train: dataFile('train'),
        eval: j.evalRows.length > 0 ? dataFile('eval') : null,
        file_format: dataFormat,
        loader: JOB_DATA_FORMATS[dataFormat].loader,
        format: j.format,
        columns: j.columns,
        train_rows: j.trainRows.length,
        eval_rows: j.evalRows.length,
        dropped_rows: j.dropped,
        dropped_by_reason: j.droppedByReason,
        source: { train: opts.data, eval: opts.evalData ?? null, eval_split: cfg.eval_split },
      },
      ref_logps: j.refLogps,
      // dpo-ts always evaluates once more at the end of a run with eval data.
      final_evaluate: j.evalRows.length > 0,
      import: j.importSettings,
      dpo_ts_config: cfg,
      translation: notes,
      accelerate: acc.map((a) => ({ file: `accelerate/${a.name}`, kind: a.kind, num_machines: a.machines, num_processes: a.processes })),
      ...j.jobExtra,
    };
    put('job.json', `${JSON.stringify(job, null, 2)}\n`);
    put('README.md', jobReadme({
      trainer: j.trainer, className, configFile,
      model: opts.hubModel ?? basename(resolve(opts.model)), dataFiles: files.filter((x) => /^data\/(train|eval)\./.test(x)), audit: j.audit !== null, trainRows: j.trainRows.length, evalRows: j.evalRows.length, dropped: j.dropped,
      format: j.format, gpus, nodes, accelerate: acc, notes, cfg, unit: j.unit, batchUnit: j.batchUnit, differences: j.differences,
    }));
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    return { dir: out, trainPairs: j.trainRows.length, evalPairs: j.evalRows.length, dropped: j.dropped, notes, files };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * An SFT example in TRL's columns: text → prompt/completion, a conversation → messages. dpo sft
 * masks the loss as TRL's SFTTrainer does for these (completion_only_loss, assistant_only_loss).
 */
export function trlSftRow(ex: SftExample): object {
  return ex.kind === 'text' ? { prompt: ex.prompt, completion: ex.completion } : { messages: ex.messages };
}

/** `dpo export-job --trainer sft`: the same as `dpo sft`, handed to TRL's SFTTrainer. */
export async function exportTrlSftJob(opts: ExportSftJobOptions): Promise<ExportJobResult> {
  const cfg = opts.config;
  checkJobTarget(opts);
  const tokenizer = await loadTokenizerFor(opts.model, opts.tokenizer);
  const prepOpts = {
    format: (cfg.dataset_format ?? undefined) as DataFormat | undefined,
    columns: cfg.columns ?? undefined,
    onBadRow: cfg.on_bad_row,
    maxLength: cfg.max_length ?? undefined,
  };
  const { train, trainRows, evalRows, evalExamples } = await dataSplits(opts, cfg, (files) => prepareSftData(files, tokenizer, prepOpts));
  const modelIsDir = existsSync(opts.model) && statSync(opts.model).isDirectory();
  const modelDropout = modelIsDir ? dropoutSettings(opts.model) : {};
  const { config: trlConfig, notes } = translateSftConfig(cfg, {
    promptTruncated: 0, completionTruncated: 0, hasEval: evalRows.length > 0, modelDropout, trainer: 'sft',
    chatRows: train.examples.some((e) => e.kind === 'chat'), generationTags: /\{%-?\s*generation\s*-?%\}/.test(tokenizer.chatTemplate ?? ''),
  });

  const toRows = (rows: typeof trainRows, exs: readonly SftExample[]) => rows.map((r) => trlSftRow(exs[r.index]!));
  const trainOut = toRows(trainRows, train.examples), evalOut = toRows(evalRows, evalExamples);
  const chat = train.examples[0]?.kind === 'chat';
  // TRL's SFTTrainer keeps the model's dropout on; ours has none.
  for (const [k, d] of Object.entries(modelDropout)) {
    if (d === 0) continue;
    trlConfig.model_init_kwargs = { ...(trlConfig.model_init_kwargs as object | undefined), [k]: 0 };
    notes.push({ option: '(model dropout)', value: d, to: `SFTConfig.model_init_kwargs.${k}`, detail: 'our models run without dropout' });
  }
  const dropped = train.load.bad + train.tokenize.dropped;
  return assembleJob({
    opts, cfg, trainer: 'sft', trlConfig, notes, audit: null, format: train.format,
    columns: chat ? 'messages' : 'prompt-completion',
    trainRows: trainOut,
    evalRows: evalOut,
    dropped, droppedByReason: { ...train.load.badByReason, ...train.tokenize.droppedByReason },
    refLogps: false, importSettings: { save_dtype: cfg.save_dtype, watchdogs: false },
  });
}
