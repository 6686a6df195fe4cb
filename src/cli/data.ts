// `dpo data check FILE [--eval FILE] ...`: the preference-data audit on the command line.

import { Command, Option } from 'commander';
import type { Tokenizer } from '../io/tokenizer.js';
import { loadTokenizer as defaultLoadTokenizer } from '../io/tokenizers/index.js';
import { mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { auditPreferenceData, auditVerdict, renderAuditText, writeRedactedCopy } from '../data/audit.js';
import { renderDataCard, type CollectionSummary } from '../data/card.js';
import type { ColumnMapping, PreferenceFormat, TruncationMode } from '../data/types.js';
import { PREFERENCE_FORMATS } from '../data/types.js';
import { collectList, fractionArg, intArg, parseColumns } from './args.js';
import { writeFileAtomic } from '../util/fs.js';

export interface DataCommandDeps {
  /** Loads --tokenizer DIR (default: the project's loadTokenizer from src/io/tokenizers). */
  loadTokenizer?: (dir: string) => Promise<Tokenizer> | Tokenizer;
  /** Where the report goes (default: stdout). */
  write?: (text: string) => void;
  /** Receives the exit status: 1 when the data has bad rows (default: sets process.exitCode). */
  setExitCode?: (code: number) => void;
  /** Summarizes an annotation project for `data card --project` (src/cli passes src/annotate's). */
  loadCollection?: (dir: string) => Promise<CollectionSummary> | CollectionSummary;
}

interface CheckOptions {
  eval?: string;
  format?: PreferenceFormat;
  columns?: ColumnMapping;
  promptBoundary?: string;
  maxLength?: number;
  maxPromptLength?: number;
  maxCompletionLength?: number;
  truncationMode: TruncationMode;
  tokenizer?: string;
  json?: boolean;
  slice?: string[];
  redact?: string;
  pii: boolean;
  diversity: boolean;
  nearDuplicateThreshold?: number;
  maxClusterShare?: number;
}

/** Adds `data check` to a commander program (the `dpo` CLI). Returns the `data` command. */
export function registerDataCommands(program: Command, deps: DataCommandDeps = {}): Command {
  const write = deps.write ?? ((s: string) => process.stdout.write(s));
  const data = program.command('data').description('inspect preference and SFT data sets');
  data
    .command('check')
    .description('audit a preference data set: bad rows, duplicates, train/eval leakage, length bias, length percentiles, truncation; exits 1 when rows are bad')
    .argument('<file...>', 'data files (.jsonl, .json, .parquet, optionally .gz)')
    .option('--eval <file>', 'eval split: audited too, and its prompts checked against train (leakage)')
    .addOption(new Option('--format <format>', 'force the format instead of detecting it').choices([...PREFERENCE_FORMATS]))
    .option('--columns <map>', 'column mapping, e.g. prompt=question,chosen=good,rejected=bad', parseColumns)
    .option('--prompt-boundary <text>', 'turn boundary ending implicit text prompts (default "\\n\\nAssistant:")')
    .option('--max-length <n>', 'TRL max_length: max tokens of each row (prompt + chosen, prompt + rejected)', intArg('--max-length'))
    .option('--max-prompt-length <n>', 'extension (TRL < 1.0): max prompt tokens, applied first', intArg('--max-prompt-length'))
    .option('--max-completion-length <n>', 'extension (TRL < 1.0): max response tokens', intArg('--max-completion-length'))
    .addOption(new Option('--truncation-mode <mode>', "TRL's truncation_mode: keep_start keeps each row's first max-length tokens (rows whose prompt fills it are dropped), keep_end its last").choices(['keep_start', 'keep_end']).default('keep_start'))
    .option('--tokenizer <dir>', 'tokenizer directory (or llama2.c .bin): token lengths and truncation forecast')
    .option('--slice <column>', 'per-slice counts, length bias and agreement for this column (e.g. group, source); repeatable, dotted paths allowed', collectList)
    .option('--redact <out>', 'write a copy (JSON lines) with personal data replaced by [EMAIL], [PHONE], [CARD], [IBAN], [IP], [SSN]')
    .option('--no-pii', 'skip the personal-data scan')
    .option('--no-diversity', 'skip languages, near-duplicate clusters, lexical diversity and topic terms')
    .option('--near-duplicate-threshold <j>', 'Jaccard similarity of word 3-grams at which prompts are near duplicates (default 0.8)', fractionArg('--near-duplicate-threshold'))
    .option('--max-cluster-share <s>', 'warn when the largest near-duplicate cluster holds more of the rows (default 0.05)', fractionArg('--max-cluster-share'))
    .option('--json', 'print the report as JSON')
    .action(async (files: string[], opts: CheckOptions) => {
      let tokenizer: Tokenizer | undefined;
      if (opts.tokenizer !== undefined) tokenizer = await (deps.loadTokenizer ?? defaultLoadTokenizer)(opts.tokenizer);
      const hasTruncation = opts.maxLength !== undefined || opts.maxPromptLength !== undefined || opts.maxCompletionLength !== undefined;
      if (hasTruncation && tokenizer === undefined) {
        throw new Error('data check: --max-length/--max-prompt-length/--max-completion-length need --tokenizer (lengths are in tokens)');
      }
      const report = await auditPreferenceData({
        train: files,
        eval: opts.eval,
        format: opts.format,
        columns: opts.columns,
        promptBoundary: opts.promptBoundary?.replace(/\\n/g, '\n'),
        maxLength: opts.maxLength,
        maxPromptLength: opts.maxPromptLength,
        maxCompletionLength: opts.maxCompletionLength,
        truncationMode: opts.truncationMode,
        tokenizer,
        sliceColumns: opts.slice,
        pii: opts.pii,
        diversity: opts.diversity ? { nearDuplicateThreshold: opts.nearDuplicateThreshold, maxClusterShare: opts.maxClusterShare } : false,
      });
      if (opts.redact !== undefined) {
        const r = await writeRedactedCopy(files, opts.redact);
        const kinds = Object.entries(r.byKind).map(([k, n]) => `${k} ${n}`).join(', ');
        process.stderr.write(
          `redacted copy: ${opts.redact} (${r.rows} rows, ${r.redactedRows} changed${kinds ? `: ${kinds}` : ''})` +
            (r.unreadable.length ? `; ${r.unreadable.length} unreadable lines left out (${r.unreadable.slice(0, 5).join(', ')})` : '') + '\n',
        );
      }
      write(opts.json ? JSON.stringify(report, null, 2) + '\n' : renderAuditText(report));
      // Bad rows fail the check (scripts and CI can stop before training on broken data).
      if (!auditVerdict(report).passed) (deps.setExitCode ?? ((c: number) => (process.exitCode = c)))(1);
    });

  data
    .command('card')
    .description('write a Hugging Face dataset card (YAML metadata + Markdown) from the audit: languages, size, duplicates, length bias, personal data, slices; collection and consent from an annotation project')
    .argument('<file...>', 'data files (the first is the train split)')
    .requiredOption('--out <file>', 'card to write, e.g. README.md')
    .option('--eval <file>', 'eval (test) split')
    .option('--name <text>', 'data set name (default: the first file name)')
    .option('--license <id>', 'license id for the metadata (e.g. cc-by-4.0, mit, other)', 'unknown')
    .option('--provenance <text>', 'where the data came from (sources, generation, filtering)')
    .option('--project <dir>', 'annotation project the data was exported from (collection method, consent, group shares)')
    .option('--slice <column>', 'per-slice figures for this column; repeatable', collectList)
    .addOption(new Option('--format <format>', 'force the format instead of detecting it').choices([...PREFERENCE_FORMATS]))
    .option('--columns <map>', 'column mapping, e.g. prompt=question,chosen=good,rejected=bad', parseColumns)
    .action(async (files: string[], o: { out: string; eval?: string; name?: string; license: string; provenance?: string; project?: string; slice?: string[]; format?: PreferenceFormat; columns?: ColumnMapping }) => {
      let collection: CollectionSummary | undefined;
      if (o.project !== undefined) {
        if (!deps.loadCollection) throw new Error('data card: --project needs the annotation layer (use the dpo CLI)');
        collection = await deps.loadCollection(o.project);
      }
      const report = await auditPreferenceData({ train: files, eval: o.eval, format: o.format, columns: o.columns, sliceColumns: o.slice });
      const card = renderDataCard(report, {
        name: o.name ?? basename(files[0]!).replace(/\.(jsonl|json|parquet)(\.gz)?$/, ''),
        license: o.license,
        provenance: o.provenance,
        files: [...files, ...(o.eval ? [o.eval] : [])].map((f) => basename(f)),
        collection,
      });
      mkdirSync(dirname(o.out), { recursive: true });
      writeFileAtomic(o.out, card);
      process.stderr.write(`data card: ${o.out} (${report.train.valid + (report.eval?.valid ?? 0)} rows)\n`);
    });
  return data;
}
