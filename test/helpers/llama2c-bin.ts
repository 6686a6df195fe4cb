// Synthetic llama2.c tokenizer.bin files for tokenizer tests.

/** Builds a llama2.c tokenizer file: <unk>, BOS, EOS, 256 byte tokens, then the given pieces. */
export function buildLlama2cBin(extra: [string, number][]): Buffer {
  const entries: [Buffer, number][] = [
    [Buffer.from('<unk>'), 0],
    [Buffer.from('\n<s>\n'), 0],
    [Buffer.from('\n</s>\n'), 0],
  ];
  for (let b = 0; b < 256; b++) entries.push([Buffer.from(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), 0]);
  for (const [piece, score] of extra) entries.push([Buffer.from(piece, 'utf8'), score]);
  const maxLen = Math.max(...entries.map(([b]) => b.length));
  const head = Buffer.alloc(4);
  head.writeInt32LE(maxLen);
  const parts: Buffer[] = [head];
  for (const [bytes, score] of entries) {
    const h = Buffer.alloc(8);
    h.writeFloatLE(score, 0);
    h.writeInt32LE(bytes.length, 4);
    parts.push(h, bytes);
  }
  return Buffer.concat(parts);
}
