// bench/step.ts --profile: the per-kernel split a bf16 step profile relies on (gemmBf16 by
// transposes, shape and operand storage; CPU seconds per kernel; gaps between kernel calls; per
// thread CPU, system time and page faults per step), and the kernel path it reports under the
// profiling wrapper. Runs the `tiny` shape (vocab 512, d 64, 4 layers, 256 tokens), one step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeForTests, spawnNode } from './helpers/native.js';
import { gemmBf16Path } from '../src/tensor/backend.js';

const { skip } = nativeForTests(['gemmBf16']);
const stepJs = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'step.js');

function run(extra: string[]): { stderr: string; json: Record<string, unknown> } {
  const res = spawnNode([stepJs, 'dpo', 'tiny', '2', '--bf16', '--steps', '1', '--warmup', '0', '--profile', 'gemm', ...extra],
    { encoding: 'utf8', timeout: 60_000 });
  assert.equal(res.status, 0, res.stderr);
  return { stderr: res.stderr, json: JSON.parse(res.stdout) as Record<string, unknown> };
}

test('step --profile gemm --bf16: gemmBf16 split by shape and operand storage, CPU per kernel, gaps, threads; the real kernel path', { skip }, () => {
  const { stderr, json } = run([]);
  // The reported path is the native one, not the profiling wrapper's ("undefined/- + bf16 reference").
  assert.match(String(json.kernel_path), new RegExp(`^native/\\S+ \\+ bf16 ${gemmBf16Path()}$`));
  assert.match(stderr, /step 0 [\d.]+s cpu=[\d.]+s \(sys [\d.]+s, \d+ minor faults; threads (main [\d.]+|-)/);
  for (const ph of ['ref', 'fwd', 'bwd', 'opt']) assert.match(stderr, new RegExp(`profile ${ph} [\\d.]+s: .*; kernels' cpu [\\d.]+s`), ph);
  // tiny: d 64, 256 tokens × 4 rows = 1024 rows, of which share_prompt (the bench's default, as the
  // trainer's) computes each pair's 63 shared prompt rows once: 898; qkv is [192, 64].
  assert.match(stderr, /gemmBf16 NT 898x192x64 A32\/B32 [\d.]+ \(cpu [\d.]+\)/);
  assert.match(stderr, /gemmBf16 TN 192x64x898 A32\/B32 /);
  assert.match(stderr, /gemmBf16 NN 898x64x192 A32\/B32 /);
  assert.doesNotMatch(stderr, /\bgemmBf16 [\d.]+ \(cpu/, 'every gemmBf16 call is split by shape');
  assert.match(stderr, /profile gaps between kernel calls \(last step\): <20µs: \d+ \([\d.]+s\), 20–50µs: \d+ .*1000–∞µs: \d+/);
});

test('step --profile gemm --frozen-bf16: the frozen reference\'s products show bf16-stored weights (B16)', { skip }, () => {
  const { stderr } = run(['--frozen-bf16']);
  const ref = /profile ref [^\n]*/.exec(stderr)?.[0] ?? '';
  assert.match(ref, /gemmBf16 NT 898x192x64 A32\/B16 /);
  const fwd = /profile fwd [^\n]*/.exec(stderr)?.[0] ?? '';
  assert.match(fwd, /gemmBf16 NT 898x192x64 A32\/B32 /);
});
