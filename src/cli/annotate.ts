// `dpo annotate ...` subcommands (commander). The lead wires registerAnnotateCommands into the
// dpo binary; src/cli/annotate-main.ts runs them standalone.
import { Command, Option } from 'commander';
import { parseColumns, rangeArg } from './args.js';
import { PREFERENCE_FORMATS, type ColumnMapping, type OnBadRow, type PreferenceFormat } from '../data/types.js';
import { LABELS, loadProject, type AnnotateConfig } from '../annotate/config.js';
import { openDatabase } from '../annotate/db.js';
import { buildExport, writeJsonl } from '../annotate/export.js';
import { forgetAnnotator } from '../annotate/groups.js';
import { addPrompts, DEFAULT_SAMPLING, readPromptsFile, type CandidateGenerator, type SamplingOptions } from '../annotate/generate.js';
import { readPairsForAnnotation } from '../annotate/import.js';
import { readAdminToken, startServer } from '../annotate/server.js';
import { addPairs, countItems, createAnnotator, dbPath, initProject, inviteUrl } from '../annotate/store.js';

export interface AnnotateCliDeps {
  /**
   * Builds a candidate generator from a local model path (src/cli/index.ts and annotate-main.ts pass
   * loadLocalCandidateGenerator from local-model.ts). Without it, add-prompts says so.
   */
  loadGenerator?: (modelPath: string) => Promise<CandidateGenerator>;
  /** Where messages go (tests capture them). */
  print?: (line: string) => void;
  /** Whether `print` reaches a terminal (default: process.stdout.isTTY). Secrets (the admin
   *  token) are printed only then, so they do not end up in a saved log. */
  isTerminal?: () => boolean;
}

export function registerAnnotateCommands(program: Command, deps: AnnotateCliDeps = {}): Command {
  const print = deps.print ?? ((l: string) => process.stdout.write(l + '\n'));
  const isTerminal = deps.isTerminal ?? (() => process.stdout.isTTY === true);
  const notPrinted = 'not printed: standard output is not a terminal, and a token in a saved log would be a standing admin credential';
  const ann = program.command('annotate').description('collect human preferences: annotation projects, web UI, export');

  ann
    .command('init')
    .description('create an annotation project: SQLite database, annotate.yaml, guidelines.md, consent.md')
    .argument('<dir>', 'project folder')
    .option('--title <text>', 'question shown above each item')
    .option('--overlap <k>', 'annotators per item', rangeArg('--overlap', 1, 50, true))
    .option('--labels <list>', `comma-separated subset of ${LABELS.join(',')}`)
    .option('--rationale <mode>', 'off | optional | required')
    .option('--criteria <list>', 'comma-separated per-criterion ratings, e.g. helpful,harmless,honest')
    .option('--rating-scale <n>', 'ratings are 1..n', rangeArg('--rating-scale', 2, 10, true))
    .option('--gold-rate <p>', 'share of gold (control) items mixed in', rangeArg('--gold-rate', 0, 1))
    .option('--force', 'rewrite the settings of an existing project (keeps its data)')
    .action((dir: string, o: Record<string, unknown>) => {
      const cfg: Partial<AnnotateConfig> & Record<string, unknown> = {};
      if (o.title !== undefined) cfg.title = o.title as string;
      if (o.overlap !== undefined) cfg.overlap = o.overlap as number;
      if (o.labels !== undefined) cfg.labels = String(o.labels).split(',').map((s) => s.trim()) as AnnotateConfig['labels'];
      if (o.rationale !== undefined) cfg.rationale = o.rationale as AnnotateConfig['rationale'];
      if (o.criteria !== undefined) {
        cfg.criteria = String(o.criteria)
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '')
          .map((id) => ({ id, label: id[0]!.toUpperCase() + id.slice(1), description: '' }));
      }
      if (o.ratingScale !== undefined) cfg.ratingScale = o.ratingScale as number;
      if (o.goldRate !== undefined) cfg.goldRate = o.goldRate as number;
      const r = initProject(dir, cfg, { force: o.force === true });
      print(`created annotation project in ${dir} (overlap ${r.config.overlap}, labels ${r.config.labels.join('/')})`);
      if (isTerminal()) print(`admin token (also saved in ${dir}/admin-token, mode 600): ${r.adminToken}`);
      else print(`admin token saved in ${dir}/admin-token (mode 600; ${notPrinted})`);
      print(`edit ${dir}/guidelines.md and ${dir}/consent.md, add items, then: dpo annotate serve ${dir}`);
    });

  ann
    .command('add-pairs')
    .description('add preference pairs to label (any preference format and file `dpo train` reads)')
    .argument('<dir>', 'project folder')
    .argument('<file>', 'data file (.jsonl, .json, .parquet, optionally .gz)')
    .option('--gold', 'control pairs: the file\'s "chosen" is the known right answer')
    .option('--source <name>', 'source name stored with each item (default: the file name)')
    .addOption(new Option('--format <format>', 'force the format instead of detecting it').choices([...PREFERENCE_FORMATS]))
    .option('--columns <map>', 'column mapping, e.g. prompt=question,chosen=good,rejected=bad', parseColumns)
    .option('--prompt-boundary <text>', 'turn boundary ending implicit text prompts (default "\\n\\nAssistant:")')
    .addOption(new Option('--on-bad-row <policy>', 'error: stop and list the bad rows; skip: leave them out').choices(['error', 'skip']).default('error'))
    .action(
      async (
        dir: string,
        file: string,
        o: { gold?: boolean; source?: string; format?: PreferenceFormat; columns?: ColumnMapping; promptBoundary?: string; onBadRow: OnBadRow },
      ) => {
        loadProject(dir);
        const { pairs, summary } = await readPairsForAnnotation(file, {
          format: o.format,
          columns: o.columns,
          onBadRow: o.onBadRow,
          promptBoundary: o.promptBoundary?.replace(/\\n/g, '\n'),
        });
        const db = openDatabase(dbPath(dir));
        try {
          const r = addPairs(db, pairs, o.source ?? file, o.gold === true);
          const c = countItems(db);
          const bad = summary.bad > 0 ? `; ${summary.bad} bad rows left out (${Object.entries(summary.badByReason).map(([k, n]) => `${k} ${n}`).join(', ')})` : '';
          print(
            `added ${r.added} ${o.gold ? 'gold ' : ''}pairs (${summary.format} format, ${r.skipped} already present${bad}); ` +
              `project has ${c.regular} items + ${c.gold} gold`,
          );
        } finally {
          db.close();
        }
      },
    );

  ann
    .command('add-prompts')
    .description('add prompts; two candidate responses each are sampled from a local model')
    .argument('<dir>', 'project folder')
    .argument('<file>', 'JSONL of {"prompt": "..."}')
    .requiredOption('--model <path>', 'local model to sample candidates from: a Hugging Face directory or a llama2.c .bin checkpoint')
    .option('--temperature <t>', 'sampling temperature', rangeArg('--temperature', 0, 10), DEFAULT_SAMPLING.temperature)
    .option('--top-p <p>', 'nucleus sampling', rangeArg('--top-p', 0, 1), DEFAULT_SAMPLING.topP)
    .option('--top-k <k>', 'top-k sampling (0 = off)', rangeArg('--top-k', 0, 1e6, true), DEFAULT_SAMPLING.topK)
    .option('--max-new-tokens <n>', 'response length limit', rangeArg('--max-new-tokens', 1, 1e6, true), DEFAULT_SAMPLING.maxNewTokens)
    .option('--seed <n>', 'sampling seed', rangeArg('--seed', 0, 2 ** 31, true), DEFAULT_SAMPLING.seed)
    .action(async (dir: string, file: string, o: { model: string; temperature: number; topP: number; topK: number; maxNewTokens: number; seed: number }) => {
      loadProject(dir);
      if (!deps.loadGenerator) throw new Error('annotate add-prompts: no model loader was passed to registerAnnotateCommands (deps.loadGenerator); use the dpo CLI, or call addPrompts() with a CandidateGenerator');
      const prompts = readPromptsFile(file);
      const gen = await deps.loadGenerator(o.model);
      const sampling: SamplingOptions = { temperature: o.temperature, topP: o.topP, topK: o.topK, maxNewTokens: o.maxNewTokens, seed: o.seed };
      const db = openDatabase(dbPath(dir));
      try {
        const r = await addPrompts(db, prompts, gen, sampling, `${file} via ${o.model}`);
        print(`added ${r.added} prompts with 2 candidates each (${r.skipped} already present, ${r.identical} with identical candidates skipped)`);
      } finally {
        db.close();
      }
    });

  ann
    .command('create-annotator')
    .description('create an annotator and print their invite link')
    .argument('<dir>', 'project folder')
    .argument('<name>', 'annotator name (kept in the database only; exports use a pseudonym)')
    .option('--base-url <url>', 'public address of the server', 'http://127.0.0.1:8080')
    .action((dir: string, name: string, o: { baseUrl: string }) => {
      loadProject(dir);
      const db = openDatabase(dbPath(dir));
      try {
        const a = createAnnotator(db, name);
        print(`annotator ${a.name} (${a.pseudonym}): ${inviteUrl(o.baseUrl, a.inviteToken)}`);
      } finally {
        db.close();
      }
    });

  ann
    .command('serve')
    .description('run the annotation web server')
    .argument('<dir>', 'project folder')
    .option('--host <host>', 'address to bind (default loopback only)', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', rangeArg('--port', 0, 65535, true), 8080)
    .option('--base-url <url>', 'public address used in invite links (behind a proxy)')
    .action(async (dir: string, o: { host: string; port: number; baseUrl?: string }) => {
      const srv = await startServer({ dir, host: o.host, port: o.port, ...(o.baseUrl ? { baseUrl: o.baseUrl } : {}) });
      const token = readAdminToken(dir);
      print(`listening ${srv.url}`);
      if (token && isTerminal()) print(`admin dashboard: ${srv.url}/admin#token=${token}`);
      else if (token) print(`admin dashboard: ${srv.url}/admin (sign in with the token in ${dir}/admin-token; ${notPrinted})`);
      else print(`admin dashboard: ${srv.url}/admin (admin token: see "dpo annotate init")`);
      if (o.host !== '127.0.0.1' && o.host !== 'localhost' && o.host !== '::1') {
        print('warning: reachable from the network over plain HTTP; put it behind HTTPS for anything but a trusted LAN');
      }
      const stop = () => {
        void srv.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  ann
    .command('export')
    .description('write preference pairs aggregated by majority vote (and optionally the raw votes)')
    .argument('<dir>', 'project folder')
    .requiredOption('--out <file>', 'prompt/chosen/rejected JSONL')
    .option('--raw <file>', 'also write one line per vote (pseudonymous annotator ids)')
    .option('--min-agreement <share>', "share of an item's votes the winner needs", rangeArg('--min-agreement', 0, 1), 0.5)
    .option('--min-votes <n>', 'items with fewer votes are left out (default: min(2, overlap))', rangeArg('--min-votes', 1, 1000, true))
    .option('--exclude-gold-failing', 'leave out annotators below the gold accuracy bar (annotate.yaml quality.minGoldAccuracy)')
    .option('--include-gold', 'export gold items too')
    .option('--redact', 'replace personal data (e-mail, phone, card, IBAN, IP, SSN) in exported text')
    .option('--group-balance <attribute>', "weight votes so each group's votes on an item count as its share of annotators")
    .option('--vote-pairs <file>', 'also write one prompt/chosen/rejected row per A/B vote with the annotator and group columns (for dpo data check --slice)')
    .action(
      (
        dir: string,
        o: {
          out: string;
          raw?: string;
          minAgreement: number;
          minVotes?: number;
          excludeGoldFailing?: boolean;
          includeGold?: boolean;
          redact?: boolean;
          groupBalance?: string;
          votePairs?: string;
        },
      ) => {
        const { config } = loadProject(dir);
        const db = openDatabase(dbPath(dir));
        try {
          const r = buildExport(db, config, {
            minAgreement: o.minAgreement,
            minVotes: o.minVotes ?? Math.min(2, config.overlap),
            excludeGoldFailing: o.excludeGoldFailing === true,
            includeGold: o.includeGold === true,
            redact: o.redact === true,
            ...(o.groupBalance !== undefined ? { groupBalance: o.groupBalance } : {}),
          });
          writeJsonl(o.out, r.pairs);
          if (o.raw) writeJsonl(o.raw, r.raw);
          if (o.votePairs) writeJsonl(o.votePairs, r.votePairs);
          const s = r.stats;
          print(
            `exported ${s.exported} pairs to ${o.out} from ${s.items} labeled items (${s.votesUsed} votes); dropped: ${s.droppedTie} tie, ` +
              `${s.droppedBothBad} both bad, ${s.droppedLowAgreement} low agreement, ${s.droppedTooFewVotes} too few votes` +
              (s.excludedAnnotators.length ? `; excluded annotators: ${s.excludedAnnotators.join(', ')}` : '') +
              (o.raw ? `; ${r.raw.length} raw votes to ${o.raw}` : '') +
              (o.votePairs ? `; ${r.votePairs.length} vote pairs to ${o.votePairs}` : '') +
              (s.groupBalance
                ? `; balanced by ${s.groupBalance.attribute} (annotator shares ${Object.entries(s.groupBalance.annotatorShare).map(([g, x]) => `${g} ${(100 * x).toFixed(0)}%`).join(', ')})`
                : ''),
          );
        } finally {
          db.close();
        }
      },
    );

  ann
    .command('forget')
    .description("delete an annotator's attributes (and with --votes their votes) from the database and later exports")
    .argument('<dir>', 'project folder')
    .argument('<name>', 'annotator name or pseudonym (ann-…)')
    .option('--votes', 'also delete their votes')
    .action((dir: string, name: string, o: { votes?: boolean }) => {
      loadProject(dir);
      const db = openDatabase(dbPath(dir));
      try {
        const r = forgetAnnotator(db, name, { votes: o.votes === true });
        print(`forgot ${r.pseudonym}: ${r.attributes} attribute answers${o.votes ? `, ${r.votes} votes` : ''} deleted (re-export to update files written before)`);
      } finally {
        db.close();
      }
    });
  return ann;
}
