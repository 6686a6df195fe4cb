// Small seeded random-number generators shared by every layer (data shuffling, annotation queues,
// tests). Not cryptographic; the same sequence on every platform. The tensor initialisers' RNG
// (xoshiro128**, with a savable state) lives in tensor/random.ts.

/** mulberry32: small, fast, good enough for shuffling; same sequence on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
