// Named weights as checkpoints hold them: row-major float32 data with the file's own shape. The
// models export and build from these; io reads and writes them (io/weights.ts has the helpers).

/** One tensor: row-major float32 data of exactly prod(shape) elements. */
export interface Weight {
  shape: number[];
  data: Float32Array;
}

/** Tensors by their checkpoint name (Hugging Face names for everything the loaders return). */
export type WeightMap = Map<string, Weight>;
