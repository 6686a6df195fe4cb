// Kill-and-resume tests: run the real CLI in a child process, SIGKILL it once a checkpoint of at
// least `minStep` exists in `dir`, and wait for it to exit.
//
// The kill races the child: on a loaded machine the parent's poll can come late and the child can
// finish every step (write its final model) before SIGKILL lands, which would leave nothing to
// resume. Such an attempt is discarded — the child's outputs are removed, the files the test put in
// `dir` beforehand (its config) are kept — and the run is repeated, up to `attempts` times; the
// helper returns only after a kill that really interrupted the run.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** The file a finished run writes last: its presence means the kill came too late. */
const FINAL_FILE = 'model.safetensors';

export async function runCliUntilCheckpoint(args: string[], dir: string, minStep: number, timeoutMs: number, pollMs: number, attempts = 4): Promise<void> {
  const before = new Set(readdirSync(dir));
  for (let attempt = 1; ; attempt++) {
    const signal = await runOnce(args, dir, minStep, timeoutMs, pollMs);
    if (signal === 'SIGKILL' && !existsSync(join(dir, FINAL_FILE))) return;
    if (attempt >= attempts) {
      throw new Error(`the child finished its run before SIGKILL landed, ${attempts} times in a row (exit signal ${signal ?? 'none'})`);
    }
    for (const f of readdirSync(dir)) if (!before.has(f)) rmSync(join(dir, f), { recursive: true, force: true });
  }
}

/** One child run, killed at the first checkpoint ≥ minStep; resolves with the signal it died of (null: it exited itself). */
async function runOnce(args: string[], dir: string, minStep: number, timeoutMs: number, pollMs: number): Promise<NodeJS.Signals | null> {
  const cli = new URL('../../src/cli/index.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    const t0 = Date.now();
    const poll = setInterval(() => {
      const ck = readdirSync(dir).filter((f) => /^checkpoint-\d+$/.test(f));
      if (ck.some((c) => Number(c.split('-')[1]) >= minStep)) {
        clearInterval(poll);
        child.kill('SIGKILL');
        resolve();
      } else if (child.exitCode !== null || Date.now() - t0 > timeoutMs) {
        clearInterval(poll);
        child.kill('SIGKILL');
        reject(new Error(`child ended (code ${child.exitCode}) before a checkpoint was written`));
      }
    }, pollMs);
  });
  return exited;
}
