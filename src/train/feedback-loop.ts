// The feedback loop (`dpo loop`): rounds of sample → label → train → evaluate, each round on data
// from the latest policy (iterative DPO; Xu et al. 2023 "Some things are more CRINGE than others",
// Yuan et al. 2024 "Self-Rewarding Language Models"). A loop directory holds:
//   loop-config.json   the model and the validated options (a resume must use the same)
//   round-0/eval.json  the initial model's evaluation
//   round-K/samples.jsonl   candidates_per_prompt completions per prompt from the round's policy
//   round-K/pairs.jsonl     the labelled pairs (standard prompt/chosen/rejected JSONL) + labels.json
//   round-K/train/          `dpo train`'s output: checkpoints, metrics.jsonl, the model
//   round-K/eval.json       samples on eval_prompts, rewards, KL to the initial model, win rates
//   loop.jsonl         one line per finished round; report.md, the table across rounds
// Every file is written atomically (temporary file + rename) once its phase is complete, and a
// phase whose file exists is never redone: a stop anywhere resumes where it was (training resumes
// from its last checkpoint), and the result is the uninterrupted loop's, timings aside.

import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import * as T from '../tensor/index.js';
import { Rng } from '../tensor/random.js';
import { writeFileAtomically } from '../io/weights.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/model.js';
import { DpoConfigSchema, parseDpoConfig, validateConfig, type DpoConfig } from './config.js';
import { runDpo } from './dpo.js';
import { loadRewardFunction, type RewardFunction } from './rewards.js';
import { JudgeError, judgeScores, loadSampleJudge, type PairVerdict, type SampleJudge, type ScoringJudge } from './pair-judge.js';
import { completionTokenLogprobs, loadPrompts, mean, sampleRollout, type Prompt } from './rollout.js';
import { resolveModel } from './setup.js';

const positiveInt = z.number().int().positive();
const files = z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(z.string()).min(1));

/** The loop's own options; every `dpo train` option is accepted beside them. */
const loopOptions = {
  rounds: positiveInt.default(3),
  prompts: files,
  /** Prompts sampled per round (a different seeded subset each round); null = all. */
  prompts_per_round: positiveInt.nullable().default(null),
  candidates_per_prompt: z.number().int().min(2).default(4),
  pairing: z.enum(['best_vs_worst', 'all_pairs', 'random_pair']).default('best_vs_worst'),
  /** The DPO reference of round K: the initial model, or round K−1's policy. */
  reference: z.enum(['initial', 'previous_round']).default('initial'),
  /** afinn | vader | reward-model DIR | judge.mjs[#export] | people */
  judge: z.string(),
  eval_prompts: files.nullable().default(null),
  /** Held-out judges (built-in reward functions or reward-model directories) for the report. */
  eval_judges: z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(z.string())).default([]),
  eval_samples_per_prompt: positiveInt.default(2),
  /** Fewer labelled pairs than this stops the round (and, for people, is what a passed deadline needs). */
  min_pairs: positiveInt.default(1),
  max_new_tokens: positiveInt.default(48),
  sampling_temperature: z.number().positive().default(1),
  top_p: z.number().gt(0).max(1).default(1),
  top_k: z.number().int().min(0).default(0),
  /** people: the `dpo annotate` project directory and its running server. */
  annotate_project: z.string().nullable().default(null),
  annotate_url: z.string().nullable().default(null),
  /** people: stop waiting after this many minutes (per round); then train on what was collected. */
  deadline_minutes: z.number().positive().nullable().default(null),
  poll_seconds: z.number().positive().default(5),
  /** people: export rules (as `dpo annotate export`): votes per item and majority share. */
  min_votes: positiveInt.default(1),
  min_agreement: z.number().min(0).max(1).default(0.5),
};

const LoopSchema = z.object({ ...DpoConfigSchema.shape, ...loopOptions }).strict();
const loopKeys = new Set(Object.keys(loopOptions));

/** The loop's own options (validated, defaults filled in). */
export const LoopOptionsSchema = z.object(loopOptions);
export type LoopOptions = z.infer<typeof LoopOptionsSchema>;
export interface LoopSettings {
  loop: LoopOptions;
  dpo: DpoConfig;
}
export const loopOptionNames = Object.keys(LoopSchema.shape);

/** Validates a loop config (loop options and `dpo train` options; misspellings get a suggestion). */
export function parseLoopConfig(file: Record<string, unknown>, overrides: Record<string, unknown> = {}, source = 'config'): LoopSettings {
  const all = { ...file, ...overrides };
  const full = validateConfig(LoopSchema, all, source) as Record<string, unknown>;
  const loop = Object.fromEntries(Object.entries(full).filter(([k]) => loopKeys.has(k))) as LoopOptions;
  const dpo = parseDpoConfig(Object.fromEntries(Object.entries(all).filter(([k]) => !loopKeys.has(k))), {}, source);
  if (loop.judge === 'people') {
    if (!loop.annotate_project) throw new Error(`${source}: judge "people" needs annotate_project (a \`dpo annotate init\` directory)`);
    if (!loop.annotate_url) throw new Error(`${source}: judge "people" needs annotate_url (where \`dpo annotate serve\` listens, e.g. http://127.0.0.1:8080)`);
    if (loop.pairing === 'best_vs_worst' && loop.candidates_per_prompt !== 2) {
      throw new Error(`${source}: pairing best_vs_worst needs a scoring judge; people label pairs: use random_pair or all_pairs, or candidates_per_prompt: 2`);
    }
    if (loop.eval_judges.length === 0) throw new Error(`${source}: judge "people" needs eval_judges (e.g. [afinn]) to evaluate the rounds' samples`);
  }
  return { loop, dpo };
}

/** A pair for people to label (response a and b in the order sampled). */
export interface PairToLabel {
  prompt: string;
  a: string;
  b: string;
}

export interface PreferenceRow {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** How people label a round: `dpo annotate` behind an interface (src/annotate/loop-people.ts). */
export interface PeopleLabeller {
  /** Checks the project and its server before anything runs (a clear error, never a hang). */
  check(): Promise<void>;
  label(round: number, pairs: readonly PairToLabel[], o: { minPairs: number; quiet: boolean }): Promise<{
    pairs: PreferenceRow[];
    /** Mean share of the majority label among an item's counted votes. */
    agreement: number | null;
    votes: number;
    excludedAnnotators: string[];
    note: string;
  }>;
}

export interface FeedbackLoopOptions {
  /** The loop directory. */
  dir: string;
  /** The initial policy: a Hugging Face directory or a llama2.c checkpoint (a path: rounds reload it). */
  model: string;
  tokenizer?: string | undefined;
  /** The config (as read from YAML); required for a new loop, optional on resume (then it must match). */
  config?: Record<string, unknown> | undefined;
  resume?: boolean | undefined;
  quiet?: boolean | undefined;
  /** Required when the judge is "people". */
  people?: PeopleLabeller | undefined;
  /** A judge object instead of the config's judge spec (library use). */
  judge?: SampleJudge | undefined;
  /** Called after each finished round with its loop.jsonl record. */
  onRound?: ((rec: RoundRecord) => void) | undefined;
}

export interface RoundRecord {
  round: number;
  prompts: number;
  candidates: number;
  pairs: number;
  /** Pairs the judge could not order (ties, identical candidates). */
  skipped: number;
  /** Share of pairs a held-out judge orders the same way (people: majority share of votes). */
  label_agreement: number | null;
  train_steps: number;
  train_loss: number | null;
  /** Judge name → mean reward of the round's samples on the eval prompts. */
  reward: Record<string, number>;
  kl_to_initial: number;
  win_rate_vs_previous: number | null;
  win_rate_vs_initial: number | null;
  seconds: Record<string, number>;
}

interface SampleRow {
  prompt: string;
  prompt_ids: number[];
  candidates: string[];
  candidate_ids: number[][];
}

interface EvalFile {
  samples: { prompt: string; completion: string; scores: Record<string, number> }[];
  reward: Record<string, number>;
  kl_to_initial: number;
  win_rate_vs_previous: number | null;
  win_rate_vs_initial: number | null;
}

const writeText = (path: string, text: string): void => writeFileAtomically(path, path, (w) => w(Buffer.from(text, 'utf8')));
const writeJson = (path: string, v: unknown): void => writeText(path, `${JSON.stringify(v, null, 1)}\n`);
const jsonl = (rows: readonly unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
const readJsonl = <X>(path: string): X[] => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as X);

/**
 * Test hook: DPO_LOOP_KILL_AT="K:phase" kills the process (SIGKILL) just before round K's result of
 * that phase is written (phases sample, label, train, eval, record; "checkpoint": after training's first
 * checkpoint; "label-prompt": after a pairwise judge's second prompt).
 */
function killPoint(round: number, phase: string): void {
  if (process.env.DPO_LOOP_KILL_AT === `${round}:${phase}`) process.kill(process.pid, 'SIGKILL');
}

function seedOf(...parts: (string | number)[]): number {
  return createHash('sha256').update(parts.join(':')).digest().readUInt32LE(0);
}

/** Round K's pairs from its candidates' scores (higher wins; equal scores or identical texts give no pair). */
export function pairsFromScores(scores: readonly number[], texts: readonly string[], pairing: LoopOptions['pairing'], rng: Rng): [number, number][] {
  const n = scores.length;
  const usable = (i: number): boolean => texts[i]!.trim().length > 0;
  const differ = (i: number, j: number): boolean => usable(i) && usable(j) && scores[i] !== scores[j] && texts[i] !== texts[j];
  const ordered = (i: number, j: number): [number, number] => (scores[i]! > scores[j]! ? [i, j] : [j, i]);
  if (pairing === 'best_vs_worst') {
    let best = -1, worst = -1;
    for (let i = 0; i < n; i++) {
      if (!usable(i)) continue;
      if (best < 0 || scores[i]! > scores[best]!) best = i;
      if (worst < 0 || scores[i]! < scores[worst]!) worst = i;
    }
    return best >= 0 && differ(best, worst) ? [[best, worst]] : [];
  }
  if (pairing === 'random_pair') {
    const i = rng.int(n);
    const j = (i + 1 + rng.int(n - 1)) % n;
    return differ(i, j) ? [ordered(i, j)] : [];
  }
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (differ(i, j)) out.push(ordered(i, j));
  return out;
}

/** Round K's pairs with a pairwise judge: best_vs_worst by round-robin wins, the pair then ordered by its own verdict. */
export async function pairsFromVerdicts(
  texts: readonly string[], pairing: LoopOptions['pairing'], rng: Rng, compare: (i: number, j: number) => Promise<PairVerdict>,
): Promise<[number, number][]> {
  const n = texts.length;
  const comparable = (i: number, j: number): boolean => texts[i] !== texts[j] && texts[i]!.trim().length > 0 && texts[j]!.trim().length > 0;
  const orderedBy = (i: number, j: number, v: PairVerdict): [number, number] | null => (v === 'tie' || !comparable(i, j) ? null : v === 'a' ? [i, j] : [j, i]);
  if (pairing === 'random_pair') {
    const i = rng.int(n);
    const j = (i + 1 + rng.int(n - 1)) % n;
    const p = comparable(i, j) ? orderedBy(i, j, await compare(i, j)) : null;
    return p ? [p] : [];
  }
  const verdicts = new Map<string, PairVerdict>();
  const wins = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (!comparable(i, j)) continue;
      const v = await compare(i, j);
      verdicts.set(`${i},${j}`, v);
      if (v === 'a') wins[i]++;
      else if (v === 'b') wins[j]++;
      else {
        wins[i]! += 0.5;
        wins[j]! += 0.5;
      }
    }
  }
  if (pairing === 'all_pairs') {
    const out: [number, number][] = [];
    for (const [k, v] of verdicts) {
      const [i, j] = k.split(',').map(Number) as [number, number];
      const p = orderedBy(i, j, v);
      if (p) out.push(p);
    }
    return out;
  }
  let best = 0, worst = 0;
  for (let i = 1; i < n; i++) {
    if (wins[i]! > wins[best]!) best = i;
    if (wins[i]! < wins[worst]!) worst = i;
  }
  if (best === worst) return [];
  const [i, j] = best < worst ? [best, worst] : [worst, best];
  const v = verdicts.get(`${i},${j}`);
  const p = v ? orderedBy(i, j, v) : null;
  return p ? [p] : [];
}

/** Runs (or resumes) a feedback loop; returns the loop.jsonl records of every finished round. */
export async function runFeedbackLoop(o: FeedbackLoopOptions): Promise<RoundRecord[]> {
  const dir = resolve(o.dir);
  mkdirSync(dir, { recursive: true });
  const snapPath = join(dir, 'loop-config.json');
  const log = (m: string): void => {
    if (!o.quiet) process.stderr.write(`${m}\n`);
  };
  let snap: { model: string; tokenizer: string | null; config: Record<string, unknown> };
  if (existsSync(snapPath)) {
    snap = JSON.parse(readFileSync(snapPath, 'utf8')) as typeof snap;
    if (!o.resume) throw new Error(`${dir} already holds a loop (${snapPath}); continue it with --resume, or choose a new directory`);
    if (o.config !== undefined && JSON.stringify(parseLoopConfig(o.config)) !== JSON.stringify(parseLoopConfig(snap.config))) {
      throw new Error(`resume: the config differs from the one this loop started with (${snapPath}); restore it, or start a new loop directory`);
    }
    if (resolve(o.model) !== snap.model) throw new Error(`resume: this loop started from ${snap.model}, not ${resolve(o.model)}`);
  } else {
    if (o.config === undefined) throw new Error(`${dir}: no loop to resume (no loop-config.json); give a config to start one`);
    // Paths in the config are made absolute so a resume from another directory reads the same files.
    const cfg = { ...o.config };
    for (const k of ['prompts', 'eval_prompts'] as const) {
      const v = cfg[k];
      if (typeof v === 'string') cfg[k] = resolve(v);
      else if (Array.isArray(v)) cfg[k] = v.map((x) => (typeof x === 'string' ? resolve(x) : x));
    }
    for (const k of ['annotate_project'] as const) if (typeof cfg[k] === 'string') cfg[k] = resolve(cfg[k]);
    if (typeof cfg.judge === 'string' && cfg.judge !== 'people' && existsSync(cfg.judge.split('#')[0]!)) cfg.judge = resolve(cfg.judge);
    if (Array.isArray(cfg.eval_judges)) cfg.eval_judges = cfg.eval_judges.map((j) => (typeof j === 'string' && existsSync(j) ? resolve(j) : j));
    parseLoopConfig(cfg); // validate before writing anything
    snap = { model: resolve(o.model), tokenizer: o.tokenizer ? resolve(o.tokenizer) : null, config: cfg };
    writeJson(snapPath, snap);
  }
  const { loop: L, dpo } = parseLoopConfig(snap.config);
  const tokPath = snap.tokenizer ?? undefined;

  // ---- models, judges, prompts ----
  const initial = await resolveModel(snap.model, tokPath, 'model');
  const tok: Tokenizer = initial.tokenizer;
  const vocab = initial.model.config.vocabSize;
  const people = L.judge === 'people';
  if (people) {
    if (!o.people) throw new Error('judge "people": no annotation labeller given (the `dpo loop` command makes one from annotate_project and annotate_url)');
    await o.people.check();
  }
  const judge: SampleJudge | null = people ? null : (o.judge ?? await loadSampleJudge(L.judge, vocab));
  const heldOut: ScoringJudge[] = await Promise.all(L.eval_judges.map(async (s) => ({ kind: 'scores' as const, name: s, reward: await loadRewardFunction(s, vocab) as RewardFunction })));
  const scorers: ScoringJudge[] = [...(judge?.kind === 'scores' ? [judge] : []), ...heldOut.filter((h) => h.name !== judge?.name)];
  const maxPrompt = Math.max(1, initial.model.config.maxPositions - L.max_new_tokens);
  const trainPrompts = await loadPrompts(L.prompts, tok, 'prompt', maxPrompt);
  const evalPrompts = L.eval_prompts ? await loadPrompts(L.eval_prompts, tok, 'prompt', maxPrompt) : [];
  const roundDir = (k: number): string => join(dir, `round-${k}`);
  const modelOf = (k: number): string => (k === 0 ? snap.model : join(roundDir(k), 'train'));
  const loadPolicy = async (k: number): Promise<CausalLM> => (k === 0 ? initial.model : (await resolveModel(modelOf(k), tok, `round ${k} model`)).model);

  /** Samples `per` completions for each prompt (batched in chunks, each chunk with its own seed). */
  const sample = (model: CausalLM, prompts: readonly Prompt[], per: number, seed: number, temperature: number): { ids: number[][]; texts: string[] } => {
    const rows = prompts.flatMap((p) => Array.from({ length: per }, () => p.ids));
    const ids: number[][] = [], texts: string[] = [];
    const chunk = 32;
    for (let s = 0; s < rows.length; s += chunk) {
      const ro = sampleRollout(model, tok, rows.slice(s, s + chunk), {
        maxNewTokens: L.max_new_tokens, temperature, topK: L.top_k, topP: L.top_p, seed: seedOf(seed, s), stopId: tok.eosId,
      });
      ids.push(...ro.completionIds);
      texts.push(...ro.texts);
    }
    return { ids, texts };
  };
  const scoreAll = async (j: ScoringJudge, prompts: string[], promptIds: number[][], texts: string[], ids: number[][]): Promise<Float64Array> => {
    const r = await judgeScores(j, { prompts, completions: texts, promptIds, completionIds: ids });
    const bad = r.findIndex((x) => !Number.isFinite(x));
    if (r.length !== texts.length || bad >= 0) throw new JudgeError(`judge ${j.name}: ${r.length !== texts.length ? `${r.length} scores for ${texts.length} completions` : `score ${r[bad]} for prompt ${JSON.stringify(prompts[bad]).slice(0, 60)}`}`);
    return r;
  };

  /** Evaluates round k's policy on the eval prompts (common random numbers across rounds). */
  const evaluate = async (k: number, policy: CausalLM): Promise<EvalFile> => {
    if (evalPrompts.length === 0) return { samples: [], reward: {}, kl_to_initial: 0, win_rate_vs_previous: null, win_rate_vs_initial: null };
    const per = L.eval_samples_per_prompt;
    const s = sample(policy, evalPrompts, per, seedOf(dpo.seed, 'eval'), 1);
    const rowPrompts = evalPrompts.flatMap((p) => Array.from({ length: per }, () => p));
    const pIds = rowPrompts.map((p) => p.ids), pTexts = rowPrompts.map((p) => p.text);
    const scores: Record<string, Float64Array> = {};
    for (const j of scorers) scores[j.name] = await scoreAll(j, pTexts, pIds, s.texts, s.ids);
    let kl = 0;
    if (k > 0) {
      const cols = Math.max(1, ...s.ids.map((c) => c.length));
      const sums = (m: CausalLM): Float64Array => T.noGrad(() => {
        const out = new Float64Array(s.ids.length);
        for (let b = 0; b < s.ids.length; b += 32) {
          const lp = completionTokenLogprobs(m, pIds.slice(b, b + 32), s.ids.slice(b, b + 32), cols, tok.padId, 1);
          lp.tensor.dispose();
          for (let r = 0; r < Math.min(32, s.ids.length - b); r++) for (let t = 0; t < cols; t++) out[b + r] += lp.values[r * cols + t]!;
        }
        return out;
      });
      const a = sums(policy), b = sums(initial.model);
      kl = mean(Float64Array.from(a, (x, i) => x - b[i]!));
    }
    const samples = s.texts.map((c, i) => ({ prompt: pTexts[i]!, completion: c, scores: Object.fromEntries(Object.entries(scores).map(([n, v]) => [n, v[i]!])) }));
    const winAgainst = async (other: EvalFile | null): Promise<number | null> => {
      if (!other || other.samples.length !== samples.length) return null;
      const primary = judge?.kind === 'pairwise' ? null : (judge ?? heldOut[0])?.name;
      let w = 0;
      for (let i = 0; i < samples.length; i++) {
        let v: PairVerdict;
        if (primary === null) v = await (judge as Extract<SampleJudge, { kind: 'pairwise' }>).compare(samples[i]!.prompt, samples[i]!.completion, other.samples[i]!.completion);
        else if (primary === undefined) return null;
        else {
          const x = samples[i]!.scores[primary]!, y = other.samples[i]!.scores[primary]!;
          v = x > y ? 'a' : x < y ? 'b' : 'tie';
        }
        w += v === 'a' ? 1 : v === 'tie' ? 0.5 : 0;
      }
      return w / samples.length;
    };
    const readEval = (r: number): EvalFile | null => (k > 0 && existsSync(join(roundDir(r), 'eval.json')) ? JSON.parse(readFileSync(join(roundDir(r), 'eval.json'), 'utf8')) as EvalFile : null);
    return {
      samples,
      reward: Object.fromEntries(Object.entries(scores).map(([n, v]) => [n, mean(v)])),
      kl_to_initial: kl,
      win_rate_vs_previous: await winAgainst(readEval(k - 1)),
      win_rate_vs_initial: await winAgainst(readEval(0)),
    };
  };

  // ---- finished rounds ----
  const loopPath = join(dir, 'loop.jsonl');
  const records: RoundRecord[] = existsSync(loopPath) ? readJsonl<RoundRecord>(loopPath) : [];
  const record = (rec: RoundRecord): void => {
    killPoint(rec.round, 'record');
    records.push(rec);
    writeText(loopPath, jsonl(records));
    writeText(join(dir, 'report.md'), renderLoopReport(records));
    o.onRound?.(rec);
  };

  if (!records.some((r) => r.round === 0)) {
    mkdirSync(roundDir(0), { recursive: true });
    const t0 = Date.now();
    const ev = existsSync(join(roundDir(0), 'eval.json')) ? JSON.parse(readFileSync(join(roundDir(0), 'eval.json'), 'utf8')) as EvalFile : await evaluate(0, initial.model);
    killPoint(0, 'eval');
    writeJson(join(roundDir(0), 'eval.json'), ev);
    record({
      round: 0, prompts: 0, candidates: 0, pairs: 0, skipped: 0, label_agreement: null, train_steps: 0, train_loss: null,
      reward: ev.reward, kl_to_initial: 0, win_rate_vs_previous: null, win_rate_vs_initial: null, seconds: { eval: (Date.now() - t0) / 1000 },
    });
  }

  for (let k = 1; k <= L.rounds; k++) {
    if (records.some((r) => r.round === k)) continue;
    const rd = roundDir(k);
    mkdirSync(rd, { recursive: true });
    const seconds: Record<string, number> = {};
    const timed = async <X>(phase: string, f: () => Promise<X>): Promise<X> => {
      const t0 = Date.now();
      try {
        return await f();
      } finally {
        seconds[phase] = (Date.now() - t0) / 1000;
      }
    };

    // ---- sample ----
    const samplesPath = join(rd, 'samples.jsonl');
    if (!existsSync(samplesPath)) {
      await timed('sample', async () => {
        let chosen = trainPrompts.map((_, i) => i);
        if (L.prompts_per_round !== null && L.prompts_per_round < trainPrompts.length) chosen = new Rng(seedOf(dpo.seed, 'prompts', k)).shuffle(chosen).slice(0, L.prompts_per_round);
        const ps = chosen.map((i) => trainPrompts[i]!);
        log(`round ${k}/${L.rounds}: sampling ${ps.length} prompts × ${L.candidates_per_prompt} candidates`);
        const policy = await loadPolicy(k - 1);
        const s = sample(policy, ps, L.candidates_per_prompt, seedOf(dpo.seed, 'round', k), L.sampling_temperature);
        const C = L.candidates_per_prompt;
        const rows: SampleRow[] = ps.map((p, i) => ({ prompt: p.text, prompt_ids: p.ids, candidates: s.texts.slice(i * C, (i + 1) * C), candidate_ids: s.ids.slice(i * C, (i + 1) * C) }));
        killPoint(k, 'sample');
        writeText(samplesPath, jsonl(rows));
      });
    }
    const samples = readJsonl<SampleRow>(samplesPath);

    // ---- label ----
    const pairsPath = join(rd, 'pairs.jsonl'), labelsPath = join(rd, 'labels.json');
    if (!existsSync(pairsPath) || !existsSync(labelsPath)) {
      await timed('label', async () => {
        const rng = new Rng(seedOf(dpo.seed, 'pairing', k));
        let pairs: PreferenceRow[] = [];
        let skipped = 0, agreement: number | null = null, note = '';
        if (people) {
          const toLabel: PairToLabel[] = [];
          for (const s of samples) {
            // Unordered pairs (people decide the order): by index, lower index shown as response a.
            const byIndex = s.candidates.map((_, i) => -i);
            const idx = pairsFromScores(byIndex, s.candidates, L.pairing === 'all_pairs' ? 'all_pairs' : 'random_pair', rng);
            for (const [i, j] of idx) toLabel.push({ prompt: s.prompt, a: s.candidates[i]!, b: s.candidates[j]! });
          }
          log(`round ${k}: ${toLabel.length} pairs go to the annotation project`);
          const r = await o.people!.label(k, toLabel, { minPairs: L.min_pairs, quiet: o.quiet ?? false });
          pairs = r.pairs;
          agreement = r.agreement;
          skipped = toLabel.length - pairs.length;
          note = r.note;
        } else if (judge!.kind === 'scores') {
          const flat = samples.flatMap((s) => s.candidates.map((c, i) => ({ s, c, ids: s.candidate_ids[i]! })));
          const sc = await scoreAll(judge!, flat.map((f) => f.s.prompt), flat.map((f) => f.s.prompt_ids), flat.map((f) => f.c), flat.map((f) => f.ids));
          const C = L.candidates_per_prompt;
          samples.forEach((s, p) => {
            const idx = pairsFromScores(Array.from(sc.subarray(p * C, (p + 1) * C)), s.candidates, L.pairing, rng);
            if (idx.length === 0) skipped++;
            for (const [i, j] of idx) pairs.push({ prompt: s.prompt, chosen: s.candidates[i]!, rejected: s.candidates[j]! });
          });
        } else {
          // A pairwise judge (often slow: a model or an API) labels prompt by prompt; each prompt's
          // verdicts are appended to labels.partial.jsonl, so a stop loses at most the prompt in progress.
          const pj = judge!;
          const partialPath = join(rd, 'labels.partial.jsonl');
          const done = new Map<number, [number, number][]>();
          if (existsSync(partialPath)) {
            const kept: string[] = [];
            for (const line of readFileSync(partialPath, 'utf8').split('\n')) {
              try {
                const r = JSON.parse(line) as { prompt: number; pairs: [number, number][] };
                done.set(r.prompt, r.pairs);
                kept.push(line);
              } catch { /* a torn last line: that prompt is judged again */ }
            }
            writeText(partialPath, jsonl(kept.map((l) => JSON.parse(l) as unknown)));
          }
          for (let p = 0; p < samples.length; p++) {
            const s = samples[p]!;
            let idx = done.get(p);
            if (!idx) {
              idx = await pairsFromVerdicts(s.candidates, L.pairing, new Rng(seedOf(dpo.seed, 'pairing', k, p)), (i, j) => pj.compare(s.prompt, s.candidates[i]!, s.candidates[j]!));
              appendFileSync(partialPath, `${JSON.stringify({ prompt: p, pairs: idx })}\n`);
              if (p === 1) killPoint(k, 'label-prompt');
            }
            if (idx.length === 0) skipped++;
            for (const [i, j] of idx) pairs.push({ prompt: s.prompt, chosen: s.candidates[i]!, rejected: s.candidates[j]! });
          }
        }
        if (!people && heldOut.length > 0 && pairs.length > 0) {
          // Agreement of the labels with the first held-out judge (ties count one half).
          const h = heldOut[0]!;
          const ids = (t: string): number[] => tok.encode(t, { addBos: false });
          const c = await scoreAll(h, pairs.map((p) => p.prompt), pairs.map((p) => tok.encode(p.prompt, { addBos: true })), pairs.map((p) => p.chosen), pairs.map((p) => ids(p.chosen)));
          const r = await scoreAll(h, pairs.map((p) => p.prompt), pairs.map((p) => tok.encode(p.prompt, { addBos: true })), pairs.map((p) => p.rejected), pairs.map((p) => ids(p.rejected)));
          agreement = mean(Float64Array.from(c, (x, i) => (x > r[i]! ? 1 : x === r[i]! ? 0.5 : 0)));
        }
        if (pairs.length < L.min_pairs) {
          throw new Error(`round ${k}: ${pairs.length} labelled pairs, fewer than min_pairs ${L.min_pairs}${note ? ` (${note})` : ''}; nothing of the round was trained`);
        }
        killPoint(k, 'label');
        writeText(pairsPath, jsonl(pairs));
        writeJson(labelsPath, { judge: people ? 'people' : judge!.name, pairs: pairs.length, skipped, label_agreement: agreement, note });
      });
    }
    const labels = JSON.parse(readFileSync(labelsPath, 'utf8')) as { pairs: number; skipped: number; label_agreement: number | null };

    // ---- train ----
    const trainDir = join(rd, 'train'), trainedPath = join(rd, 'trained.json');
    if (!existsSync(trainedPath)) {
      await timed('train', async () => {
        log(`round ${k}: training on ${labels.pairs} pairs (reference: ${L.reference === 'initial' ? 'the initial model' : `round ${k - 1}`})`);
        const res = await runDpo({
          model: modelOf(k - 1), tokenizer: tokPath, ref: L.reference === 'initial' ? snap.model : modelOf(k - 1),
          data: pairsPath, config: { ...dpo, output_dir: null }, outputDir: trainDir, resume: true, quiet: o.quiet,
          on: { checkpoint: () => killPoint(k, 'checkpoint') },
        });
        if (res.stoppedBecause) throw new Error(`round ${k}: training stopped: ${res.stoppedBecause}`);
        const last = [...res.history].reverse().find((h) => h.loss !== undefined);
        killPoint(k, 'train');
        writeJson(trainedPath, { steps: res.steps, loss: last?.loss ?? null });
      });
    }
    const trained = JSON.parse(readFileSync(trainedPath, 'utf8')) as { steps: number; loss: number | null };

    // ---- evaluate ----
    const evalPath = join(rd, 'eval.json');
    if (!existsSync(evalPath)) {
      await timed('eval', async () => {
        log(`round ${k}: evaluating on ${evalPrompts.length} prompts`);
        const ev = await evaluate(k, await loadPolicy(k));
        killPoint(k, 'eval');
        writeJson(evalPath, ev);
      });
    }
    const ev = JSON.parse(readFileSync(evalPath, 'utf8')) as EvalFile;
    record({
      round: k, prompts: samples.length, candidates: samples.length * L.candidates_per_prompt, pairs: labels.pairs, skipped: labels.skipped,
      label_agreement: labels.label_agreement, train_steps: trained.steps, train_loss: trained.loss, reward: ev.reward,
      kl_to_initial: ev.kl_to_initial, win_rate_vs_previous: ev.win_rate_vs_previous, win_rate_vs_initial: ev.win_rate_vs_initial, seconds,
    });
    log(renderLoopReport(records.slice(-1), false));
  }
  return records;
}

const f = (x: number | null | undefined, d = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));

/** The table across rounds (Markdown). */
export function renderLoopReport(records: readonly RoundRecord[], header = true): string {
  const judges = [...new Set(records.flatMap((r) => Object.keys(r.reward)))];
  const head = `| round | pairs | label agreement | ${judges.map((j) => `reward ${j}`).join(' | ')}${judges.length ? ' | ' : ''}KL to initial | win vs previous | win vs initial | train loss |`;
  const sep = `|${' --- |'.repeat(8 + judges.length)}`;
  const rows = records.map((r) =>
    `| ${r.round === 0 ? '0 (initial)' : r.round} | ${r.pairs} | ${f(r.label_agreement)} | ${judges.map((j) => f(r.reward[j], 3)).join(' | ')}${judges.length ? ' | ' : ''}` +
    `${f(r.kl_to_initial)} | ${f(r.win_rate_vs_previous)} | ${f(r.win_rate_vs_initial)} | ${f(r.train_loss, 4)} |`);
  return header ? `# Feedback loop\n\n${head}\n${sep}\n${rows.join('\n')}\n` : rows.join('\n');
}
