// Generate from a model: a llama2.c checkpoint (e.g. stories260K.bin with tok512.bin beside it)
// or a Hugging Face directory.
//   node generate.js stories260K/stories260K.bin "Once upon a time"
import { generate, loadModelAndTokenizer } from 'dpo-ts';

const [modelPath = 'stories260K/stories260K.bin', prompt = 'Once upon a time'] = process.argv.slice(2);
const { model, tokenizer } = await loadModelAndTokenizer(modelPath);
const { texts } = generate(model, tokenizer, [prompt], { maxNewTokens: 40, temperature: 0.8, topP: 0.95, seed: 1 });
console.log(prompt + texts[0]);
