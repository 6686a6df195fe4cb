// Named weights as checkpoints hold them: row-major float32 data with the file's own shape. The
// models export and build from these; io reads and writes them (io/weights.ts has the helpers).
// Also the RoPE row layouts of q/k weights, which the Llama GGUF mapping and llama2.c files need.

/** One tensor: row-major float32 data of exactly prod(shape) elements. */
export interface Weight {
  shape: number[];
  data: Float32Array;
}

/** Tensors by their checkpoint name (Hugging Face names for everything the loaders return). */
export type WeightMap = Map<string, Weight>;

/** The data of a 2-D weight [r, c] transposed to [c, r] (a copy). */
export function transpose2d(w: Weight): Float32Array {
  const [r, c] = w.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = w.data[i * c + j]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// RoPE row layouts of the q and k projections. Within each head of size d, the rotary pairs are
//   interleaved (Meta / llama2.c / llama.cpp): rows (2i, 2i+1) rotate together;
//   halves (Hugging Face rotate_half):         rows (i, i + d/2) rotate together.
// A weight of shape [nHeads*d, in] converted with these functions gives the same attention
// scores under the other convention.

function checkRopeRows(op: string, w: Weight, nHeads: number): number {
  if (w.shape.length !== 2) throw new Error(`${op}: expected a 2-D weight, got shape ${`[${w.shape.join(', ')}]`}`);
  const rows = w.shape[0]!;
  if (nHeads <= 0 || rows % nHeads !== 0 || (rows / nHeads) % 2 !== 0) {
    throw new Error(`${op}: ${rows} rows do not split into ${nHeads} heads of even size`);
  }
  return rows / nHeads;
}

/**
 * Row j·d/2 + i of each head in the "halves" (rotate_half) layout is row 2i + j in the
 * "interleaved" layout; this copies rows from one layout to the other.
 */
function permuteRopeRows(op: string, w: Weight, nHeads: number, toHalves: boolean): Weight {
  const d = checkRopeRows(op, w, nHeads);
  const cols = w.shape[1]!;
  const half = d / 2;
  const out = new Float32Array(w.data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) {
        const halves = (h * d + j * half + i) * cols;
        const interleaved = (h * d + 2 * i + j) * cols;
        const [dst, src] = toHalves ? [halves, interleaved] : [interleaved, halves];
        out.set(w.data.subarray(src, src + cols), dst);
      }
    }
  }
  return { shape: [...w.shape], data: out };
}

/**
 * Interleaved → halves (Hugging Face convert_llama_weights_to_hf.py `permute`):
 * w.view(nHeads, d/2, 2, in).transpose(1, 2).reshape(rows, in). New row h*d + j*d/2 + i is old row
 * h*d + 2i + j.
 */
export function permuteInterleavedToHalves(w: Weight, nHeads: number): Weight {
  return permuteRopeRows('permuteInterleavedToHalves', w, nHeads, true);
}

/**
 * Halves → interleaved (llama.cpp convert_hf_to_gguf.py LlamaModel.permute):
 * w.reshape(nHeads, 2, d/2, in).swapaxes(1, 2).reshape(rows, in). Inverse of the function above.
 */
export function permuteHalvesToInterleaved(w: Weight, nHeads: number): Weight {
  return permuteRopeRows('permuteHalvesToInterleaved', w, nHeads, false);
}
