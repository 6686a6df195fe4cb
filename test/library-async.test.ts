// The library's training calls on objects in memory: non-blocking (the event loop keeps
// running), cancellable with an AbortSignal, typed events after every step (independent of
// logging_steps) whose async handlers are awaited, and the trained model returned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelAndTokenizer, runDpo, runSft, saveModel, type StepRecord } from '../src/index.js';
import { makeTinyModelDir, syntheticPairs } from './fixtures/train/tiny.js';

const modelDir = await makeTinyModelDir();
const pairs = syntheticPairs(64, 5);
const config = {
  learning_rate: 3e-3, per_device_train_batch_size: 8, max_length: 64, max_prompt_length: 32,
  lr_scheduler_type: 'constant', logging_steps: 100, seed: 3,
} as const;

/** Runs a DPO run of `steps` steps with a 10 ms interval timer; the run's length and the longest gap between ticks. */
async function timedRun(steps: number): Promise<{ ms: number; maxGap: number; ticks: number }> {
  const ticks: number[] = [];
  const timer = setInterval(() => ticks.push(performance.now()), 10);
  const start = performance.now();
  try {
    await runDpo({ model: modelDir, data: pairs, config: { ...config, per_device_train_batch_size: 2, max_steps: steps }, quiet: true });
  } finally {
    clearInterval(timer);
  }
  const end = performance.now();
  const times = [start, ...ticks, end];
  return { ms: end - start, maxGap: Math.max(...times.slice(1).map((t, i) => t - times[i]!)), ticks: ticks.length };
}

test('a training run keeps a 10 ms timer ticking (no gap over 100 ms)', async () => {
  // A run that blocked the event loop would show one gap as long as the run (over 150 ms) every
  // time; on a machine shared with other work the OS may still preempt the process for 100+ ms,
  // so up to three runs are measured and one must be clean.
  // The run must last well over 100 ms to show blocking: on a fast idle machine 40 steps take
  // under 150 ms, so the step count grows until a run takes over 300 ms.
  let steps = 40;
  for (let r = await timedRun(steps); r.ms < 300 && steps < 5000; r = await timedRun(steps)) steps *= 4;
  const runs: { ms: number; maxGap: number; ticks: number }[] = [];
  // A run that came out too short (the machine got quieter after calibrating) is redone longer.
  for (let attempt = 0; runs.length < 3 && attempt < 8; attempt++) {
    const r = await timedRun(steps);
    if (r.ms <= 150) {
      steps *= 2;
      continue;
    }
    runs.push(r);
    if (r.maxGap < 100) break;
  }
  assert.ok(runs.length > 0, `every run stayed under 150 ms (last ${steps} steps): too short to show blocking`);
  const best = runs.reduce((a, b) => (b.maxGap < a.maxGap ? b : a));
  const text = runs.map((r) => `${r.maxGap.toFixed(0)} ms longest gap, ${r.ticks} ticks in ${r.ms.toFixed(0)} ms`).join('; ');
  assert.ok(best.maxGap < 100, `the event loop was blocked: ${text}`);
});

test('an abort stops training within one step and rejects with the AbortError', async () => {
  const controller = new AbortController();
  const seen: number[] = [];
  await assert.rejects(
    runDpo({
      model: modelDir, data: pairs, config: { ...config, max_steps: 50, gradient_accumulation_steps: 2 }, quiet: true, signal: controller.signal,
      on: { step: ({ step }) => {
        seen.push(step);
        if (step === 3) controller.abort();
      } },
    }),
    (e: Error) => e.name === 'AbortError',
  );
  assert.deepEqual(seen, [1, 2, 3]);
  // Already aborted: nothing runs.
  await assert.rejects(runDpo({ model: modelDir, data: pairs, config, quiet: true, signal: AbortSignal.abort() }), (e: Error) => e.name === 'AbortError');
});

test('step events come after every step whatever logging_steps is; async handlers are awaited', async () => {
  const order: string[] = [];
  const records: StepRecord[] = [];
  const logs: Record<string, number>[] = [];
  const checkpoints: number[] = [];
  const out = mkdtempSync(join(tmpdir(), 'dpo-events-'));
  const res = await runDpo({
    model: modelDir, data: pairs, evalData: pairs.slice(0, 8), outputDir: out, quiet: true,
    config: { ...config, max_steps: 5, logging_steps: 4, save_steps: 2 },
    on: {
      step: async (r) => {
        order.push(`begin ${r.step}`);
        await new Promise((resolve) => setTimeout(resolve, 15));
        records.push(r);
        order.push(`end ${r.step}`);
      },
      log: (r) => void logs.push(r),
      checkpoint: async ({ step, dir }) => {
        assert.ok(existsSync(dir));
        checkpoints.push(step);
      },
      eval: (r) => void order.push(`eval ${r.step}`),
    },
  });
  // Each handler finished before the next step began.
  assert.deepEqual(order, ['begin 1', 'end 1', 'begin 2', 'end 2', 'begin 3', 'end 3', 'begin 4', 'end 4', 'begin 5', 'end 5', 'eval 5']);
  assert.deepEqual(records.map((r) => r.step), [1, 2, 3, 4, 5]);
  for (const r of records) {
    assert.equal(r.totalSteps, 5);
    for (const k of ['loss', 'grad_norm', 'learning_rate', 'rewards/chosen', 'rewards/margins', 'logps/chosen']) assert.ok(Number.isFinite(r.metrics[k]), `${k} in step ${r.step}`);
  }
  // Logged records: every logging_steps steps and the last (the metrics.jsonl lines).
  assert.deepEqual(logs.map((l) => l.step), [4, 5]);
  assert.deepEqual(checkpoints, [2, 4]);
  assert.equal(res.steps, 5);
  assert.ok(existsSync(join(out, 'model.safetensors')));
});

test('in memory: a loaded model and rows in, the trained model out; nothing written until saveModel', async () => {
  const loaded = await loadModelAndTokenizer(modelDir);
  const before = Float32Array.from(loaded.model.parameters().get('model.layers.0.self_attn.q_proj.weight')!.data);
  const res = await runDpo({ model: loaded, data: pairs, config: { ...config, max_steps: 3 }, quiet: true });
  assert.equal(res.model, loaded.model, 'the model object is trained in place and returned');
  const after = res.model.parameters().get('model.layers.0.self_attn.q_proj.weight')!.data;
  assert.ok(after.some((v, i) => v !== before[i]), 'weights did not change');
  assert.equal(res.config.beta, 0.1, 'defaults filled in');

  // SFT on rows in memory, starting from the DPO result (a result is a model input).
  const sft = await runSft({
    model: res, data: pairs.map((p) => ({ prompt: p.prompt, completion: p.chosen })), config: { max_steps: 2, max_length: 64, learning_rate: 1e-3 }, quiet: true,
  });
  assert.equal(sft.model, loaded.model);
  const dir = mkdtempSync(join(tmpdir(), 'dpo-save-'));
  await saveModel(dir, sft);
  const again = await loadModelAndTokenizer(dir);
  assert.deepEqual(again.tokenizer.encode('Q12: abc def?'), loaded.tokenizer.encode('Q12: abc def?'));
  assert.deepEqual(
    Array.from(again.model.parameters().get('model.layers.0.self_attn.q_proj.weight')!.data),
    Array.from(sft.model.parameters().get('model.layers.0.self_attn.q_proj.weight')!.data),
  );
  // A model object without its tokenizer is a clear error.
  await assert.rejects(runDpo({ model: loaded.model, data: pairs, config, quiet: true }), /needs its tokenizer/);
  // Bad rows in memory are reported by row.
  await assert.rejects(runDpo({ model: loaded, data: [{ prompt: 'a', chosen: 'b', rejected: 'c' }, { prompt: 'a', chosen: 3 }], config, quiet: true }), /\(in memory\)\[row 1\]/);
});

test('dpo train: Ctrl-C stops between micro-batches, keeps the checkpoints and says how to resume', { timeout: 60_000 }, async () => {
  const d = mkdtempSync(join(tmpdir(), 'dpo-sigint-'));
  const data = join(d, 'train.jsonl');
  writeFileSync(data, pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
  const out = join(d, 'out');
  const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'dpo.js');
  const child = spawn(process.execPath, [bin, 'train', '--model', modelDir, '--data', data, '--output', out, '--max-steps', '100000',
    '--save-steps', '3', '--per-device-train-batch-size', '2', '--max-length', '64', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Interrupt once the first checkpoint is on disk.
  while (!existsSync(join(out, 'checkpoint-3'))) {
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  assert.match(stderr, /interrupted: stopping after the current micro-batch/);
  assert.match(stderr, /continue with --resume/);
  assert.ok(existsSync(join(out, 'checkpoint-3', 'trainer_state.json')) || readdirSync(join(out, 'checkpoint-3')).length > 0);
});
