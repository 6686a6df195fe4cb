// GPT-2 byte-level helpers shared by the GPT-2 vocab/merges loader, the trainer and GGUF export.
// GPT-2 maps each byte to a printable Unicode character so BPE can work on strings without
// whitespace or control characters: printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100 and up, in byte order (openai/gpt-2 encoder.py bytes_to_unicode).

function buildByteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b); // '!'..'~'
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b); // '¡'..'¬'
  for (let b = 0xae; b <= 0xff; b++) printable.push(b); // '®'..'ÿ'
  const table = new Array<string>(256);
  const isPrintable = new Set(printable);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (isPrintable.has(b)) table[b] = String.fromCharCode(b);
    else table[b] = String.fromCharCode(256 + next++);
  }
  return table;
}

/** BYTE_TO_UNICODE[b] is the character GPT-2 uses for byte b. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

/** Inverse of BYTE_TO_UNICODE. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/**
 * GPT-2's pre-tokenization split (the regex in openai/gpt-2 encoder.py, also used by the Rust
 * `tokenizers` ByteLevel pre-tokenizer and by @huggingface/tokenizers). Global + unicode flags.
 */
export const GPT2_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const utf8 = new TextEncoder();

/** The byte-level string of text: its UTF-8 bytes, each mapped through BYTE_TO_UNICODE. */
export function toByteLevel(text: string): string {
  const bytes = utf8.encode(text);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_UNICODE[bytes[i]!];
  return out;
}
