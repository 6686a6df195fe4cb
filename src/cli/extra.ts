// Commands contributed by other layers (annotation, demo, evaluation, pretraining).
import type { Command } from 'commander';
import { registerAnnotateCommands } from '../annotate/cli.js';
import { registerDemoCommands } from '../demo/cli.js';
import { registerEvalCommands } from '../eval/cli.js';
import { registerPretrainCommand } from '../train/pretrain.js';

export function registerExtraCommands(program: Command): void {
  registerDemoCommands(program);
  registerPretrainCommand(program);
  registerEvalCommands(program);
  registerAnnotateCommands(program, {
    // add-prompts samples its two candidates per prompt from a local model (src/models); loaded
    // on first use so the other annotate commands do not pay for the model stack.
    loadGenerator: async (modelPath) => (await import('../annotate/local-model.js')).loadLocalCandidateGenerator(modelPath),
  });
}
