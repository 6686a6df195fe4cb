// DPO on 16 preference pairs held in memory, with per-step metrics; then score held-out pairs
// with the trained policy as a reward model, and save it as a Hugging Face directory.
//   node dpo-in-memory.js stories260K/stories260K.bin out/dpo
import { loadModelAndTokenizer, runDpo, saveModel, scorePairs } from 'dpo-ts';

const [modelPath = 'stories260K/stories260K.bin', outDir = 'dpo-out'] = process.argv.slice(2);

// The preference: kind endings over unkind ones.
const names = ['Tom', 'Lily', 'Ben', 'Sue', 'Max', 'Mia', 'Sam', 'Anna', 'Tim', 'Zoe'];
const pairs = names.flatMap((name) => [
  { prompt: `${name} found a lost dog.`, chosen: ` ${name} took it home and fed it.`, rejected: ` ${name} kicked it away.` },
  { prompt: `${name} saw a sad friend.`, chosen: ` ${name} gave her a hug.`, rejected: ` ${name} laughed at her.` },
]);
const train = pairs.slice(0, 16);
const heldOut = pairs.slice(16);

const policy = await loadModelAndTokenizer(modelPath);
const reference = await loadModelAndTokenizer(modelPath);

const controller = new AbortController(); // controller.abort() stops the run between two steps
const result = await runDpo({
  model: policy,
  ref: reference,
  data: train,
  config: { beta: 0.1, learning_rate: 1e-3, max_steps: 8, per_device_train_batch_size: 4, max_length: 64, lr_scheduler_type: 'constant' },
  quiet: true,
  signal: controller.signal,
  on: {
    step: ({ step, totalSteps, metrics }) => {
      console.log(`step ${step}/${totalSteps}  loss ${metrics['loss']?.toFixed(4)}  margin ${metrics['rewards/margins']?.toFixed(4)}`);
    },
    warning: (message) => console.warn(`warning: ${message}`),
  },
});

const { summary } = await scorePairs({ model: result, ref: reference, data: heldOut, beta: 0.1, quiet: true });
console.log(`held-out pairs: ${heldOut.length}  accuracy: ${summary.accuracy.accuracy.toFixed(2)}  mean margin: ${summary.meanMargin.toFixed(4)}`);

await saveModel(outDir, result);
console.log(`saved ${outDir}`);
