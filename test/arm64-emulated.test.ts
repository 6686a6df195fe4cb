// ARM64: the kernels cross-compiled for linux-arm64 (Debian's g++-aarch64-linux-gnu, NEON GEMM path)
// pass the kernel parity and gradient tests under emulation: Debian's arm64 Node (18) runs through
// qemu-user from a root made by scripts/arm64-sysroot.sh. Speed under emulation means nothing;
// correctness does. Needs the optional system components below; CI installs them
// (scripts/install-system-deps.sh), so there a missing one is a failure, not a skip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProbeResult } from './helpers/wasm-v8-probe.js';

const here = dirname(fileURLToPath(import.meta.url)); // dist/test
const repo = join(here, '..', '..');
const ROOT = process.env.DPO_ARM64_ROOT ?? '/opt/dpo-ts-arm64-root';
const ADDON = join(repo, 'prebuilds', 'linux-arm64', 'dpo_native.node');

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}
const missing = [
  !have('qemu-aarch64-static') && 'qemu-user-static',
  !have('aarch64-linux-gnu-g++') && 'g++-aarch64-linux-gnu',
  !existsSync(join(ROOT, 'usr', 'bin', 'node')) && `an arm64 Node in ${ROOT}`,
].filter(Boolean);
const why = missing.length > 0 && `arm64 emulation needs ${missing.join(', ')}: run \`sudo bash scripts/arm64-sysroot.sh\``;
if (why && process.env.CI && process.arch === 'x64') throw new Error(`${why} (CI installs these through scripts/install-system-deps.sh)`);
// Emulation takes minutes: the suite runs under CI, or locally with DPO_TEST_ARM64=1.
const wanted = Boolean(process.env.CI) || process.env.DPO_TEST_ARM64 === '1';
const skip = (!wanted && 'emulated arm64 suite (a few minutes): runs under CI, or set DPO_TEST_ARM64=1') ||
  why || (process.arch !== 'x64' && 'the emulated suite runs on x86-64 hosts');

/** The arm64 addon, rebuilt when any native source is newer than it. */
async function arm64Addon(): Promise<string> {
  const newest = Math.max(...['binding.gyp', ...readdirSync(join(repo, 'native')).map((f) => join('native', f))]
    .map((f) => statSync(join(repo, f)).mtimeMs));
  if (!existsSync(ADDON) || statSync(ADDON).mtimeMs < newest) {
    const script = join(repo, 'scripts', 'prebuild.mjs');
    const { prebuild } = (await import(script)) as { prebuild: (arch: string) => string };
    prebuild('arm64');
  }
  return ADDON;
}

function runArm64(args: string[], env: NodeJS.ProcessEnv = {}) {
  const full: NodeJS.ProcessEnv = {
    ...process.env, ...env, CI: '1', DPO_REQUIRE_NATIVE: '1', DPO_NATIVE_ADDON: ADDON,
    DPO_TEST_NODE_WRAPPER: JSON.stringify(['qemu-aarch64-static', '-L', ROOT]),
  };
  delete full.NODE_TEST_CONTEXT; // the file reports TAP on its own, not the runner's internal protocol
  return spawnSync('qemu-aarch64-static', ['-L', ROOT, join(ROOT, 'usr', 'bin', 'node'), ...args],
    { cwd: repo, env: full, encoding: 'utf8', timeout: 900_000, maxBuffer: 64 << 20 });
}

// The wasm engine of the arm64 Node. Debian 12's Node 18 (V8 10.2) miscompiles SIMD128 code in its
// optimizing tier on arm64: TurboFan's gap resolver swaps a register holding a 128-bit value with
// 64-bit moves (`mov v30.8b, v6.8b; mov v6.8b, v1.8b; mov v1.8b, v30.8b` while v1 holds an f32x4),
// dropping lanes 2-3, so horizontal sums (gemm's Dot, rmsnorm, softmax backward, sumSquares) come
// out wrong. V8's own bug, not qemu's nor our kernels': Liftoff on the same engine, TurboFan of the
// same V8 on x64 (Node 18.20.4) and of V8 11.3 on arm64 under the same qemu (Node 20.19.6) are all
// exact; test/fixtures/wasm-v8-arm64/ holds the 11-line reproducer and the evidence. On such an
// engine the wasm reruns run on Liftoff only (`--liftoff-only`), which still checks our wasm on an
// arm64 engine; an engine that passes the probe runs them as configured.
function probeArm64(tier: string): ProbeResult {
  const r = runArm64([tier, join(here, 'helpers', 'wasm-v8-probe.js')]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ProbeResult;
}
let wasmFlags: string[] | undefined;
/** V8 flags for the arm64 wasm reruns: [] on a sound engine, ['--liftoff-only'] on V8 10.2's. */
function arm64WasmFlags(): string[] {
  wasmFlags ??= probeArm64('--no-liftoff').wrong === 0 ? [] : ['--liftoff-only'];
  return wasmFlags;
}

test('wasm engine probe: exact on this Node in both V8 tiers', async () => {
  for (const tier of ['--no-liftoff', '--liftoff-only']) {
    const r = spawnSync(process.execPath, [tier, join(here, 'helpers', 'wasm-v8-probe.js')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const p = JSON.parse(r.stdout) as ProbeResult;
    assert.ok(p.total > 0 && p.wrong === 0, `${tier}: ${r.stdout}`);
  }
});

test('arm64 wasm engine: Liftoff exact; TurboFan exact unless it is V8 10.2 (Node 18), whose swap bug the probe shows', { skip }, async () => {
  const liftoff = probeArm64('--liftoff-only');
  assert.ok(liftoff.total > 0 && liftoff.wrong === 0, JSON.stringify(liftoff));
  const turbofan = probeArm64('--no-liftoff');
  if (turbofan.wrong > 0) assert.match(turbofan.node, /^v18\./, `a new wasm miscompilation: ${JSON.stringify(turbofan)}`);
  assert.deepEqual(arm64WasmFlags(), turbofan.wrong > 0 ? ['--liftoff-only'] : []);
});

test('arm64 build: loads under emulation, NEON GEMM path chosen, portable path available', { skip }, async () => {
  await arm64Addon();
  const r = runArm64(['-e', `const a = require(${JSON.stringify(ADDON)});
    console.log(JSON.stringify({ arch: process.arch, kernel: a.gemmKernel(), supported: a.gemmKernelsSupported() }));`]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { arch: 'arm64', kernel: 'neon', supported: ['neon', 'portable'] });
});

// Kernel parity against the float64 reference (every GEMM path, fused ops, attention) and the
// finite-difference gradient checks, each file run whole on the arm64 Node.
for (const file of ['gemm', 'gemm-bf16', 'ops-kernels', 'attention-kernels', 'bias-kernels', 'tensor-autograd', 'packing']) {
  test(`arm64 under qemu: ${file}.test.js passes`, { skip }, async () => {
    await arm64Addon();
    const r = runArm64(['--test-reporter=tap', join(here, `${file}.test.js`)], { DPO_TEST_NODE_FLAGS: JSON.stringify(arm64WasmFlags()) });
    const summary = (r.stdout ?? '').split('\n').filter((l) => /^# (pass|fail|skipped) /.test(l)).join(', ');
    assert.equal(r.status, 0, `${file} failed on arm64:\n${(r.stdout ?? '').split('\n').filter((l) => /^not ok|error|Error/.test(l)).slice(0, 20).join('\n')}\n${r.stderr}`);
    assert.match(summary, /# fail 0/, summary);
    assert.ok(Number(/# pass (\d+)/.exec(summary)?.[1] ?? 0) > 0, summary);
  });
}
