// Reads preference pairs to be (re-)labeled by people. Isolated here so the data layer's full
// reader (src/data) can replace it later. Formats, one JSON object per line:
//  - standard:   {"prompt": "...", "chosen": "...", "rejected": "..."}
//  - standard conversational (TRL): prompt = [{role, content}...], chosen/rejected = [{role:"assistant", content}]
//  - OpenAI preference fine-tuning: {"input": {"messages": [...]}, "preferred_output": [{role, content}],
//    "non_preferred_output": [{role, content}]}
import { readFileSync } from 'node:fs';

export interface ChatTurn {
  role: string;
  content: string;
}

export interface PairForAnnotation {
  format: 'text' | 'chat';
  prompt: string | ChatTurn[];
  chosen: string;
  rejected: string;
  /** Line number in the source file (1-based), for messages. */
  line: number;
}

function isTurn(x: unknown): x is ChatTurn {
  return typeof x === 'object' && x !== null && typeof (x as ChatTurn).role === 'string' && typeof (x as ChatTurn).content === 'string';
}

function turns(x: unknown, where: string, field: string): ChatTurn[] {
  if (!Array.isArray(x) || x.length === 0 || !x.every(isTurn)) {
    throw new Error(`${where}: "${field}" must be a non-empty array of {role: string, content: string}`);
  }
  return x.map((t) => ({ role: t.role, content: t.content }));
}

/** The assistant text of a completion given as a string or as a list of assistant turns. */
function completion(x: unknown, where: string, field: string): string {
  if (typeof x === 'string') return x;
  const ts = turns(x, where, field);
  if (ts.some((t) => t.role !== 'assistant')) throw new Error(`${where}: "${field}" must contain only assistant turns`);
  return ts.map((t) => t.content).join('\n\n');
}

export function parsePairLine(obj: unknown, where: string, line: number): PairForAnnotation {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Error(`${where}: expected a JSON object`);
  const o = obj as Record<string, unknown>;
  if ('preferred_output' in o || 'non_preferred_output' in o) {
    const input = o.input as Record<string, unknown> | undefined;
    if (typeof input !== 'object' || input === null) throw new Error(`${where}: OpenAI preference format needs "input": {"messages": [...]}`);
    return {
      format: 'chat',
      prompt: turns(input.messages, where, 'input.messages'),
      chosen: completion(o.preferred_output, where, 'preferred_output'),
      rejected: completion(o.non_preferred_output, where, 'non_preferred_output'),
      line,
    };
  }
  if ('prompt' in o && 'chosen' in o && 'rejected' in o) {
    const chat = Array.isArray(o.prompt);
    if (!chat && typeof o.prompt !== 'string') throw new Error(`${where}: "prompt" must be a string or an array of messages`);
    return {
      format: chat ? 'chat' : 'text',
      prompt: chat ? turns(o.prompt, where, 'prompt') : (o.prompt as string),
      chosen: completion(o.chosen, where, 'chosen'),
      rejected: completion(o.rejected, where, 'rejected'),
      line,
    };
  }
  throw new Error(
    `${where}: unknown pair format (keys: ${Object.keys(o).join(', ') || 'none'}); expected prompt/chosen/rejected or input/preferred_output/non_preferred_output`,
  );
}

export function readPairsForAnnotation(file: string): PairForAnnotation[] {
  const text = readFileSync(file, 'utf8');
  const out: PairForAnnotation[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i]!.trim();
    if (s === '') continue;
    const where = `${file}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(s);
    } catch (e) {
      throw new Error(`${where}: invalid JSON: ${(e as Error).message}`);
    }
    out.push(parsePairLine(obj, where, i + 1));
  }
  return out;
}
