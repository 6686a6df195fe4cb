// Access to the compiled kernels from tests: skip (with the reason) when the addon is unavailable
// or lacks the kernels under test, except under CI (process.env.CI set), where that is a failure.
// With DPO_BACKEND=wasm the "native" kernels under test are the WebAssembly build of the same
// C++ (wasmRerun below runs a test file that way in a child process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeKernels, nativeLoadError, nativeMissing, wasmKernels, wasmLoadError } from '../../src/tensor/backend.js';
import { wasmBuildDir, WASM_MISSING } from '../../src/tensor/wasm-node.js';
import type { Kernels } from '../../src/tensor/kernels.js';
import { spawnSync, type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface NativeForTests {
  /** The native kernels, or null. */
  native: Kernels | null;
  /** false when usable; otherwise why not (use as `test(..., { skip })`). */
  skip: string | false;
  /** true when the tests must fail instead of skipping (CI is set and native is unusable). */
  mustFail: boolean;
}

/** `needed`: kernel names that must come from the addon itself (not the reference fallback). */
export function nativeForTests(needed: readonly (keyof Kernels)[] = []): NativeForTests {
  if (underWasm) {
    const wasm = wasmKernels();
    const skip = wasm ? false : `wasm kernels unavailable: ${wasmLoadError()}`;
    return { native: wasm, skip, mustFail: skip !== false && Boolean(process.env.CI) };
  }
  const native = nativeKernels();
  let skip: string | false = false;
  if (!native) {
    skip = `native addon unavailable: ${(nativeLoadError() ?? 'unknown error').split('\n')[0]}`;
  } else {
    const missing = needed.filter((k) => nativeMissing.includes(k));
    if (missing.length > 0) skip = `native addon lacks ${missing.join(', ')} (stale build? rebuild the addon)`;
  }
  return { native: skip ? null : native, skip, mustFail: skip !== false && Boolean(process.env.CI) };
}

/**
 * Runs this Node binary as a child process. Under emulation (the arm64 suite runs an arm64 Node
 * through qemu-user, with no binfmt handler), DPO_TEST_NODE_WRAPPER holds the command prefix as a
 * JSON array, e.g. ["qemu-aarch64-static", "-L", "/opt/arm64-root"]; it is put before the binary.
 * DPO_TEST_NODE_FLAGS (a JSON array) holds Node/V8 flags for the child, e.g. ["--liftoff-only"].
 */
export function spawnNode(args: string[], options: SpawnSyncOptionsWithStringEncoding): SpawnSyncReturns<string> {
  const wrapper = process.env.DPO_TEST_NODE_WRAPPER ? (JSON.parse(process.env.DPO_TEST_NODE_WRAPPER) as string[]) : [];
  const flags = process.env.DPO_TEST_NODE_FLAGS ? (JSON.parse(process.env.DPO_TEST_NODE_FLAGS) as string[]) : [];
  const [cmd, ...pre] = [...wrapper, process.execPath];
  // Emulation runs the same work about 10x slower: stretch the caller's time limit with it.
  const timeout = options.timeout && wrapper.length > 0 ? options.timeout * 8 : options.timeout;
  return spawnSync(cmd!, [...pre, ...flags, ...args], { ...options, ...(timeout ? { timeout } : {}) });
}

/** True in a test process started by wasmRerun: the compiled kernels under test are the wasm build. */
export const underWasm = process.env.DPO_BACKEND === 'wasm';

/**
 * Parametrises a kernel test file over the WebAssembly backend: one test that reruns `file`
 * (pass import.meta.url) in a child process with DPO_BACKEND=wasm, limited to the tests whose
 * names match `pattern`, and checks they all pass, for 1 thread and for `threads` > 1 (the
 * threaded build). Skipped with what to install when the wasm files are not built, except
 * under CI (which builds them), where that fails.
 */
export function wasmRerun(file: string, pattern: string, opts: { threads?: number[]; minPassed?: number; timeout?: number } = {}): void {
  if (underWasm || process.env.DPO_TEST_CHILD_NO_WASM) return;
  const built = wasmBuildDir() !== null;
  const skip = built || process.env.CI ? false : WASM_MISSING;
  // Under emulation (the arm64 suite) one thread: the kernels' arithmetic is what differs by engine,
  // and each rerun costs minutes there.
  const counts = process.env.DPO_TEST_NODE_WRAPPER ? [1] : opts.threads ?? [1, 2];
  for (const threads of counts) {
    test(`wasm backend (${threads} thread${threads > 1 ? 's' : ''}): ${pattern}`, { skip }, () => {
      assert.ok(built, WASM_MISSING);
      const env: NodeJS.ProcessEnv = { ...process.env, DPO_BACKEND: 'wasm', DPO_NUM_THREADS: String(threads), DPO_WASM_POISON_OUTPUTS: '1' };
      delete env.NODE_TEST_CONTEXT; // else the child talks the runner's internal protocol, not TAP
      const r = spawnNode(
        ['--test-reporter=tap', `--test-name-pattern=${pattern}`, fileURLToPath(file)],
        { env, encoding: 'utf8', timeout: opts.timeout ?? 180_000 },
      );
      const summary = (r.stdout ?? '').split('\n').filter((l) => /^# (pass|fail|skipped)/.test(l)).join(', ');
      const failures = (r.stdout ?? '').split('\n').filter((l) => /^\s*not ok/.test(l)).join('\n');
      assert.equal(r.status, 0, `wasm (${threads} threads) failed:\n${failures}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
      assert.match(summary, /# fail 0/, summary);
      const passed = Number(/# pass (\d+)/.exec(summary)?.[1] ?? 0);
      assert.ok(passed >= (opts.minPassed ?? 1), `expected the tests to run in the child, got: ${summary}`);
    });
  }
}
