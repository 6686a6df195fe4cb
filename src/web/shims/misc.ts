// The remaining Node built-ins the core names, for the browser bundle: what has a browser meaning
// (os.homedir, url.fileURLToPath, zlib.gunzipSync through fflate) works; what has none (native
// addons, streams, line readers) throws a message saying so when called.
import { gunzipSync as fflateGunzip } from 'fflate';
import { Buffer } from 'buffer';

const unavailable = (what: string) => (): never => {
  throw new Error(`${what} is not available in the browser`);
};

// node:os
const nav = (): number => (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
export const homedir = (): string => '/home';
export const tmpdir = (): string => '/tmp';
export const cpus = (): unknown[] => Array.from({ length: nav() }, () => ({}));
export const availableParallelism = (): number => nav();
export const platform = (): string => 'browser';
export const EOL = '\n';

// node:url
export const fileURLToPath = (u: string | URL): string => decodeURIComponent(new URL(String(u)).pathname);
export const pathToFileURL = (p: string): URL => new URL(`file://${encodeURI(p)}`);

// node:v8: engine flags cannot be set from a page (wasm-node.ts switches relaxed SIMD on in Node;
// browsers that have it validate it without a flag).
export const setFlagsFromString = (): void => {};

// node:module
export const createRequire = (): (() => never) => unavailable('require() of native modules');

/**
 * Bytes held in memory, standing in for the Node streams the core's JSON-lines reader uses
 * (a file stream, optionally piped through gunzip, read line by line by readline).
 */
export class MemoryStream {
  constructor(public bytes: Uint8Array, private readonly transform: ((b: Uint8Array) => Uint8Array) | null = null) {}
  on(): this {
    return this;
  }
  pipe(next: MemoryStream): MemoryStream {
    next.bytes = next.transform ? next.transform(this.bytes) : this.bytes;
    return next;
  }
  destroy(): void {}
}

// node:zlib
export const gunzipSync = (data: Uint8Array): Buffer => Buffer.from(fflateGunzip(data));
export const createGunzip = (): MemoryStream => new MemoryStream(new Uint8Array(0), (b) => fflateGunzip(b));

// node:readline: the lines of a MemoryStream (\n or \r\n), as `for await` reads them.
export function createInterface(opts: { input: MemoryStream }): AsyncIterable<string> & { close(): void } {
  const text = new TextDecoder().decode(opts.input.bytes);
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return {
    async *[Symbol.asyncIterator]() {
      yield* lines;
    },
    close(): void {},
  };
}

// node:stream
export class Readable {
  constructor() {
    unavailable('node:stream')();
  }
}

export default { homedir, tmpdir, cpus, availableParallelism, platform, EOL, fileURLToPath, pathToFileURL, createRequire, gunzipSync, createGunzip, createInterface, Readable };
