// Training-step speed and peak memory of ours (bench/step.ts) against PyTorch float32 on the same
// machine, in one run, each configuration in its own process (peak RSS is per process):
//
//   npx tsc -p . && node dist/bench/compare-steps.js [--configs train:small,dpo:small,dpo:llama135]
//       [--threads 2] [--rounds 2] [--steps 3] [--warmup 1] [--pairs 2] [--json out.json]
//       [--also NAME=CHECKOUT[:ADDON]] [--no-torch] [--avx2] [--bf16] [--checkpointing]
//
// --avx2 is the laptop case (x86 without AVX-512) on both sides: ours with DPO_GEMM_KERNEL=avx2 and
// DPO_NATIVE_ISA=avx2 (GEMM micro-kernel and fused kernels), PyTorch with
// ATEN_CPU_CAPABILITY=avx2 and OPENBLAS_CORETYPE=Haswell (its own kernels and OpenBLAS's).
//
// Configurations are MODE:CONFIG with MODE train (fwd+bwd+AdamW of next-token NLL, PyTorch side
// bench/torch_train_step.py), dpo (policy fwd+bwd + frozen reference fwd + AdamW, PyTorch side
// ../shared/bench/bench_dpo.py) or dpo-pre (ours with precomputed reference log-probs; compared
// with our own live-reference dpo run of the same config, no PyTorch run).
// Runs are interleaved (ours, torch, ours, torch, ...) across --rounds so load changes on a shared
// machine hit both sides; the table gives medians over rounds, the min–max spread of the per-round
// ratios, the ratio of CPU seconds per step (the other side's over ours: on a loaded machine it moves
// far less than wall time), and the load average seen before each run. --also adds another checkout of ours (e.g. the
// previous commit built in a git worktree) as an extra column, for before/after measurements.
// --checkpointing: ours with gradient checkpointing (PyTorch's side keeps its activations).
// --bf16: both sides in bf16 autocast (ours `bf16: true`, PyTorch torch.autocast('cpu', bfloat16)).
// The table names the CPU and our kernel path, and gives our peak RSS over the training-state floor.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));          // dist/bench
const root = resolve(here, '..', '..');
const shared = resolve(process.env.DPO_SHARED_BENCH ?? join(root, '..', 'shared', 'bench'));
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}
function args(name: string): string[] {
  const out: string[] = [];
  process.argv.forEach((a, i) => {
    if (a === `--${name}`) out.push(process.argv[i + 1]!);
  });
  return out;
}

const avx2 = process.argv.includes('--avx2');
const configs = arg('configs', 'train:small,dpo:small,dpo:llama135').split(',');
const threads = Number(arg('threads', '2'));
const rounds = Number(arg('rounds', '2'));
const bf16 = process.argv.includes('--bf16');
const steps = arg('steps', '3'), warmup = arg('warmup', '1'), pairs = arg('pairs', '2');
for (const c of configs) {
  const [mode, cfg] = c.split(':');
  if (!mode || !['train', 'dpo', 'dpo-pre'].includes(mode) || !cfg || !['tiny', 'small', 'llama135'].includes(cfg)) {
    console.error(`compare-steps: bad configuration "${c}" (expected MODE:CONFIG, MODE train|dpo|dpo-pre, CONFIG tiny|small|llama135)`);
    process.exit(2);
  }
}

interface Side {
  name: string;
  kind: 'ours' | 'torch';
  checkout?: string;
  addon?: string;
}
const sides: Side[] = [{ name: 'ours', kind: 'ours', checkout: root, addon: process.env.DPO_NATIVE_ADDON }];
for (const spec of args('also')) {
  const m = /^([\w.-]+)=([^:]+)(?::(.+))?$/.exec(spec);
  if (!m) {
    console.error(`compare-steps: --also expects NAME=CHECKOUT[:ADDON], got "${spec}"`);
    process.exit(2);
  }
  sides.push({ name: m[1]!, kind: 'ours', checkout: resolve(m[2]!), addon: m[3] ? resolve(m[3]) : undefined });
}
// --no-torch: only our checkouts (quick before/after comparisons).
if (!process.argv.includes('--no-torch')) sides.push({ name: 'torch', kind: 'torch' });

interface Run {
  kernelPath?: string;
  overFloor?: number;
  tokS: number;
  rssMiB: number;
  stepS: number;
  /** CPU seconds of the process per timed step (median): other load on the machine barely moves it. */
  cpuS: number;
  load: number;
}

const tmp = mkdtempSync(join(tmpdir(), 'compare-steps-'));
let seq = 0;

function runOne(side: Side, mode: string, cfg: string): Run | string {
  const out = join(tmp, `r${seq++}.json`);
  const load = loadavg()[0]!;
  let cmd: string, argv: string[];
  const env = { ...process.env };
  if (side.kind === 'ours') {
    cmd = process.execPath;
    const m = mode === 'dpo-pre' ? 'dpo' : mode;
    argv = [join(side.checkout!, 'dist', 'bench', 'step.js'), m, cfg, String(threads), '--steps', steps, '--warmup', warmup, '--pairs', pairs, '--json', out];
    if (mode === 'dpo-pre') argv.push('--precompute');
    if (bf16) argv.push('--bf16');
    if (process.argv.includes('--checkpointing')) argv.push('--checkpointing');
    if (side.addon) env.DPO_NATIVE_ADDON = side.addon;
    else delete env.DPO_NATIVE_ADDON;
    env.DPO_NUM_THREADS = String(threads);
    if (avx2) Object.assign(env, { DPO_GEMM_KERNEL: 'avx2', DPO_NATIVE_ISA: 'avx2' });
  } else {
    cmd = python;
    const script = mode === 'train' ? join(root, 'bench', 'torch_train_step.py') : join(shared, 'bench_dpo.py');
    if (mode === 'dpo' && !existsSync(script)) return `missing ${script}`;
    argv = [script, cfg, String(threads), '--steps', steps, '--warmup', warmup, '--pairs', pairs, '--json', out];
    if (bf16) argv.push('--bf16');
    env.OMP_NUM_THREADS = String(threads);
    env.DPO_SHARED_BENCH = shared;
    if (avx2) Object.assign(env, { ATEN_CPU_CAPABILITY: 'avx2', OPENBLAS_CORETYPE: 'Haswell' });
  }
  const t0 = Date.now();
  const r = spawnSync(cmd, argv, { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0 || !existsSync(out)) {
    const tail = (r.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    return `exit ${r.status}: ${tail}`;
  }
  const j = JSON.parse(readFileSync(out, 'utf8')) as {
    policy_tok_per_s: number; peak_rss_MiB: number; step_s_median: number; kernel_path?: string; rss_over_floor?: number;
    cpu_s_median?: number; step_s_all?: number[]; step_own_cpu_all?: number[];
  };
  // Ours reports CPU seconds per step; PyTorch's script the CPUs used on average during each step.
  const cpuS = j.cpu_s_median ?? median((j.step_s_all ?? []).map((t, i) => t * (j.step_own_cpu_all?.[i] ?? NaN)));
  console.error(`  ${side.name.padEnd(6)} ${mode}:${cfg} ${j.policy_tok_per_s.toFixed(1)} tok/s, ${j.step_s_median.toFixed(2)} s/step, ` +
    `CPU ${cpuS.toFixed(2)} s/step, peak RSS ${j.peak_rss_MiB.toFixed(0)} MiB, load ${load.toFixed(2)} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  return { tokS: j.policy_tok_per_s, rssMiB: j.peak_rss_MiB, stepS: j.step_s_median, cpuS, load, kernelPath: j.kernel_path, overFloor: j.rss_over_floor };
}

// results[config][side] = runs in round order (null when that run failed).
const results = new Map<string, Map<string, (Run | null)[]>>();
const errors: string[] = [];
for (const c of configs) results.set(c, new Map(sides.map((s) => [s.name, []])));

const cpu = /model name\s*:\s*(.*)/.exec(existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1] ?? 'unknown CPU';
console.error(`compare-steps: CPU ${cpu}; kernel path ${avx2 ? 'AVX2 forced on both sides (ours DPO_GEMM_KERNEL=avx2 DPO_NATIVE_ISA=avx2; torch ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell)' : 'the best each side detects'}`);
console.error(`compare-steps: ${configs.join(', ')}; ${threads} threads, ${rounds} rounds, ${steps} steps (+${warmup} warm-up); load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (let r = 0; r < rounds; r++) {
  for (const c of configs) {
    const [mode, cfg] = c.split(':') as [string, string];
    // Alternate which side goes first so neither always runs right after the other's load.
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      if (side.kind === 'torch' && mode === 'dpo-pre') continue;
      const res = runOne(side, mode, cfg);
      if (typeof res === 'string') {
        errors.push(`${side.name} ${c} round ${r}: ${res}`);
        console.error(`  ${side.name} ${c}: FAILED ${res}`);
        results.get(c)!.get(side.name)!.push(null);
      } else {
        results.get(c)!.get(side.name)!.push(res);
      }
    }
  }
}
rmSync(tmp, { recursive: true, force: true });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
function spread(xs: number[], fmt: (x: number) => string): string {
  return xs.length === 0 ? '-' : `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
}
/** Per-round ratios a/b (rounds where both ran). */
function ratios(a: (Run | null)[], b: (Run | null)[], key: 'tokS' | 'rssMiB' | 'cpuS'): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] && b[i]) out.push(a[i]![key] / b[i]![key]);
  return out;
}

const rows: string[][] = [];
const header = ['config', 'side', 'tok/s median', 'tok/s min–max', 'peak RSS MiB', 'vs', 'speed ratio (spread)', 'CPU-time speed ratio', 'RSS ratio', 'load'];
const table: Record<string, unknown>[] = [];
for (const c of configs) {
  const [mode, cfg] = c.split(':') as [string, string];
  const bySide = results.get(c)!;
  for (const side of sides) {
    const runs = bySide.get(side.name)!;
    const ok = runs.filter((x): x is Run => x !== null);
    if (side.kind === 'torch' && mode === 'dpo-pre') continue;
    // Ours against torch; dpo-pre against our own live-reference dpo of the same config.
    let vsName = '', vsRuns: (Run | null)[] = [];
    if (side.kind === 'ours' && mode !== 'dpo-pre') {
      // Against torch; without torch, ours against the first --also checkout.
      const other = bySide.has('torch') ? 'torch' : side.name === 'ours' ? sides[1]?.name : undefined;
      if (other && other !== side.name) {
        vsName = other;
        vsRuns = bySide.get(other)!;
      }
    } else if (mode === 'dpo-pre') {
      const live = results.get(`dpo:${cfg}`)?.get(side.name);
      if (live) {
        vsName = `${side.name} dpo`;
        vsRuns = live;
      }
    }
    const sr = vsName ? ratios(runs, vsRuns, 'tokS') : [];
    const mr = vsName ? ratios(runs, vsRuns, 'rssMiB') : [];
    // Speed by CPU time: the other side's CPU seconds per step over ours (per round, then median).
    const cr = vsName ? ratios(vsRuns, runs, 'cpuS') : [];
    const row = {
      config: c, side: side.name, tokS: median(ok.map((x) => x.tokS)), tokSAll: ok.map((x) => x.tokS),
      rssMiB: median(ok.map((x) => x.rssMiB)), vs: vsName, speedRatio: median(sr), speedRatioAll: sr,
      cpuRatio: median(cr), cpuRatioAll: cr, rssRatio: median(mr), load: ok.map((x) => x.load),
    };
    table.push(row);
    rows.push([c, side.name, f1(row.tokS), spread(row.tokSAll, f1), row.rssMiB.toFixed(0), vsName || '',
      vsName ? `${f2(row.speedRatio)} (${spread(sr, f2)})` : '', vsName ? `${f2(row.cpuRatio)} (${spread(cr, f2)})` : '', vsName ? f2(row.rssRatio) : '', spread(row.load, f2)]);
  }
}
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]): string => r.map((x, i) => x.padEnd(widths[i]!)).join('  ');
const ourRuns = [...results.values()].flatMap((m) => m.get('ours') ?? []).filter((x): x is Run => x !== null);
console.log(`CPU ${cpu}; ${avx2 ? 'AVX2 path forced on both sides' : 'best path each side detects'}; our kernel path ${ourRuns[0]?.kernelPath ?? '-'}${bf16 ? '; bf16 autocast on both sides' : ''}`);
for (const c of configs) {
  const o = (results.get(c)!.get('ours') ?? []).filter((x): x is Run => x !== null && x.overFloor !== undefined);
  if (o.length) console.log(`${c}: our peak RSS / training-state floor ${median(o.map((x) => x.overFloor!)).toFixed(2)}`);
}
console.log(`threads ${threads}, rounds ${rounds}, ${steps} timed steps (+${warmup} warm-up) per run, ${pairs} pairs`);
console.log(line(header));
for (const r of rows) console.log(line(r));
if (errors.length) console.log(`failed runs:\n  ${errors.join('\n  ')}`);
const jsonPath = arg('json', '');
if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ cpu: cpus()[0]?.model, bf16, threads, rounds, steps, warmup, pairs, table, errors }, null, 1));
