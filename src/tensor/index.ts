// Public surface of the compute core.
export * from './tensor.js';
export * from './ops.js';
export {
  memoryStats, resetPeak, clearPool, setPoolLimit, configurePool, poolConfig, setPoolPoison, sizeClass, alloc, release,
  type MemoryStats, type PoolConfig, type PoolClasses, type PoolBound,
} from './memory.js';
export { kernels, setKernels, nativeKernels, nativeLoadError, referenceKernels, nativeMissing, gemmBf16Path } from './backend.js';
export { Act, type ActKind, type Buf, type Kernels } from './kernels.js';
export { Rng } from './random.js';
export { matmulPrecision, setMatmulPrecision, withMatmulPrecision, gemmFor, type MatmulPrecision } from './autocast.js';
export { f32ToBf16, bf16ToF32, f32BitsToBf16Bits, roundBf16, BF16_UNIT_ROUNDOFF } from './bf16.js';
export { linearFrozenBf16, bf16Storage, storeTensorAsBf16 } from './bf16-ops.js';
