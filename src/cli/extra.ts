// Commands contributed by other layers (annotation, demo, evaluation).
import type { Command } from 'commander';
import { registerAnnotateCommands } from '../annotate/cli.js';

export function registerExtraCommands(program: Command): void {
  registerAnnotateCommands(program);
}
