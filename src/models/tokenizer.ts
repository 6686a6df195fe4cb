// What every tokenizer in the project provides (Hugging Face tokenizer.json, GPT-2 vocab/merges,
// llama2.c tokenizer.bin, and the demo's own trained tokenizer). The data, generation and
// training layers use only this interface. It lives in the lowest layer that uses it (models:
// text generation); implementations, loadTokenizer(dir), the BPE trainer and GGUF metadata live in
// src/io/tokenizers/ (index.ts).

export interface ChatMessage {
  role: string;
  content: string;
}

export interface EncodeOptions {
  /**
   * Prepend BOS. Default: the tokenizer's own convention (addsBosByDefault).
   * BOS is never added twice: if the text already starts with the BOS token, no second one.
   */
  addBos?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  /** The primary end-of-sequence id. */
  readonly eosId: number | null;
  /** Every id that ends generation (eosId plus generation_config / template end-of-turn ids). */
  readonly stopIds: readonly number[];
  /** Padding id (falls back to eosId when the tokenizer defines none). */
  readonly padId: number;
  /** Whether encode() adds BOS when not told (Llama: yes; GPT-2: no). */
  readonly addsBosByDefault: boolean;
  /** The Jinja chat template, or null when the tokenizer has none. */
  readonly chatTemplate: string | null;

  /** Token ids of text (no EOS is ever appended here). */
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** Renders messages with the chat template (throws a clear error when there is none). */
  applyChatTemplate(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
  /** Whether id is a special/control token (BOS, EOS, pad, template markers). */
  isSpecial(id: number): boolean;
}
