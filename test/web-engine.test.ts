// The page's engine as bundled for the browser (dist/web/engine.js: the core with the volume
// instead of node:fs), run in Node: LoRA training exports merged weights equal to the library's own
// LoRA run merged with Linear.mergeLora, bit for bit; an aborted run stops between micro-batches and
// keeps its steps; a preference JSONL is read with the library's reader and its errors name the line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setKernels, referenceKernels } from '../src/tensor/backend.js';
import { runDpo } from '../src/train/dpo.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { dpoConfigOf, type TrainSettings, type WebEngine as Engine } from '../src/web/engine.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = join(ROOT, 'test', 'fixtures', 'models', 'stories260K');
const ROWS = [
  { prompt: 'Once upon a time', chosen: ' there was a cat.', rejected: ' the the the the.' },
  { prompt: 'The dog', chosen: ' ran to the park.', rejected: ' park park park.' },
  { prompt: 'Lily saw', chosen: ' a big red ball.', rejected: ' ball ball ball ball ball.' },
  { prompt: 'Tom said', chosen: ' hello to his mom.', rejected: ' mom mom.' },
];

let WebEngine: new () => Engine;
before(async () => {
  const b = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs'), '--quiet'], { encoding: 'utf8' });
  assert.equal(b.status, 0, b.stderr);
  ({ WebEngine } = (await import(pathToFileURL(join(ROOT, 'dist', 'web', 'engine.js')).href)) as { WebEngine: new () => Engine });
});

async function loaded(): Promise<Engine> {
  const e = new WebEngine();
  e.addFiles(['stories260K.bin', 'tok512.bin'].map((f) => ({ path: `/m/${f}`, bytes: new Uint8Array(readFileSync(join(MODEL, f))) })));
  await e.load('/m/stories260K.bin');
  return e;
}

test('bundled engine: LoRA run, merged export equals the library run merged with mergeLora, bit for bit', { timeout: 60_000 }, async () => {
  const s: TrainSettings = { beta: 0.1, lossType: 'sigmoid', learningRate: 0.01, steps: 3, lora: true, loraR: 4, batchSize: 2 };
  const e = await loaded();
  const losses: number[] = [];
  assert.deepEqual(await e.train(ROWS, s, (r) => void losses.push(r.metrics.loss!)), { steps: 3, stopped: false });
  assert.equal(losses.length, 3);
  const web = new Map(e.exportHf());
  assert.deepEqual([...web.keys()].sort(), ['config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);

  setKernels(referenceKernels);
  const res = await runDpo({ model: join(MODEL, 'stories260K.bin'), data: ROWS, config: dpoConfigOf(s), quiet: true });
  assert.ok(res.lora, 'the library run trained adapters');
  for (const lin of res.model.linears()) lin.mergeLora();
  const file = join(ROOT, 'dist', 'test', 'web-engine-merged.safetensors');
  writeSafetensors(file, res.model.exportWeights());
  const node = readFileSync(file);
  assert.ok(Buffer.from(web.get('model.safetensors')!).equals(node), 'merged LoRA weights equal bit for bit');
  // The adapters changed something: the export differs from the loaded weights.
  const before = await loaded();
  assert.ok(!Buffer.from(new Map(before.exportHf()).get('model.safetensors')!).equals(node));
});

test('bundled engine: abort stops between micro-batches and keeps the steps done; bad JSONL names its line', { timeout: 60_000 }, async () => {
  const e = await loaded();
  const ac = new AbortController();
  const r = await e.train(ROWS, { beta: 0.1, lossType: 'ipo', learningRate: 0.01, steps: 500, lora: false, batchSize: 2 }, (st) => {
    if (st.step === 2) ac.abort(new Error('stopped'));
  }, ac.signal);
  assert.deepEqual(r, { steps: 2, stopped: true });

  e.addFiles([{ path: '/in/good.jsonl', bytes: new TextEncoder().encode(ROWS.map((x) => JSON.stringify(x)).join('\n') + '\n') }]);
  assert.deepEqual(await e.readPreferences('/in/good.jsonl'), ROWS);
  e.addFiles([{ path: '/in/bad.jsonl', bytes: new TextEncoder().encode(`${JSON.stringify(ROWS[0])}\n{"prompt": "x", "chosen": 3}\n`) }]);
  await assert.rejects(e.readPreferences('/in/bad.jsonl'), /bad\.jsonl:2/);
});
