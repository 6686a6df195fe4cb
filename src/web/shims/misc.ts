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

// node:module
export const createRequire = (): (() => never) => unavailable('require() of native modules');

// node:zlib
export const gunzipSync = (data: Uint8Array): Buffer => Buffer.from(fflateGunzip(data));
export const createGunzip = unavailable('streaming gunzip');

// node:readline, node:stream
export const createInterface = unavailable('node:readline');
export class Readable {
  constructor() {
    unavailable('node:stream')();
  }
}

export default { homedir, tmpdir, cpus, availableParallelism, platform, EOL, fileURLToPath, pathToFileURL, createRequire, gunzipSync, createGunzip, createInterface, Readable };
