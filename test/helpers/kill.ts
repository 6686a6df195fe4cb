// Kill-and-resume tests: run the real CLI in a child process, SIGKILL it once a checkpoint of at
// least `minStep` exists in `dir`, and wait for it to exit.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';

export async function runCliUntilCheckpoint(args: string[], dir: string, minStep: number, timeoutMs: number, pollMs: number): Promise<void> {
  const cli = new URL('../../src/cli/index.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'ignore' });
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
        reject(new Error(`child ended (code ${child.exitCode}) before a checkpoint was written`));
      }
    }, pollMs);
  });
  await new Promise((r) => child.once('exit', r));
}
