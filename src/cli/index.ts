// The `dpo` command line.
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { dpoOptionNames, sftOptionNames, parseDpoConfig, parseSftConfig, readConfigFile } from '../train/config.js';
import { registerTrainingCommands } from './train.js';
import { registerModelCommands } from './models.js';
import { registerDataCommands } from '../data/cli.js';
import { loadTokenizer } from '../io/tokenizers/index.js';
import { registerExtraCommands } from './extra.js';
import { registerHandoffCommands } from './handoff.js';
import { registerRlCommands } from './rl.js';
import { registerWebCommand } from './web.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('dpo')
    .description('Direct Preference Optimization for TypeScript: train, collect preferences, audit data, evaluate and export models.')
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) });
  registerTrainingCommands(program);
  registerModelCommands(program);
  registerDataCommands(program, {
    loadTokenizer,
    loadCollection: async (dir) => (await import('../annotate/card.js')).collectionSummary(dir),
  });
  registerExtraCommands(program);
  registerHandoffCommands(program);
  registerRlCommands(program);
  registerWebCommand(program);
  return program;
}

/** Adds one --flag per config option (TRL names with dashes); values are parsed as JSON when they can be. */
export function addConfigFlags(cmd: Command, names: readonly string[]): Command {
  for (const n of names) cmd.addOption(new Option(`--${n.replace(/_/g, '-')} <value>`).hideHelp());
  return cmd;
}

/** Config-option flags given on the command line, keyed by their TRL names. */
export function configOverrides(opts: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of names) {
    const camel = n.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    const v = opts[camel];
    if (v === undefined) continue;
    out[n] = parseFlagValue(String(v));
  }
  return out;
}

function parseFlagValue(v: string): unknown {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (v === 'null') return null;
  if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return Number(v);
  if (v.startsWith('[') || v.startsWith('{')) {
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
  if (v.includes(',') && !v.includes(' ')) return v.split(',');
  return v;
}

export function loadDpoConfig(opts: Record<string, unknown>) {
  const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
  return parseDpoConfig(file, configOverrides(opts, dpoOptionNames), typeof opts.config === 'string' ? opts.config : 'options');
}

export function loadSftConfig(opts: Record<string, unknown>) {
  const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
  return parseSftConfig(file, configOverrides(opts, sftOptionNames), typeof opts.config === 'string' ? opts.config : 'options');
}

/**
 * Refuses an unknown command name anywhere in a command path before commander parses: commander
 * answers `dpo nosuch --help` with the parent's help and exit 0, so a script could not tell a
 * missing command from a present one. Only levels with subcommands and no options of their own
 * are checked (their first operand must name a subcommand).
 */
export function refuseUnknownCommand(program: Command, args: readonly string[]): void {
  let cmd = program;
  for (const a of args) {
    if (a === '--') return;
    if (a.startsWith('-')) continue;
    if (cmd.commands.length === 0 || cmd.options.some((o) => o.long !== '--help')) return;
    if (a === 'help') return; // `dpo help [command]` is commander's own
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) cmd.error(`error: unknown command '${a}'`, { code: 'commander.unknownCommand', exitCode: 1 });
    cmd = sub!;
  }
}

export async function main(): Promise<void> {
  try {
    const program = buildProgram();
    refuseUnknownCommand(program, process.argv.slice(2));
    await program.parseAsync(process.argv);
  } catch (e) {
    process.stderr.write(`dpo: ${(e as Error).message}\n`);
    if (process.env.DPO_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = 1;
  }
}

// Run when executed directly (`node dist/src/cli/index.js ...`); bin/dpo.js calls main() itself.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) await main();
