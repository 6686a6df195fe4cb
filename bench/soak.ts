// Soak bench: does memory stay flat over a long run, and what does the tensor buffer pool cost or
// save? Each workload runs once per pool mode, all modes side by side in their own processes, in
// interleaved segments (mode A runs K steps while the others wait, then B, then C, ...), so the
// speed ratios compare the same steps under the same machine load. Every segment records RSS, V8
// heap statistics (used, total, external, array buffers) and the pool's own counters, which tells
// a leak in JS objects or FinalizationRegistry bookkeeping (heap used grows), native buffers
// (external grows) and pool growth (pooled bytes grow) apart.
//
//   npx tsc -p . && node dist/bench/soak.js        # default: every workload at its default length
//   node dist/bench/soak.js --workloads dpo-demo --steps 5000 --segment 100 --json soak.json
//   (the 5,000-step soaks of README's table: --modes pool, one workload at a time, under nice -n 10)
//
// Options: --workloads dpo-demo,dpo-hh,sft-hh,grpo,ppo,grpo-tiny,ppo-tiny,generate,serve   --modes pool,none,exact[,pool-gc,pool-idle]
//          --steps N (units per run: optimizer steps, prompts or requests; default per workload;
//          or per workload: --steps dpo-demo=5000,serve=10000)  --segment K (units per segment;
//          default steps/25; same two forms)  --threads 1  --warmup 0.1 (fraction)
//          --json FILE  --data DIR (default ../shared/data, for the HH-RLHF length spread)
//          --factor F (the pool mode's bound: F × the working set instead of the default)
//          --node-flags "--trace-gc-nvp ..." (V8/Node flags for the children)
//          --alloc 1 (JS bytes allocated per unit, from node:v8's GC profiler: its buffers are freed
//          only by full collections, so it adds ~1 MiB of glibc mmapped memory per segment to the trace)
//          --sites all|live (with one mode: V8's sampling heap profiler from the end of the first
//          segment to the run's end, then a forced full GC; 'all' keeps objects collected by
//          mark-compacts (promoted, then dead), 'live' only survivors; prints the top allocation
//          stacks by bytes; run both and diff: the difference is the promoted garbage, by site)
//          --gc 1 (a full GC before each sample: heap used is then the live JS heap, to tell a leak
//          in JS objects from garbage V8 has not collected yet; it changes the RSS trace)
//
// Modes: pool = the size-class pool with its automatic bound (the default); none = no pooling
// (DPO_POOL_LIMIT_MB=0); exact = the former pool (exact element counts, fixed 4 GiB bound, dropped
// blocks left to the GC, glibc's default malloc settings); pool-gc (only with --modes) = the size
// classes without src/tensor/allocator.ts (dropped blocks left to the GC, glibc's defaults);
// pool-idle (only with --modes) = the previous bound: idle bytes ≤ 2 × the working set (on top of
// the live ones), instead of every owned byte ≤ 1.75 × it.
//
// Workloads (add one by adding an entry to WORKLOADS): dpo-demo = `dpo train` (runDpo) on a model of the demo base's shape (1.1M parameters,
// context 128) with pairs built like the demo's (its Moby-Dick prompts of 3–6 words, completions
// of up to 24 tokens), batch 8; dpo-hh = the same model with a 512 context on HH-RLHF pairs
// (their real length spread, truncated at 256 tokens), batch 4; sft-hh = `dpo sft` on HH-RLHF's
// chosen dialogues, batch 8; grpo = `dpo grpo` on the demo's prompts (groups of 8, 24-token
// completions, AFINN reward: rollouts + updates); ppo = `dpo ppo` on the same prompts (16
// rollouts of 24 tokens, value model, 2 epochs of 2 mini-batches); grpo-tiny, ppo-tiny = the same
// on a tiny model (2 layers of 32; groups of 4, 8 rollouts, 8-token completions, 1 PPO epoch), so
// that 5,000 steps finish; generate = `dpo annotate add-prompts` (two sampled candidates per
// demo prompt, up to 48 new tokens); serve = the annotation server answering loopback requests
// (login, queue, votes, dashboard, static pages; only the pool mode, it allocates no tensors).
// Models have random weights: memory and speed do not depend on the values.

import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { gunzipSync } from 'node:zlib';
import { getHeapStatistics, getHeapSpaceStatistics, GCProfiler, setFlagsFromString } from 'node:v8';
import { Agent, request } from 'node:http';
import { Session } from 'node:inspector';
import { runInNewContext } from 'node:vm';
import * as T from '../src/tensor/index.js';
import { nativeKernels } from '../src/tensor/backend.js';
import { mallocInfo } from '../src/tensor/allocator.js';
import { llamaConfig } from '../src/io/config.js';
import { saveHfDirectory } from '../src/io/hf-dir.js';
import { saveTokenizerFiles, trainByteLevelBpe, loadTokenizer } from '../src/io/tokenizers/index.js';
import { randomModel } from '../src/models/index.js';
import { loadModelAndTokenizer } from '../src/io/load-model.js';
import { loadMobyDick, promptsFrom, splitCorpus } from '../src/demo/corpus.js';
import { runDpo } from '../src/train/dpo.js';
import { runSft } from '../src/train/sft.js';
import { parseDpoConfig, parseSftConfig } from '../src/train/config.js';
import { runGrpo } from '../src/train/grpo.js';
import { parseGrpoConfig, parsePpoConfig } from '../src/train/rl-config.js';
import { runPpo } from '../src/train/ppo.js';
import { openDatabase } from '../src/annotate/db.js';
import { addPairs, createAnnotator, dbPath, initProject } from '../src/annotate/store.js';
import { addPrompts, DEFAULT_SAMPLING } from '../src/annotate/generate.js';
import { modelCandidateGenerator } from '../src/annotate/local-model.js';
import { startServer } from '../src/annotate/server.js';
import { seededRng } from '../src/annotate/queue.js';
import { Rng } from '../src/tensor/random.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const MODES = ['pool', 'none', 'exact', 'pool-gc', 'pool-idle'] as const;
/** Modes run unless --modes says otherwise (pool-gc isolates what allocator.ts adds to the size classes). */
const DEFAULT_MODES: Mode[] = ['pool', 'none', 'exact'];
type Mode = (typeof MODES)[number];

// ---- samples -----------------------------------------------------------------------------------

interface Sample {
  units: number;
  /** Wall and CPU seconds of the segment that ended here. */
  wall: number;
  cpu: number;
  rss: number;
  /** Peak RSS of the process so far (VmHWM). */
  hwm: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  pooled: number;
  held: number;
  workingSet: number;
  poolLimit: number;
  hits: number;
  misses: number;
  evicted: number;
  /** Dropped blocks freed at once; never-released buffers reclaimed by the GC (bytes, cumulative). */
  freed: number;
  collected: number;
  /** glibc: heap/arena bytes from the system, mmapped bytes, free bytes the allocator holds (-1: unknown). */
  mallocArena: number;
  mallocMmapped: number;
  mallocFree: number;
  /** V8's heap by space (resident bytes / used bytes): new = the young generation's semi-spaces,
   * old = objects that survived two scavenges, code, large = objects over 128 KiB (all three large spaces). */
  newSize: number;
  newUsed: number;
  oldSize: number;
  oldUsed: number;
  codeSize: number;
  largeSize: number;
  /** JS bytes allocated during the segment (with --alloc 1: from the GC profiler, heap used before
   * each collection minus after the previous one, plus the rise since the last collection; else -1),
   * and the segment's collections. */
  allocated: number;
  scavenges: number;
  markCompacts: number;
}

/**
 * Counts what V8 allocates and collects between samples (node:v8 GCProfiler; --alloc 1 only: a
 * profiler's native buffer of per-collection records is freed only when a full collection takes
 * its JS object, so one per segment grew glibc's mmapped bytes by ~1 MiB a segment and perturbed
 * the very trace it explains).
 */
class AllocationMeter {
  private prof = new GCProfiler();
  private after = getHeapStatistics().used_heap_size;
  constructor() {
    this.prof.start();
  }
  /** Bytes allocated and collections since the previous call. */
  take(): { allocated: number; scavenges: number; markCompacts: number } {
    const r = this.prof.stop() as { statistics: { gcType: string; beforeGC: { heapStatistics: { usedHeapSize: number } }; afterGC: { heapStatistics: { usedHeapSize: number } } }[] } | undefined;
    let allocated = 0, scavenges = 0, markCompacts = 0;
    for (const g of r?.statistics ?? []) {
      allocated += Math.max(0, g.beforeGC.heapStatistics.usedHeapSize - this.after);
      this.after = g.afterGC.heapStatistics.usedHeapSize;
      if (g.gcType === 'Scavenge' || g.gcType.startsWith('Minor')) scavenges++;
      else if (g.gcType === 'MarkSweepCompact') markCompacts++;
    }
    const now = getHeapStatistics().used_heap_size;
    allocated += Math.max(0, now - this.after);
    this.after = now;
    this.prof = new GCProfiler();
    this.prof.start();
    return { allocated, scavenges, markCompacts };
  }
}
let meter: AllocationMeter | undefined;

/**
 * Without --alloc 1 the child counts no collections itself: the parent counts the lines of V8's
 * --trace-gc on the child's stdout (printed from C++, nothing allocated in the child's heap). A
 * PerformanceObserver of 'gc' entries did it before, but Node builds each entry with deprecation
 * wrappers that were promoted and died in the old generation (~5 KiB per scavenge): most of the
 * old-space growth the generate soak showed was the bench's own.
 */
function gcCounter(): { allocated: number; scavenges: number; markCompacts: number } {
  return { allocated: -1, scavenges: -1, markCompacts: -1 };
}

function startMeter(): void {
  if (process.env.DPO_SOAK_ALLOC === '1') meter = new AllocationMeter();
  else gcCounter();
}

function spaces(): { newSize: number; newUsed: number; oldSize: number; oldUsed: number; codeSize: number; largeSize: number } {
  const o = { newSize: 0, newUsed: 0, oldSize: 0, oldUsed: 0, codeSize: 0, largeSize: 0 };
  for (const sp of getHeapSpaceStatistics()) {
    if (sp.space_name === 'new_space') {
      o.newSize = sp.physical_space_size;
      o.newUsed = sp.space_used_size;
    } else if (sp.space_name === 'old_space') {
      o.oldSize = sp.physical_space_size;
      o.oldUsed = sp.space_used_size;
    } else if (sp.space_name === 'code_space') o.codeSize = sp.physical_space_size;
    else if (sp.space_name.endsWith('large_object_space')) o.largeSize += sp.physical_space_size;
  }
  return o;
}

function vmHwm(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function sampleNow(units: number, wall: number, cpu: number): Sample {
  const mu = process.memoryUsage();
  const hs = getHeapStatistics();
  const ms = T.memoryStats();
  const mi = mallocInfo();
  const gc = meter ? meter.take() : gcCounter();
  return {
    ...spaces(), ...gc,
    units, wall, cpu, rss: mu.rss, hwm: vmHwm(), heapUsed: hs.used_heap_size, heapTotal: hs.total_heap_size,
    external: hs.external_memory, arrayBuffers: mu.arrayBuffers, pooled: ms.pooledBytes, held: ms.heldBytes,
    workingSet: ms.workingSetBytes, poolLimit: ms.poolLimitBytes, hits: ms.poolHits, misses: ms.poolMisses, evicted: ms.poolEvictedBytes,
    freed: ms.freedBytes, collected: ms.collectedBytes,
    mallocArena: mi?.arena ?? -1, mallocMmapped: mi?.mmapped ?? -1, mallocFree: mi?.free ?? -1,
  };
}

// ---- workloads ---------------------------------------------------------------------------------

interface Setup {
  dir: string;
  dataDir: string;
}

interface Workload {
  /** What one unit is. */
  unit: 'step' | 'prompt' | 'request';
  defaultSteps: number;
  /** Modes that make sense (serve allocates no tensors: only the default pool). */
  modes?: readonly Mode[];
  /**
   * Child side: runs `steps` units and calls tick(done) after every unit; tick blocks at segment
   * ends until the parent lets this process go on. For 'request' workloads the child serves and
   * the parent sends the requests (client() below).
   */
  run(s: Setup, steps: number, segment: number, tick: (done: number) => void): Promise<void>;
  /** Parent side of request workloads: sends `count` requests to the child's server. */
  client?(url: string, s: Setup): Promise<{ requests(count: number): Promise<void>; close(): void }>;
}

const DEMO_SHAPE = { vocabSize: 2048, hiddenSize: 128, intermediateSize: 384, numLayers: 4, numHeads: 4 };
/** The RL soaks' tiny model (the demo's tokenizer; 2 layers of 32). */
const TINY_SHAPE = { vocabSize: 2048, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2 };

const WORKLOADS: Record<string, Workload> = {
  'dpo-demo': {
    unit: 'step',
    defaultSteps: 2000,
    run: (s, steps, segment, tick) => trainDpo(s, 'model-128', 'demo_pairs.jsonl', { per_device_train_batch_size: 8, max_length: 128 }, steps, segment, tick),
  },
  'dpo-hh': {
    unit: 'step',
    defaultSteps: 500,
    run: (s, steps, segment, tick) =>
      trainDpo(s, 'model-512', 'hh_pairs.jsonl', { per_device_train_batch_size: 4, max_length: 256, max_prompt_length: 192 }, steps, segment, tick),
  },
  'sft-hh': {
    unit: 'step',
    defaultSteps: 1000,
    run: async (s, steps, segment, tick) => {
      await runSft({
        model: join(s.dir, 'model-512'), data: [join(s.dir, 'hh_sft.jsonl')], outputDir: join(s.dir, `out-sft-${process.pid}`), quiet: true,
        config: parseSftConfig({ per_device_train_batch_size: 8, max_length: 256, on_bad_row: 'skip', max_steps: steps, logging_steps: segment, save_steps: 0, eval_split: 0, learning_rate: 1e-4, seed: 3 }),
        on: { log: (r) => tick(r.step!) },
      });
    },
  },
  grpo: {
    unit: 'step',
    defaultSteps: 200,
    run: (s, steps, segment, tick) => rl('grpo', s, 'model-128', { per_device_train_batch_size: 16, num_generations: 8, max_completion_length: 24 }, steps, segment, tick),
  },
  // The same loops on a tiny model (2 layers of 32) with short completions, so that 5,000 steps finish.
  'grpo-tiny': {
    unit: 'step',
    defaultSteps: 400,
    run: (s, steps, segment, tick) => rl('grpo', s, 'model-tiny', { per_device_train_batch_size: 8, num_generations: 4, max_completion_length: 8 }, steps, segment, tick),
  },
  ppo: {
    unit: 'step',
    defaultSteps: 200,
    run: (s, steps, segment, tick) => rl('ppo', s, 'model-128', { per_device_train_batch_size: 16, num_mini_batches: 2, num_ppo_epochs: 2, response_length: 24 }, steps, segment, tick),
  },
  'ppo-tiny': {
    unit: 'step',
    defaultSteps: 400,
    run: (s, steps, segment, tick) => rl('ppo', s, 'model-tiny', { per_device_train_batch_size: 8, num_mini_batches: 2, num_ppo_epochs: 1, response_length: 8 }, steps, segment, tick),
  },
  generate: {
    unit: 'prompt',
    defaultSteps: 600,
    run: async (s, steps, _segment, tick) => {
      const project = join(s.dir, `annotate-gen-${process.pid}`);
      initProject(project, {});
      const db = openDatabase(dbPath(project));
      const { model, tokenizer } = await loadModelAndTokenizer(join(s.dir, 'model-128'));
      const prompts = demoPrompts().slice(0, steps).map((prompt, i) => ({ prompt, line: i + 1 }));
      let done = 0;
      // Counting every prompt (also the rare ones whose two candidates are identical).
      const gen = modelCandidateGenerator(model, tokenizer, 'soak');
      await addPrompts(db, prompts, async (p, n, o) => {
        const r = await gen(p, n, o);
        tick(++done);
        return r;
      }, { ...DEFAULT_SAMPLING, maxNewTokens: 48, seed: 5 }, 'soak');
      db.close();
    },
  },
  serve: {
    unit: 'request',
    defaultSteps: 10000,
    modes: ['pool'],
    run: async (s, _steps, _segment, tick) => {
      const srv = await startServer({ dir: join(s.dir, 'annotate-serve'), port: 0, rng: seededRng(11), log: () => {} });
      process.stdout.write(`${JSON.stringify({ url: srv.url })}\n`);
      await new Promise<void>((done) => {
        let t0 = performance.now(), c0 = process.cpuUsage(), units = 0, buf = '';
        process.stdin.on('data', (d: Buffer) => {
          buf += d.toString();
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line === 'end') {
              void srv.close().then(done);
              return;
            }
            if (line.startsWith('sample ')) {
              units = Number(line.slice(7));
              tick(units);
              const c = process.cpuUsage(c0);
              process.stdout.write(`${JSON.stringify(sampleNow(units, (performance.now() - t0) / 1000, (c.user + c.system) / 1e6))}\n`);
              t0 = performance.now();
              c0 = process.cpuUsage();
            }
          }
        });
      });
    },
    client: async (url, s) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 4 });
      const call = (method: string, path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; json: any; cookie?: string }> =>
        new Promise((ok, fail) => {
          const req = request(url + path, { method, agent, headers: { ...headers, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) } }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              let json: unknown = null;
              try {
                json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
              } catch { /* static pages */ }
              const set = res.headers['set-cookie'];
              ok({ status: res.statusCode ?? 0, json, cookie: set ? String(set[0]).split(';')[0] : undefined });
            });
            res.on('error', fail);
          });
          req.on('error', fail);
          if (body !== undefined) req.write(JSON.stringify(body));
          req.end();
        });
      const invites = JSON.parse(readFileSync(join(s.dir, 'annotate-serve', 'soak-invites.json'), 'utf8')) as string[];
      const sessions: { cookie: string; csrf: string }[] = [];
      const adminToken = readFileSync(join(s.dir, 'annotate-serve', 'admin-token'), 'utf8').trim();
      const admin = { Authorization: `Bearer ${adminToken}` };
      let k = 0;
      const login = async (i: number): Promise<void> => {
        const r = await call('POST', '/api/login', { invite: invites[i] }, { Origin: url });
        if (r.status !== 200 || !r.cookie) throw new Error(`soak serve: login ${r.status} ${JSON.stringify(r.json)}`);
        const me = await call('GET', '/api/me', undefined, { Cookie: r.cookie });
        const sess = { cookie: r.cookie, csrf: me.json.csrf as string };
        await call('POST', '/api/consent', { agree: true }, { Cookie: sess.cookie, 'X-CSRF-Token': sess.csrf, Origin: url });
        sessions[i] = sess;
      };
      for (let i = 0; i < invites.length; i++) await login(i);
      // One "request" = one HTTP request; a round of a reviewer is next + vote (+ me, dashboard and a page now and then).
      const requests = async (count: number): Promise<void> => {
        for (let n = 0; n < count; ) {
          const i = k++ % sessions.length;
          const sess = sessions[i]!;
          const h = { Cookie: sess.cookie, 'X-CSRF-Token': sess.csrf, Origin: url };
          const next = await call('POST', '/api/next', {}, h);
          n++;
          const a = next.json?.assignment;
          if (a && n < count) {
            const choice = ['A', 'B', 'tie', 'both_bad'][k % 4];
            const v = await call('POST', '/api/vote', { assignmentId: a.id, choice, idempotencyKey: `soak-${k}-${i}-vote` }, h);
            if (v.status !== 200) throw new Error(`soak serve: vote ${v.status} ${JSON.stringify(v.json)}`);
            n++;
          }
          if (k % 10 === 0 && n < count) {
            await call('GET', '/api/me', undefined, { Cookie: sess.cookie });
            n++;
          }
          if (k % 25 === 0 && n < count) {
            const q = await call('GET', '/api/admin/quality', undefined, admin);
            if (q.status !== 200) throw new Error(`soak serve: quality ${q.status} ${JSON.stringify(q.json)}`);
            n++;
          }
          if (k % 40 === 0 && n < count) {
            await call('GET', '/', undefined, { Accept: 'text/html' });
            n++;
          }
        }
      };
      return { requests, close: () => agent.destroy() };
    },
  },
};

async function trainDpo(s: Setup, model: string, data: string, extra: Record<string, unknown>, steps: number, segment: number, tick: (done: number) => void): Promise<void> {
  await runDpo({
    model: join(s.dir, model), data: [join(s.dir, data)], outputDir: join(s.dir, `out-dpo-${process.pid}`), quiet: true,
    cacheDir: join(s.dir, 'cache'),
    config: parseDpoConfig({
      beta: 0.1, learning_rate: 5e-4, lr_scheduler_type: 'constant', warmup_ratio: 0, max_steps: steps, logging_steps: segment,
      save_steps: 0, eval_split: 0, seed: 3, on_bad_row: 'skip', ...extra,
    }),
    on: { log: (r) => tick(r.step!) },
  });
}

/** `dpo grpo` or `dpo ppo` on the demo's prompts: the same run options, the trainer's own config shape. */
async function rl(kind: 'grpo' | 'ppo', s: Setup, model: string, shape: Record<string, number>, steps: number, segment: number, tick: (done: number) => void): Promise<void> {
  let calls = 0;
  const raw = { reward_funcs: ['afinn'], ...shape, learning_rate: 1e-4, max_steps: steps, logging_steps: segment, save_steps: 0, lr_scheduler_type: 'constant', seed: 3 };
  const common = {
    model: join(s.dir, model), prompts: [join(s.dir, 'demo_prompts.jsonl')], outputDir: join(s.dir, `out-${kind}-${process.pid}`), quiet: true,
    onLog: (r: { step?: unknown }) => tick(typeof r.step === 'number' ? r.step : Math.min(steps, ++calls * segment)),
  };
  if (kind === 'grpo') await runGrpo({ ...common, config: parseGrpoConfig(raw) });
  else await runPpo({ ...common, config: parsePpoConfig(raw) });
}

function demoPrompts(): string[] {
  return promptsFrom(splitCorpus(loadMobyDick()).heldIn);
}

// ---- setup (parent, once) ------------------------------------------------------------------------

async function makeSetup(dataRoot: string): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'dpo-soak-'));
  const chapters = splitCorpus(loadMobyDick()).heldIn;
  const paragraphs = chapters.flatMap((c) => c.paragraphs);
  // Tokenizer: byte-level BPE with the demo's vocabulary size, trained on the demo's corpus.
  const tokDir = join(dir, 'tok');
  mkdirSync(tokDir);
  const json = trainByteLevelBpe(paragraphs.slice(0, 600), { vocabSize: DEMO_SHAPE.vocabSize, specialTokens: ['<|endoftext|>'] });
  await saveTokenizerFiles(tokDir, json, { bos: '<|endoftext|>', eos: '<|endoftext|>', addBos: true });
  for (const ctx of [128, 512]) {
    const d = join(dir, `model-${ctx}`);
    mkdirSync(d);
    await saveTokenizerFiles(d, json, { bos: '<|endoftext|>', eos: '<|endoftext|>', addBos: true, modelMaxLength: ctx });
    const cfg = llamaConfig({ ...DEMO_SHAPE, maxPositions: ctx, tieWordEmbeddings: true, bosTokenId: 0, eosTokenId: [0] });
    saveHfDirectory(d, { config: cfg, weights: randomModel(cfg, 1).exportWeights() });
  }
  {
    const d = join(dir, 'model-tiny');
    mkdirSync(d);
    await saveTokenizerFiles(d, json, { bos: '<|endoftext|>', eos: '<|endoftext|>', addBos: true, modelMaxLength: 128 });
    const cfg = llamaConfig({ ...TINY_SHAPE, maxPositions: 128, tieWordEmbeddings: true, bosTokenId: 0, eosTokenId: [0] });
    saveHfDirectory(d, { config: cfg, weights: randomModel(cfg, 1).exportWeights() });
  }
  const tok = await loadTokenizer(tokDir);
  // Demo-like pairs: the demo's prompts; as completions, the sentence's next words cut to 6–24
  // tokens (chosen) and another sentence's (rejected), like the base's 24-token samples that stop early.
  const rng = new Rng(17);
  const sentences = paragraphs.flatMap((p) => p.split(/(?<=[.!?])\s+/)).filter((x) => x.split(/\s+/).length > 8);
  const cut = (text: string): string => {
    const ids = tok.encode(text, { addBos: false });
    return tok.decode(ids.slice(0, 6 + rng.int(19)));
  };
  const prompts = demoPrompts();
  const demo = prompts.map((prompt, i) => ({
    prompt, chosen: ` ${cut(sentences[(i * 7) % sentences.length]!)}`, rejected: ` ${cut(sentences[(i * 13 + 5) % sentences.length]!)}`,
  }));
  writeFileSync(join(dir, 'demo_prompts.jsonl'), prompts.map((prompt) => JSON.stringify({ prompt })).join('\n') + '\n');
  writeFileSync(join(dir, 'demo_pairs.jsonl'), demo.slice(0, 1107).map((r) => JSON.stringify(r)).join('\n') + '\n');
  // HH-RLHF: the real file (implicit prompt format) for DPO; its chosen dialogues split at the last
  // assistant turn for SFT.
  const hhFile = join(dataRoot, 'hh-rlhf', 'helpful-base-test.jsonl.gz');
  if (!existsSync(hhFile)) throw new Error(`soak: ${hhFile} not found (set --data to the shared data directory)`);
  const hh = gunzipSync(readFileSync(hhFile)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { chosen: string; rejected: string })
    .filter((r) => r.chosen !== r.rejected);
  writeFileSync(join(dir, 'hh_pairs.jsonl'), hh.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const sft = hh.flatMap((r) => {
    const at = r.chosen.lastIndexOf('\n\nAssistant:');
    return at > 0 ? [{ prompt: r.chosen.slice(0, at + 12), completion: r.chosen.slice(at + 12) }] : [];
  });
  writeFileSync(join(dir, 'hh_sft.jsonl'), sft.map((r) => JSON.stringify(r)).join('\n') + '\n');
  // Annotation project for serve: 2,000 HH pairs, 6 reviewers, overlap 3.
  const project = join(dir, 'annotate-serve');
  initProject(project, { overlap: 3 });
  const db = openDatabase(dbPath(project));
  addPairs(db, hh.slice(0, 2000).map((r, i) => {
    const at = r.chosen.lastIndexOf('\n\nAssistant:');
    const bt = r.rejected.lastIndexOf('\n\nAssistant:');
    return { format: 'text' as const, prompt: r.chosen.slice(0, at), chosen: r.chosen.slice(at + 12), rejected: r.rejected.slice(bt + 12), line: i + 1 };
  }), 'hh-rlhf', false);
  const invites = Array.from({ length: 6 }, (_, i) => createAnnotator(db, `reviewer ${i}`).inviteToken);
  db.close();
  writeFileSync(join(project, 'soak-invites.json'), JSON.stringify(invites));
  return { dir, dataDir: dataRoot };
}

// ---- child -------------------------------------------------------------------------------------

function waitGo(): void {
  const b = Buffer.alloc(64);
  for (;;) {
    try {
      const n = readSync(0, b, 0, b.length, null);
      if (n === 0) process.exit(0); // parent gone
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

function kernelPath(): string {
  if (!nativeKernels()) return 'TypeScript reference backend';
  let dir = HERE;
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'Release', 'dpo_native.node');
    if (existsSync(p)) return `native ${(createRequire(import.meta.url)(p) as { gemmKernel(): string }).gemmKernel()}`;
    dir = resolve(dir, '..');
  }
  return 'native';
}

async function child(name: string, mode: Mode, steps: number, segment: number, setupDir: string, factor: number | undefined): Promise<void> {
  if (mode === 'pool' && factor !== undefined) T.configurePool({ factor });
  if (mode === 'none') T.setPoolLimit(0);
  else if (mode === 'exact') T.configurePool({ classes: 'exact', limitBytes: 4096 * 2 ** 20, freeDropped: false });
  else if (mode === 'pool-gc') T.configurePool({ freeDropped: false });
  else if (mode === 'pool-idle') T.configurePool({ bound: 'idle', factor: factor ?? 2 });
  const w = WORKLOADS[name]!;
  const out = (o: object): void => {
    process.stdout.write(`${JSON.stringify(o)}\n`);
  };
  // Ctrl-C is the parent's to handle (it stops the children after reporting what was measured).
  process.on('SIGINT', () => {});
  out({ ready: true, kernel: kernelPath() });
  // --sites: V8's sampling heap profiler from the end of the first segment to the end of the run.
  const sites = process.env.DPO_SOAK_SITES;
  const profiler = sites ? new Session() : undefined;
  const profileSites = (done: number): void => {
    if (profiler && done === steps) heapSites(profiler, sites === 'all');
    else if (profiler && done === segment) {
      profiler.connect();
      const all = sites === 'all';
      profiler.post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: all, includeObjectsCollectedByMinorGC: false });
    }
  };
  if (w.unit === 'request') {
    startMeter();
    // A request workload's child calls back at each sample the parent asks for (units served so far).
    await w.run({ dir: setupDir, dataDir: '' }, steps, segment, profileSites);
    process.exit(0); // stdin stays open otherwise

  }
  waitGo();
  startMeter();
  let t0 = performance.now(), c0 = process.cpuUsage();
  await w.run({ dir: setupDir, dataDir: '' }, steps, segment, (done) => {
    if (done % segment !== 0 && done !== steps) return;
    profileSites(done);
    const c = process.cpuUsage(c0);
    // --gc 1: a full collection before each sample, so heap used is the live JS heap (a leak shows
    // as a rising floor) and never-released buffers are accounted for; it changes the RSS trace.
    if (process.env.DPO_SOAK_GC === '1') (globalThis as { gc?: () => void }).gc?.();
    out(sampleNow(done, (performance.now() - t0) / 1000, (c.user + c.system) / 1e6));
    if (done < steps) waitGo();
    t0 = performance.now();
    c0 = process.cpuUsage();
  });
  out({ done: true });
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  id: number;
  children: ProfileNode[];
}

/** --sites: stops the sampling heap profiler after a full GC and prints bytes by allocation stack (4 frames) to stderr. */
function heapSites(session: Session, all: boolean): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
  // Two scavenges first: the young generation's garbage goes unrecorded (as during the run) and
  // its survivors are promoted, so the full GC then collects only what was promoted and died.
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  gc();
  session.post('HeapProfiler.stopSampling', (err, res) => {
    if (err) throw err;
    const { head, samples } = (res as unknown as { profile: { head: ProfileNode; samples: { size: number; nodeId: number }[] } }).profile;
    const stack = new Map<number, string>();
    const walk = (n: ProfileNode, path: string[]): void => {
      const f = n.callFrame;
      const here = f.url || f.functionName ? [...path, `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/dist\//, '')}:${f.lineNumber + 1}`] : path;
      stack.set(n.id, here.slice(-4).reverse().join(' < '));
      for (const c of n.children) walk(c, here);
    };
    walk(head, []);
    const bytes = new Map<string, number>();
    let total = 0;
    for (const s of samples) {
      const k = stack.get(s.nodeId) ?? '?';
      bytes.set(k, (bytes.get(k) ?? 0) + s.size);
      total += s.size;
    }
    const top = [...bytes].sort((a, b) => b[1] - a[1]).slice(0, 40);
    process.stderr.write(`heap sites (${all ? 'live + collected by mark-compacts' : 'live'}): ${(total / 1024).toFixed(0)} KiB sampled\n`);
    for (const [k, b] of top) process.stderr.write(`  ${(b / 1024).toFixed(1).padStart(9)} KiB  ${k}\n`);
  });
  session.disconnect();
}

// ---- parent ------------------------------------------------------------------------------------

// Ctrl-C (SIGINT): finish the current round, stop, and report what was measured so far.
let interrupted = false;

/** A line of V8's --trace-gc: "[pid:0x…]   1234 ms: Scavenge 20.1 (35.2) -> …" or "… Mark-Compact …". */
const GC_TRACE = /^\[\d+:0x[0-9a-f]+\]\s+\d+ ms: (Scavenge|Minor|Mark-Compact|Mark-sweep)/;

class Proc {
  private buf = '';
  /** Collections the child's --trace-gc reported since its last sample. */
  private scavenges = 0;
  private markCompacts = 0;
  private waiters: ((o: any) => void)[] = [];
  private lines: any[] = [];
  constructor(readonly p: ChildProcess) {
    p.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const gc = GC_TRACE.exec(line);
        if (gc) {
          if (gc[1] === 'Scavenge' || gc[1] === 'Minor') this.scavenges++;
          else this.markCompacts++;
          continue;
        }
        let o: unknown;
        try {
          o = JSON.parse(line);
        } catch {
          process.stderr.write(`  [child] ${line}\n`);
          continue;
        }
        const smp = o as Partial<Sample>;
        if (typeof smp.units === 'number' && smp.scavenges === -1) {
          smp.scavenges = this.scavenges;
          smp.markCompacts = this.markCompacts;
          this.scavenges = this.markCompacts = 0;
        }
        const w = this.waiters.shift();
        if (w) w(o);
        else this.lines.push(o);
      }
    });
    p.on('exit', (code) => {
      if (this.waiters.length) {
        process.stderr.write(`soak: a child exited with ${code} while the bench waited for it\n`);
        process.exit(1);
      }
    });
  }
  next(): Promise<any> {
    if (this.lines.length) return Promise.resolve(this.lines.shift());
    if (this.p.exitCode !== null) return Promise.reject(new Error(`soak child exited with ${this.p.exitCode}`));
    return new Promise((ok) => this.waiters.push(ok));
  }
  send(s: string): void {
    this.p.stdin!.write(`${s}\n`);
  }
}

interface ModeResult {
  mode: Mode;
  samples: Sample[];
}

const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

async function runWorkload(name: string, modes: Mode[], steps: number, segment: number, setup: Setup, threads: number, factor: string | undefined, nodeFlags: string[]): Promise<{ kernel: string; results: ModeResult[] }> {
  const w = WORKLOADS[name]!;
  const script = fileURLToPath(import.meta.url);
  const extra = factor !== undefined ? ['--factor', factor] : [];
  const gcEach = process.env.DPO_SOAK_GC === '1';
  const traceGc = process.env.DPO_SOAK_ALLOC !== '1' ? ['--trace-gc'] : [];
  const procs = modes.map((m) => new Proc(spawn(process.execPath, [...(gcEach ? ['--expose-gc'] : []), ...traceGc, ...nodeFlags, script, '--child', name, '--mode', m, '--steps', String(steps), '--segment', String(segment), '--setup', setup.dir, ...extra], {
    stdio: ['pipe', 'pipe', 'inherit'],
    // exact = the former pool as it was: also glibc's default malloc settings (see src/tensor/allocator.ts).
    env: { ...process.env, DPO_NUM_THREADS: String(threads), DPO_POOL_LIMIT_MB: m === 'none' ? '0' : '', ...(m === 'exact' || m === 'pool-gc' ? { DPO_MALLOC_TUNE: '0' } : {}) },
  })));
  let kernel = '';
  for (const p of procs) kernel = (await p.next()).kernel;
  const results: ModeResult[] = modes.map((mode) => ({ mode, samples: [] }));
  if (w.unit === 'request') {
    // One server per mode, requests from here, in interleaved segments.
    const clients = [];
    for (const p of procs) clients.push(await w.client!((await p.next()).url, setup));
    for (let done = 0, r = 0; done < steps && !interrupted; r++) {
      const n = Math.min(segment, steps - done);
      for (let j = 0; j < procs.length; j++) {
        const i = (j + r) % procs.length;
        await clients[i]!.requests(n);
        procs[i]!.send(`sample ${done + n}`);
        const s = (await procs[i]!.next()) as Sample;
        results[i]!.samples.push(s);
      }
      done += n;
      progress(name, done, steps, results);
    }
    for (const c of clients) c.close();
    for (const p of procs) p.send('end');
  } else {
    for (let r = 0; ; r++) {
      let finished = 0;
      // Rotate the order each round so no mode always runs first after the others.
      for (let j = 0; j < procs.length; j++) {
        const i = (j + r) % procs.length;
        procs[i]!.send('go');
        const s = await procs[i]!.next();
        if ('units' in s) results[i]!.samples.push(s as Sample);
        if ((s as Sample).units >= steps) finished++;
      }
      progress(name, results[0]!.samples.at(-1)?.units ?? 0, steps, results);
      if (finished === procs.length) break;
      if (interrupted) {
        for (const p of procs) p.p.kill();
        break;
      }
    }
  }
  await Promise.all(procs.map((p) => new Promise((ok) => (p.p.exitCode !== null || p.p.signalCode !== null ? ok(null) : p.p.once('exit', ok)))));
  return { kernel, results };
}

function progress(name: string, done: number, steps: number, results: ModeResult[]): void {
  const last = results.map((r) => `${r.mode} ${mib(r.samples.at(-1)?.rss ?? 0)} MiB`).join(', ');
  process.stderr.write(`  ${name} ${done}/${steps}: RSS ${last}; load ${loadavg()[0]!.toFixed(1)}\n`);
}

interface Summary {
  mode: Mode;
  rssWarm: number;
  rssFinal: number;
  rssMaxAfterWarm: number;
  growth: number;
  peakRss: number;
  heapUsed: [number, number];
  heapTotal: [number, number];
  external: [number, number];
  pooled: number;
  poolLimit: number;
  workingSet: number;
  hitRate: number;
  unitsPerS: number;
  mallocArena: [number, number];
  mallocFree: [number, number];
  /** Per unit after warm-up: bytes freed at once, bytes left to the GC by never-released tensors. */
  freedPerUnit: number;
  collectedPerUnit: number;
}

function summarize(r: ModeResult, warmFrac: number): Summary {
  const s = r.samples;
  const w = Math.min(s.length - 1, Math.max(0, Math.ceil(s.length * warmFrac) - 1));
  const warm = s[w]!, last = s.at(-1)!;
  const after = s.slice(w);
  const steady = s.slice(w + 1);
  const units = steady.length ? last.units - warm.units : last.units;
  const wall = (steady.length ? steady : s).reduce((a, x) => a + x.wall, 0);
  return {
    mode: r.mode,
    rssWarm: warm.rss, rssFinal: last.rss, rssMaxAfterWarm: Math.max(...after.map((x) => x.rss)),
    growth: Math.max(...after.map((x) => x.rss)) / warm.rss - 1,
    peakRss: last.hwm,
    heapUsed: [warm.heapUsed, last.heapUsed], heapTotal: [warm.heapTotal, last.heapTotal], external: [warm.external, last.external],
    pooled: last.pooled, poolLimit: last.poolLimit, workingSet: last.workingSet,
    hitRate: last.hits / Math.max(1, last.hits + last.misses),
    unitsPerS: units / wall,
    mallocArena: [warm.mallocArena, last.mallocArena], mallocFree: [warm.mallocFree, last.mallocFree],
    freedPerUnit: (last.freed - warm.freed) / Math.max(1, units), collectedPerUnit: (last.collected - warm.collected) / Math.max(1, units),
  };
}

/** Per-segment speed ratios other/pool (time_other / time_pool: > 1 means the pool is faster), after warm-up. */
function ratios(results: ModeResult[], other: Mode, warmFrac: number, key: 'wall' | 'cpu'): number[] {
  const p = results.find((r) => r.mode === 'pool'), o = results.find((r) => r.mode === other);
  if (!p || !o) return [];
  const n = Math.min(p.samples.length, o.samples.length);
  const w = Math.max(1, Math.ceil(n * warmFrac));
  const out: number[] = [];
  for (let i = w; i < n; i++) out.push(o.samples[i]![key] / p.samples[i]![key]);
  return out;
}

/** "--steps 400" for every workload, or "--steps dpo-demo=400,serve=10000". */
function perWorkload(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!v.includes('=')) return Number(v);
  for (const part of v.split(',')) {
    const [k, n] = part.split('=');
    if (k === name) return Number(n);
  }
  return undefined;
}

async function parent(args: Map<string, string>): Promise<void> {
  if (args.get('gc') === '1') process.env.DPO_SOAK_GC = '1';
  if (args.get('alloc') === '1') process.env.DPO_SOAK_ALLOC = '1';
  if (args.has('sites')) process.env.DPO_SOAK_SITES = args.get('sites');
  const names = (args.get('workloads') ?? Object.keys(WORKLOADS).join(',')).split(',');
  for (const n of names) if (!WORKLOADS[n]) throw new Error(`soak: unknown workload ${n} (known: ${Object.keys(WORKLOADS).join(', ')})`);
  const modesWanted = (args.get('modes') ?? DEFAULT_MODES.join(',')).split(',') as Mode[];
  for (const m of modesWanted) if (!MODES.includes(m)) throw new Error(`soak: unknown mode ${m} (known: ${MODES.join(', ')})`);
  const threads = Number(args.get('threads') ?? 1);
  const nodeFlags = (args.get('node-flags') ?? '').split(/\s+/).filter(Boolean);
  const warmFrac = Number(args.get('warmup') ?? 0.1);
  const dataRoot = resolve(args.get('data') ?? join(HERE, '..', '..', '..', 'shared', 'data'));
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  process.stderr.write(`soak: ${cpu}, ${cpus().length} cores, ${threads} kernel thread(s), load ${loadavg().map((x) => x.toFixed(1)).join(' ')}; setting up...\n`);
  const setup = await makeSetup(dataRoot);
  const report: Record<string, unknown>[] = [];
  try {
    for (const name of names) {
      if (interrupted) break;
      const w = WORKLOADS[name]!;
      const steps = perWorkload(args.get('steps'), name) ?? w.defaultSteps;
      const segment = perWorkload(args.get('segment'), name) ?? Math.max(1, Math.round(steps / 25));
      const modes = modesWanted.filter((m) => !w.modes || w.modes.includes(m));
      const load0 = loadavg()[0]!;
      const t0 = Date.now();
      const { kernel, results } = await runWorkload(name, modes, steps, segment, setup, threads, args.get('factor'), nodeFlags);
      const sums = results.map((r) => summarize(r, warmFrac));
      const none = sums.find((s) => s.mode === 'none');
      const pool = sums.find((s) => s.mode === 'pool')!;
      const lines: string[] = [];
      const reached = Math.min(...results.map((r) => r.samples.at(-1)?.units ?? 0));
      lines.push(`\n== ${name}: ${reached < steps ? `${reached} of ${steps} (interrupted)` : steps} ${w.unit}s, segments of ${segment}, ${modes.join('/')} interleaved; ${cpu}, kernel ${kernel}, ${threads} thread(s); load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}; ${((Date.now() - t0) / 60000).toFixed(1)} min`);
      lines.push(`RSS trace (MiB, every ${segment} ${w.unit}s):`);
      for (const r of results) lines.push(`  ${r.mode.padEnd(6)} ${r.samples.map((s) => mib(s.rss)).join(' ')}`);
      // Where the RSS goes, per segment: V8's spaces (resident MiB, used in parentheses for old
      // space), glibc's heap, the pool, and the JS allocation rate with its collections.
      for (const r of results) {
        const tr = (f: (s: Sample) => string): string => r.samples.map(f).join(' ');
        lines.push(`  ${r.mode}: V8 new space      ${tr((s) => mib(s.newSize))}`);
        lines.push(`  ${r.mode}: V8 old space (used) ${tr((s) => `${mib(s.oldSize)}(${mib(s.oldUsed)})`)}`);
        lines.push(`  ${r.mode}: V8 code + large   ${tr((s) => `${mib(s.codeSize)}+${mib(s.largeSize)}`)}`);
        lines.push(`  ${r.mode}: glibc heap (free) ${tr((s) => `${mib(s.mallocArena)}(${mib(s.mallocFree)})`)}`);
        lines.push(`  ${r.mode}: external, pooled  ${tr((s) => `${mib(s.external)},${mib(s.pooled)}`)}`);
        lines.push(`  ${r.mode}: JS KiB/${w.unit} (scav/mc) ${r.samples.map((s, i) => `${s.allocated < 0 ? '-' : (s.allocated / 1024 / Math.max(1, s.units - (r.samples[i - 1]?.units ?? 0))).toFixed(0)}(${s.scavenges}/${s.markCompacts})`).join(' ')}`);
        lines.push(`  ${r.mode}: glibc mmapped      ${tr((s) => mib(s.mallocMmapped))}`);
      }
      lines.push('mode   | RSS warm→final MiB | max after warm-up | growth | peak RSS | heap used MiB | heap total | external | pooled / bound MiB | working set | hit rate | ' + `${w.unit}s/s`);
      for (const s of sums) {
        lines.push(`${s.mode.padEnd(6)} | ${mib(s.rssWarm)} → ${mib(s.rssFinal)} | ${mib(s.rssMaxAfterWarm)} | ${(100 * s.growth).toFixed(1)}% | ${mib(s.peakRss)} | ` +
          `${mib(s.heapUsed[0])} → ${mib(s.heapUsed[1])} | ${mib(s.heapTotal[0])} → ${mib(s.heapTotal[1])} | ${mib(s.external[0])} → ${mib(s.external[1])} | ` +
          `${mib(s.pooled)} / ${s.poolLimit ? mib(s.poolLimit) : '-'} | ${mib(s.workingSet)} | ${(100 * s.hitRate).toFixed(1)}% | ` +
          `${mib(s.mallocArena[0])} (${mib(s.mallocFree[0])}) → ${mib(s.mallocArena[1])} (${mib(s.mallocFree[1])}) | ` +
          `${(s.freedPerUnit / 1024).toFixed(0)}, ${(s.collectedPerUnit / 1024).toFixed(0)} | ${s.unitsPerS.toFixed(2)}`);
      }
      const speed: Record<string, unknown> = {};
      for (const other of ['none', 'exact'] as Mode[]) {
        const rw = ratios(results, other, warmFrac, 'wall'), rc = ratios(results, other, warmFrac, 'cpu');
        if (!rw.length) continue;
        speed[other] = { wall: median(rw), wallMin: Math.min(...rw), wallMax: Math.max(...rw), cpu: median(rc) };
        lines.push(`speed pool vs ${other}: ${median(rw).toFixed(3)}× (per-segment ${Math.min(...rw).toFixed(2)}–${Math.max(...rw).toFixed(2)}, ${rw.length} segments), CPU time ${median(rc).toFixed(3)}×`);
      }
      const goals: string[] = [];
      goals.push(`RSS growth after warm-up ${(100 * pool.growth).toFixed(1)}% ${pool.growth < 0.05 ? '<' : '≥'} 5%`);
      if (none) {
        const bound = 1.1 * none.peakRss + pool.workingSet;
        goals.push(`peak RSS ${mib(pool.peakRss)} ${pool.peakRss <= bound ? '≤' : '>'} 1.1 × ${mib(none.peakRss)} + ${mib(pool.workingSet)} = ${mib(bound)} MiB`);
      }
      const ex = speed.exact as { wall: number } | undefined;
      if (ex) goals.push(`speed ${ex.wall.toFixed(3)}× the exact 4 GiB pool ${ex.wall >= 0.98 ? '(goal ≥ 1, within noise or better)' : '(below)'}`);
      lines.push(`goals (pool): ${goals.join('; ')}`);
      console.log(lines.join('\n'));
      report.push({ workload: name, steps, segment, unit: w.unit, cpu, kernel, threads, load: [load0, loadavg()[0]], summaries: sums, speed, samples: Object.fromEntries(results.map((r) => [r.mode, r.samples])) });
    }
  } finally {
    rmSync(setup.dir, { recursive: true, force: true });
  }
  const jsonOut = args.get('json');
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(report, null, 1));
}

// ---- main --------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const args = new Map<string, string>();
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i]!;
  if (!k.startsWith('--') || argv[i + 1] === undefined) throw new Error(`soak: expected --option value pairs, got ${k}`);
  args.set(k.slice(2), argv[i + 1]!);
}
if (args.has('child')) {
  await child(args.get('child')!, args.get('mode') as Mode, Number(args.get('steps')), Number(args.get('segment')), args.get('setup')!,
    args.has('factor') ? Number(args.get('factor')) : undefined);
} else {
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('soak: interrupted: reporting what was measured after the current round (Ctrl-C again quits)\n');
  });
  await parent(args);
}
