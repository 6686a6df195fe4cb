// `dpo export-job --engine trl`: the option translation (every option covered; keys a subset of TRL
// v1.9.0's DPOConfig fields; untranslatable options refused by name), the data read back as the
// same pairs, train.py compiling, accelerate files parsing with their process counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { DpoConfigSchema, parseDpoConfig, parseSftConfig, SftConfigSchema, type DpoConfig } from '../src/train/config.js';
import { SFT_RULES, DPO_RULES, RefusedOptions, translateDpoConfig, translateSftConfig, TRL_VERSION, type TranslationContext } from '../src/train/trl-translate.js';
import { exportTrlJob, exportTrlSftJob, PINNED, pyYaml, requirementsTxt } from '../src/train/trl-export.js';
import { loadPreferenceData, loadSftData } from '../src/data/load.js';
import { buildProgram } from '../src/cli/index.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';
import { fx } from './fixtures/data/paths.js';
import { TINY_GPT2 } from './helpers/fixtures.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIELDS = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'trl', 'v1.9.0', 'config-fields.json'), 'utf8')) as {
  trl: { tag: string };
  transformers: { tag: string };
  configs: Record<string, { fields: { name: string }[] }>;
};
const DPO_FIELDS = new Set(FIELDS.configs.DPOConfig!.fields.map((f) => f.name));
const SFT_FIELDS = new Set(FIELDS.configs.SFTConfig!.fields.map((f) => f.name));

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const modelDir = await makeTinyModelDir();
const dataDir = tmp('dpo-export-data-');
const pairs = syntheticPairs(40, 3);
const trainFile = writeJsonl(join(dataDir, 'train.jsonl'), pairs);

/** python3 with PyYAML (what accelerate and TRL parse YAML with), or null. */
const pyYamlAvailable = spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' }).status === 0;
function parseWithPyYaml(path: string): unknown {
  const r = spawnSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const ctx: TranslationContext = { promptTruncated: 0, completionTruncated: 0, hasEval: true, modelDropout: { resid_pdrop: 0.1, attention_dropout: 0 } };

test('every dpo-ts option has a TRL translation rule, and every rule an option', () => {
  // A new config option without a rule fails here (and DPO_RULES' type fails to compile).
  assert.deepEqual(Object.keys(DPO_RULES).sort(), Object.keys(DpoConfigSchema.shape).sort());
  assert.deepEqual(Object.keys(SFT_RULES).sort(), Object.keys(SftConfigSchema.shape).sort());
});

test(`translated configs use only TRL v${TRL_VERSION} DPOConfig fields (the stored field list)`, () => {
  assert.equal(FIELDS.trl.tag, `v${TRL_VERSION}`);
  const variants: Record<string, unknown>[] = [
    {},
    { use_peft: true, lora_dropout: 0.1, lora_target_modules: ['q_proj', 'k_proj'], disable_dropout: false },
    { ld_alpha: 0.5, f_divergence_type: 'alpha_divergence', f_alpha_divergence_coef: 0.3, use_weighting: true, data_seed: 3, eval_strategy: 'steps' },
    { sync_ref_model: true, ref_model_mixup_alpha: 0.5, ref_model_sync_steps: 16, save_strategy: 'no', truncation_mode: 'keep_end', output_dir: 'x' },
    { precompute_ref_log_probs: true, precompute_ref_batch_size: 16, train_sampling_strategy: 'group_by_length', router_aux_loss_coef: 0 },
    { padding_free: true, eval_steps: 5, save_steps: 0, lr_scheduler_type: 'constant', warmup_ratio: 0.1 },
    { loss_type: ['aot_pair', 'exo_pair'], label_smoothing: 0.01 },
    { loss_type: 'exo_pair', label_smoothing: 1e-3 },
    { loss_type: 'ipo', rpo_alpha: 0.5, precompute_ref_log_probs: true },
    { loss_type: ['sigmoid', 'hinge'], loss_weights: [1, 0.2], rpo_alpha: 1 },
    { max_length: null, pad_to_multiple_of: 8, group_by_length: true, save_total_limit: 2 },
  ];
  for (const v of variants) {
    const cfg = parseDpoConfig(v);
    const { config, notes } = translateDpoConfig(cfg, ctx);
    const unknown = Object.keys(config).filter((k) => !DPO_FIELDS.has(k));
    assert.deepEqual(unknown, [], `${JSON.stringify(v)} → keys not in DPOConfig: ${unknown.join(', ')}`);
    // Every option is accounted for in the notes.
    for (const k of Object.keys(cfg)) assert.ok(notes.some((n) => n.option === k), `${k} has no note`);
  }
  // Specific translations.
  const t = (v: Record<string, unknown>) => translateDpoConfig(parseDpoConfig(v), ctx).config;
  assert.deepEqual(t({ loss_type: 'aot_pair' }).loss_type, ['aot_unpaired']);
  assert.deepEqual(t({ loss_type: 'ipo', rpo_alpha: 0.5 }).loss_type, ['ipo', 'sft']);
  assert.deepEqual(t({ loss_type: 'ipo', rpo_alpha: 0.5 }).loss_weights, [1, 0.5]);
  assert.equal(t({ loss_type: 'exo_pair', label_smoothing: 1e-3 }).label_smoothing, 1e-3);
  assert.equal(t({ lr_scheduler_type: 'constant', warmup_steps: 3 }).lr_scheduler_type, 'constant_with_warmup');
  assert.equal(t({ lr_scheduler_type: 'constant' }).lr_scheduler_type, 'constant');
  assert.equal(t({ save_steps: 0 }).save_strategy, 'no');
  assert.equal(t({ eval_steps: 5 }).eval_strategy, 'steps');
  const peft = t({ use_peft: true, lora_dropout: 0.1, disable_dropout: false });
  assert.equal(peft.disable_dropout, false);
  assert.deepEqual(peft.model_init_kwargs, { resid_pdrop: 0 });
  assert.equal(t({ use_peft: true, lora_dropout: 0.1 }).disable_dropout, true);
  assert.equal(t({ eval_strategy: 'steps' }).eval_strategy, 'steps');
  assert.equal(t({ group_by_length: true }).train_sampling_strategy, 'group_by_length');
  assert.equal(t({ truncation_mode: 'keep_end' }).truncation_mode, 'keep_end');
  assert.equal(t({ save_strategy: 'no' }).save_strategy, 'no');
  assert.equal(t({ f_divergence_type: 'js_divergence', use_weighting: true }).f_divergence_type, 'js_divergence');
  assert.deepEqual(t({ padding_free: true }).model_init_kwargs, { attn_implementation: 'flash_attention_2' });
});

test('options TRL v1.9.0 cannot express are refused with their names, all at once', () => {
  const refused = (v: Record<string, unknown>, c: Partial<TranslationContext> = {}): string[] => {
    try {
      translateDpoConfig(parseDpoConfig(v), { ...ctx, ...c });
    } catch (e) {
      assert.ok(e instanceof RefusedOptions, String(e));
      return e.refusals.map((r) => r.option);
    }
    return [];
  };
  assert.deepEqual(refused({ loss_type: 'simpo' }), ['loss_type', 'cpo_alpha', 'simpo_gamma']);
  assert.deepEqual(refused({ loss_type: 'orpo' }), ['loss_type']);
  assert.deepEqual(refused({ loss_type: 'bco_pair' }), ['loss_type']);
  // cDPO: refused by the translation, or already by the config (which follows TRL v1.9.0 there).
  assert.throws(() => translateDpoConfig(parseDpoConfig({ loss_type: 'sigmoid', label_smoothing: 0.1 }), ctx), /label_smoothing|loss_type/);
  // exo_pair without label_smoothing: refused already by the config (TRL v1.9.0 needs ε > 0 there).
  assert.throws(() => translateDpoConfig(parseDpoConfig({ loss_type: ['exo_pair', 'robust'] }), ctx), /label_smoothing/);
  assert.deepEqual(refused({ loss_type: 'sigmoid', sample_checks: true }), ['sample_checks']);
  assert.deepEqual(refused({ max_prompt_length: 8 }, { promptTruncated: 3 }), ['max_prompt_length']);
  assert.deepEqual(refused({ max_completion_length: 8 }, { completionTruncated: 1 }), ['max_completion_length']);
  assert.deepEqual(refused({ max_prompt_length: 8 }, { promptTruncated: 0 }), []);
  const msg = (() => {
    try {
      translateDpoConfig(parseDpoConfig({ loss_type: 'orpo' }), ctx);
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  })();
  assert.match(msg, /loss_type: loss "orpo"/);
});

test('the exported job: data read back as the same pairs (bad rows left out), YAMLs parse, train.py compiles', async () => {
  const bad = [{ prompt: 'p', chosen: ' same', rejected: ' same' }, { prompt: 'no rejected', chosen: ' x' }];
  const mixed = writeJsonl(join(dataDir, 'mixed.jsonl'), [...pairs.slice(0, 10), ...bad, ...pairs.slice(10)]);
  const out = join(tmp('dpo-job-'), 'job');
  const cfg: DpoConfig = parseDpoConfig({ on_bad_row: 'skip', eval_split: 0.25, use_peft: true, adam_epsilon: 1e-8, learning_rate: 5e-7, logging_steps: 1 });
  const res = await exportTrlJob({ model: modelDir, data: [mixed], config: cfg, out, gpusPerNode: 4, nodes: 3 });
  assert.equal(res.trainPairs + res.evalPairs, pairs.length);
  assert.equal(res.dropped, 2);

  // Data: TRL's standard columns only; together the splits are the valid source pairs, in order.
  const trainRows = readFileSync(join(out, 'data', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const r of trainRows) assert.deepEqual(Object.keys(r), ['prompt', 'chosen', 'rejected']);
  const back = [
    ...(await loadPreferenceData(join(out, 'data', 'train.jsonl'))).examples,
    ...(await loadPreferenceData(join(out, 'data', 'eval.jsonl'))).examples,
  ].map((e) => ({ prompt: e.prompt, chosen: e.chosen, rejected: e.rejected }));
  const key = (p: object) => JSON.stringify(p);
  assert.deepEqual(back.map(key).sort(), pairs.map(key).sort());
  assert.equal(back.length, pairs.length);

  // The config: the same values under PyYAML (YAML 1.1, what TRL and accelerate use) as under YAML 1.2.
  const yamlPath = join(out, 'dpo_config.yaml');
  const viaJs = parseYaml(readFileSync(yamlPath, 'utf8')) as Record<string, unknown>;
  for (const k of Object.keys(viaJs)) assert.ok(DPO_FIELDS.has(k), `dpo_config.yaml key ${k} is not a DPOConfig field`);
  assert.equal(viaJs.adam_epsilon, 1e-8);
  if (pyYamlAvailable) assert.deepEqual(parseWithPyYaml(yamlPath), viaJs);

  // accelerate: 1 GPU, 4 GPUs (DDP, ZeRO-2, ZeRO-3, FSDP), 3 × 4 (ZeRO-2, ZeRO-3, FSDP).
  const accDir = join(out, 'accelerate');
  const expected: Record<string, [string, number, number]> = {
    'single_gpu.yaml': ['NO', 1, 1], 'ddp_4gpu.yaml': ['MULTI_GPU', 1, 4], 'zero2_4gpu.yaml': ['DEEPSPEED', 1, 4],
    'zero3_4gpu.yaml': ['DEEPSPEED', 1, 4], 'fsdp_4gpu.yaml': ['FSDP', 1, 4], 'zero2_3x4gpu.yaml': ['DEEPSPEED', 3, 12],
    'zero3_3x4gpu.yaml': ['DEEPSPEED', 3, 12], 'fsdp_3x4gpu.yaml': ['FSDP', 3, 12],
  };
  assert.deepEqual(readdirSync(accDir).sort(), Object.keys(expected).sort());
  for (const [name, [type, machines, processes]] of Object.entries(expected)) {
    const path = join(accDir, name);
    const c = (pyYamlAvailable ? parseWithPyYaml(path) : parseYaml(readFileSync(path, 'utf8'))) as Record<string, any>;
    assert.equal(c.distributed_type, type, name);
    assert.equal(c.num_machines, machines, name);
    assert.equal(c.num_processes, processes, name);
    assert.equal(c.mixed_precision, 'bf16', name);
    assert.equal(c.downcast_bf16, 'no', `${name}: downcast_bf16 must stay the string "no" under YAML 1.1`);
    if (name.startsWith('zero')) assert.equal(c.deepspeed_config.zero_stage, name.startsWith('zero2') ? 2 : 3);
    if (name.startsWith('fsdp')) assert.equal(c.fsdp_config.fsdp_state_dict_type, 'FULL_STATE_DICT');
  }

  // train.py compiles; requirements are exact pins; PEFT config; the model is a Hugging Face directory.
  const py = spawnSync('python3', ['-m', 'py_compile', join(out, 'train.py')], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const req = readFileSync(join(out, 'requirements.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  for (const l of req) assert.match(l, /^[A-Za-z][A-Za-z0-9_.-]*==[0-9][0-9.]*$/);
  assert.ok(req.includes(`trl==${TRL_VERSION}`));
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'peft_config.json'), 'utf8')).target_modules, ['q_proj', 'v_proj']);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(existsSync(join(out, 'model', f)), f);
  const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8'));
  assert.equal(job.data.train_rows, res.trainPairs);
  assert.equal(job.peft_config_file, 'peft_config.json');
  const readme = readFileSync(join(out, 'README.md'), 'utf8');
  for (const k of Object.keys(cfg)) assert.ok(readme.includes(`| \`${k}\` |`), `README lacks option ${k}`);
  assert.match(readme, /sbatch launch\/slurm\.sbatch/);
  assert.ok(existsSync(join(out, 'launch', 'kubernetes.yaml')));
  if (pyYamlAvailable) assert.equal((parseWithPyYaml(join(out, 'launch', 'kubernetes.yaml')) as any).kind, 'PyTorchJob');
});

test('conversational data is exported as TRL conversational rows', async () => {
  const tokenizer = join(ROOT, 'test', 'fixtures', 'tokenizers', 'chatml-mini');
  const out = join(tmp('dpo-job-chat-'), 'job');
  await exportTrlJob({ model: modelDir, tokenizer, data: [fx('conversational.jsonl')], config: parseDpoConfig({}), out });
  const rows = readFileSync(join(out, 'data', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const src = (await loadPreferenceData(fx('conversational.jsonl'))).examples;
  assert.deepEqual(rows, src.map((e) => ({ prompt: e.prompt, chosen: e.chosen, rejected: e.rejected })));
  assert.ok(Array.isArray(rows[0].prompt) && rows[0].prompt[0].role);
  assert.equal(JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')).data.columns, 'conversational');
  // The chat template travels with the model.
  assert.ok(existsSync(join(out, 'model', 'tokenizer_config.json')));
});

test('a refused option writes nothing; bad rows with on_bad_row error stop the export', async () => {
  const long = writeJsonl(join(dataDir, 'long.jsonl'), pairs.map((p) => ({ ...p, prompt: `${p.prompt} ${'abc '.repeat(30)}` })));
  const out = join(tmp('dpo-job-refused-'), 'job');
  await assert.rejects(
    exportTrlJob({ model: modelDir, data: [long], config: parseDpoConfig({ max_prompt_length: 16, max_length: 128 }), out }),
    (e: Error) => e instanceof RefusedOptions && /max_prompt_length: cuts 40 prompts/.test(e.message),
  );
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(dirname(out)), []);
  const badFile = writeJsonl(join(dataDir, 'bad.jsonl'), [...pairs.slice(0, 3), { prompt: 'x', chosen: ' y' }]);
  await assert.rejects(exportTrlJob({ model: modelDir, data: [badFile], config: parseDpoConfig({}), out }), /bad row/);
  assert.ok(!existsSync(out));
});

test('YAML for PyYAML: exponent floats keep a dot, yes/no/on stay strings', () => {
  const text = pyYaml({ a: 1e-8, b: 5e-7, c: 1e21, d: 'no', e: 'on', f: [1e-9, 0.5], g: 'x: 1e-8' });
  assert.match(text, /^a: 1\.0e-8$/m);
  assert.match(text, /^ {2}- 1\.0e-9$/m);
  if (pyYamlAvailable) {
    const p = join(tmp('dpo-yaml-'), 'y.yaml');
    writeFileSync(p, text);
    assert.deepEqual(parseWithPyYaml(p), { a: 1e-8, b: 5e-7, c: 1e21, d: 'no', e: 'on', f: [1e-9, 0.5], g: 'x: 1e-8' });
  }
});

test('requirements pin TRL and the transformers release the field list was read from', () => {
  const req = requirementsTxt(true);
  assert.match(req, new RegExp(`^trl==${TRL_VERSION.replace(/\./g, '\\.')}$`, 'm'));
  assert.equal(`v${PINNED.transformers}`, FIELDS.transformers.tag);
  assert.match(req, /^peft==/m);
  assert.match(requirementsTxt(false), /^# \(not needed without LoRA\) peft==/m);
});

test('dpo export-job on the command line: flags as for dpo train; an unknown engine is an error', async () => {
  const out = join(tmp('dpo-job-cli-'), 'job');
  await buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--out', out, '--model', modelDir,
    '--data', trainFile, '--beta', '0.2', '--loss-type', 'ipo', '--quiet'], { from: 'node' });
  const cfg = parseYaml(readFileSync(join(out, 'dpo_config.yaml'), 'utf8'));
  assert.equal(cfg.beta, 0.2);
  assert.deepEqual(cfg.loss_type, ['ipo']);
  await assert.rejects(
    buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'megatron', '--out', join(out, 'x'), '--model', modelDir, '--data', trainFile], { from: 'node' }),
    /--engine megatron is not supported/,
  );
  await assert.rejects(
    buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--out', out, '--model', modelDir, '--data', trainFile], { from: 'node' }),
    /exists and is not empty/,
  );
});

test('reference log-probs: written only when TRL provably tokenizes as we do, and equal to our reference pass', async () => {
  const { loadModelAndTokenizer } = await import('../src/io/load-model.js');
  const { collatePreference } = await import('../src/data/batch.js');
  const { referenceLogps } = await import('../src/train/dpo.js');
  const { tokenizePair } = await import('../src/data/tokenize.js');
  const { trlTokenizationMatches } = await import('../src/train/trl-export.js');
  const cacheDir = tmp('dpo-job-cache-');
  const cfg = parseDpoConfig({ max_length: 64, per_device_train_batch_size: 4 });
  // The fixture tokenizer says add_bos_token true but its tokenizer.json adds no BOS: transformers
  // (PreTrainedTokenizerFast) follows the post-processor, we follow the config: refused.
  await assert.rejects(
    exportTrlJob({ model: modelDir, data: [trainFile], config: cfg, out: join(tmp('dpo-job-ref-'), 'job'), refLogps: true, cacheDir }),
    /--ref-logps refused: .*add_bos_token true but tokenizer\.json's post-processor does not add BOS/,
  );
  // The same model with the two agreeing (no BOS either way).
  const agreeing = tmp('dpo-model-nobos-');
  for (const f of readdirSync(modelDir)) writeFileSync(join(agreeing, f), readFileSync(join(modelDir, f)));
  const tc = JSON.parse(readFileSync(join(agreeing, 'tokenizer_config.json'), 'utf8'));
  writeFileSync(join(agreeing, 'tokenizer_config.json'), JSON.stringify({ ...tc, add_bos_token: false }));
  const out = join(tmp('dpo-job-ref-ok-'), 'job');
  await exportTrlJob({ model: agreeing, data: [trainFile], config: cfg, out, refLogps: true, cacheDir });
  const rows = readFileSync(join(out, 'data', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, pairs.length);
  const { model, tokenizer } = await loadModelAndTokenizer(agreeing);
  for (const [i, row] of rows.entries()) {
    assert.deepEqual(Object.keys(row), ['prompt', 'chosen', 'rejected', 'ref_chosen_logps', 'ref_rejected_logps']);
    if (i % 8 !== 0) continue;
    const t = tokenizePair(tokenizer, { kind: 'text', index: 0, loc: { file: 'x' }, ...pairs[i]! }, { maxLength: 64 });
    assert.ok(t.ok);
    const s = referenceLogps(model, collatePreference([t.pair], { padId: tokenizer.padId }));
    assert.ok(Math.abs(s[0]! - row.ref_chosen_logps) < 1e-3 && Math.abs(s[1]! - row.ref_rejected_logps) < 1e-3, `row ${i}`);
  }
  assert.equal(parseYaml(readFileSync(join(out, 'dpo_config.yaml'), 'utf8')).precompute_ref_log_probs, true);
  assert.equal(JSON.parse(readFileSync(join(out, 'job.json'), 'utf8')).ref_logps, true);

  // The per-pair proof: ids tokenized apart (prompt, then response) where the tokenizer merges
  // across the boundary are not what TRL feeds the model, and the check says where they differ.
  const ex = (prompt: string, chosen: string) => ({ kind: 'text' as const, index: 0, loc: { file: 'x' }, prompt, chosen, rejected: ' zz.' });
  let merged: { prompt: string; chosen: string } | null = null;
  for (const a of 'abcdefghijklm') {
    for (const b of 'abcdefghijklm') {
      const prompt = `Q7: ${a}`, chosen = `${b}${b}.`;
      const apart = [...tokenizer.encode(prompt), ...tokenizer.encode(chosen, { addBos: false })];
      if (JSON.stringify(apart) !== JSON.stringify(tokenizer.encode(prompt + chosen))) merged ??= { prompt, chosen };
    }
  }
  assert.ok(merged, 'the fixture tokenizer merges some letters across the prompt/response boundary');
  const t = tokenizePair(tokenizer, ex(merged.prompt, merged.chosen), {});
  assert.ok(t.ok);
  const apartPair = { ...t.pair, chosenIds: [...tokenizer.encode(merged.chosen, { addBos: false }), tokenizer.eosId!] };
  const verdict = trlTokenizationMatches(tokenizer, ex(merged.prompt, merged.chosen), apartPair);
  assert.ok(!verdict.ok && /chosen tokens differ at position \d+ \(TRL: /.test(verdict.reason), JSON.stringify(verdict));
  // The export refuses exactly when our own tokenization of such a pair is not TRL's.
  const withMerge = writeJsonl(join(dataDir, 'merge.jsonl'), [...pairs.slice(0, 5), { ...merged, rejected: ' zz.' }]);
  const exportMerge = exportTrlJob({ model: agreeing, data: [withMerge], config: cfg, out: join(tmp('dpo-job-ref-merge-'), 'job'), refLogps: true, cacheDir });
  if (trlTokenizationMatches(tokenizer, ex(merged.prompt, merged.chosen), t.pair).ok) await exportMerge;
  else await assert.rejects(exportMerge, /for 1 of 6 pairs TRL v1\.9\.0 would not see our tokens[\s\S]*merge\.jsonl:6: (prompt|chosen) tokens differ at position \d+ \(TRL: /);
  // Truncated pairs are not provable either.
  await assert.rejects(
    exportTrlJob({ model: agreeing, data: [trainFile], config: parseDpoConfig({ max_length: 18, on_bad_row: 'skip' }), out: join(tmp('dpo-job-ref-trunc-'), 'job'), refLogps: true, cacheDir }),
    /truncated by max_length/,
  );
});

test('SFT jobs: SFTConfig keys only, the data in TRL\'s columns, assistant_only_loss refused without {% generation %} markers', async () => {
  for (const v of [{}, { use_peft: true, lora_dropout: 0.1 }, { eval_steps: 3, warmup_ratio: 0.1, group_by_length: true, save_steps: 0 }, { completion_only_loss: false, assistant_only_loss: true }]) {
    const { config } = translateSftConfig(parseSftConfig(v), { ...ctx, trainer: 'sft' });
    const unknown = Object.keys(config).filter((k) => !SFT_FIELDS.has(k));
    assert.deepEqual(unknown, [], `${JSON.stringify(v)} → keys not in SFTConfig: ${unknown.join(', ')}`);
  }
  // prompt/completion text.
  const out = join(tmp('dpo-job-sft-'), 'job');
  const res = await exportTrlSftJob({ model: modelDir, data: [fx('sft-prompt-completion.jsonl')], config: parseSftConfig({ use_peft: true }), out });
  const cfg = parseYaml(readFileSync(join(out, 'sft_config.yaml'), 'utf8')) as Record<string, unknown>;
  for (const k of Object.keys(cfg)) assert.ok(SFT_FIELDS.has(k), `sft_config.yaml key ${k} is not an SFTConfig field`);
  assert.equal(cfg.completion_only_loss, null);
  const back = (await loadSftData(join(out, 'data', 'train.jsonl'))).examples.map(({ index: _i, loc: _l, ...e }) => e);
  const src = (await loadSftData(fx('sft-prompt-completion.jsonl'))).examples.map(({ index: _i, loc: _l, ...e }) => e);
  assert.deepEqual(back, src);
  assert.equal(res.trainPairs, src.length);
  const job = JSON.parse(readFileSync(join(out, 'job.json'), 'utf8'));
  assert.equal(job.trainer, 'sft');
  assert.equal(job.config_file, 'sft_config.yaml');
  // Conversations go as messages; assistant_only_loss needs the template's {% generation %} markers in TRL.
  const chatTok = join(ROOT, 'test', 'fixtures', 'tokenizers', 'chatml-mini');
  const out2 = join(tmp('dpo-job-sft-chat-'), 'job');
  await exportTrlSftJob({ model: modelDir, tokenizer: chatTok, data: [fx('sft-messages.jsonl')], config: parseSftConfig({}), out: out2 });
  const rows = readFileSync(join(out2, 'data', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const srcChat = (await loadSftData(fx('sft-messages.jsonl'))).examples;
  assert.deepEqual(rows, srcChat.map((e) => ({ messages: (e as { messages: unknown }).messages })));
  await assert.rejects(
    exportTrlSftJob({ model: modelDir, tokenizer: chatTok, data: [fx('sft-messages.jsonl')], config: parseSftConfig({ assistant_only_loss: true }), out: join(tmp('dpo-job-sft-multi-'), 'job') }),
    (e: Error) => e instanceof RefusedOptions && /assistant_only_loss: .*\{% generation %\}/.test(e.message),
  );
  // DPO-only flags are refused for an SFT job on the command line.
  await assert.rejects(
    buildProgram().parseAsync(['node', 'dpo', 'export-job', '--engine', 'trl', '--trainer', 'sft', '--out', join(tmp('dpo-job-sft-cli-'), 'job'),
      '--model', modelDir, '--data', fx('sft-prompt-completion.jsonl'), '--beta', '0.2'], { from: 'node' }),
    /beta is a DPO option/,
  );
});

test('a GPT-2 checkpoint whose config names the bare GPT2Model goes to TRL as GPT2LMHeadModel, LoRA with fan_in_fan_out', async () => {
  assert.deepEqual(JSON.parse(readFileSync(join(TINY_GPT2, 'config.json'), 'utf8')).architectures, ['GPT2Model']);
  const out = join(tmp('dpo-job-gpt2-'), 'job');
  await exportTrlJob({ model: TINY_GPT2, data: [trainFile], config: parseDpoConfig({ use_peft: true, max_length: 64 }), out });
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'model', 'config.json'), 'utf8')).architectures, ['GPT2LMHeadModel']);
  assert.deepEqual(readFileSync(join(out, 'model', 'model.safetensors')), readFileSync(join(TINY_GPT2, 'model.safetensors')));
  const peft = JSON.parse(readFileSync(join(out, 'peft_config.json'), 'utf8'));
  assert.deepEqual([peft.target_modules, peft.fan_in_fan_out], [['c_attn'], true]);
});
