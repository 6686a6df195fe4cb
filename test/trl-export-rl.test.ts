// `dpo export-job --trainer rm|grpo|rloo|ppo`: every option of our RewardConfig / GRPOConfig /
// PPOConfig has a rule; the written configs use only TRL v1.9.0's RewardConfig / GRPOConfig /
// RLOOConfig / (experimental) PPOConfig fields (the stored field list); refusals by name (vader, JS
// reward modules, PPO without a reward model, options that would change the run); the data read
// back as the same pairs (with margins) or prompts (PPO: our token ids); the Python `afinn` reward
// gives our scores; a trained reward model goes in as a model path; train.py compiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { GrpoConfigSchema, parseGrpoConfig, parsePpoConfig, parseRewardConfig, PpoConfigSchema, RewardConfigSchema } from '../src/train/rl-config.js';
import { GRPO_RULES, PPO_RULES, REWARD_RULES, translateGrpoConfig, translatePpoConfig, translateRewardConfig, type RlTranslationContext } from '../src/train/trl-translate-rl.js';
import { RefusedOptions } from '../src/train/trl-translate.js';
import { readRecords } from '../src/data/readers.js';
import { exportTrlGrpoJob, exportTrlPpoJob, exportTrlRmJob, rewardExport } from '../src/train/trl-export-rl.js';
import { builtinTextScorer } from '../src/train/rewards.js';
import { runRewardModel } from '../src/train/rm.js';
import { loadPrompts } from '../src/train/rollout.js';
import { loadPreferenceData } from '../src/data/load.js';
import { loadTokenizerFor } from '../src/io/load-model.js';
import { buildProgram } from '../src/cli/index.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIELDS = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'trl', 'v1.9.0', 'config-fields.json'), 'utf8')) as {
  configs: Record<string, { fields: { name: string }[] }>;
};
const fields = (cls: string): Set<string> => new Set(FIELDS.configs[cls]!.fields.map((f) => f.name));

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const modelDir = await makeTinyModelDir();
const dataDir = tmp('rl-export-data-');
const pairs = syntheticPairs(24, 3);
// Margins on every pair (TRL's optional column).
const pairsFile = writeJsonl(join(dataDir, 'pairs.jsonl'), pairs.map((p, i) => ({ ...p, margin: i / 10 })));
const promptsFile = writeJsonl(join(dataDir, 'prompts.jsonl'), pairs.map((p) => ({ prompt: p.prompt })));
const rmDir = tmp('rl-export-rm-');
await runRewardModel({
  model: modelDir, data: [pairsFile], outputDir: rmDir, quiet: true,
  config: parseRewardConfig({ learning_rate: 1e-3, per_device_train_batch_size: 8, max_steps: 1, save_steps: 0, logging_steps: 1 }),
});
const ctx: RlTranslationContext = { promptTruncated: 0, completionTruncated: 0, hasEval: true, modelDropout: {}, ppoBatch: 4 };
const python = spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' }).status === 0;

test('every option of dpo rm / grpo / rloo / ppo has a TRL translation rule, and every rule an option', () => {
  assert.deepEqual(Object.keys(REWARD_RULES).sort(), Object.keys(RewardConfigSchema.shape).sort());
  assert.deepEqual(Object.keys(GRPO_RULES).sort(), Object.keys(GrpoConfigSchema.shape).sort());
  assert.deepEqual(Object.keys(PPO_RULES).sort(), Object.keys(PpoConfigSchema.shape).sort());
});

test('translated configs use only TRL v1.9.0 RewardConfig / GRPOConfig / RLOOConfig / PPOConfig fields, every option noted', () => {
  const check = (cls: string, t: { config: Record<string, unknown>; notes: { option: string }[] }, cfg: object, what: string): void => {
    const unknown = Object.keys(t.config).filter((k) => !fields(cls).has(k));
    assert.deepEqual(unknown, [], `${what} → keys not in ${cls}: ${unknown.join(', ')}`);
    for (const k of Object.keys(cfg)) assert.ok(t.notes.some((n) => n.option === k), `${what}: ${k} has no note`);
  };
  for (const v of [{}, { center_rewards_coefficient: 0.01, max_length: 256, eval_strategy: 'steps', eval_steps: 5 }, { use_peft: true, lora_r: 4, pad_to_multiple_of: 8, margin_column: null }]) {
    const cfg = parseRewardConfig(v);
    check('RewardConfig', translateRewardConfig(cfg, ctx), cfg, `rm ${JSON.stringify(v)}`);
  }
  for (const v of [{}, { beta: 0.04, loss_type: 'grpo', scale_rewards: false, num_iterations: 2, epsilon_high: 0.28, mask_truncated_completions: true },
    { importance_sampling_level: 'sequence', loss_type: 'sapo', top_k: 5, top_p: 0.9, delta: 2, multi_objective_aggregation: 'normalize_then_sum' }]) {
    const cfg = parseGrpoConfig(v);
    const t = translateGrpoConfig(cfg, ctx);
    check('GRPOConfig', t, cfg, `grpo ${JSON.stringify(v)}`);
    if (v.scale_rewards === false) assert.equal(t.config.scale_rewards, 'none');
  }
  for (const v of [{ rloo: true }, { rloo: true, beta: 0.05, normalize_advantages: true, num_iterations: 2, reward_weights: [1] }]) {
    const cfg = parseGrpoConfig(v);
    check('RLOOConfig', translateGrpoConfig(cfg, ctx), cfg, `rloo ${JSON.stringify(v)}`);
  }
  for (const v of [{ reward_funcs: [rmDir] }, { reward_funcs: [rmDir], max_steps: 10, kl_estimator: 'k3', whiten_rewards: true, stop_token: 'eos', missing_eos_penalty: 1 }]) {
    const cfg = parsePpoConfig(v);
    const t = translatePpoConfig(cfg, ctx);
    check('PPOConfig', t, cfg, `ppo ${JSON.stringify(v)}`);
    if (cfg.max_steps > 0) assert.equal(t.config.total_episodes, 40, 'max_steps × prompts per update');
  }
});

test('refusals name the option: GRPO-only options under rloo, PPO with LoRA or top_k, pairs or prompts the limits would cut', () => {
  const refused = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: Error) => e instanceof RefusedOptions && re.test(e.message), String(re));
  refused(() => translateGrpoConfig(parseGrpoConfig({ rloo: true, loss_type: 'grpo' }), ctx), /RLOOConfig[\s\S]*loss_type: loss_type is a GRPO option/);
  assert.equal((translateGrpoConfig(parseGrpoConfig({ rloo: true, epsilon_high: 0.3 }), ctx).config as Record<string, unknown>).epsilon_high, 0.3);
  refused(() => translateGrpoConfig(parseGrpoConfig({ normalize_advantages: true }), ctx), /normalize_advantages: an RLOO option/);
  refused(() => translateGrpoConfig(parseGrpoConfig({ max_prompt_length: 8 }), { ...ctx, promptTruncated: 3 }), /max_prompt_length: cuts 3 prompts/);
  refused(() => translatePpoConfig(parsePpoConfig({ use_peft: true, top_k: 4 }), ctx), /use_peft: dpo ppo with use_peft[\s\S]*top_k:/);
  refused(() => translateRewardConfig(parseRewardConfig({ max_length: 16 }), { ...ctx, lengthTruncated: 5 }), /max_length: cuts 5 pairs[\s\S]*drops pairs longer/);
  refused(() => translateRewardConfig(parseRewardConfig({ padding_free: true }), ctx), /padding_free/);
  // PPO's max_prompt_length is carried exactly: the prompts go as our (cut) token ids.
  const t = translatePpoConfig(parsePpoConfig({ max_prompt_length: 8 }), { ...ctx, promptTruncated: 3 });
  assert.ok(t.notes.some((n) => n.option === 'max_prompt_length' && /3 of them cut/.test(n.detail ?? '')));
});

test('reward functions: afinn as Python, a reward model as a path; vader and JS modules refused by name', () => {
  assert.deepEqual(rewardExport('afinn', 0), { kind: 'python', spec: 'afinn', function: 'afinn' });
  assert.deepEqual(rewardExport(rmDir, 2), { kind: 'model', spec: rmDir, dir: 'reward_models/2' });
  assert.match((rewardExport('vader', 0) as { reason: string }).reason, /^vader: .*not provably identical/);
  assert.match((rewardExport('./r.mjs#f', 0) as { reason: string }).reason, /JavaScript reward function cannot run in TRL/);
  assert.equal(rewardExport(modelDir, 0).kind, 'refused', 'a causal LM is not a reward model');
});

test('rm job: RewardConfig keys only, the pairs (and margins) read back, train.py compiles', async () => {
  const out = join(tmp('rl-job-rm-'), 'job');
  const res = await exportTrlRmJob({ model: rmDir, data: [pairsFile], out, config: parseRewardConfig({ eval_split: 0.25, center_rewards_coefficient: 0.01 }) });
  assert.equal(res.trainPairs + res.evalPairs, 24);
  const cfg = parseYaml(readFileSync(join(out, 'reward_config.yaml'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(cfg).filter((k) => !fields('RewardConfig').has(k)), []);
  assert.equal(cfg.center_rewards_coefficient, 0.01);
  const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(job.trainer, 'reward');
  assert.equal(job.margins, true);
  // The pairs' audit, as for DPO jobs (dpo data check's report); the README points to it.
  assert.equal((JSON.parse(readFileSync(join(out, 'data', 'audit.json'), 'utf8')) as { train: { valid: number } }).train.valid, 24);
  assert.match(readFileSync(join(out, 'README.md'), 'utf8'), /in `data\/train\.jsonl` and `data\/eval\.jsonl` \(source [^;]+; 0 rows left out as bad, see `data\/audit\.json`/);
  // The reward model keeps its sequence-classification architecture (not rewritten to the causal LM).
  const arch = (JSON.parse(readFileSync(join(out, 'model', 'config.json'), 'utf8')) as { architectures: string[] }).architectures;
  assert.ok(arch.every((a) => a.endsWith('ForSequenceClassification')), arch.join());
  const back = [...(await loadPreferenceData([join(out, 'data', 'train.jsonl')])).examples, ...(await loadPreferenceData([join(out, 'data', 'eval.jsonl')])).examples];
  const key = (p: { prompt: unknown; chosen: unknown; rejected: unknown }): string => JSON.stringify([p.prompt, p.chosen, p.rejected]);
  assert.deepEqual(back.map(key).sort(), pairs.map(key).sort());
  const rows = readFileSync(join(out, 'data', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; margin: number });
  for (const r of rows) assert.equal(r.margin, pairs.findIndex((p) => p.prompt === r.prompt) / 10);
  const py = spawnSync('python3', ['-m', 'py_compile', join(out, 'train.py')], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);

  // With LoRA: a SEQ_CLS PEFT config that saves the score head (import-run merges it back); data as Parquet, margins float64.
  const lora = join(tmp('rl-job-rm-lora-'), 'job');
  await exportTrlRmJob({ model: rmDir, data: [pairsFile], out: lora, dataFormat: 'parquet', config: parseRewardConfig({ use_peft: true, lora_r: 4 }) });
  const peft = JSON.parse(readFileSync(join(lora, 'peft_config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual([peft.task_type, peft.modules_to_save, peft.r], ['SEQ_CLS', ['score'], 4]);
  const pq: Record<string, unknown>[] = [];
  for await (const r of readRecords(join(lora, 'data', 'train.parquet'))) pq.push(r.value as Record<string, unknown>);
  assert.equal(pq.length, 24);
  for (const r of pq) assert.equal(r.margin, pairs.findIndex((p) => p.prompt === r.prompt) / 10);
});

test('grpo/rloo jobs: prompt-only data, GRPOConfig/RLOOConfig keys, the Python afinn gives our scores, the RM as a model path', async () => {
  const out = join(tmp('rl-job-grpo-'), 'job');
  await exportTrlGrpoJob({ model: modelDir, prompts: [promptsFile], out, config: parseGrpoConfig({ reward_funcs: ['afinn', rmDir], reward_weights: [1, 0.5], beta: 0.04, max_steps: 3 }) });
  const cfg = parseYaml(readFileSync(join(out, 'grpo_config.yaml'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(cfg).filter((k) => !fields('GRPOConfig').has(k)), []);
  assert.deepEqual(cfg.reward_weights, [1, 0.5]);
  assert.equal(cfg.disable_dropout, true);
  const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')) as { reward_funcs: { kind: string; path?: string; function?: string }[] };
  assert.deepEqual(job.reward_funcs.map((f) => f.kind), ['python', 'model']);
  assert.ok(existsSync(join(out, job.reward_funcs[1]!.path!, 'model.safetensors')));
  const tok = await loadTokenizerFor(modelDir);
  const ours = await loadPrompts([promptsFile], tok, 'prompt', 512);
  const rows = readFileSync(join(out, 'data', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: unknown });
  assert.deepEqual(rows.map((r) => r.prompt), ours.map((p) => p.source));
  assert.equal(spawnSync('python3', ['-m', 'py_compile', join(out, 'train.py'), join(out, 'rewards.py')], { encoding: 'utf8' }).status, 0);
  if (python) {
    // The exported afinn against npm sentiment on texts with punctuation, negation, emoji, odd whitespace
    // and JavaScript's prototype names.
    const texts = [
      'What a wonderful, happy day!', 'This is not good.', "I don't like it; it's bad.", 'constructor good', '__proto__ love',
      'Great\n\nterrible\u00a0\u00a0awful', '  nice  ', 'so 😀 and 😡', 'GOOD. Bad? (excellent)', '', 'hasOwnProperty fine',
      'no-fun zero-sum', 'l\u0130ke \u03a3\u039f\u03a3 love', 'can\'t stand losers, won\'t win',
    ];
    const js = builtinTextScorer('afinn');
    const r = spawnSync('python3', [join(out, 'rewards.py')], { input: texts.map((t) => JSON.stringify(t)).join('\n') + '\n', encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').map(Number), texts.map((t) => js(t)));
  }
  const rlooOut = join(tmp('rl-job-rloo-'), 'job');
  await exportTrlGrpoJob({ model: modelDir, prompts: [promptsFile], out: rlooOut, config: parseGrpoConfig({ rloo: true, beta: 0.05, normalize_advantages: true }) });
  const rc = parseYaml(readFileSync(join(rlooOut, 'rloo_config.yaml'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(rc).filter((k) => !fields('RLOOConfig').has(k)), []);
  assert.equal(rc.normalize_advantages, true);
  await assert.rejects(
    exportTrlGrpoJob({ model: modelDir, prompts: [promptsFile], out: join(tmp('rl-job-x-'), 'job'), config: parseGrpoConfig({ reward_funcs: ['vader', './r.mjs'] }) }),
    (e: Error) => e instanceof RefusedOptions && /reward_funcs: vader: [\s\S]*\.\/r\.mjs: a JavaScript reward function/.test(e.message),
  );
});

test('ppo job: PPOConfig keys, prompts as our token ids, the reward model copied in and the value model from it', async () => {
  const out = join(tmp('rl-job-ppo-'), 'job');
  await exportTrlPpoJob({ model: modelDir, prompts: [promptsFile], out, config: parsePpoConfig({ reward_funcs: [rmDir], max_steps: 5, per_device_train_batch_size: 2, num_mini_batches: 2, max_prompt_length: 6, stop_token: 'eos' }) });
  const cfg = parseYaml(readFileSync(join(out, 'ppo_config.yaml'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(cfg).filter((k) => !fields('PPOConfig').has(k)), []);
  assert.equal(cfg.total_episodes, 20);
  assert.equal(cfg.stop_token, 'eos');
  const tok = await loadTokenizerFor(modelDir);
  const ours = await loadPrompts([promptsFile], tok, 'prompt', 6);
  const rows = readFileSync(join(out, 'data', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { input_ids: number[] });
  assert.deepEqual(rows.map((r) => r.input_ids), ours.map((p) => p.ids));
  const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')) as { reward_model: string; value_model: { path: string } };
  assert.ok(existsSync(join(out, job.reward_model, 'config.json')));
  assert.equal(job.value_model.path, 'reward_model');
  await assert.rejects(
    exportTrlPpoJob({ model: modelDir, prompts: [promptsFile], out: join(tmp('rl-job-y-'), 'job'), config: parsePpoConfig({ reward_funcs: ['afinn'] }) }),
    (e: Error) => e instanceof RefusedOptions && /reward_funcs: .*exactly one reward model.*not a reward function \(afinn\)/.test(e.message),
  );
});

test('dpo export-job --trainer grpo|rm on the command line; flags of another trainer are refused', async () => {
  const out = join(tmp('rl-job-cli-'), 'job');
  await buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--trainer', 'grpo', '--out', out, '--model', modelDir,
    '--prompts', promptsFile, '--num-generations', '4', '--per-device-train-batch-size', '8', '--quiet'], { from: 'node' });
  const cfg = parseYaml(readFileSync(join(out, 'grpo_config.yaml'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.num_generations, 4);
  await assert.rejects(
    buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--trainer', 'grpo', '--out', join(out, 'x'), '--model', modelDir,
      '--prompts', promptsFile, '--kl-coef', '0.1', '--quiet'], { from: 'node' }),
    /--kl-coef is not an option of this trainer/,
  );
  await assert.rejects(
    buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--trainer', 'rm', '--out', join(out, 'y'), '--model', modelDir, '--prompts', promptsFile], { from: 'node' }),
    /--data is required/,
  );
  const rmOut = join(tmp('rl-job-cli-rm-'), 'job');
  writeFileSync(join(dataDir, 'rm.yaml'), 'center_rewards_coefficient: 0.02\n');
  await buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--trainer', 'rm', '--out', rmOut, '--model', modelDir,
    '--data', pairsFile, '--config', join(dataDir, 'rm.yaml'), '--quiet'], { from: 'node' });
  assert.equal((parseYaml(readFileSync(join(rmOut, 'reward_config.yaml'), 'utf8')) as Record<string, unknown>).center_rewards_coefficient, 0.02);
});
