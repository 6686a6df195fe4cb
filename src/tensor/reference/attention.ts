// PLACEHOLDER: replaced by the kernel work (see src/tensor/kernels.ts for the contract).
import type { Kernels } from '../kernels.js';

export const attentionForward: Kernels['attentionForward'] = () => {
  throw new Error('attentionForward: not implemented yet');
};
export const attentionBackward: Kernels['attentionBackward'] = () => {
  throw new Error('attentionBackward: not implemented yet');
};
