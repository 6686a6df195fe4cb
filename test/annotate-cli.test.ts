// The annotate commands through the real `dpo` CLI entry: add-pairs over the data layer, add-prompts
// with a real (tiny, random) local model, and `dpo annotate --help`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { openDatabase } from '../src/annotate/db.js';
import { promptText } from '../src/annotate/local-model.js';
import { dbPath, initProject } from '../src/annotate/store.js';
import { loadTokenizer } from '../src/io/tokenizers/index.js';
import { tmpDir } from './annotate-helpers.js';
import { makeTinyModelDir } from './fixtures/train/tiny.js';

const run = promisify(execFile);
// dist/test/annotate-model.test.js → dist/src/cli/index.js
const CLI = fileURLToPath(new URL('../src/cli/index.js', import.meta.url));

async function dpo(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
  return stdout;
}

/** Runs a command expected to fail; returns its stderr. */
async function dpoFails(...args: string[]): Promise<string> {
  try {
    await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
  } catch (e) {
    const err = e as { code?: number; stderr?: string };
    assert.equal(err.code, 1);
    return err.stderr ?? '';
  }
  assert.fail(`dpo ${args.join(' ')} succeeded`);
}

let modelDir = '';
before(async () => {
  modelDir = await makeTinyModelDir({ seed: 3 });
});
after(() => rmSync(modelDir, { recursive: true, force: true }));

interface ItemRow {
  prompt: string;
  response_a: string;
  response_b: string;
  source: string;
  meta: string;
}

function items(dir: string): ItemRow[] {
  const db = openDatabase(dbPath(dir));
  try {
    return db.prepare('SELECT prompt, response_a, response_b, source, meta FROM items ORDER BY id').all() as ItemRow[];
  } finally {
    db.close();
  }
}

test('dpo annotate add-pairs: gzipped implicit-prompt data, --columns, bad rows reported with file:line or skipped', async () => {
  const work = tmpDir();
  const dir = join(work, 'proj');
  initProject(dir);
  const hh = join(work, 'hh.jsonl.gz');
  const rows = [
    { chosen: '\n\nHuman: Hi\n\nAssistant: Hello!', rejected: '\n\nHuman: Hi\n\nAssistant: Go away.' },
    { chosen: 'no boundary here', rejected: 'nothing shared' },
    { chosen: '\n\nHuman: Bye\n\nAssistant: Take care.', rejected: '\n\nHuman: Bye\n\nAssistant: Whatever.' },
  ];
  writeFileSync(hh, gzipSync(Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n') + '\n')));
  const err = await dpoFails('annotate', 'add-pairs', dir, hh);
  assert.match(err, /hh\.jsonl\.gz \(format implicit\): 1 bad row/);
  assert.match(err, /hh\.jsonl\.gz:2: no_common_prompt/);
  assert.equal(items(dir).length, 0, 'nothing is added when a row is bad (policy error)');
  assert.match(
    await dpo('annotate', 'add-pairs', dir, hh, '--on-bad-row', 'skip'),
    /added 2 pairs \(implicit format, 0 already present; 1 bad rows left out \(no_common_prompt 1\)\); project has 2 items \+ 0 gold/,
  );
  assert.deepEqual(JSON.parse(items(dir)[1]!.prompt), '\n\nHuman: Bye\n\nAssistant:');
  assert.equal(JSON.parse(items(dir)[1]!.meta).line, 3);

  const qa = join(work, 'qa.json');
  writeFileSync(qa, JSON.stringify([{ question: 'Q', good: 'yes', bad: 'no' }]));
  assert.match(await dpo('annotate', 'add-pairs', dir, qa, '--columns', 'prompt=question,chosen=good,rejected=bad', '--gold'), /added 1 gold pairs \(standard format/);
  assert.match(await dpoFails('annotate', 'add-pairs', dir, qa, '--columns', 'prompt=question,chosen=good,wrong=bad'), /--columns: expected NAME=COLUMN/);
});

test('dpo annotate add-prompts samples two candidates per prompt from a local model, seeded and resumable', async () => {
  const work = tmpDir();
  const prompts = join(work, 'prompts.jsonl');
  writeFileSync(prompts, ['{"prompt": "Q12: abc def?"}', '"Q7: nop qrs?"', '{"prompt": "Q99: ghi xyz?"}'].join('\n') + '\n');
  const project = (name: string) => {
    const d = join(work, name);
    initProject(d);
    return d;
  };
  const [a, b, c] = [project('a'), project('b'), project('c')];
  // Default max-new-tokens (256) exceeds the tiny model's 128 positions: the generator caps it.
  const sample = (dir: string, seed: number, ...extra: string[]) =>
    dpo('annotate', 'add-prompts', dir, prompts, '--model', modelDir, '--seed', String(seed), '--temperature', '1', '--top-p', '1', ...extra);

  assert.match(await sample(a, 7, '--max-new-tokens', '12'), /added 3 prompts with 2 candidates each \(0 already present, 0 with identical candidates skipped\)/);
  const ia = items(a);
  assert.deepEqual(ia.map((i) => JSON.parse(i.prompt)), ['Q12: abc def?', 'Q7: nop qrs?', 'Q99: ghi xyz?']);
  for (const it of ia) {
    assert.notEqual(it.response_a, it.response_b, 'the two rows of a batch are different samples');
    assert.ok(it.response_a.length > 0 || it.response_b.length > 0);
    assert.equal(it.source, `${prompts} via ${modelDir}`);
    assert.deepEqual(JSON.parse(it.meta).sampling, { temperature: 1, topP: 1, topK: 0, maxNewTokens: 12, seed: 7 });
  }
  // Prompts get different candidates from each other (per-prompt seeds), not one shared stream.
  assert.equal(new Set(ia.map((i) => i.response_a)).size, 3);

  // Same seed in another project: the same candidates. Another seed: different ones.
  await sample(b, 7, '--max-new-tokens', '12');
  assert.deepEqual(items(b).map((i) => [i.response_a, i.response_b]), ia.map((i) => [i.response_a, i.response_b]));
  await sample(c, 8, '--max-new-tokens', '12');
  const ic = items(c);
  assert.ok(ic.some((it, k) => it.response_a !== ia[k]!.response_a || it.response_b !== ia[k]!.response_b), 'seed 8 differs from seed 7');

  // Re-running resumes: nothing is generated again.
  assert.match(await sample(a, 7, '--max-new-tokens', '12'), /added 0 prompts .*\(3 already present/);
  assert.equal(items(a).length, 3);

  // Without --max-new-tokens (256) the responses are cut at the model's context instead of failing.
  assert.match(await sample(c, 9), /added \d prompts/);
});

test('promptText wraps the prompt as a user turn when the tokenizer has a chat template', async () => {
  const plain = await loadTokenizer(modelDir);
  assert.equal(plain.chatTemplate, null);
  assert.equal(promptText(plain, 'Q1: ab?'), 'Q1: ab?');
  const chatDir = tmpDir('dpo-annotate-chat-tok-');
  for (const f of ['tokenizer.json', 'special_tokens_map.json']) writeFileSync(join(chatDir, f), readFileSync(join(modelDir, f)));
  const cfg = JSON.parse(readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8'));
  cfg.chat_template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  writeFileSync(join(chatDir, 'tokenizer_config.json'), JSON.stringify(cfg));
  const chat = await loadTokenizer(chatDir);
  assert.equal(promptText(chat, 'Q1: ab?'), 'user: Q1: ab?\nassistant:');
});

test('dpo annotate --help (real CLI entry) lists the subcommands', async () => {
  const help = await dpo('annotate', '--help');
  for (const sub of ['init', 'add-pairs', 'add-prompts', 'create-annotator', 'serve', 'export']) {
    assert.match(help, new RegExp(`^\\s+${sub}\\b`, 'm'), `annotate --help lists ${sub}`);
  }
  const pairsHelp = await dpo('annotate', 'add-pairs', '--help');
  for (const opt of ['--format', '--columns', '--on-bad-row', '--gold']) assert.ok(pairsHelp.includes(opt), `add-pairs --help lists ${opt}`);
});
