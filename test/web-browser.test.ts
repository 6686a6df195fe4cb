// `dpo web` in a real browser (Debian's chromium through playwright-core): load the bundled
// stories260K, label 8 pairs by keyboard, train 20 DPO steps in the worker, compare, export — and
// check in Node that the downloaded weights equal a Node run of the library (same backend — the
// WebAssembly kernels when the bundle has them, else the TypeScript ones —, labels,
// options and seed) bit for bit. Then bad input: each a clear message, the page stays usable.
// Screenshots go to test-artifacts/. The bundle is built here (generated files are not committed).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { unzipSync } from 'fflate';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { setKernels, referenceKernels } from '../src/tensor/backend.js';
import type { Kernels } from '../src/tensor/kernels.js';
import { loadWasmKernelsNode } from '../src/tensor/wasm-node.js';
import { runDpo } from '../src/train/dpo.js';
import { saveModel } from '../src/train/setup.js';
import { dpoConfigOf, type TrainSettings } from '../src/web/engine.js';
import { startWebServer, type WebServer } from '../src/web/server.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIX = join(ROOT, 'test', 'fixtures');
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');
const skip = !existsSync(CHROMIUM) && !process.env.CI && `${CHROMIUM} not installed (run scripts/install-system-deps.sh as root)`;

const PROMPTS = ['Once upon a time', 'The little dog', 'Lily wanted to', 'One day, Tom', 'The sun was', 'Sam and his mom', 'In the garden', 'The big bear'];
const SETTINGS: TrainSettings = { beta: 0.1, lossType: 'sigmoid', learningRate: 0.005, steps: 20, lora: false, loraR: 8, batchSize: 2 };

let srv: WebServer;
let context: BrowserContext;
let page: Page;
let work: string;
const problems: string[] = [];

before(async () => {
  if (skip) return;
  const b = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-web.mjs'), '--quiet'], { encoding: 'utf8' });
  assert.equal(b.status, 0, `build-web failed:\n${b.stderr}`);
  mkdirSync(ARTIFACTS, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'dpo-web-'));
  srv = await startWebServer({ port: 0 });
  context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 1000 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  await page.goto(srv.url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15_000 });
});

after(async () => {
  await context?.close();
  await srv?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The page's backend in Node: the WebAssembly kernels when the bundle has them (bit-identical across thread counts), else the TypeScript ones. */
async function sameKernelsAsThePage(wasm: boolean): Promise<Kernels> {
  return wasm ? loadWasmKernelsNode(1) : referenceKernels;
}

async function downloadOf(selector: string): Promise<{ name: string; bytes: Uint8Array }> {
  const [d] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const to = join(work, d.suggestedFilename());
  await d.saveAs(to);
  return { name: d.suggestedFilename(), bytes: readFileSync(to) };
}

const metricLines = async (): Promise<Record<string, number>[]> =>
  ((await page.textContent('#metrics')) ?? '').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);

test('label 8 pairs by keyboard, train 20 steps in the worker, compare, export: weights equal a Node run bit for bit', { skip, timeout: 120_000 }, async () => {
  const engineLine = (await page.textContent('#engine'))!;
  assert.match(engineLine, /cross-origin isolated: yes/, 'COOP/COEP make the page cross-origin isolated');
  const wasmBuilt = (JSON.parse(readFileSync(join(ROOT, 'dist', 'web', 'build.json'), 'utf8')) as { wasm: boolean }).wasm;
  // Cross-origin isolated: the threaded WebAssembly build (when built) on every core up to 8.
  assert.match(engineLine, wasmBuilt ? /WebAssembly kernels \(wasm-(relaxed-simd|simd128)\), backend wasm, \d+ threads? / : /TypeScript kernels \(this build has no WebAssembly kernels/);
  await page.click('#load-bundled');
  await page.waitForSelector('#model-status:has-text("M parameters")');
  assert.match((await page.textContent('#model-status'))!, /stories260K.*llama \(llama2c\), 0\.26 M parameters/);

  await page.fill('#prompts', PROMPTS.join('\n'));
  await page.fill('#max-new', '16');
  await page.click('#generate');
  await page.waitForSelector('#card:not([hidden])');
  await page.screenshot({ path: join(ARTIFACTS, 'web-label.png'), fullPage: true });
  // Prefer the shorter answer (a preference the model can learn); keys as in `dpo annotate`.
  for (let i = 0; i < PROMPTS.length; i++) {
    assert.equal(await page.textContent('#card-pos'), `Pair ${i + 1} of ${PROMPTS.length}`);
    const a = (await page.textContent('#answer-a span'))!, b = (await page.textContent('#answer-b span'))!;
    assert.notEqual(a, b, 'two different samples');
    await page.keyboard.press(a.length <= b.length ? '1' : '2');
  }
  await page.waitForSelector('#card', { state: 'hidden' });
  assert.match((await page.textContent('#label-status'))!, /^8 labelled pairs, 0 ties, 0 to label/);

  // The Node run of the same labels starts now and runs beside the browser's (checked at the end).
  const labels = await downloadOf('#export-labels');
  const labelsFile = join(work, 'labels.jsonl');
  setKernels(await sameKernelsAsThePage(wasmBuilt));
  const nodeRun = runDpo({ model: join(FIX, 'models', 'stories260K', 'stories260K.bin'), data: labelsFile, config: dpoConfigOf(SETTINGS), quiet: true });

  await page.fill('#lr', String(SETTINGS.learningRate));
  await page.fill('#steps', String(SETTINGS.steps));
  await page.fill('#batch', String(SETTINGS.batchSize));
  await page.click('#train');
  await page.waitForSelector('#train-status:has-text("done")', { timeout: 90_000 });
  const metrics = await metricLines();
  assert.equal(metrics.length, 20, 'one metrics line a step');
  assert.ok(Math.abs(metrics[0]!.loss! - Math.log(2)) < 1e-3, `first loss is log 2 (policy = reference): ${metrics[0]!.loss}`);
  const early = (metrics[0]!.loss! + metrics[1]!.loss!) / 2, late = (metrics[18]!.loss! + metrics[19]!.loss!) / 2;
  assert.ok(late < early - 0.1, `the loss fell: ${early} → ${late}`);
  assert.equal(await page.getAttribute('#progress', 'value'), '1');

  await page.click('#compare');
  await page.waitForSelector('#compare-table:not([hidden])');
  const rows = await page.$$eval('#compare-table tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.firstChild?.textContent ?? '')));
  assert.equal(rows.length, PROMPTS.length);
  assert.ok(rows.some((r) => r[1] !== r[2]), 'some after-answers differ from the before-answers');
  assert.match((await page.textContent('#compare-table tbody'))!, /implicit reward -?\d/);
  await page.screenshot({ path: join(ARTIFACTS, 'web-trained.png'), fullPage: true });

  const zip = await downloadOf('#export-hf');
  const gguf = await downloadOf('#export-gguf');
  assert.equal(labels.name, 'labels.jsonl');
  assert.equal(zip.name, 'stories260K-dpo.zip');
  assert.equal(new TextDecoder().decode(gguf.bytes.subarray(0, 4)), 'GGUF');
  const labelRows = new TextDecoder().decode(labels.bytes).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  assert.equal(labelRows.length, 8);
  assert.deepEqual(Object.keys(labelRows[0]!), ['prompt', 'chosen', 'rejected']);
  const files = unzipSync(zip.bytes);
  assert.deepEqual(Object.keys(files).sort(), ['config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'].map((f) => `stories260K-dpo/${f}`));

  // The same run in Node: the library on the downloaded labels, the TypeScript backend, same options and seed.
  const res = await nodeRun;
  const out = join(work, 'node-run');
  await saveModel(out, res);
  const node = readFileSync(join(out, 'model.safetensors'));
  const web = files['stories260K-dpo/model.safetensors']!;
  assert.equal(web.byteLength, node.byteLength);
  assert.ok(Buffer.from(web).equals(node), 'the weights trained in chromium equal the Node run bit for bit');
  assert.equal(Buffer.from(files['stories260K-dpo/config.json']!).toString(), readFileSync(join(out, 'config.json'), 'utf8'));
  assert.deepEqual(problems, []);
});

test('bad input: a non-model folder, a corrupt safetensors file, a mismatched tokenizer — clear messages, page stays usable', { skip, timeout: 120_000 }, async () => {
  const expectError = async (re: RegExp): Promise<string> => {
    await page.waitForSelector('#error:not([hidden])');
    const text = (await page.textContent('#error-text'))!;
    assert.match(text, re);
    assert.match((await page.textContent('#model-status'))!, /Still loaded: .*stories260K/, 'the loaded model stays');
    await page.click('#error-close');
    return text;
  };
  const notModel = join(work, 'holiday-notes');
  mkdirSync(notModel);
  writeFileSync(join(notModel, 'notes.txt'), 'not a model\n');
  writeFileSync(join(notModel, 'budget.csv'), 'a,b\n1,2\n');
  await page.setInputFiles('#pick-folder', notModel);
  await expectError(/No model in what you picked \(holiday-notes\/budget\.csv, holiday-notes\/notes\.txt\): expected a Hugging Face directory/);

  const corrupt = join(work, 'corrupt-gpt2');
  mkdirSync(corrupt);
  for (const f of readdirSync(join(FIX, 'models', 'tiny-gpt2-random'))) copyFileSync(join(FIX, 'models', 'tiny-gpt2-random', f), join(corrupt, f));
  const st = readFileSync(join(corrupt, 'model.safetensors'));
  writeFileSync(join(corrupt, 'model.safetensors'), st.subarray(0, st.byteLength - 100)); // truncated
  await page.setInputFiles('#pick-folder', corrupt);
  await expectError(/model\.safetensors/);
  await page.screenshot({ path: join(ARTIFACTS, 'web-bad-input.png'), fullPage: true });

  const mismatch = join(work, 'mismatched-tokenizer');
  mkdirSync(mismatch);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(FIX, 'models', 'tiny-gpt2-random', f), join(mismatch, f));
  for (const f of readdirSync(join(FIX, 'tokenizers', 'chatml-mini'))) copyFileSync(join(FIX, 'tokenizers', 'chatml-mini', f), join(mismatch, f));
  await page.setInputFiles('#pick-folder', mismatch);
  await expectError(/tokenizer has 286 tokens but the model only 21/);

  // Still usable: the loaded model samples, and a long run stops at once without freezing the page.
  await page.fill('#prompts', 'The cat');
  await page.fill('#max-new', '4');
  await page.click('#generate');
  await page.waitForSelector('#card:not([hidden])');
  await page.fill('#steps', '5000');
  await page.click('#train');
  // Any step ≥ 2 (the status is rewritten every step; under load two steps' messages can land between
  // two polls, so waiting for the exact text "step 2/5000" could miss it).
  await page.waitForFunction(() => {
    const doc = (globalThis as unknown as { document: { getElementById(id: string): { textContent: string | null } | null } }).document;
    const m = /step (\d+)\/5000/.exec(doc.getElementById('train-status')?.textContent ?? '');
    return m !== null && Number(m[1]) >= 2;
  }, undefined, { timeout: 60_000 });
  const t0 = Date.now();
  assert.equal(await page.evaluate(() => 6 * 7), 42, 'the page answers while the worker trains');
  await page.click('#stop');
  await page.waitForSelector('#train-status:has-text("stopped after")', { timeout: 10_000 });
  assert.ok(Date.now() - t0 < 10_000);
  assert.equal(await page.isEnabled('#train'), true);
  assert.deepEqual(problems, []);
});
