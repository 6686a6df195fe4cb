// Who and what a preference data set covers: the language of each row (franc-min: 82 languages, trigram language
// identification, offline), near-duplicate prompt clusters (MinHash over word 3-grams with
// locality-sensitive hashing), lexical diversity (distinct-1/-2, per-response type-token ratio)
// and the most frequent prompt terms (stopwords of the detected languages removed, stopwords-iso).

import { franc } from 'franc-min';
import { iso6393 } from 'iso-639-3';
import { createRequire } from 'node:module';

/** ISO 639-3 → ISO 639-1 where one exists (Hugging Face cards use 639-1). */
const TO_639_1 = new Map<string, string>(iso6393.filter((l) => l.iso6391).map((l) => [l.iso6393, l.iso6391!]));
const NAME_639_3 = new Map<string, string>(iso6393.map((l) => [l.iso6393, l.name]));
const STOPWORDS = createRequire(import.meta.url)('stopwords-iso') as Record<string, string[]>;

/** The language code used in reports: ISO 639-1 when the language has one, else ISO 639-3; "und" when undetermined. */
export function languageCode(iso6393Code: string): string {
  return TO_639_1.get(iso6393Code) ?? iso6393Code;
}

export function languageName(code: string): string {
  for (const [k, v] of TO_639_1) if (v === code) return NAME_639_3.get(k) ?? code;
  return NAME_639_3.get(code) ?? code;
}

/** Characters of a row's text given to the language identifier (enough for trigram statistics). */
const LANG_CHARS = 200;
/** Texts shorter than this are "und" (franc's own minimum is 10; short texts are guesses). */
export const LANG_MIN_CHARS = 20;

/** Language of a text: ISO 639-1 (or 639-3) code, or "und". */
export function detectLanguage(text: string): string {
  const t = text.slice(0, LANG_CHARS);
  if (t.replace(/\s+/g, '').length < LANG_MIN_CHARS) return 'und';
  const c = franc(t, { minLength: LANG_MIN_CHARS });
  return c === 'und' ? 'und' : languageCode(c);
}

/** Lower-cased words (letters, digits, inner apostrophes and hyphens), Unicode-aware. */
export function words(text: string): string[] {
  return text.toLowerCase().replace(/’/g, "'").match(/[\p{L}\p{M}][\p{L}\p{M}\p{N}'’-]*|\p{N}+/gu) ?? [];
}

// ---------------------------------------------------------------------------------------------
// MinHash

/** 32-bit FNV-1a of a string. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's 32-bit finalizer: a bijective mix, used with per-permutation seeds. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export const MINHASH_PERM = 64;
const BANDS = 16;
const ROWS = MINHASH_PERM / BANDS;
const SEEDS = Uint32Array.from({ length: MINHASH_PERM }, (_, i) => fmix32(0x9e3779b9 * (i + 1)));
/** Words of a prompt that enter its shingles (the start of a long prompt identifies it). */
const SHINGLE_WORDS = 400;

/** Shingles: word 3-grams; prompts of fewer than 3 words use the words themselves. */
function shingles(text: string, split?: readonly string[]): number[] {
  const w = (split ?? words(text)).slice(0, SHINGLE_WORDS);
  if (w.length === 0) return [fnv1a(text.trim())];
  if (w.length < 3) return [fnv1a(w.join(' '))];
  const out = new Set<number>();
  for (let i = 0; i + 2 < w.length; i++) out.add(fnv1a(`${w[i]} ${w[i + 1]} ${w[i + 2]}`));
  return [...out];
}

/** MinHash signature: the minimum of each seeded hash over the shingles. */
export function minhash(text: string, split?: readonly string[]): Uint32Array {
  const sig = new Uint32Array(MINHASH_PERM).fill(0xffffffff);
  for (const x of shingles(text, split)) {
    for (let i = 0; i < MINHASH_PERM; i++) {
      const h = fmix32(x ^ SEEDS[i]!);
      if (h < sig[i]!) sig[i] = h;
    }
  }
  return sig;
}

/** Estimated Jaccard similarity of two signatures (share of equal minima). */
export function signatureSimilarity(a: Uint32Array, b: Uint32Array): number {
  let eq = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) eq++;
  return eq / a.length;
}

/** Exact Jaccard similarity of two texts' shingle sets (for tests and checks). */
export function jaccard(a: string, b: string): number {
  const x = new Set(shingles(a));
  const y = new Set(shingles(b));
  let inter = 0;
  for (const v of x) if (y.has(v)) inter++;
  return inter / (x.size + y.size - inter || 1);
}

class UnionFind {
  parent: Int32Array;
  constructor(n: number) {
    this.parent = Int32Array.from({ length: n }, (_, i) => i);
  }
  find(i: number): number {
    while (this.parent[i] !== i) {
      this.parent[i] = this.parent[this.parent[i]!]!;
      i = this.parent[i]!;
    }
    return i;
  }
  union(a: number, b: number): void {
    const x = this.find(a);
    const y = this.find(b);
    if (x !== y) this.parent[Math.max(x, y)] = Math.min(x, y);
  }
}

// ---------------------------------------------------------------------------------------------
// The tally

export interface DiversityOptions {
  /** Estimated Jaccard similarity (word 3-grams) at which two prompts are near duplicates (default 0.8). */
  nearDuplicateThreshold?: number;
  /** Warn when the largest near-duplicate cluster holds more than this share of rows (default 0.05). */
  maxClusterShare?: number;
  /** How many terms the topic list shows (default 15). */
  topTerms?: number;
  /** Example locations per finding (default 5). */
  examples?: number;
  /**
   * Rows whose language is identified (default 1000): a uniform random sample (reservoir, fixed
   * seed) when there are more rows, since identification costs about a millisecond per row.
   */
  languageSample?: number;
}

export interface LexicalStats {
  tokens: number;
  /** Distinct words / words. */
  distinct1: number;
  /** Distinct word bigrams / word bigrams. */
  distinct2: number;
}

export interface NearDuplicateCluster {
  rows: number;
  distinctPrompts: number;
  /** The cluster's first prompt, cut to 100 characters. */
  sample: string;
  examples: string[];
}

export interface DiversityReport {
  rows: number;
  /** Language code → rows (ISO 639-1 where there is one; "und" = undetermined: short or ambiguous), over the sampled rows. */
  languages: Record<string, number>;
  /** Rows whose language was identified (all rows, or the sample). */
  languageRows: number;
  nearDuplicates: {
    threshold: number;
    distinctPrompts: number;
    clusters: number;
    /** Rows whose prompt is in a cluster of two or more distinct prompts or repeats (exact repeats included). */
    rowsInClusters: number;
    largest: NearDuplicateCluster[];
    largestShare: number;
  };
  lexical: { prompts: LexicalStats; responses: LexicalStats; meanResponseTypeTokenRatio: number };
  /** Most frequent prompt terms by the number of prompts containing them. */
  topTerms: { term: string; prompts: number; share: number }[];
  warnings: string[];
}

class Lexical {
  tokens = 0;
  bigrams = 0;
  /** Word → id; a bigram is the number id1·2^26 + id2 (exact below 2^53). */
  uni = new Map<string, number>();
  bi = new Set<number>();
  add(w: readonly string[]): void {
    this.tokens += w.length;
    let prev = -1;
    for (let i = 0; i < w.length; i++) {
      let id = this.uni.get(w[i]!);
      if (id === undefined) this.uni.set(w[i]!, (id = this.uni.size));
      if (prev >= 0) {
        this.bigrams++;
        this.bi.add(prev * 67108864 + id);
      }
      prev = id;
    }
  }
  stats(): LexicalStats {
    return { tokens: this.tokens, distinct1: this.tokens ? this.uni.size / this.tokens : 0, distinct2: this.bigrams ? this.bi.size / this.bigrams : 0 };
  }
}

/** Streams rows in; `report()` clusters the prompts and summarizes. */
export class DiversityTally {
  private rows = 0;
  private readonly langs = new Map<string, number>();
  /** Normalized prompt → index into the signature table. */
  private readonly promptIndex = new Map<string, number>();
  private readonly sigs: Uint32Array[] = [];
  private readonly promptRows: number[] = [];
  private readonly promptFirst: string[] = [];
  private readonly promptLocs: string[][] = [];
  /** Reservoir of row texts for language identification. */
  private readonly langSample: string[] = [];
  private langRng = 0x2545f491;
  private readonly promptWords: string[][] = [];
  private readonly lexPrompt = new Lexical();
  private readonly lexResp = new Lexical();
  private ttrSum = 0;
  private ttrN = 0;
  private readonly opts: Required<DiversityOptions>;

  constructor(opts: DiversityOptions = {}) {
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { nearDuplicateThreshold: 0.8, maxClusterShare: 0.05, topTerms: 15, examples: 5, languageSample: 1000, ...given };
    if (!(this.opts.nearDuplicateThreshold > 0 && this.opts.nearDuplicateThreshold <= 1)) {
      throw new Error(`diversity: near-duplicate threshold must be in (0, 1], got ${this.opts.nearDuplicateThreshold}`);
    }
  }

  /** One row: its prompt text, its responses' texts, and where it is ("file:line"). */
  add(prompt: string, responses: readonly string[], where: string): void {
    this.rows++;
    // Reservoir sampling (algorithm R) with a fixed xorshift seed: the same file gives the same sample.
    const text = `${prompt}\n${responses[0] ?? ''}`.slice(0, LANG_CHARS + 50);
    if (this.langSample.length < this.opts.languageSample) this.langSample.push(text);
    else {
      this.langRng ^= this.langRng << 13;
      this.langRng ^= this.langRng >>> 17;
      this.langRng ^= this.langRng << 5;
      const j = (this.langRng >>> 0) % this.rows;
      if (j < this.opts.languageSample) this.langSample[j] = text;
    }
    const pw = words(prompt);
    this.lexPrompt.add(pw);
    for (const r of responses) {
      const rw = words(r);
      this.lexResp.add(rw);
      if (rw.length > 0) {
        this.ttrSum += new Set(rw).size / rw.length;
        this.ttrN++;
      }
    }
    const key = prompt.toLowerCase().replace(/\s+/g, ' ').trim();
    let k = this.promptIndex.get(key);
    if (k === undefined) {
      k = this.sigs.length;
      this.promptIndex.set(key, k);
      this.sigs.push(minhash(prompt, pw));
      this.promptRows.push(0);
      this.promptFirst.push(prompt);
      this.promptLocs.push([]);
      this.promptWords.push([...new Set(pw)]);
    }
    this.promptRows[k]!++;
    if (this.promptLocs[k]!.length < this.opts.examples) this.promptLocs[k]!.push(where);
  }

  report(): DiversityReport {
    this.langs.clear();
    for (const t of this.langSample) {
      const l = detectLanguage(t);
      this.langs.set(l, (this.langs.get(l) ?? 0) + 1);
    }
    const n = this.sigs.length;
    const uf = new UnionFind(n);
    const t = this.opts.nearDuplicateThreshold;
    for (let b = 0; b < BANDS; b++) {
      const buckets = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const s = this.sigs[i]!;
        let key = '';
        for (let r = 0; r < ROWS; r++) key += s[b * ROWS + r]!.toString(36) + ',';
        const j = buckets.get(key);
        if (j === undefined) buckets.set(key, i);
        else if (uf.find(i) !== uf.find(j) && signatureSimilarity(s, this.sigs[j]!) >= t) uf.union(i, j);
      }
    }
    const clusters = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const r = uf.find(i);
      const l = clusters.get(r);
      if (l) l.push(i);
      else clusters.set(r, [i]);
    }
    const sized = [...clusters.values()]
      .map((members) => ({ members, rows: members.reduce((a, m) => a + this.promptRows[m]!, 0) }))
      .filter((c) => c.rows >= 2)
      .sort((x, y) => y.rows - x.rows || x.members[0]! - y.members[0]!);
    const largest: NearDuplicateCluster[] = sized.slice(0, this.opts.examples).map((c) => ({
      rows: c.rows,
      distinctPrompts: c.members.length,
      sample: this.promptFirst[c.members[0]!]!.replace(/\s+/g, ' ').slice(0, 100),
      examples: c.members.flatMap((m) => this.promptLocs[m]!).slice(0, this.opts.examples),
    }));
    const largestShare = this.rows && sized.length ? sized[0]!.rows / this.rows : 0;

    // Topic terms: document frequency over distinct prompts weighted by their rows; stopwords of
    // English and of every language with ≥ 1% of the identified rows removed, and terms in over
    // 90% of the prompts (turn labels such as "Human:", templates) left out as boilerplate.
    const sampled = this.langSample.length;
    const stops = new Set<string>(STOPWORDS.en ?? []);
    for (const [l, c] of this.langs) if (l !== 'und' && c >= 0.01 * sampled) for (const w of STOPWORDS[l] ?? []) stops.add(w);
    const df = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      for (const w of this.promptWords[i]!) {
        if (w.length < 3 || /^\p{N}+$/u.test(w) || stops.has(w)) continue;
        df.set(w, (df.get(w) ?? 0) + this.promptRows[i]!);
      }
    }
    const topTerms = [...df.entries()]
      .filter(([, c]) => this.rows < 10 || c <= 0.9 * this.rows)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, this.opts.topTerms)
      .map(([term, c]) => ({ term, prompts: c, share: this.rows ? c / this.rows : 0 }));

    const languages = Object.fromEntries([...this.langs.entries()].sort((a, b) => b[1] - a[1]));
    const warnings: string[] = [];
    if (largestShare > this.opts.maxClusterShare) {
      warnings.push(
        `the largest near-duplicate prompt cluster holds ${(100 * largestShare).toFixed(1)}% of the rows (over ${(100 * this.opts.maxClusterShare).toFixed(0)}%): ` +
          `"${largest[0]!.sample}"`,
      );
    }
    const langRows = [...this.langs.entries()].filter(([l]) => l !== 'und');
    const identified = langRows.reduce((a, [, c]) => a + c, 0);
    if (identified >= 20) {
      const [top, c] = langRows.sort((a, b) => b[1] - a[1])[0]!;
      if (c / identified < 1 && c / identified >= 0.95 && langRows.length > 1) {
        warnings.push(`${((100 * c) / identified).toFixed(1)}% of the identified rows are ${languageName(top)} (${top}); other languages are barely represented`);
      }
    }
    return {
      rows: this.rows,
      languages,
      languageRows: sampled,
      nearDuplicates: { threshold: t, distinctPrompts: n, clusters: sized.length, rowsInClusters: sized.reduce((a, c) => a + c.rows, 0), largest, largestShare },
      lexical: { prompts: this.lexPrompt.stats(), responses: this.lexResp.stats(), meanResponseTypeTokenRatio: this.ttrN ? this.ttrSum / this.ttrN : 0 },
      topTerms,
      warnings,
    };
  }
}
