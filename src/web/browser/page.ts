// The page of `dpo web`: loads a model into the worker, samples answer pairs, takes labels by
// keyboard (1/2/3 as in `dpo annotate`) or from a preference JSONL, trains in the worker with live
// charts, compares before/after answers and exports the model and the labels.
import { zipSync } from 'fflate';
import type { CompareRow, ModelInfo, PreferenceRow, SampleSettings, TrainSettings } from '../engine.js';
import { labelsJsonl } from '../labels.js';
import type { Reply, Request, Results } from './protocol.js';

type Choice = 'A' | 'B' | 'tie';
interface Pair {
  prompt: string;
  a: string;
  b: string;
  choice: Choice | null;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();
let nextId = 1;
let pairs: Pair[] = [];
let model: ModelInfo | null = null;
let busy = false;
let training = false;
let trained = false;
let uploads = 0;
const history: Record<string, number>[] = [];

type Body<K extends Request['type']> = Omit<Extract<Request, { type: K }>, 'id' | 'type'>;
function call<K extends Request['type']>(type: K, body: Body<K>, transfer: ArrayBuffer[] = []): Promise<Results[K]> {
  const id = nextId++;
  return new Promise((ok, fail) => {
    pending.set(id, { ok: ok as (v: unknown) => void, fail });
    worker.postMessage({ id, type, ...body }, transfer);
  });
}

worker.onmessage = (ev: MessageEvent<Reply>) => {
  const m = ev.data;
  if ('type' in m) {
    onStep(m);
    return;
  }
  const p = pending.get(m.id);
  pending.delete(m.id);
  if (!p) return;
  if (m.ok) p.ok(m.result);
  else p.fail(new Error(m.error));
};
worker.onerror = (ev) => showError(`The engine stopped: ${ev.message}`);

function showError(message: string): void {
  $('error-text').textContent = message;
  $('error').hidden = false;
}
function clearError(): void {
  $('error').hidden = true;
}
$('error-close').addEventListener('click', clearError);

/** Runs a page action: one at a time, errors shown in the banner (the page stays usable). */
async function act(what: () => Promise<void>): Promise<void> {
  if (busy) return;
  busy = true;
  clearError();
  refresh();
  try {
    await what();
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
  } finally {
    busy = false;
    refresh();
  }
}

function labelled(): PreferenceRow[] {
  return pairs.filter((p) => p.choice === 'A' || p.choice === 'B').map((p) => (p.choice === 'A' ? { prompt: p.prompt, chosen: p.a, rejected: p.b } : { prompt: p.prompt, chosen: p.b, rejected: p.a }));
}

function refresh(): void {
  const idle = !busy && !training;
  ($('load-bundled') as HTMLButtonElement).disabled = !idle;
  for (const id of ['generate', 'compare', 'export-hf', 'export-gguf']) ($(id) as HTMLButtonElement).disabled = !idle || !model;
  ($('train') as HTMLButtonElement).disabled = !idle || !model || labelled().length === 0;
  ($('stop') as HTMLButtonElement).disabled = !training;
  ($('export-labels') as HTMLButtonElement).disabled = labelled().length === 0;
  const n = labelled().length, ties = pairs.filter((p) => p.choice === 'tie').length, open = pairs.filter((p) => p.choice === null).length;
  $('label-status').textContent = pairs.length ? `${n} labelled pair${n === 1 ? '' : 's'}, ${ties} tie${ties === 1 ? '' : 's'}, ${open} to label.` : 'No pairs yet.';
  showCard();
}

// ---------------------------------------------------------------- model
function describe(m: ModelInfo): string {
  return `${m.source.replace(/^\/(bundled|upload-\d+)\//, '')}: ${m.architecture} (${m.format}), ${(m.parameters / 1e6).toFixed(2)} M parameters, ${m.layers} layers × ${m.hidden}, vocabulary ${m.vocabSize}, context ${m.maxPositions}`;
}

async function loadInto(dir: string, files: { path: string; bytes: Uint8Array }[]): Promise<void> {
  try {
    const path = findModel(dir, files.map((f) => f.path));
    await call('files', { files }, files.map((f) => f.bytes.buffer as ArrayBuffer));
    $('model-status').textContent = `Loading ${path.slice(dir.length + 1)}…`;
    model = await call('load', { path, dropDir: dir });
  } catch (e) {
    $('model-status').textContent = model ? `Still loaded: ${describe(model)}` : 'No model loaded.';
    throw e;
  }
  pairs = [];
  trained = false;
  $('model-status').textContent = `Loaded ${describe(model)}`;
}

/** The model among uploaded files: a directory with config.json, else a llama2.c checkpoint (.bin, not a tokenizer). */
function findModel(dir: string, paths: string[]): string {
  const configs = paths.filter((p) => p.endsWith('/config.json')).sort((a, b) => a.length - b.length);
  if (configs.length) return configs[0]!.slice(0, -'/config.json'.length);
  const bins = paths.filter((p) => p.endsWith('.bin') && !/\/(tokenizer|tok[^/]*)\.bin$/.test(p));
  if (bins.length === 1) return bins[0]!;
  const names = paths.map((p) => p.slice(dir.length + 1)).sort();
  if (bins.length > 1) throw new Error(`Several llama2.c checkpoints: ${bins.map((p) => p.slice(dir.length + 1)).join(', ')}; pick one (with its tokenizer .bin).`);
  throw new Error(
    `No model in what you picked (${names.slice(0, 8).join(', ')}${names.length > 8 ? `, … ${names.length} files` : ''}): ` +
      'expected a Hugging Face directory (config.json, model.safetensors, tokenizer.json) or a llama2.c checkpoint (.bin) with its tokenizer (tok*.bin).',
  );
}

async function readFiles(list: { file: File; path: string }[]): Promise<{ dir: string; files: { path: string; bytes: Uint8Array }[] }> {
  if (list.length === 0) throw new Error('No files were picked.');
  const dir = `/upload-${++uploads}`;
  const files = await Promise.all(list.map(async ({ file, path }) => ({ path: `${dir}/${path}`, bytes: new Uint8Array(await file.arrayBuffer()) })));
  return { dir, files };
}

$('load-bundled').addEventListener('click', () => act(async () => {
  const base = new URL('models/stories260K/', location.href);
  const files = await Promise.all(['stories260K.bin', 'tok512.bin'].map(async (f) => {
    const r = await fetch(new URL(f, base));
    if (!r.ok) throw new Error(`models/stories260K/${f}: HTTP ${r.status}`);
    return { path: `/bundled/stories260K/${f}`, bytes: new Uint8Array(await r.arrayBuffer()) };
  }));
  await loadInto('/bundled', files);
}));

for (const id of ['pick-folder', 'pick-files']) {
  const input = $(id) as HTMLInputElement;
  input.addEventListener('change', () => act(async () => {
    const list = [...(input.files ?? [])].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    input.value = '';
    const { dir, files } = await readFiles(list);
    await loadInto(dir, files);
  }));
}

/** Files of a dropped item, directories walked (webkitGetAsEntry). */
async function entryFiles(entry: FileSystemEntry, prefix: string): Promise<{ file: File; path: string }[]> {
  if (entry.isFile) {
    const file = await new Promise<File>((ok, fail) => (entry as FileSystemFileEntry).file(ok, fail));
    return [{ file, path: prefix + entry.name }];
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const out: { file: File; path: string }[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((ok, fail) => reader.readEntries(ok, fail));
    if (batch.length === 0) break;
    for (const e of batch) out.push(...(await entryFiles(e, `${prefix}${entry.name}/`)));
  }
  return out;
}

const drop = $('drop');
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  const items = [...(ev.dataTransfer?.items ?? [])].map((i) => i.webkitGetAsEntry()).filter((e): e is FileSystemEntry => e !== null);
  const plain = [...(ev.dataTransfer?.files ?? [])];
  void act(async () => {
    const list = items.length ? (await Promise.all(items.map((e) => entryFiles(e, '')))).flat() : plain.map((file) => ({ file, path: file.name }));
    const { dir, files } = await readFiles(list);
    await loadInto(dir, files);
  });
});

// ---------------------------------------------------------------- prompts and labels
function promptsOf(): string[] {
  const ps = ($('prompts') as HTMLTextAreaElement).value.split('\n').map((s) => s.trim()).filter(Boolean);
  return [...new Set(ps)];
}

function sampling(): SampleSettings {
  const num = (id: string) => Number(($(id) as HTMLInputElement).value);
  return { temperature: num('temperature'), topP: 0.95, maxNewTokens: num('max-new'), seed: num('sample-seed') };
}

$('generate').addEventListener('click', () => act(async () => {
  const prompts = promptsOf();
  if (prompts.length === 0) throw new Error('Write at least one prompt (one a line).');
  $('label-status').textContent = `Sampling ${2 * prompts.length} answers…`;
  const got = await call('sample', { prompts, settings: sampling() });
  pairs.push(...got.map((g) => ({ ...g, choice: null })));
}));

function current(): Pair | undefined {
  return pairs.find((p) => p.choice === null);
}

function showCard(): void {
  const p = current();
  $('card').hidden = !p;
  if (!p) return;
  const i = pairs.indexOf(p);
  $('card-pos').textContent = `Pair ${i + 1} of ${pairs.length}`;
  $('card-prompt').textContent = p.prompt;
  $('answer-a').querySelector('span')!.textContent = p.a;
  $('answer-b').querySelector('span')!.textContent = p.b;
}

function choose(key: string): void {
  const p = current();
  if (!p || training) return;
  p.choice = key === '1' ? 'A' : key === '2' ? 'B' : 'tie';
  refresh();
}

for (const id of ['answer-a', 'answer-b', 'tie']) $(id).addEventListener('click', () => choose($(id).dataset.key!));
document.addEventListener('keydown', (ev) => {
  const t = ev.target as HTMLElement;
  if (ev.altKey || ev.ctrlKey || ev.metaKey || t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
  if (['1', '2', '3'].includes(ev.key) && current()) {
    ev.preventDefault();
    choose(ev.key);
  }
});

const importInput = $('import-jsonl') as HTMLInputElement;
importInput.addEventListener('change', () => act(async () => {
  const file = importInput.files?.[0];
  importInput.value = '';
  if (!file) return;
  const path = `/imports/${++uploads}/${file.name}`;
  const bytes = new Uint8Array(await file.arrayBuffer());
  await call('files', { files: [{ path, bytes }] }, [bytes.buffer as ArrayBuffer]);
  const rows = await call('readPreferences', { path });
  pairs.push(...rows.map((r) => ({ prompt: r.prompt, a: r.chosen, b: r.rejected, choice: 'A' as const })));
  $('label-status').textContent = `Imported ${rows.length} pairs from ${file.name}.`;
}));

function download(name: string, data: Uint8Array | string, type: string): void {
  const url = URL.createObjectURL(new Blob([data as BlobPart], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

$('export-labels').addEventListener('click', () => download('labels.jsonl', labelsJsonl(labelled()), 'application/x-ndjson'));

// ---------------------------------------------------------------- training
function trainSettings(): TrainSettings {
  const num = (id: string) => Number(($(id) as HTMLInputElement).value);
  const s: TrainSettings = {
    beta: num('beta'), lossType: ($('loss-type') as HTMLSelectElement).value, learningRate: num('lr'), steps: Math.round(num('steps')),
    lora: ($('lora') as HTMLInputElement).checked, loraR: Math.round(num('lora-r')), batchSize: Math.round(num('batch')),
  };
  for (const [k, v] of Object.entries(s)) if (typeof v === 'number' && !(Number.isFinite(v) && v > 0)) throw new Error(`${k} must be a positive number`);
  return s;
}

function onStep(m: Extract<Reply, { type: 'step' }>): void {
  history.push({ step: m.step, ...m.metrics });
  ($('progress') as HTMLProgressElement).value = m.step / m.totalSteps;
  $('train-status').textContent = `step ${m.step}/${m.totalSteps} · loss ${m.metrics.loss?.toFixed(4)} · accuracy ${m.metrics['rewards/accuracies']?.toFixed(2)} · margin ${m.metrics['rewards/margins']?.toFixed(3)}`;
  $('metrics').textContent += `${JSON.stringify({ step: m.step, ...m.metrics })}\n`;
  draw('chart-loss', 'loss');
  draw('chart-acc', 'rewards/accuracies');
  draw('chart-margin', 'rewards/margins');
}

function draw(id: string, key: string): void {
  const c = $(id) as HTMLCanvasElement;
  const g = c.getContext('2d')!;
  const pts = history.map((h) => [h.step!, h[key]!] as const).filter(([, v]) => Number.isFinite(v));
  g.clearRect(0, 0, c.width, c.height);
  if (pts.length === 0) return;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  const x0 = Math.min(...xs), x1 = Math.max(x0 + 1, Math.max(...xs));
  const L = 44, R = 8, Tp = 8, B = 20, W = c.width - L - R, H = c.height - Tp - B;
  g.strokeStyle = '#c9cfdb';
  g.strokeRect(L, Tp, W, H);
  g.fillStyle = '#5b6375';
  g.font = '11px system-ui';
  g.fillText(hi.toPrecision(3), 2, Tp + 9);
  g.fillText(lo.toPrecision(3), 2, Tp + H);
  g.fillText(`step ${x1}`, L + W - 48, c.height - 5);
  g.strokeStyle = '#3b6fd8';
  g.lineWidth = 2;
  g.beginPath();
  pts.forEach(([x, y], i) => {
    const px = L + ((x - x0) / (x1 - x0)) * W, py = Tp + (1 - (y - lo) / (hi - lo)) * H;
    if (i === 0) g.moveTo(px, py);
    else g.lineTo(px, py);
  });
  g.stroke();
}

$('train').addEventListener('click', () => {
  let settings: TrainSettings;
  try {
    settings = trainSettings();
  } catch (e) {
    showError((e as Error).message);
    return;
  }
  const rows = labelled();
  clearError();
  history.length = 0;
  $('metrics').textContent = '';
  ($('progress') as HTMLProgressElement).value = 0;
  $('train-status').textContent = `Training on ${rows.length} pairs…`;
  training = true;
  refresh();
  call('train', { rows, settings }).then(
    (r) => {
      trained = true;
      $('train-status').textContent += r.stopped ? ` — stopped after ${r.steps} steps (the weights so far are kept)` : ' — done';
    },
    (e: Error) => showError(e.message),
  ).finally(() => {
    training = false;
    refresh();
  });
});

$('stop').addEventListener('click', () => {
  void call('stop', {});
});

// ---------------------------------------------------------------- compare and export
function td(text: string, reward?: number): HTMLTableCellElement {
  const cell = document.createElement('td');
  cell.textContent = text;
  if (reward !== undefined) {
    const r = document.createElement('span');
    r.className = 'reward';
    r.textContent = `implicit reward ${Number.isFinite(reward) ? reward.toFixed(3) : '—'}`;
    cell.append(r);
  }
  return cell;
}

$('compare').addEventListener('click', () => act(async () => {
  const prompts = promptsOf();
  if (prompts.length === 0) throw new Error('Write at least one prompt (one a line).');
  const rows: CompareRow[] = await call('compare', { prompts, settings: sampling() });
  const body = $('compare-table').querySelector('tbody')!;
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement('tr');
    tr.append(td(r.prompt), td(r.before, r.rewardBefore), td(r.after, r.rewardAfter));
    return tr;
  }));
  $('compare-table').hidden = false;
  if (!trained) $('train-status').textContent = 'Not trained yet: both columns come from the loaded model.';
}));

function baseName(): string {
  const n = model ? model.source.split('/').filter(Boolean).at(-1)!.replace(/\.bin$/, '') : 'model';
  return `${n}-dpo`;
}

$('export-hf').addEventListener('click', () => act(async () => {
  const files = await call('exportHf', {});
  const entries: Record<string, Uint8Array> = {};
  for (const [name, bytes] of files) entries[`${baseName()}/${name}`] = bytes;
  download(`${baseName()}.zip`, zipSync(entries, { level: 0 }), 'application/zip');
}));

$('export-gguf').addEventListener('click', () => act(async () => {
  download(`${baseName()}.gguf`, await call('exportGguf', {}), 'application/octet-stream');
}));

// ---------------------------------------------------------------- start
void act(async () => {
  const threads = crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, 8) : 1;
  const r = await call('init', { threads });
  $('engine').textContent = `Engine: ${r.note}, backend ${r.backend}, ${r.threads} thread${r.threads === 1 ? '' : 's'} · cross-origin isolated: ${crossOriginIsolated ? 'yes' : 'no'}`;
  document.body.dataset.ready = '1';
});
