// `dpo generate` and `dpo convert`.
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { loadModelAndTokenizer } from '../io/load-model.js';
import { generate } from '../models/generate.js';

export function registerModelCommands(program: Command): void {
  program
    .command('generate')
    .description('generate text from a model, streaming tokens to the terminal')
    .requiredOption('--model <path>', 'a Hugging Face directory or a llama2.c .bin checkpoint')
    .option('--prompt <text>', 'prompt text (repeatable for a batch)', (v: string, p: string[] = []) => [...p, v])
    .option('--chat', 'wrap the prompt as a user message with the model\'s chat template')
    .option('--system <text>', 'system message (with --chat)')
    .option('--tokenizer <path>', 'tokenizer (default: the model\'s)')
    .option('--adapter <dir>', 'a PEFT LoRA adapter directory to apply')
    .option('--max-new-tokens <n>', 'tokens to generate at most', '128')
    .option('--temperature <t>', '0 = greedy', '0.8')
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', '0')
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', '0.95')
    .option('--seed <n>', 'sampling seed: the same seed gives the same text', '0')
    .option('--stop <text>', 'stop string (repeatable)', (v: string, p: string[] = []) => [...p, v])
    .action(async (opts: Record<string, string | string[] | boolean | undefined>) => {
      const { model, tokenizer, generation } = await loadModelAndTokenizer(opts.model as string, opts.tokenizer as string | undefined);
      if (typeof opts.adapter === 'string') {
        const { loadAdapter } = await import('../train/setup.js');
        loadAdapter(model, opts.adapter);
      }
      const prompts = (opts.prompt as string[] | undefined) ?? [''];
      const texts = prompts.map((p) => {
        if (!opts.chat) return p;
        const messages = [...(typeof opts.system === 'string' ? [{ role: 'system', content: opts.system }] : []), { role: 'user', content: p }];
        return tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
      });
      const streaming = texts.length === 1;
      if (streaming && !opts.chat) process.stdout.write(prompts[0]!);
      const res = generate(model, tokenizer, texts, {
        maxNewTokens: Number(opts.maxNewTokens),
        temperature: Number(opts.temperature ?? generation?.temperature ?? 0.8),
        topK: Number(opts.topK),
        topP: Number(opts.topP),
        seed: Number(opts.seed),
        stopStrings: opts.stop as string[] | undefined,
        onText: streaming ? (_row, delta) => process.stdout.write(delta) : undefined,
      });
      if (streaming) process.stdout.write('\n');
      else res.texts.forEach((t, i) => process.stdout.write(`--- ${i + 1}: ${prompts[i]}\n${t}\n`));
    });

  program
    .command('convert')
    .description('convert a model: llama2.c checkpoint → Hugging Face directory, or Hugging Face directory → GGUF (F32/F16)')
    .requiredOption('--model <path>', 'source: a llama2.c .bin checkpoint or a Hugging Face directory')
    .requiredOption('--out <path>', 'destination: a directory (Hugging Face) or a .gguf file')
    .option('--tokenizer <path>', 'tokenizer (default: next to / inside the model)')
    .option('--dtype <dtype>', 'float32 | bfloat16 (Hugging Face) or f32 | f16 (GGUF)', 'float32')
    .action(async (opts: { model: string; out: string; tokenizer?: string; dtype: string }) => {
      const { convertModel } = await import('../io/convert.js');
      await convertModel(opts.model, opts.out, { tokenizer: opts.tokenizer, dtype: opts.dtype });
      process.stderr.write(`wrote ${opts.out}${existsSync(opts.out) && statSync(opts.out).isDirectory() ? '/' : ''}\n`);
    });
}
