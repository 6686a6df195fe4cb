// Access to the native kernels from tests: skip (with the reason) when the addon is unavailable
// or lacks the kernels under test, except under CI (process.env.CI set), where that is a failure.
import { nativeKernels, nativeLoadError, nativeMissing } from '../../src/tensor/backend.js';
import type { Kernels } from '../../src/tensor/kernels.js';
import { spawnSync, type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns } from 'node:child_process';

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
 */
export function spawnNode(args: string[], options: SpawnSyncOptionsWithStringEncoding): SpawnSyncReturns<string> {
  const wrapper = process.env.DPO_TEST_NODE_WRAPPER ? (JSON.parse(process.env.DPO_TEST_NODE_WRAPPER) as string[]) : [];
  const [cmd, ...pre] = [...wrapper, process.execPath];
  // Emulation runs the same work about 10x slower: stretch the caller's time limit with it.
  const timeout = options.timeout && wrapper.length > 0 ? options.timeout * 8 : options.timeout;
  return spawnSync(cmd!, [...pre, ...args], { ...options, ...(timeout ? { timeout } : {}) });
}
