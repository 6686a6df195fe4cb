// The `dpo` command line.
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { loadTokenizer } from '../io/tokenizers/index.js';
import { registerAnnotateCommands } from './annotate.js';
import { registerDataCommands } from './data.js';
import { registerDemoCommands } from './demo.js';
import { registerEvalCommands } from './eval.js';
import { registerHandoffCommands } from './handoff.js';
import { registerModelCommands } from './models.js';
import { registerPretrainCommand } from './pretrain.js';
import { registerRlCommands } from './rl.js';
import { registerTrainingCommands } from './train.js';

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
  registerDemoCommands(program);
  registerPretrainCommand(program);
  registerEvalCommands(program);
  registerAnnotateCommands(program, {
    // add-prompts samples its two candidates per prompt from a local model (src/models); loaded
    // on first use so the other annotate commands do not pay for the model stack.
    loadGenerator: async (modelPath) => (await import('../annotate/local-model.js')).loadLocalCandidateGenerator(modelPath),
  });
  registerHandoffCommands(program);
  registerRlCommands(program);
  return program;
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
