// End-to-end check of the TRL hand-over with a real TRL install (no GPU needed): exports jobs from
// a tiny Llama (DPO full fine-tuning, LoRA, with our reference log-probs; SFT with LoRA) and a tiny
// GPT-2 (DPO LoRA: Conv1D, fan_in_fan_out), runs each job's train.py
// on the CPU with TRL, compares our exported reference log-probs with the ones TRL computes itself
// (float32), imports each result back with `import-run`, and checks the merged GPT-2 adapter
// against PEFT's own adapted model. Also: a DPO job with its data as Parquet (--data-format parquet,
// loaded by load_dataset("parquet")), and a reward model trained with LoRA (RewardTrainer, task_type
// SEQ_CLS: the score head in modules_to_save) whose merged import is scored against PEFT's adapted
// AutoModelForSequenceClassification.
//
//   npx tsc -p . && PYTHON=/path/to/venv/bin/python node dist/bench/trl-e2e.js [--keep]
//
// PYTHON must have trl (v1.9.0), transformers, datasets, accelerate, peft and PyYAML (the versions
// of a job's requirements.txt; torch's CPU build does). Prints one JSON summary.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDpoConfig, parseSftConfig } from '../src/train/config.js';
import { exportTrlJob, exportTrlSftJob } from '../src/train/trl-export.js';
import { importRun } from '../src/train/import-run.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from '../test/fixtures/train/tiny.js';
import { TINY_GPT2 } from '../test/helpers/fixtures.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { exportTrlRmJob } from '../src/train/trl-export-rl.js';
import { parseRewardConfig } from '../src/train/rl-config.js';
import { loadSequenceClassifier } from '../src/io/reward-dir.js';

const PYTHON = process.env.PYTHON ?? 'python3';
const keep = process.argv.includes('--keep');
const work = mkdtempSync(join(tmpdir(), 'dpo-trl-e2e-'));

const COMPARE = `
import json, sys, tempfile
from datasets import load_dataset
from transformers import AutoTokenizer
from trl import DPOConfig, DPOTrainer
job, max_length = sys.argv[1], int(sys.argv[2])
ds = load_dataset("json", data_files={"train": f"{job}/data/train.jsonl"})["train"]
ours = list(ds["ref_chosen_logps"]) + list(ds["ref_rejected_logps"])
ds = ds.remove_columns(["ref_chosen_logps", "ref_rejected_logps"])
args = DPOConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, bf16=False, precompute_ref_log_probs=True, max_length=max_length, report_to="none")
t = DPOTrainer(model=f"{job}/model", args=args, train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(f"{job}/model"))
theirs = list(t.train_dataset["ref_chosen_logps"]) + list(t.train_dataset["ref_rejected_logps"])
d = [abs(a - b) for a, b in zip(ours, theirs)]
print(json.dumps({"values": len(d), "max_abs_diff": max(d), "mean_abs_diff": sum(d) / len(d)}))
`;

const PEFT_LOGPS = `
import json, sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
job, ids = sys.argv[1], json.loads(sys.argv[2])
base = AutoModelForCausalLM.from_pretrained(f"{job}/model", dtype=torch.float32).eval()
def lps(m):
    with torch.no_grad():
        lg = m(torch.tensor([ids])).logits[0, :-1].double().log_softmax(-1)
    return lg.gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()
b = lps(base)
print(json.dumps({"base": b, "peft": lps(PeftModel.from_pretrained(base, f"{job}/output").eval())}))
`;

const PEFT_REWARDS = `
import json, sys, torch
from transformers import AutoModelForSequenceClassification
from peft import PeftModel
job, rows = sys.argv[1], json.loads(sys.argv[2])
base = AutoModelForSequenceClassification.from_pretrained(f"{job}/model", num_labels=1, dtype=torch.float32).eval()
m = PeftModel.from_pretrained(base, f"{job}/output").eval()
with torch.no_grad():
    print(json.dumps([m(torch.tensor([ids])).logits[0, 0].item() for ids in rows]))
`;

function python(args: string[], cwd: string, log: string): string {
  const r = spawnSync(PYTHON, args, { cwd, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '1' }, maxBuffer: 64 << 20 });
  writeFileSync(join(work, log), `${r.stdout}\n${r.stderr}`);
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} failed (see ${join(work, log)}):\n${r.stderr.slice(-2000)}`);
  return r.stdout;
}

const versions = JSON.parse(python(['-c', 'import json, trl, transformers, datasets, accelerate, torch; print(json.dumps({m.__name__: m.__version__ for m in (trl, transformers, datasets, accelerate, torch)}))'], work, 'versions.log').trim());
const model = await makeTinyModelDir();
// The fixture's tokenizer_config says add_bos_token true while its tokenizer.json adds no BOS;
// transformers follows the latter, so --ref-logps needs them to agree: a copy with add_bos_token false.
const tc = JSON.parse(readFileSync(join(model, 'tokenizer_config.json'), 'utf8'));
writeFileSync(join(model, 'tokenizer_config.json'), JSON.stringify({ ...tc, add_bos_token: false }));
const data = writeJsonl(join(work, 'train.jsonl'), syntheticPairs(48, 1));
const base = { eval_split: 0.25, learning_rate: 1e-3, max_steps: 6, logging_steps: 1, per_device_train_batch_size: 4, per_device_eval_batch_size: 4, save_steps: 3, max_length: 64 };

const results: Record<string, unknown> = {};
const sftData = writeJsonl(join(work, 'sft.jsonl'), syntheticPairs(48, 1).map((p) => ({ prompt: p.prompt, completion: p.chosen })));
for (const [name, extra, refLogps] of [['full', {}, false], ['lora', { use_peft: true, lora_dropout: 0 }, false], ['ref-logps', {}, true], ['sft-lora', { use_peft: true }, false], ['gpt2-lora', { use_peft: true, lora_dropout: 0 }, false], ['parquet', {}, false], ['rm-lora', { use_peft: true, lora_dropout: 0 }, false]] as const) {
  const job = join(work, `job-${name}`);
  const t0 = Date.now();
  if (name === 'gpt2-lora') await exportTrlJob({ model: TINY_GPT2, data: [data], config: parseDpoConfig({ ...base, ...extra }), out: job });
  else if (name === 'parquet') await exportTrlJob({ model, data: [data], config: parseDpoConfig({ ...base, ...extra }), out: job, dataFormat: 'parquet' });
  else if (name === 'rm-lora') {
    const { max_length: _omit, ...rmBase } = base;
    await exportTrlRmJob({ model, data: [data], config: parseRewardConfig({ ...rmBase, ...extra }), out: job });
  } else if (name.startsWith('sft')) await exportTrlSftJob({ model, data: [sftData], config: parseSftConfig({ ...base, ...extra }), out: job });
  else await exportTrlJob({ model, data: [data], config: parseDpoConfig({ ...base, ...extra }), out: job, refLogps, cacheDir: join(work, 'cache') });
  const r: Record<string, unknown> = {};
  if (refLogps) r.ref_logps_vs_trl = JSON.parse(python(['-c', COMPARE, job, String(base.max_length)], job, `compare-${name}.log`).trim().split('\n').at(-1)!);
  python(['train.py', '--cpu'], job, `train-${name}.log`);
  const imported = await importRun(join(job, 'output'), { out: join(work, `imported-${name}`) });
  const lines = readFileSync(join(imported.dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const train = lines.filter((l) => 'loss' in l);
  r.kind = imported.kind;
  r.steps = imported.globalStep;
  r.loss_first_last = [train[0]?.loss, train.at(-1)?.loss];
  r.eval_loss = lines.find((l) => 'eval/loss' in l)?.['eval/loss'];
  if (name === 'gpt2-lora') {
    // The adapter merged by import-run against PEFT's adapted model, token by token.
    const ids = [5, 7, 9, 11, 3, 2, 8];
    const peft = JSON.parse(python(['-c', PEFT_LOGPS, job, JSON.stringify(ids)], job, 'peft-gpt2.log').trim().split('\n').at(-1)!) as { base: number[]; peft: number[] };
    const m = await loadModelAndTokenizer(imported.dir);
    const ours = m.model.tokenLogprobs({ ids: Int32Array.from(ids), batch: 1, seq: ids.length }, Int32Array.from([...ids.slice(1), -1])).data;
    r.merged_vs_peft_max_abs_diff = Math.max(...peft.peft.map((v, i) => Math.abs(v - ours[i]!)));
    r.adapter_effect_max_abs = Math.max(...peft.peft.map((v, i) => Math.abs(v - peft.base[i]!)));
  }
  if (name === 'rm-lora') {
    // The LoRA reward model merged by import-run against PEFT's adapted classifier, sequence by sequence.
    const rows = [[5, 7, 9, 11, 3], [8, 2, 6], [4, 4, 12, 13, 14, 15]];
    const theirs = JSON.parse(python(['-c', PEFT_REWARDS, job, JSON.stringify(rows)], job, 'peft-rm.log').trim().split('\n').at(-1)!) as number[];
    const { model: rm } = loadSequenceClassifier(imported.dir);
    const ours = rows.map((ids) => rm.rewards(Int32Array.from(ids), 1, ids.length).data[0]!);
    r.rm_merged_vs_peft_max_abs_diff = Math.max(...theirs.map((v, i) => Math.abs(v - ours[i]!)));
    r.rm_rewards = ours;
  }
  r.seconds = (Date.now() - t0) / 1000;
  results[name] = r;
}
process.stdout.write(`${JSON.stringify({ python: PYTHON, versions, results, work: keep ? work : null }, null, 2)}\n`);
if (!keep) rmSync(work, { recursive: true, force: true });
