// The tokenizer contract, as io's modules and their users import it; defined in models/tokenizer.ts.
export type { ChatMessage, EncodeOptions, Tokenizer } from '../models/tokenizer.js';
