// Public surface of the compute core.
export * from './tensor.js';
export * from './ops.js';
export {
  memoryStats, resetPeak, clearPool, setPoolLimit, configurePool, poolConfig, setPoolPoison, sizeClass, alloc, release,
  type MemoryStats, type PoolConfig, type PoolClasses,
} from './memory.js';
export { kernels, setKernels, nativeKernels, nativeLoadError, referenceKernels, nativeMissing } from './backend.js';
export { Act, type ActKind, type Buf, type Kernels } from './kernels.js';
export { Rng } from './random.js';
