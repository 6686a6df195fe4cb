// One training step of a GPT-2-small or SmolLM2-135M shaped model, timed, mirroring the PyTorch
// reference in ../shared/bench (same shapes, batch, sequence length, random init, AdamW lr 1e-5):
//
//   node dist/bench/step.js MODE CONFIG THREADS [--steps 3] [--warmup 1] [--pairs 2] [--precompute] [--bf16] [--checkpointing]
//       [--lora R] [--frozen-bf16] [--no-share-prompt] [--json out.json] [--profile [gemm]]
//
// MODE dpo:   policy forward+backward on 2·pairs sequences + frozen reference forward + AdamW
//             (--precompute: reference log-probs read from memory, as with precompute_ref_log_probs),
//             through the trainer's own sequenceLogps / referenceLogps with its default layout:
//             share_prompt, each pair's prompt computed once (--no-share-prompt: the padded rows,
//             the prompt twice, as TRL and the PyTorch reference run it)
// MODE train: forward+backward+AdamW of next-token NLL on 2·pairs sequences (the compute-core target)
// CONFIG: tiny | small | llama135 | llama1b. Prints JSON with tokens/s, peak RSS and the training-state floor
// (weights + grads + AdamW + reference; src/train/memory-report.ts); run one config per process.
// Peak RSS: `peak_rss_MiB` is the training steps' peak (VmHWM reset once the model is built, so
// the random float32 initialization does not count), `process_peak_rss_MiB` the whole process's.
// --lora R: LoRA rank R (alpha 2R, no dropout) on every linear layer; the reference is the
// adapters-off base (no second copy). --frozen-bf16 (`frozen_dtype: bfloat16`): frozen weights —
// the LoRA base incl. the tied embedding, or the separate reference copy — stored only as bf16.
// --bf16: bf16 autocast (`bf16: true`): matmuls in bf16 with float32 accumulation.
// --checkpointing: gradient checkpointing (`gradient_checkpointing: true`): blocks recomputed in backward.
// --profile: wall seconds (and process CPU seconds, all threads) of each kernel per phase in the
// last step (the rest of a phase is JS), and the gaps between kernel calls (JS time; the pool's
// workers spin 50 µs, then sleep); --profile gemm also splits the matrix products by transposes,
// shape and, for gemmBf16, operand storage (A32/A16, B32/B16: float32 rounded while packing, or
// bf16 bits). Every step line gives its CPU seconds, system seconds, minor page faults and the CPU
// seconds of each busy thread (main = JS + its share of the kernels; Linux).
import { readdirSync, writeFileSync } from 'node:fs';
import * as T from '../src/tensor/index.js';
import { gemmBf16Path, kernelPath, kernels, nativeKernels, setKernels } from '../src/tensor/backend.js';
import { setMatmulPrecision } from '../src/tensor/autocast.js';
import { memoryFloor } from '../src/train/memory-report.js';
import { cpus as cpuList } from 'node:os';
import type { Kernels } from '../src/tensor/kernels.js';
import { parseModelConfig, type ModelConfig } from '../src/io/config.js';
import { randomModel } from '../src/models/index.js';
import { referenceLogps, sequenceLogps } from '../src/train/dpo.js';
import { computePreferenceLoss } from '../src/losses/index.js';
import { AdamW } from '../src/train/optimizer.js';
import { Rng } from '../src/tensor/random.js';
import { BENCH_SHAPES } from './shapes.js';
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { attachLora } from '../src/nn/lora.js';
import { storeFrozenLinearsAsBf16 } from '../src/nn/linear.js';
import { storeFrozenEmbeddingsAsBf16 } from '../src/models/decoder.js';
import type { DecoderLM } from '../src/models/decoder.js';

const CONFIGS = BENCH_SHAPES;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

const [mode, configName, threadsArg] = process.argv.slice(2);
if (!mode || !['dpo', 'train'].includes(mode) || !configName || !(configName in CONFIGS) || !threadsArg) {
  console.error('usage: node dist/bench/step.js dpo|train tiny|small|llama135|llama1b THREADS [--steps N] [--warmup N] [--pairs N] [--precompute] [--bf16] [--checkpointing] [--lora R] [--frozen-bf16] [--no-share-prompt] [--json FILE]');
  process.exit(2);
}
if (!nativeKernels()) console.error('WARNING: native kernels unavailable; this measures the TypeScript reference backend');
kernels().setNumThreads(Number(threadsArg));
// The kernel paths, read before --profile wraps the kernels (the wrapper is not the native backend).
const kp = kernelPath(), bf16Path = gemmBf16Path();
const profile = process.argv.includes('--profile');
const gemmByShape = profile && process.argv.includes('gemm');
// Per-phase kernel seconds: phaseName → kernel name → wall seconds, and the process CPU seconds
// (all threads) spent inside each kernel (reset each step).
let currentPhase = 'other';
const kernelTime = new Map<string, Map<string, number>>();
const kernelCpu = new Map<string, Map<string, number>>();
// Gaps between one kernel's return and the next call (JS time in which the pool's workers spin
// for 50 µs, then sleep and must be woken): counts and seconds per bucket (µs bounds).
const GAP_BOUNDS_US = [20, 50, 200, 1000, Infinity];
const gapCount = GAP_BOUNDS_US.map(() => 0), gapSum = GAP_BOUNDS_US.map(() => 0);
let lastKernelEnd = 0;
const cpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
if (profile) {
  const base = kernels();
  const timed = {} as Record<string, unknown>;
  for (const name of Object.keys(base) as (keyof Kernels)[]) {
    const f = base[name] as unknown;
    if (typeof f !== 'function') continue;
    timed[name] = (...a: unknown[]): unknown => {
      const t0 = performance.now(), c0 = cpuSeconds();
      const gap = (t0 - lastKernelEnd) * 1000;
      if (lastKernelEnd > 0) {
        const b = GAP_BOUNDS_US.findIndex((x) => gap < x);
        gapCount[b]!++;
        gapSum[b]! += gap / 1e6;
      }
      const r = (f as (...x: unknown[]) => unknown).apply(base, a);
      const c1 = cpuSeconds();
      lastKernelEnd = performance.now();
      const m = kernelTime.get(currentPhase) ?? new Map<string, number>();
      kernelTime.set(currentPhase, m);
      const mc = kernelCpu.get(currentPhase) ?? new Map<string, number>();
      kernelCpu.set(currentPhase, mc);
      // Matrix products by shape with --profile gemm: transposes, M×N×K, batch.
      const key = (name === 'gemm' || name === 'gemmBf16') && gemmByShape
        ? `${name} ${a[0] ? 'T' : 'N'}${a[1] ? 'T' : 'N'} ${a[2]}x${a[3]}x${a[4]}${(a[11] as number) > 1 ? `/b${a[11]}` : ''}${a[13] ? '+C' : ''}${name === 'gemmBf16' ? ` ${a[5] instanceof Uint16Array ? 'A16' : 'A32'}/${a[7] instanceof Uint16Array ? 'B16' : 'B32'}` : ''}`
        : name;
      m.set(key, (m.get(key) ?? 0) + (performance.now() - t0) / 1000);
      mc.set(key, (mc.get(key) ?? 0) + (c1 - c0));
      return r;
    };
  }
  setKernels(timed as unknown as Kernels);
}
const steps = Number(arg('steps', '3')), warmup = Number(arg('warmup', '1')), pairs = Number(arg('pairs', '2'));
const precompute = process.argv.includes('--precompute');
const bf16 = process.argv.includes('--bf16');
const sharePrompt = !process.argv.includes('--no-share-prompt');
if (bf16) setMatmulPrecision('bf16');
const cfg: ModelConfig = parseModelConfig(CONFIGS[configName]!, configName);
const S = cfg.maxPositions;
const loraRank = Number(arg('lora', '0'));
const frozenBf16 = process.argv.includes('--frozen-bf16');
const policy = randomModel(cfg, 0) as DecoderLM;
if (loraRank > 0) {
  const names = [...new Set(policy.linears().map((l) => l.path.split('.').at(-1)!))];
  attachLora(policy.linears(), { r: loraRank, alpha: 2 * loraRank, dropout: 0, targetModules: names }, 0);
  // Everything but the adapters is frozen (embeddings and norms included), as PEFT does.
  for (const p of policy.parameters().values()) if (!/lora_/.test(p.name ?? '')) p.requiresGrad = false;
}
// Under LoRA the reference is the adapters-off policy; otherwise a separate frozen copy.
const reference = mode === 'dpo' && !precompute && loraRank === 0 ? randomModel(cfg, 0) as DecoderLM : null;
if (reference) for (const p of reference.parameters().values()) p.requiresGrad = false;
let frozenBf16Bytes = 0;
if (frozenBf16) {
  for (const m of [policy, reference]) if (m) frozenBf16Bytes += storeFrozenLinearsAsBf16(m.linears()) + storeFrozenEmbeddingsAsBf16(m);
}
// Free the float32 initialization (and the copies frozen_dtype replaced) before measuring.
setFlagsFromString('--expose-gc');
(runInNewContext('gc') as () => void)();
const processPeakInit = process.resourceUsage().maxRSS * 1024;
const vmHwm = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) * 1024;
try {
  writeFileSync('/proc/self/clear_refs', '5');  // resets VmHWM (Linux): the steps' peak from here
} catch {
  // not Linux: the peak below includes the initialization
}
const checkpointing = process.argv.includes('--checkpointing');
policy.ctx.gradientCheckpointing = checkpointing;
if (reference) reference.ctx.gradientCheckpointing = checkpointing;  // as dpo.ts: the reference's head in 128 MiB chunks
const params = policy.trainableParameters();
const opt = new AdamW(params, { weightDecay: 0 });

// Batch as make_batch: a shared random prompt of S/4 tokens, random responses; loss on responses.
const rng = new Rng(1);
const rows = 2 * pairs, P = S / 4;
const ids = new Int32Array(rows * S);
for (let p = 0; p < pairs; p++) {
  for (let t = 0; t < S; t++) {
    const prompt = t < P;
    const shared = prompt ? rng.int(cfg.vocabSize) : 0;
    ids[p * S + t] = prompt ? shared : rng.int(cfg.vocabSize);
    ids[(pairs + p) * S + t] = prompt ? shared : rng.int(cfg.vocabSize);
  }
}
const targets = new Int32Array(rows * S).fill(-1);
for (let r = 0; r < rows; r++) for (let t = 0; t + 1 < S; t++) if (mode === 'train' || t + 1 >= P) targets[r * S + t] = ids[r * S + t + 1]!;
const batch = { pairs, seqLen: S, inputIds: ids, targets, lengths: new Int32Array(rows).fill(S), responseTokens: new Int32Array(rows).fill(S - P), indices: [] };
/** Reference log-probs: the separate copy, or under LoRA the policy with its adapters off. */
function liveReference(): Float64Array {
  if (reference) return referenceLogps(reference, batch, false, undefined, sharePrompt);
  policy.ctx.adaptersEnabled = false;
  try {
    return referenceLogps(policy, batch, false, undefined, sharePrompt);
  } finally {
    policy.ctx.adaptersEnabled = true;
  }
}
const preRef = precompute ? liveReference() : null;

// Seconds of the last step's phases: reference forward, policy forward, backward, AdamW.
const phase = { ref: 0, fwd: 0, bwd: 0, opt: 0 };
const now = (): number => performance.now() / 1000;

function step(): number {
  kernelTime.clear();
  kernelCpu.clear();
  gapCount.fill(0);
  gapSum.fill(0);
  currentPhase = 'ref';
  let t = now();
  const ref = mode === 'dpo' ? preRef ?? liveReference() : null;
  phase.ref = now() - t;
  currentPhase = 'fwd';
  t = now();
  if (mode === 'train') {
    const lp = policy.tokenLogprobs({ ids, batch: rows, seq: S }, targets);
    phase.fwd = now() - t;
    const loss = T.scale(T.sumAll(lp), -1 / (rows * (S - 1)));
    const v = loss.data[0]!;
    currentPhase = 'bwd';
    t = now();
    T.backward(loss);
    phase.bwd = now() - t;
    currentPhase = 'opt';
    t = now();
    opt.update(1e-5);
    T.zeroGrad(params);
    phase.opt = now() - t;
    return v;
  }
  const seq = sequenceLogps(policy, batch, false, { sharePrompt });
  phase.fwd = now() - t;
  const pol = Float64Array.from(seq.data);
  const res = computePreferenceLoss('sigmoid', {
    policyChosen: pol.slice(0, pairs), policyRejected: pol.slice(pairs), refChosen: ref!.slice(0, pairs), refRejected: ref!.slice(pairs),
  }, { beta: 0.1 });
  const g = new Float32Array(rows);
  for (let i = 0; i < pairs; i++) {
    g[i] = res.gradPolicyChosen[i]!;
    g[pairs + i] = res.gradPolicyRejected[i]!;
  }
  currentPhase = 'bwd';
  t = now();
  T.backward(seq, g);
  phase.bwd = now() - t;
  currentPhase = 'opt';
  t = now();
  opt.update(1e-5);
  T.zeroGrad(params);
  phase.opt = now() - t;
  return res.loss;
}

// CPU seconds of each thread of this process (Linux /proc, clock ticks of 10 ms): the main
// thread runs JS and its share of every kernel, the pool's worker(s) the rest; a main thread far
// busier than the workers is serial work (JS, small kernels) the second core cannot take.
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, (Number(f[11]) + Number(f[12])) / 100);  // utime + stime
    }
  } catch {
    // not Linux
  }
  return out;
}
const times: number[] = [], cpus: number[] = [];
for (let i = 0; i < warmup + steps; i++) {
  const th0 = threadCpu();
  const t0 = performance.now(), c0 = process.cpuUsage(), f0 = process.resourceUsage().minorPageFault;
  const loss = step();
  const dt = (performance.now() - t0) / 1000;
  const faults = process.resourceUsage().minorPageFault - f0;
  // CPU seconds of this process (all threads): less sensitive than wall time to other load.
  const c = process.cpuUsage(c0), cpu = (c.user + c.system) / 1e6;
  const ph = `ref ${phase.ref.toFixed(2)} fwd ${phase.fwd.toFixed(2)} bwd ${phase.bwd.toFixed(2)} opt ${phase.opt.toFixed(2)}`;
  const th1 = threadCpu();
  const busy = [...th1].map(([tid, v]) => [tid, v - (th0.get(tid) ?? 0)] as const).filter(([, v]) => v >= 0.01).sort((a, b) => b[1] - a[1]);
  const threadsStr = busy.map(([tid, v]) => `${tid === String(process.pid) ? 'main' : tid} ${v.toFixed(2)}`).join(' ');
  console.error(`  step ${i} ${dt.toFixed(3)}s cpu=${cpu.toFixed(2)}s (sys ${(c.system / 1e6).toFixed(2)}s, ${faults} minor faults; threads ${threadsStr || '-'}) (${ph}) loss=${loss.toFixed(5)} tensor-bytes=${(T.memoryStats().currentBytes / 2 ** 20).toFixed(0)}MiB`);
  if (i >= warmup) {
    times.push(dt);
    cpus.push(cpu);
  }
}
if (profile) {
  for (const [ph, m] of kernelTime) {
    const total = phase[ph as keyof typeof phase] ?? 0;
    let inKernels = 0;
    const mc = kernelCpu.get(ph)!;
    let cpuInKernels = 0;
    const parts = [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => {
      inKernels += v;
      cpuInKernels += mc.get(k) ?? 0;
      return `${k} ${v.toFixed(3)} (cpu ${(mc.get(k) ?? 0).toFixed(3)})`;
    });
    console.error(`  profile ${ph} ${total.toFixed(3)}s: ${parts.join(', ')}; outside kernels ${(total - inKernels).toFixed(3)}; kernels' cpu ${cpuInKernels.toFixed(3)}s`);
  }
  const buckets = GAP_BOUNDS_US.map((b, i) => `${i === 0 ? '<' : `${GAP_BOUNDS_US[i - 1]}–`}${b === Infinity ? '∞' : b}µs: ${gapCount[i]} (${gapSum[i]!.toFixed(3)}s)`);
  console.error(`  profile gaps between kernel calls (last step): ${buckets.join(', ')}`);
}
cpus.sort((a, b) => a - b);
times.sort((a, b) => a - b);
const med = times[Math.floor(times.length / 2)]!;
let N = 0;
for (const [name, p] of policy.parameters()) if (!/wpe/.test(name)) N += p.size;
const floor = memoryFloor(policy.parameters().values(), params, reference ? reference.parameters().values() : null, frozenBf16Bytes);
const trainPeak = vmHwm();
const peakRss = Number.isFinite(trainPeak) ? trainPeak : process.resourceUsage().maxRSS * 1024;
const res = {
  ours: true, mode, config: configName, threads: kernels().numThreads(), pairs, seq: S, ...(mode === 'dpo' ? { share_prompt: sharePrompt } : {}), precompute, bf16, checkpointing, lora: loraRank, frozen_bf16: frozenBf16,
  cpu: cpuList()[0]?.model ?? 'unknown', kernel_path: `${kp.backend}/${kp.gemmKernel ?? '-'}${bf16 ? ` + bf16 ${bf16Path}` : ''}`,
  floor_MiB: floor.total / 2 ** 20, rss_over_floor: peakRss / floor.total,
  step_s_median: med, step_s_min: times[0], step_s_all: times, cpu_s_median: cpus[Math.floor(cpus.length / 2)],
  policy_tok_per_s: (rows * S) / med,
  peak_rss_MiB: peakRss / 2 ** 20,
  process_peak_rss_MiB: Math.max(processPeakInit, process.resourceUsage().maxRSS * 1024) / 2 ** 20,
  peak_tensor_MiB: T.memoryStats().peakBytes / 2 ** 20,
  params: N,
};
console.log(JSON.stringify(res));
const jsonPath = arg('json', '');
if (jsonPath) writeFileSync(jsonPath, JSON.stringify(res, null, 1));
