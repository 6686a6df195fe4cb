// Chat templates: the Jinja templates stored in tokenizer_config.json, rendered with Hugging Face's
// own Jinja implementation (@huggingface/jinja) and the same variables transformers passes.

import { Template } from '@huggingface/jinja';
import type { ChatMessage } from '../tokenizer.js';

/**
 * The template to use from tokenizer_config.json's `chat_template`, which is either a string or
 * a list of `{ name, template }` (newer transformers: several named templates; "default" is the
 * one apply_chat_template uses when none is named). Returns null when there is none.
 */
export function selectChatTemplate(value: unknown, source: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const names: string[] = [];
    for (const entry of value) {
      if (typeof entry !== 'object' || entry === null) continue;
      const { name, template } = entry as { name?: unknown; template?: unknown };
      if (typeof name === 'string') names.push(name);
      if (name === 'default') {
        if (typeof template !== 'string') throw new Error(`${source}: chat_template "default" has no string "template"`);
        return template;
      }
    }
    throw new Error(`${source}: chat_template is a list of named templates without "default" (names: ${names.join(', ') || 'none'})`);
  }
  throw new Error(`${source}: chat_template must be a string or a list of {name, template}, got ${typeof value}`);
}

export interface ChatTemplateVariables {
  /** Rendered as bos_token ('' when the tokenizer has no BOS, so templates still concatenate). */
  bosToken: string | null;
  eosToken: string | null;
  addGenerationPrompt: boolean;
  /** Extra variables some templates read (e.g. pad_token, unk_token, tools). */
  extra?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

/** Parses once per distinct template text: templates are re-rendered for every training example. */
function compile(template: string): Template {
  let t = compiled.get(template);
  if (t === undefined) {
    try {
      t = new Template(template);
    } catch (err) {
      throw new Error(`chat template: cannot parse: ${(err as Error).message}`);
    }
    compiled.set(template, t);
  }
  return t;
}

/** Renders a chat template the way transformers' apply_chat_template(tokenize=False) does. */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  vars: ChatTemplateVariables,
): string {
  for (const [i, m] of messages.entries()) {
    if (typeof m?.role !== 'string' || typeof m?.content !== 'string') {
      throw new Error(`chat template: message ${i} must have string role and content`);
    }
  }
  const t = compile(template);
  try {
    return t.render({
      ...vars.extra,
      messages: messages.map((m) => ({ ...m })),
      bos_token: vars.bosToken ?? '',
      eos_token: vars.eosToken ?? '',
      add_generation_prompt: vars.addGenerationPrompt,
      // raise_exception('...'), which templates call to reject a conversation (e.g. roles not
      // alternating), is a global of @huggingface/jinja (it may not be redefined): it throws Error(msg).
    });
  } catch (err) {
    throw new Error(`chat template: render failed: ${(err as Error).message}`);
  }
}
