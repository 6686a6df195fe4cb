// What the tensor buffer pool asks of V8 and glibc on long runs (src/tensor/memory.ts,
// src/tensor/allocator.ts): buffers released within the synchronous work that made them never
// enter the FinalizationRegistry (whose targets V8's scavenges keep alive, promoting them to the
// old generation), so alloc/release churn promotes next to nothing; a tensor dropped without
// release() is still accounted for; a release of anything but the current owner of a block is
// ignored; glibc's free pages are given back at step boundaries, at most once per interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as T from '../src/tensor/index.js';
import { nurseryLength, NURSERY_CAPACITY } from '../src/tensor/memory.js';
import { MALLOC_TRIM_INTERVAL_MS, mallocInfo, trimFreeMemory } from '../src/tensor/allocator.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRlTask } from './fixtures/train/tiny.js';
import { recordPromotion } from './helpers/gc.js';
import { runGrpo } from '../src/train/grpo.js';
import { runPpo } from '../src/train/ppo.js';
import { parseGrpoConfig, parsePpoConfig, parseRewardConfig } from '../src/train/rl-config.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';
import { runDpo } from '../src/train/dpo.js';
import { runSft } from '../src/train/sft.js';
import { runRewardModel } from '../src/train/rm.js';
import { parseDpoConfig, parseSftConfig } from '../src/train/config.js';
import { SETTLES_BEFORE_REGISTER } from '../src/tensor/memory.js';

/** Bytes the scavenges during fn moved into the old generation. */
function promotedDuring(fn: () => void): { promoted: number; scavenges: number } {
  const rec = recordPromotion();
  fn();
  return rec.stop();
}

test('alloc/release churn promotes (next to) nothing into V8\'s old generation; the nursery stays bounded', () => {
  // Start from a collected heap, so young objects of earlier work are not counted.
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  // 300 buffers stay live throughout (as a step's activations would), 200,000 come and go.
  const live: T.Buf[] = Array.from({ length: 300 }, () => T.alloc('float32', 64));
  let maxNursery = 0;
  const { promoted, scavenges } = promotedDuring(() => {
    for (let i = 0; i < 200_000; i++) {
      const b = T.alloc('float32', 16 + (i % 48));
      b[0] = i;
      T.release(b);
      if (i % 97 === 0) {
        const j = i % live.length;
        T.release(live[j]!);
        live[j] = T.alloc('float32', 64);
      }
      maxNursery = Math.max(maxNursery, nurseryLength());
    }
  });
  for (const b of live) T.release(b);
  assert.ok(scavenges > 0, 'no scavenge ran: the check measured nothing');
  // Registering each buffer at alloc() (the former design) promoted every one of them with its
  // registry cell: ~40 MB here. Now only the rare survivors at a nursery flush are registered.
  assert.ok(promoted < 2 * 2 ** 20, `promoted ${(promoted / 2 ** 20).toFixed(1)} MiB in ${scavenges} scavenges`);
  assert.ok(maxNursery <= NURSERY_CAPACITY, `nursery held ${maxNursery}`);
});

test('a tensor dropped without release() is still counted out by the garbage collector', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const before = T.memoryStats();
  (() => {
    // Dropped at once: still in the nursery (held), then registered at the microtask, then collected.
    for (let i = 0; i < 50; i++) T.zeros([1000]);
  })();
  assert.equal(T.memoryStats().currentBytes - before.currentBytes, 50 * 4000);
  for (let round = 0; round < 20 && T.memoryStats().currentBytes > before.currentBytes; round++) {
    await new Promise((r) => setImmediate(r));
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const after = T.memoryStats();
  assert.equal(after.currentBytes, before.currentBytes, 'dropped tensors still counted as live');
  assert.ok(after.collectedBuffers - before.collectedBuffers >= 50);
  assert.equal(nurseryLength(), 0);
});

test('release() ignores anything but the current owner of a block: twice, a sub-view, a foreign array', () => {
  const a = T.alloc('float32', 100);
  const s0 = T.memoryStats();
  T.release(a.subarray(10, 20));
  T.release(new Float32Array(100));
  assert.equal(T.memoryStats().currentBytes, s0.currentBytes, 'a sub-view or a foreign array was released');
  T.release(a);
  const s1 = T.memoryStats();
  assert.equal(s1.currentBytes, s0.currentBytes - 400);
  T.release(a);
  assert.equal(T.memoryStats().currentBytes, s1.currentBytes, 'a second release counted twice');
  // The block goes to the next request of its class; the old view's release must not free it.
  const b = T.alloc('float32', 100, false);
  T.release(a);
  assert.equal(T.memoryStats().currentBytes, s1.currentBytes + 400, 'a stale view released the block\'s new owner');
  T.release(b);
  // Pooling off: every buffer has its own ArrayBuffer, with the same checks.
  T.setPoolLimit(0);
  try {
    const c = T.alloc('float64', 3);
    const s2 = T.memoryStats();
    T.release(c);
    T.release(c);
    assert.equal(T.memoryStats().currentBytes, s2.currentBytes - 24);
  } finally {
    T.setPoolLimit('auto');
  }
});

test('glibc\'s free pages go back at step boundaries, at most once per interval, not with DPO_MALLOC_TUNE=0', () => {
  const t = 1e12; // far from any earlier call's time
  const glibc = mallocInfo() !== null;
  assert.equal(trimFreeMemory(t, {}), glibc);
  assert.equal(trimFreeMemory(t + MALLOC_TRIM_INTERVAL_MS / 2, {}), false, 'trimmed again within the interval');
  assert.equal(trimFreeMemory(t + 2 * MALLOC_TRIM_INTERVAL_MS, { DPO_MALLOC_TUNE: '0' }), false);
  assert.equal(trimFreeMemory(t + 3 * MALLOC_TRIM_INTERVAL_MS, {}), glibc);
});

test('GRPO and PPO steps leave no tensor buffer to the garbage collector (each step releases what it makes)', async () => {
  // A buffer still unreleased when a step's synchronous work ends is put in the FinalizationRegistry
  // (and so into V8's old generation until a full collection). Count those per step after the
  // first two (which register the optimizer's state). The tape roots of the policy (and value)
  // losses were one (two) per micro-batch: old-space garbage that V8 sized its heap to.
  const { modelDir, promptsFile, rewardModule } = await makeRlTask();
  const register = FinalizationRegistry.prototype.register;
  let registered = 0;
  FinalizationRegistry.prototype.register = function (this: FinalizationRegistry<unknown>, ...a: Parameters<FinalizationRegistry<unknown>['register']>) {
    registered++;
    return register.apply(this, a);
  };
  try {
    const perStep = async (run: (onLog: (r: Record<string, number>) => void) => Promise<unknown>): Promise<number[]> => {
      const counts: number[] = [];
      let last = 0;
      await run(() => {
        counts.push(registered - last);
        last = registered;
      });
      return counts.slice(2);
    };
    const grpo = await perStep((onLog) => runGrpo({
      model: modelDir, prompts: [promptsFile], outputDir: mkdtempSync(join(tmpdir(), 'nursery-grpo-')), quiet: true, onLog,
      config: parseGrpoConfig({ reward_funcs: [rewardModule], per_device_train_batch_size: 8, num_generations: 4, max_completion_length: 6, max_steps: 6, logging_steps: 1, save_steps: 0, seed: 2 }),
    }));
    const ppo = await perStep((onLog) => runPpo({
      model: modelDir, prompts: [promptsFile], outputDir: mkdtempSync(join(tmpdir(), 'nursery-ppo-')), quiet: true, onLog,
      config: parsePpoConfig({ reward_funcs: [rewardModule], per_device_train_batch_size: 8, num_mini_batches: 2, num_ppo_epochs: 1, response_length: 6, max_steps: 6, logging_steps: 1, save_steps: 0, seed: 2 }),
    }));
    assert.equal(grpo.length, 4);
    assert.deepEqual(grpo, [0, 0, 0, 0], `GRPO buffers left to the GC per step: ${grpo}`);
    assert.deepEqual(ppo, [0, 0, 0, 0], `PPO buffers left to the GC per step: ${ppo}`);
  } finally {
    FinalizationRegistry.prototype.register = register;
  }
});

test('DPO (training and evaluation), SFT and reward-model steps leave no tensor buffer to the garbage collector', async () => {
  // Counted from step 12 on (the optimizer's state, made at step 1, is registered a few settles
  // later) to the end. Before: every DPO micro-batch left its sums (the tape's root) and SFT its
  // loss; the parameter gradients, live across the loop's await between backward and the
  // optimizer step, were registered (~40 registry cells a step, straight into V8's old
  // generation); evaluation built a tape it never consumed, all of it left to the GC.
  const modelDir = await makeTinyModelDir({ seed: 5 });
  const dir = mkdtempSync(join(tmpdir(), 'nursery-train-'));
  const pairs = syntheticPairs(64, 3);
  const train = writeJsonl(join(dir, 'train.jsonl'), pairs);
  const held = writeJsonl(join(dir, 'eval.jsonl'), syntheticPairs(16, 4));
  const sft = writeJsonl(join(dir, 'sft.jsonl'), pairs.map((p) => ({ prompt: p.prompt, completion: p.chosen })));
  const sftEval = writeJsonl(join(dir, 'sft-eval.jsonl'), pairs.slice(0, 8).map((p) => ({ prompt: p.prompt, completion: p.chosen })));
  const register = FinalizationRegistry.prototype.register;
  let registered = 0;
  FinalizationRegistry.prototype.register = function (this: FinalizationRegistry<unknown>, ...a: Parameters<FinalizationRegistry<unknown>['register']>) {
    registered++;
    return register.apply(this, a);
  };
  const FROM = 12, STEPS = 24;
  try {
    /** Registrations from the log of step FROM to the end of the run. */
    const late = async (run: (onLog: (r: Record<string, number>) => void) => Promise<unknown>): Promise<number> => {
      let at = -1;
      await run((r) => {
        if (r.step === FROM) at = registered;
      });
      // The settles after the run's last allocations (a buffer dropped near the end is registered
      // up to SETTLES_BEFORE_REGISTER turns of the event loop later).
      for (let i = 0; i <= SETTLES_BEFORE_REGISTER + 1; i++) await new Promise((r) => setImmediate(r));
      assert.ok(at >= 0, 'step FROM was not logged');
      return registered - at;
    };
    const common = { max_steps: STEPS, logging_steps: 1, save_steps: 0, learning_rate: 1e-3, per_device_train_batch_size: 4, seed: 1 };
    const dpo = await late((onLog) => runDpo({
      model: modelDir, data: [train], evalData: [held], outputDir: join(dir, 'dpo'), quiet: true, on: { log: onLog },
      config: parseDpoConfig({ ...common, eval_steps: 4, per_device_eval_batch_size: 8 }),
    }));
    const dpoAccum = await late((onLog) => runDpo({
      model: modelDir, data: [train], outputDir: join(dir, 'dpo-acc'), quiet: true, on: { log: onLog },
      config: parseDpoConfig({ ...common, gradient_accumulation_steps: 3, eval_steps: 0 }),
    }));
    const sftRun = await late((onLog) => runSft({
      model: modelDir, data: [sft], evalData: [sftEval], outputDir: join(dir, 'sft'), quiet: true, on: { log: onLog },
      config: parseSftConfig({ ...common, eval_steps: 4 }),
    }));
    const rm = await late((onLog) => runRewardModel({
      model: modelDir, data: [train], evalData: [held], outputDir: join(dir, 'rm'), quiet: true, onLog,
      config: parseRewardConfig({ ...common, eval_steps: 4 }),
    }));
    assert.deepEqual({ dpo, dpoAccum, sft: sftRun, rm }, { dpo: 0, dpoAccum: 0, sft: 0, rm: 0 }, 'buffers left to the GC after warm-up');
  } finally {
    FinalizationRegistry.prototype.register = register;
  }
});
