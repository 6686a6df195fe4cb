// TRL v1.9.0 parity of the configuration: the generated field list matches the fixture generated
// from TRL's sources (test/fixtures/trl/v1.9.0/config-fields.json), every DPOConfig and SFTConfig
// field has a policy, supported fields are in the schemas with TRL's defaults, every other field
// is accepted only at values that mean the same here and refused otherwise (never ignored), and
// the README table is the one rendered from all this.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DpoConfigSchema, SftConfigSchema, parseDpoConfig, parseSftConfig } from '../src/train/config.js';
import { DPOConfig_FIELDS, SFTConfig_FIELDS, TRL_VERSION } from '../src/train/trl-fields.generated.js';
import { EXTENSIONS, NOT_IN_TRL, SFT_POLICY, TRL_FIELD_POLICY, acceptedValues, policyOf, type TrlConfigName } from '../src/train/trl-parity.js';
import { readmeWithTrlTable } from '../src/train/trl-readme.js';

const root = new URL('../../', import.meta.url);
interface FixtureField { name: string; declared_in: string; default: unknown; default_candidates?: unknown[] }
const fixture = JSON.parse(readFileSync(new URL('test/fixtures/trl/v1.9.0/config-fields.json', root), 'utf8')) as {
  trl: { tag: string; commit: string };
  configs: Record<string, { fields: FixtureField[] }>;
};

const configs: { name: TrlConfigName; fields: typeof DPOConfig_FIELDS; schemaKeys: string[]; defaults: Record<string, unknown>; parse: (o: Record<string, unknown>) => unknown }[] = [
  { name: 'DPOConfig', fields: DPOConfig_FIELDS, schemaKeys: Object.keys(DpoConfigSchema.shape), defaults: DpoConfigSchema.parse({}) as Record<string, unknown>, parse: (o) => parseDpoConfig(o) },
  { name: 'SFTConfig', fields: SFTConfig_FIELDS, schemaKeys: Object.keys(SftConfigSchema.shape), defaults: SftConfigSchema.parse({}) as Record<string, unknown>, parse: (o) => parseSftConfig(o) },
];

test('the generated field list is the fixture generated from TRL v1.9.0 (scripts/trl-fields.py)', () => {
  assert.equal(TRL_VERSION, 'v1.9.0');
  assert.equal(fixture.trl.tag, 'v1.9.0');
  assert.equal(fixture.trl.commit, '35def3ee000a87f6839e66f4b7749b06274ed1b3');
  for (const c of configs) {
    const want = fixture.configs[c.name]!.fields.map((f) => ({ name: f.name, declaredIn: f.declared_in, default: f.default, ...(f.default_candidates ? { defaultCandidates: f.default_candidates } : {}) }));
    assert.deepEqual(c.fields, want, c.name);
  }
  // Spot checks against TRL v1.9.0's dpo_config.py / sft_config.py as read by hand.
  const dpo = new Map(DPOConfig_FIELDS.map((f) => [f.name, f]));
  assert.equal(dpo.size, 137);
  assert.deepEqual(dpo.get('loss_type')!.default, ['sigmoid']);
  assert.equal(dpo.get('truncation_mode')!.default, 'keep_start');
  assert.equal(dpo.get('learning_rate')!.default, 1e-6);
  assert.equal(dpo.get('logging_steps')!.declaredIn, '_BaseConfig');
  assert.equal(dpo.get('ref_model_sync_steps')!.default, 512);
  assert.equal(dpo.has('max_prompt_length'), false, 'v1.9.0 has no max_prompt_length');
  assert.equal(SFTConfig_FIELDS.length, 133);
});

test('every DPOConfig and SFTConfig field has a policy, and nothing else does', () => {
  const union = new Set([...DPOConfig_FIELDS, ...SFTConfig_FIELDS].map((f) => f.name));
  for (const n of union) assert.ok(TRL_FIELD_POLICY[n], `no policy for TRL field ${n}`);
  for (const n of Object.keys(TRL_FIELD_POLICY)) assert.ok(union.has(n), `policy for ${n}, which is not a TRL ${TRL_VERSION} field`);
  for (const n of Object.keys(SFT_POLICY)) assert.ok(SFTConfig_FIELDS.some((f) => f.name === n), `SFT policy for ${n}, not an SFTConfig field`);
  for (const n of Object.keys(NOT_IN_TRL)) assert.ok(!union.has(n), `${n} is a v1.9.0 field, not a removed one`);
});

test('schemas hold exactly the supported TRL fields (with TRL defaults) and the documented extensions', () => {
  for (const c of configs) {
    const trlNames = new Set(c.fields.map((f) => f.name));
    for (const f of c.fields) {
      const p = policyOf(c.name, f.name)!;
      if (p.kind !== 'supported') {
        assert.ok(!c.schemaKeys.includes(f.name), `${c.name}.${f.name} is '${p.kind}' but in the schema`);
        continue;
      }
      assert.ok(c.schemaKeys.includes(f.name), `${c.name}.${f.name} is 'supported' but not in the schema`);
      const ours = c.defaults[f.name];
      const same = JSON.stringify(ours) === JSON.stringify(f.default) || (Array.isArray(f.default) && JSON.stringify([ours]) === JSON.stringify(f.default));
      assert.ok(same, `${c.name}.${f.name}: default ${JSON.stringify(ours)}, TRL ${JSON.stringify(f.default)}`);
    }
    for (const k of c.schemaKeys) {
      if (trlNames.has(k)) continue;
      assert.ok(EXTENSIONS[k], `${c.name} schema key ${k} is neither a TRL ${TRL_VERSION} field nor a documented extension`);
    }
  }
  for (const k of Object.keys(EXTENSIONS)) assert.ok(configs.some((c) => c.schemaKeys.includes(k)), `extension ${k} is in no schema`);
});

test('fields accepted only at some values: those parse, any other value is refused with the reason', () => {
  let checked = 0;
  for (const c of configs) {
    for (const f of c.fields) {
      const p = policyOf(c.name, f.name)!;
      if (p.kind !== 'values') continue;
      for (const v of acceptedValues(c.name, f.name)) assert.doesNotThrow(() => c.parse({ [f.name]: v }), `${c.name}.${f.name} = ${JSON.stringify(v)}`);
      assert.throws(() => c.parse({ [f.name]: 'some-other-value' }), (e: Error) => e.message.includes(f.name) && e.message.includes(p.why), `${c.name}.${f.name}`);
      checked++;
    }
  }
  assert.ok(checked > 150, `${checked} value-restricted fields checked`);
  // What a user meets most often.
  assert.equal(parseDpoConfig({ bf16: true }).bf16, true);  // bf16 autocast (test/train-bf16.test.ts)
  assert.equal(parseSftConfig({}).bf16, null);
  assert.equal(parseDpoConfig({ gradient_checkpointing: false }).gradient_checkpointing, false);  // test/gradient-checkpointing.test.ts
  assert.throws(() => parseDpoConfig({ report_to: 'wandb' }), /metrics\.jsonl/);
  assert.throws(() => parseDpoConfig({ push_to_hub: true }), /never uploads/);
  assert.throws(() => parseDpoConfig({ dataset_num_proc: 8 }), /tokenization runs in the training process/);
  assert.doesNotThrow(() => parseDpoConfig({ optim: 'adamw_torch_fused', ddp_timeout: 1800, bf16: false, gradient_checkpointing: false, report_to: 'none' }));
  assert.throws(() => parseSftConfig({ loss_type: 'dft' }), /dft is not implemented/);
  assert.doesNotThrow(() => parseSftConfig({ loss_type: 'nll', completion_only_loss: true }));
});

test('names TRL v1.9.0 does not have are refused with the v1.9.0 way; DPO-only names in SFT are named as such', () => {
  for (const [k, why] of Object.entries(NOT_IN_TRL)) assert.throws(() => parseDpoConfig({ [k]: 1 }), (e: Error) => e.message.includes(why), k);
  assert.throws(() => parseSftConfig({ ld_alpha: 0.5 }), /ld_alpha is a TRL DPOConfig field, not a SFTConfig one/);
  assert.throws(() => parseDpoConfig({ packing: true }), /packing is a TRL SFTConfig field, not a DPOConfig one/);
  assert.throws(() => parseSftConfig({ packing: true }), /packing: true is not supported/);
  // TRL's own CLI example (examples/cli_configs/example_config.yaml at v1.9.0): the script fields point to flags.
  assert.throws(() => parseSftConfig({ model_name_or_path: 'Qwen/Qwen2.5-0.5B', dataset_name: 'stanfordnlp/imdb', report_to: 'none', learning_rate: 1e-4, lr_scheduler_type: 'cosine' }), /pass --model .*pass --data FILE/);
  const ok = parseSftConfig({ report_to: 'none', learning_rate: 1e-4, lr_scheduler_type: 'cosine' });
  assert.equal(ok.lr_scheduler_type, 'cosine');
});

test('DPO option combinations TRL v1.9.0 refuses or no longer has', () => {
  assert.throws(() => parseDpoConfig({ label_smoothing: 0.1 }), /sigmoid loss has no label smoothing.*loss_type robust/);
  assert.doesNotThrow(() => parseDpoConfig({ label_smoothing: 0.1, loss_type: 'robust' }));
  assert.throws(() => parseDpoConfig({ sync_ref_model: true, precompute_ref_log_probs: true }), /fixed reference/);
  assert.throws(() => parseDpoConfig({ sync_ref_model: true, use_peft: true }), /adapters off/);
  assert.throws(() => parseDpoConfig({ ld_alpha: 1.5 }), /ld_alpha/);
  assert.throws(() => parseDpoConfig({ f_divergence_type: 'hellinger' }), /f_divergence_type/);
  const cfg = parseDpoConfig({ warmup_steps: 0.1, eval_strategy: 'steps', save_strategy: 'no', train_sampling_strategy: 'group_by_length' });
  assert.equal(cfg.warmup_steps, 0.1);
  assert.throws(() => parseDpoConfig({ warmup_steps: 2.5 }), /warmup_steps/);
});

test('README.md holds the table rendered from the schemas and policies (node scripts/trl-readme.mjs)', () => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  assert.equal(readmeWithTrlTable(readme), readme, 'README.md TRL table is stale: run `npx tsc -p . && node scripts/trl-readme.mjs`');
  for (const f of [...DPOConfig_FIELDS, ...SFTConfig_FIELDS]) assert.ok(readme.includes(`| \`${f.name}\` |`), `README table lacks ${f.name}`);
});

test('TrainingArguments semantics: fractional warmup_steps, eval_strategy, save_strategy, train_sampling_strategy', async () => {
  const { loopConfig } = await import('../src/train/setup.js');
  const lc = (o: Record<string, unknown>) => loopConfig(parseDpoConfig(o), { outputDir: '/nonexistent' }, 'fp');
  // transformers 5: warmup_steps < 1 is a fraction of the total steps; ≥ 1 a step count.
  assert.deepEqual([lc({ warmup_steps: 0.1 }).warmupRatio, lc({ warmup_steps: 0.1 }).warmupSteps], [0.1, 0]);
  assert.deepEqual([lc({ warmup_steps: 30 }).warmupRatio, lc({ warmup_steps: 30 }).warmupSteps], [0, 30]);
  // eval_strategy steps without eval_steps: every logging_steps (TRL); 'no': only with eval_steps (extension).
  assert.equal(lc({ eval_strategy: 'steps', logging_steps: 7 }).evalSteps, 7);
  assert.equal(lc({ eval_strategy: 'steps', eval_steps: 3 }).evalSteps, 3);
  assert.equal(lc({}).evalSteps, 0);
  assert.equal(lc({ save_strategy: 'no', save_steps: 5 }).saveSteps, 0);
  assert.equal(lc({ save_steps: 5 }).saveSteps, 5);
  assert.equal(lc({ train_sampling_strategy: 'group_by_length' }).groupByLength, true);
  assert.throws(() => parseDpoConfig({ train_sampling_strategy: 'sequential' }), /train_sampling_strategy/);
  assert.throws(() => parseDpoConfig({ eval_strategy: 'epoch' }), /eval_strategy/);
});

test("TRL's invariant DPO recipe (tests/invariant/references/dpo.json at v1.9.0): its training args parse; its script args point to the flags", () => {
  // The "dpo_default" args, less the TRL CLI's model/dataset arguments.
  const args = { max_steps: 50, max_length: 512, logging_steps: 1, report_to: 'none', seed: 42, data_seed: 42, full_determinism: true, bf16: false };
  const cfg = parseDpoConfig(args);
  assert.equal(cfg.max_steps, 50);
  assert.equal(cfg.data_seed, 42);
  assert.deepEqual(cfg.loss_type, 'sigmoid');
  for (const [k, v, re] of [
    ['model_name_or_path', 'Qwen/Qwen2.5-0.5B-Instruct', /pass --model/],
    ['model_revision', '7ae557604adf67be50417f59c2c2f167def9a775', /nothing is downloaded/],
    ['attn_implementation', 'eager', /native fused kernel/],
    ['dataset_name', 'trl-lib/ultrafeedback_binarized', /pass --data FILE/],
  ] as const) {
    assert.throws(() => parseDpoConfig({ ...args, [k]: v }), re, k);
  }
});

test('options that act only with another one are refused when they would change nothing', () => {
  assert.throws(() => parseDpoConfig({ loss_type: 'hinge', label_smoothing: 0.1 }), /label_smoothing 0.1 acts only with loss_type robust/);
  assert.throws(() => parseDpoConfig({ discopop_tau: 0.1 }), /discopop_tau acts only with loss_type discopop/);
  assert.throws(() => parseDpoConfig({ f_alpha_divergence_coef: 0.3 }), /alpha_divergence/);
  assert.throws(() => parseDpoConfig({ ref_model_sync_steps: 64 }), /sync_ref_model: true/);
  assert.throws(() => parseDpoConfig({ precompute_ref_batch_size: 32 }), /precompute_ref_log_probs: true/);
  assert.throws(() => parseDpoConfig({ simpo_gamma: 1 }), /simpo_gamma acts only with loss_type simpo/);
  assert.doesNotThrow(() => parseDpoConfig({ loss_type: 'discopop', discopop_tau: 0.1, f_divergence_type: 'alpha_divergence', f_alpha_divergence_coef: 0.3 }));
  assert.doesNotThrow(() => parseDpoConfig({ loss_type: ['robust', 'hinge'], label_smoothing: 0.1, sync_ref_model: true, ref_model_sync_steps: 64 }));
});
