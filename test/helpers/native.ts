// Access to the native kernels from tests: skip (with the reason) when the addon is unavailable
// or lacks the kernels under test, except under CI (process.env.CI set), where that is a failure.
import { nativeKernels, nativeLoadError, nativeMissing } from '../../src/tensor/backend.js';
import type { Kernels } from '../../src/tensor/kernels.js';

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
