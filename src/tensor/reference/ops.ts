// PLACEHOLDER: replaced by the kernel work (see src/tensor/kernels.ts for the contract).
import type { Kernels } from '../kernels.js';

export const rmsnormForward: Kernels['rmsnormForward'] = () => {
  throw new Error('rmsnormForward: not implemented yet');
};
export const rmsnormBackward: Kernels['rmsnormBackward'] = () => {
  throw new Error('rmsnormBackward: not implemented yet');
};
export const layernormForward: Kernels['layernormForward'] = () => {
  throw new Error('layernormForward: not implemented yet');
};
export const layernormBackward: Kernels['layernormBackward'] = () => {
  throw new Error('layernormBackward: not implemented yet');
};
export const rope: Kernels['rope'] = () => {
  throw new Error('rope: not implemented yet');
};
export const activationForward: Kernels['activationForward'] = () => {
  throw new Error('activationForward: not implemented yet');
};
export const activationBackward: Kernels['activationBackward'] = () => {
  throw new Error('activationBackward: not implemented yet');
};
export const swigluForward: Kernels['swigluForward'] = () => {
  throw new Error('swigluForward: not implemented yet');
};
export const swigluBackward: Kernels['swigluBackward'] = () => {
  throw new Error('swigluBackward: not implemented yet');
};
export const softmaxForward: Kernels['softmaxForward'] = () => {
  throw new Error('softmaxForward: not implemented yet');
};
export const softmaxBackward: Kernels['softmaxBackward'] = () => {
  throw new Error('softmaxBackward: not implemented yet');
};
export const logSoftmaxGather: Kernels['logSoftmaxGather'] = () => {
  throw new Error('logSoftmaxGather: not implemented yet');
};
export const logSoftmaxGatherBackward: Kernels['logSoftmaxGatherBackward'] = () => {
  throw new Error('logSoftmaxGatherBackward: not implemented yet');
};
export const embeddingForward: Kernels['embeddingForward'] = () => {
  throw new Error('embeddingForward: not implemented yet');
};
export const embeddingBackward: Kernels['embeddingBackward'] = () => {
  throw new Error('embeddingBackward: not implemented yet');
};
export const adamw: Kernels['adamw'] = () => {
  throw new Error('adamw: not implemented yet');
};
export const sumSquares: Kernels['sumSquares'] = () => {
  throw new Error('sumSquares: not implemented yet');
};
export const scale: Kernels['scale'] = () => {
  throw new Error('scale: not implemented yet');
};
export const add: Kernels['add'] = () => {
  throw new Error('add: not implemented yet');
};
export const mul: Kernels['mul'] = () => {
  throw new Error('mul: not implemented yet');
};
export const axpy: Kernels['axpy'] = () => {
  throw new Error('axpy: not implemented yet');
};
