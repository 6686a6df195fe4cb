// The portable TypeScript backend: float32 and float64, single-threaded.
// Oracle for every native kernel and the fallback when the addon cannot load.
import type { Kernels } from '../kernels.js';
import { gemm, gemmBf16 } from './gemm.js';
import * as ops from './ops.js';
import * as attention from './attention.js';

export const referenceKernels: Kernels = {
  name: 'reference',
  numThreads: () => 1,
  setNumThreads: () => {},
  gemm,
  gemmBf16,
  ...ops,
  ...attention,
};
