// Ops on weights stored once as bfloat16 (frozen: a reference model, a LoRA base). The weight is
// a Uint16Array of bf16 bit patterns in the Hugging Face Linear layout [out, in]; the input is
// float32 and is rounded to bf16 inside the GEMM (float32 accumulation). The weight gets no
// gradient; the input does (dX = dY·W, also on the bf16 GEMM).
import { alloc } from './memory.js';
import { kernels } from './backend.js';
import { Tensor, accumulateGrad, empty, record, shapeStr } from './tensor.js';

/** y = x·Wᵀ + bias with W [outF, inF] stored as bf16; x: [..., inF] float32. */
export function linearFrozenBf16(x: Tensor, w: Uint16Array, outF: number, bias: Tensor | null): Tensor {
  const inF = x.shape[x.shape.length - 1]!;
  if (x.dtype !== 'float32') throw new Error(`linearFrozenBf16: input must be float32, got ${x.dtype}`);
  if (w.length !== outF * inF) throw new Error(`linearFrozenBf16: weight has ${w.length} elements, input ${shapeStr(x.shape)} needs [${outF}, ${inF}]`);
  if (bias && bias.size !== outF) throw new Error(`linearFrozenBf16: bias has ${bias.size} elements, expected ${outF}`);
  const k = kernels();
  const rows = x.size / inF;
  const out = empty([...x.shape.slice(0, -1), outF]);
  k.gemmBf16(false, true, rows, outF, inF, x.data, 0, w, 0, out.data, 0, 1, 1, 0);
  if (bias) k.addRowVector(out.data, bias.data, out.data, rows, outF);
  return record(out, 'linearFrozenBf16', [x], (g) => {
    const gx = alloc('float32', x.size, false);
    k.gemmBf16(false, false, rows, inF, outF, g, 0, w, 0, gx, 0, 1, 1, 0);
    accumulateGrad(x, gx);
  });
}
