// `dpo export-job` (a run handed to TRL + accelerate) and `dpo import-run` (its result back).
import type { Command } from 'commander';
import { dpoOptionNames, readConfigFile, sftOptionNames } from '../train/config.js';
import { grpoOptionNames, parseGrpoConfig, parsePpoConfig, parseRewardConfig, ppoOptionNames, rewardOptionNames } from '../train/rl-config.js';
import { addConfigFlags, configOverrides, loadDpoConfig, loadSftConfig } from './config-flags.js';
import { collectList as collect } from './args.js';

/** The option names of each trainer export-job hands over (their flags are accepted for that trainer only). */
const TRAINER_OPTIONS: Record<string, readonly string[]> = {
  dpo: dpoOptionNames, sft: sftOptionNames, rm: rewardOptionNames, grpo: grpoOptionNames, rloo: grpoOptionNames, ppo: ppoOptionNames,
};

export function registerHandoffCommands(program: Command): void {
  const exp = program
    .command('export-job')
    .description('write a self-contained job folder for Hugging Face TRL + accelerate (1 GPU, N GPUs, N×M nodes; DeepSpeed ZeRO-2/3, FSDP) from the same arguments and config as `dpo train`')
    .requiredOption('--engine <engine>', 'the engine to hand the run to: trl')
    .option('--trainer <trainer>', 'dpo (as `dpo train`), sft (`dpo sft`), rm (`dpo rm`), grpo, rloo or ppo (`dpo grpo|rloo|ppo`)', 'dpo')
    .requiredOption('--out <dir>', 'the job folder to write')
    .requiredOption('--model <path>', 'starting policy: a Hugging Face directory or a llama2.c .bin checkpoint (copied into the job)')
    .option('--data <file>', 'training data (dpo, sft, rm); repeatable', collect)
    .option('--prompts <file>', 'prompts (grpo, rloo, ppo; as their --prompts); repeatable', collect)
    .option('--eval-data <file>', 'evaluation preference data; repeatable', collect)
    .option('--config <file>', 'YAML or JSON config with TRL DPOConfig names (flags override it)')
    .option('--ref <path>', 'reference model (default: a frozen copy of --model; dpo only)')
    .option('--ref-logps', 'add our reference log-probs as TRL\'s ref_chosen_logps/ref_rejected_logps columns (refused unless TRL provably tokenizes as we do)')
    .option('--cache-dir <dir>', 'where reference log-probs are cached')
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--hub-model <id>', 'reference the model by this Hugging Face hub id instead of copying --model into the job')
    .option('--data-format <format>', 'the job\'s data files: jsonl or parquet (train.py loads either with load_dataset)', 'jsonl')
    .option('--gpus <n>', 'GPUs per node for the multi-GPU accelerate files', '8')
    .option('--nodes <n>', 'nodes for the multi-node accelerate files', '2')
    .option('--force', 'replace an existing job folder')
    .option('--quiet', 'no summary output');
  addConfigFlags(exp, [...new Set(Object.values(TRAINER_OPTIONS).flat())]);
  exp.action(async (opts: Record<string, unknown>) => {
    if (opts.engine !== 'trl') throw new Error(`export-job: --engine ${String(opts.engine)} is not supported (supported: trl)`);
    const trainer = String(opts.trainer);
    const names = TRAINER_OPTIONS[trainer];
    if (!names) throw new Error(`export-job: --trainer ${trainer} is not supported (${Object.keys(TRAINER_OPTIONS).join(', ')})`);
    const online = ['grpo', 'rloo', 'ppo'].includes(trainer);
    if (online ? !opts.prompts : !opts.data) throw new Error(`export-job --trainer ${trainer}: --${online ? 'prompts' : 'data'} is required`);
    if (online ? opts.data : opts.prompts) throw new Error(`export-job --trainer ${trainer}: --${online ? 'data' : 'prompts'} is for ${online ? 'dpo, sft and rm' : 'grpo, rloo and ppo'}`);
    // Flags of another trainer's options have no meaning here: refuse rather than ignore them.
    const all = [...new Set(Object.values(TRAINER_OPTIONS).flat())];
    // (sft: DPO options get their own message below.)
    const foreign = Object.keys(configOverrides(opts, all)).filter((k) => !names.includes(k) && !(trainer === 'sft' && dpoOptionNames.includes(k)));
    if (foreign.length) throw new Error(`export-job --trainer ${trainer}: ${foreign.map((k) => `--${k.replace(/_/g, '-')}`).join(', ')} ${foreign.length === 1 ? 'is not an option' : 'are not options'} of this trainer`);
    if (trainer !== 'dpo' && trainer !== 'sft' && (opts.ref || opts.refLogps)) throw new Error(`export-job --trainer ${trainer}: --ref and --ref-logps are DPO options`);
    // Loaded with the command (the Parquet writer is not needed by the rest of the CLI).
    const { checkJobDataFormat } = await import('../train/trl-data.js');
    const common = {
      model: opts.model as string, tokenizer: opts.tokenizer as string | undefined,
      data: opts.data as string[], evalData: opts.evalData as string[] | undefined, out: opts.out as string,
      hubModel: opts.hubModel as string | undefined, gpusPerNode: Number(opts.gpus), nodes: Number(opts.nodes),
      force: Boolean(opts.force), command: process.argv.slice(2).join(' '),
      dataFormat: checkJobDataFormat(String(opts.dataFormat)),
    };
    const { exportTrlJob, exportTrlSftJob } = await import('../train/trl-export.js');
    let res;
    if (trainer !== 'dpo' && trainer !== 'sft') {
      const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
      const source = typeof opts.config === 'string' ? opts.config : 'options';
      const overrides = configOverrides(opts, names);
      const rl = await import('../train/trl-export-rl.js');
      const target = { ...common, data: undefined };
      if (trainer === 'rm') res = await rl.exportTrlRmJob({ ...common, data: opts.data as string[], config: parseRewardConfig(file, overrides, source) });
      else if (trainer === 'ppo') res = await rl.exportTrlPpoJob({ ...target, prompts: opts.prompts as string[], config: parsePpoConfig(file, overrides, source) });
      else res = await rl.exportTrlGrpoJob({ ...target, prompts: opts.prompts as string[], config: parseGrpoConfig(file, trainer === 'rloo' ? { rloo: true, ...overrides } : overrides, source) });
    } else if (opts.trainer === 'sft') {
      // DPO-only flags have no meaning for SFT: refuse rather than ignore them.
      const dpoOnly = Object.keys(configOverrides(opts, dpoOptionNames)).filter((k) => !sftOptionNames.includes(k));
      const extra = [...dpoOnly, ...(opts.ref ? ['--ref'] : []), ...(opts.refLogps ? ['--ref-logps'] : [])];
      if (extra.length) throw new Error(`export-job --trainer sft: ${extra.join(', ')} ${extra.length === 1 ? 'is a' : 'are'} DPO option${extra.length === 1 ? '' : 's'}`);
      res = await exportTrlSftJob({ ...common, config: loadSftConfig(opts) });
    } else {
      res = await exportTrlJob({
        ...common, config: loadDpoConfig(opts), ref: opts.ref as string | undefined,
        refLogps: Boolean(opts.refLogps), cacheDir: opts.cacheDir as string | undefined,
      });
    }
    if (!opts.quiet) {
      process.stderr.write(
        `wrote ${res.dir}/: ${res.trainPairs} training rows${res.evalPairs ? `, ${res.evalPairs} eval rows` : ''}, ${res.dropped} rows left out; ` +
        `${res.notes.length} option notes in README.md. Launch: see ${res.dir}/README.md\n`,
      );
    }
  });

  program
    .command('import-run')
    .description('bring a TRL / Hugging Face Trainer output directory back as a dpo-ts run: metrics.jsonl in our names and a model dpo eval/score/convert read')
    .argument('<run-output>', 'the TRL output directory (full model or PEFT adapter, trainer_state.json)')
    .requiredOption('--out <dir>', 'the run directory to write')
    .option('--base <path>', 'base model of a PEFT adapter (default: the adapter\'s base_model_name_or_path when it exists here, else the job\'s model/ when the run is inside the job folder)')
    .option('--dtype <dtype>', 'float32 | bfloat16 for the written model (default: the job\'s save_dtype; files already in it are copied as they are)')
    .option('--force', 'replace an existing output directory')
    .option('--quiet', 'no summary output')
    .action(async (src: string, opts: { out: string; base?: string; dtype?: string; force?: boolean; quiet?: boolean }) => {
      if (opts.dtype !== undefined && opts.dtype !== 'float32' && opts.dtype !== 'bfloat16') throw new Error(`import-run: --dtype must be float32 or bfloat16, got ${opts.dtype}`);
      const { importRun } = await import('../train/import-run.js');
      const res = await importRun(src, { out: opts.out, base: opts.base, dtype: opts.dtype as 'float32' | 'bfloat16' | undefined, force: opts.force });
      if (!opts.quiet) {
        process.stderr.write(`imported ${res.kind === 'adapter' ? 'a PEFT adapter (merged into its base)' : res.kind === 'reward-model' ? `a reward model${res.merged ? ' (its PEFT adapter merged into the base)' : ''}` : 'a full model'} from ${res.modelSource}: ` +
          `${res.trainRecords} training and ${res.evalRecords} eval records${res.globalStep !== null ? `, step ${res.globalStep}` : ''}; run in ${res.dir}\n`);
        for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
      }
    });
}
