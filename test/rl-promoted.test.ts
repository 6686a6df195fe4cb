// Long RL runs keep V8's old generation flat: what a PPO/GRPO step allocates dies young instead of
// being promoted and dying in the old generation (where it sized V8's heap up until a
// mark-compact: +5–8% RSS on 5,000-step soaks). Measured as the bytes the scavenges move into old
// space per step (node:v8's GCProfiler), after a warm-up. Also: the typed-array metric window the
// RL loop sums its metrics in; add-prompts' statements prepared once per connection and its
// SQLite page cache bounded to 2 MB (better-sqlite3's 16 MB filled as the project grew).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRlTask } from './fixtures/train/tiny.js';
import { recordPromotion } from './helpers/gc.js';
import { runGrpo } from '../src/train/grpo.js';
import { runPpo } from '../src/train/ppo.js';
import { parseGrpoConfig, parsePpoConfig } from '../src/train/rl-config.js';
import { MetricWindow } from '../src/train/metric-window.js';
import { cachedStatement, openDatabase } from '../src/annotate/db.js';
import { dbPath, initProject, insertItem } from '../src/annotate/store.js';
import { addPrompts, ADD_PROMPTS_CACHE_KIB, DEFAULT_SAMPLING } from '../src/annotate/generate.js';

const WARMUP = 40, MEASURED = 200;

/**
 * Runs a trainer for WARMUP + MEASURED steps (logging every WARMUP steps) and returns the bytes
 * promoted per measured step: old space used after − before each scavenge, summed.
 */
async function promotedPerStep(run: (onLog: (r: Record<string, number>) => void) => Promise<unknown>): Promise<{ perStep: number; scavenges: number }> {
  let rec: ReturnType<typeof recordPromotion> | undefined;
  let measured = { promoted: 0, scavenges: 0 };
  await run((r) => {
    if (r.step === WARMUP) rec = recordPromotion();
    else if (r.step === WARMUP + MEASURED) measured = rec!.stop();
  });
  return { perStep: measured.promoted / MEASURED, scavenges: measured.scavenges };
}

const { modelDir, promptsFile, rewardModule } = await makeRlTask();
const common = { reward_funcs: [rewardModule], max_steps: WARMUP + MEASURED, logging_steps: WARMUP, save_steps: 0, seed: 2, learning_rate: 1e-4, lr_scheduler_type: 'constant' };

test('a tiny PPO run promotes < 1 KiB per step into V8\'s old generation (the loop keeps no step alive)', async () => {
  const { perStep, scavenges } = await promotedPerStep((onLog) => runPpo({
    model: modelDir, prompts: [promptsFile], outputDir: mkdtempSync(join(tmpdir(), 'promoted-ppo-')), quiet: true, onLog,
    config: parsePpoConfig({ ...common, per_device_train_batch_size: 8, num_mini_batches: 2, num_ppo_epochs: 1, response_length: 8 }),
  }));
  assert.ok(scavenges >= 3, `only ${scavenges} scavenges: the check measured too little`);
  // Before: the loop's async frame (old) held each step's rollout across its awaits, metric sums
  // were boxed numbers in long-lived objects, the pool's arrays were regrown: 4.8 KiB per step
  // here (0.4 after).
  assert.ok(perStep < 1024, `promoted ${(perStep / 1024).toFixed(2)} KiB per step over ${MEASURED} steps (${scavenges} scavenges)`);
});

test('a tiny GRPO run promotes < 0.75 KiB per step into V8\'s old generation', async () => {
  const { perStep, scavenges } = await promotedPerStep((onLog) => runGrpo({
    model: modelDir, prompts: [promptsFile], outputDir: mkdtempSync(join(tmpdir(), 'promoted-grpo-')), quiet: true, onLog,
    config: parseGrpoConfig({ ...common, per_device_train_batch_size: 8, num_generations: 4, max_completion_length: 8 }),
  }));
  assert.ok(scavenges >= 3, `only ${scavenges} scavenges: the check measured too little`);
  // Before: 1.4 KiB per step (0.15 after).
  assert.ok(perStep < 768, `promoted ${(perStep / 1024).toFixed(2)} KiB per step over ${MEASURED} steps (${scavenges} scavenges)`);
});

test('MetricWindow: sums in first-seen order, names without additions left out, clear() starts a new window', () => {
  const w = new MetricWindow();
  assert.equal(w.empty, true);
  for (let i = 0; i < 40; i++) w.add(`m${i}`, i); // past the initial capacity
  w.addAll({ m1: 0.5, loss: 2 });
  w.add('loss', 1);
  assert.equal(w.sum('m1'), 1.5);
  assert.equal(w.sum('loss'), 3);
  assert.equal(w.sum('nothing'), undefined);
  const rec = w.record(2);
  assert.deepEqual(Object.keys(rec).slice(0, 3), ['m0', 'm1', 'm2']);
  assert.equal(Object.keys(rec).at(-1), 'loss');
  assert.equal(rec.loss, 1.5);
  w.clear();
  assert.equal(w.empty, true);
  w.add('loss', 4);
  assert.deepEqual(w.record(), { loss: 4 }, 'a name seen before but not in this window was listed');
  // The same sums as a plain object's (x ?? 0) + v, bit for bit.
  const xs = [0.1, 0.2, 0.3, -0.7, 1e-17, 3];
  const m = new MetricWindow();
  let plain = 0;
  for (const x of xs) {
    m.add('x', x);
    plain += x;
  }
  assert.equal(m.sum('x'), plain);
});

test('cachedStatement: one compiled statement per connection and SQL; add-prompts\' insert and check reuse theirs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stmt-cache-'));
  initProject(dir, {});
  const db = openDatabase(dbPath(dir));
  const db2 = openDatabase(dbPath(dir));
  try {
    const a = cachedStatement(db, 'SELECT 1 FROM items WHERE uid = ?');
    assert.equal(cachedStatement(db, 'SELECT 1 FROM items WHERE uid = ?'), a);
    assert.notEqual(cachedStatement(db2, 'SELECT 1 FROM items WHERE uid = ?'), a);
    // prepare() must not run per row any more.
    const prepare = db.prepare;
    let prepared = 0;
    db.prepare = ((sql: string) => {
      prepared++;
      return prepare.call(db, sql);
    }) as typeof db.prepare;
    const item = (i: number) => ({ uidKey: ['prompt', `p${i}`], format: 'text' as const, prompt: `p${i}`, responseA: 'a', responseB: 'b', source: 't', gold: null });
    insertItem(db, item(0));
    insertItem.exists(db, ['prompt', 'p0']);
    const after1 = prepared;
    for (let i = 1; i < 50; i++) {
      assert.equal(insertItem.exists(db, ['prompt', `p${i}`]), false);
      assert.equal(insertItem(db, item(i)), true);
    }
    assert.equal(insertItem.exists(db, ['prompt', 'p7']), true);
    assert.equal(insertItem(db, item(7)), false, 'a duplicate was inserted');
    assert.equal(prepared, after1, `${prepared - after1} statements prepared for 49 more rows`);
    assert.ok(after1 <= 1, `prepared ${after1} for the first row (the check was cached above)`);
  } finally {
    db.close();
    db2.close();
  }
});

test('add-prompts runs with a 2 MB SQLite page cache, and restores the connection\'s own afterwards', async () => {
  // better-sqlite3 builds SQLite with 16 MB per connection, which filled as the project grew (the C
  // heap of 20,000 inserts: 3 → 18 MiB; at 2 MB flat at ~5 MiB from 4,000 on; README).
  const dir = mkdtempSync(join(tmpdir(), 'add-prompts-cache-'));
  initProject(dir, {});
  const db = openDatabase(dbPath(dir));
  try {
    const before = db.pragma('cache_size', { simple: true });
    assert.equal(before, -16000, 'better-sqlite3\'s build default changed: revisit ADD_PROMPTS_CACHE_KIB');
    const during: unknown[] = [];
    const r = await addPrompts(db, Array.from({ length: 20 }, (_, i) => ({ prompt: `prompt ${i}`, line: i + 1 })), async (p) => {
      during.push(db.pragma('cache_size', { simple: true }));
      return [`${p} a`, `${p} b`];
    }, DEFAULT_SAMPLING, 'test');
    assert.equal(r.added, 20);
    assert.deepEqual(new Set(during), new Set([-ADD_PROMPTS_CACHE_KIB]));
    assert.equal(db.pragma('cache_size', { simple: true }), before, 'the connection\'s cache size was not restored');
    // A smaller cache than the bound is left alone; a failing generator still restores the setting.
    db.pragma('cache_size = -500');
    await assert.rejects(addPrompts(db, [{ prompt: 'x', line: 1 }], async () => {
      assert.equal(db.pragma('cache_size', { simple: true }), -500);
      throw new Error('model failed');
    }, DEFAULT_SAMPLING, 'test'), /model failed/);
    assert.equal(db.pragma('cache_size', { simple: true }), -500);
  } finally {
    db.close();
  }
});
