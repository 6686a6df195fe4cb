// Globals the core finds in Node, for the browser bundle (esbuild `inject`): `process` (no
// environment; stderr lines go to the console), `Buffer` (the npm buffer package) and setImmediate.
import { Buffer } from 'buffer';

const stream = (log: (s: string) => void) => ({
  isTTY: false,
  columns: 100,
  write(s: string | Uint8Array): boolean {
    const text = typeof s === 'string' ? s : new TextDecoder().decode(s);
    if (text.trim()) log(text.replace(/\n$/, ''));
    return true;
  },
  on(): void {},
});

export const process = {
  env: {} as Record<string, string | undefined>,
  platform: 'browser',
  arch: 'wasm32',
  pid: 1,
  version: 'v20.0.0',
  versions: {} as Record<string, string>,
  argv: [] as string[],
  exitCode: undefined as number | undefined,
  stderr: stream((s) => console.warn(s)),
  stdout: stream((s) => console.log(s)),
  cwd: (): string => '/',
  emitWarning: (w: string | Error): void => console.warn(typeof w === 'string' ? w : w.message),
  on: (): void => {},
  once: (): void => {},
  off: (): void => {},
  memoryUsage: () => ({ rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 }),
  hrtime: Object.assign((): [number, number] => {
    const t = performance.now();
    return [Math.floor(t / 1000), Math.round((t % 1000) * 1e6)];
  }, { bigint: (): bigint => BigInt(Math.round(performance.now() * 1e6)) }),
  nextTick: (f: (...a: unknown[]) => void, ...a: unknown[]): void => queueMicrotask(() => f(...a)),
};

// A macrotask that does not wait for the 4 ms timer clamp: a message through a channel. Where the
// host has its own setImmediate (Node, which runs the bundle in the tests) that one is used.
const hostImmediate = (globalThis as { setImmediate?: (f: (...a: unknown[]) => void, ...a: unknown[]) => unknown }).setImmediate;
let channel: InstanceType<typeof MessageChannel> | null = null;
const queue: (() => void)[] = [];
export function setImmediate(f: (...a: unknown[]) => void, ...a: unknown[]): unknown {
  if (hostImmediate) return hostImmediate(f, ...a);
  if (typeof MessageChannel !== 'function') return setTimeout(f, 0, ...a);
  if (!channel) {
    channel = new MessageChannel();
    (channel.port1 as unknown as { onmessage: () => void }).onmessage = () => queue.shift()?.();
  }
  queue.push(() => f(...a));
  channel.port2.postMessage(0);
  return 0;
}

export { Buffer };
