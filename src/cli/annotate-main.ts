#!/usr/bin/env node
// Standalone entry for the annotate commands (`node dist/src/cli/annotate-main.js annotate serve DIR`),
// used by the crash test to run the server as a child process; `dpo annotate` is the same code.
import { Command } from 'commander';
import { registerAnnotateCommands } from './annotate.js';

const program = new Command('dpo-annotate');
registerAnnotateCommands(program, {
  loadGenerator: async (modelPath) => (await import('../annotate/local-model.js')).loadLocalCandidateGenerator(modelPath),
});
program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exit(1);
});
